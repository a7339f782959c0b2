package header

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestTCPAgainstGopacket(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		src, dst := v4A, v4B
		var netLayer gopacket.NetworkLayer
		var ipLayer gopacket.SerializableLayer
		if v6 {
			src, dst = v6A, v6B
			ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64, SrcIP: ipOf(src), DstIP: ipOf(dst)}
			netLayer, ipLayer = ip, ip
		} else {
			ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ipOf(src), DstIP: ipOf(dst)}
			netLayer, ipLayer = ip, ip
		}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 0x01020304, Ack: 0xa0b0c0d0, SYN: true, ACK: true,
			ECE: true, Window: 29200, Urgent: 7, Options: []layers.TCPOption{
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
				{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
				{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
			}}
		tcp.SetNetworkLayerForChecksum(netLayer)
		payload := []byte("GET / HTTP/1.0\r\n\r\n")
		b := serialize(t, ipLayer, tcp, gopacket.Payload(payload))
		var seg TCP
		if v6 {
			seg = TCP(IPv6(b).Payload())
		} else {
			seg = TCP(IPv4(b).Payload())
		}
		if !seg.IsValid() {
			t.Fatal("TCP not valid")
		}
		if seg.SourcePort() != 40000 || seg.DestinationPort() != 443 || seg.Seq() != 0x01020304 || seg.Ack() != 0xa0b0c0d0 ||
			seg.Flags() != TCPFlagSYN|TCPFlagACK|TCPFlagECE || seg.Window() != 29200 || seg.UrgentPointer() != 7 ||
			seg.DataOffset() != 32 || !bytes.Equal(seg.Payload(), payload) {
			t.Errorf("v6=%v fields: %d>%d seq %#x ack %#x flags %#x win %d off %d", v6, seg.SourcePort(), seg.DestinationPort(),
				seg.Seq(), seg.Ack(), seg.Flags(), seg.Window(), seg.DataOffset())
		}
		if mss, ok := seg.MSS(); !ok || mss != 1460 {
			t.Errorf("MSS = %d, %v", mss, ok)
		}
		if !IsTransportChecksumValid(ProtocolTCP, src, dst, seg) {
			t.Errorf("v6=%v: gopacket's checksum not valid for us", v6)
		}
		if x, _ := TransportChecksum(ProtocolTCP, src, dst, seg); x != seg.Checksum() {
			t.Errorf("v6=%v: TransportChecksum %#x, gopacket wrote %#x", v6, x, seg.Checksum())
		}

		// Rewrite ports, clamp MSS, rewrite an address; gopacket must agree with our fields
		// and our incremental checksum with its full one.
		seg.SetSourcePortWithChecksumUpdate(1234)
		seg.SetDestinationPortWithChecksumUpdate(8080)
		if !seg.ClampMSSWithChecksumUpdate(1400) || seg.ClampMSSWithChecksumUpdate(1500) {
			t.Error("ClampMSSWithChecksumUpdate result")
		}
		ndst := dst
		if v6 {
			ndst = v6C
			IPv6(b).SetDestinationAddr(ndst)
		} else {
			ndst = v4C
			IPv4(b).SetDestinationAddrWithChecksumUpdate(ndst)
		}
		seg.UpdateChecksumPseudoHeaderAddress(dst, ndst)
		first := layers.LayerTypeIPv4
		if v6 {
			first = layers.LayerTypeIPv6
		}
		p := gopacket.NewPacket(b, first, gopacket.Default)
		g := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if g.SrcPort != 1234 || g.DstPort != 8080 || binary.BigEndian.Uint16(g.Options[1].OptionData) != 1400 {
			t.Errorf("gopacket after rewrite: %d>%d options %v", g.SrcPort, g.DstPort, g.Options)
		}
		g.SetNetworkLayerForChecksum(p.NetworkLayer())
		again := serialize(t, g, gopacket.Payload(g.Payload))
		if got := binary.BigEndian.Uint16(again[16:]); got != seg.Checksum() {
			t.Errorf("v6=%v: incremental checksum %#x, gopacket recomputes %#x", v6, seg.Checksum(), got)
		}
	}
}

