package router

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
	"ulb/router/port"
)

// withOptions returns frame, an Ethernet frame of an IPv4 packet without options, with
// opts as its header's options, padded with end-of-list octets to a multiple of 4, and
// its lengths and header checksum fixed (the transport checksum does not cover them).
func withOptions(frame, opts []byte) []byte {
	n := (len(opts) + 3) &^ 3
	frame = frame[:14+header.IPv4(frame[14:]).TotalLength()] // no Ethernet padding
	out := make([]byte, 0, len(frame)+n)
	out = append(out, frame[:14+20]...)
	out = append(out, opts...)
	out = append(out, make([]byte, n-len(opts))...)
	out = append(out, frame[14+20:]...)
	ip := header.IPv4(out[14:])
	ip[0] = 0x40 | byte((20+n)/4)
	ip.SetTotalLength(uint16(len(out) - 14))
	ip.SetChecksum(ip.CalculateChecksum())
	return out
}

// echo4 is an ICMP echo request frame from the left host to dst with the IPv4 options opts.
func echo4(dst netip.Addr, opts []byte) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: hostL4.AsSlice(), DstIP: dst.AsSlice()}
	f := serialize(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}, gopacket.Payload("ping"))
	return withOptions(f, opts)
}

// ip4Options returns the option area of a received frame's IPv4 header, checking its
// checksums, and gopacket's decoding of it.
func ip4Options(t *testing.T, p gopacket.Packet) ([]byte, []layers.IPv4Option) {
	t.Helper()
	ip := checkIPv4(t, p.Data())
	gp, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		t.Fatalf("gopacket does not decode the IPv4 header: %v", p.ErrorLayer())
	}
	return ip[20:ip.HeaderLength()], gp.Options
}

// waitDrops waits for the left port's drop counter of reason to reach want.
func waitDrops(t *testing.T, tb *testBench, reason DropReason, want uint64) {
	t.Helper()
	c := &tb.r.ports()[0].counters
	for deadline := time.Now().Add(2 * time.Second); c.Drops[reason].Load() < want && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.Drops[reason].Load(); got != want {
		t.Errorf("drops[%s] = %d, want %d", reason, got, want)
	}
}

func msOfDay(t time.Time) uint32 { return timestamp(t) }

// checkStamp checks a timestamp against the window in which the router took it.
func checkStamp(t *testing.T, what string, ts, lo, hi uint32) {
	t.Helper()
	if lo <= hi && (ts < lo || ts > hi) {
		t.Errorf("%s: timestamp %d ms, want within [%d, %d]", what, ts, lo, hi)
	}
}

func TestRecordRouteTransit(t *testing.T) {
	tb := newTestBench(t)
	// Three slots: the first already used by the sender (10.0.0.1), room for two more.
	rr := []byte{header.IPv4OptionNOP, header.IPv4OptionRecordRoute, 15, 8, 10, 0, 0, 1, 15: 0}
	tb.left.sendRaw(withOptions(udp4(hostL4, hostR4, 64, 0, []byte("rr")), rr))
	pkt := tb.right.expect(t, "forwarded with record route", isUDPTo(hostR4))
	opts, gp := ip4Options(t, pkt)
	want := []byte{header.IPv4OptionNOP, header.IPv4OptionRecordRoute, 15, 12, 10, 0, 0, 1, 198, 51, 100, 1, 0, 0, 0, 0}
	if !bytes.Equal(opts, want) {
		t.Errorf("options % x, want % x", opts, want)
	}
	if len(gp) < 2 || gp[1].OptionType != header.IPv4OptionRecordRoute || !bytes.Equal(gp[1].OptionData[1:9], []byte{10, 0, 0, 1, 198, 51, 100, 1}) {
		t.Errorf("gopacket reads the options as %+v", gp)
	}
	if ttl := header.IPv4(pkt.Data()[14:]).TTL(); ttl != 63 {
		t.Errorf("TTL %d, want 63", ttl)
	}
	// A full route is forwarded unchanged (RFC 791).
	full := []byte{header.IPv4OptionRecordRoute, 7, 8, 10, 0, 0, 1, header.IPv4OptionEOL}
	tb.left.sendRaw(withOptions(udp4(hostL4, hostR4, 64, 0, []byte("full")), full))
	pkt = tb.right.expect(t, "forwarded with a full record route", isUDPTo(hostR4))
	if opts, _ := ip4Options(t, pkt); !bytes.Equal(opts, full) {
		t.Errorf("full record route changed: % x, want % x", opts, full)
	}
}

