package arpd

import (
	"net/netip"
	"testing"

	"ulb/router/header"
)

func TestNDPAnswersOnlyOwnAddresses(t *testing.T) {
	ll := header.LinkLocalFromMAC(portMAC)
	snm := func(a netip.Addr) (header.MAC, netip.Addr) {
		return header.SolicitedNodeMAC(a), header.SolicitedNodeAddr(a)
	}
	tests := []struct {
		name     string
		src      netip.Addr
		ethDst   header.MAC
		dst      netip.Addr
		target   netip.Addr
		slla     header.MAC
		answerTo netip.Addr // invalid: no answer
		ethTo    header.MAC
		drop     string
	}{
		{name: "global to solicited-node", src: peer6, target: own6.Addr(), slla: peerMAC, answerTo: peer6, ethTo: peerMAC},
		{name: "link-local target", src: peerLL, target: ll, slla: peerMAC, answerTo: peerLL, ethTo: peerMAC},
		{name: "unicast without option", src: peer6, ethDst: portMAC, dst: own6.Addr(), target: own6.Addr(), answerTo: peer6, ethTo: peer2MAC},
		{name: "on-link neighbour", src: peer6, target: other6, slla: peerMAC, drop: "not-ours"},
		{name: "address of another network", src: peer6, target: offLink6, slla: peerMAC, drop: "not-ours"},
		{name: "sender off-link", src: offLink6, target: own6.Addr(), slla: peerMAC, drop: "off-link"},
		{name: "sender uses our address", src: own6.Addr(), target: own6.Addr(), slla: peerMAC, drop: "own-address"},
		{name: "wrong solicited-node group", src: peer6, ethDst: header.SolicitedNodeMAC(other6), dst: header.SolicitedNodeAddr(other6), target: own6.Addr(), slla: peerMAC, drop: "not-ours"},
		{name: "multicast SLLA", src: peer6, target: own6.Addr(), slla: header.MAC{0x33, 0x33, 0, 0, 0, 1}, drop: "bad-sender-mac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ethDst, dst := tt.ethDst, tt.dst
			if !dst.IsValid() {
				ethDst, dst = snm(tt.target)
			}
			// The Ethernet source is peer2MAC so that an answer to the SLLA and one to the
			// frame's source can be told apart.
			h.n.HandleNDP(nsFrame(t, peer2MAC, ethDst, tt.src, dst, tt.target, tt.slla, 255))
			out := h.out.take()
			if !tt.answerTo.IsValid() {
				if len(out) != 0 {
					t.Fatalf("sent %d frames, want none", len(out))
				}
				if got := h.n.Stats().Drops[tt.drop]; got != 1 {
					t.Fatalf("drops %v, want %s=1", h.n.Stats().Drops, tt.drop)
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("sent %d frames, want one NA", len(out))
			}
			m := gotNDP(t, out[0].frame)
			if m.na == nil {
				t.Fatal("answer is not an NA")
			}
			if !m.na.Router() || !m.na.Solicited() || !m.na.Override() {
				t.Errorf("flags %#x, want R S O", m.na.Flags)
			}
			if addrOf(m.na.TargetAddress) != tt.target || addrOf(m.ip.SrcIP) != tt.target || addrOf(m.ip.DstIP) != tt.answerTo {
				t.Errorf("NA %v -> %v for %v", m.ip.SrcIP, m.ip.DstIP, m.na.TargetAddress)
			}
			if header.MAC(m.eth.DstMAC) != tt.ethTo || header.MAC(m.eth.SrcMAC) != portMAC || m.lla != portMAC {
				t.Errorf("ethernet %v -> %v, lla %v", m.eth.SrcMAC, m.eth.DstMAC, m.lla)
			}
			if s := h.n.Stats(); s.NSIn != 1 || s.NAOut != 1 {
				t.Errorf("stats %+v", s)
			}
			if !tt.slla.IsZero() {
				h.wantState(t, tt.src, "STALE")
			} else {
				h.wantState(t, tt.src, "")
			}
		})
	}
}

func TestNDPDuplicateAddressDetection(t *testing.T) {
	h := newHarness(t, nil)
	target := own6.Addr()
	h.n.HandleNDP(nsFrame(t, peerMAC, header.SolicitedNodeMAC(target), netip.IPv6Unspecified(), header.SolicitedNodeAddr(target), target, header.MAC{}, 255))
	out := h.out.take()
	if len(out) != 1 {
		t.Fatalf("sent %d frames, want one NA", len(out))
	}
	m := gotNDP(t, out[0].frame)
	if m.na == nil || m.na.Solicited() || !m.na.Override() || !m.na.Router() {
		t.Fatalf("answer %+v", m.na)
	}
	if addrOf(m.ip.DstIP) != netip.MustParseAddr("ff02::1") || header.MAC(m.eth.DstMAC) != (header.MAC{0x33, 0x33, 0, 0, 0, 1}) {
		t.Errorf("DAD answer to %v %v, want all-nodes", m.eth.DstMAC, m.ip.DstIP)
	}
	if len(h.n.Entries()) != 0 {
		t.Errorf("DAD created entries %+v", h.n.Entries())
	}
	// A DAD probe with a source link-layer option, or not to the solicited-node group,
	// is invalid (RFC 4861 §7.1.1).
	h.n.HandleNDP(nsFrame(t, peerMAC, header.SolicitedNodeMAC(target), netip.IPv6Unspecified(), header.SolicitedNodeAddr(target), target, peerMAC, 255))
	h.n.HandleNDP(nsFrame(t, peerMAC, portMAC, netip.IPv6Unspecified(), target, target, header.MAC{}, 255))
	if out := h.out.take(); len(out) != 0 {
		t.Fatalf("answered invalid DAD probes: %d frames", len(out))
	}
	if got := h.n.Stats().Drops["dad-format"]; got != 2 {
		t.Fatalf("drops %v", h.n.Stats().Drops)
	}
}

