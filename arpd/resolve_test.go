package arpd

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

const off = header.Headroom

// checkSolicit checks that s is a solicitation for target: broadcast ARP or NS to the
// solicited-node group, or unicast to mac when mac is not zero.
func checkSolicit(t *testing.T, s sent, target netip.Addr, mac header.MAC) {
	t.Helper()
	if target.Is4() {
		eth, a := gotARP(t, s.frame)
		wantDst, wantTHA := header.BroadcastMAC, header.MAC{}
		if !mac.IsZero() {
			wantDst, wantTHA = mac, mac
		}
		if a.Operation != layers.ARPRequest || addrOf(a.DstProtAddress) != target || addrOf(a.SourceProtAddress) != own4.Addr() ||
			header.MAC(a.SourceHwAddress) != portMAC || header.MAC(eth.DstMAC) != wantDst || header.MAC(a.DstHwAddress) != wantTHA {
			t.Fatalf("ARP request %v -> %v %+v", eth.SrcMAC, eth.DstMAC, a)
		}
		return
	}
	m := gotNDP(t, s.frame)
	wantDst, wantIP := header.SolicitedNodeMAC(target), header.SolicitedNodeAddr(target)
	if !mac.IsZero() {
		wantDst, wantIP = mac, target
	}
	if m.ns == nil || addrOf(m.ns.TargetAddress) != target || header.MAC(m.eth.DstMAC) != wantDst || addrOf(m.ip.DstIP) != wantIP ||
		addrOf(m.ip.SrcIP) != own6.Addr() || m.lla != portMAC || header.MAC(m.eth.SrcMAC) != portMAC {
		t.Fatalf("NS %v %v -> %v %v lla %v", m.eth.SrcMAC, m.ip.SrcIP, m.eth.DstMAC, m.ip.DstIP, m.lla)
	}
}

// answer makes peer answer a solicitation for a with mac, solicited (unicast to us).
func (h *harness) answer(t *testing.T, a netip.Addr, mac header.MAC) {
	if a.Is4() {
		h.n.HandleARP(arpFrame(t, layers.ARPReply, portMAC, mac, a, portMAC, own4.Addr()))
		return
	}
	h.n.HandleNDP(naFrame(t, mac, portMAC, a, own6.Addr(), a, header.NDPNASolicitedFlag|header.NDPNAOverrideFlag, mac))
}

func families(t *testing.T, f func(t *testing.T, peer netip.Addr, etherType uint16)) {
	t.Run("IPv4", func(t *testing.T) { f(t, peer4, header.EtherTypeIPv4) })
	t.Run("IPv6", func(t *testing.T) { f(t, peer6, header.EtherTypeIPv6) })
}