func TestTCPIsValid(t *testing.T) {
	b := make([]byte, 24)
	EncodeTCP(b, TCPFields{SrcPort: 1, DstPort: 2, DataOffset: 24})
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"good", b, true},
		{"short", b[:19], false},
		{"options past end", b[:23], false},
		{"data offset 16", func() []byte { c := append([]byte(nil), b...); c[12] = 4 << 4; return c }(), false},
	} {
		if got := TCP(tc.b).IsValid(); got != tc.want {
			t.Errorf("%s: IsValid = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTCPMSSOption(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []byte
		mss  uint16
		ok   bool
	}{
		{"none", nil, 0, false},
		{"aligned", []byte{2, 4, 5, 0xb4}, 1460, true},
		{"odd offset", []byte{1, 2, 4, 0x05, 0x78, 0, 0, 0}, 1400, true},
		{"after window scale", []byte{3, 3, 7, 2, 4, 0x23, 0x28, 0}, 9000, true},
		{"eol before", []byte{0, 2, 4, 5, 0xb4, 0, 0, 0}, 0, false},
		{"bad length before", []byte{3, 9, 0, 2, 4, 5, 0xb4, 0}, 0, false},
		{"wrong MSS length", []byte{2, 3, 5, 0}, 0, false},
		{"truncated", []byte{1, 1, 1, 2}, 0, false},
	} {
		b := make([]byte, 20+len(tc.opts)+5)
		EncodeTCP(b, TCPFields{DataOffset: uint8(20 + len(tc.opts)), Flags: TCPFlagSYN})
		copy(b[20:], tc.opts)
		seg := TCP(b)
		if !seg.IsValid() {
			t.Fatalf("%s: invalid", tc.name)
		}
		mss, ok := seg.MSS()
		if mss != tc.mss || ok != tc.ok {
			t.Errorf("%s: MSS = %d, %v; want %d, %v", tc.name, mss, ok, tc.mss, tc.ok)
		}
		if seg.SetMSSWithChecksumUpdate(536) != tc.ok {
			t.Errorf("%s: SetMSSWithChecksumUpdate disagrees with MSS", tc.name)
		}
	}
}

// randTCP returns a TCP segment with random content, options and ports and a correct
// checksum for src > dst.
func randTCP(r *rand.Rand, src, dst netip.Addr) TCP {
	optLen := 4 * r.IntN(11)
	b := randBytes(r, 20+optLen+r.IntN(40))
	b[12] = byte((20+optLen)/4) << 4
	// Put an MSS option at a random position, maybe odd, after NOPs.
	if optLen >= 8 {
		nops := r.IntN(optLen - 3)
		for i := 0; i < nops; i++ {
			b[20+i] = 1
		}
		copy(b[20+nops:], []byte{2, 4, byte(r.Uint32()), byte(r.Uint32())})
	}
	SetTransportChecksum(ProtocolTCP, src, dst, b)
	return TCP(b)
}

func TestTCPChecksumUpdatesMatchRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for i := 0; i < 20000; i++ {
		v6 := i%2 == 0
		src, dst := randAddr(r, v6), randAddr(r, v6)
		seg := randTCP(r, src, dst)
		what := ""
		switch i % 8 {
		case 0, 1:
			what = "source port"
			seg.SetSourcePortWithChecksumUpdate(uint16(r.Uint32()))
		case 2, 3:
			what = "destination port"
			seg.SetDestinationPortWithChecksumUpdate(uint16(r.Uint32()))
		case 4, 5:
			what = "MSS"
			if _, ok := seg.MSS(); ok && !seg.SetMSSWithChecksumUpdate(uint16(r.Uint32())) {
				t.Fatal("SetMSSWithChecksumUpdate failed with an MSS option")
			}
		case 6, 7:
			what = "pseudo-header source"
			n := randAddr(r, v6)
			seg.UpdateChecksumPseudoHeaderAddress(src, n)
			src = n
		}
		want, _ := TransportChecksum(ProtocolTCP, src, dst, seg)
		if seg.Checksum() != want {
			t.Fatalf("%s: incremental %#04x, recomputed %#04x", what, seg.Checksum(), want)
		}
	}
}

