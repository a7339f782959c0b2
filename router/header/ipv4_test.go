package header

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestIPv4AgainstGopacket(t *testing.T) {
	ip := &layers.IPv4{
		Version: 4, TOS: 0x2e, Id: 0xbeef, Flags: layers.IPv4DontFragment, TTL: 17,
		Protocol: layers.IPProtocolUDP, SrcIP: ipOf(v4A), DstIP: ipOf(v4B),
		Options: []layers.IPv4Option{
			{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}, // record route
			{OptionType: 1},
		},
	}
	payload := []byte("hello, world")
	b := serialize(t, ip, gopacket.Payload(payload))
	b = append(b, 0, 0, 0) // link-layer padding past the total length
	v := IPv4(b)
	if !v.IsValid() || !v.IsChecksumValid() {
		t.Fatalf("valid %v checksum valid %v", v.IsValid(), v.IsChecksumValid())
	}
	if v.HeaderLength() != 28 || int(v.TotalLength()) != 28+len(payload) || v.ID() != 0xbeef || v.TOS() != 0x2e ||
		!v.DontFragment() || v.MoreFragments() || v.FragmentOffset() != 0 || v.IsFragment() || v.TTL() != 17 ||
		v.Protocol() != ProtocolUDP || v.SourceAddr() != v4A || v.DestinationAddr() != v4B ||
		!bytes.Equal(v.Payload(), payload) {
		t.Errorf("fields: hl %d tl %d id %#x df %v mf %v ttl %d proto %d %v>%v payload %q",
			v.HeaderLength(), v.TotalLength(), v.ID(), v.DontFragment(), v.MoreFragments(), v.TTL(), v.Protocol(),
			v.SourceAddr(), v.DestinationAddr(), v.Payload())
	}
	if v.CalculateChecksum() != v.Checksum() {
		t.Errorf("CalculateChecksum %#x, field %#x", v.CalculateChecksum(), v.Checksum())
	}
	it := v.Options().Iter()
	o, ok := it.Next()
	if !ok || o.Type != IPv4OptionRecordRoute || !bytes.Equal(o.Data, []byte{4, 0, 0, 0, 0}) {
		t.Errorf("first option %+v %v", o, ok)
	}
	if o, ok := it.Next(); ok || it.Err() != nil {
		t.Errorf("after record route: %+v %v err %v", o, ok, it.Err())
	}

	// Fragment fields.
	frag := serialize(t, &layers.IPv4{Version: 4, TTL: 1, Flags: layers.IPv4MoreFragments, FragOffset: 185,
		Protocol: layers.IPProtocolTCP, SrcIP: ipOf(v4A), DstIP: ipOf(v4B)}, gopacket.Payload(make([]byte, 16)))
	f := IPv4(frag)
	if !f.IsValid() || !f.MoreFragments() || f.DontFragment() || f.FragmentOffset() != 185*8 || !f.IsFragment() {
		t.Errorf("fragment: mf %v df %v off %d", f.MoreFragments(), f.DontFragment(), f.FragmentOffset())
	}
}

func TestEncodeIPv4DecodedByGopacket(t *testing.T) {
	b := make([]byte, 40)
	EncodeIPv4(b, IPv4Fields{TOS: 0x10, TotalLength: 40, ID: 77, Flags: IPv4FlagDontFragment, FragmentOffset: 0,
		TTL: 64, Protocol: ProtocolTCP, Src: v4C, Dst: v4A})
	p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
	ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		t.Fatalf("gopacket: %v", p.ErrorLayer())
	}
	if ip.TOS != 0x10 || ip.Length != 40 || ip.Id != 77 || ip.Flags != layers.IPv4DontFragment || ip.TTL != 64 ||
		ip.Protocol != layers.IPProtocolTCP || addrOf(ip.SrcIP) != v4C || addrOf(ip.DstIP) != v4A || ip.IHL != 5 {
		t.Errorf("gopacket decodes %+v", ip)
	}
	// gopacket's own checksum of the same header must equal ours.
	again := serializeChecksums(t, &layers.IPv4{Version: 4, IHL: 5, TOS: 0x10, Length: 40, Id: 77, Flags: layers.IPv4DontFragment,
		TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ipOf(v4C), DstIP: ipOf(v4A)})
	if ip.Checksum != binary.BigEndian.Uint16(again[10:]) || !IPv4(b).IsChecksumValid() {
		t.Errorf("checksum %#x, gopacket computes %#x", ip.Checksum, binary.BigEndian.Uint16(again[10:]))
	}
	EncodeIPv4(b, IPv4Fields{TotalLength: 40, Flags: IPv4FlagMoreFragments, FragmentOffset: 1480, TTL: 3, Protocol: 17, Src: v4A, Dst: v4B})
	if v := IPv4(b); !v.MoreFragments() || v.FragmentOffset() != 1480 || !v.IsChecksumValid() {
		t.Errorf("fragment encode: mf %v off %d", v.MoreFragments(), v.FragmentOffset())
	}
}

