package router

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/port/porttest"
	"ulb/vrrp"
)

// linkedRouter runs a router whose VRRP instance (v3, IPv4 or IPv6, interval 100ms)
// runs on "left" and advertises on "right" too (advert_ports).
func linkedRouter(t *testing.T, prio uint8, ipv6 bool) (*testBench, *vrrpNode) {
	t.Helper()
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1500)
	vip := netip.MustParseAddr("192.0.2.100")
	if ipv6 {
		vip = netip.MustParseAddr("2001:db8:1::100")
	}
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{
				netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:2::1/64")}},
		},
		VRRP: []VRRPConfig{{Port: "left", AdvertPorts: []string{"right"}, Instance: vrrp.Config{Name: "vx",
			VRID: 9, Version: 3, Priority: prio, Interval: 100 * time.Millisecond, Preempt: true,
			Addresses: []netip.Addr{vip}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tb := startBench(t, r, newPeer(hl, macHostL, hostL4, hostL6), newPeer(hr, macHostR, hostR4, hostR6))
	return tb, r.vrrpNodes()[0]
}

// vrrpSum is the Internet checksum of a VRRP message with the IP pseudo-header (RFC
// 9568 §5.2.8), computed here independently of package vrrp.
func vrrpSum(src, dst netip.Addr, msg []byte) uint16 {
	var b []byte
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	if src.Is4() {
		b = append(b, 0, 112, byte(len(msg)>>8), byte(len(msg)))
	} else {
		b = append(b, 0, 0, byte(len(msg)>>8), byte(len(msg)), 0, 0, 0, 112)
	}
	b = append(b, msg...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	var s uint32
	for i := 0; i < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// advertOf matches a VRRP advert of VRID 9 and the given priority from src and the MAC
// from, to the family's group with TTL (hop limit) 255 and a valid checksum for src.
func advertOf(t *testing.T, src netip.Addr, from net.HardwareAddr, prio uint8) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if eth == nil || eth.SrcMAC.String() != from.String() {
			return false
		}
		var ipSrc, ipDst netip.Addr
		var ttl uint8
		var msg []byte
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && ip.Protocol == 112 {
			ipSrc, _ = netip.AddrFromSlice(ip.SrcIP)
			ipDst, _ = netip.AddrFromSlice(ip.DstIP)
			ttl, msg = ip.TTL, ip.Payload
		} else if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok && ip.NextHeader == 112 {
			ipSrc, _ = netip.AddrFromSlice(ip.SrcIP)
			ipDst, _ = netip.AddrFromSlice(ip.DstIP)
			ttl, msg = ip.HopLimit, ip.Payload
		} else {
			return false
		}
		if len(msg) < 8 || msg[1] != 9 || msg[2] != prio || ipSrc != src {
			return false
		}
		group := vrrp.GroupIPv4
		if src.Is6() {
			group = vrrp.GroupIPv6
		}
		if ipDst != group || ttl != 255 || vrrpSum(ipSrc, ipDst, msg) != 0 {
			t.Errorf("advert from %v: to %v TTL %d checksum sum %#x, want %v, 255, 0", src, ipDst, ttl, vrrpSum(ipSrc, ipDst, msg), group)
		}
		return true
	}
}

// A master sends each advert on its own port from its address and the virtual MAC,
// and on the extra link from that port's address and own MAC (no virtual MAC there),
// to the VRRP group with TTL 255 (RFC 9568 §5.1.1.3, §5.1.2.3, §7.3).
func TestVRRPAdvertPortsSend(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		name := "ipv4"
		if ipv6 {
			name = "ipv6"
		}
		t.Run(name, func(t *testing.T) {
			tb, n := linkedRouter(t, 200, ipv6)
			vmac := net.HardwareAddr{0, 0, 0x5e, 0, 1, 9}
			srcL, srcR := routerL4, routerR4
			if ipv6 {
				vmac[4] = 2
				srcL, srcR = linkLocal(macRouterL), linkLocal(macRouterR)
			}
			tb.left.expect(t, "the advert on the own port", advertOf(t, srcL, vmac, 200))
			tb.right.expect(t, "the advert on the extra link", advertOf(t, srcR, macRouterR, 200))
			tb.right.expectNone(t, "an advert from the virtual MAC on the extra link", func(p gopacket.Packet) bool {
				eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				return eth != nil && eth.SrcMAC.String() == vmac.String()
			})
			if inf := n.in.Info(); len(inf.Links) != 2 || inf.Links[1].Name != "right" || inf.Links[1].AdvertsSent == 0 {
				t.Fatalf("link counters %+v", inf.Links)
			}
		})
	}
}

// linkLocal is the EUI-64 link-local address of a MAC (RFC 4291 appendix A).
func linkLocal(m net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15] = m[0]^2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]
	return netip.AddrFrom16(a)
}

