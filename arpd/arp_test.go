package arpd

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

func TestARPAnswersOnlyOwnAddresses(t *testing.T) {
	anotherPort := netip.MustParseAddr("203.0.113.10") // the router's address on another port
	tests := []struct {
		name     string
		spa, tpa netip.Addr
		answer   bool
		drop     string
	}{
		{"own address", peer4, own4.Addr(), true, ""},
		{"on-link neighbour", peer4, other4, false, "not-ours"},
		{"gratuitous from neighbour", peer4, peer4, false, "not-ours"},
		{"address on another subnet", peer4, anotherPort, false, "not-ours"},
		{"network address", peer4, own4.Masked().Addr(), false, "not-ours"},
		{"broadcast address", peer4, netip.MustParseAddr("198.51.100.255"), false, "not-ours"},
		{"sender off-link", offLink4, own4.Addr(), false, "off-link"},
		{"sender is subnet broadcast", netip.MustParseAddr("198.51.100.255"), own4.Addr(), false, "off-link"},
		{"sender multicast", netip.MustParseAddr("224.0.0.1"), own4.Addr(), false, "bad-sender-ip"},
		{"sender uses our address", own4.Addr(), own4.Addr(), false, "own-address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, tt.spa, header.MAC{}, tt.tpa))
			out := h.out.take()
			if !tt.answer {
				if len(out) != 0 {
					t.Fatalf("sent %d frames, want none", len(out))
				}
				if got := h.n.Stats().Drops[tt.drop]; got != 1 {
					t.Fatalf("drops %v, want %s=1", h.n.Stats().Drops, tt.drop)
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("sent %d frames, want one reply", len(out))
			}
			eth, a := gotARP(t, out[0].frame)
			if eth.DstMAC.String() != peerMAC.String() || eth.SrcMAC.String() != portMAC.String() {
				t.Errorf("ethernet %v -> %v", eth.SrcMAC, eth.DstMAC)
			}
			if a.Operation != layers.ARPReply ||
				header.MAC(a.SourceHwAddress) != portMAC || addrOf(a.SourceProtAddress) != tt.tpa ||
				header.MAC(a.DstHwAddress) != peerMAC || addrOf(a.DstProtAddress) != tt.spa {
				t.Errorf("reply %+v", a)
			}
			if out[0].vnet[0]|out[0].vnet[1] != 0 {
				t.Errorf("virtio-net header %x, want zero", out[0].vnet)
			}
			if s := h.n.Stats(); s.ARPRequestsIn != 1 || s.ARPRepliesOut != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestARPProbeAnswered(t *testing.T) {
	h := newHarness(t, nil)
	// RFC 5227 probe: sender 0.0.0.0, target our address.
	h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, netip.IPv4Unspecified(), header.MAC{}, own4.Addr()))
	out := h.out.take()
	if len(out) != 1 {
		t.Fatalf("sent %d frames, want one", len(out))
	}
	_, a := gotARP(t, out[0].frame)
	if a.Operation != layers.ARPReply || addrOf(a.SourceProtAddress) != own4.Addr() || !addrOf(a.DstProtAddress).IsUnspecified() {
		t.Errorf("reply %+v", a)
	}
	if len(h.n.Entries()) != 0 {
		t.Errorf("a probe created entries: %+v", h.n.Entries())
	}
}

func TestARPLearningRules(t *testing.T) {
	t.Run("request for us creates STALE", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, own4.Addr()))
		h.wantState(t, peer4, "STALE")
		if m, ok := h.n.Lookup(peer4); !ok || m != peerMAC {
			t.Fatalf("Lookup = %v %v", m, ok)
		}
	})
	t.Run("request for others creates nothing", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, other4))
		h.wantState(t, peer4, "")
	})
	t.Run("unsolicited reply creates nothing", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.HandleARP(arpFrame(t, layers.ARPReply, portMAC, peerMAC, peer4, portMAC, own4.Addr()))
		h.wantState(t, peer4, "")
		if h.n.Stats().Drops["no-entry"] != 1 {
			t.Fatalf("drops %v", h.n.Stats().Drops)
		}
	})
	t.Run("off-link sender creates nothing", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, offLink4, header.MAC{}, own4.Addr()))
		if len(h.n.Entries()) != 0 {
			t.Fatalf("entries %+v", h.n.Entries())
		}
	})
	t.Run("any ARP updates an existing entry", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, own4.Addr()))
		h.n.Lookup(peer4) // STALE → DELAY
		h.wantState(t, peer4, "DELAY")
		// The same MAC in a request to someone else changes nothing.
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, other4))
		h.wantState(t, peer4, "DELAY")
		// A gratuitous ARP with a new MAC updates it and makes it STALE.
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peer2MAC, peer4, header.MAC{}, peer4))
		h.wantState(t, peer4, "STALE")
		if m, _ := h.n.Lookup(peer4); m != peer2MAC {
			t.Fatalf("MAC %v, want %v", m, peer2MAC)
		}
		// A reply sent to us confirms: REACHABLE.
		h.n.HandleARP(arpFrame(t, layers.ARPReply, portMAC, peer2MAC, peer4, portMAC, own4.Addr()))
		h.wantState(t, peer4, "REACHABLE")
	})
	t.Run("static entries are not changed", func(t *testing.T) {
		h := newHarness(t, nil)
		if !h.n.AddStatic(peer4, peerMAC) {
			t.Fatal("AddStatic refused")
		}
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peer2MAC, peer4, header.MAC{}, own4.Addr()))
		h.wantState(t, peer4, "PERMANENT")
		if m, _ := h.n.Lookup(peer4); m != peerMAC {
			t.Fatalf("MAC %v", m)
		}
		h.clk.Advance(DefaultGCStaleTime * 10)
		h.n.Tick()
		h.wantState(t, peer4, "PERMANENT")
		h.n.RemoveStatic(peer4)
		h.wantState(t, peer4, "")
	})
}

