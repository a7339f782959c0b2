package router

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/balancer"
	"ulb/router/header"
	"ulb/router/port"
	"ulb/router/port/porttest"
)

// Fragments over porttest links: in transit (IPv6 non-first fragments used to be
// dropped), to the router itself (reassembled and answered), and through a half-NAT
// rule. The frames are built with gopacket, cut into fragments here, and what comes out
// is put back together here and decoded with gopacket.

// fragmentIP cuts the IP packet ip (built whole, checksums final) into fragments whose
// fragmentable parts hold at most size bytes (a multiple of 8), in order.
func fragmentIP(ip []byte, size int, id uint32) [][]byte {
	var out [][]byte
	if ip[0]>>4 == 4 {
		hl := header.IPv4(ip).HeaderLength()
		data := ip[hl:]
		for off := 0; off < len(data); off += size {
			n := min(size, len(data)-off)
			f := append(bytes.Clone(ip[:hl]), data[off:off+n]...)
			v := header.IPv4(f)
			v.SetTotalLength(uint16(len(f)))
			binary.BigEndian.PutUint16(f[4:], uint16(id))
			fo := uint16(off / 8)
			if off+n < len(data) {
				fo |= 0x2000
			}
			binary.BigEndian.PutUint16(f[6:], fo)
			v.SetChecksum(v.CalculateChecksum())
			out = append(out, f)
		}
		return out
	}
	data := ip[header.IPv6MinimumSize:]
	for off := 0; off < len(data); off += size {
		n := min(size, len(data)-off)
		f := make([]byte, header.IPv6MinimumSize+header.IPv6FragmentSize+n)
		copy(f, ip[:header.IPv6MinimumSize])
		header.EncodeIPv6Fragment(f[header.IPv6MinimumSize:], ip[6], off, off+n < len(data), id)
		copy(f[header.IPv6MinimumSize+header.IPv6FragmentSize:], data[off:off+n])
		v := header.IPv6(f)
		v.SetNextHeader(header.ProtocolFragment)
		v.SetPayloadLength(uint16(len(f) - header.IPv6MinimumSize))
		out = append(out, f)
	}
	return out
}

// framed puts an IP packet in an Ethernet frame.
func framed(src, dst net.HardwareAddr, ip []byte) []byte {
	et := header.EtherTypeIPv6
	if ip[0]>>4 == 4 {
		et = header.EtherTypeIPv4
	}
	f := make([]byte, ethLen+len(ip))
	header.EncodeEthernet(f, header.MAC(dst), header.MAC(src), et)
	copy(f[ethLen:], ip)
	return f
}

// ipOf returns the IP packet of a frame, cut at its length field.
func ipOf(frame []byte) []byte {
	ip := frame[ethLen:]
	if ip[0]>>4 == 4 {
		return ip[:header.IPv4(ip).TotalLength()]
	}
	return ip[:header.IPv6MinimumSize+int(header.IPv6(ip).PayloadLength())]
}

// isFragmentOf matches IP fragments (or whole packets) between src and dst.
func isFragmentOf(src, dst netip.Addr) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		if ip, ok := p.NetworkLayer().(*layers.IPv4); ok {
			return netip.AddrFrom4([4]byte(ip.SrcIP.To4())) == src && netip.AddrFrom4([4]byte(ip.DstIP.To4())) == dst
		}
		if ip, ok := p.NetworkLayer().(*layers.IPv6); ok {
			return netip.AddrFrom16([16]byte(ip.SrcIP)) == src && netip.AddrFrom16([16]byte(ip.DstIP)) == dst
		}
		return false
	}
}

