package router

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
	"ulb/router/port"
	"ulb/router/port/porttest"
	"ulb/vrrp"
)

// Tests of the RFC 1812 / RFC 4861 rules about broadcasts and redirects, driven
// through one receive loop of a router that is not running: each frame is handed to
// loop.handle and what it queued on the ports is decoded with gopacket.

var (
	macGwL     = net.HardwareAddr{0x02, 0, 0, 0, 1, 3}
	gwL4       = netip.MustParseAddr("192.0.2.3")     // a second router on the left link
	onlinkL4   = netip.MustParseAddr("192.0.2.4")     // another host on the left link
	hairpin4   = netip.MustParseAddr("203.0.113.130") // behind gwL4
	gwL6LL     = netip.MustParseAddr("fe80::3")       // gwL4's IPv6 link-local
	gwL6       = netip.MustParseAddr("2001:db8:1::3") // the same router, by its global address
	onlinkL6   = netip.MustParseAddr("2001:db8:1::4")
	hairpin6   = netip.MustParseAddr("2001:db8:ff::9") // via fe80::3
	hairpin6g  = netip.MustParseAddr("2001:db8:fe::9") // via 2001:db8:1::3
	offlink4   = netip.MustParseAddr("203.0.113.77")
	bcastMAC   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcastMAC4  = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}
	mcastMAC6  = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
	routerLLL  = header.LinkLocalFromMAC(header.MAC(macRouterL))
	vmac4      = net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 7}
	vmac6      = net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, 8}
	vrrpVIP4   = netip.MustParseAddr("192.0.2.254")
	vipLL6     = netip.MustParseAddr("fe80::254")
	fixedStart = time.Unix(1e9, 0)
)

type rfcFixture struct {
	r     *Router
	l     *loop
	clock *manualClock
}

// newRFCFixture builds the router of newTestBench with more routes: 203.0.113.128/25
// and 2001:db8:ff::/48 through gwL4 (fe80::3) on the left link, 2001:db8:fe::/48
// through gwL6; mod changes the configuration first. Every neighbour is static.
func newRFCFixture(tb testing.TB, mod func(*Config)) *rfcFixture {
	tb.Helper()
	rl, _ := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, _ := porttest.NewPair(macRouterR, macHostR, 1500)
	clock := &manualClock{t: fixedStart}
	cfg := Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{
				netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:2::1/64")}},
		},
		Routes: []Route{
			{To: netip.MustParsePrefix("203.0.113.0/25"), Via: hostR4},
			{To: netip.MustParsePrefix("203.0.113.128/25"), Via: gwL4},
			{To: netip.MustParsePrefix("2001:db8:ff::/48"), Via: gwL6LL, Port: "left"},
			{To: netip.MustParsePrefix("2001:db8:fe::/48"), Via: gwL6},
		},
		Now: clock.now,
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range []netip.Addr{hostL4, hostL6} {
		r.ports()[0].neigh.AddStatic(a, header.MAC(macHostL))
	}
	for _, a := range []netip.Addr{gwL4, gwL6LL, gwL6, onlinkL4, onlinkL6} {
		r.ports()[0].neigh.AddStatic(a, header.MAC(macGwL))
	}
	for _, a := range []netip.Addr{hostR4, hostR6} {
		r.ports()[1].neigh.AddStatic(a, header.MAC(macHostR))
	}
	if err := r.SetRoutes(cfg.Routes); err != nil {
		tb.Fatal(err)
	}
	return &rfcFixture{r: r, l: r.newLoop(r.ports()[0]), clock: clock}
}

// pass hands frame to the left port's loop and returns the packets it queued, per
// port index.
func (f *rfcFixture) pass(frame []byte) [2][]gopacket.Packet {
	buf := make([]byte, port.BufSize)
	copy(buf[headroom:], frame)
	f.l.handle(buf[:headroom+len(frame)])
	var out [2][]gopacket.Packet
	for i := range out {
		for _, b := range f.l.out[i] {
			out[i] = append(out[i], gopacket.NewPacket(bytes.Clone(b[headroom:]), layers.LayerTypeEthernet, gopacket.Default))
		}
		f.l.out[i] = f.l.out[i][:0]
	}
	f.l.nused = 0
	return out
}

func (f *rfcFixture) drops(r DropReason) uint64 { return f.l.bc.drops[r] }

