package port

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	testDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// buildFrame serializes an Ethernet/IP/L4 frame with gopacket, checksums and lengths
// computed by gopacket.
func buildFrame(t testing.TB, v6 bool, l4 gopacket.SerializableLayer, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: testSrcMAC, DstMAC: testDstMAC}
	var ip gopacket.NetworkLayer
	var ipl gopacket.SerializableLayer
	proto := layers.IPProtocolTCP
	if _, ok := l4.(*layers.UDP); ok {
		proto = layers.IPProtocolUDP
	}
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
			SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8:1::2")}
		ip, ipl = ip6, ip6
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, Id: 0xfff0,
			Flags: layers.IPv4DontFragment,
			SrcIP: net.IP{192, 0, 2, 1}, DstIP: net.IP{198, 51, 100, 2}}
		ip, ipl = ip4, ip4
	}
	switch l := l4.(type) {
	case *layers.TCP:
		if err := l.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
	case *layers.UDP:
		if err := l.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ipl, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// pseudoSum is the folded pseudo-header sum Linux leaves in the checksum field of a
// CHECKSUM_PARTIAL packet.
func pseudoSum(frame []byte, v6 bool, proto byte, l4len int) uint16 {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	if v6 {
		add(frame[14+8 : 14+40])
	} else {
		add(frame[14+12 : 14+20])
	}
	s += uint32(proto) + uint32(l4len)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func randPayload(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCompleteChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		v6 := i%2 == 1
		udp := i%4 >= 2
		payload := randPayload(r, r.IntN(1400))
		var l4 gopacket.SerializableLayer
		proto, off := byte(6), uint16(16)
		if udp {
			l4 = &layers.UDP{SrcPort: layers.UDPPort(r.UintN(65535) + 1), DstPort: 53}
			proto, off = 17, 6
		} else {
			l4 = &layers.TCP{SrcPort: layers.TCPPort(r.UintN(65535) + 1), DstPort: 80,
				Seq: r.Uint32(), Ack: r.Uint32(), ACK: true, PSH: true, Window: 512}
		}
		want := buildFrame(t, v6, l4, payload)
		start := 14 + 20
		if v6 {
			start = 14 + 40
		}
		frame := append([]byte(nil), want...)
		binary.BigEndian.PutUint16(frame[start+int(off):], pseudoSum(frame, v6, proto, len(frame)-start))
		h := VnetHdr(make([]byte, VnetHdrLen))
		h.SetFlags(VnetHdrFNeedsCsum)
		h.SetCsumStart(uint16(start))
		h.SetCsumOffset(off)
		if err := CompleteChecksum(frame, h); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(frame, want) {
			t.Fatalf("case %d (v6=%v udp=%v): checksum %x, gopacket %x", i, v6, udp,
				frame[start+int(off):start+int(off)+2], want[start+int(off):start+int(off)+2])
		}
	}
}

func TestCompleteChecksumBadHeader(t *testing.T) {
	h := VnetHdr(make([]byte, VnetHdrLen))
	h.SetFlags(VnetHdrFNeedsCsum)
	frame := make([]byte, 60)
	for _, c := range []struct{ start, off uint16 }{{60, 0}, {34, 26}, {58, 1}, {65535, 65535}} {
		h.SetCsumStart(c.start)
		h.SetCsumOffset(c.off)
		if err := CompleteChecksum(frame, h); !errors.Is(err, ErrBadVnetHdr) {
			t.Errorf("start %d off %d: err %v, want ErrBadVnetHdr", c.start, c.off, err)
		}
	}
	h.Clear()
	if err := CompleteChecksum(frame[:3], h); err != nil {
		t.Errorf("no NEEDS_CSUM: err %v", err)
	}
}

// reserialize decodes a frame with gopacket and serializes it again with lengths and
// checksums computed by gopacket: a correct frame comes out unchanged.
func reserialize(t *testing.T, frame []byte) ([]byte, *layers.TCP) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		t.Fatal("no TCP layer")
	}
	if err := tcp.SetNetworkLayerForChecksum(p.NetworkLayer()); err != nil {
		t.Fatal(err)
	}
	var ls []gopacket.SerializableLayer
	for _, l := range p.Layers() {
		if _, ok := l.(*gopacket.Payload); ok {
			continue
		}
		if s, ok := l.(gopacket.SerializableLayer); ok {
			ls = append(ls, s)
		}
	}
	ls = append(ls, gopacket.Payload(tcp.Payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), tcp
}