// collect receives fragments from src to dst at h until a whole datagram is back, and
// returns it as one unfragmented IP packet, with the fragments as they arrived. A whole
// packet is returned as it is.
func collect(t *testing.T, h *peer, src, dst netip.Addr, mtu int) (whole []byte, frags [][]byte) {
	t.Helper()
	var hdr, data []byte
	var got, total = 0, -1
	for total < 0 || got < total {
		f := ipOf(h.expect(t, "fragment", isFragmentOf(src, dst)).Data())
		if len(f) > mtu {
			t.Fatalf("a packet of %d bytes on a link of MTU %d", len(f), mtu)
		}
		frags = append(frags, bytes.Clone(f))
		var off int
		var more bool
		var payload []byte
		if f[0]>>4 == 4 {
			v := header.IPv4(f)
			if !v.IsChecksumValid() {
				t.Fatal("IPv4 header checksum of a fragment is wrong")
			}
			if !v.IsFragment() {
				return f, frags
			}
			off, more, payload = int(v.FragmentOffset()), v.MoreFragments(), v.Payload()
			if off == 0 {
				hdr = bytes.Clone(f[:v.HeaderLength()])
			}
		} else {
			v := header.IPv6(f)
			at, prev, ok := v.FragmentHeader()
			if !ok {
				return f, frags
			}
			fh := header.IPv6Fragment(f[at:])
			off, more, payload = fh.Offset(), fh.More(), f[at+8:]
			if off == 0 {
				hdr = bytes.Clone(f[:at])
				hdr[prev] = fh.NextHeader()
			}
		}
		if len(data) < off+len(payload) {
			data = append(data, make([]byte, off+len(payload)-len(data))...)
		}
		copy(data[off:], payload)
		got += len(payload)
		if !more {
			total = off + len(payload)
		}
	}
	if hdr == nil {
		t.Fatal("no first fragment")
	}
	whole = append(hdr, data...)
	if whole[0]>>4 == 4 {
		v := header.IPv4(whole)
		v.SetTotalLength(uint16(len(whole)))
		binary.BigEndian.PutUint16(whole[6:], 0)
		v.SetChecksum(v.CalculateChecksum())
	} else {
		header.IPv6(whole).SetPayloadLength(uint16(len(whole) - header.IPv6MinimumSize))
	}
	return whole, frags
}

// udpPacket builds a whole IP packet (no Ethernet) of a UDP datagram.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(ip, u, gopacket.Payload(payload))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(ip, u, gopacket.Payload(payload))
}

// echoPacket builds a whole IP packet of an ICMP echo request with n bytes of data.
func echoPacket(src, dst netip.Addr, id uint16, n int) []byte {
	data := pattern(n)
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		return serialize(ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: 1},
			gopacket.Payload(data))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	return serialize(ip, icmp, &layers.ICMPv6Echo{Identifier: id, SeqNumber: 1}, gopacket.Payload(data))
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + 1)
	}
	return b
}

// checkUDP decodes a whole IP packet with gopacket and checks it is a UDP datagram from
// src to dst carrying payload, with a correct checksum.
func checkUDP(t *testing.T, what string, ip []byte, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	first := layers.LayerTypeIPv6
	var s, d netip.Addr
	if ip[0]>>4 == 4 {
		first = layers.LayerTypeIPv4
		v := header.IPv4(ip)
		s, d = v.SourceAddr(), v.DestinationAddr()
	} else {
		v := header.IPv6(ip)
		s, d = v.SourceAddr(), v.DestinationAddr()
	}
	p := gopacket.NewPacket(ip, first, gopacket.Default)
	u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		t.Fatalf("%s: no UDP datagram: %v", what, p.ErrorLayer())
	}
	if got := netip.AddrPortFrom(s, uint16(u.SrcPort)); got != src {
		t.Errorf("%s: source %s, want %s", what, got, src)
	}
	if got := netip.AddrPortFrom(d, uint16(u.DstPort)); got != dst {
		t.Errorf("%s: destination %s, want %s", what, got, dst)
	}
	if int(u.Length) != 8+len(payload) || !bytes.Equal(u.Payload, payload) {
		t.Errorf("%s: %d bytes of payload (length field %d), want %d", what, len(u.Payload), u.Length, len(payload))
	}
	proto := header.ProtocolUDP
	l4 := ip[len(ip)-8-len(payload):]
	if !header.IsTransportChecksumValid(proto, s, d, l4) {
		t.Errorf("%s: UDP checksum %#04x is wrong", what, u.Checksum)
	}
}

