package header

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestIPv6FragmentHeader: the fragment header view and FragmentHeader's walk agree with
// gopacket, behind no extension header and behind a destination options header; packets
// without a fragment header or with a broken chain report none.
func TestIPv6FragmentHeader(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for _, c := range []struct {
		off   int
		more  bool
		id    uint32
		dopts bool
	}{{0, true, 1, false}, {1232, true, 0xdeadbeef, false}, {2464, false, 7, true}, {0, false, 9, false}} {
		b := make([]byte, 40+8+8+16)
		n := 40
		next := ProtocolFragment
		if c.dopts {
			next = ProtocolDstOpts
			copy(b[n:], []byte{ProtocolFragment, 0, 1, 4, 0, 0, 0, 0})
			n += 8
		}
		EncodeIPv6Fragment(b[n:], ProtocolUDP, c.off, c.more, c.id)
		b = b[:n+8+16]
		EncodeIPv6(b, IPv6Fields{PayloadLength: uint16(len(b) - 40), NextHeader: next, HopLimit: 64, Src: src, Dst: dst})
		at, prev, ok := IPv6(b).FragmentHeader()
		wantPrev := 6
		if c.dopts {
			wantPrev = 40
		}
		if !ok || at != n || prev != wantPrev {
			t.Fatalf("%+v: FragmentHeader %d %d %v, want %d %d", c, at, prev, ok, n, wantPrev)
		}
		fh := IPv6Fragment(b[at:])
		p := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
		g, gok := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
		if !gok {
			t.Fatalf("%+v: gopacket finds no fragment header", c)
		}
		if fh.Offset() != int(g.FragmentOffset)*8 || fh.More() != g.MoreFragments || fh.ID() != g.Identification ||
			fh.NextHeader() != uint8(g.NextHeader) {
			t.Fatalf("%+v: view %d %v %d %d, gopacket %+v", c, fh.Offset(), fh.More(), fh.ID(), fh.NextHeader(), g)
		}
		if fh.IsAtomic() != (c.off == 0 && !c.more) {
			t.Fatalf("%+v: atomic %v", c, fh.IsAtomic())
		}
	}
	plain := make([]byte, 48)
	EncodeIPv6(plain, IPv6Fields{PayloadLength: 8, NextHeader: ProtocolUDP, Src: src, Dst: dst})
	if _, _, ok := IPv6(plain).FragmentHeader(); ok {
		t.Fatal("a fragment header in a plain UDP packet")
	}
	// A destination options header running past the payload.
	broken := make([]byte, 48)
	EncodeIPv6(broken, IPv6Fields{PayloadLength: 8, NextHeader: ProtocolDstOpts, Src: src, Dst: dst})
	broken[40], broken[41] = ProtocolFragment, 3
	if _, _, ok := IPv6(broken).FragmentHeader(); ok {
		t.Fatal("a fragment header behind a broken chain")
	}
}