func TestUDPAgainstGopacket(t *testing.T) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ipOf(v4A), DstIP: ipOf(v4B)}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	payload := []byte("query")
	b := serialize(t, ip, udp, gopacket.Payload(payload))
	u := UDP(IPv4(b).Payload())
	if !u.IsValid() || u.SourcePort() != 5353 || u.DestinationPort() != 53 || u.Length() != 13 || !bytes.Equal(u.Payload(), payload) {
		t.Fatalf("fields: %d>%d len %d", u.SourcePort(), u.DestinationPort(), u.Length())
	}
	if x, _ := TransportChecksum(ProtocolUDP, v4A, v4B, u); x != u.Checksum() {
		t.Errorf("TransportChecksum %#x, gopacket %#x", x, u.Checksum())
	}
	u.SetSourcePortWithChecksumUpdate(40000)
	u.SetDestinationPortWithChecksumUpdate(5300)
	IPv4(b).SetSourceAddrWithChecksumUpdate(v4C)
	u.UpdateChecksumPseudoHeaderAddress(v4A, v4C)
	p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
	g := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	g.SetNetworkLayerForChecksum(p.NetworkLayer())
	again := serialize(t, g, gopacket.Payload(g.Payload))
	if g.SrcPort != 40000 || g.DstPort != 5300 || binary.BigEndian.Uint16(again[6:]) != u.Checksum() {
		t.Errorf("gopacket: %d>%d checksum %#x, ours %#x", g.SrcPort, g.DstPort, binary.BigEndian.Uint16(again[6:]), u.Checksum())
	}
	if !IPv4(b).IsChecksumValid() {
		t.Error("IPv4 checksum invalid after address rewrite")
	}

	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"short", make([]byte, 7), false},
		{"length 7", []byte{0, 1, 0, 2, 0, 7, 0, 0}, false},
		{"length past end", []byte{0, 1, 0, 2, 0, 9, 0, 0}, false},
		{"length 8", []byte{0, 1, 0, 2, 0, 8, 0, 0}, true},
	} {
		if got := UDP(tc.b).IsValid(); got != tc.want {
			t.Errorf("%s: IsValid = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUDPChecksumUpdatesMatchRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for i := 0; i < 20000; i++ {
		v6 := i%2 == 0
		src, dst := randAddr(r, v6), randAddr(r, v6)
		b := randBytes(r, 8+r.IntN(40))
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
		u := UDP(b)
		noSum := !v6 && i%5 == 1
		if noSum {
			u.SetChecksum(0)
		} else {
			SetTransportChecksum(ProtocolUDP, src, dst, u)
		}
		switch i % 3 {
		case 0:
			u.SetSourcePortWithChecksumUpdate(uint16(r.Uint32()))
		case 1:
			u.SetDestinationPortWithChecksumUpdate(uint16(r.Uint32()))
		case 2:
			n := randAddr(r, v6)
			u.UpdateChecksumPseudoHeaderAddress(dst, n)
			dst = n
		}
		if noSum {
			if u.Checksum() != 0 {
				t.Fatalf("zero (absent) UDP checksum became %#x", u.Checksum())
			}
			continue
		}
		want, _ := TransportChecksum(ProtocolUDP, src, dst, u)
		if u.Checksum() != want || u.Checksum() == 0 {
			t.Fatalf("incremental %#04x, recomputed %#04x", u.Checksum(), want)
		}
	}
}

func TestTransportNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seg := randTCP(r, v4A, v4B)
	for len(seg.Options()) < 8 {
		seg = randTCP(r, v4A, v4B)
	}
	u := UDP(make([]byte, 20))
	EncodeUDP(u, 1, 2, 20)
	n := testing.AllocsPerRun(100, func() {
		if !seg.IsValid() || !u.IsValid() {
			panic("invalid")
		}
		seg.SetSourcePortWithChecksumUpdate(seg.SourcePort() + 1)
		seg.SetDestinationPortWithChecksumUpdate(80)
		seg.UpdateChecksumPseudoHeaderAddress(v4A, v4B)
		seg.ClampMSSWithChecksumUpdate(1000)
		_, _ = seg.MSS()
		it := seg.OptionIter()
		it.Next()
		u.SetSourcePortWithChecksumUpdate(9)
		u.UpdateChecksumPseudoHeaderAddress(v4A, v4B)
		_ = u.Payload()
	})
	if n != 0 {
		t.Errorf("TCP/UDP hot path allocates %v times per run", n)
	}
}