// withDstMAC returns frame with its Ethernet destination replaced.
func withDstMAC(frame []byte, mac net.HardwareAddr) []byte {
	f := bytes.Clone(frame)
	copy(f[:6], mac)
	return f
}

func udp4TTL(src, dst netip.Addr, ttl uint8) []byte { return udp4(src, dst, ttl, 0, []byte("payload")) }

func echoFrame4(src, dst netip.Addr, dstMAC net.HardwareAddr) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return serialize(eth(macHostL, dstMAC, layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 3, Seq: 1}, gopacket.Payload("ping"))
}

func ipv4Of(p gopacket.Packet) *layers.IPv4 {
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	return ip
}

func TestLinkBroadcastNotForwarded(t *testing.T) {
	f := newRFCFixture(t, func(c *Config) {
		c.Ports[0].Redirects = true
		c.Ports[1].DirectedBroadcast = true
	})
	// A unicast frame goes through: the control case.
	if out := f.pass(udp4TTL(hostL4, hostR4, 64)); len(out[1]) != 1 {
		t.Fatalf("unicast frame: %d frames out of the right port, want 1", len(out[1]))
	}
	cases := []struct {
		name  string
		frame []byte
	}{
		{"IPv4 in a broadcast frame", withDstMAC(udp4TTL(hostL4, hostR4, 64), bcastMAC)},
		{"IPv4 in a multicast frame", withDstMAC(udp4TTL(hostL4, hostR4, 64), mcastMAC4)},
		{"IPv4 back onto its link", withDstMAC(udp4TTL(hostL4, hairpin4, 64), bcastMAC)},
		{"IPv4 TTL 1: no time exceeded", withDstMAC(udp4TTL(hostL4, hostR4, 1), bcastMAC)},
		{"IPv4 without a route: no unreachable", withDstMAC(udp4TTL(hostL4, noroute4, 64), bcastMAC)},
		{"IPv4 directed broadcast of another network", withDstMAC(udp4TTL(hostL4, netip.MustParseAddr("198.51.100.255"), 64), bcastMAC)},
		{"IPv6 in a multicast frame", withDstMAC(udp6(hostL6, hostR6, 64, []byte("x")), mcastMAC6)},
		{"IPv6 in a broadcast frame", withDstMAC(udp6(hostL6, hostR6, 64, []byte("x")), bcastMAC)},
		{"IPv6 hop limit 1: no time exceeded", withDstMAC(udp6(hostL6, hostR6, 1, []byte("x")), mcastMAC6)},
		{"IPv6 without a route: no unreachable", withDstMAC(udp6(hostL6, noroute6, 64, []byte("x")), mcastMAC6)},
	}
	for _, tc := range cases {
		out := f.pass(tc.frame)
		if len(out[0]) != 0 || len(out[1]) != 0 {
			t.Errorf("%s: %d frames left, %d right; want none", tc.name, len(out[0]), len(out[1]))
		}
	}
	if got := f.drops(DropLinkBroadcast); got != uint64(len(cases)) {
		t.Errorf("link-broadcast drops %d, want %d", got, len(cases))
	}
	// To the router itself it is delivered: an echo request in a broadcast frame to
	// the router's own address is answered, unicast (RFC 1122 §3.2.2.6 lets the router
	// choose; the reply is not a broadcast).
	out := f.pass(echoFrame4(hostL4, routerL4, bcastMAC))
	if len(out[0]) != 1 || !isICMPv4(layers.ICMPv4TypeEchoReply, 0)(out[0][0]) {
		t.Fatalf("echo to the router in a broadcast frame: %v", out[0])
	}
	if e := out[0][0].Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(e.DstMAC, macHostL) {
		t.Errorf("echo reply to %s, want unicast to %s", e.DstMAC, macHostL)
	}
	// But an ICMP error about it is not sent (RFC 1812 §4.3.2.7): UDP to a closed port.
	if out := f.pass(withDstMAC(udp4TTL(hostL4, routerL4, 64), bcastMAC)); len(out[0]) != 0 {
		t.Errorf("port unreachable about a broadcast frame: %v", out[0])
	}
	if out := f.pass(withDstMAC(udp4TTL(hostL4, routerL4, 64), macRouterL)); len(out[0]) != 1 {
		t.Errorf("port unreachable about a unicast frame: %d frames, want 1", len(out[0]))
	}
}