func TestRecordRouteFragmented(t *testing.T) {
	tb := newTestBench(t)
	// Record Route is not copied into the fragments after the first (RFC 791).
	rr := []byte{header.IPv4OptionRecordRoute, 7, 4, 0, 0, 0, 0, header.IPv4OptionEOL}
	tb.left.sendRaw(withOptions(udp4(hostL4, hostR4, 64, 0, make([]byte, 1450)), rr))
	for seen := 0; seen < 2; {
		pkt := tb.right.expect(t, "fragment", func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeIPv4) != nil })
		ip := checkIPv4(t, pkt.Data())
		opts := ip[20:ip.HeaderLength()]
		switch ip.FragmentOffset() {
		case 0:
			if want := []byte{header.IPv4OptionRecordRoute, 7, 8, 198, 51, 100, 1, 0}; !bytes.Equal(opts, want) {
				t.Errorf("first fragment's options % x, want % x", opts, want)
			}
		default:
			if len(opts) != 0 {
				t.Errorf("later fragment carries options % x", opts)
			}
		}
		seen++
	}
}

func TestTimestampTransit(t *testing.T) {
	tb := newTestBench(t)
	ts := func(ptr, flags byte, slots int, data ...byte) []byte {
		o := []byte{header.IPv4OptionTimestamp, byte(4 + slots), ptr, flags}
		o = append(o, data...)
		return append(o, make([]byte, 4+slots-len(o))...)
	}
	cases := []struct {
		name string
		opt  []byte
		// check verifies the forwarded option; lo and hi bound the router's clock.
		check func(t *testing.T, o []byte, lo, hi uint32)
	}{
		{"timestamps only", ts(5, 0, 8), func(t *testing.T, o []byte, lo, hi uint32) {
			if o[2] != 9 || o[3] != 0 {
				t.Errorf("pointer %d flags %#x, want 9, 0", o[2], o[3])
			}
			checkStamp(t, "flag 0", binary.BigEndian.Uint32(o[4:]), lo, hi)
		}},
		{"addresses and timestamps", ts(5, 1, 16), func(t *testing.T, o []byte, lo, hi uint32) {
			if o[2] != 13 || netip.AddrFrom4([4]byte(o[4:8])) != routerR4 {
				t.Errorf("pointer %d address %v, want 13, %v", o[2], netip.AddrFrom4([4]byte(o[4:8])), routerR4)
			}
			checkStamp(t, "flag 1", binary.BigEndian.Uint32(o[8:]), lo, hi)
		}},
		{"prespecified, ours first", ts(5, 3, 16, 198, 51, 100, 1, 0, 0, 0, 0, 203, 0, 113, 77), func(t *testing.T, o []byte, lo, hi uint32) {
			if o[2] != 13 {
				t.Errorf("pointer %d, want 13", o[2])
			}
			checkStamp(t, "flag 3", binary.BigEndian.Uint32(o[8:]), lo, hi)
			if !bytes.Equal(o[12:], []byte{203, 0, 113, 77, 0, 0, 0, 0}) {
				t.Errorf("the next slot changed: % x", o[12:])
			}
		}},
		{"prespecified, another first", ts(5, 3, 8, 203, 0, 113, 77), func(t *testing.T, o []byte, lo, hi uint32) {
			if want := ts(5, 3, 8, 203, 0, 113, 77); !bytes.Equal(o, want) {
				t.Errorf("option % x, want it unchanged % x", o, want)
			}
		}},
		{"full: overflow counted", ts(13, 0x20, 8, 0, 0, 0, 1, 0, 0, 0, 2), func(t *testing.T, o []byte, lo, hi uint32) {
			if o[3] != 0x30 || o[2] != 13 {
				t.Errorf("pointer %d overflow/flags %#x, want 13, 0x30", o[2], o[3])
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lo := msOfDay(time.Now())
			tb.left.sendRaw(withOptions(udp4(hostL4, hostR4, 64, 0, []byte(tc.name)), tc.opt))
			pkt := tb.right.expect(t, "forwarded with a timestamp", func(p gopacket.Packet) bool {
				a := p.ApplicationLayer()
				return a != nil && isUDPTo(hostR4)(p) && string(a.Payload()) == tc.name
			})
			hi := msOfDay(time.Now())
			opts, gp := ip4Options(t, pkt)
			if len(gp) == 0 || gp[0].OptionType != header.IPv4OptionTimestamp {
				t.Fatalf("gopacket reads the options as %+v", gp)
			}
			tc.check(t, opts[:len(tc.opt)], lo, hi)
		})
	}
}

func TestEchoReplyOptions(t *testing.T) {
	tb := newTestBench(t)
	// RFC 1122 §3.2.2.6: the reply carries the request's options, updated with this hop.
	rr := []byte{header.IPv4OptionRecordRoute, 11, 8, 192, 0, 2, 2, 0, 0, 0, 0, header.IPv4OptionEOL}
	tb.left.sendRaw(echo4(routerR4, rr))
	pkt := tb.left.expect(t, "echo reply with record route", isICMPv4(layers.ICMPv4TypeEchoReply, 0))
	opts, _ := ip4Options(t, pkt)
	if want := []byte{header.IPv4OptionRecordRoute, 11, 12, 192, 0, 2, 2, 198, 51, 100, 1, 0}; !bytes.Equal(opts, want) {
		t.Errorf("reply options % x, want % x", opts, want)
	}
	if ip := header.IPv4(pkt.Data()[14:]); ip.SourceAddr() != routerR4 || ip.DestinationAddr() != hostL4 {
		t.Errorf("reply %s -> %s", ip.SourceAddr(), ip.DestinationAddr())
	}
	lo := msOfDay(time.Now())
	tb.left.sendRaw(echo4(routerL4, []byte{header.IPv4OptionTimestamp, 12, 5, 1, 11: 0}))
	pkt = tb.left.expect(t, "echo reply with timestamp", isICMPv4(layers.ICMPv4TypeEchoReply, 0))
	opts, _ = ip4Options(t, pkt)
	if opts[2] != 13 || netip.AddrFrom4([4]byte(opts[4:8])) != routerL4 {
		t.Errorf("reply timestamp option % x: want pointer 13 and %v", opts, routerL4)
	}
	checkStamp(t, "echo reply", binary.BigEndian.Uint32(opts[8:]), lo, msOfDay(time.Now()))
}

func TestMalformedOptions(t *testing.T) {
	tb := newTestBench(t)
	cases := []struct {
		name string
		opts []byte
		ptr  uint8 // offset in the IP header of the octet the error points at
	}{
		{"length 0", []byte{0x88, 0, 0, 0}, 21},
		{"length 1", []byte{header.IPv4OptionNOP, 0x88, 1, 0}, 22},
		{"length past the header", []byte{0x88, 9, 0, 0}, 21},
		{"type without length", []byte{header.IPv4OptionNOP, header.IPv4OptionNOP, header.IPv4OptionNOP, 0x88}, 23},
		{"record route pointer 3", []byte{header.IPv4OptionRecordRoute, 7, 3, 0, 0, 0, 0, 0}, 22},
		{"record route length 2", []byte{header.IPv4OptionRecordRoute, 2, 0, 0}, 21},
		{"record route no room at pointer", []byte{header.IPv4OptionRecordRoute, 9, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 22},
		{"timestamp pointer 4", []byte{header.IPv4OptionTimestamp, 8, 4, 0, 0, 0, 0, 0}, 22},
		{"timestamp flag 2", []byte{header.IPv4OptionTimestamp, 12, 5, 2, 0, 0, 0, 0, 0, 0, 0, 0}, 23},
		{"timestamp overflow overflows", []byte{header.IPv4OptionTimestamp, 8, 9, 0xf0, 0, 0, 0, 1}, 23},
		{"timestamp flag 1 with half a slot", []byte{header.IPv4OptionTimestamp, 8, 5, 1, 0, 0, 0, 0}, 22},
		{"router alert length 3", []byte{header.IPv4OptionRouterAlert, 3, 0, 0}, 21},
		{"second record route", []byte{header.IPv4OptionRecordRoute, 3, 4, header.IPv4OptionRecordRoute, 3, 4, 0, 0}, 23},
		{"bad length after a good option", []byte{header.IPv4OptionRouterAlert, 4, 0, 0, 0x44, 40, 5, 0}, 25},
	}
	n := uint64(0)
	for _, tc := range cases {
		for _, dst := range []netip.Addr{hostR4, routerL4, routerR4} {
			frame := withOptions(udp4(hostL4, dst, 64, 0, []byte(tc.name)), tc.opts)
			tb.left.sendRaw(frame)
			n++
			pkt := tb.left.expect(t, tc.name+" to "+dst.String(), isICMPv4(layers.ICMPv4TypeParameterProblem, 0))
			ip := checkIPv4(t, pkt.Data())
			icmp := header.ICMPv4(ip.Payload())
			if got := uint8(icmp.Rest() >> 24); got != tc.ptr {
				t.Errorf("%s to %s: pointer %d, want %d", tc.name, dst, got, tc.ptr)
			}
			// The quote holds the offending header unchanged (RFC 1812 §4.3.3.5) and 8
			// octets of data at least (RFC 1812 §4.3.2.3: as much as fits).
			orig := frame[14:]
			if q := icmp.Payload(); len(q) != len(orig) || !bytes.Equal(q, orig) {
				t.Errorf("%s to %s: quote % x, want % x", tc.name, dst, q, orig)
			}
			if ip.SourceAddr() != routerL4 || ip.DestinationAddr() != hostL4 {
				t.Errorf("%s: error %s -> %s", tc.name, ip.SourceAddr(), ip.DestinationAddr())
			}
		}
	}
	tb.right.expectNone(t, "a packet with malformed options forwarded", isUDPTo(hostR4))
	waitDrops(t, tb, DropIPv4Options, n)
}

func TestSourceRouteDropped(t *testing.T) {
	tb := newTestBench(t)
	lsrr := func(ptr byte) []byte {
		return []byte{header.IPv4OptionNOP, header.IPv4OptionLSRR, 11, ptr, 198, 51, 100, 2, 203, 0, 113, 5}
	}
	ssrr := []byte{header.IPv4OptionNOP, header.IPv4OptionSSRR, 7, 4, 198, 51, 100, 2}
	// Unfinished routes through the router: never answered as if it were the destination.
	tb.left.sendRaw(echo4(routerL4, lsrr(4)))
	tb.left.sendRaw(echo4(routerL4, ssrr))
	tb.left.sendRaw(withOptions(udp4(hostL4, routerL4, 64, 0, []byte("closed")), lsrr(8)))
	tb.left.expectNone(t, "an answer to a source-routed packet", func(p gopacket.Packet) bool {
		return isICMPv4(layers.ICMPv4TypeEchoReply, 0)(p) || isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)(p)
	})
	// In transit, unfinished or finished.
	tb.left.sendRaw(withOptions(udp4(hostL4, hostR4, 64, 0, []byte("lsrr")), lsrr(8)))
	tb.left.sendRaw(withOptions(udp4(hostL4, hostR4, 64, 0, []byte("done")), lsrr(12)))
	tb.left.sendRaw(withOptions(udp4(hostL4, hostR4, 64, 0, []byte("ssrr")), ssrr))
	tb.right.expectNone(t, "a source-routed packet forwarded", isUDPTo(hostR4))
	waitDrops(t, tb, DropSourceRoute, 6)
	// The same packets without the option go through.
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, 0, []byte("plain")))
	tb.right.expect(t, "plain packet", isUDPTo(hostR4))
}