// TestIPv6FragmentsInTransit: the fragments of an IPv6 datagram, the first and the
// others, are forwarded unchanged but for the hop limit (RFC 8200 sections 4 and 4.5);
// IPv4 ones likewise; a fragment larger than the egress link gets packet too big (IPv6)
// as any packet, or is fragmented again (IPv4).
func TestIPv6FragmentsInTransit(t *testing.T) {
	tb := newTestBench(t)
	payload := pattern(3000)
	for _, c := range []struct {
		name     string
		src, dst netip.Addr
	}{{"ipv4", hostL4, hostR4}, {"ipv6", hostL6, hostR6}} {
		orig := udpPacket(netip.AddrPortFrom(c.src, 4000), netip.AddrPortFrom(c.dst, 5000), payload)
		sent := fragmentIP(orig, 1232, 0x1234)
		// Out of order: the last first, the first last.
		for i := len(sent) - 1; i >= 0; i-- {
			tb.left.sendRaw(framed(macHostL, macRouterL, sent[i]))
		}
		whole, got := collect(t, tb.right, c.src, c.dst, 1400)
		if len(got) != len(sent) {
			t.Fatalf("%s: %d fragments arrived, %d sent", c.name, len(got), len(sent))
		}
		for _, g := range got {
			// Each is one of those sent, its hop limit or TTL one less.
			found := false
			for _, s := range sent {
				if len(s) != len(g) {
					continue
				}
				w := bytes.Clone(s)
				if c.src.Is4() {
					header.IPv4(w).DecTTL()
				} else {
					header.IPv6(w).DecHopLimit()
				}
				found = found || bytes.Equal(w, g)
			}
			if !found {
				t.Errorf("%s: a fragment arrived changed: %x", c.name, g[:48])
			}
		}
		checkUDP(t, c.name, whole, netip.AddrPortFrom(c.src, 4000), netip.AddrPortFrom(c.dst, 5000), payload)
	}
	// IPv4 fragments larger than the right link (MTU 1400) are fragmented again (RFC 791
	// section 3.2: offsets and MF kept), and the datagram still reassembles.
	orig := udpPacket(netip.AddrPortFrom(hostL4, 4001), netip.AddrPortFrom(hostR4, 5001), payload)
	for _, f := range fragmentIP(orig, 1480, 0x4321) {
		tb.left.sendRaw(framed(macHostL, macRouterL, f))
	}
	whole, got := collect(t, tb.right, hostL4, hostR4, 1400)
	if len(got) <= 3 {
		t.Errorf("%d IPv4 fragments on the 1400-byte link, want more than the 3 sent", len(got))
	}
	checkUDP(t, "ipv4 refragmented", whole, netip.AddrPortFrom(hostL4, 4001), netip.AddrPortFrom(hostR4, 5001), payload)
	// A non-first IPv6 fragment too big for the right link (MTU 1400): packet too big.
	big := fragmentIP(udpPacket(netip.AddrPortFrom(hostL6, 4000), netip.AddrPortFrom(hostR6, 5000), pattern(2900)), 1448, 9)
	tb.left.sendRaw(framed(macHostL, macRouterL, big[1]))
	p := tb.left.expect(t, "packet too big", isICMPv6(layers.ICMPv6TypePacketTooBig, 0))
	if mtu := binary.BigEndian.Uint32(p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).Contents[4:8]); mtu != 1400 {
		t.Errorf("packet too big says MTU %d, want 1400", mtu)
	}
	if n := tb.r.ports()[0].counters.Drops[DropIPv6Header].Load(); n != 0 {
		t.Errorf("%d fragments dropped as bad IPv6 headers", n)
	}
}