func TestDirectedBroadcast(t *testing.T) {
	bcastR := netip.MustParseAddr("198.51.100.255")
	bcastL := netip.MustParseAddr("192.0.2.255")
	t.Run("off by default", func(t *testing.T) {
		f := newRFCFixture(t, nil)
		for _, frame := range [][]byte{udp4TTL(hostL4, bcastR, 64), echoFrame4(hostL4, bcastR, macRouterL)} {
			if out := f.pass(frame); len(out[0])+len(out[1]) != 0 {
				t.Errorf("directed broadcast: %d frames left, %d right; want none", len(out[0]), len(out[1]))
			}
		}
		if got := f.drops(DropDirectedBcast); got != 2 {
			t.Errorf("directed-broadcast drops %d, want 2", got)
		}
	})
	t.Run("forwarded where allowed", func(t *testing.T) {
		f := newRFCFixture(t, func(c *Config) { c.Ports[1].DirectedBroadcast = true })
		out := f.pass(udp4TTL(hostL4, bcastR, 64))
		if len(out[1]) != 1 {
			t.Fatalf("%d frames out of the right port, want 1", len(out[1]))
		}
		p := out[1][0]
		e := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !bytes.Equal(e.DstMAC, bcastMAC) || !bytes.Equal(e.SrcMAC, macRouterR) {
			t.Errorf("MACs %s -> %s, want %s -> broadcast", e.SrcMAC, e.DstMAC, macRouterR)
		}
		ip := checkIPv4(t, p.Data())
		if ip.DestinationAddr() != bcastR || ip.TTL() != 63 {
			t.Errorf("forwarded to %s with TTL %d", ip.DestinationAddr(), ip.TTL())
		}
		// The left port does not allow them: a broadcast from the right to the left
		// network is dropped.
		fr := newRFCFixture(t, func(c *Config) { c.Ports[1].DirectedBroadcast = true })
		rl := fr.r.newLoop(fr.r.ports()[1])
		buf := make([]byte, port.BufSize)
		frame := withDstMAC(udp4TTL(hostR4, bcastL, 64), macRouterR)
		copy(buf[headroom:], frame)
		rl.handle(buf[:headroom+len(frame)])
		if len(rl.out[0]) != 0 || rl.bc.drops[DropDirectedBcast] != 1 {
			t.Errorf("to the left network: %d frames, %d drops", len(rl.out[0]), rl.bc.drops[DropDirectedBcast])
		}
	})
	t.Run("never back onto the arrival network, echo not answered", func(t *testing.T) {
		f := newRFCFixture(t, func(c *Config) {
			c.Ports[0].DirectedBroadcast = true
			c.Ports[1].DirectedBroadcast = true
		})
		frames := [][]byte{
			withDstMAC(udp4TTL(hostL4, bcastL, 64), bcastMAC),
			withDstMAC(echoFrame4(hostL4, bcastL, bcastMAC), bcastMAC),
			echoFrame4(hostL4, bcastL, macRouterL),
			withDstMAC(udp4TTL(hostL4, limitedBroadcast, 64), bcastMAC),
			echoFrame4(hostL4, limitedBroadcast, bcastMAC),
			echoFrame4(hostL4, limitedBroadcast, macRouterL),
		}
		for i, frame := range frames {
			if out := f.pass(frame); len(out[0])+len(out[1]) != 0 {
				t.Errorf("frame %d: %d frames left, %d right; want none", i, len(out[0]), len(out[1]))
			}
		}
		if got := f.drops(DropBroadcast); got != uint64(len(frames)) {
			t.Errorf("broadcast drops %d, want %d", got, len(frames))
		}
	})
}

