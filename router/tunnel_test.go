package router

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/ip4defrag"
	"github.com/google/gopacket/layers"

	"ulb/balancer"
	"ulb/conntrack"
	"ulb/router/header"
	"ulb/router/port"
	"ulb/router/port/porttest"
)

// The tunnel topology over porttest links, driven a frame at a time through the loops:
// the client on the left, the servers on a network behind a router (hopR4, hopR6) on
// the right. Every encapsulated packet is decoded with gopacket, its outer header
// checked field by field, its checksum against a full recomputation, and its inner
// packet compared byte for byte with what the client sent (TTL decremented).

var (
	tunServer4 = netip.MustParseAddr("203.0.113.7")
	tunServer6 = netip.MustParseAddr("2001:db8:3::7")
	tunServerS = netip.MustParseAddr("203.0.113.8") // the tunnel_source rule's
)

const (
	tunPort  = 8085 // the tunnel rules' VIP port
	tunPortS = 8086 // the rule with a tunnel_source
)

func tunRules() []balancer.RuleConfig {
	rule := func(name string, vip netip.Addr, p uint16, srv netip.Addr) balancer.RuleConfig {
		return balancer.RuleConfig{Name: name, VIP: vip, PortLo: p, PortHi: p, Proto: balancer.ProtoTCP,
			Algorithm: balancer.RoundRobin, PMask: balancer.NoPersistence, Topology: balancer.Tunnel, Enabled: true,
			Servers: []balancer.ServerConfig{{Addr: srv, Weight: 1}}}
	}
	src := rule("tun4-src", vip4, tunPortS, tunServerS)
	src.TunnelSource = routerL4
	return []balancer.RuleConfig{rule("tun4", vip4, tunPort, tunServer4), rule("tun6", vip6, tunPort, tunServer6), src}
}

type tunFixture struct {
	r            *Router
	left, right  *loop
	hostL, hostR *porttest.Port
}

// newTunFixture makes the router with the tunnel rules, the right link's MTU mtuR.
func newTunFixture(tb testing.TB, mtuR int) *tunFixture {
	tb.Helper()
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, mtuR)
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{
				netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:2::1/64")}},
		},
		Routes: []Route{
			{To: netip.MustParsePrefix("203.0.113.0/24"), Via: hopR4},
			{To: netip.MustParsePrefix("2001:db8:3::/64"), Via: hopR6},
		},
		Rules: tunRules(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range []netip.Addr{hostL4, hostL6} {
		r.ports()[0].neigh.AddStatic(a, header.MAC(macHostL))
	}
	for _, a := range []netip.Addr{hopR4, hopR6} {
		r.ports()[1].neigh.AddStatic(a, header.MAC(macHostR))
	}
	return &tunFixture{r: r, left: r.newLoop(r.ports()[0]), right: r.newLoop(r.ports()[1]), hostL: hl, hostR: hr}
}

// runBuf hands loop l the frame at buf[headroom:] (its virtio-net header before it)
// and returns every frame the router sent, queued or written, towards the client (left)
// and towards the servers (right).
func (f *tunFixture) runBuf(l *loop, buf []byte) (left, right [][]byte) {
	l.handle(buf)
	for _, p := range f.r.ports() {
		l.flushPort(p)
	}
	l.nused = 0
	read := func(host *porttest.Port) [][]byte {
		var got [][]byte
		for host.Queued() > 0 {
			bufs := [][]byte{make([]byte, port.BufSize)}
			sizes := []int{0}
			if n, _ := host.Read(bufs, sizes, headroom); n == 1 {
				got = append(got, bufs[0][headroom:headroom+sizes[0]])
			}
		}
		return got
	}
	return read(f.hostL), read(f.hostR)
}

func (f *tunFixture) run(l *loop, frame []byte) (left, right [][]byte) {
	buf := make([]byte, headroom+len(frame), port.BufSize)
	copy(buf[headroom:], frame)
	return f.runBuf(l, buf)
}