// echo6 is an ICMPv6 echo request from src to dst with the extension headers ext (whose
// chain ends with next header 58) after the fixed header of next header nh; final is
// the destination the ICMPv6 checksum covers.
func echo6(src, dst, final netip.Addr, nh uint8, ext []byte) []byte {
	icmp := make([]byte, 8+4)
	icmp[0] = header.ICMPv6EchoRequest
	binary.BigEndian.PutUint16(icmp[4:], 9)
	copy(icmp[8:], "ping")
	header.SetTransportChecksum(header.ProtocolICMPv6, src, final, icmp)
	f := make([]byte, 14+40+len(ext)+len(icmp))
	e := header.Ethernet(f)
	e.SetDestination(header.MAC(macRouterL))
	e.SetSource(header.MAC(macHostL))
	e.SetEtherType(header.EtherTypeIPv6)
	header.EncodeIPv6(f[14:], header.IPv6Fields{PayloadLength: uint16(len(ext) + len(icmp)), NextHeader: nh, HopLimit: 64, Src: src, Dst: dst})
	copy(f[54:], ext)
	copy(f[54+len(ext):], icmp)
	return f
}

// rh0 is a type 0 routing header (RFC 2460 §4.4) with segments left and addresses.
func rh0(next uint8, left uint8, addrs ...netip.Addr) []byte {
	h := []byte{next, byte(2 * len(addrs)), 0, left, 0, 0, 0, 0}
	for _, a := range addrs {
		h = append(h, a.AsSlice()...)
	}
	return h
}