func TestVirtualAddressAnswering(t *testing.T) {
	h := newHarness(t, nil)
	vip := netip.MustParseAddr("198.51.100.100")
	vip6 := netip.MustParseAddr("2001:db8:1::100")
	ask := func() {
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, vip))
		h.n.HandleNDP(nsFrame(t, peerMAC, header.SolicitedNodeMAC(vip6), peer6, header.SolicitedNodeAddr(vip6), vip6, peerMAC, 255))
	}
	ask()
	if out := h.out.take(); len(out) != 0 {
		t.Fatalf("answered %d frames for a virtual address not yet added", len(out))
	}
	h.n.AddVirtual(vip, vrrpMAC)
	h.n.AddVirtual(vip6, vrrpMAC)
	if !containsMAC(h.n.MulticastMACs(), header.SolicitedNodeMAC(vip6)) {
		t.Errorf("MulticastMACs lacks the virtual address's solicited-node group")
	}
	ask()
	out := h.out.take()
	if len(out) != 2 {
		t.Fatalf("sent %d frames, want 2", len(out))
	}
	eth, a := gotARP(t, out[0].frame)
	if header.MAC(eth.SrcMAC) != vrrpMAC || header.MAC(a.SourceHwAddress) != vrrpMAC || addrOf(a.SourceProtAddress) != vip {
		t.Errorf("ARP reply %v %+v, want from %v", eth.SrcMAC, a, vrrpMAC)
	}
	m := gotNDP(t, out[1].frame)
	if m.na == nil || header.MAC(m.eth.SrcMAC) != vrrpMAC || m.lla != vrrpMAC || addrOf(m.na.TargetAddress) != vip6 {
		t.Errorf("NA from %v lla %v", m.eth.SrcMAC, m.lla)
	}
	// A virtual MAC on a configured address replaces the port MAC until removed.
	h.n.AddVirtual(own4.Addr(), vrrpMAC)
	h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, own4.Addr()))
	h.n.RemoveVirtual(own4.Addr())
	h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, own4.Addr()))
	out = h.out.take()
	if len(out) != 2 {
		t.Fatalf("sent %d frames, want 2", len(out))
	}
	if _, a := gotARP(t, out[0].frame); header.MAC(a.SourceHwAddress) != vrrpMAC {
		t.Errorf("answer with virtual MAC: %v", a.SourceHwAddress)
	}
	if _, a := gotARP(t, out[1].frame); header.MAC(a.SourceHwAddress) != portMAC {
		t.Errorf("answer after RemoveVirtual: %v", a.SourceHwAddress)
	}
	h.n.RemoveVirtual(vip)
	h.n.RemoveVirtual(vip6)
	ask()
	if out := h.out.take(); len(out) != 0 {
		t.Fatalf("answered %d frames for a removed virtual address", len(out))
	}
}

func containsMAC(list []header.MAC, m header.MAC) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