// sendAdvert sends a priority-prio VRRPv3 IPv4 advert of VRID 9 from the peer with ttl.
func sendAdvert(h *peer, src netip.Addr, prio, ttl uint8) {
	buf := make([]byte, vrrp.MaxAdvertSize)
	l := vrrp.BuildAdvert(buf, vrrp.AdvertFields{Version: 3, VRID: 9, Priority: prio, Interval: 100 * time.Millisecond,
		Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100")}, Src: src, Dst: vrrp.GroupIPv4})
	h.send(&layers.Ethernet{SrcMAC: h.mac, DstMAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 0x12}, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: ttl, Protocol: 112, SrcIP: src.AsSlice(), DstIP: vrrp.GroupIPv4.AsSlice()},
		gopacket.Payload(buf[:l]))
}

// A backup hears the master on the extra link alone: its Master_Down_Timer is reset
// there (RFC 9568 §6.4.2), so it stays backup while the own port is silent, and takes
// over only once no link carries the master's adverts; adverts on the extra link are
// validated (§7.1) and counted on it.
func TestVRRPAdvertPortsBackup(t *testing.T) {
	tb, n := linkedRouter(t, 100, false)
	// Master_Down_Interval is 3 × 100ms + 156/256 × 100ms ≈ 361ms: 2 s of adverts every
	// 50ms (room for a loaded machine) on the extra link keep the instance backup.
	for range 40 {
		sendAdvert(tb.right, hostR4, 200, 255)
		time.Sleep(50 * time.Millisecond)
		if s := n.in.State(); s != vrrp.Backup {
			t.Fatalf("adverts on the extra link: %v, want Backup", s)
		}
	}
	// (The first adverts may have come before the instance started: counted, not-running.)
	before := n.in.Info()
	sendAdvert(tb.right, hostR4, 200, 254) // RFC 9568 §7.1: TTL must be 255
	time.Sleep(50 * time.Millisecond)
	inf := n.in.Info()
	if inf.Links[1].AdvertsReceived < 30 || inf.Links[0].AdvertsReceived != 0 || inf.Links[1].LastFrom != hostR4 {
		t.Fatalf("per-link counters %+v: want the adverts counted on the extra link only", inf.Links)
	}
	if d := inf.Links[1].Drops - before.Links[1].Drops; d != 1 || inf.Counters.Drops[vrrp.DropTTL] != 1 {
		t.Fatalf("TTL-254 advert on the extra link: %d more link drops, ttl drops %d, want 1, 1", d, inf.Counters.Drops[vrrp.DropTTL])
	}
	if inf.Master != hostR4 || inf.MasterPriority != 200 {
		t.Fatalf("master %v/%d, want %v/200", inf.Master, inf.MasterPriority, hostR4)
	}
	// Every link silent: master within Master_Down_Interval (and some scheduling).
	start := time.Now()
	for n.in.State() != vrrp.Master {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("no adverts on any link: %v after 2 s, want Master", n.in.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("master after %v, before Master_Down_Interval", el)
	}
	tb.right.expect(t, "the new master's advert on the extra link", advertOf(t, routerR4, macRouterR, 100))
	// A higher-priority advert on the extra link makes the master step down (§6.4.3).
	sendAdvert(tb.right, hostR4, 250, 255)
	for start := time.Now(); n.in.State() != vrrp.Backup; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > time.Second {
			t.Fatalf("a priority-250 advert on the extra link: %v, want Backup", n.in.State())
		}
	}
}

// An extra link must be another Ethernet port of the router, with an address to send
// IPv4 adverts from.
func TestVRRPAdvertPortsRefused(t *testing.T) {
	tb, _ := linkedRouter(t, 100, false)
	base := VRRPConfig{Port: "left", Instance: vrrp.Config{Name: "vy", VRID: 10, Version: 3, Priority: 100,
		Interval: 100 * time.Millisecond, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.101")}}}
	for _, ports := range [][]string{{"nowhere"}, {"left"}, {"right", "right"}} {
		c := base
		c.AdvertPorts = ports
		if err := tb.r.SetVRRP([]VRRPConfig{c}); err == nil {
			t.Errorf("advert ports %q: no error", ports)
		}
	}
	if got := tb.r.VRRPLinks("vx"); len(got) != 2 || got[0] != "left" || got[1] != "right" {
		t.Errorf("after refused changes: VRRPLinks(vx) = %q, want [left right]", got)
	}
}

// SetVRRP (a reload) that adds or removes an instance's advert port makes it again:
// the removed link's port no longer hands it adverts nor carries its own.
func TestVRRPAdvertPortsSetVRRP(t *testing.T) {
	tb, n := linkedRouter(t, 200, false)
	tb.right.expect(t, "the advert on the extra link", advertOf(t, routerR4, macRouterR, 200))
	c := n.cfg
	c.AdvertPorts = nil
	if err := tb.r.SetVRRP([]VRRPConfig{c}); err != nil {
		t.Fatal(err)
	}
	if got := tb.r.VRRPLinks("vx"); len(got) != 1 {
		t.Fatalf("links after removing the advert port: %q", got)
	}
	if mux := tb.r.livePort("right").vrrpMux.Load(); mux != nil && len(mux.Instances()) != 0 {
		t.Fatalf("the removed link's port still hands adverts to %d instances", len(mux.Instances()))
	}
	// Its goodbye went out on both links; from now on, nothing on the right.
	time.Sleep(50 * time.Millisecond)
	for len(tb.right.rx) > 0 {
		<-tb.right.rx
	}
	tb.right.expectNone(t, "an advert on the removed link", advertOf(t, routerR4, macRouterR, 200))
	c.AdvertPorts = []string{"right"}
	if err := tb.r.SetVRRP([]VRRPConfig{c}); err != nil {
		t.Fatal(err)
	}
	if got := tb.r.VRRPLinks("vx"); len(got) != 2 {
		t.Fatalf("links after adding the advert port again: %q", got)
	}
	tb.right.expect(t, "the advert on the extra link again", advertOf(t, routerR4, macRouterR, 200))
	// A higher-priority peer on the extra link is heard again.
	sendAdvert(tb.right, hostR4, 250, 255)
	node := tb.r.vrrpNodes()[0]
	for start := time.Now(); node.in.State() != vrrp.Backup; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("after re-adding the advert port, a priority-250 advert on it: %v, want Backup", node.in.State())
		}
	}
}
