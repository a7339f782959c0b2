package header

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestIPv6AgainstGopacket(t *testing.T) {
	payload := []byte("0123456789")
	b := serialize(t, &layers.IPv6{Version: 6, TrafficClass: 0xb8, FlowLabel: 0xabcde, NextHeader: layers.IPProtocolUDP,
		HopLimit: 33, SrcIP: ipOf(v6A), DstIP: ipOf(v6B)}, gopacket.Payload(payload))
	b = append(b, 0xee, 0xee) // trailing bytes past the payload length
	v := IPv6(b)
	if !v.IsValid() {
		t.Fatal("not valid")
	}
	if v.TrafficClass() != 0xb8 || v.FlowLabel() != 0xabcde || v.PayloadLength() != uint16(len(payload)) ||
		v.NextHeader() != ProtocolUDP || v.HopLimit() != 33 || v.SourceAddr() != v6A || v.DestinationAddr() != v6B ||
		!bytes.Equal(v.Payload(), payload) {
		t.Errorf("fields: tc %#x fl %#x pl %d nh %d hl %d %v>%v", v.TrafficClass(), v.FlowLabel(), v.PayloadLength(),
			v.NextHeader(), v.HopLimit(), v.SourceAddr(), v.DestinationAddr())
	}
	if v.DecHopLimit() != 32 || v.HopLimit() != 32 {
		t.Error("DecHopLimit")
	}
	v.SetHopLimit(0)
	if v.DecHopLimit() != 0 || v.HopLimit() != 0 {
		t.Error("DecHopLimit from 0 changed it")
	}
	v.SetSourceAddr(v6C)
	v.SetDestinationAddr(v6A)
	p := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if addrOf(ip.SrcIP) != v6C || addrOf(ip.DstIP) != v6A {
		t.Errorf("gopacket sees %v > %v after rewrite", ip.SrcIP, ip.DstIP)
	}

	out := make([]byte, 40)
	EncodeIPv6(out, IPv6Fields{TrafficClass: 0x12, FlowLabel: 0xfffff, PayloadLength: 0, NextHeader: ProtocolNoNext,
		HopLimit: 255, Src: v6B, Dst: v6C})
	p = gopacket.NewPacket(out, layers.LayerTypeIPv6, gopacket.Default)
	ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if !ok || ip.Version != 6 || ip.TrafficClass != 0x12 || ip.FlowLabel != 0xfffff || ip.Length != 0 ||
		ip.NextHeader != layers.IPProtocolNoNextHeader || ip.HopLimit != 255 || addrOf(ip.SrcIP) != v6B || addrOf(ip.DstIP) != v6C {
		t.Errorf("gopacket decodes EncodeIPv6 as %+v", ip)
	}
	if !IPv6(out).IsValid() {
		t.Error("EncodeIPv6 output not valid")
	}
}