// clientTCP is a client's TCP segment to dst: DSCP EF and ECT(0) in the TOS or traffic
// class, a flow label on IPv6, DF as given on IPv4, padded with payload to total bytes
// of IP packet (at least the headers).
func clientTCP(src, dst netip.AddrPort, flags int, df bool, total int) []byte {
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1000, Window: 1000,
		SYN: flags&flagSYN != 0, ACK: flags&flagACK != 0}
	if tcp.ACK {
		tcp.Ack = 1
	}
	if src.Addr().Is4() {
		payload := make([]byte, max(total-40, 0))
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		ip := &layers.IPv4{Version: 4, IHL: 5, TOS: 0xb8 | 2, TTL: 64, Id: 77, Protocol: layers.IPProtocolTCP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		if df {
			ip.Flags = layers.IPv4DontFragment
		}
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload))
	}
	payload := make([]byte, max(total-60, 0))
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	ip := &layers.IPv6{Version: 6, TrafficClass: 0xb8 | 2, FlowLabel: 0x12345, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(eth(macHostL, macRouterL, layers.EthernetTypeIPv6), ip, tcp, gopacket.Payload(payload))
}

// forwarded is the client's IP packet as a router forwards it: TTL or hop limit one
// less, the IPv4 header checksum recomputed (by the test, not the router's code).
func forwarded(frame []byte) []byte {
	ip := bytes.Clone(frame[ethLen:])
	if ip[0]>>4 == 4 {
		ip = ip[:binary.BigEndian.Uint16(ip[2:])] // no Ethernet padding
		ip[8]--
		binary.BigEndian.PutUint16(ip[10:], csumRecomputed(nil, ip[:20], 10))
	} else {
		ip[7]--
	}
	return ip
}

// checkOuter decodes an encapsulated frame with gopacket and checks it: MACs to the
// next hop, the outer header (RFC 2003 section 3.1, RFC 2473 section 3: protocol 4 or
// next header 41, TTL or hop limit 64, TOS or traffic class copied, DF copied, the
// flow label copied, lengths, source and destination, the IPv4 checksum against a
// full recomputation), and that the inner packet is exactly inner. It returns the
// outer IP packet.
func checkOuter(t *testing.T, frame []byte, src, dst netip.Addr, inner []byte, df bool) []byte {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	e, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if e == nil || !bytes.Equal(e.SrcMAC, macRouterR) || !bytes.Equal(e.DstMAC, macHostR) {
		t.Errorf("frame not from the router to the next hop: %v", p)
	}
	outer := frame[ethLen:]
	if dst.Is4() {
		ip, ok := p.Layers()[1].(*layers.IPv4)
		if !ok {
			t.Fatalf("not IPv4: %v", p)
		}
		if ip.Protocol != layers.IPProtocolIPv4 || ip.TTL != header.DefaultTTL || ip.TOS != 0xba || ip.IHL != 5 ||
			int(ip.Length) != 20+len(inner) || !ip.SrcIP.Equal(src.AsSlice()) || !ip.DstIP.Equal(dst.AsSlice()) ||
			(ip.Flags&layers.IPv4DontFragment != 0) != df || ip.FragOffset != 0 {
			t.Errorf("outer header %+v, want protocol 4, TTL 64, TOS 0xba, length %d, %s -> %s, DF %v",
				ip, 20+len(inner), src, dst, df)
		}
		if got, want := binary.BigEndian.Uint16(outer[10:]), csumRecomputed(nil, outer[:20], 10); got != want {
			t.Errorf("outer checksum %#04x, recomputed %#04x", got, want)
		}
		if _, ok := p.Layers()[2].(*layers.IPv4); !ok {
			t.Errorf("gopacket finds no inner IPv4 header: %v", p)
		}
		if !bytes.Equal(outer[20:], inner) {
			t.Errorf("inner packet changed:\n got %x\nwant %x", outer[20:], inner)
		}
		return outer
	}
	ip, ok := p.Layers()[1].(*layers.IPv6)
	if !ok {
		t.Fatalf("not IPv6: %v", p)
	}
	if ip.NextHeader != layers.IPProtocolIPv6 || ip.HopLimit != header.DefaultTTL || ip.TrafficClass != 0xba ||
		ip.FlowLabel != 0x12345 || int(ip.Length) != len(inner) || !ip.SrcIP.Equal(src.AsSlice()) || !ip.DstIP.Equal(dst.AsSlice()) {
		t.Errorf("outer header %+v, want next header 41, hop limit 64, traffic class 0xba, flow label 0x12345, length %d, %s -> %s",
			ip, len(inner), src, dst)
	}
	if _, ok := p.Layers()[2].(*layers.IPv6); !ok {
		t.Errorf("gopacket finds no inner IPv6 header: %v", p)
	}
	if !bytes.Equal(outer[40:], inner) {
		t.Errorf("inner packet changed:\n got %x\nwant %x", outer[40:], inner)
	}
	return outer
}