func TestResolutionReleasesQueueInOrder(t *testing.T) {
	families(t, func(t *testing.T, peer netip.Addr, et uint16) {
		h := newHarness(t, nil)
		if _, ok := h.n.Lookup(peer); ok {
			t.Fatal("hit on an empty table")
		}
		for i := byte(1); i <= 3; i++ {
			h.n.Enqueue(peer, dataFrame(i, et, i), off)
		}
		out := h.out.take()
		if len(out) != 1 {
			t.Fatalf("sent %d frames, want one solicitation", len(out))
		}
		checkSolicit(t, out[0], peer, header.MAC{})
		h.wantState(t, peer, "INCOMPLETE")
		if e, _ := h.entryOf(peer); e.Queued != 3 {
			t.Fatalf("queued %d", e.Queued)
		}
		h.answer(t, peer, peerMAC)
		h.wantState(t, peer, "REACHABLE")
		out = h.out.take()
		if len(out) != 3 {
			t.Fatalf("released %d frames, want 3", len(out))
		}
		for i, s := range out {
			want := byte(i + 1)
			eth := header.Ethernet(s.frame)
			if eth.Destination() != peerMAC || eth.Source() != portMAC || eth.EtherType() != et || len(s.frame) != 64 || s.frame[20] != want {
				t.Errorf("frame %d: dst %v src %v type %#x len %d tag %d", i, eth.Destination(), eth.Source(), eth.EtherType(), len(s.frame), s.frame[20])
			}
			if s.vnet[0] != want {
				t.Errorf("frame %d: virtio-net header %x not carried", i, s.vnet)
			}
		}
		if m, ok := h.n.Lookup(peer); !ok || m != peerMAC {
			t.Fatalf("Lookup = %v %v", m, ok)
		}
		// A frame enqueued after resolution (a race with Lookup) goes straight out.
		h.n.Enqueue(peer, dataFrame(9, et, 0), off)
		if out := h.out.take(); len(out) != 1 || header.Ethernet(out[0].frame).Destination() != peerMAC {
			t.Fatalf("direct send: %d frames", len(out))
		}
		if s := h.n.Stats(); s.Queued != 3 || s.Released != 3 || s.QueueDrops != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestResolutionRetriesThenFails(t *testing.T) {
	families(t, func(t *testing.T, peer netip.Addr, et uint16) {
		h := newHarness(t, nil)
		h.n.Enqueue(peer, dataFrame(1, et, 0), off)
		h.n.Enqueue(peer, dataFrame(2, et, 0), off)
		checkSolicit(t, h.out.take()[0], peer, header.MAC{})
		for probe := 2; probe <= DefaultMaxProbes; probe++ {
			h.clk.Advance(DefaultRetransTimer - time.Millisecond)
			h.n.Tick()
			if out := h.out.take(); len(out) != 0 {
				t.Fatalf("retransmitted before the timer: %d frames", len(out))
			}
			h.clk.Advance(time.Millisecond)
			h.n.Tick()
			out := h.out.take()
			if len(out) != 1 {
				t.Fatalf("probe %d: sent %d frames", probe, len(out))
			}
			checkSolicit(t, out[0], peer, header.MAC{})
			h.wantState(t, peer, "INCOMPLETE")
		}
		if len(h.unreach.take()) != 0 {
			t.Fatal("frames dropped before failure")
		}
		h.clk.Advance(DefaultRetransTimer)
		h.n.Tick()
		h.wantState(t, peer, "FAILED")
		if out := h.out.take(); len(out) != 0 {
			t.Fatalf("sent %d frames after the last probe", len(out))
		}
		dead := h.unreach.take()
		if len(dead) != 2 || dead[0].frame[20] != 1 || dead[1].frame[20] != 2 {
			t.Fatalf("OnUnreachable got %d frames", len(dead))
		}
		// While FAILED, a new frame is refused at once, without a solicitation.
		h.n.Enqueue(peer, dataFrame(3, et, 0), off)
		if out, dead := h.out.take(), h.unreach.take(); len(out) != 0 || len(dead) != 1 || dead[0].frame[20] != 3 {
			t.Fatalf("FAILED: sent %d, refused %d", len(out), len(dead))
		}
		if _, ok := h.n.Lookup(peer); ok {
			t.Fatal("Lookup hit on FAILED")
		}
		if s := h.n.Stats(); s.ResolutionFailures != 1 || s.Unreachable != 3 {
			t.Errorf("stats %+v", s)
		}
		h.clk.Advance(DefaultFailedKeep)
		h.n.Tick()
		h.wantState(t, peer, "")
		// After expiry, resolution starts again.
		h.n.Enqueue(peer, dataFrame(4, et, 0), off)
		h.wantState(t, peer, "INCOMPLETE")
		checkSolicit(t, h.out.take()[0], peer, header.MAC{})
	})
}

func TestQueueOverflowDropsOldest(t *testing.T) {
	h := newHarness(t, nil)
	for i := byte(1); i <= 5; i++ {
		h.n.Enqueue(peer4, dataFrame(i, header.EtherTypeIPv4, 0), off)
	}
	h.out.take()
	if s := h.n.Stats(); s.QueueDrops != 2 {
		t.Fatalf("queue drops %d, want 2", s.QueueDrops)
	}
	h.answer(t, peer4, peerMAC)
	out := h.out.take()
	if len(out) != DefaultQueueLen {
		t.Fatalf("released %d frames", len(out))
	}
	for i, s := range out {
		if s.frame[20] != byte(i+3) {
			t.Errorf("frame %d has tag %d, want %d", i, s.frame[20], i+3)
		}
	}
}

func TestQueueTotalBound(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxQueued = 4 })
	for i := range 6 {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)})
		h.n.Enqueue(a, dataFrame(byte(i), header.EtherTypeIPv4, 0), off)
	}
	if s := h.n.Stats(); s.Queued != 4 || s.QueueDrops != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEnqueueRejectsBadInput(t *testing.T) {
	h := newHarness(t, nil)
	h.n.Enqueue(peer4, make([]byte, 20), 5)                                    // offset inside the vnet header
	h.n.Enqueue(peer4, make([]byte, off+10), off)                              // shorter than Ethernet
	h.n.Enqueue(netip.MustParseAddr("224.0.0.5"), dataFrame(1, 0x800, 0), off) // multicast
	h.n.Enqueue(own4.Addr(), dataFrame(1, 0x800, 0), off)                      // ourselves
	h.n.Enqueue(netip.Addr{}, dataFrame(1, 0x800, 0), off)
	s := h.n.Stats()
	if s.Drops["short"] != 2 || s.Drops["bad-next-hop"] != 3 || len(h.n.Entries()) != 0 || len(h.out.take()) != 0 {
		t.Fatalf("stats %+v, entries %v", s, h.n.Entries())
	}
}