func TestRoutingHeader0(t *testing.T) {
	tb := newTestBench(t)
	isPP := isICMPv6(layers.ICMPv6TypeParameterProblem, 0)
	// Segments left 1, addressed to the router: not executed (RFC 5095 §3).
	frame := echo6(hostL6, routerL6, hostR6, header.ProtocolRouting, rh0(header.ProtocolICMPv6, 1, hostR6))
	tb.left.sendRaw(frame)
	pkt := tb.left.expect(t, "parameter problem", isPP)
	v6 := header.IPv6(pkt.Data()[14:])
	icmp := header.ICMPv6(v6.Payload())
	if icmp.Rest() != 42 {
		t.Errorf("pointer %d, want 42 (the routing type)", icmp.Rest())
	}
	if !bytes.Equal(icmp.Payload(), frame[14:]) {
		t.Errorf("quote % x, want % x", icmp.Payload(), frame[14:])
	}
	if v6.SourceAddr() != routerL6 || !header.IsTransportChecksumValid(header.ProtocolICMPv6, v6.SourceAddr(), v6.DestinationAddr(), v6.Payload()) {
		t.Errorf("bad parameter problem from %s", v6.SourceAddr())
	}
	tb.right.expectNone(t, "the routing header executed", func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeICMPv6Echo) != nil })
	// Behind a destination options header, the pointer still names the routing type.
	dopt := []byte{header.ProtocolRouting, 0, 1, 4, 0, 0, 0, 0} // PadN
	tb.left.sendRaw(echo6(hostL6, routerL6, hostR6, header.ProtocolDstOpts, append(dopt, rh0(header.ProtocolICMPv6, 1, hostR6)...)))
	pkt = tb.left.expect(t, "parameter problem behind options", isPP)
	if p := header.ICMPv6(header.IPv6(pkt.Data()[14:]).Payload()).Rest(); p != 50 {
		t.Errorf("pointer %d, want 50", p)
	}
	// Segments left 0: the header is ignored and the echo answered.
	tb.left.sendRaw(echo6(hostL6, routerL6, routerL6, header.ProtocolRouting, rh0(header.ProtocolICMPv6, 0, hostR6)))
	tb.left.expect(t, "echo reply", isICMPv6(layers.ICMPv6TypeEchoReply, 0))
	// In transit the routing header is not the router's: forwarded as it is.
	frame = echo6(hostL6, hostR6, hostL6, header.ProtocolRouting, rh0(header.ProtocolICMPv6, 1, hostL6))
	tb.left.sendRaw(frame)
	pkt = tb.right.expect(t, "forwarded", func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeIPv6Routing) != nil })
	if got := pkt.Data()[14+40:]; !bytes.Equal(got, frame[14+40:]) {
		t.Errorf("forwarded payload changed: % x", got)
	}
	waitDrops(t, tb, DropIPv6Routing, 2)
}

