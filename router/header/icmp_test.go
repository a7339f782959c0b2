package header

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// refICMPv6Checksum is an independent checksum of an ICMPv6 message: gopacket's, by
// serializing the decoded layers again.
func refICMPv6Checksum(t *testing.T, pkt []byte) uint16 {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv6, gopacket.Default)
	icmp, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if !ok {
		t.Fatalf("gopacket finds no ICMPv6: %v", p)
	}
	icmp.SetNetworkLayerForChecksum(p.NetworkLayer())
	b := serialize(t, icmp, gopacket.Payload(icmp.Payload))
	return binary.BigEndian.Uint16(b[2:])
}

func echoV4(t *testing.T, dst netip.Addr, flags layers.IPv4Flag, fragOff uint16) []byte {
	return serialize(t, &layers.IPv4{Version: 4, TTL: 3, Flags: flags, FragOffset: fragOff, Protocol: layers.IPProtocolICMPv4,
		SrcIP: ipOf(v4A), DstIP: ipOf(dst)},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x1234, Seq: 9},
		gopacket.Payload("ping payload"))
}

func TestICMPv4EchoReplyInPlace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dst, src netip.Addr
		wantSrc  netip.Addr
	}{
		{"unicast", v4B, netip.Addr{}, v4B},
		{"broadcast with given source", netip.MustParseAddr("198.51.100.255"), v4C, v4C},
	} {
		b := echoV4(t, tc.dst, 0, 0)
		icmp := ICMPv4(IPv4(b).Payload())
		if !icmp.IsValid() || icmp.Type() != ICMPv4Echo || icmp.Code() != 0 || icmp.Ident() != 0x1234 || icmp.Sequence() != 9 ||
			string(icmp.Payload()) != "ping payload" || icmp.IsError() {
			t.Fatalf("%s: request fields %d/%d id %#x seq %d", tc.name, icmp.Type(), icmp.Code(), icmp.Ident(), icmp.Sequence())
		}
		if icmp.CalculateChecksum() != icmp.Checksum() {
			t.Fatalf("%s: CalculateChecksum %#x, gopacket %#x", tc.name, icmp.CalculateChecksum(), icmp.Checksum())
		}
		if !EchoReplyIPv4InPlace(IPv4(b), tc.src) {
			t.Fatalf("%s: EchoReplyIPv4InPlace refused", tc.name)
		}
		p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		g := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if addrOf(ip.SrcIP) != tc.wantSrc || addrOf(ip.DstIP) != v4A || ip.TTL != DefaultTTL ||
			g.TypeCode.Type() != layers.ICMPv4TypeEchoReply || g.Id != 0x1234 || g.Seq != 9 {
			t.Errorf("%s: reply %v>%v ttl %d %v", tc.name, ip.SrcIP, ip.DstIP, ip.TTL, g.TypeCode)
		}
		v := IPv4(b)
		if v.Checksum() != v.CalculateChecksum() || ICMPv4(v.Payload()).Checksum() != ICMPv4(v.Payload()).CalculateChecksum() {
			t.Errorf("%s: checksums not updated", tc.name)
		}
	}
	for _, tc := range []struct {
		name string
		b    []byte
		src  netip.Addr
	}{
		{"fragment", echoV4(t, v4B, layers.IPv4MoreFragments, 0), netip.Addr{}},
		{"later fragment", echoV4(t, v4B, 0, 10), netip.Addr{}},
		{"already a reply", func() []byte { b := echoV4(t, v4B, 0, 0); EchoReplyIPv4InPlace(IPv4(b), netip.Addr{}); return b }(), netip.Addr{}},
		{"IPv6 source", echoV4(t, v4B, 0, 0), v6A},
		{"truncated", echoV4(t, v4B, 0, 0)[:25], netip.Addr{}},
	} {
		before := append([]byte(nil), tc.b...)
		if EchoReplyIPv4InPlace(IPv4(tc.b), tc.src) || !bytes.Equal(before, tc.b) {
			t.Errorf("%s: turned into a reply", tc.name)
		}
	}
}

