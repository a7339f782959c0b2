package header

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
)

// refChecksum is the textbook 16-bit ones'-complement sum (RFC 1071), one word at a time.
func refChecksum(b []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
		sum = sum&0xffff + sum>>16
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:8], r.Uint64())
		binary.BigEndian.PutUint64(a[8:], r.Uint64())
		return netip.AddrFrom16(a)
	}
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], r.Uint32())
	return netip.AddrFrom4(a)
}

func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		n := r.IntN(200)
		if i%10 == 0 {
			n = r.IntN(9000)
		}
		b := randBytes(r, n)
		switch i % 7 {
		case 0: // all 0xff: stresses the carries
			for j := range b {
				b[j] = 0xff
			}
		case 1:
			clear(b)
		}
		init := uint16(r.Uint32())
		if i%5 == 0 {
			init = 0
		}
		if got, want := Checksum(b, init), refChecksum(b, init); got != want {
			t.Fatalf("Checksum(len %d, %#x) = %#x, want %#x", n, init, got, want)
		}
	}
}

func TestChecksumTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		init uint16
		want uint16
	}{
		{"empty", nil, 0, 0},
		{"empty with initial", nil, 0x1234, 0x1234},
		{"one byte", []byte{0xab}, 0, 0xab00},
		{"carry", []byte{0xff, 0xff, 0x00, 0x01}, 0, 0x0001},
		{"all ones", []byte{0xff, 0xff, 0xff, 0xff}, 0, 0xffff},
		// RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
		{"rfc1071", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0, 0xddf2},
		// IPv4 header from Wikipedia's checksum example, checksum b861 included: sums to ffff.
		{"ipv4 header", []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0, 0xffff},
	} {
		if got := Checksum(tc.b, tc.init); got != tc.want {
			t.Errorf("%s: Checksum = %#04x, want %#04x", tc.name, got, tc.want)
		}
	}
}

func TestChecksumSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		b := randBytes(r, r.IntN(300))
		cut := r.IntN(len(b)+1) &^ 1
		whole := Checksum(b, 0)
		if got := Checksum(b[cut:], Checksum(b[:cut], 0)); got != whole {
			t.Fatalf("chained sum %#x != whole %#x", got, whole)
		}
		if got := ChecksumCombine(Checksum(b[:cut], 0), Checksum(b[cut:], 0)); got != whole {
			t.Fatalf("combined sum %#x != whole %#x", got, whole)
		}
	}
}

func TestChecksumUpdateMatchesRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 10000; i++ {
		b := randBytes(r, 2+2*r.IntN(40))
		if i%3 == 0 {
			b[0] |= 0x40 // keep the sum nonzero like any real header
		}
		// Field at offset 0..1 is the checksum, data after it.
		binary.BigEndian.PutUint16(b, 0)
		binary.BigEndian.PutUint16(b, ^Checksum(b, 0))
		w := 2 + 2*r.IntN((len(b)-2)/2+1)
		if w >= len(b) {
			continue
		}
		old := binary.BigEndian.Uint16(b[w:])
		nw := uint16(r.Uint32())
		binary.BigEndian.PutUint16(b[w:], nw)
		got := ChecksumUpdate(binary.BigEndian.Uint16(b), old, nw)
		binary.BigEndian.PutUint16(b, 0)
		want := ^Checksum(b, 0)
		if !sameChecksum(got, want) {
			t.Fatalf("ChecksumUpdate = %#x, recomputed %#x", got, want)
		}
	}
}