// expectRedirect4 checks an ICMP redirect for host from src to hostL4 about a packet to
// dst, through gw, quoting orig.
func expectRedirect4(t *testing.T, p gopacket.Packet, src, dst, gw netip.Addr, orig []byte) {
	t.Helper()
	if !isICMPv4(layers.ICMPv4TypeRedirect, layers.ICMPv4CodeHost)(p) {
		t.Fatalf("not a host redirect: %v", p)
	}
	ip := checkIPv4(t, p.Data())
	if ip.SourceAddr() != src || ip.DestinationAddr() != hostL4 {
		t.Errorf("redirect %s -> %s, want %s -> %s", ip.SourceAddr(), ip.DestinationAddr(), src, hostL4)
	}
	icmp := header.ICMPv4(ip.Payload())
	if g := netip.AddrFrom4([4]byte(icmp[4:8])); g != gw {
		t.Errorf("gateway %s, want %s", g, gw)
	}
	q := icmp.Payload()
	if len(q) < 28 || !bytes.Equal(q, orig[14:14+len(q)]) {
		t.Errorf("quote (%d bytes) is not the original packet as received", len(q))
	}
	if d := header.IPv4(q).DestinationAddr(); d != dst {
		t.Errorf("quoted destination %s, want %s", d, dst)
	}
}

func TestRedirectIPv4(t *testing.T) {
	f := newRFCFixture(t, func(c *Config) { c.Ports[0].Redirects = true })
	for _, tc := range []struct{ dst, gw netip.Addr }{
		{hairpin4, gwL4},     // through the other router
		{onlinkL4, onlinkL4}, // the destination is on the link
	} {
		frame := udp4TTL(hostL4, tc.dst, 64)
		out := f.pass(frame)
		if len(out[0]) != 2 {
			t.Fatalf("to %s: %d frames back on the left, want the redirect and the packet", tc.dst, len(out[0]))
		}
		expectRedirect4(t, out[0][0], routerL4, tc.dst, tc.gw, frame)
		// Still forwarded (RFC 1812 §5.2.7.2).
		fw := out[0][1]
		if !isUDPTo(tc.dst)(fw) || ipv4Of(fw).TTL != 63 {
			t.Errorf("forwarded packet: %v", fw)
		}
		if e := fw.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(e.DstMAC, macGwL) {
			t.Errorf("forwarded to %s, want %s", e.DstMAC, macGwL)
		}
	}
	lsrr := func() []byte {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: hostL4.AsSlice(), DstIP: hairpin4.AsSlice(),
			Options: []layers.IPv4Option{{OptionType: 131, OptionLength: 7, OptionData: []byte{4, 203, 0, 113, 1}}, {OptionType: 0, OptionLength: 1}}}
		u := &layers.UDP{SrcPort: 1, DstPort: 2}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip, u, gopacket.Payload("lsrr"))
	}()
	for _, tc := range []struct {
		name    string
		frame   []byte
		forward int // frames expected out of the left port
	}{
		{"source not on the link", udp4TTL(offlink4, hairpin4, 64), 1},
		{"source route option", lsrr, 0}, // dropped before routing (RFC 7126 §4.3, options.go)
		{"TTL runs out: time exceeded only", udp4TTL(hostL4, hairpin4, 1), 1},
		{"ICMP error: no redirect about it", icmpTooBigV4(hostL4, hairpin4), 1},
	} {
		out := f.pass(tc.frame)
		if len(out[0]) != tc.forward {
			t.Errorf("%s: %d frames out, want %d", tc.name, len(out[0]), tc.forward)
		}
		for _, p := range out[0] {
			if isICMPv4(layers.ICMPv4TypeRedirect, layers.ICMPv4CodeHost)(p) {
				t.Errorf("%s: redirect sent", tc.name)
			}
		}
	}
	// Leaving by another port: no redirect.
	if out := f.pass(udp4TTL(hostL4, hostR4, 64)); len(out[0]) != 0 || len(out[1]) != 1 {
		t.Errorf("transit: %d frames left, %d right", len(out[0]), len(out[1]))
	}
	// Off: forwarded, no redirect.
	off := newRFCFixture(t, nil)
	if out := off.pass(udp4TTL(hostL4, hairpin4, 64)); len(out[0]) != 1 || !isUDPTo(hairpin4)(out[0][0]) {
		t.Errorf("redirects off: %d frames, want the packet alone", len(out[0]))
	}
}

// icmpTooBigV4 is an ICMP fragmentation-needed error from src about a packet to it,
// which the router forwards to dst.
func icmpTooBigV4(src, dst netip.Addr) []byte {
	iip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: dst.AsSlice(), DstIP: src.AsSlice()}
	iu := &layers.UDP{SrcPort: 2, DstPort: 1}
	iu.SetNetworkLayerForChecksum(iip)
	inner := serialize(iip, iu)
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return serialize(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded)},
		gopacket.Payload(inner))
}

