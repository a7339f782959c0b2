package decap

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestInner(t *testing.T) {
	ser := func(ls ...gopacket.SerializableLayer) []byte {
		b := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	inner4 := ser(&layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{192, 0, 2, 2}, DstIP: net.IP{198, 51, 100, 100}},
		gopacket.Payload("hello"))
	outer4 := ser(&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolIPv4, SrcIP: net.IP{192, 0, 2, 10}, DstIP: net.IP{203, 0, 113, 11}},
		gopacket.Payload(inner4))
	if got, ok := Inner(outer4, false); !ok || !bytes.Equal(got, inner4) {
		t.Errorf("IPv4: %x %v, want %x", got, ok, inner4)
	}
	inner6 := ser(&layers.IPv6{Version: 6, HopLimit: 63, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("2001:db8:1::2"), DstIP: net.ParseIP("2001:db8:1::100")}, gopacket.Payload("hello"))
	if got, ok := Inner(append(inner6, 0, 0), true); !ok || !bytes.Equal(got, inner6) {
		t.Errorf("IPv6: %x %v, want %x", got, ok, inner6)
	}
	for _, bad := range []struct {
		b  []byte
		v6 bool
	}{
		{outer4[:30], false},            // inner header cut
		{outer4[:len(outer4)-1], false}, // inner total length past the data
		{inner4, false},                 // not protocol 4
		{inner6[:39], true},
		{inner6[:len(inner6)-1], true},
		{inner4, true}, // version 4 on the IPv6 socket
	} {
		if _, ok := Inner(bad.b, bad.v6); ok {
			t.Errorf("Inner(%x, %v) accepted", bad.b, bad.v6)
		}
	}
}
