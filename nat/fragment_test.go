package nat

import (
	"net/netip"
	"testing"

	"ulb/router/header"
)

// TestApplyAddrs: a non-first fragment gets its addresses rewritten, the IPv4 header
// checksum matches a full recomputation, the data is untouched; the other family is
// refused.
func TestApplyAddrs(t *testing.T) {
	b := make([]byte, 20+64)
	header.EncodeIPv4(b, header.IPv4Fields{TotalLength: uint16(len(b)), ID: 9, FragmentOffset: 1480, TTL: 60,
		Protocol: header.ProtocolUDP, Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("192.0.2.100")})
	for i := range b[20:] {
		b[20+i] = byte(i)
	}
	srv := netip.MustParseAddr("198.51.100.2")
	if !ApplyAddrs(b, Rewrite{Dst: srv, DstPort: 80}) {
		t.Fatal("refused")
	}
	ip := header.IPv4(b)
	if ip.DestinationAddr() != srv || !ip.IsChecksumValid() || ip.FragmentOffset() != 1480 {
		t.Fatalf("dst %s checksum valid %v", ip.DestinationAddr(), ip.IsChecksumValid())
	}
	for i, c := range b[20:] {
		if c != byte(i) {
			t.Fatalf("data changed at %d", i)
		}
	}
	if ApplyAddrs(b, Rewrite{Dst: netip.MustParseAddr("2001:db8::1")}) {
		t.Fatal("an IPv6 address applied to IPv4")
	}

	b6 := make([]byte, 40+8+16)
	src6 := netip.MustParseAddr("2001:db8:1::2")
	header.EncodeIPv6(b6, header.IPv6Fields{PayloadLength: 24, NextHeader: header.ProtocolFragment, HopLimit: 60,
		Src: src6, Dst: netip.MustParseAddr("2001:db8:1::100")})
	header.EncodeIPv6Fragment(b6[40:], header.ProtocolUDP, 1232, true, 7)
	srv6 := netip.MustParseAddr("2001:db8:2::2")
	if !ApplyAddrs(b6, Rewrite{Dst: srv6}) {
		t.Fatal("refused IPv6")
	}
	if ip := header.IPv6(b6); ip.DestinationAddr() != srv6 || ip.SourceAddr() != src6 {
		t.Fatalf("IPv6 addresses %s > %s", ip.SourceAddr(), ip.DestinationAddr())
	}
	if ApplyAddrs(b6, Rewrite{Src: netip.MustParseAddr("192.0.2.1")}) || ApplyAddrs(nil, Rewrite{}) || ApplyAddrs([]byte{0x45}, Rewrite{}) {
		t.Fatal("bad input accepted")
	}
}