// TestStateTransitions walks REACHABLE → STALE → DELAY → PROBE → REACHABLE, and PROBE →
// FAILED when the neighbour stays silent, for both families.
func TestStateTransitions(t *testing.T) {
	families(t, func(t *testing.T, peer netip.Addr, et uint16) {
		h := newHarness(t, nil)
		h.n.Enqueue(peer, dataFrame(1, et, 0), off)
		h.answer(t, peer, peerMAC)
		h.out.take()
		h.wantState(t, peer, "REACHABLE")

		h.clk.Advance(DefaultReachableTime - time.Second)
		h.n.Tick()
		h.wantState(t, peer, "REACHABLE")
		h.clk.Advance(time.Second)
		h.n.Tick()
		h.wantState(t, peer, "STALE")

		// A hit on STALE returns the MAC and starts DELAY without sending anything.
		if m, ok := h.n.Lookup(peer); !ok || m != peerMAC {
			t.Fatalf("Lookup on STALE = %v %v", m, ok)
		}
		h.wantState(t, peer, "DELAY")
		if out := h.out.take(); len(out) != 0 {
			t.Fatalf("sent %d frames on entering DELAY", len(out))
		}
		h.clk.Advance(DefaultDelayFirstProbe - time.Millisecond)
		h.n.Tick()
		h.wantState(t, peer, "DELAY")
		h.clk.Advance(time.Millisecond)
		h.n.Tick()
		h.wantState(t, peer, "PROBE")
		out := h.out.take()
		if len(out) != 1 {
			t.Fatalf("sent %d frames entering PROBE", len(out))
		}
		checkSolicit(t, out[0], peer, peerMAC)
		if _, ok := h.n.Lookup(peer); !ok {
			t.Fatal("Lookup miss in PROBE")
		}
		h.answer(t, peer, peerMAC)
		h.wantState(t, peer, "REACHABLE")

		// Again, but the neighbour is gone this time.
		h.clk.Advance(DefaultReachableTime)
		h.n.Tick()
		h.n.Lookup(peer)
		h.clk.Advance(DefaultDelayFirstProbe)
		h.n.Tick()
		h.wantState(t, peer, "PROBE")
		for i := 1; i < DefaultMaxProbes; i++ {
			h.clk.Advance(DefaultRetransTimer)
			h.n.Tick()
			h.wantState(t, peer, "PROBE")
		}
		h.clk.Advance(DefaultRetransTimer)
		h.n.Tick()
		h.wantState(t, peer, "FAILED")
		out = h.out.take()
		if len(out) != DefaultMaxProbes {
			t.Fatalf("sent %d unicast probes, want %d", len(out), DefaultMaxProbes)
		}
		for _, s := range out {
			checkSolicit(t, s, peer, peerMAC)
		}
		if _, ok := h.n.Lookup(peer); ok {
			t.Fatal("Lookup hit on FAILED")
		}
	})
}

func TestUnusedStaleEntriesAreCollected(t *testing.T) {
	h := newHarness(t, nil)
	learn := func(a netip.Addr) {
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, a, header.MAC{}, own4.Addr()))
	}
	used, unused := peer4, other4
	learn(used)
	learn(unused)
	h.out.take()
	for range 12 { // 60s in 5s steps; used is looked up every step
		h.clk.Advance(5 * time.Second)
		h.n.Tick()
		if _, ok := h.n.Lookup(used); !ok {
			t.Fatal("Lookup miss")
		}
		h.answer(t, used, peerMAC) // answer its probes: it stays alive
	}
	h.wantState(t, unused, "")
	if _, ok := h.entryOf(used); !ok {
		t.Fatal("used entry collected")
	}
}

