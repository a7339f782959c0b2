package router

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
	"ulb/router/port"
	"ulb/router/port/porttest"
	"ulb/vrrp"
)

var (
	macRouterT = net.HardwareAddr{0x02, 0, 0, 0, 3, 1}
	macHostT   = net.HardwareAddr{0x02, 0, 0, 0, 3, 2}
	routerT4   = netip.MustParseAddr("203.0.113.129")
	hostT4     = netip.MustParseAddr("203.0.113.130")
	routerT6   = netip.MustParseAddr("2001:db8:3::1")
	hostT6     = netip.MustParseAddr("2001:db8:3::2")
)

// The left and right ports of newTestBench, as SetPorts takes them (their devices kept).
func benchPorts(right ...string) []PortConfig {
	left := PortConfig{Name: "left", Addresses: []netip.Prefix{
		netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}}
	r := PortConfig{Name: "right"}
	for _, a := range right {
		r.Addresses = append(r.Addresses, netip.MustParsePrefix(a))
	}
	return []PortConfig{left, r}
}

var benchRoutes = []Route{{To: netip.MustParsePrefix("203.0.113.0/25"), Via: hostR4}}

func arpRequest(src net.HardwareAddr, spa, tpa netip.Addr) []byte {
	return serialize(eth(src, layers.EthernetBroadcast, layers.EthernetTypeARP),
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: src, SourceProtAddress: spa.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: tpa.AsSlice()})
}

func isARP(op uint16, spa, tpa netip.Addr) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		return ok && a.Operation == op && bytes.Equal(a.SourceProtAddress, spa.AsSlice()) && bytes.Equal(a.DstProtAddress, tpa.AsSlice())
	}
}

// isUnsolicitedNA matches an unsolicited neighbour advertisement of target to all-nodes.
func isUnsolicitedNA(target netip.Addr) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		return ok && ip != nil && netip.AddrFrom16([16]byte(na.TargetAddress)) == target && !na.Solicited() &&
			netip.AddrFrom16([16]byte(ip.DstIP)) == netip.MustParseAddr("ff02::1")
	}
}

func echo4From(src net.HardwareAddr, dstMAC net.HardwareAddr, from, to netip.Addr) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: from.AsSlice(), DstIP: to.AsSlice()}
	return serialize(eth(src, dstMAC, layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 5, Seq: 1}, gopacket.Payload("ping"))
}

func isEchoReplyFrom(src netip.Addr) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		ip := ipv4Of(p)
		return ok && ip != nil && ic.TypeCode.Type() == layers.ICMPv4TypeEchoReply && netip.AddrFrom4([4]byte(ip.SrcIP.To4())) == src
	}
}