type tunCase struct {
	name          string
	client        netip.Addr
	vip           netip.AddrPort
	server, outer netip.Addr // the server, and the outer source the router uses
}

var tunCases = []tunCase{
	{"ipv4", hostL4, netip.AddrPortFrom(vip4, tunPort), tunServer4, routerR4},
	{"ipv6", hostL6, netip.AddrPortFrom(vip6, tunPort), tunServer6, routerR6},
	{"ipv4/tunnel_source", hostL4, netip.AddrPortFrom(vip4, tunPortS), tunServerS, routerL4},
}

// TestTunnelEncapsulation: a tunnel flow's SYN and data reach the server (behind a
// routed hop) inside an outer header from the egress port's address (or the
// rule's tunnel_source), the client's packet inside unchanged but for its TTL.
func TestTunnelEncapsulation(t *testing.T) {
	for _, c := range tunCases {
		t.Run(c.name, func(t *testing.T) {
			f := newTunFixture(t, 1500)
			client := netip.AddrPortFrom(c.client, clientPort)
			for _, fr := range [][]byte{clientTCP(client, c.vip, flagSYN, true, 0), clientTCP(client, c.vip, flagACK, true, 1000)} {
				_, got := f.run(f.left, fr)
				if len(got) != 1 {
					t.Fatalf("%d frames at the server side, want 1", len(got))
				}
				inner := forwarded(fr)
				checkOuter(t, got[0], c.outer, c.server, inner, true)
				checkChecksums(t, "inner", inner, false)
			}
			fl, dir, ok := f.r.ct.Get(conntrack.MakeTuple(c.client, c.vip.Addr(), clientPort, c.vip.Port(), header.ProtocolTCP))
			if !ok || dir != conntrack.Original || fl.Topology != conntrack.Tunnel || !fl.Reply.IsZero() || fl.OrigPackets != 2 {
				t.Errorf("flow %+v (found %v), want a tunnel flow without a reply tuple, 2 packets", fl, ok)
			}
		})
	}
}