// TestFragmentedEchoToRouter: a fragmented echo request to the router is reassembled and
// answered (RFC 1122 section 3.3.2, RFC 8200 section 4.5): 560 bytes in two IPv4
// fragments, 1400 in two IPv6 fragments, in and out of order; a 3000-byte request gets
// its reply fragmented by the router.
func TestFragmentedEchoToRouter(t *testing.T) {
	tb := newTestBench(t)
	cases := []struct {
		name     string
		src, dst netip.Addr
		n, size  int
		reverse  bool
	}{
		{"ipv4-560", hostL4, routerL4, 560 - 28, 296, false},
		{"ipv4-560-reversed", hostL4, routerL4, 560 - 28, 296, true},
		{"ipv6-1400", hostL6, routerL6, 1400, 720, false},
		{"ipv6-1400-reversed", hostL6, routerL6, 1400, 720, true},
		{"ipv4-3000", hostL4, routerL4, 3000, 1480, false},
		{"ipv6-3000", hostL6, routerL6, 3000, 1448, false},
		{"ipv6-to-far-address", hostL6, routerR6, 1400, 720, true},
	}
	for i, c := range cases {
		id := uint16(100 + i)
		frags := fragmentIP(echoPacket(c.src, c.dst, id, c.n), c.size, uint32(1000+i))
		if len(frags) < 2 {
			t.Fatalf("%s: %d fragments", c.name, len(frags))
		}
		for j := range frags {
			if c.reverse {
				j = len(frags) - 1 - j
			}
			tb.left.sendRaw(framed(macHostL, macRouterL, frags[j]))
		}
		reply, _ := collect(t, tb.left, c.dst, c.src, 1500)
		var p gopacket.Packet
		if c.src.Is4() {
			p = gopacket.NewPacket(reply, layers.LayerTypeIPv4, gopacket.Default)
			ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if !ok || ic.TypeCode.Type() != layers.ICMPv4TypeEchoReply || ic.Id != id || !bytes.Equal(ic.Payload, pattern(c.n)) {
				t.Fatalf("%s: not the echo reply: %v", c.name, p)
			}
			if header.Checksum(reply[20:], 0) != 0xffff {
				t.Errorf("%s: ICMP checksum wrong", c.name)
			}
		} else {
			p = gopacket.NewPacket(reply, layers.LayerTypeIPv6, gopacket.Default)
			ic, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
			if !ok || p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).TypeCode.Type() != layers.ICMPv6TypeEchoReply ||
				ic.Identifier != id || !bytes.Equal(reply[48:], pattern(c.n)) {
				t.Fatalf("%s: not the echo reply: %v", c.name, p)
			}
			if !header.IsTransportChecksumValid(header.ProtocolICMPv6, c.dst, c.src, reply[40:]) {
				t.Errorf("%s: ICMPv6 checksum wrong", c.name)
			}
		}
	}
	if st := tb.r.ReassemblyStats(); st.Reassembled != uint64(len(cases)) || st.InProgress != 0 {
		t.Errorf("reassembly stats %+v", st)
	}
}

// TestAtomicFragmentEcho: an IPv6 atomic fragment (offset 0, M clear) is a whole packet
// (RFC 6946 section 4): answered without reassembly.
func TestAtomicFragmentEcho(t *testing.T) {
	tb := newTestBench(t)
	whole := echoPacket(hostL6, routerL6, 55, 100)
	atomic := fragmentIP(whole, 2000, 77)[0]
	if fh := header.IPv6Fragment(atomic[40:]); !fh.IsAtomic() {
		t.Fatal("not an atomic fragment")
	}
	tb.left.sendRaw(framed(macHostL, macRouterL, atomic))
	tb.left.expect(t, "echo reply", isICMPv6(layers.ICMPv6TypeEchoReply, 0))
	if st := tb.r.ReassemblyStats(); st.Fragments != 0 {
		t.Errorf("the atomic fragment went to reassembly: %+v", st)
	}
}