// TestSetPortsAddresses changes the right port's addresses while the router runs: an
// added prefix becomes connected (routed to, its address answered for in ARP, pinged,
// announced by a gratuitous ARP and an unsolicited NA), a removed one stops being
// either, and a set that would leave a static route's gateway unreachable is refused
// with nothing changed.
func TestSetPortsAddresses(t *testing.T) {
	hostB := netip.MustParseAddr("203.0.113.140") // on the prefix to be added
	tb := newPortsBench(t, hostB, hostT6)

	// Before: 203.0.113.128/25 is not routed.
	tb.left.sendRaw(udp4(hostL4, hostB, 64, 0, []byte("x")))
	tb.left.expect(t, "unreachable before", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet))

	if err := tb.r.SetPorts(benchPorts("198.51.100.1/24", "2001:db8:2::1/64", "203.0.113.129/25", "2001:db8:3::1/64"), benchRoutes); err != nil {
		t.Fatal(err)
	}
	// RFC 5227 §3, RFC 4861 §7.2.6: the new addresses are announced on their link.
	tb.right.expect(t, "gratuitous ARP", isARP(layers.ARPRequest, routerT4, routerT4))
	tb.right.expect(t, "unsolicited NA", isUnsolicitedNA(routerT6))
	// The new connected prefix routes, v4 and v6.
	tb.left.sendRaw(udp4(hostL4, hostB, 64, 0, []byte("x")))
	tb.right.expect(t, "to the new prefix", isUDPTo(hostB))
	tb.left.sendRaw(udp6(hostL6, hostT6, 64, []byte("y")))
	tb.right.expect(t, "to the new v6 prefix", isUDPTo(hostT6))
	// The new address is the router's: answered in ARP and pinged.
	tb.right.sendRaw(arpRequest(macHostR, hostB, routerT4))
	tb.right.expect(t, "ARP reply for the new address", isARP(layers.ARPReply, routerT4, hostB))
	tb.left.sendRaw(echo4From(macHostL, macRouterL, hostL4, routerT4))
	tb.left.expect(t, "echo reply from the new address", isEchoReplyFrom(routerT4))

	// Refused as a whole: without 198.51.100.0/24 the route's gateway is on no prefix.
	before, fibBefore := tb.r.Ports(), tb.r.FIB()
	err := tb.r.SetPorts(benchPorts("203.0.113.129/25"), benchRoutes)
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("SetPorts with an unreachable gateway: %v, want a config error", err)
	}
	if tb.r.FIB() != fibBefore || len(tb.r.Ports()[1].Addresses) != len(before[1].Addresses) {
		t.Fatal("a refused SetPorts changed the ports or the FIB")
	}

	// Removing 198.51.100.1/24 (and the route through it).
	if err := tb.r.SetPorts(benchPorts("2001:db8:2::1/64", "203.0.113.129/25"), nil); err != nil {
		t.Fatal(err)
	}
	tb.right.sendRaw(arpRequest(macHostR, hostR4, routerR4))
	tb.right.expectNone(t, "ARP reply for a removed address", isARP(layers.ARPReply, routerR4, hostR4))
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, 0, []byte("x")))
	tb.left.expect(t, "unreachable after removal", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet))
	tb.left.sendRaw(echo4From(macHostL, macRouterL, hostL4, routerR4))
	tb.left.expect(t, "a removed address is routed, not answered", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet))
	// The v6 address that stayed still answers.
	tb.left.sendRaw(udp6(hostL6, hostR6, 64, []byte("y")))
	tb.right.expect(t, "v6 that stayed", isUDPTo(hostR6))
	// ICMP errors from the right port now come from its new first IPv4 address.
	if src := tb.r.ports()[1].state().src4; src != routerT4 {
		t.Errorf("source of the right port's errors %s, want %s", src, routerT4)
	}
}

// TestSetPortsOptions changes a port's MTU, directed_broadcast and redirects at run
// time, and refuses an MTU larger than the link's.
func TestSetPortsOptions(t *testing.T) {
	tb := newTestBench(t)
	bcast := netip.MustParseAddr("198.51.100.255")
	tb.left.sendRaw(udp4(hostL4, bcast, 64, 0, []byte("directed")))
	tb.right.expectNone(t, "directed broadcast while off", isUDPTo(bcast))
	tb.left.sendRaw(udp4(hostL4, netip.MustParseAddr("192.0.2.50"), 64, 0, []byte("hairpin")))
	tb.left.expectNone(t, "redirect while off", isICMPv4(layers.ICMPv4TypeRedirect, layers.ICMPv4CodeHost))
	ps := benchPorts("198.51.100.1/24", "2001:db8:2::1/64")
	ps[1].MTU = 1300
	ps[1].DirectedBroadcast = true
	ps[0].Redirects = true
	if err := tb.r.SetPorts(ps, benchRoutes); err != nil {
		t.Fatal(err)
	}
	if st := tb.r.ports()[1].state(); st.mtu != 1300 || !tb.r.ports()[0].state().redirects {
		t.Fatalf("mtu %d redirects %v", st.mtu, tb.r.ports()[0].state().redirects)
	}
	// RFC 1191 / RFC 792: fragmentation needed with the new MTU.
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, layers.IPv4DontFragment, make([]byte, 1350)))
	p := tb.left.expect(t, "fragmentation needed", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded))
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if mtu := ic.Seq; mtu != 1300 {
		t.Errorf("next-hop MTU %d, want 1300", mtu)
	}
	// RFC 1812 §5.2.7.2: with redirects on, a packet that leaves by the port it came in
	// by earns its sender a host redirect.
	tb.left.sendRaw(udp4(hostL4, netip.MustParseAddr("192.0.2.50"), 64, 0, []byte("hairpin")))
	tb.left.expect(t, "redirect once on", isICMPv4(layers.ICMPv4TypeRedirect, layers.ICMPv4CodeHost))
	// RFC 1812 §5.3.5.2: turned on, the directed broadcast goes out as a link broadcast.
	tb.left.sendRaw(udp4(hostL4, bcast, 64, 0, []byte("directed")))
	bp := tb.right.expect(t, "directed broadcast once on", isUDPTo(bcast))
	if e := bp.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(e.DstMAC, layers.EthernetBroadcast) {
		t.Errorf("directed broadcast sent to %s", e.DstMAC)
	}
	ps[1].MTU = 9000
	if err := tb.r.SetPorts(ps, benchRoutes); !errors.Is(err, ErrConfig) {
		t.Fatalf("mtu above the link: %v", err)
	}
	if tb.r.ports()[1].state().mtu != 1300 {
		t.Error("a refused MTU changed the port")
	}
}