// TestTunnelTooBig: the encapsulation lowers the MTU the client's packets see.
func TestTunnelTooBig(t *testing.T) {
	client4, client6 := netip.AddrPortFrom(hostL4, clientPort), netip.AddrPortFrom(hostL6, clientPort)
	vip4p, vip6p := netip.AddrPortFrom(vip4, tunPort), netip.AddrPortFrom(vip6, tunPort)

	t.Run("ipv4 DF: fragmentation needed, MTU 1480", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		f.run(f.left, clientTCP(client4, vip4p, flagSYN, true, 0))
		fr := clientTCP(client4, vip4p, flagACK, true, 1500)
		left, right := f.run(f.left, fr)
		if len(right) != 0 {
			t.Errorf("%d frames sent towards the server", len(right))
		}
		// RFC 2003 section 5.1, RFC 1191 section 4.
		wantError(t, left, fr, routerL4, hostL4, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 1480)
		if n := f.left.bc.drops[DropTooBig]; n != 1 {
			t.Errorf("too-big drops %d, want 1", n)
		}
	})

	t.Run("ipv4 without DF: the outer packet fragmented", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		f.run(f.left, clientTCP(client4, vip4p, flagSYN, false, 0))
		fr := clientTCP(client4, vip4p, flagACK, false, 1500)
		_, got := f.run(f.left, fr)
		if len(got) != 2 {
			t.Fatalf("%d frames, want 2 fragments", len(got))
		}
		defrag := ip4defrag.NewIPv4Defragmenter()
		var whole *layers.IPv4
		for i, g := range got {
			if len(g)-ethLen > 1500 {
				t.Errorf("fragment %d: %d bytes over the MTU", i, len(g)-ethLen)
			}
			ip := gopacket.NewPacket(g, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ip.Protocol != layers.IPProtocolIPv4 || ip.Flags&layers.IPv4DontFragment != 0 {
				t.Errorf("fragment %d: protocol %v flags %v", i, ip.Protocol, ip.Flags)
			}
			if sum := binary.BigEndian.Uint16(g[ethLen+10:]); sum != csumRecomputed(nil, g[ethLen:ethLen+20], 10) {
				t.Errorf("fragment %d: bad header checksum", i)
			}
			out, err := defrag.DefragIPv4(ip)
			if err != nil {
				t.Fatal(err)
			}
			if out != nil {
				whole = out
			}
		}
		if whole == nil {
			t.Fatal("the fragments do not reassemble")
		}
		if !bytes.Equal(whole.Payload, forwarded(fr)) {
			t.Error("the reassembled outer packet does not carry the client's packet unchanged")
		}
	})

	t.Run("ipv6: packet too big, MTU 1460", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		f.run(f.left, clientTCP(client6, vip6p, flagSYN, true, 0))
		fr := clientTCP(client6, vip6p, flagACK, true, 1500)
		left, right := f.run(f.left, fr)
		if len(right) != 0 {
			t.Errorf("%d frames sent towards the server", len(right))
		}
		// RFC 2473 section 7.1 (a).
		wantError(t, left, fr, routerL6, hostL6, layers.ICMPv6TypePacketTooBig, 0, 1460)
	})

	t.Run("ipv6 over a link of 1300: 1280 fragmented, larger refused with 1280", func(t *testing.T) {
		f := newTunFixture(t, 1300)
		f.run(f.left, clientTCP(client6, vip6p, flagSYN, true, 0))
		fr := clientTCP(client6, vip6p, flagACK, true, 1280)
		_, got := f.run(f.left, fr)
		if len(got) != 2 {
			t.Fatalf("%d frames, want 2 fragments", len(got))
		}
		// RFC 2473 section 7.1 (b): the tunnel packet is fragmented.
		var data []byte
		for i, g := range got {
			ip := header.IPv6(g[ethLen:])
			if len(ip) > 1300 || ip.NextHeader() != header.ProtocolFragment {
				t.Fatalf("fragment %d: %d bytes, next header %d", i, len(ip), ip.NextHeader())
			}
			fh := header.IPv6Fragment(ip[40:])
			if fh.NextHeader() != header.ProtocolIPv6 || fh.Offset() != len(data) || fh.More() != (i == 0) {
				t.Errorf("fragment %d: next header %d offset %d more %v", i, fh.NextHeader(), fh.Offset(), fh.More())
			}
			data = append(data, ip[48:]...)
		}
		if !bytes.Equal(data, forwarded(fr)) {
			t.Error("the fragments do not carry the client's packet unchanged")
		}
		big := clientTCP(client6, vip6p, flagACK, true, 1281)
		left, right := f.run(f.left, big)
		if len(right) != 0 {
			t.Errorf("%d frames sent towards the server", len(right))
		}
		wantError(t, left, big, routerL6, hostL6, layers.ICMPv6TypePacketTooBig, 0, 1280)
	})
}

// wantError checks that frames is exactly one ICMP error from src to dst with the
// type, code and MTU, quoting the client's packet sent (as forwarded).
func wantError(t *testing.T, frames [][]byte, sent []byte, src, dst netip.Addr, typ, code uint8, mtu uint32) {
	t.Helper()
	if len(frames) != 1 {
		t.Fatalf("%d frames towards the client, want one ICMP error", len(frames))
	}
	e := decodeError(t, "the error", frames[0])
	q := gopacket.NewPacket(sent, layers.LayerTypeEthernet, gopacket.Default)
	tcp := q.Layer(layers.LayerTypeTCP).(*layers.TCP)
	qsrc, _ := netip.AddrFromSlice(q.NetworkLayer().NetworkFlow().Src().Raw())
	qdst, _ := netip.AddrFromSlice(q.NetworkLayer().NetworkFlow().Dst().Raw())
	if e.src != src || e.dst != dst || e.typ != typ || e.code != code || e.mtu != mtu ||
		e.qsrc != netip.AddrPortFrom(qsrc, uint16(tcp.SrcPort)) || e.qdst != netip.AddrPortFrom(qdst, uint16(tcp.DstPort)) {
		t.Errorf("error %s -> %s type %d code %d MTU %d quoting %s -> %s, want %s -> %s type %d code %d MTU %d quoting %s:%d -> %s:%d",
			e.src, e.dst, e.typ, e.code, e.mtu, e.qsrc, e.qdst, src, dst, typ, code, mtu, qsrc, tcp.SrcPort, qdst, tcp.DstPort)
	}
}