func TestTableFull(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxEntries = 2 })
	h.n.Enqueue(peer4, dataFrame(1, header.EtherTypeIPv4, 0), off)
	h.n.Enqueue(other4, dataFrame(2, header.EtherTypeIPv4, 0), off)
	h.n.Enqueue(netip.MustParseAddr("198.51.100.40"), dataFrame(3, header.EtherTypeIPv4, 0), off)
	if s := h.n.Stats(); s.Drops["table-full"] != 1 || s.Unreachable != 1 || len(h.n.Entries()) != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLookupMulticastAndBroadcast(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		ip  string
		mac header.MAC
	}{
		{"224.0.0.18", header.MAC{0x01, 0x00, 0x5e, 0x00, 0x00, 0x12}},
		{"239.129.2.3", header.MAC{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}},
		{"ff02::12", header.MAC{0x33, 0x33, 0, 0, 0, 0x12}},
		{"255.255.255.255", header.BroadcastMAC},
		{"198.51.100.255", header.BroadcastMAC},
	}
	for _, tt := range tests {
		if m, ok := h.n.Lookup(netip.MustParseAddr(tt.ip)); !ok || m != tt.mac {
			t.Errorf("Lookup(%s) = %v %v, want %v", tt.ip, m, ok, tt.mac)
		}
	}
	if _, ok := h.n.Lookup(netip.MustParseAddr("203.0.113.255")); ok {
		t.Error("broadcast of a foreign network resolved")
	}
}

func TestEntriesReport(t *testing.T) {
	h := newHarness(t, nil)
	h.n.Enqueue(peer6, dataFrame(1, header.EtherTypeIPv6, 0), off)
	h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, own4.Addr()))
	h.clk.Advance(3 * time.Second)
	got := h.n.Entries()
	if len(got) != 2 || got[0].Address != peer4 || got[1].Address != peer6 {
		t.Fatalf("entries %+v", got)
	}
	if e := got[0]; e.Port != "test" || e.State != "STALE" || e.MAC != peerMAC || e.Age != 3*time.Second {
		t.Errorf("IPv4 entry %+v", e)
	}
	if e := got[1]; e.State != "INCOMPLETE" || e.Queued != 1 || !e.MAC.IsZero() {
		t.Errorf("IPv6 entry %+v", e)
	}
}

// TestConcurrentLookup runs Lookup and Enqueue from several goroutines while the table
// changes underneath; run with -race.
func TestConcurrentLookup(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReachableTime = 2 * time.Second })
	addrs := []netip.Addr{peer4, other4, peer6, other6}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			buf := dataFrame(byte(g), header.EtherTypeIPv4, 0)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := addrs[(g+i)%len(addrs)]
				if m, ok := h.n.Lookup(a); ok && m != peerMAC && m != peer2MAC {
					t.Errorf("Lookup(%v) = %v", a, m)
					return
				} else if !ok {
					h.n.Enqueue(a, buf, off)
				}
			}
		})
	}
	for i := range 300 {
		mac := peerMAC
		if i%3 == 0 {
			mac = peer2MAC
		}
		for _, a := range addrs {
			h.answer(t, a, mac)
		}
		h.clk.Advance(700 * time.Millisecond)
		h.n.Tick()
		h.n.Entries()
		h.n.Stats()
		if i%50 == 0 {
			h.n.AddVirtual(netip.MustParseAddr("198.51.100.100"), vrrpMAC)
			h.n.Announce()
		}
		h.out.take()
	}
	close(stop)
	wg.Wait()
}

func TestLookupDoesNotAllocate(t *testing.T) {
	h := newHarness(t, nil)
	h.n.Enqueue(peer4, dataFrame(1, header.EtherTypeIPv4, 0), off)
	h.answer(t, peer4, peerMAC)
	h.n.Enqueue(peer6, dataFrame(1, header.EtherTypeIPv6, 0), off)
	h.answer(t, peer6, peerMAC)
	for _, a := range []netip.Addr{peer4, peer6, other4, netip.MustParseAddr("ff02::1")} {
		if n := testing.AllocsPerRun(1000, func() { h.n.Lookup(a) }); n != 0 {
			t.Errorf("Lookup(%v): %v allocations", a, n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	n := New(Config{MAC: portMAC, Addresses: []netip.Prefix{own4, own6}})
	for i := range 256 {
		n.AddStatic(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), peerMAC)
	}
	a := netip.MustParseAddr("198.51.100.77")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := n.Lookup(a); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkEnqueueFailed refuses frames towards a next hop that failed to resolve (what
// a flood of replies to spoofed sources makes), from every CPU at once.
func BenchmarkEnqueueFailed(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.OnUnreachable = func([]byte, int) {} })
	frame := dataFrame(1, header.EtherTypeIPv4, 0)
	h.n.Enqueue(peer4, frame, off)
	for range DefaultMaxProbes {
		h.clk.Advance(DefaultRetransTimer)
		h.n.Tick()
	}
	if e, _ := h.entryOf(peer4); e.State != "FAILED" {
		b.Fatalf("state %q", e.State)
	}
	b.RunParallel(func(pb *testing.PB) {
		buf := dataFrame(1, header.EtherTypeIPv4, 0)
		for pb.Next() {
			h.n.Enqueue(peer4, buf, off)
		}
	})
}