// expectRedirect6 checks an ICMPv6 redirect from src to hostL6 of dst to target.
func expectRedirect6(t *testing.T, p gopacket.Packet, src, target, dst netip.Addr, orig []byte) {
	t.Helper()
	rd, ok := p.Layer(layers.LayerTypeICMPv6Redirect).(*layers.ICMPv6Redirect)
	if !ok {
		t.Fatalf("not a redirect: %v", p)
	}
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if netip.AddrFrom16([16]byte(ip.SrcIP)) != src || netip.AddrFrom16([16]byte(ip.DstIP)) != hostL6 || ip.HopLimit != 255 {
		t.Errorf("redirect %s -> %s hop limit %d, want %s -> %s, 255", ip.SrcIP, ip.DstIP, ip.HopLimit, src, hostL6)
	}
	v6 := header.IPv6(p.Data()[14:])
	if !header.IsTransportChecksumValid(header.ProtocolICMPv6, v6.SourceAddr(), v6.DestinationAddr(), v6.Payload()) {
		t.Errorf("bad ICMPv6 checksum")
	}
	if len(v6) > header.IPv6MinimumMTU {
		t.Errorf("redirect of %d bytes, more than the minimum MTU", len(v6))
	}
	if netip.AddrFrom16([16]byte(rd.TargetAddress)) != target || netip.AddrFrom16([16]byte(rd.DestinationAddress)) != dst {
		t.Errorf("target %s destination %s, want %s %s", rd.TargetAddress, rd.DestinationAddress, target, dst)
	}
	var tll, quoted bool
	for _, o := range rd.Options {
		switch o.Type {
		case layers.ICMPv6OptTargetAddress:
			tll = bytes.Equal(o.Data, macGwL)
		case layers.ICMPv6OptRedirectedHeader:
			q := o.Data[6:]
			quoted = len(q) >= len(orig)-14 && bytes.Equal(q[:len(orig)-14], orig[14:])
		}
	}
	if !tll || !quoted {
		t.Errorf("options: target link-layer address %v, redirected header %v; want both", tll, quoted)
	}
}

func TestRedirectIPv6(t *testing.T) {
	f := newRFCFixture(t, func(c *Config) { c.Ports[0].Redirects = true })
	for _, tc := range []struct{ dst, target netip.Addr }{
		{hairpin6, gwL6LL},   // the other router, by its link-local address
		{onlinkL6, onlinkL6}, // the destination is on the link
	} {
		frame := udp6(hostL6, tc.dst, 64, []byte("redirect me"))
		out := f.pass(frame)
		if len(out[0]) != 2 {
			t.Fatalf("to %s: %d frames back on the left, want the redirect and the packet", tc.dst, len(out[0]))
		}
		expectRedirect6(t, out[0][0], routerLLL, tc.target, tc.dst, frame)
		fw := out[0][1]
		if ip, ok := fw.Layer(layers.LayerTypeIPv6).(*layers.IPv6); !ok || !isUDPTo(tc.dst)(fw) || ip.HopLimit != 63 {
			t.Errorf("forwarded packet: %v", fw)
		}
	}
	// A gateway known by its global address only: the target must be its link-local
	// address (RFC 4861 §8.2), unknown here, so no redirect; still forwarded.
	if out := f.pass(udp6(hostL6, hairpin6g, 64, nil)); len(out[0]) != 1 || !isUDPTo(hairpin6g)(out[0][0]) {
		t.Errorf("global gateway: %d frames, want the packet alone", len(out[0]))
	}
	// The source is not a neighbour.
	if out := f.pass(udp6(netip.MustParseAddr("2001:db8:77::1"), hairpin6, 64, nil)); len(out[0]) != 1 {
		t.Errorf("off-link source: %d frames, want the packet alone", len(out[0]))
	}
	off := newRFCFixture(t, nil)
	if out := off.pass(udp6(hostL6, hairpin6, 64, nil)); len(out[0]) != 1 || !isUDPTo(hairpin6)(out[0][0]) {
		t.Errorf("redirects off: %d frames, want the packet alone", len(out[0]))
	}
}