func TestBuildICMPv4Error(t *testing.T) {
	orig := serialize(t, &layers.IPv4{Version: 4, TTL: 1, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP,
		SrcIP: ipOf(v4A), DstIP: ipOf(v4B)}, gopacket.Payload(bytes.Repeat([]byte{0xab}, 1400)))
	b := make([]byte, 2000)
	n := BuildICMPv4Error(b, v4C, v4A, ICMPv4DstUnreachable, ICMPv4FragmentationNeeded, 1280, orig)
	if n != ICMPv4MaxErrorSize {
		t.Fatalf("length %d, want %d", n, ICMPv4MaxErrorSize)
	}
	v := IPv4(b[:n])
	if !v.IsValid() || !v.IsChecksumValid() || int(v.TotalLength()) != n {
		t.Fatal("error's IPv4 header invalid")
	}
	p := gopacket.NewPacket(b[:n], layers.LayerTypeIPv4, gopacket.Default)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	g, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || addrOf(ip.SrcIP) != v4C || addrOf(ip.DstIP) != v4A || ip.Protocol != layers.IPProtocolICMPv4 ||
		g.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded) ||
		g.Seq != 1280 {
		t.Fatalf("gopacket decodes %v", p)
	}
	icmp := ICMPv4(v.Payload())
	if icmp.MTU() != 1280 || !icmp.IsError() || icmp.CalculateChecksum() != icmp.Checksum() || refChecksum(icmp, 0) != 0xffff {
		t.Errorf("MTU %d checksum %#x", icmp.MTU(), icmp.Checksum())
	}
	if !bytes.Equal(icmp.Payload(), orig[:548]) {
		t.Error("quote is not the first 548 bytes of the offending packet")
	}

	// A short offending packet with link-layer padding is quoted up to its total length,
	// and may sit in the output buffer itself.
	small := serialize(t, &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolTCP, SrcIP: ipOf(v4A), DstIP: ipOf(v4B)},
		gopacket.Payload(make([]byte, 20)))
	buf := make([]byte, 600)
	copy(buf, small)
	copy(buf[len(small):], "padding")
	n = BuildICMPv4Error(buf, v4C, v4A, ICMPv4TimeExceeded, ICMPv4TTLExceeded, 0, buf[:len(small)+7])
	if n != 28+len(small) || !bytes.Equal(buf[28:n], small) {
		t.Errorf("overlapping build: length %d, quote %x", n, buf[28:n])
	}
	if ic := ICMPv4(IPv4(buf[:n]).Payload()); ic.Type() != ICMPv4TimeExceeded || ic.CalculateChecksum() != ic.Checksum() {
		t.Error("time exceeded header")
	}

	// A small output buffer bounds the quote; too small or wrong families build nothing.
	if n := BuildICMPv4Error(make([]byte, 40), v4C, v4A, 3, 1, 0, orig); n != 40 {
		t.Errorf("bounded build: %d", n)
	}
	if BuildICMPv4Error(make([]byte, 27), v4C, v4A, 3, 1, 0, orig) != 0 || BuildICMPv4Error(b, v6A, v4A, 3, 1, 0, orig) != 0 {
		t.Error("built into 27 bytes or from an IPv6 source")
	}
}

func TestShouldSendICMPv4Error(t *testing.T) {
	mk := func(src, dst netip.Addr, proto layers.IPProtocol, fragOff uint16, payload []byte) IPv4 {
		return IPv4(serialize(t, &layers.IPv4{Version: 4, TTL: 1, FragOffset: fragOff, Protocol: proto,
			SrcIP: ipOf(src), DstIP: ipOf(dst)}, gopacket.Payload(payload)))
	}
	errMsg := []byte{3, 1, 0, 0, 0, 0, 0, 0}
	echo := []byte{8, 0, 0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		name string
		p    IPv4
		want bool
	}{
		{"udp", mk(v4A, v4B, layers.IPProtocolUDP, 0, make([]byte, 8)), true},
		{"echo", mk(v4A, v4B, layers.IPProtocolICMPv4, 0, echo), true},
		{"icmp error", mk(v4A, v4B, layers.IPProtocolICMPv4, 0, errMsg), false},
		{"truncated icmp", mk(v4A, v4B, layers.IPProtocolICMPv4, 0, echo[:4]), false},
		{"later fragment", mk(v4A, v4B, layers.IPProtocolUDP, 3, make([]byte, 8)), false},
		{"multicast destination", mk(v4A, netip.MustParseAddr("224.0.0.18"), layers.IPProtocolUDP, 0, make([]byte, 8)), false},
		{"broadcast destination", mk(v4A, netip.MustParseAddr("255.255.255.255"), layers.IPProtocolUDP, 0, make([]byte, 8)), false},
		{"unspecified source", mk(netip.MustParseAddr("0.0.0.0"), v4B, layers.IPProtocolUDP, 0, make([]byte, 8)), false},
		{"loopback source", mk(netip.MustParseAddr("127.0.0.1"), v4B, layers.IPProtocolUDP, 0, make([]byte, 8)), false},
	} {
		if got := ShouldSendICMPv4Error(tc.p); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func echoV6(t *testing.T, dst netip.Addr) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 2, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(v6A), DstIP: ipOf(dst)}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, icmp, &layers.ICMPv6Echo{Identifier: 0x4321, SeqNumber: 77}, gopacket.Payload("ping6"))
}