func TestIPv6IsValid(t *testing.T) {
	good := make([]byte, 48)
	EncodeIPv6(good, IPv6Fields{PayloadLength: 8, NextHeader: ProtocolUDP, HopLimit: 1, Src: v6A, Dst: v6B})
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"good", good, true},
		{"short", good[:39], false},
		{"payload past end", good[:47], false},
		{"version 4", append([]byte{0x45}, good[1:]...), false},
	} {
		if got := IPv6(tc.b).IsValid(); got != tc.want {
			t.Errorf("%s: IsValid = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// extHeader returns an extension header of protocol p with next header nh and about
// size bytes.
func extHeader(p, nh uint8, units int) []byte {
	switch p {
	case ProtocolFragment:
		return []byte{nh, 0, 0, 0, 0, 0, 0, 1}
	case ProtocolAH:
		h := make([]byte, (units+2)*4)
		h[0], h[1] = nh, byte(units)
		return h
	default:
		if p == ProtocolRouting {
			// Type 0 with whole addresses: gopacket refuses other routing types.
			units = max(2, units&^1)
		}
		h := make([]byte, (units+1)*8)
		h[0], h[1] = nh, byte(units)
		if p == ProtocolRouting {
			h[2] = 0 // routing type 0, segments left 0
		} else {
			h[2] = 1 // a PadN option filling the rest
			h[3] = byte(len(h) - 4)
		}
		return h
	}
}

// ipv6WithChain builds an IPv6 packet whose extension headers are chain, followed by an
// 8-byte UDP header, and returns it with the UDP header's offset.
func ipv6WithChain(chain []uint8, units []int) ([]byte, int) {
	b := make([]byte, 40)
	var exts []byte
	for i, p := range chain {
		nh := ProtocolUDP
		if i+1 < len(chain) {
			nh = chain[i+1]
		}
		exts = append(exts, extHeader(p, nh, units[i])...)
	}
	first := ProtocolUDP
	if len(chain) > 0 {
		first = chain[0]
	}
	udp := []byte{0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0}
	EncodeIPv6(b, IPv6Fields{PayloadLength: uint16(len(exts) + len(udp)), NextHeader: first, HopLimit: 9, Src: v6A, Dst: v6B})
	off := len(b) + len(exts)
	b = append(append(b, exts...), udp...)
	SetTransportChecksum(ProtocolUDP, v6A, v6B, b[off:])
	return b, off
}

func TestIPv6TransportProtocolRandomChains(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	kinds := []uint8{ProtocolDstOpts, ProtocolRouting, ProtocolAH, ProtocolFragment}
	for i := 0; i < 3000; i++ {
		var chain []uint8
		var units []int
		if r.IntN(2) == 0 {
			chain, units = append(chain, ProtocolHopByHop), append(units, r.IntN(4))
		}
		for n := r.IntN(IPv6MaxExtensionHeaders - len(chain) + 1); n > 0; n-- {
			chain, units = append(chain, kinds[r.IntN(len(kinds))]), append(units, 1+r.IntN(4))
		}
		b, want := ipv6WithChain(chain, units)
		v := IPv6(b)
		if !v.IsValid() {
			t.Fatalf("chain %v: not valid", chain)
		}
		proto, off, ok := v.TransportProtocol()
		if !ok || proto != ProtocolUDP || off != want {
			t.Fatalf("chain %v: TransportProtocol = %d, %d, %v; want UDP at %d", chain, proto, off, ok, want)
		}
		// gopacket walks the same chain unless a fragment header stops it.
		if bytes.IndexByte(chain, ProtocolFragment) >= 0 {
			continue
		}
		p := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
		udp, isUDP := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !isUDP {
			t.Fatalf("chain %v: gopacket finds no UDP: %v", chain, p)
		}
		if gOff := len(b) - len(udp.Contents) - len(udp.Payload); gOff != off {
			t.Fatalf("chain %v: gopacket has UDP at %d, we at %d", chain, gOff, off)
		}
	}
}

func TestIPv6TransportProtocolRejects(t *testing.T) {
	tooMany := make([]uint8, IPv6MaxExtensionHeaders+1)
	units := make([]int, len(tooMany))
	for i := range tooMany {
		tooMany[i] = ProtocolDstOpts
	}
	b, _ := ipv6WithChain(tooMany, units)
	if _, _, ok := IPv6(b).TransportProtocol(); ok {
		t.Error("accepted more than IPv6MaxExtensionHeaders headers")
	}
	max := tooMany[:IPv6MaxExtensionHeaders]
	b, want := ipv6WithChain(max, units[:len(max)])
	if p, off, ok := IPv6(b).TransportProtocol(); !ok || p != ProtocolUDP || off != want {
		t.Error("refused IPv6MaxExtensionHeaders headers")
	}

	b, _ = ipv6WithChain([]uint8{ProtocolDstOpts, ProtocolHopByHop}, []int{0, 0})
	if _, _, ok := IPv6(b).TransportProtocol(); ok {
		t.Error("accepted hop-by-hop after another header")
	}

	// A header whose length runs past the payload length.
	b, _ = ipv6WithChain([]uint8{ProtocolRouting}, []int{1})
	b[41] = 10
	if _, _, ok := IPv6(b).TransportProtocol(); ok {
		t.Error("accepted a routing header longer than the payload")
	}
	// Payload length too small for the first header's fixed 8 bytes.
	b, _ = ipv6WithChain([]uint8{ProtocolDstOpts}, []int{0})
	b = b[:44]
	b[4], b[5] = 0, 4
	if _, _, ok := IPv6(b).TransportProtocol(); ok {
		t.Error("accepted a truncated destination options header")
	}

	// A non-first fragment carries no UDP header.
	b, want = ipv6WithChain([]uint8{ProtocolFragment}, []int{0})
	b[42], b[43] = 0x05, 0x01 // offset 160 bytes, M set
	if p, off, ok := IPv6(b).TransportProtocol(); ok || p != ProtocolUDP || off != want {
		t.Errorf("non-first fragment: %d %d %v", p, off, ok)
	}
	b[42], b[43] = 0, 1 // first fragment
	if p, _, ok := IPv6(b).TransportProtocol(); !ok || p != ProtocolUDP {
		t.Error("first fragment refused")
	}

	// ESP ends the walk.
	b, _ = ipv6WithChain([]uint8{ProtocolDstOpts}, []int{0})
	b[40] = ProtocolESP
	if p, off, ok := IPv6(b).TransportProtocol(); !ok || p != ProtocolESP || off != 48 {
		t.Errorf("ESP: %d %d %v", p, off, ok)
	}
}

func TestIPv6NoAllocs(t *testing.T) {
	b, _ := ipv6WithChain([]uint8{ProtocolHopByHop, ProtocolDstOpts, ProtocolAH}, []int{0, 1, 2})
	v := IPv6(b)
	n := testing.AllocsPerRun(100, func() {
		if !v.IsValid() {
			panic("invalid")
		}
		_, _, _ = v.TransportProtocol()
		_ = v.SourceAddr()
		_ = v.DestinationAddr()
		v.DecHopLimit()
		v.SetHopLimit(64)
		v.SetSourceAddr(v6C)
	})
	if n != 0 {
		t.Errorf("IPv6 hot path allocates %v times per run", n)
	}
}