func TestRedirectRateLimit(t *testing.T) {
	f := newRFCFixture(t, func(c *Config) {
		c.Ports[0].Redirects = true
		c.RedirectRate, c.RedirectBurst = 1, 2
	})
	count := func(n int) (redirects, forwarded int) {
		for range n {
			for _, p := range f.pass(udp4TTL(hostL4, hairpin4, 64))[0] {
				if isICMPv4(layers.ICMPv4TypeRedirect, layers.ICMPv4CodeHost)(p) {
					redirects++
				} else if isUDPTo(hairpin4)(p) {
					forwarded++
				}
			}
		}
		return
	}
	if r, fw := count(5); r != 2 || fw != 5 {
		t.Errorf("burst: %d redirects, %d forwarded; want 2, 5", r, fw)
	}
	if f.l.bc.icmpLimit != 3 {
		t.Errorf("icmp-limit %d, want 3", f.l.bc.icmpLimit)
	}
	f.clock.advance(time.Second)
	if r, _ := count(3); r != 1 {
		t.Errorf("a second later: %d redirects, want 1", r)
	}
	// The errors' budget is apart: a time exceeded still goes out.
	if out := f.pass(udp4TTL(hostL4, hostR4, 1)); len(out[0]) != 1 || !isICMPv4(layers.ICMPv4TypeTimeExceeded, 0)(out[0][0]) {
		t.Errorf("time exceeded after the redirects' limit: %v", out[0])
	}
}

// TestRedirectVRRP: a frame sent to the virtual MAC of an instance the router is master
// for earns a redirect from that virtual router's address (RFC 9568 §8.1.1, §8.2.1).
func TestRedirectVRRP(t *testing.T) {
	f := newRFCFixture(t, func(c *Config) {
		c.Ports[0].Redirects = true
		c.VRRP = []VRRPConfig{
			{Port: "left", Instance: vrrp.Config{Name: "v4", VRID: 7, Priority: 255, Interval: time.Second,
				Addresses: []netip.Addr{vrrpVIP4}}},
			{Port: "left", Instance: vrrp.Config{Name: "v6", VRID: 8, Priority: 255, Interval: time.Second,
				Addresses: []netip.Addr{vipLL6, netip.MustParseAddr("2001:db8:1::254")}}},
		}
	})
	for _, n := range f.r.vrrpNodes() {
		n.in.Start(fixedStart)
		if n.in.State() != vrrp.Master {
			t.Fatalf("%s: %s, want master", n.in.Name(), n.in.State())
		}
	}
	frame := withDstMAC(udp4TTL(hostL4, hairpin4, 64), vmac4)
	out := f.pass(frame)
	if len(out[0]) != 2 {
		t.Fatalf("IPv4 to the virtual MAC: %d frames, want 2", len(out[0]))
	}
	expectRedirect4(t, out[0][0], vrrpVIP4, hairpin4, gwL4, frame)
	frame = withDstMAC(udp6(hostL6, hairpin6, 64, []byte("v")), vmac6)
	out = f.pass(frame)
	if len(out[0]) != 2 {
		t.Fatalf("IPv6 to the virtual MAC: %d frames, want 2", len(out[0]))
	}
	expectRedirect6(t, out[0][0], vipLL6, gwL6LL, hairpin6, frame)
	// To the port's own MAC: from the port's own addresses.
	frame = udp4TTL(hostL4, hairpin4, 64)
	expectRedirect4(t, f.pass(frame)[0][0], routerL4, hairpin4, gwL4, frame)
}

// TestForwardWithPortOptionsAllocatesNothing: the checks on the forwarding path of the
// options cost no allocation.
func TestForwardWithPortOptionsAllocatesNothing(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		f := newRFCFixture(t, func(c *Config) {
			for i := range c.Ports {
				c.Ports[i].Redirects = true
				c.Ports[i].DirectedBroadcast = true
			}
		})
		frame := udp4TTL(hostL4, hostR4, 64)
		if v6 {
			frame = udp6(hostL6, hostR6, 64, make([]byte, 18))
		}
		buf := make([]byte, port.BufSize)
		l := f.l
		allocs := testing.AllocsPerRun(1000, func() {
			copy(buf[headroom:], frame)
			l.handle(buf[:headroom+len(frame)])
			if len(l.out[1]) != 1 {
				t.Fatal("frame not forwarded")
			}
			l.out[1] = l.out[1][:0]
		})
		if allocs != 0 {
			t.Errorf("v6=%v: %v allocations per forwarded packet", v6, allocs)
		}
	}
}