func TestProtocolUnreachable(t *testing.T) {
	tb := newTestBench(t)
	raw4 := func(proto layers.IPProtocol) []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: hostL4.AsSlice(), DstIP: routerL4.AsSlice()}
		return serialize(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip, gopacket.Payload("0123456789"))
	}
	gre := raw4(layers.IPProtocolGRE)
	gre = gre[:14+header.IPv4(gre[14:]).TotalLength()]
	tb.left.sendRaw(gre)
	pkt := tb.left.expect(t, "protocol unreachable", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeProtocol))
	if q := header.ICMPv4(checkIPv4(t, pkt.Data()).Payload()).Payload(); !bytes.Equal(q, gre[14:]) {
		t.Errorf("quote % x, want % x", q, gre[14:])
	}
	// VRRP is the router's own protocol: no error, whatever the address.
	tb.left.sendRaw(raw4(layers.IPProtocol(header.ProtocolVRRP)))
	tb.left.expectNone(t, "protocol unreachable for VRRP", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeProtocol))

	raw6 := func(nh uint8, ext []byte) []byte {
		f := make([]byte, 14+40+len(ext)+10)
		e := header.Ethernet(f)
		e.SetDestination(header.MAC(macRouterL))
		e.SetSource(header.MAC(macHostL))
		e.SetEtherType(header.EtherTypeIPv6)
		header.EncodeIPv6(f[14:], header.IPv6Fields{PayloadLength: uint16(len(ext) + 10), NextHeader: nh, HopLimit: 64, Src: hostL6, Dst: routerL6})
		copy(f[54:], ext)
		return f
	}
	isPP1 := isICMPv6(layers.ICMPv6TypeParameterProblem, 1)
	for _, tc := range []struct {
		name  string
		frame []byte
		ptr   uint32
	}{
		{"GRE", raw6(47, nil), 6},
		{"GRE after destination options", raw6(header.ProtocolDstOpts, []byte{47, 0, 1, 4, 0, 0, 0, 0}), 40},
		{"GRE after hop-by-hop and destination options", raw6(header.ProtocolHopByHop,
			[]byte{header.ProtocolDstOpts, 0, 1, 4, 0, 0, 0, 0, 47, 0, 1, 4, 0, 0, 0, 0}), 48},
	} {
		tb.left.sendRaw(tc.frame)
		pkt := tb.left.expect(t, tc.name, isPP1)
		icmp := header.ICMPv6(header.IPv6(pkt.Data()[14:]).Payload())
		if icmp.Rest() != tc.ptr {
			t.Errorf("%s: pointer %d, want %d", tc.name, icmp.Rest(), tc.ptr)
		}
		if !bytes.Equal(icmp.Payload(), tc.frame[14:]) {
			t.Errorf("%s: quote % x", tc.name, icmp.Payload())
		}
	}
	// No next header and VRRP: dropped silently; a first fragment waits in the
	// reassembly for the rest (the datagram, not the fragment, is judged).
	tb.left.sendRaw(raw6(header.ProtocolNoNext, nil))
	tb.left.sendRaw(raw6(header.ProtocolFragment, []byte{47, 0, 0, 1, 0, 0, 0, 1}))
	tb.left.sendRaw(raw6(header.ProtocolVRRP, nil))
	tb.left.expectNone(t, "parameter problem for no next header, a fragment or VRRP", isPP1)
	waitDrops(t, tb, DropLocalUnhandled, 7)
	// The protocols the router handles still get answers.
	tb.left.sendRaw(udp4(hostL4, routerL4, 64, 0, []byte("closed")))
	tb.left.expect(t, "port unreachable", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort))
}

