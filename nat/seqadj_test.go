package nat

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

// segment builds a TCP segment with gopacket between the server and the client and
// returns the IP packet and the offset of its TCP header.
func segment(t testing.TB, v6 bool, tcp *layers.TCP, payload []byte) ([]byte, int) {
	src, dst := netip.MustParseAddr("203.0.113.200"), netip.MustParseAddr("192.0.2.7")
	var ip gopacket.SerializableLayer
	if v6 {
		src, dst = netip.MustParseAddr("2001:db8:2::200"), netip.MustParseAddr("2001:db8:9::7")
		l := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		tcp.SetNetworkLayerForChecksum(l)
		ip = l
	} else {
		l := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		tcp.SetNetworkLayerForChecksum(l)
		ip = l
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	off := header.IPv4MinimumSize
	if v6 {
		off = header.IPv6MinimumSize
	}
	return buf.Bytes(), off
}

// decode parses an IP packet and checks its TCP checksum by recomputing it with gopacket.
func decode(t testing.TB, pkt []byte, v6 bool) *layers.TCP {
	t.Helper()
	first := layers.LayerTypeIPv4
	if v6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	got := tcp.Checksum
	nl := p.NetworkLayer()
	if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	if want := binary.BigEndian.Uint16(buf.Bytes()[16:]); got != want {
		t.Errorf("checksum %#04x, want %#04x", got, want)
	}
	return tcp
}

func tsOpt(val, ecr uint32) layers.TCPOption {
	d := make([]byte, 8)
	binary.BigEndian.PutUint32(d, val)
	binary.BigEndian.PutUint32(d[4:], ecr)
	return layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: d}
}

var nop = layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1}

func TestAdjustToClient(t *testing.T) {
	a := SeqAdjust{Seq: 0x80000010, TS: 5000, Timestamps: true, WScale: 2}
	for _, v6 := range []bool{false, true} {
		// Timestamps aligned (NOP NOP TS) and at an odd offset (one NOP).
		for _, opts := range [][]layers.TCPOption{{nop, nop, tsOpt(1000, 77)}, {nop, tsOpt(1000, 77), nop, nop, nop}} {
			pkt, off := segment(t, v6, &layers.TCP{SrcPort: 80, DstPort: 40001, Seq: 0xfffffff0, Ack: 12345, ACK: true,
				Window: 1000, Options: opts}, []byte("hello"))
			if !AdjustToClient(header.TCP(pkt[off:]), a, false) {
				t.Fatal("refused")
			}
			tcp := decode(t, pkt, v6)
			if tcp.Seq != 0x80000000 || tcp.Ack != 12345 || tcp.Window != 4000 {
				t.Errorf("v6 %v: seq %#x ack %d window %d", v6, tcp.Seq, tcp.Ack, tcp.Window)
			}
			for _, o := range tcp.Options {
				if o.OptionType == layers.TCPOptionKindTimestamps {
					if val, ecr := binary.BigEndian.Uint32(o.OptionData), binary.BigEndian.Uint32(o.OptionData[4:]); val != 6000 || ecr != 77 {
						t.Errorf("v6 %v: TSval %d TSecr %d, want 6000 77", v6, val, ecr)
					}
				}
			}
		}
	}
	// A window shifted past 16 bits is the largest; a right shift divides.
	pkt, off := segment(t, false, &layers.TCP{SrcPort: 80, DstPort: 1, Window: 40000, ACK: true}, nil)
	AdjustToClient(header.TCP(pkt[off:]), SeqAdjust{WScale: 1}, false)
	if w := decode(t, pkt, false).Window; w != 0xffff {
		t.Errorf("window 40000<<1 = %d, want 65535", w)
	}
	pkt, off = segment(t, false, &layers.TCP{SrcPort: 80, DstPort: 1, Window: 40000, ACK: true}, nil)
	AdjustToClient(header.TCP(pkt[off:]), SeqAdjust{WScale: -3}, false)
	if w := decode(t, pkt, false).Window; w != 5000 {
		t.Errorf("window 40000>>3 = %d, want 5000", w)
	}
}