func TestAnnounce(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Addresses = append(c.Addresses, netip.MustParsePrefix("192.0.2.1/24"))
	})
	vip := netip.MustParseAddr("198.51.100.100")
	h.n.AddVirtual(vip, vrrpMAC)
	h.n.Announce()
	out := h.out.take()
	ll := header.LinkLocalFromMAC(portMAC)
	want4 := map[netip.Addr]header.MAC{own4.Addr(): portMAC, netip.MustParseAddr("192.0.2.1"): portMAC, vip: vrrpMAC}
	want6 := map[netip.Addr]header.MAC{own6.Addr(): portMAC, ll: portMAC}
	if len(out) != len(want4)+len(want6) {
		t.Fatalf("sent %d frames, want %d", len(out), len(want4)+len(want6))
	}
	for _, s := range out {
		if header.Ethernet(s.frame).EtherType() == header.EtherTypeARP {
			eth, a := gotARP(t, s.frame)
			spa := addrOf(a.SourceProtAddress)
			mac, ok := want4[spa]
			if !ok {
				t.Errorf("gratuitous ARP for %v", spa)
				continue
			}
			delete(want4, spa)
			if a.Operation != layers.ARPRequest || addrOf(a.DstProtAddress) != spa ||
				header.MAC(a.SourceHwAddress) != mac || header.MAC(a.DstHwAddress) != (header.MAC{}) ||
				header.MAC(eth.DstMAC) != header.BroadcastMAC || header.MAC(eth.SrcMAC) != mac {
				t.Errorf("gratuitous ARP %v -> %v %+v", eth.SrcMAC, eth.DstMAC, a)
			}
			continue
		}
		m := gotNDP(t, s.frame)
		if m.na == nil {
			t.Fatalf("NS sent by Announce")
		}
		target := addrOf(m.na.TargetAddress)
		mac, ok := want6[target]
		if !ok {
			t.Errorf("NA for %v", target)
			continue
		}
		delete(want6, target)
		if m.na.Solicited() || !m.na.Override() || !m.na.Router() {
			t.Errorf("NA flags %#x, want R=1 S=0 O=1", m.na.Flags)
		}
		if addrOf(m.ip.DstIP) != netip.MustParseAddr("ff02::1") || header.MAC(m.eth.DstMAC) != (header.MAC{0x33, 0x33, 0, 0, 0, 1}) ||
			addrOf(m.ip.SrcIP) != target || m.lla != mac || header.MAC(m.eth.SrcMAC) != mac {
			t.Errorf("NA %v %v -> %v %v lla %v", m.eth.SrcMAC, m.ip.SrcIP, m.eth.DstMAC, m.ip.DstIP, m.lla)
		}
	}
	if len(want4)+len(want6) != 0 {
		t.Errorf("not announced: %v %v", want4, want6)
	}
	if !h.n.AnnounceAddress(vip) || h.n.AnnounceAddress(other4) {
		t.Errorf("AnnounceAddress ownership")
	}
	if out := h.out.take(); len(out) != 1 {
		t.Errorf("AnnounceAddress sent %d frames", len(out))
	}
}

func TestMulticastMACs(t *testing.T) {
	h := newHarness(t, nil)
	got := h.n.MulticastMACs()
	want := []header.MAC{
		{0x33, 0x33, 0, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 2},
		header.SolicitedNodeMAC(own6.Addr()), header.SolicitedNodeMAC(header.LinkLocalFromMAC(portMAC)),
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, m := range want {
		if !containsMAC(got, m) {
			t.Errorf("missing %v in %v", m, got)
		}
	}
	h.n.SetAddresses([]netip.Prefix{own4})
	if got := h.n.MulticastMACs(); len(got) != 3 || containsMAC(got, header.SolicitedNodeMAC(own6.Addr())) {
		t.Errorf("after SetAddresses: %v", got)
	}
}

// countHandler counts log records at Warn and above.
type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h countHandler) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h countHandler) WithGroup(string) slog.Handler                { return h }

func TestConflictLoggedAtMostEveryInterval(t *testing.T) {
	var logged atomic.Int64
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(countHandler{&logged}) })
	claim := arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, own4.Addr(), header.MAC{}, own4.Addr())
	for range 5 {
		h.n.HandleARP(claim)
	}
	if logged.Load() != 1 || h.n.Stats().Conflicts != 5 {
		t.Fatalf("logged %d lines for %d conflicts", logged.Load(), h.n.Stats().Conflicts)
	}
	h.clk.Advance(conflictLogInterval)
	h.n.HandleARP(claim)
	if logged.Load() != 2 {
		t.Fatalf("logged %d lines after the interval", logged.Load())
	}
	if len(h.out.take()) != 0 || len(h.n.Entries()) != 0 {
		t.Fatal("a conflicting frame was answered or learned")
	}
}
