package conntrack_test

import (
	"fmt"
	"net/netip"
	"time"

	"ulb/conntrack"
	"ulb/router/header"
)

// A half-NAT flow as the router handles it: the first packet misses, the balancer picks a
// server, the flow is inserted with that packet accounted; later packets of either direction
// find it with one Lookup.
func Example() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t := conntrack.New(conntrack.Config{
		Capacity: 1000,
		Now:      func() time.Time { return now },
		OnExpire: func(f conntrack.Flow) { fmt.Println("gone:", f.Orig, f.State) },
	})
	client := netip.MustParseAddr("192.0.2.10")
	vip := netip.MustParseAddr("198.51.100.100")
	server := netip.MustParseAddr("203.0.113.20")

	syn := conntrack.MakeTuple(client, vip, 40000, 80, conntrack.ProtoTCP)
	if _, _, ok := t.Lookup(syn, header.TCPFlagSYN, 60); !ok {
		f := conntrack.Flow{
			Orig:   syn,
			Reply:  conntrack.MakeTuple(server, client, 80, 40000, conntrack.ProtoTCP),
			Rule:   0,
			Server: 2,
		}
		f.Account(conntrack.Original, header.TCPFlagSYN, 60)
		if err := t.Insert(f); err != nil {
			fmt.Println(err)
		}
	}
	synAck := conntrack.MakeTuple(server, client, 80, 40000, conntrack.ProtoTCP)
	f, dir, _ := t.Lookup(synAck, header.TCPFlagSYN|header.TCPFlagACK, 60)
	fmt.Println(dir, f.State, "server", f.Server)
	f, dir, _ = t.Lookup(syn, header.TCPFlagACK, 52)
	fmt.Println(dir, f.State)

	now = now.Add(16 * time.Minute)
	for range conntrack.DefaultSweepCalls {
		t.Expire()
	}
	fmt.Println("flows:", t.Len())
	// Output:
	// reply SYN_RECV server 2
	// original ESTABLISHED
	// gone: tcp 192.0.2.10:40000->198.51.100.100:80 ESTABLISHED
	// flows: 0
}