// sameChecksum reports whether two checksum field values verify the same data: 0x0000
// and 0xffff are both ones'-complement zero.
func sameChecksum(a, b uint16) bool {
	return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

func TestChecksumUpdateAddrAndPseudoHeader(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 5000; i++ {
		v6 := i%2 == 1
		src, dst, nsrc := randAddr(r, v6), randAddr(r, v6), randAddr(r, v6)
		seg := randBytes(r, 20+r.IntN(60))
		if !SetTransportChecksum(ProtocolTCP, src, dst, seg) {
			t.Fatal("SetTransportChecksum failed")
		}
		TCP(seg).UpdateChecksumPseudoHeaderAddress(src, nsrc)
		want, _ := TransportChecksum(ProtocolTCP, nsrc, dst, seg)
		if got := TCP(seg).Checksum(); got != want {
			t.Fatalf("v6=%v: pseudo-header update %#x, recomputed %#x", v6, got, want)
		}
		if !IsTransportChecksumValid(ProtocolTCP, nsrc, dst, seg) {
			t.Fatal("IsTransportChecksumValid false after update")
		}
	}
}

func TestChecksumUpdate32(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 5000; i++ {
		b := randBytes(r, 24)
		b[4] |= 1
		binary.BigEndian.PutUint16(b, 0)
		binary.BigEndian.PutUint16(b, ^Checksum(b, 0))
		old := binary.BigEndian.Uint32(b[8:])
		nw := r.Uint32()
		binary.BigEndian.PutUint32(b[8:], nw)
		got := ChecksumUpdate32(binary.BigEndian.Uint16(b), old, nw)
		binary.BigEndian.PutUint16(b, 0)
		if want := ^Checksum(b, 0); !sameChecksum(got, want) {
			t.Fatalf("ChecksumUpdate32 = %#x, want %#x", got, want)
		}
	}
}

func TestTransportChecksumRejects(t *testing.T) {
	s, d := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for _, tc := range []struct {
		name  string
		proto uint8
		seg   []byte
	}{
		{"unknown protocol", 99, make([]byte, 20)},
		{"tcp too short", ProtocolTCP, make([]byte, 17)},
		{"udp too short", ProtocolUDP, make([]byte, 7)},
		{"icmp too short", ProtocolICMPv4, make([]byte, 3)},
		{"too long", ProtocolUDP, make([]byte, 70000)},
	} {
		if _, ok := TransportChecksum(tc.proto, s, d, tc.seg); ok {
			t.Errorf("%s: TransportChecksum ok", tc.name)
		}
		if SetTransportChecksum(tc.proto, s, d, tc.seg) {
			t.Errorf("%s: SetTransportChecksum ok", tc.name)
		}
		if IsTransportChecksumValid(tc.proto, s, d, tc.seg) {
			t.Errorf("%s: IsTransportChecksumValid true", tc.name)
		}
	}
}

func TestUDPZeroChecksumRules(t *testing.T) {
	s4, d4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
	s6, d6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	seg := make([]byte, 12)
	EncodeUDP(seg, 1, 2, 12)
	if !IsTransportChecksumValid(ProtocolUDP, s4, d4, seg) {
		t.Error("UDP/IPv4 with checksum 0 must be valid (no checksum)")
	}
	if IsTransportChecksumValid(ProtocolUDP, s6, d6, seg) {
		t.Error("UDP/IPv6 with checksum 0 must be invalid")
	}
	// Find a payload whose checksum computes to zero: it must be sent as 0xffff.
	for v := 0; v < 0x10000; v++ {
		binary.BigEndian.PutUint16(seg[8:], uint16(v))
		binary.BigEndian.PutUint16(seg[udpChecksum:], 0)
		sum := Checksum(seg, PseudoHeaderChecksum(ProtocolUDP, s6, d6, 12))
		if sum != 0xffff {
			continue
		}
		x, _ := TransportChecksum(ProtocolUDP, s6, d6, seg)
		if x != 0xffff {
			t.Fatalf("computed zero UDP checksum returned as %#x, want 0xffff", x)
		}
		SetTransportChecksum(ProtocolUDP, s6, d6, seg)
		if !IsTransportChecksumValid(ProtocolUDP, s6, d6, seg) {
			t.Fatal("0xffff checksum not valid")
		}
		return
	}
	t.Fatal("no payload with zero checksum found")
}

func TestChecksumNoAllocs(t *testing.T) {
	b := make([]byte, 1500)
	s, d := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	n := testing.AllocsPerRun(100, func() {
		x := Checksum(b, 0)
		x = ChecksumUpdate(x, 1, 2)
		x = ChecksumUpdateAddr(x, s, d)
		x = ChecksumCombine(x, PseudoHeaderChecksum(ProtocolTCP, s, d, 1500))
		SetTransportChecksum(ProtocolTCP, s, d, b[:x%1000+20])
	})
	if n != 0 {
		t.Errorf("checksum helpers allocate %v times per run", n)
	}
}

func BenchmarkChecksum1500(b *testing.B) {
	buf := randBytes(rand.New(rand.NewPCG(1, 1)), 1500)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		Checksum(buf, 0)
	}
}

func BenchmarkChecksumReference1500(b *testing.B) {
	buf := randBytes(rand.New(rand.NewPCG(1, 1)), 1500)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		refChecksum(buf, 0)
	}
}

// BenchmarkChecksumSize measures Checksum on a minimal frame, a full 1500-byte packet
// and a 64 KiB GSO frame.
func BenchmarkChecksumSize(b *testing.B) {
	for _, n := range []int{64, 1500, 65536} {
		buf := randBytes(rand.New(rand.NewPCG(1, 1)), n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				Checksum(buf, 0)
			}
		})
	}
}