func TestAdjustToServer(t *testing.T) {
	a := SeqAdjust{Seq: 1000, TS: 5000, Timestamps: true}
	sack := layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: 18, OptionData: make([]byte, 16)}
	for i, e := range []uint32{3000, 4000, 500, 900} { // the second block wraps below zero
		binary.BigEndian.PutUint32(sack.OptionData[4*i:], e)
	}
	for _, v6 := range []bool{false, true} {
		pkt, off := segment(t, v6, &layers.TCP{SrcPort: 40001, DstPort: 80, Seq: 777, Ack: 2500, ACK: true, Window: 512,
			Options: []layers.TCPOption{nop, nop, tsOpt(42, 9000), nop, nop, sack}}, []byte("GET /"))
		if !AdjustToServer(header.TCP(pkt[off:]), a, false) {
			t.Fatal("refused")
		}
		tcp := decode(t, pkt, v6)
		if tcp.Seq != 777 || tcp.Ack != 1500 || tcp.Window != 512 {
			t.Errorf("v6 %v: seq %d ack %d window %d", v6, tcp.Seq, tcp.Ack, tcp.Window)
		}
		for _, o := range tcp.Options {
			switch o.OptionType {
			case layers.TCPOptionKindTimestamps:
				if val, ecr := binary.BigEndian.Uint32(o.OptionData), binary.BigEndian.Uint32(o.OptionData[4:]); val != 42 || ecr != 4000 {
					t.Errorf("v6 %v: TSval %d TSecr %d, want 42 4000", v6, val, ecr)
				}
			case layers.TCPOptionKindSACK:
				want := []uint32{2000, 3000, 1<<32 - 500, 1<<32 - 100}
				for i, w := range want {
					if got := binary.BigEndian.Uint32(o.OptionData[4*i:]); got != w {
						t.Errorf("v6 %v: SACK edge %d = %d, want %d", v6, i, got, w)
					}
				}
			}
		}
	}
	// A segment without ACK (a RST) keeps its acknowledgment field.
	pkt, off := segment(t, false, &layers.TCP{SrcPort: 40001, DstPort: 80, Seq: 1, Ack: 99, RST: true}, nil)
	AdjustToServer(header.TCP(pkt[off:]), a, false)
	if tcp := decode(t, pkt, false); tcp.Ack != 99 {
		t.Errorf("RST's ack changed to %d", tcp.Ack)
	}
}

// With CHECKSUM_PARTIAL the field holds the pseudo-header's sum: the fields change,
// the checksum does not.
func TestAdjustPartial(t *testing.T) {
	pkt, off := segment(t, false, &layers.TCP{SrcPort: 80, DstPort: 1, Seq: 5, ACK: true, Ack: 9}, nil)
	tcp := header.TCP(pkt[off:])
	tcp.SetChecksum(0x1234)
	AdjustToClient(tcp, SeqAdjust{Seq: 10}, true)
	AdjustToServer(tcp, SeqAdjust{Seq: 3}, true)
	if tcp.Checksum() != 0x1234 || tcp.Seq() != 15 || tcp.Ack() != 6 {
		t.Errorf("checksum %#x seq %d ack %d", tcp.Checksum(), tcp.Seq(), tcp.Ack())
	}
}

func TestAdjustAllocs(t *testing.T) {
	pkt, off := segment(t, true, &layers.TCP{SrcPort: 80, DstPort: 1, ACK: true, Options: []layers.TCPOption{nop, nop, tsOpt(1, 2)}}, nil)
	tcp := header.TCP(pkt[off:])
	a := SeqAdjust{Seq: 1, TS: 1, Timestamps: true, WScale: 1}
	if n := testing.AllocsPerRun(100, func() { AdjustToClient(tcp, a, false); AdjustToServer(tcp, a, false) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func FuzzAdjust(f *testing.F) {
	pkt, off := segment(f, false, &layers.TCP{SrcPort: 80, DstPort: 1, ACK: true,
		Options: []layers.TCPOption{nop, tsOpt(1, 2), nop, nop, nop}}, nil)
	f.Add(pkt[off:], uint32(7), int8(2))
	f.Add([]byte{0, 80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x10, 0, 0, 0, 0, 0, 0, 5, 200, 8, 10}, uint32(1), int8(-1))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32, ws int8) {
		a := SeqAdjust{Seq: seq, TS: seq, Timestamps: true, WScale: ws % 15}
		AdjustToClient(header.TCP(b), a, false)
		AdjustToServer(header.TCP(b), a, false)
	})
}