func TestICMPv6EchoReplyInPlace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dst, src netip.Addr
		wantSrc  netip.Addr
	}{
		{"unicast", v6B, netip.Addr{}, v6B},
		{"multicast with given source", netip.MustParseAddr("ff02::1"), v6C, v6C},
	} {
		b := echoV6(t, tc.dst)
		icmp := ICMPv6(IPv6(b).Payload())
		if !icmp.IsValid() || icmp.Type() != ICMPv6EchoRequest || icmp.Ident() != 0x4321 || icmp.Sequence() != 77 || icmp.IsError() {
			t.Fatalf("%s: request fields", tc.name)
		}
		if icmp.CalculateChecksum(v6A, tc.dst) != icmp.Checksum() {
			t.Fatalf("%s: CalculateChecksum %#x, gopacket %#x", tc.name, icmp.CalculateChecksum(v6A, tc.dst), icmp.Checksum())
		}
		if !EchoReplyIPv6InPlace(IPv6(b), tc.src) {
			t.Fatalf("%s: refused", tc.name)
		}
		p := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		g := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		e := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
		if addrOf(ip.SrcIP) != tc.wantSrc || addrOf(ip.DstIP) != v6A || ip.HopLimit != DefaultTTL ||
			g.TypeCode.Type() != layers.ICMPv6TypeEchoReply || e.Identifier != 0x4321 || e.SeqNumber != 77 {
			t.Errorf("%s: reply %v>%v hl %d %v", tc.name, ip.SrcIP, ip.DstIP, ip.HopLimit, g.TypeCode)
		}
		if got, want := icmp.Checksum(), refICMPv6Checksum(t, b); got != want {
			t.Errorf("%s: incremental checksum %#x, gopacket computes %#x", tc.name, got, want)
		}
	}
	withExt, _ := ipv6WithChain([]uint8{ProtocolDstOpts}, []int{0})
	for _, tc := range []struct {
		name string
		b    []byte
		src  netip.Addr
	}{
		{"reply", func() []byte { b := echoV6(t, v6B); EchoReplyIPv6InPlace(IPv6(b), netip.Addr{}); return b }(), netip.Addr{}},
		{"IPv4 source", echoV6(t, v6B), v4A},
		{"extension header", withExt, netip.Addr{}},
		{"truncated", echoV6(t, v6B)[:45], netip.Addr{}},
	} {
		before := append([]byte(nil), tc.b...)
		if EchoReplyIPv6InPlace(IPv6(tc.b), tc.src) || !bytes.Equal(before, tc.b) {
			t.Errorf("%s: turned into a reply", tc.name)
		}
	}
}

func TestBuildICMPv6Error(t *testing.T) {
	ip := &layers.IPv6{Version: 6, HopLimit: 1, NextHeader: layers.IPProtocolUDP, SrcIP: ipOf(v6A), DstIP: ipOf(v6B)}
	orig := serialize(t, ip, gopacket.Payload(bytes.Repeat([]byte{0xcd}, 1460)))
	b := make([]byte, 2000)
	n := BuildICMPv6Error(b, v6C, v6A, ICMPv6PacketTooBig, 0, 1400, orig)
	if n != ICMPv6MaxErrorSize {
		t.Fatalf("length %d", n)
	}
	v := IPv6(b[:n])
	icmp := ICMPv6(v.Payload())
	if !v.IsValid() || v.SourceAddr() != v6C || v.DestinationAddr() != v6A || v.NextHeader() != ProtocolICMPv6 ||
		icmp.Type() != ICMPv6PacketTooBig || icmp.MTU() != 1400 || !icmp.IsError() || !bytes.Equal(icmp.Payload(), orig[:1232]) {
		t.Fatalf("packet too big: %x", b[:56])
	}
	if got, want := icmp.Checksum(), refICMPv6Checksum(t, b[:n]); got != want {
		t.Errorf("checksum %#x, gopacket %#x", got, want)
	}
	small := echoV6(t, v6B)
	n = BuildICMPv6Error(b, v6B, v6A, ICMPv6DstUnreachable, ICMPv6PortUnreachable, 0, append(small, 1, 2, 3))
	if n != 48+len(small) || !bytes.Equal(b[48:n], small) {
		t.Errorf("small quote: length %d", n)
	}
	if !IsTransportChecksumValid(ProtocolICMPv6, v6B, v6A, b[40:n]) {
		t.Error("checksum invalid")
	}
	if BuildICMPv6Error(make([]byte, 47), v6C, v6A, 1, 0, 0, orig) != 0 || BuildICMPv6Error(b, v4A, v6A, 1, 0, 0, orig) != 0 {
		t.Error("built into 47 bytes or from an IPv4 source")
	}
}