func TestSegmentTCP(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 60; i++ {
		v6 := i%2 == 1
		mss := 500 + r.IntN(1000)
		n := r.IntN(65000 - 100)
		if i < 4 {
			n = []int{1, mss, mss + 1, 3 * mss}[i]
		}
		payload := randPayload(r, n)
		fin := i%3 == 0
		seq := r.Uint32()
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: seq, Ack: r.Uint32(), ACK: true,
			PSH: true, FIN: fin, CWR: i%5 == 0, Window: 1000,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{1, 2, 3, 4, 5, 6, 7, 8}}}}
		frame := buildFrame(t, v6, tcp, payload)
		start := 14 + 20
		gso := uint8(VnetGSOTCPv4)
		if v6 {
			start, gso = 14+40, VnetGSOTCPv6
		}
		h := VnetHdr(make([]byte, VnetHdrLen))
		h.SetFlags(VnetHdrFNeedsCsum)
		h.SetGSOType(gso)
		h.SetGSOSize(uint16(mss))
		h.SetCsumStart(uint16(start))
		h.SetCsumOffset(16)
		h.SetHdrLen(uint16(start + 32))

		count, maxLen, err := GSOSegments(frame, h)
		if err != nil {
			t.Fatal(err)
		}
		out := make([][]byte, count)
		for j := range out {
			out[j] = make([]byte, maxLen)
		}
		sizes := make([]int, count)
		got, err := SegmentTCP(frame, h, out, sizes)
		if err != nil {
			t.Fatal(err)
		}
		if want := (n + mss - 1) / mss; got != want {
			t.Fatalf("case %d: %d segments, want %d", i, got, want)
		}
		var joined []byte
		for j := 0; j < got; j++ {
			seg := out[j][:sizes[j]]
			if len(seg)-start-32 > mss {
				t.Fatalf("segment %d carries %d bytes > MSS %d", j, len(seg)-start-32, mss)
			}
			ref, l := reserialize(t, seg)
			if !bytes.Equal(seg, ref) {
				t.Fatalf("case %d segment %d differs from gopacket (lengths/checksums):\n%x\n%x", i, j, seg, ref)
			}
			if l.Seq != seq+uint32(len(joined)) {
				t.Fatalf("segment %d seq %d, want %d", j, l.Seq, seq+uint32(len(joined)))
			}
			last := j == got-1
			if l.FIN != (fin && last) || l.PSH != last || l.CWR != (i%5 == 0 && j == 0) {
				t.Fatalf("segment %d flags FIN=%v PSH=%v CWR=%v", j, l.FIN, l.PSH, l.CWR)
			}
			if !v6 {
				if id := binary.BigEndian.Uint16(seg[14+4:]); id != 0xfff0+uint16(j) {
					t.Fatalf("segment %d IPv4 ID %#x", j, id)
				}
			}
			joined = append(joined, l.Payload...)
		}
		if !bytes.Equal(joined, payload) {
			t.Fatalf("case %d: reassembled payload differs", i)
		}
	}
}