// TestReassemblyErrors: the ICMPv6 parameter problems of RFC 8200 section 4.5 (codes 0
// and 3), silence on overlaps (RFC 5722), each counted.
func TestReassemblyErrors(t *testing.T) {
	tb := newTestBench(t)
	frags := fragmentIP(echoPacket(hostL6, routerL6, 1, 1400), 720, 5)
	// M set and 716 bytes: not a multiple of 8.
	bad := bytes.Clone(frags[0][:len(frags[0])-4])
	header.IPv6(bad).SetPayloadLength(uint16(len(bad) - 40))
	tb.left.sendRaw(framed(macHostL, macRouterL, bad))
	p := tb.left.expect(t, "parameter problem", isICMPv6(layers.ICMPv6TypeParameterProblem, 0))
	if ptr := binary.BigEndian.Uint32(p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).Contents[4:8]); ptr != 4 {
		t.Errorf("pointer %d, want 4 (payload length)", ptr)
	}
	// A fragment whose end is past 65535 bytes of payload: pointer at the offset field.
	far := bytes.Clone(frags[1])
	binary.BigEndian.PutUint16(far[42:], uint16(65000)&^7)
	tb.left.sendRaw(framed(macHostL, macRouterL, far))
	p = tb.left.expect(t, "parameter problem", isICMPv6(layers.ICMPv6TypeParameterProblem, 0))
	if ptr := binary.BigEndian.Uint32(p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).Contents[4:8]); ptr != 42 {
		t.Errorf("pointer %d, want 42 (fragment offset)", ptr)
	}
	// A first fragment cut inside its TCP header: parameter problem, code 3 (RFC 8200
	// section 4.5, RFC 7112).
	cut := make([]byte, 48+16)
	header.EncodeIPv6(cut, header.IPv6Fields{PayloadLength: 24, NextHeader: header.ProtocolFragment, HopLimit: 64, Src: hostL6, Dst: routerL6})
	header.EncodeIPv6Fragment(cut[40:], header.ProtocolTCP, 0, true, 77)
	tb.left.sendRaw(framed(macHostL, macRouterL, cut))
	p = tb.left.expect(t, "parameter problem, incomplete chain", isICMPv6(layers.ICMPv6TypeParameterProblem, 3))
	if ptr := binary.BigEndian.Uint32(p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).Contents[4:8]); ptr != 0 {
		t.Errorf("pointer %d, want 0", ptr)
	}
	// Overlap: the first fragment, then one starting inside it: no reply, ever.
	ov := fragmentIP(echoPacket(hostL6, routerL6, 2, 1400), 720, 6)
	shifted := bytes.Clone(ov[1])
	binary.BigEndian.PutUint16(shifted[42:], binary.BigEndian.Uint16(shifted[42:])-8)
	tb.left.sendRaw(framed(macHostL, macRouterL, ov[0]))
	tb.left.sendRaw(framed(macHostL, macRouterL, shifted))
	tb.left.sendRaw(framed(macHostL, macRouterL, ov[1]))
	tb.left.expectNone(t, "reply to overlapping fragments", func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		return ok && (ic.TypeCode.Type() < 128 || ic.TypeCode.Type() == layers.ICMPv6TypeEchoReply)
	})
	st := tb.r.ReassemblyStats()
	if st.Overlaps != 1 || st.Discarded != 1 || st.OverLimit != 2 || st.Malformed != 1 {
		t.Errorf("reassembly stats %+v", st)
	}
	if n := tb.r.ports()[0].counters.Drops[DropReassembly].Load(); n != 5 {
		t.Errorf("%d reassembly drops, want 5", n)
	}
}