func TestShouldSendICMPv6Error(t *testing.T) {
	mk := func(src, dst netip.Addr, next layers.IPProtocol, payload []byte) IPv6 {
		return IPv6(serialize(t, &layers.IPv6{Version: 6, HopLimit: 1, NextHeader: next, SrcIP: ipOf(src), DstIP: ipOf(dst)},
			gopacket.Payload(payload)))
	}
	mc := netip.MustParseAddr("ff05::2")
	errMsg := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	echo := []byte{128, 0, 0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		name      string
		p         IPv6
		typ, code uint8
		want      bool
	}{
		{"udp", mk(v6A, v6B, layers.IPProtocolUDP, make([]byte, 8)), ICMPv6TimeExceeded, 0, true},
		{"echo", mk(v6A, v6B, layers.IPProtocolICMPv6, echo), ICMPv6DstUnreachable, 0, true},
		{"error", mk(v6A, v6B, layers.IPProtocolICMPv6, errMsg), ICMPv6DstUnreachable, 0, false},
		{"multicast, time exceeded", mk(v6A, mc, layers.IPProtocolUDP, make([]byte, 8)), ICMPv6TimeExceeded, 0, false},
		{"multicast, too big", mk(v6A, mc, layers.IPProtocolUDP, make([]byte, 8)), ICMPv6PacketTooBig, 0, true},
		{"multicast, param problem 2", mk(v6A, mc, layers.IPProtocolUDP, make([]byte, 8)), ICMPv6ParamProblem, 2, true},
		{"unspecified source", mk(netip.IPv6Unspecified(), v6B, layers.IPProtocolUDP, make([]byte, 8)), ICMPv6TimeExceeded, 0, false},
		{"multicast source", mk(mc, v6B, layers.IPProtocolUDP, make([]byte, 8)), ICMPv6TimeExceeded, 0, false},
	} {
		if got := ShouldSendICMPv6Error(tc.p, tc.typ, tc.code); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBuildNDPDecodedByGopacket(t *testing.T) {
	b := make([]byte, 100)
	n := BuildNDPNeighborSolicit(b, v6A, netip.Addr{}, v6B, macA)
	if n != NDPNeighborSolicitPacketSize {
		t.Fatalf("NS length %d", n)
	}
	p := gopacket.NewPacket(b[:n], layers.LayerTypeIPv6, gopacket.Default)
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ns, ok := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	if !ok || addrOf(ip.DstIP) != SolicitedNodeAddr(v6B) || ip.HopLimit != 255 || addrOf(ns.TargetAddress) != v6B ||
		len(ns.Options) != 1 || ns.Options[0].Type != layers.ICMPv6OptSourceAddress || !bytes.Equal(ns.Options[0].Data, macA[:]) {
		t.Fatalf("NS decodes as %v", p)
	}
	if got, want := ICMPv6(b[40:n]).Checksum(), refICMPv6Checksum(t, b[:n]); got != want {
		t.Errorf("NS checksum %#x, gopacket %#x", got, want)
	}
	view := NDPNeighborSolicit(b[40:n])
	if m, ok := view.Options().SourceLinkLayerAddress(); !view.IsValid() || view.TargetAddress() != v6B || !ok || m != macA {
		t.Errorf("NS view: target %v sll %v %v", view.TargetAddress(), m, ok)
	}

	// DAD: unspecified source, no option.
	n = BuildNDPNeighborSolicit(b, netip.IPv6Unspecified(), netip.Addr{}, v6B, macA)
	if n != 64 || !IsTransportChecksumValid(ProtocolICMPv6, netip.IPv6Unspecified(), SolicitedNodeAddr(v6B), b[40:n]) {
		t.Errorf("DAD NS length %d", n)
	}

	allNodes := netip.MustParseAddr("ff02::1")
	n = BuildNDPNeighborAdvert(b, v6B, allNodes, v6B, NDPNARouterFlag|NDPNAOverrideFlag, macB)
	p = gopacket.NewPacket(b[:n], layers.LayerTypeIPv6, gopacket.Default)
	na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if n != 72 || !ok || !na.Router() || na.Solicited() || !na.Override() || addrOf(na.TargetAddress) != v6B ||
		len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, macB[:]) {
		t.Fatalf("NA decodes as %v", p)
	}
	if got, want := ICMPv6(b[40:n]).Checksum(), refICMPv6Checksum(t, b[:n]); got != want {
		t.Errorf("NA checksum %#x, gopacket %#x", got, want)
	}
	nav := NDPNeighborAdvert(b[40:n])
	if !nav.IsValid() || !nav.RouterFlag() || nav.SolicitedFlag() || !nav.OverrideFlag() || nav.TargetAddress() != v6B ||
		nav.Flags() != NDPNARouterFlag|NDPNAOverrideFlag {
		t.Error("NA view flags")
	}
	nav.SetRouterFlag(false)
	nav.SetSolicitedFlag(true)
	nav.SetOverrideFlag(false)
	nav.SetTargetAddress(v6C)
	if nav.Flags() != NDPNASolicitedFlag || nav.TargetAddress() != v6C {
		t.Errorf("NA setters: flags %#x target %v", nav.Flags(), nav.TargetAddress())
	}
	if m, ok := nav.Options().TargetLinkLayerAddress(); !ok || m != macB {
		t.Errorf("NA target link-layer address %v %v", m, ok)
	}

	n = BuildNDPRouterSolicit(b, LinkLocalFromMAC(macA), macA)
	p = gopacket.NewPacket(b[:n], layers.LayerTypeIPv6, gopacket.Default)
	rs, ok := p.Layer(layers.LayerTypeICMPv6RouterSolicitation).(*layers.ICMPv6RouterSolicitation)
	if n != 56 || !ok || len(rs.Options) != 1 || !bytes.Equal(rs.Options[0].Data, macA[:]) {
		t.Fatalf("RS decodes as %v", p)
	}
	if m, ok := NDPRouterSolicit(b[40:n]).Options().SourceLinkLayerAddress(); !ok || m != macA {
		t.Error("RS view")
	}

	for _, bad := range []int{
		BuildNDPNeighborSolicit(make([]byte, 71), v6A, netip.Addr{}, v6B, macA),
		BuildNDPNeighborSolicit(b, v4A, netip.Addr{}, v6B, macA),
		BuildNDPNeighborAdvert(make([]byte, 71), v6A, allNodes, v6B, 0, macA),
		BuildNDPNeighborAdvert(b, v6A, v4B, v6B, 0, macA),
		BuildNDPRouterSolicit(make([]byte, 55), v6A, macA),
		BuildNDPRouterSolicit(b, v4A, macA),
	} {
		if bad != 0 {
			t.Error("NDP builder wrote into a short buffer or with a wrong family")
		}
	}
}

func TestNDPRouterAdvertFromGopacket(t *testing.T) {
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: ipOf(LinkLocalFromMAC(macB)), DstIP: net.ParseIP("ff02::1")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeRouterAdvertisement, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	mtu := []byte{0, 0, 0, 0, 0x05, 0xdc}
	b := serialize(t, ip, icmp, &layers.ICMPv6RouterAdvertisement{HopLimit: 64, Flags: 0xc0, RouterLifetime: 1800,
		ReachableTime: 30000, RetransTimer: 1000, Options: layers.ICMPv6Options{
			{Type: layers.ICMPv6OptMTU, Data: mtu},
			{Type: layers.ICMPv6OptSourceAddress, Data: macB[:]},
		}})
	ra := NDPRouterAdvert(IPv6(b).Payload())
	if !ra.IsValid() || ra.CurHopLimit() != 64 || !ra.ManagedFlag() || !ra.OtherFlag() || ra.Flags() != 0xc0 ||
		ra.RouterLifetime() != 1800 || ra.ReachableTime() != 30000 || ra.RetransTimer() != 1000 {
		t.Fatalf("RA fields: %d %#x %d %d %d", ra.CurHopLimit(), ra.Flags(), ra.RouterLifetime(), ra.ReachableTime(), ra.RetransTimer())
	}
	// gopacket may reorder the options: collect them by type.
	it := ra.Options().Iter()
	got := map[uint8][]byte{}
	for n := 0; n < 10; n++ {
		o, ok := it.Next()
		if !ok {
			break
		}
		got[o.Type] = o.Data
	}
	if len(got) != 2 || !bytes.Equal(got[NDPOptionMTU], mtu) || !bytes.Equal(got[NDPOptionSourceLinkLayerAddress], macB[:]) ||
		it.Err() != nil || ra.Options().Validate() != nil {
		t.Errorf("RA options: %v err %v", got, it.Err())
	}
	if m, ok := ra.Options().SourceLinkLayerAddress(); !ok || m != macB {
		t.Errorf("RA source link-layer address %v %v", m, ok)
	}
	if !IsTransportChecksumValid(ProtocolICMPv6, LinkLocalFromMAC(macB), netip.MustParseAddr("ff02::1"), ICMPv6(IPv6(b).Payload())) {
		t.Error("gopacket's RA checksum not valid for us")
	}
}

func TestNDPOptions(t *testing.T) {
	sll := []byte{1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}
	for _, tc := range []struct {
		name  string
		opts  []byte
		types []uint8
		err   error
	}{
		{"empty", nil, nil, nil},
		{"one", sll, []uint8{1}, nil},
		{"two", append(append([]byte(nil), sll...), 5, 1, 0, 0, 0, 0, 5, 0xdc), []uint8{1, 5}, nil},
		{"zero length", []byte{1, 0, 0, 0, 0, 0, 0, 0}, nil, ErrNDPOptionZeroLength},
		{"zero length after good", append(append([]byte(nil), sll...), 2, 0), []uint8{1}, ErrNDPOptionZeroLength},
		{"past end", []byte{3, 4, 0, 0, 0, 0, 0, 0}, nil, ErrOptionTruncated},
		{"one byte", []byte{1}, nil, ErrOptionTruncated},
	} {
		it := NDPOptions(tc.opts).Iter()
		var types []uint8
		for n := 0; n < 100; n++ {
			o, ok := it.Next()
			if !ok {
				break
			}
			if len(o.Data)%8 != 6 {
				t.Errorf("%s: data length %d", tc.name, len(o.Data))
			}
			types = append(types, o.Type)
		}
		if !bytes.Equal(types, tc.types) || !errors.Is(it.Err(), tc.err) || !errors.Is(NDPOptions(tc.opts).Validate(), tc.err) {
			t.Errorf("%s: types %v err %v, want %v %v", tc.name, types, it.Err(), tc.types, tc.err)
		}
	}
	if _, ok := NDPOptions([]byte{2, 1, 1, 2, 3, 4, 5, 6}).SourceLinkLayerAddress(); ok {
		t.Error("target option taken for a source option")
	}
	if _, ok := NDPOptions([]byte{1, 0, 1, 2, 3, 4, 5, 6}).SourceLinkLayerAddress(); ok {
		t.Error("zero-length option accepted")
	}
	if PutNDPLinkLayerOption(make([]byte, 7), 1, macA) != 0 {
		t.Error("PutNDPLinkLayerOption wrote into 7 bytes")
	}
}

func TestBuildersNoAllocs(t *testing.T) {
	b := make([]byte, 1600)
	orig := echoV4(t, v4B, 0, 0)
	origV6 := echoV6(t, v6B)
	req := echoV4(t, v4B, 0, 0)
	req6 := echoV6(t, v6B)
	n := testing.AllocsPerRun(50, func() {
		BuildICMPv4Error(b, v4C, v4A, 11, 0, 0, orig)
		BuildICMPv6Error(b, v6C, v6A, 3, 0, 0, origV6)
		BuildNDPNeighborSolicit(b, v6A, netip.Addr{}, v6B, macA)
		BuildNDPNeighborAdvert(b, v6A, v6B, v6A, NDPNASolicitedFlag, macA)
		BuildARPRequest(b, macA, v4A, v4B)
		EchoReplyIPv4InPlace(IPv4(req), netip.Addr{})
		EchoReplyIPv6InPlace(IPv6(req6), netip.Addr{})
		_, _ = NDPOptions(b[64:72]).SourceLinkLayerAddress()
	})
	if n != 0 {
		t.Errorf("builders allocate %v times per run", n)
	}
}