// TestNDPAdvertisementUpdates walks RFC 4861 §7.2.5's table.
func TestNDPAdvertisementUpdates(t *testing.T) {
	const (
		R = header.NDPNARouterFlag
		S = header.NDPNASolicitedFlag
		O = header.NDPNAOverrideFlag
	)
	na := func(h *harness, flags uint8, tlla header.MAC) {
		dst := own6.Addr()
		if flags&S == 0 {
			dst = netip.MustParseAddr("ff02::1")
		}
		h.n.HandleNDP(naFrame(t, peerMAC, portMAC, peer6, dst, peer6, flags, tlla))
	}
	// reachable makes an entry for peer6 with peerMAC in REACHABLE.
	reachable := func(t *testing.T) *harness {
		h := newHarness(t, nil)
		h.n.Enqueue(peer6, dataFrame(1, header.EtherTypeIPv6, 0), 64)
		h.out.take()
		na(h, S|O, peerMAC)
		h.wantState(t, peer6, "REACHABLE")
		h.out.take()
		return h
	}
	tests := []struct {
		name    string
		flags   uint8
		tlla    header.MAC
		state   string
		mac     header.MAC
		checkRt bool
	}{
		{"O=0 new MAC: REACHABLE→STALE, MAC kept", S, peer2MAC, "STALE", peerMAC, false},
		{"O=0 same MAC, S=1: stays REACHABLE", S, peerMAC, "REACHABLE", peerMAC, false},
		{"O=1 new MAC, S=0: updated, STALE", O, peer2MAC, "STALE", peer2MAC, false},
		{"O=1 new MAC, S=1: updated, REACHABLE", S | O, peer2MAC, "REACHABLE", peer2MAC, false},
		{"no option, S=1: confirms", S, header.MAC{}, "REACHABLE", peerMAC, false},
		{"no option, S=0: nothing", 0, header.MAC{}, "REACHABLE", peerMAC, false},
		{"R flag recorded", R | S | O, peerMAC, "REACHABLE", peerMAC, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := reachable(t)
			na(h, tt.flags, tt.tlla)
			h.wantState(t, peer6, tt.state)
			e, _ := h.entryOf(peer6)
			if e.MAC != tt.mac {
				t.Errorf("MAC %v, want %v", e.MAC, tt.mac)
			}
			if e.IsRouter != tt.checkRt {
				t.Errorf("IsRouter %v", e.IsRouter)
			}
		})
	}
	t.Run("NA without an entry creates nothing", func(t *testing.T) {
		h := newHarness(t, nil)
		na(h, O, peerMAC)
		h.wantState(t, peer6, "")
		if h.n.Stats().Drops["no-entry"] != 1 {
			t.Fatalf("drops %v", h.n.Stats().Drops)
		}
	})
	t.Run("NA for INCOMPLETE without option is ignored", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.Enqueue(peer6, dataFrame(1, header.EtherTypeIPv6, 0), 64)
		na(h, S|O, header.MAC{})
		h.wantState(t, peer6, "INCOMPLETE")
	})
	t.Run("unsolicited NA resolves INCOMPLETE as STALE", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.Enqueue(peer6, dataFrame(1, header.EtherTypeIPv6, 0), 64)
		h.out.take()
		na(h, O, peerMAC)
		h.wantState(t, peer6, "STALE")
		if out := h.out.take(); len(out) != 1 || header.Ethernet(out[0].frame).Destination() != peerMAC {
			t.Fatalf("queued frame not released to %v", peerMAC)
		}
	})
	t.Run("NA for our own address is a conflict", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.HandleNDP(naFrame(t, peerMAC, portMAC, peer6, netip.MustParseAddr("ff02::1"), own6.Addr(), O, peerMAC))
		if s := h.n.Stats(); s.Conflicts != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestNDPIgnoresRouterDiscovery(t *testing.T) {
	h := newHarness(t, nil)
	frame := nsFrame(t, peerMAC, portMAC, peer6, own6.Addr(), own6.Addr(), peerMAC, 255)
	for _, typ := range []uint8{header.ICMPv6RouterSolicit, header.ICMPv6RouterAdvert, header.ICMPv6Redirect} {
		f := append([]byte(nil), frame...)
		f[14+40] = typ
		h.n.HandleNDP(f)
	}
	if got := h.n.Stats().Drops["router-discovery"]; got != 3 {
		t.Fatalf("drops %v", h.n.Stats().Drops)
	}
	if out := h.out.take(); len(out) != 0 {
		t.Fatalf("sent %d frames", len(out))
	}
}