// TestReassemblyTimeExceeded: on a manual clock, an incomplete datagram whose first
// fragment arrived gets ICMP time exceeded, code 1, after 60 s (RFC 792, RFC 8200
// section 4.5); one without its first fragment expires silently.
func TestReassemblyTimeExceeded(t *testing.T) {
	clock := &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1400)
	r, err := New(Config{Now: clock.now, TickInterval: 10 * time.Millisecond, Ports: []PortConfig{
		{Name: "left", Port: rl, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
		{Name: "right", Port: rr, Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	left := newPeer(hl, macHostL, hostL4, hostL6)
	runBench(t, r, left, newPeer(hr, macHostR), hl, hr)
	for _, c := range []struct {
		src, dst netip.Addr
		size     int
		match    func(gopacket.Packet) bool
	}{
		{hostL4, routerL4, 296, isICMPv4(layers.ICMPv4TypeTimeExceeded, layers.ICMPv4CodeFragmentReassemblyTimeExceeded)},
		{hostL6, routerL6, 720, isICMPv6(layers.ICMPv6TypeTimeExceeded, layers.ICMPv6CodeFragmentReassemblyTimeExceeded)},
	} {
		frags := fragmentIP(echoPacket(c.src, c.dst, 3, 1400), c.size, 8)
		left.sendRaw(framed(macHostL, macRouterL, frags[0]))
		// Another datagram without its first fragment.
		others := fragmentIP(echoPacket(c.src, c.dst, 4, 1400), c.size, 9)
		left.sendRaw(framed(macHostL, macRouterL, others[1]))
		deadline := time.Now().Add(3 * time.Second)
		for r.ReassemblyStats().InProgress != 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		clock.advance(59 * time.Second)
		left.expectNone(t, "time exceeded before the timeout", c.match)
		clock.advance(time.Second)
		p := left.expect(t, "time exceeded", c.match)
		// It quotes the first fragment.
		var quote []byte
		if c.src.Is4() {
			quote = p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).Payload
		} else {
			quote = p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).Payload[4:]
		}
		if n := min(len(quote), 28); !bytes.Equal(quote[:n], frags[0][:n]) {
			t.Errorf("quote %x, want the first fragment %x", quote[:n], frags[0][:n])
		}
		left.expectNone(t, "a second time exceeded", c.match)
		if st := r.ReassemblyStats(); st.InProgress != 0 {
			t.Errorf("stats after timeout %+v", st)
		}
	}
	if st := r.ReassemblyStats(); st.Timeouts != 4 {
		t.Errorf("timeouts %d, want 4", st.Timeouts)
	}
}

// runBench runs r with two peers until the test ends.
func runBench(t *testing.T, r *Router, left, right *peer, hl, hr *porttest.Port) {
	var wg sync.WaitGroup
	wg.Add(2)
	go left.run(&wg)
	go right.run(&wg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		hl.Close()
		hr.Close()
		wg.Wait()
	})
}

// TestFragmentsThroughBalancer: a fragmented UDP datagram from a client to a VIP
// arrives at the server reassemblable, addressed as the rule's topology says (half-NAT:
// to the server, from the client; full-NAT: from a proxy source; DSR: unchanged), its
// checksum right; the server's fragmented answer reaches the client from the VIP
// (half-NAT, full-NAT). Both families, fragments in order and out of order: after the
// first one, the others follow its flow; before it, they wait for it (releaseEarly).
func TestFragmentsThroughBalancer(t *testing.T) {
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1500)
	const sport = 53
	vport := func(c lbCase) uint16 { return 5300 + uint16(c.topo) }
	var rules []balancer.RuleConfig
	for _, c := range lbCases {
		rc := balancer.RuleConfig{Name: c.name, VIP: c.vip(), PortLo: vport(c), PortHi: vport(c), Proto: balancer.ProtoUDP,
			Algorithm: balancer.RoundRobin, PMask: balancer.NoPersistence, Topology: c.topo, Enabled: true,
			Servers: []balancer.ServerConfig{{Addr: c.server(), Port: sport, Weight: 1}}}
		switch c.topo {
		case balancer.FullNAT:
			rc.ProxySource = []netip.Addr{c.proxy()}
		case balancer.DSR:
			rc.Servers[0].Port = 0
		}
		rules = append(rules, rc)
	}
	r, err := New(Config{Rules: rules, Ports: []PortConfig{
		{Name: "left", Port: rl, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
		{Name: "right", Port: rr, Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:2::1/64")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{hostL4, hostL6} {
		r.ports()[0].neigh.AddStatic(a, header.MAC(macHostL))
	}
	for _, a := range []netip.Addr{hostR4, hostR6} {
		r.ports()[1].neigh.AddStatic(a, header.MAC(macHostR))
	}
	left, right := newPeer(hl, macHostL), newPeer(hr, macHostR)
	runBench(t, r, left, right, hl, hr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reassembly %+v", r.ReassemblyStats())
			for _, rp := range r.ports() {
				for d := range numDropReasons {
					if n := rp.counters.Drops[d].Load(); n != 0 {
						t.Logf("port %s: %s: %d", rp.cfg.Name, d, n)
					}
				}
			}
		}
	})
	i := 0
	for _, c := range lbCases {
		for _, order := range [][]int{{0, 1, 2}, {0, 2, 1}, {2, 1, 0}} {
			i++
			name := fmt.Sprintf("%s/order-%d%d%d", c.name, order[0], order[1], order[2])
			client := netip.AddrPortFrom(c.client(), uint16(41000+i))
			vip := netip.AddrPortFrom(c.vip(), vport(c))
			payload := pattern(4000 + i)
			frags := fragmentIP(udpPacket(client, vip, payload), pick(c.v6, 1480, 1448), uint32(500+i))
			for _, j := range order {
				left.sendRaw(framed(macHostL, macRouterL, frags[j]))
			}
			// What the server sees.
			from, to := client, netip.AddrPortFrom(c.server(), sport)
			switch c.topo {
			case balancer.FullNAT:
				from = netip.AddrPortFrom(c.proxy(), 0) // the proxy port is the pool's
			case balancer.DSR:
				to = vip
			}
			whole, got := collect(t, right, from.Addr(), to.Addr(), 1500)
			if len(got) != len(frags) {
				t.Fatalf("%s: %d fragments at the server, %d sent", name, len(got), len(frags))
			}
			if c.topo == balancer.FullNAT {
				p := gopacket.NewPacket(whole, pick(c.v6, layers.LayerTypeIPv4, layers.LayerTypeIPv6), gopacket.Default)
				if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
					from = netip.AddrPortFrom(from.Addr(), uint16(u.SrcPort))
				}
			}
			checkUDP(t, name+" at the server", whole, from, to, payload)
			if c.topo == balancer.DSR {
				continue // the server answers the client directly
			}
			// The server answers with a fragmented datagram.
			answer := pattern(3100 + i)
			frags = fragmentIP(udpPacket(to, from, answer), 1232, uint32(900+i))
			// The first fragment first (it opens the way), the others reversed.
			right.sendRaw(framed(macHostR, macRouterR, frags[0]))
			for j := len(frags) - 1; j > 0; j-- {
				right.sendRaw(framed(macHostR, macRouterR, frags[j]))
			}
			whole, _ = collect(t, left, vip.Addr(), client.Addr(), 1500)
			checkUDP(t, name+" at the client", whole, vip, client, answer)
		}
	}
	// The fragments that overtook their first one waited in the reassembly, and left
	// it with their first one: none is left, none was reassembled.
	if st := r.ReassemblyStats(); st.Fragments != uint64(2*len(lbCases)) || st.InProgress != 0 || st.Reassembled != 0 {
		t.Errorf("reassembly stats %+v", st)
	}
}

// TestTransitFragmentsAllocateNothing: forwarding fragments in transit, first and
// others, costs no allocation, as any forwarded packet.
func TestTransitFragmentsAllocateNothing(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		l, _ := loopFixture(t, v6)
		src, dst := pick(v6, hostL4, hostL6), pick(v6, hostR4, hostR6)
		frags := fragmentIP(udpPacket(netip.AddrPortFrom(src, 1), netip.AddrPortFrom(dst, 2), pattern(2000)), 1232, 3)
		buf := make([]byte, port.BufSize)
		for i, fr := range frags {
			frame := framed(macHostL, macRouterL, fr)
			allocs := testing.AllocsPerRun(1000, func() {
				copy(buf[headroom:], frame)
				l.handle(buf[:headroom+len(frame)])
				if len(l.out[1]) != 1 {
					t.Fatalf("v6=%v: fragment %d not forwarded", v6, i)
				}
				l.out[1] = l.out[1][:0]
			})
			if allocs != 0 {
				t.Errorf("v6=%v: fragment %d: %v allocations", v6, i, allocs)
			}
		}
	}
}