func TestIPv4IsValid(t *testing.T) {
	good := make([]byte, 24)
	EncodeIPv4(good, IPv4Fields{TotalLength: 24, TTL: 9, Protocol: 17, Src: v4A, Dst: v4B})
	for _, tc := range []struct {
		name string
		mod  func(b []byte) []byte
		want bool
	}{
		{"good", func(b []byte) []byte { return b }, true},
		{"padding after total length", func(b []byte) []byte { return append(b, 0, 0) }, true},
		{"short", func(b []byte) []byte { return b[:19] }, false},
		{"version 6", func(b []byte) []byte { b[0] = 0x65; return b }, false},
		{"IHL 4", func(b []byte) []byte { b[0] = 0x44; return b }, false},
		{"IHL beyond total length", func(b []byte) []byte { b[0] = 0x47; return b }, false},
		{"total length beyond buffer", func(b []byte) []byte { b[3] = 25; return b }, false},
		{"total length below header", func(b []byte) []byte { b[3] = 19; return b }, false},
		{"truncated buffer", func(b []byte) []byte { return b[:23] }, false},
	} {
		b := tc.mod(append([]byte(nil), good...))
		if got := IPv4(b).IsValid(); got != tc.want {
			t.Errorf("%s: IsValid = %v, want %v", tc.name, got, tc.want)
		}
	}
	bad := append([]byte(nil), good...)
	bad[8]++
	if IPv4(bad).IsChecksumValid() {
		t.Error("checksum valid after changing the TTL")
	}
}

// randIPv4 returns a valid IPv4 header with random fields, random options and a correct
// checksum, followed by a few bytes of payload.
func randIPv4(r *rand.Rand) IPv4 {
	ihl := 5 + r.IntN(11)
	b := randBytes(r, ihl*4+r.IntN(16))
	b[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	v := IPv4(b)
	v.SetChecksum(0)
	v.SetChecksum(v.CalculateChecksum())
	return v
}

func TestIPv4ChecksumUpdatesMatchRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 20000; i++ {
		v := randIPv4(r)
		if !v.IsValid() || !v.IsChecksumValid() {
			t.Fatalf("random header invalid: %x", []byte(v))
		}
		var what string
		switch i % 5 {
		case 0:
			what = "DecTTL"
			ttl := v.TTL()
			got := v.DecTTL()
			want := ttl - 1
			if ttl == 0 {
				want = 0
			}
			if got != want || v.TTL() != want {
				t.Fatalf("DecTTL from %d returned %d, TTL now %d", ttl, got, v.TTL())
			}
		case 1:
			what = "SetTTLWithChecksumUpdate"
			v.SetTTLWithChecksumUpdate(uint8(r.Uint32()))
		case 2:
			what = "SetSourceAddrWithChecksumUpdate"
			a := randAddr(r, false)
			v.SetSourceAddrWithChecksumUpdate(a)
			if v.SourceAddr() != a {
				t.Fatalf("source %v, want %v", v.SourceAddr(), a)
			}
		case 3:
			what = "SetDestinationAddrWithChecksumUpdate"
			a := randAddr(r, false)
			v.SetDestinationAddrWithChecksumUpdate(a)
			if v.DestinationAddr() != a {
				t.Fatalf("destination %v, want %v", v.DestinationAddr(), a)
			}
		case 4:
			what = "all in a chain"
			v.DecTTL()
			v.SetSourceAddrWithChecksumUpdate(randAddr(r, false))
			v.DecTTL()
			v.SetDestinationAddrWithChecksumUpdate(randAddr(r, false))
		}
		if got, want := v.Checksum(), v.CalculateChecksum(); got != want {
			t.Fatalf("%s: incremental checksum %#04x, recomputed %#04x (%x)", what, got, want, []byte(v))
		}
		if !v.IsChecksumValid() {
			t.Fatalf("%s: checksum invalid", what)
		}
	}
}