// loopOf waits for the port's receive loop to be started and returns its done channel.
func loopOf(t *testing.T, r *Router, rp *routerPort) <-chan struct{} {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		r.loops.mu.Lock()
		done := rp.done
		r.loops.mu.Unlock()
		if done != nil {
			return done
		}
	}
	t.Fatalf("port %s has no loop", rp.cfg.Name)
	return nil
}

// newPortsBench is newTestBench with more addresses for the right host.
func newPortsBench(t *testing.T, right ...netip.Addr) *testBench {
	t.Helper()
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1400)
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: benchPorts()[0].Addresses},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{
				netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:2::1/64")}},
		},
		Routes: benchRoutes,
	})
	if err != nil {
		t.Fatal(err)
	}
	return startBench(t, r, newPeer(hl, macHostL, hostL4, hostL6), newPeer(hr, macHostR, append([]netip.Addr{hostR4, hostR6}, right...)...))
}

// TestSetPortsAddRemove adds a third port while the router runs (its loop starts, its
// prefixes are routed, its addresses announced), then removes it (its loop ends, its
// device is closed, its routes go, its slot stays and is never matched), and adds it
// again under the same name at a new index; the left and right ports forward
// throughout.
func TestSetPortsAddRemove(t *testing.T) {
	tb := newTestBench(t)
	rt, ht := porttest.NewPair(macRouterT, macHostT, 1500)
	third := newPeer(ht, macHostT, hostT4, hostT6)
	var wg sync.WaitGroup
	wg.Add(1)
	go third.run(&wg)
	t.Cleanup(func() { ht.Close(); wg.Wait() })

	ps := append(benchPorts("198.51.100.1/24", "2001:db8:2::1/64"), PortConfig{Name: "third", Port: rt,
		Addresses: []netip.Prefix{netip.MustParsePrefix("203.0.113.129/25"), netip.MustParsePrefix("2001:db8:3::1/64")}})
	if err := tb.r.SetPorts(ps, benchRoutes); err != nil {
		t.Fatal(err)
	}
	third.expect(t, "gratuitous ARP on the new port", isARP(layers.ARPRequest, routerT4, routerT4))
	rp := tb.r.ports()[2]
	done := loopOf(t, tb.r, rp)
	tb.left.sendRaw(udp4(hostL4, hostT4, 64, 0, []byte("to the third")))
	third.expect(t, "through the new port", isUDPTo(hostT4))
	tb.left.sendRaw(udp6(hostL6, hostT6, 64, []byte("to the third")))
	third.expect(t, "v6 through the new port", isUDPTo(hostT6))
	third.sendRaw(echo4From(macHostT, macRouterT, hostT4, routerL4))
	third.expect(t, "echo reply through the new port's loop", isEchoReplyFrom(routerL4))

	if err := tb.r.SetPorts(benchPorts("198.51.100.1/24", "2001:db8:2::1/64"), benchRoutes); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the removed port's loop did not end")
	}
	if _, err := rt.Write([][]byte{make([]byte, port.Headroom+60)}, port.Headroom); !errors.Is(err, port.ErrClosed) {
		t.Errorf("the removed port's device is not closed: %v", err)
	}
	if ps := tb.r.Ports(); len(ps) != 3 || !ps[2].Removed || len(ps[2].Addresses) != 0 {
		t.Errorf("ports after removal: %+v", ps)
	}
	for _, nh := range tb.r.FIB().Routes() {
		if nh.Port == 2 {
			t.Errorf("route %s still leads to the removed port", nh.Prefix)
		}
	}
	tb.left.sendRaw(udp4(hostL4, hostT4, 64, 0, []byte("x")))
	tb.left.expect(t, "unreachable after removal", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet))
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, 0, []byte("x")))
	tb.right.expect(t, "right still forwards", isUDPTo(hostR4))

	// The same name again, on a new device: a new slot.
	rt2, ht2 := porttest.NewPair(macRouterT, macHostT, 1500)
	again := newPeer(ht2, macHostT, hostT4)
	wg.Add(1)
	go again.run(&wg)
	t.Cleanup(func() { ht2.Close() })
	ps[2].Port = rt2
	if err := tb.r.SetPorts(ps, benchRoutes); err != nil {
		t.Fatal(err)
	}
	if n := len(tb.r.ports()); n != 4 || tb.r.livePort("third").idx != 3 {
		t.Fatalf("%d slots, third at %d", n, tb.r.livePort("third").idx)
	}
	tb.left.sendRaw(udp4(hostL4, hostT4, 64, 0, []byte("again")))
	again.expect(t, "through the re-added port", isUDPTo(hostT4))
}