// icmpFromHop builds an ICMP (IPv4) or ICMPv6 error from the router inside the tunnel
// (hopR4, hopR6) to the router's outer source, quoting the outer packet quote.
func icmpFromHop(dst netip.Addr, typ, code uint8, rest uint32, quote []byte) []byte {
	if dst.Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: hopR4.AsSlice(), DstIP: dst.AsSlice()}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: uint16(rest >> 16), Seq: uint16(rest)}
		return serialize(eth(macHostR, macRouterR, layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(quote))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: hopR6.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	ic.SetNetworkLayerForChecksum(ip)
	body := binary.BigEndian.AppendUint32(nil, rest)
	return serialize(eth(macHostR, macRouterR, layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append(body, quote...)))
}

// TestTunnelICMPRelay: errors that a router inside the tunnel sends back about an
// encapsulated packet reach the client, about its own packet, with the MTU less the
// outer header (RFC 2003 sections 4 and 5.1, RFC 2473 sections 7.1 and 8); the others,
// and forged or cut ones, are dropped and counted.
func TestTunnelICMPRelay(t *testing.T) {
	tests := []struct {
		name            string
		v6              bool
		typ, code       uint8
		rest            uint32
		wantTyp, wantCd uint8
		wantMTU         uint32
	}{
		{"ipv4 fragmentation needed", false, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 1400,
			layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 1380},
		{"ipv4 fragmentation needed without an MTU (RFC 1191 plateau)", false, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 0,
			layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 1006 - 20}, // below the outer 1220
		{"ipv4 network unreachable", false, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet, 0,
			layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeHost, 0},
		{"ipv4 protocol unreachable", false, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeProtocol, 0,
			layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeHost, 0},
		{"ipv4 time exceeded", false, layers.ICMPv4TypeTimeExceeded, 0, 0,
			layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeHost, 0},
		{"ipv6 packet too big", true, layers.ICMPv6TypePacketTooBig, 0, 1400, layers.ICMPv6TypePacketTooBig, 0, 1360},
		{"ipv6 packet too big under 1320", true, layers.ICMPv6TypePacketTooBig, 0, 1300, layers.ICMPv6TypePacketTooBig, 0, 1280},
		{"ipv6 hop limit exceeded", true, layers.ICMPv6TypeTimeExceeded, 0, 0,
			layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodeAddressUnreachable, 0},
		{"ipv6 unreachable", true, layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodeNoRouteToDst, 0,
			layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodeAddressUnreachable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tunCases[0]
			if tt.v6 {
				c = tunCases[1]
			}
			f := newTunFixture(t, 1500)
			client := netip.AddrPortFrom(c.client, clientPort)
			f.run(f.left, clientTCP(client, c.vip, flagSYN, true, 0))
			fr := clientTCP(client, c.vip, flagACK, true, 1200)
			_, sent := f.run(f.left, fr)
			if len(sent) != 1 {
				t.Fatal("data not sent")
			}
			left, right := f.run(f.right, icmpFromHop(c.outer, tt.typ, tt.code, tt.rest, sent[0][ethLen:]))
			if len(right) != 0 {
				t.Errorf("%d frames back into the tunnel", len(right))
			}
			wantError(t, left, fr, c.outer, c.client, tt.wantTyp, tt.wantCd, tt.wantMTU)
		})
	}

	t.Run("not relayed", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		client := netip.AddrPortFrom(hostL4, clientPort)
		_, sent := f.run(f.left, clientTCP(client, netip.AddrPortFrom(vip4, tunPort), flagSYN, true, 0))
		outer := sent[0][ethLen:]
		other := bytes.Clone(outer) // a packet of no flow: another client port
		other[20+20+1]++
		for _, q := range []struct {
			what      string
			typ, code uint8
			quote     []byte
		}{
			{"port unreachable (RFC 2003 section 4: MUST NOT)", layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort, outer},
			{"source route failed", layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeSourceRoutingFailed, outer},
			{"parameter problem", layers.ICMPv4TypeParameterProblem, 0, outer},
			{"a quote without the inner ports", layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, outer[:20+20+2]},
			{"a quote without the inner header", layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, outer[:20+12]},
			{"a packet of no flow", layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, other},
		} {
			before := f.right.bc.drops[DropTunnelICMP]
			left, right := f.run(f.right, icmpFromHop(routerR4, q.typ, q.code, 1400, q.quote))
			if len(left) != 0 || len(right) != 0 {
				t.Errorf("%s: %d frames to the client, %d to the servers", q.what, len(left), len(right))
			}
			if f.right.bc.drops[DropTunnelICMP] != before+1 {
				t.Errorf("%s: not counted as tunnel-icmp", q.what)
			}
		}
	})
}

