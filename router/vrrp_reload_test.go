package router

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/port/porttest"
	"ulb/vrrp"
)

// TestSetVRRP: SetVRRP on a running router keeps an unchanged instance as it is (the
// same master, no transition), starts a new one, shuts a removed one down (its
// priority-0 advert; its address no longer answered), and restarts a changed one.
func TestSetVRRP(t *testing.T) {
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1400)
	vip1, vip2 := netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")
	instance := func(name string, vrid, prio uint8, vip netip.Addr) VRRPConfig {
		return VRRPConfig{Port: "left", Instance: vrrp.Config{Name: name, VRID: vrid, Version: 2, Priority: prio,
			Interval: time.Second, Addresses: []netip.Addr{vip}}}
	}
	v1, v2 := instance("v1", 7, 255, vip1), instance("v2", 8, 255, vip2)
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}},
		},
		VRRP: []VRRPConfig{v1},
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	events := map[string]int{}
	r.OnVRRPEvent(func(ev VRRPEvent) {
		mu.Lock()
		events[ev.Instance]++
		mu.Unlock()
	})
	eventsOf := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return events[name]
	}
	tb := startBench(t, r, newPeer(hl, macHostL, hostL4), newPeer(hr, macHostR, hostR4))
	advert := func(vrid, prio uint8) func(gopacket.Packet) bool {
		return func(p gopacket.Packet) bool {
			a, ok := p.Layer(layers.LayerTypeVRRP).(*layers.VRRPv2)
			return ok && a.VirtualRtrID == vrid && a.Priority == prio
		}
	}
	node := func(name string) *vrrpNode {
		for _, n := range r.vrrpNodes() {
			if n.in.Name() == name {
				return n
			}
		}
		return nil
	}
	arpReply := func(vip netip.Addr) func(gopacket.Packet) bool {
		return func(p gopacket.Packet) bool {
			a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			return ok && a.Operation == layers.ARPReply && netip.AddrFrom4([4]byte(a.SourceProtAddress)) == vip
		}
	}
	askARP := func(vip netip.Addr) {
		a := vip.As4()
		h := hostL4.As4()
		tb.left.send(&layers.Ethernet{SrcMAC: macHostL, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPRequest, SourceHwAddress: macHostL, SourceProtAddress: h[:],
				DstHwAddress: make([]byte, 6), DstProtAddress: a[:]})
	}

	tb.left.expect(t, "v1's adverts", advert(7, 255))
	first := node("v1")
	before := eventsOf("v1")

	if err := r.SetVRRP([]VRRPConfig{v1, v2}); err != nil {
		t.Fatal(err)
	}
	tb.left.expect(t, "the added v2's adverts", advert(8, 255))
	if n := node("v1"); n != first || n.in.State() != vrrp.Master || eventsOf("v1") != before {
		t.Fatalf("unchanged v1 after SetVRRP: node kept %v, state %v, %d transitions more", n == first, n.in.State(), eventsOf("v1")-before)
	}
	tb.left.expect(t, "v1 still advertising", advert(7, 255))

	if err := r.SetVRRP([]VRRPConfig{v2}); err != nil {
		t.Fatal(err)
	}
	tb.left.expect(t, "the removed v1's goodbye", advert(7, 0))
	if node("v1") != nil || first.in.State() != vrrp.Initialize {
		t.Fatalf("removed v1: still listed %v, state %v", node("v1") != nil, first.in.State())
	}
	askARP(vip1)
	tb.left.expectNone(t, "an ARP reply for the removed v1's address", arpReply(vip1))
	askARP(vip2)
	tb.left.expect(t, "an ARP reply for v2's address", arpReply(vip2))

	second := node("v2")
	if err := r.SetVRRP([]VRRPConfig{instance("v2", 8, 200, vip2)}); err != nil {
		t.Fatal(err)
	}
	if n := node("v2"); n == second || n == nil {
		t.Fatal("changed v2: the old instance still runs")
	}
	tb.left.expect(t, "the changed v2's goodbye", advert(8, 0))
	// Alone on its link it is master again after Master_Down_Interval (about 3.2 s).
	for deadline := time.Now().Add(10 * time.Second); node("v2").in.State() != vrrp.Master; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the changed v2: %v 10 s after, want Master", node("v2").in.State())
		}
	}
	tb.left.expect(t, "the changed v2's adverts at priority 200", advert(8, 200))

	// A configuration that cannot be made changes nothing.
	bad := instance("v3", 9, 100, vip1)
	bad.Port = "nowhere"
	if err := r.SetVRRP([]VRRPConfig{bad}); err == nil {
		t.Fatal("SetVRRP with an instance on no port: no error")
	}
	if n := node("v2"); n == nil || n.in.State() == vrrp.Initialize {
		t.Fatal("a refused SetVRRP changed the instances")
	}
}