func TestIPv4DecTTLZero(t *testing.T) {
	b := make([]byte, 20)
	EncodeIPv4(b, IPv4Fields{TotalLength: 20, TTL: 0, Protocol: 1, Src: v4A, Dst: v4B})
	before := append([]byte(nil), b...)
	if IPv4(b).DecTTL() != 0 || !bytes.Equal(b, before) {
		t.Error("DecTTL changed a packet with TTL 0")
	}
}

func TestIPv4Options(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []byte
		types []uint8
		err   error
	}{
		{"empty", nil, nil, nil},
		{"nops", []byte{1, 1, 1, 1}, nil, nil},
		{"eol stops", []byte{0, 7, 3, 4}, nil, nil},
		{"router alert", []byte{148, 4, 0, 0}, []uint8{148}, nil},
		{"two options", []byte{1, 148, 4, 0, 0, 68, 4, 5, 0, 0, 0}, []uint8{148, 68}, nil},
		{"length past end", []byte{7, 9, 4, 0}, nil, ErrOptionTruncated},
		{"length 1", []byte{7, 1, 0, 0}, nil, ErrOptionTruncated},
		{"length 0", []byte{148, 0, 0, 0}, nil, ErrOptionTruncated},
		{"missing length", []byte{1, 1, 1, 7}, nil, ErrOptionTruncated},
		{"good then bad", []byte{148, 4, 0, 0, 7, 200}, []uint8{148}, ErrOptionTruncated},
	} {
		it := IPv4Options(tc.opts).Iter()
		var types []uint8
		for n := 0; n < 100; n++ {
			o, ok := it.Next()
			if !ok {
				break
			}
			types = append(types, o.Type)
		}
		if !bytes.Equal(types, tc.types) || !errors.Is(it.Err(), tc.err) {
			t.Errorf("%s: types %v err %v, want %v %v", tc.name, types, it.Err(), tc.types, tc.err)
		}
	}
}

func TestIPv4NoAllocs(t *testing.T) {
	b := make([]byte, 60)
	EncodeIPv4(b, IPv4Fields{TotalLength: 60, TTL: 200, Protocol: 6, Src: v4A, Dst: v4B})
	v := IPv4(b)
	n := testing.AllocsPerRun(100, func() {
		if !v.IsValid() || !v.IsChecksumValid() {
			panic("invalid")
		}
		_ = v.SourceAddr()
		_ = v.DestinationAddr()
		_ = v.Payload()
		v.DecTTL()
		v.SetTTLWithChecksumUpdate(200)
		v.SetSourceAddrWithChecksumUpdate(v4C)
		v.SetDestinationAddrWithChecksumUpdate(v4A)
		it := v.Options().Iter()
		it.Next()
	})
	if n != 0 {
		t.Errorf("IPv4 hot path allocates %v times per run", n)
	}
}

func BenchmarkDecTTL(b *testing.B) {
	buf := make([]byte, 20)
	EncodeIPv4(buf, IPv4Fields{TotalLength: 20, TTL: 255, Protocol: 6, Src: v4A, Dst: v4B})
	v := IPv4(buf)
	for b.Loop() {
		if v.DecTTL() == 0 {
			v.SetTTLWithChecksumUpdate(255)
		}
	}
}