// TestTunnelGSO: a GSO frame from the client is cut into its segments, each
// encapsulated; segments that no longer fit are refused (DF) or sent in fragments of
// the outer packet.
func TestTunnelGSO(t *testing.T) {
	client, vip := netip.AddrPortFrom(hostL4, clientPort), netip.AddrPortFrom(vip4, tunPort)
	payload := gsoPayload()
	segments := func(t *testing.T, frames [][]byte) []byte {
		t.Helper()
		defrag := ip4defrag.NewIPv4Defragmenter()
		var data []byte
		for i, g := range frames {
			if len(g)-ethLen > 1500 {
				t.Errorf("frame %d: %d bytes over the MTU", i, len(g)-ethLen)
			}
			ip := gopacket.NewPacket(g, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ip.Protocol != layers.IPProtocolIPv4 || !ip.SrcIP.Equal(routerR4.AsSlice()) || !ip.DstIP.Equal(tunServer4.AsSlice()) {
				t.Fatalf("frame %d: outer %+v", i, ip)
			}
			whole, err := defrag.DefragIPv4(ip)
			if err != nil || whole == nil {
				continue
			}
			inner := whole.Payload
			checkChecksums(t, "segment", inner, false)
			if p := gopacket.NewPacket(inner, layers.LayerTypeIPv4, gopacket.Default); p.Layer(layers.LayerTypeTCP) != nil {
				data = append(data, p.Layer(layers.LayerTypeTCP).(*layers.TCP).Payload...)
			}
		}
		return data
	}
	t.Run("segments that fit", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		f.run(f.left, clientTCP(client, vip, flagSYN, false, 0))
		buf := gsoBuf(macHostL, macRouterL, client, vip, true, payload)
		port.Hdr(buf, headroom).SetGSOSize(1400) // segments of 1440 bytes, 1460 encapsulated
		_, right := f.runBuf(f.left, buf)
		if len(right) != 3 {
			t.Fatalf("%d frames, want 3 segments", len(right))
		}
		if got := segments(t, right); !bytes.Equal(got, payload) {
			t.Errorf("the segments carry %d bytes, not the payload of %d", len(got), len(payload))
		}
	})
	t.Run("DF set: fragmentation needed 1480", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		f.run(f.left, clientTCP(client, vip, flagSYN, true, 0))
		left, right := f.runBuf(f.left, gsoBuf(macHostL, macRouterL, client, vip, true, payload))
		if len(right) != 0 || len(left) != 1 {
			t.Fatalf("%d frames to the servers, %d to the client", len(right), len(left))
		}
		if e := decodeError(t, "fragmentation needed", left[0]); e.mtu != 1480 || e.dst != hostL4 || e.qdst != vip {
			t.Errorf("error %+v, want fragmentation needed, MTU 1480, to the client", e)
		}
	})
	t.Run("DF clear: segments in outer fragments", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		f.run(f.left, clientTCP(client, vip, flagSYN, false, 0))
		_, right := f.runBuf(f.left, gsoBuf(macHostL, macRouterL, client, vip, false, payload))
		if len(right) != 5 {
			t.Errorf("%d frames, want 5 (two segments in two fragments each, and one)", len(right))
		}
		if got := segments(t, right); !bytes.Equal(got, payload) {
			t.Errorf("the segments carry %d bytes, not the payload of %d", len(got), len(payload))
		}
	})
}