func TestSegmentTCPErrors(t *testing.T) {
	frame := buildFrame(t, false, &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}, make([]byte, 3000))
	good := func() VnetHdr {
		h := VnetHdr(make([]byte, VnetHdrLen))
		h.SetGSOType(VnetGSOTCPv4)
		h.SetGSOSize(1000)
		h.SetCsumStart(34)
		h.SetCsumOffset(16)
		return h
	}
	out := [][]byte{make([]byte, 2000), make([]byte, 2000), make([]byte, 2000)}
	sizes := make([]int, 3)
	if n, err := SegmentTCP(frame, good(), out, sizes); err != nil || n != 3 {
		t.Fatalf("good frame: %d, %v", n, err)
	}
	cases := []struct {
		name  string
		frame []byte
		mod   func(VnetHdr)
		out   int
		want  error
	}{
		{"udp gso", frame, func(h VnetHdr) { h.SetGSOType(VnetGSOUDPL4) }, 3, ErrUnsupportedGSO},
		{"no gso", frame, func(h VnetHdr) { h.SetGSOType(VnetGSONone) }, 3, ErrUnsupportedGSO},
		{"v6 type on v4", frame, func(h VnetHdr) { h.SetGSOType(VnetGSOTCPv6) }, 3, ErrBadVnetHdr},
		{"csum start in ip", frame, func(h VnetHdr) { h.SetCsumStart(30) }, 3, ErrBadVnetHdr},
		{"csum start past end", frame, func(h VnetHdr) { h.SetCsumStart(4000) }, 3, ErrBadVnetHdr},
		{"zero mss", frame, func(h VnetHdr) { h.SetGSOSize(0) }, 3, ErrBadVnetHdr},
		{"short frame", frame[:40], func(VnetHdr) {}, 3, ErrBadVnetHdr},
		{"tiny frame", frame[:5], func(VnetHdr) {}, 3, ErrBadVnetHdr},
		{"too few buffers", frame, func(VnetHdr) {}, 2, ErrShortBuffer},
		{"small buffers", frame, func(h VnetHdr) { h.SetGSOSize(1950) }, 3, ErrShortBuffer},
	}
	for _, c := range cases {
		h := good()
		c.mod(h)
		if _, err := SegmentTCP(c.frame, h, out[:c.out], sizes); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzSegmentTCP(f *testing.F) {
	f.Add(make([]byte, 100), uint8(VnetGSOTCPv4), uint16(10), uint16(34))
	f.Add(buildFrame(f, true, &layers.TCP{SrcPort: 1, DstPort: 2}, make([]byte, 300)), uint8(VnetGSOTCPv6), uint16(100), uint16(54))
	f.Add(buildFrame(f, false, &layers.TCP{SrcPort: 1, DstPort: 2}, make([]byte, 300)), uint8(VnetGSOTCPv4), uint16(1), uint16(34))
	out := make([][]byte, 64)
	for i := range out {
		out[i] = make([]byte, 256)
	}
	sizes := make([]int, 64)
	f.Fuzz(func(t *testing.T, frame []byte, gso uint8, mss, start uint16) {
		h := VnetHdr(make([]byte, VnetHdrLen))
		h.SetGSOType(gso)
		h.SetGSOSize(mss)
		h.SetCsumStart(start)
		h.SetFlags(VnetHdrFNeedsCsum)
		h.SetCsumOffset(16)
		_, _, _ = GSOSegments(frame, h)
		_, _ = SegmentTCP(frame, h, out, sizes)
		_ = CompleteChecksum(frame, h)
	})
}

// BenchmarkSegmentTCP measures software TSO of a 64 KiB TCPv4 frame into 1448-byte segments.
func BenchmarkSegmentTCP(b *testing.B) {
	frame := buildFrame(b, false, &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}, make([]byte, 65000))
	h := VnetHdr(make([]byte, VnetHdrLen))
	h.SetGSOType(VnetGSOTCPv4)
	h.SetGSOSize(1448)
	h.SetCsumStart(34)
	h.SetCsumOffset(16)
	count, maxLen, err := GSOSegments(frame, h)
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]byte, count)
	for i := range out {
		out[i] = make([]byte, maxLen)
	}
	sizes := make([]int, count)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := SegmentTCP(frame, h, out, sizes); err != nil {
			b.Fatal(err)
		}
	}
}