func TestLinkLocalSourceBeyondScope(t *testing.T) {
	tb := newTestBench(t)
	ll := netip.MustParseAddr("fe80::2")
	// The router knows the host's link-local address on the left link only.
	tb.r.ports()[0].neigh.AddStatic(ll, header.MAC(macHostL))
	tb.left.sendRaw(udp6(ll, hostR6, 64, []byte("scope")))
	pkt := tb.left.expect(t, "beyond scope of source address", isICMPv6(layers.ICMPv6TypeDestinationUnreachable, header.ICMPv6BeyondScope))
	e := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(e.SrcMAC, macRouterL) || !bytes.Equal(e.DstMAC, macHostL) {
		t.Errorf("error sent %s -> %s, want %s -> %s", e.SrcMAC, e.DstMAC, macRouterL, macHostL)
	}
	v6 := header.IPv6(pkt.Data()[14:])
	if want := header.LinkLocalFromMAC(header.MAC(macRouterL)); v6.SourceAddr() != want || v6.DestinationAddr() != ll {
		t.Errorf("error %s -> %s, want %s -> %s", v6.SourceAddr(), v6.DestinationAddr(), want, ll)
	}
	if !header.IsTransportChecksumValid(header.ProtocolICMPv6, v6.SourceAddr(), v6.DestinationAddr(), v6.Payload()) {
		t.Error("bad ICMPv6 checksum")
	}
	tb.right.expectNone(t, "a link-local source forwarded", isUDPTo(hostR6))
	waitDrops(t, tb, DropLinkLocal, 1)
}