// TestTunnelAllocatesNothing: an established tunnel flow's packets, and the relay of
// an error from inside the tunnel, allocate nothing.
func TestTunnelAllocatesNothing(t *testing.T) {
	for _, c := range tunCases[:2] {
		t.Run(c.name, func(t *testing.T) {
			f := newLBFixture(t, nil)
			if err := f.r.SetRules(tunRules()); err != nil {
				t.Fatal(err)
			}
			if err := f.r.SetRoutes([]Route{
				{To: netip.MustParsePrefix("203.0.113.0/24"), Via: hopR4},
				{To: netip.MustParsePrefix("2001:db8:3::/64"), Via: hopR6},
			}); err != nil {
				t.Fatal(err)
			}
			f.r.icmp = newTokenBucket(1e9, 1e9) // the relayed errors are the router's own, rate-limited
			client := netip.AddrPortFrom(c.client, clientPort)
			syn := f.pass(f.left, 1, clientTCP(client, c.vip, flagSYN, true, 0))
			if syn == nil {
				t.Fatal("SYN not sent")
			}
			fromHop := icmpFromHop(c.outer, pick(c.client.Is6(), uint8(layers.ICMPv4TypeDestinationUnreachable), layers.ICMPv6TypePacketTooBig),
				pick(c.client.Is6(), uint8(layers.ICMPv4CodeFragmentationNeeded), 0), 1400, bytes.Clone(syn[ethLen:]))
			data := clientTCP(client, c.vip, flagACK, true, 1000)
			allocs := testing.AllocsPerRun(1000, func() {
				if f.pass(f.left, 1, data) == nil {
					t.Fatal("client's packet not sent")
				}
				if f.pass(f.right, 0, fromHop) == nil {
					t.Fatal("error not relayed")
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per packet and relayed error", allocs)
			}
		})
	}
}

// TestTunnelPathMTU: the MTU an error from inside the tunnel reported is kept for the
// server (RFC 2003 section 5.1, RFC 2473 section 7.1): the next client's packets get the
// router's own error at once (IPv4), or are sent in outer fragments that fit (IPv6
// under 1320).
func TestTunnelPathMTU(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		vip := netip.AddrPortFrom(vip4, tunPort)
		a, b := netip.AddrPortFrom(hostL4, clientPort), netip.AddrPortFrom(hostL4, clientPort+1)
		f.run(f.left, clientTCP(a, vip, flagSYN, true, 0))
		fr := clientTCP(a, vip, flagACK, true, 1200)
		_, sent := f.run(f.left, fr)
		left, _ := f.run(f.right, icmpFromHop(routerR4, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 1100, sent[0][ethLen:]))
		wantError(t, left, fr, routerR4, hostL4, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 1080)

		f.run(f.left, clientTCP(b, vip, flagSYN, true, 0))
		big := clientTCP(b, vip, flagACK, true, 1200)
		left, right := f.run(f.left, big)
		if len(right) != 0 {
			t.Errorf("%d frames into the tunnel, want none", len(right))
		}
		wantError(t, left, big, routerL4, hostL4, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 1080)
		if _, right := f.run(f.left, clientTCP(b, vip, flagACK, true, 1080)); len(right) != 1 {
			t.Errorf("a packet of 1080 bytes: %d frames, want 1", len(right))
		}
	})
	t.Run("ipv6 under 1320", func(t *testing.T) {
		f := newTunFixture(t, 1500)
		vip := netip.AddrPortFrom(vip6, tunPort)
		a := netip.AddrPortFrom(hostL6, clientPort)
		f.run(f.left, clientTCP(a, vip, flagSYN, true, 0))
		fr := clientTCP(a, vip, flagACK, true, 1400)
		_, sent := f.run(f.left, fr)
		left, _ := f.run(f.right, icmpFromHop(routerR6, layers.ICMPv6TypePacketTooBig, 0, 1300, sent[0][ethLen:]))
		wantError(t, left, fr, routerR6, hostL6, layers.ICMPv6TypePacketTooBig, 0, 1280)

		fr = clientTCP(a, vip, flagACK, true, 1280)
		_, right := f.run(f.left, fr)
		if len(right) != 2 {
			t.Fatalf("%d frames, want 2 fragments", len(right))
		}
		var data []byte
		for i, g := range right {
			if n := len(g) - ethLen; n > 1300 {
				t.Errorf("fragment %d: %d bytes, over the path's 1300", i, n)
			}
			data = append(data, g[ethLen+48:]...)
		}
		if !bytes.Equal(data, forwarded(fr)) {
			t.Error("the fragments do not carry the client's packet unchanged")
		}
	})
	t.Run("ages out, bounded", func(t *testing.T) {
		var p tunnelPaths
		now := time.Now()
		p.learn(tunServer4, 1100, now.Add(-tunnelPathTimeout-time.Second))
		if got := p.mtu(tunServer4, 1500, time.Now); got != 1500 {
			t.Errorf("an aged entry gives %d, want 1500", got)
		}
		p.learn(tunServer6, 1000, now)
		if got := p.mtu(tunServer6, 1500, time.Now); got != header.IPv6MinimumMTU {
			t.Errorf("IPv6 entry of 1000 gives %d, want 1280", got)
		}
		for i := range maxTunnelPaths + 10 {
			var a [16]byte
			copy(a[:], tunServer6.AsSlice())
			a[14], a[15] = byte(i>>8), byte(i)
			p.learn(netip.AddrFrom16(a), 1300, now)
		}
		if n := len(*p.m.Load()); n > maxTunnelPaths {
			t.Errorf("%d entries, at most %d", n, maxTunnelPaths)
		}
	})
}

