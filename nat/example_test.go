package nat_test

import (
	"fmt"
	"net/netip"

	"ulb/nat"
	"ulb/router/header"
)

// tcpPacket builds a TCP/IPv4 SYN with valid checksums.
func tcpPacket(src, dst netip.Addr, sport, dport uint16) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize)
	header.EncodeIPv4(b, header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64,
		Protocol: header.ProtocolTCP, Src: src, Dst: dst})
	header.EncodeTCP(b[header.IPv4MinimumSize:], header.TCPFields{SrcPort: sport, DstPort: dport,
		Flags: header.TCPFlagSYN, Window: 65535})
	header.SetTransportChecksum(header.ProtocolTCP, src, dst, b[header.IPv4MinimumSize:])
	return b
}

func show(b []byte) {
	e, _ := nat.Parse(b)
	ok := header.IsTransportChecksumValid(e.Proto, e.Src, e.Dst, b[header.IPv4MinimumSize:]) &&
		header.IPv4(b).IsChecksumValid()
	fmt.Printf("%v:%d -> %v:%d checksums valid: %v\n", e.Src, e.SrcPort, e.Dst, e.DstPort, ok)
}

// Half-NAT: the client's packets to the VIP go to the server with the client's address
// kept; the server's replies go back with the VIP as their source.
func Example_halfNAT() {
	client, vip, server := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.100"),
		netip.MustParseAddr("203.0.113.200")

	in := tcpPacket(client, vip, 40000, 80)
	nat.Apply(in, nat.Rewrite{Dst: server, DstPort: 8080}, false)
	show(in)

	reply := tcpPacket(server, client, 8080, 40000)
	nat.Apply(reply, nat.Rewrite{Src: vip, SrcPort: 80}, false)
	show(reply)
	// Output:
	// 198.51.100.7:40000 -> 203.0.113.200:8080 checksums valid: true
	// 198.51.100.100:80 -> 198.51.100.7:40000 checksums valid: true
}

// Full-NAT: the source becomes a proxy address and port from the rule's pools, so the
// server's replies come back to the balancer; the port goes back to the pool when the
// flow ends.
func Example_fullNAT() {
	client, vip, server := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.100"),
		netip.MustParseAddr("203.0.113.200")
	pool, _ := nat.NewPortPool(20000, 20999)
	pools, _ := nat.NewPools(pool, []netip.Addr{netip.MustParseAddr("203.0.113.50")})

	proxy, port, _ := pools.Get()
	in := tcpPacket(client, vip, 40000, 80)
	nat.Apply(in, nat.Rewrite{Src: proxy, SrcPort: port, Dst: server, DstPort: 8080}, false)
	show(in)

	reply := tcpPacket(server, proxy, 8080, port)
	nat.Apply(reply, nat.Rewrite{Src: vip, SrcPort: 80, Dst: client, DstPort: 40000}, false)
	show(reply)

	fmt.Println("in use:", pool.InUse(proxy), "put back:", pools.Put(proxy, port), "in use:", pool.InUse(proxy))
	// Output:
	// 203.0.113.50:20000 -> 203.0.113.200:8080 checksums valid: true
	// 198.51.100.100:80 -> 198.51.100.7:40000 checksums valid: true
	// in use: 1 put back: true in use: 0
}
