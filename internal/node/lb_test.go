package node

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"ulb/balancer"
	"ulb/conntrack"
	"ulb/router/control"
)

// show-conn lists the first flows in rule, client and VIP order whatever the table's
// order, and counts them all.
func TestConnListOrder(t *testing.T) {
	b := balancer.New(balancer.Config{})
	err := b.Set([]balancer.RuleConfig{{Name: "web", VIP: netip.MustParseAddr("198.51.100.100"), PortLo: 80, PortHi: 80,
		Proto: balancer.ProtoTCP, PMask: balancer.NoPersistence, Enabled: true,
		Servers: []balancer.ServerConfig{{Addr: netip.MustParseAddr("203.0.113.200"), Port: 80, Weight: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	rule, _ := b.Snapshot().RuleByName("web")
	table := conntrack.New(conntrack.Config{Capacity: 4096})
	vip, server := netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("203.0.113.200")
	var clients []netip.AddrPort
	for i := range 300 {
		clients = append(clients, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 250)}), uint16(1024+i)))
	}
	rand.Shuffle(len(clients), func(i, j int) { clients[i], clients[j] = clients[j], clients[i] })
	for _, c := range clients {
		err := table.Insert(conntrack.Flow{
			Orig:  conntrack.MakeTuple(c.Addr(), vip, c.Port(), 80, conntrack.ProtoTCP),
			Reply: conntrack.MakeTuple(server, c.Addr(), 80, c.Port(), conntrack.ProtoTCP),
			Rule:  rule.ID(), Topology: conntrack.HalfNAT, State: conntrack.StateEstablished,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(clients, func(x, y netip.AddrPort) int { return x.Compare(y) })
	for _, limit := range []int{1, 7, 300, 1000} {
		got, err := connList(b, table, control.ShowConnArgs{Limit: limit}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		n := min(limit, len(clients))
		if got.Total != len(clients) || len(got.Conns) != n {
			t.Fatalf("limit %d: %d of %d shown", limit, len(got.Conns), got.Total)
		}
		for i, c := range got.Conns {
			if c.Client != clients[i].String() || c.Rule != "web" || c.Server != "203.0.113.200:80" {
				t.Fatalf("limit %d: conn %d = %+v, want client %s", limit, i, c, clients[i])
			}
		}
	}
	if _, err := connList(b, table, control.ShowConnArgs{Rule: "nope"}, time.Now()); err == nil || err.Error() != `no rule "nope"` {
		t.Errorf("unknown rule: %v", err)
	}
}
