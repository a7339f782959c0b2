package header

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestBuildICMPv6Redirect(t *testing.T) {
	src := netip.MustParseAddr("fe80::1")
	dst := netip.MustParseAddr("2001:db8:1::2")
	target := netip.MustParseAddr("fe80::3")
	destination := netip.MustParseAddr("2001:db8:9::9")
	tll := MAC{0x02, 0, 0, 0, 0, 3}
	for _, tc := range []struct {
		name    string
		payload int
		tll     MAC
	}{
		{"small, padded", 5, tll},
		{"small, no link-layer address", 13, MAC{}},
		{"large, cut at the minimum MTU", 1400, tll},
		{"large, no link-layer address", 1400, MAC{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: ipOf(dst), DstIP: ipOf(destination)}
			u := &layers.UDP{SrcPort: 1, DstPort: 2}
			u.SetNetworkLayerForChecksum(ip)
			orig := serialize(t, ip, u, gopacket.Payload(make([]byte, tc.payload)))
			b := make([]byte, 2000)
			n := BuildICMPv6Redirect(b, src, dst, target, destination, tc.tll, orig)
			if n == 0 || n > IPv6MinimumMTU || n%8 != 0 {
				t.Fatalf("length %d: want a multiple of 8, at most %d", n, IPv6MinimumMTU)
			}
			pkt := gopacket.NewPacket(b[:n], layers.LayerTypeIPv6, gopacket.Default)
			v6 := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if v6.HopLimit != 255 || addrOf(v6.SrcIP) != src || addrOf(v6.DstIP) != dst {
				t.Errorf("IPv6 %s -> %s hop limit %d", v6.SrcIP, v6.DstIP, v6.HopLimit)
			}
			if !IsTransportChecksumValid(ProtocolICMPv6, src, dst, b[IPv6MinimumSize:n]) {
				t.Errorf("bad checksum")
			}
			rd, ok := pkt.Layer(layers.LayerTypeICMPv6Redirect).(*layers.ICMPv6Redirect)
			if !ok {
				t.Fatalf("no redirect decoded: %v", pkt)
			}
			if addrOf(rd.TargetAddress) != target || addrOf(rd.DestinationAddress) != destination {
				t.Errorf("target %s destination %s", rd.TargetAddress, rd.DestinationAddress)
			}
			var gotTLL, gotRH bool
			for _, o := range rd.Options {
				switch o.Type {
				case layers.ICMPv6OptTargetAddress:
					gotTLL = bytes.Equal(o.Data, tll[:])
				case layers.ICMPv6OptRedirectedHeader:
					gotRH = true
					q := o.Data[6:] // reserved bytes first
					want := min(len(orig), len(q))
					if !bytes.Equal(q[:want], orig[:want]) {
						t.Errorf("quoted packet differs")
					}
					if len(orig) < len(q) && !bytes.Equal(q[len(orig):], make([]byte, len(q)-len(orig))) {
						t.Errorf("padding not zero")
					}
				}
			}
			if gotTLL != !tc.tll.IsZero() || !gotRH {
				t.Errorf("options: target link-layer %v (want %v), redirected header %v", gotTLL, !tc.tll.IsZero(), gotRH)
			}
			v := NDPRedirect(b[IPv6MinimumSize:n])
			if !v.IsValid() || v.TargetAddress() != target || v.DestinationAddress() != destination {
				t.Errorf("view: %s %s", v.TargetAddress(), v.DestinationAddress())
			}
			if m, ok := v.Options().TargetLinkLayerAddress(); ok != !tc.tll.IsZero() || (ok && m != tll) {
				t.Errorf("view target link-layer %s %v", m, ok)
			}
		})
	}
	if n := BuildICMPv6Redirect(make([]byte, 60), src, dst, target, destination, tll, make([]byte, 100)); n != 0 {
		t.Errorf("short buffer: %d", n)
	}
	if n := BuildICMPv6Redirect(make([]byte, 2000), netip.MustParseAddr("192.0.2.1"), dst, target, destination, tll, nil); n != 0 {
		t.Errorf("IPv4 source: %d", n)
	}
}