// TestSetPortsChangedDevice gives an existing port a new device: the old one is closed
// and its loop ends, the new one takes over the name, the addresses and the routes.
func TestSetPortsChangedDevice(t *testing.T) {
	tb := newTestBench(t)
	old := tb.r.livePort("right")
	done := loopOf(t, tb.r, old)
	rr2, hr2 := porttest.NewPair(macRouterT, macHostR, 1400)
	right2 := newPeer(hr2, macHostR, hostR4, hostR6, remote4)
	var wg sync.WaitGroup
	wg.Add(1)
	go right2.run(&wg)
	t.Cleanup(func() { hr2.Close(); wg.Wait() })
	ps := benchPorts("198.51.100.1/24", "2001:db8:2::1/64")
	ps[1].Port = rr2
	if err := tb.r.SetPorts(ps, benchRoutes); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the old device's loop did not end")
	}
	tb.left.sendRaw(udp4(hostL4, remote4, 64, 0, []byte("via the new device")))
	p := right2.expect(t, "static route through the new device", isUDPTo(remote4))
	if e := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(e.SrcMAC, macRouterT) {
		t.Errorf("sent from %s, want the new device's %s", e.SrcMAC, macRouterT)
	}
}

// TestSetPortsRefused: what SetPorts refuses changes nothing.
func TestSetPortsRefused(t *testing.T) {
	tb := newTestBench(t)
	fibBefore := tb.r.FIB()
	big, _ := porttest.NewPair(macRouterT, macHostT, 9000)
	for _, c := range []struct {
		name  string
		ports []PortConfig
	}{
		{"new port without a device", append(benchPorts("198.51.100.1/24"), PortConfig{Name: "nodev"})},
		{"duplicate", append(benchPorts("198.51.100.1/24"), PortConfig{Name: "left"})},
		{"host port", append(benchPorts("198.51.100.1/24"), PortConfig{Name: "h", Host: true})},
		{"larger frames than the loops were made for", append(benchPorts("198.51.100.1/24"), PortConfig{Name: "big", Port: big})},
	} {
		if err := tb.r.SetPorts(c.ports, benchRoutes); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want a config error", c.name, err)
		} else if err2 := tb.r.CheckPorts(c.ports, benchRoutes); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("%s: CheckPorts %v, SetPorts %v", c.name, err2, err)
		}
		if tb.r.FIB() != fibBefore || len(tb.r.ports()) != 2 {
			t.Errorf("%s: changed the router", c.name)
		}
	}
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, 0, []byte("x")))
	tb.right.expect(t, "still forwarding", isUDPTo(hostR4))
}

