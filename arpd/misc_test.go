package arpd

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

func TestSourceAddressSelection(t *testing.T) {
	second := netip.MustParsePrefix("192.0.2.1/24")
	tests := []struct {
		name   string
		addrs  []netip.Prefix
		target netip.Addr
		src    netip.Addr
	}{
		{"IPv4 on the second network", []netip.Prefix{own4, second}, netip.MustParseAddr("192.0.2.50"), second.Addr()},
		{"IPv4 off every network", []netip.Prefix{own4, second}, netip.MustParseAddr("203.0.113.5"), own4.Addr()},
		{"IPv4 without an IPv4 address", []netip.Prefix{own6}, peer4, netip.IPv4Unspecified()},
		{"IPv6 global", []netip.Prefix{own4, own6}, peer6, own6.Addr()},
		{"IPv6 link-local", []netip.Prefix{own4, own6}, peerLL, header.LinkLocalFromMAC(portMAC)},
		{"IPv6 without a global address", []netip.Prefix{own4}, peer6, header.LinkLocalFromMAC(portMAC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Addresses = tt.addrs })
			h.n.Enqueue(tt.target, dataFrame(1, header.EtherTypeIPv4, 0), off)
			out := h.out.take()
			if len(out) != 1 {
				t.Fatalf("sent %d frames", len(out))
			}
			var src netip.Addr
			if tt.target.Is4() {
				_, a := gotARP(t, out[0].frame)
				src = addrOf(a.SourceProtAddress)
			} else {
				src = addrOf(gotNDP(t, out[0].frame).ip.SrcIP)
			}
			if src != tt.src {
				t.Fatalf("source %v, want %v", src, tt.src)
			}
		})
	}
}

func TestAddressForms(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Addresses = []netip.Prefix{netip.MustParsePrefix("::ffff:198.51.100.10/120"), own6}
	})
	if _, ok := h.n.Owns(own4.Addr()); !ok {
		t.Fatal("IPv4-mapped configured address not owned as IPv4")
	}
	if m, ok := h.n.Owns(h.n.LinkLocal()); !ok || m != portMAC || h.n.LinkLocal() != header.LinkLocalFromMAC(portMAC) {
		t.Fatal("derived link-local address not owned")
	}
	h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, own4.Addr()))
	if len(h.out.take()) != 1 {
		t.Fatalf("not answered: drops %v", h.n.Stats().Drops)
	}
	h.n.HandleNDP(nsFrame(t, peerMAC, header.SolicitedNodeMAC(h.n.LinkLocal()), peerLL, header.SolicitedNodeAddr(h.n.LinkLocal()), h.n.LinkLocal(), peerMAC, 255))
	h.out.take()
	for _, a := range []string{"::ffff:198.51.100.20", "198.51.100.20", "fe80::20%eth0", "fe80::20"} {
		if m, ok := h.n.Lookup(netip.MustParseAddr(a)); !ok || m != peerMAC {
			t.Errorf("Lookup(%s) = %v %v", a, m, ok)
		}
	}
}

func TestFullTableEvictsStale(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxEntries = 2 })
	for _, a := range []netip.Addr{peer4, other4} {
		h.n.HandleARP(arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, a, header.MAC{}, own4.Addr()))
	}
	h.out.take()
	h.n.Enqueue(netip.MustParseAddr("198.51.100.40"), dataFrame(1, header.EtherTypeIPv4, 0), off)
	h.wantState(t, netip.MustParseAddr("198.51.100.40"), "INCOMPLETE")
	if len(h.n.Entries()) != 1 || h.n.Stats().Drops["table-full"] != 0 {
		t.Fatalf("entries %+v", h.n.Entries())
	}
}

func TestNames(t *testing.T) {
	for s := StateIncomplete; s <= StatePermanent; s++ {
		if s.String() == "NONE" {
			t.Errorf("state %d has no name", s)
		}
	}
	if State(0).String() != "NONE" || State(99).String() != "NONE" {
		t.Error("invalid states named")
	}
	seen := map[string]bool{}
	for r := range numDropReasons {
		if n := r.String(); n == "" || n == "unknown" || seen[n] {
			t.Errorf("drop reason %d named %q", r, n)
		} else {
			seen[n] = true
		}
	}
	if numDropReasons.String() != "unknown" {
		t.Error("out-of-range drop reason named")
	}
}
