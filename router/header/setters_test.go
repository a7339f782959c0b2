package header

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestIPv6UpperLayerCutAndRouted checks the walk on views cut short (packets quoted in
// ICMP errors) against the walk of the whole packet, and the report of a routing header
// with segments left.
func TestIPv6UpperLayerCutAndRouted(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	kinds := []uint8{ProtocolDstOpts, ProtocolRouting, ProtocolAH, ProtocolFragment}
	for i := 0; i < 2000; i++ {
		var chain []uint8
		var units []int
		for n := r.IntN(5); n > 0; n-- {
			chain, units = append(chain, kinds[r.IntN(len(kinds))]), append(units, r.IntN(4))
		}
		b, want := ipv6WithChain(chain, units)
		routed := false
		if off := 40; i%2 == 0 {
			// Give every routing header segments left.
			for j, p := range chain {
				if p == ProtocolRouting {
					b[off+3] = byte(1 + j)
					routed = true
				}
				off += len(extHeader(p, 0, units[j]))
			}
		}
		proto, off, segs, ok := IPv6(b).UpperLayer()
		if !ok || proto != ProtocolUDP || off != want || segs != routed {
			t.Fatalf("chain %v: UpperLayer = %d, %d, %v, %v; want UDP at %d, %v", chain, proto, off, segs, ok, want, routed)
		}
		if p2, off2, ok2 := IPv6(b).TransportProtocol(); p2 != proto || off2 != off || ok2 != ok {
			t.Fatalf("chain %v: TransportProtocol disagrees with UpperLayer", chain)
		}
		for l := 40; l <= len(b); l++ {
			proto, off, _, ok := IPv6(b[:l]).UpperLayer()
			if ok != (want <= l) || (ok && (proto != ProtocolUDP || off != want)) {
				t.Fatalf("chain %v cut at %d: UpperLayer = %d, %d, %v; UDP at %d", chain, l, proto, off, ok, want)
			}
			if off < 40 || off > l {
				t.Fatalf("chain %v cut at %d: offset %d outside the view", chain, l, off)
			}
		}
	}
}

// TestAddrDeltaUpdatesMatchRecompute rewrites addresses of random IPv4 and IPv6
// packets with the IP views' delta-returning setters, applies the delta to the TCP, UDP
// or ICMPv6 checksum (complete, or in CHECKSUM_PARTIAL form) with the transport views,
// and checks every checksum against a full recomputation.
func TestAddrDeltaUpdatesMatchRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for i := 0; i < 30000; i++ {
		proto := []uint8{ProtocolTCP, ProtocolUDP, ProtocolICMPv6}[i%3]
		v6 := proto == ProtocolICMPv6 || i%2 == 0
		partial := i%5 < 2
		src, dst := randAddr(r, v6), randAddr(r, v6)
		hl := IPv4MinimumSize
		if v6 {
			hl = IPv6MinimumSize
		}
		seg := randBytes(r, 20+r.IntN(60))
		b := append(make([]byte, hl), seg...)
		seg = b[hl:]
		if v6 {
			EncodeIPv6(b, IPv6Fields{PayloadLength: uint16(len(seg)), NextHeader: proto, HopLimit: 64, Src: src, Dst: dst})
		} else {
			EncodeIPv4(b, IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: proto, Src: src, Dst: dst})
		}
		off := icmpChecksum
		switch proto {
		case ProtocolTCP:
			seg[tcpDataOff] = 5 << 4
			off = tcpChecksum
		case ProtocolUDP:
			binary.BigEndian.PutUint16(seg[udpLength:], uint16(len(seg)))
			off = udpChecksum
		}
		if partial {
			binary.BigEndian.PutUint16(seg[off:], PseudoHeaderChecksum(proto, src, dst, uint16(len(seg))))
		} else {
			SetTransportChecksum(proto, src, dst, seg)
		}

		n := randAddr(r, v6)
		var d SumDelta
		switch {
		case v6 && i%4 < 2:
			d, src = IPv6(b).SetSourceAddrWithDelta(n), n
		case v6:
			d, dst = IPv6(b).SetDestinationAddrWithDelta(n), n
		case i%4 < 2:
			d, src = IPv4(b).SetSourceAddrWithChecksumUpdate(n), n
		default:
			d, dst = IPv4(b).SetDestinationAddrWithChecksumUpdate(n), n
		}
		switch {
		case proto == ProtocolTCP && partial:
			TCP(seg).UpdatePartialChecksumPseudoHeader(d)
		case proto == ProtocolTCP:
			TCP(seg).UpdateChecksumPseudoHeader(d)
		case proto == ProtocolUDP && partial:
			UDP(seg).UpdatePartialChecksumPseudoHeader(d)
		case proto == ProtocolUDP:
			UDP(seg).UpdateChecksumPseudoHeader(d)
		case partial:
			ICMPv6(seg).UpdatePartialChecksumPseudoHeader(d)
		default:
			ICMPv6(seg).UpdateChecksumPseudoHeader(d)
		}

		if !v6 && IPv4(b).Checksum() != IPv4(b).CalculateChecksum() {
			t.Fatalf("IPv4 header checksum %#04x, recomputed %#04x", IPv4(b).Checksum(), IPv4(b).CalculateChecksum())
		}
		if v6 && (IPv6(b).SourceAddr() != src || IPv6(b).DestinationAddr() != dst) ||
			!v6 && (IPv4(b).SourceAddr() != src || IPv4(b).DestinationAddr() != dst) {
			t.Fatal("address not written")
		}
		got := binary.BigEndian.Uint16(seg[off:])
		want := PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
		if !partial {
			want, _ = TransportChecksum(proto, src, dst, seg)
		}
		if got != want && (proto == ProtocolUDP && !partial || !sameChecksum(got, want)) {
			t.Fatalf("proto %d v6=%v partial=%v: incremental %#04x, recomputed %#04x", proto, v6, partial, got, want)
		}
	}
}