// TestForwardAfterSetPortsAllocatesNothing: a loop made before a port was added forwards
// to it, and through a port whose addresses changed, without allocating (the loop's
// per-port queues grow once, at the first frame for the new port).
func TestForwardAfterSetPortsAllocatesNothing(t *testing.T) {
	l, frame := loopFixture(t, false)
	r := l.r
	rt, _ := porttest.NewPair(macRouterT, macHostT, 1500)
	ps := []PortConfig{
		{Name: "left", Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}},
		{Name: "right", Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("203.0.113.1/25")}},
		{Name: "third", Port: rt, Addresses: []netip.Prefix{netip.MustParsePrefix("203.0.113.129/25")}},
	}
	if err := r.SetPorts(ps, nil); err != nil {
		t.Fatal(err)
	}
	r.ports()[2].neigh.AddStatic(hostT4, header.MAC(macHostT))
	toThird := udp4(hostL4, hostT4, 64, 0, make([]byte, 18))
	buf := make([]byte, port.BufSize)
	pass := func(f []byte, out int) {
		copy(buf[headroom:], f)
		l.handle(buf[:headroom+len(f)])
		if len(l.out) <= out || len(l.out[out]) != 1 {
			t.Fatalf("frame not queued on port %d", out)
		}
		l.out[out] = l.out[out][:0]
	}
	pass(toThird, 2) // grows the loop's queues
	for _, c := range []struct {
		frame []byte
		out   int
	}{{toThird, 2}, {frame, 1}} {
		if allocs := testing.AllocsPerRun(1000, func() { pass(c.frame, c.out) }); allocs != 0 {
			t.Errorf("%v allocations per packet to port %d", allocs, c.out)
		}
	}
}

// TestSetPortsVRRP: an instance on a port whose device a reload replaces is shut down on
// the old device (priority 0) and made again on the new one, and one whose port's
// primary address changed is made again with it as its adverts' source (RFC 9568
// §5.1.1.1, the primary address of the interface).
func TestSetPortsVRRP(t *testing.T) {
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1500)
	v1 := VRRPConfig{Port: "right", Instance: vrrp.Config{Name: "v1", VRID: 9, Version: 2, Priority: 255,
		Interval: time.Second, Addresses: []netip.Addr{netip.MustParseAddr("198.51.100.100")}}}
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: benchPorts()[0].Addresses},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}},
		},
		VRRP: []VRRPConfig{v1},
	})
	if err != nil {
		t.Fatal(err)
	}
	tb := startBench(t, r, newPeer(hl, macHostL, hostL4), newPeer(hr, macHostR, hostR4))
	advertFrom := func(src netip.Addr, prio uint8) func(gopacket.Packet) bool {
		return func(p gopacket.Packet) bool {
			a, ok := p.Layer(layers.LayerTypeVRRP).(*layers.VRRPv2)
			ip := ipv4Of(p)
			return ok && ip != nil && a.VirtualRtrID == 9 && a.Priority == prio && netip.AddrFrom4([4]byte(ip.SrcIP.To4())) == src
		}
	}
	tb.right.expect(t, "advert from the first address", advertFrom(netip.MustParseAddr("198.51.100.1"), 255))

	// The primary address changes: the node's reload order (SetPorts, then SetVRRP).
	ps := []PortConfig{{Name: "left", Addresses: benchPorts()[0].Addresses},
		{Name: "right", Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.5/24")}}}
	if err := r.SetPorts(ps, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.SetVRRP([]VRRPConfig{v1}); err != nil {
		t.Fatal(err)
	}
	tb.right.expect(t, "advert from the new primary address", advertFrom(netip.MustParseAddr("198.51.100.5"), 255))

	// The device changes: the instance goes first (its priority-0 advert on the old
	// device), then comes back on the new one.
	rr2, hr2 := porttest.NewPair(macRouterT, macHostR, 1500)
	right2 := newPeer(hr2, macHostR, hostR4)
	var wg sync.WaitGroup
	wg.Add(1)
	go right2.run(&wg)
	t.Cleanup(func() { hr2.Close(); wg.Wait() })
	if err := r.SetVRRP(nil); err != nil {
		t.Fatal(err)
	}
	tb.right.expect(t, "goodbye on the old device", advertFrom(netip.MustParseAddr("198.51.100.5"), 0))
	ps[1].Port = rr2
	if err := r.SetPorts(ps, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.SetVRRP([]VRRPConfig{v1}); err != nil {
		t.Fatal(err)
	}
	p := right2.expect(t, "advert on the new device", advertFrom(netip.MustParseAddr("198.51.100.5"), 255))
	if e := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); e.SrcMAC.String() != "00:00:5e:00:01:09" {
		t.Errorf("advert from %s, want the virtual MAC", e.SrcMAC)
	}
	if n := r.vrrpNodes(); len(n) != 1 || n[0].rp != r.livePort("right") {
		t.Error("the instance is not on the new port")
	}
}