// FuzzTunnel feeds arbitrary frames, from the client's side and from inside the
// tunnel, to a router with open tunnel flows: client packets of every size and errors
// about encapsulated packets, whole or cut, as seeds. Nothing panics.
func FuzzTunnel(f *testing.F) {
	fx := newTunFixture(f, 1300)
	c4, c6 := netip.AddrPortFrom(hostL4, clientPort), netip.AddrPortFrom(hostL6, clientPort)
	v4, v6 := netip.AddrPortFrom(vip4, tunPort), netip.AddrPortFrom(vip6, tunPort)
	for _, c := range []struct {
		client, vip netip.AddrPort
		outer       netip.Addr
	}{{c4, v4, routerR4}, {c6, v6, routerR6}} {
		fx.run(fx.left, clientTCP(c.client, c.vip, flagSYN, true, 0))
		data := clientTCP(c.client, c.vip, flagACK, true, 1200)
		_, sent := fx.run(fx.left, data)
		f.Add(data, []byte{}, false)
		f.Add(clientTCP(c.client, c.vip, flagACK, false, 1500), []byte{}, false)
		if len(sent) == 1 {
			q := sent[0][ethLen:]
			for _, cut := range []int{len(q), 48, 44, 40, 28, 20} {
				if c.client.Addr().Is4() {
					f.Add(icmpFromHop(c.outer, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, 1100, q[:cut]), []byte{}, true)
					f.Add(icmpFromHop(c.outer, layers.ICMPv4TypeTimeExceeded, 0, 0, q[:cut]), []byte{}, true)
				} else {
					f.Add(icmpFromHop(c.outer, layers.ICMPv6TypePacketTooBig, 0, 1200, q[:cut]), []byte{}, true)
				}
			}
		}
	}
	gso := gsoBuf(macHostL, macRouterL, c4, v4, false, gsoPayload())
	f.Add(gso[headroom:], gso[headroom-port.VnetHdrLen:headroom], false)
	buf := make([]byte, port.BufSize)
	f.Fuzz(func(t *testing.T, frame, vnet []byte, fromTunnel bool) {
		if len(frame) > port.MaxFrame {
			return
		}
		l := fx.left
		if fromTunnel {
			l = fx.right
		}
		clear(buf[:headroom])
		copy(buf[headroom-port.VnetHdrLen:headroom], vnet)
		n := copy(buf[headroom:], frame)
		l.handle(buf[:headroom+n])
		for i := range l.out {
			l.out[i] = l.out[i][:0]
		}
		l.nused = 0
		l.bc = batchCounters{}
	})
}

// TestTunnelSourceReload: a new tunnel_source applies to the next packet, of open flows
// too (the outer header is the rule's, read from the rules in effect).
func TestTunnelSourceReload(t *testing.T) {
	f := newTunFixture(t, 1500)
	client, vip := netip.AddrPortFrom(hostL4, clientPort), netip.AddrPortFrom(vip4, tunPort)
	fr := clientTCP(client, vip, flagSYN, true, 0)
	if _, got := f.run(f.left, fr); len(got) != 1 {
		t.Fatal("SYN not sent")
	} else {
		checkOuter(t, got[0], routerR4, tunServer4, forwarded(fr), true)
	}
	rules := tunRules()
	rules[0].TunnelSource = routerL4
	if err := f.r.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	fr = clientTCP(client, vip, flagACK, true, 100)
	if _, got := f.run(f.left, fr); len(got) != 1 {
		t.Fatal("data not sent")
	} else {
		checkOuter(t, got[0], routerL4, tunServer4, forwarded(fr), true)
	}
}