// TestUDPDeltaKeepsNoChecksum checks that a UDP/IPv4 datagram without a checksum keeps
// none through a pseudo-header update.
func TestUDPDeltaKeepsNoChecksum(t *testing.T) {
	b := make([]byte, IPv4MinimumSize+UDPMinimumSize)
	EncodeIPv4(b, IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: ProtocolUDP, Src: v4A, Dst: v4B})
	u := UDP(b[IPv4MinimumSize:])
	EncodeUDP(u, 1, 2, UDPMinimumSize)
	u.UpdateChecksumPseudoHeader(IPv4(b).SetSourceAddrWithChecksumUpdate(v4C))
	if u.Checksum() != 0 {
		t.Errorf("absent UDP checksum became %#04x", u.Checksum())
	}
}

// TestAddrDeltaNoAllocs checks that the NAT setters allocate nothing.
func TestAddrDeltaNoAllocs(t *testing.T) {
	b4 := make([]byte, IPv4MinimumSize+TCPMinimumSize)
	EncodeIPv4(b4, IPv4Fields{TotalLength: uint16(len(b4)), TTL: 64, Protocol: ProtocolTCP, Src: v4A, Dst: v4B})
	b6 := make([]byte, IPv6MinimumSize+TCPMinimumSize)
	EncodeIPv6(b6, IPv6Fields{PayloadLength: TCPMinimumSize, NextHeader: ProtocolTCP, HopLimit: 64, Src: v6A, Dst: v6B})
	n := testing.AllocsPerRun(100, func() {
		TCP(b4[IPv4MinimumSize:]).UpdateChecksumPseudoHeader(IPv4(b4).SetSourceAddrWithChecksumUpdate(v4C))
		TCP(b6[IPv6MinimumSize:]).UpdatePartialChecksumPseudoHeader(IPv6(b6).SetDestinationAddrWithDelta(v6C))
		UDP(b6[IPv6MinimumSize:]).UpdateChecksumPseudoHeader(IPv6(b6).SetSourceAddrWithDelta(v6A))
		ICMPv6(b6[IPv6MinimumSize:]).SetIdent(7)
	})
	if n != 0 {
		t.Errorf("NAT setters allocate %v times per run", n)
	}
}

func TestICMPSetIdent(t *testing.T) {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[2:], 0x1234)
	ICMPv4(b).SetIdent(0xbeef)
	if ICMPv4(b).Ident() != 0xbeef || ICMPv4(b).Checksum() != 0x1234 {
		t.Errorf("ICMPv4 SetIdent: % x", b)
	}
	ICMPv6(b).SetIdent(0xcafe)
	if ICMPv6(b).Ident() != 0xcafe || ICMPv6(b).Checksum() != 0x1234 {
		t.Errorf("ICMPv6 SetIdent: % x", b)
	}
}

// TestAddrChecksum checks the register sum of addresses against Checksum of their bytes.
func TestAddrChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for i := 0; i < 20000; i++ {
		a := randAddr(r, i%2 == 0)
		if i%7 == 0 { // all ones: stresses the carries
			a = netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff,
				8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})
			if i%2 == 0 {
				a = netip.AddrFrom4([4]byte{0xff, 0xff, 0xff, 0xff})
			}
		}
		init := uint16(r.Uint32())
		if got, want := addrChecksum(a, init), Checksum(a.AsSlice(), init); got != want {
			t.Fatalf("addrChecksum(%v, %#x) = %#x, want %#x", a, init, got, want)
		}
	}
}

// TestSum128 checks the 16-byte sum against Checksum.
func TestSum128(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	for i := 0; i < 20000; i++ {
		b := randBytes(r, 16)
		if i%7 == 0 {
			for j := range b {
				b[j] = 0xff
			}
		}
		if got, want := sum128(b), Checksum(b, 0); got != want {
			t.Fatalf("sum128(% x) = %#x, want %#x", b, got, want)
		}
	}
}

// TestSumDeltaAdd checks that one update with the sum of two deltas gives the checksum
// of two updates, against a full recomputation.
func TestSumDeltaAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(39, 40))
	for i := 0; i < 20000; i++ {
		v6 := i%2 == 0
		src, dst := randAddr(r, v6), randAddr(r, v6)
		seg := randTCP(r, src, dst)
		ns, nd := randAddr(r, v6), randAddr(r, v6)
		d := SumDelta(ChecksumCombine(^addrChecksum(src, 0), addrChecksum(ns, 0)))
		e := SumDelta(ChecksumCombine(^addrChecksum(dst, 0), addrChecksum(nd, 0)))
		seg.UpdateChecksumPseudoHeader(d.Add(e))
		want, _ := TransportChecksum(ProtocolTCP, ns, nd, seg)
		if seg.Checksum() != want {
			t.Fatalf("one update %#04x, recomputed %#04x", seg.Checksum(), want)
		}
	}
}
