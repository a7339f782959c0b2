package header

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestEncapsulate(t *testing.T) {
	ser := func(ls ...gopacket.SerializableLayer) []byte {
		b := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	src4, dst4 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("203.0.113.11")
	src6, dst6 := netip.MustParseAddr("2001:db8:2::10"), netip.MustParseAddr("2001:db8:3::11")
	in4 := ser(&layers.IPv4{Version: 4, IHL: 5, TOS: 0x2e << 2, TTL: 9, Protocol: layers.IPProtocolUDP, Flags: layers.IPv4DontFragment,
		SrcIP: []byte{198, 51, 100, 2}, DstIP: []byte{198, 51, 100, 100}}, gopacket.Payload("inner"))
	in6 := ser(&layers.IPv6{Version: 6, TrafficClass: 0x29, FlowLabel: 0xabcde, HopLimit: 9, NextHeader: layers.IPProtocolUDP,
		SrcIP: netip.MustParseAddr("2001:db8:1::2").AsSlice(), DstIP: netip.MustParseAddr("2001:db8:1::100").AsSlice()}, gopacket.Payload("inner"))

	b := append(make([]byte, IPv4TunnelOverhead), in4...)
	if !EncapsulateIPv4(b, src4, dst4, 0) {
		t.Fatal("EncapsulateIPv4 refused a valid packet")
	}
	p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
	o := p.Layers()[0].(*layers.IPv4)
	if o.Protocol != layers.IPProtocolIPv4 || o.TOS != 0x2e<<2 || o.TTL != DefaultTTL || o.Flags != layers.IPv4DontFragment ||
		int(o.Length) != len(b) || !o.SrcIP.Equal(src4.AsSlice()) || !o.DstIP.Equal(dst4.AsSlice()) || !IPv4(b).IsChecksumValid() {
		t.Errorf("outer %+v", o)
	}
	if !bytes.Equal(b[IPv4TunnelOverhead:], in4) {
		t.Error("inner packet changed")
	}

	b = append(make([]byte, IPv6TunnelOverhead), in6...)
	if !EncapsulateIPv6(b, src6, dst6) {
		t.Fatal("EncapsulateIPv6 refused a valid packet")
	}
	o6 := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default).Layers()[0].(*layers.IPv6)
	if o6.NextHeader != layers.IPProtocolIPv6 || o6.TrafficClass != 0x29 || o6.FlowLabel != 0xabcde || o6.HopLimit != DefaultTTL ||
		int(o6.Length) != len(in6) || !o6.SrcIP.Equal(src6.AsSlice()) || !o6.DstIP.Equal(dst6.AsSlice()) {
		t.Errorf("outer %+v", o6)
	}
	if !bytes.Equal(b[IPv6TunnelOverhead:], in6) {
		t.Error("inner packet changed")
	}

	for _, c := range []struct {
		what     string
		b        []byte
		src, dst netip.Addr
	}{
		{"a short buffer", make([]byte, 10), src4, dst4},
		{"padding after the inner packet", append(append(make([]byte, 20), in4...), 0), src4, dst4},
		{"an inner packet cut", append(make([]byte, 20), in4[:len(in4)-1]...), src4, dst4},
		{"IPv6 addresses", append(make([]byte, 20), in4...), src6, dst6},
		{"an IPv6 inner packet", append(make([]byte, 20), in6...), src4, dst4},
	} {
		before := bytes.Clone(c.b)
		if EncapsulateIPv4(c.b, c.src, c.dst, 1) || !bytes.Equal(before, c.b) {
			t.Errorf("EncapsulateIPv4 with %s: accepted or wrote", c.what)
		}
	}
	big := make([]byte, 20+65535)
	copy(big[20:], in4)
	big[22], big[23] = 0xff, 0xff // an inner packet of 65535 bytes: the outer would be longer
	if EncapsulateIPv4(big, src4, dst4, 1) {
		t.Error("EncapsulateIPv4 accepted an outer packet over 65535 bytes")
	}
	for _, c := range []struct {
		what     string
		b        []byte
		src, dst netip.Addr
	}{
		{"padding after the inner packet", append(append(make([]byte, 40), in6...), 0), src6, dst6},
		{"an inner packet cut", append(make([]byte, 40), in6[:len(in6)-1]...), src6, dst6},
		{"IPv4 addresses", append(make([]byte, 40), in6...), src4, dst4},
		{"an IPv4 inner packet", append(make([]byte, 40), in4...), src6, dst6},
	} {
		if EncapsulateIPv6(c.b, c.src, c.dst) {
			t.Errorf("EncapsulateIPv6 with %s: accepted", c.what)
		}
	}
}