func TestClassESourceDropped(t *testing.T) {
	tb := newTestBench(t)
	for _, src := range []string{"240.0.0.1", "255.255.255.254", "255.255.255.255", "0.1.2.3", "127.0.0.1", "224.0.0.5"} {
		tb.left.sendRaw(udp4(netip.MustParseAddr(src), hostR4, 64, 0, []byte("martian")))
	}
	tb.right.expectNone(t, "a martian source forwarded", isUDPTo(hostR4))
	tb.left.expectNone(t, "an error about a martian", func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeICMPv4) != nil })
	waitDrops(t, tb, DropIPv4Source, 6)
}

func TestForwardWithOptionsAllocatesNothing(t *testing.T) {
	l, frame := loopFixture(t, false)
	frame = withOptions(frame, []byte{header.IPv4OptionRecordRoute, 39, 4, 38: 0})
	buf := make([]byte, port.BufSize)
	allocs := testing.AllocsPerRun(100, func() {
		copy(buf[headroom:], frame)
		l.handle(buf[:headroom+len(frame)])
		if len(l.out[1]) != 1 {
			t.Fatal("frame not forwarded")
		}
		l.out[1] = l.out[1][:0]
	})
	if allocs != 0 {
		t.Errorf("%v allocations per forwarded packet with options", allocs)
	}
}

// FuzzHandleOptions runs frames with arbitrary IPv4 options through the classifier, in
// transit and to the router: nothing panics, and what the router sends (the packet
// forwarded, an error, an echo reply) has a right header checksum.
func FuzzHandleOptions(f *testing.F) {
	f.Add([]byte{header.IPv4OptionRecordRoute, 7, 4, 0, 0, 0, 0}, false)
	f.Add([]byte{header.IPv4OptionTimestamp, 12, 5, 1, 11: 0}, true)
	f.Add([]byte{header.IPv4OptionLSRR, 7, 4, 198, 51, 100, 2}, true)
	f.Add([]byte{0x88, 9, 0, 0}, false)
	l, _ := loopFixture(f, false)
	l.r.ports()[0].neigh.AddStatic(hostL4, header.MAC(macHostL)) // errors and replies go out too
	buf := make([]byte, port.BufSize)
	f.Fuzz(func(t *testing.T, opts []byte, local bool) {
		if len(opts) > 40 {
			return
		}
		var frame []byte
		if local {
			frame = withOptions(echo4(routerL4, nil), opts)
		} else {
			frame = withOptions(udp4(hostL4, hostR4, 64, 0, []byte("fuzz")), opts)
		}
		clear(buf[:headroom])
		n := copy(buf[headroom:], frame)
		l.handle(buf[:headroom+n])
		for i := range l.out {
			for _, b := range l.out[i] {
				if ip := header.IPv4(b[headroom+14:]); !ip.IsValid() || !ip.IsChecksumValid() {
					t.Fatalf("sent a bad IPv4 header: % x", b[headroom+14:])
				}
			}
			l.out[i] = l.out[i][:0]
		}
		l.nused = 0
		l.bc = batchCounters{}
	})
}

// FuzzHandleIPv6Ext runs IPv6 packets with arbitrary extension headers, to the router
// and in transit, through the classifier: nothing panics, and every ICMPv6 message the
// router sends has a right checksum and points inside the packet it quotes.
func FuzzHandleIPv6Ext(f *testing.F) {
	f.Add(header.ProtocolRouting, rh0(header.ProtocolICMPv6, 1, hostR6), true)
	f.Add(header.ProtocolRouting, rh0(header.ProtocolICMPv6, 0, hostR6), true)
	f.Add(header.ProtocolDstOpts, append([]byte{header.ProtocolRouting, 0, 1, 4, 0, 0, 0, 0}, rh0(47, 2, hostR6)...), false)
	f.Add(header.ProtocolHopByHop, []byte{47, 0, 1, 4, 0, 0, 0, 0}, true)
	f.Add(uint8(47), []byte{}, true)
	f.Add(header.ProtocolFragment, []byte{47, 0, 0, 1, 0, 0, 0, 1}, true)
	l, _ := loopFixture(f, true)
	l.r.ports()[0].neigh.AddStatic(hostL6, header.MAC(macHostL))
	buf := make([]byte, port.BufSize)
	f.Fuzz(func(t *testing.T, nh uint8, ext []byte, local bool) {
		if len(ext) > 512 {
			return
		}
		dst := hostR6
		if local {
			dst = netip.MustParseAddr("2001:db8:1::1")
		}
		frame := echo6(hostL6, dst, dst, nh, ext)
		clear(buf[:headroom])
		n := copy(buf[headroom:], frame)
		l.handle(buf[:headroom+n])
		for i := range l.out {
			for _, b := range l.out[i] {
				v6 := header.IPv6(b[headroom+14:])
				if !v6.IsValid() || v6.NextHeader() != header.ProtocolICMPv6 || v6.SourceAddr() == hostL6 {
					continue // the packet forwarded
				}
				icmp := header.ICMPv6(v6.Payload())
				if !header.IsTransportChecksumValid(header.ProtocolICMPv6, v6.SourceAddr(), v6.DestinationAddr(), v6.Payload()) {
					t.Fatalf("ICMPv6 with a bad checksum: % x", v6)
				}
				if icmp.Type() == header.ICMPv6ParamProblem && int(icmp.Rest()) >= len(frame)-14 {
					t.Fatalf("parameter problem points at %d, past the %d-byte packet", icmp.Rest(), len(frame)-14)
				}
			}
			l.out[i] = l.out[i][:0]
		}
		l.nused = 0
		l.bc = batchCounters{}
	})
}
