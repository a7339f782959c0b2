package nat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

var protos = []struct {
	name string
	v4   bool
	p    uint8
}{
	{"tcp4", true, header.ProtocolTCP},
	{"udp4", true, header.ProtocolUDP},
	{"echo4", true, header.ProtocolICMPv4},
	{"tcp6", false, header.ProtocolTCP},
	{"udp6", false, header.ProtocolUDP},
	{"echo6", false, header.ProtocolICMPv6},
}

// diffPkt compares got with the reference want byte for byte, checksum fields (the IPv4
// header's and the transport one) in ones' complement.
func diffPkt(p testPkt, got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("length %d, want %d", len(got), len(want))
	}
	sums := map[int]bool{p.l4 + checksumOffset(p.proto): true}
	if p.v4 {
		sums[10] = true
	}
	for i := 0; i < len(got); i++ {
		if sums[i] {
			g, w := binary.BigEndian.Uint16(got[i:]), binary.BigEndian.Uint16(want[i:])
			if !sameSum(g, w) || (p.proto == header.ProtocolUDP && i != 10 && g != w) {
				return fmt.Errorf("checksum at %d: %#04x, want %#04x", i, g, w)
			}
			i++
			continue
		}
		if got[i] != want[i] {
			return fmt.Errorf("byte %d: %#02x, want %#02x", i, got[i], want[i])
		}
	}
	return nil
}

// TestApplyRandom checks Apply against a full recomputation on thousands of random
// packets of every family and protocol, complete and CHECKSUM_PARTIAL.
func TestApplyRandom(t *testing.T) {
	const n = 3000
	for _, pr := range protos {
		for _, partial := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/partial=%v", pr.name, partial), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(pr.p), uint64(len(pr.name))))
				for i := 0; i < n; i++ {
					p := genPacket(rng, pr.v4, pr.p, genOpts{partial: partial})
					if !partial && !checksumsValid(p, p.b) {
						t.Fatalf("generator made an invalid packet % x", p.b)
					}
					r := randRewrite(rng, pr.v4, pr.p)
					want := refApply(p, r, partial)
					got := append([]byte(nil), p.b...)
					if !Apply(got, r, partial) {
						t.Fatalf("Apply(%+v) refused packet % x", r, p.b)
					}
					if err := diffPkt(p, got, want); err != nil {
						t.Fatalf("Apply(%+v, partial=%v): %v\nin   % x\ngot  % x\nwant % x", r, partial, err, p.b, got, want)
					}
					if partial {
						completePartial(p, got)
					}
					if !checksumsValid(p, got) {
						t.Fatalf("invalid checksum after Apply(%+v, partial=%v): % x", r, partial, got)
					}
				}
			})
		}
	}
}

// TestApplyGopacket decodes rewritten packets with gopacket, an independent decoder, and
// checks every rewritten field.
func TestApplyGopacket(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, pr := range protos {
		for i := 0; i < 200; i++ {
			p := genPacket(rng, pr.v4, pr.p, genOpts{noPad: true})
			for !gopacketDecodes(p) {
				p = genPacket(rng, pr.v4, pr.p, genOpts{noPad: true})
			}
			r := randRewrite(rng, pr.v4, pr.p)
			r.Src, r.Dst = randAddr(rng, pr.v4), randAddr(rng, pr.v4)
			b := append([]byte(nil), p.b...)
			if !Apply(b, r, false) {
				t.Fatalf("%s: Apply refused", pr.name)
			}
			first := layers.LayerTypeIPv6
			if pr.v4 {
				first = layers.LayerTypeIPv4
			}
			pkt := gopacket.NewPacket(b, first, gopacket.Default)
			if el := pkt.ErrorLayer(); el != nil {
				t.Fatalf("%s: gopacket: %v", pr.name, el.Error())
			}
			var src, dst netip.Addr
			if pr.v4 {
				ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				src, dst = addrOf(ip.SrcIP), addrOf(ip.DstIP)
			} else {
				ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				src, dst = addrOf(ip.SrcIP), addrOf(ip.DstIP)
			}
			if src != r.Src.Unmap() || dst != r.Dst {
				t.Fatalf("%s: addresses %v -> %v, want %v -> %v", pr.name, src, dst, r.Src, r.Dst)
			}
			var sp, dp uint16
			switch pr.p {
			case header.ProtocolTCP:
				l := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
				sp, dp = uint16(l.SrcPort), uint16(l.DstPort)
			case header.ProtocolUDP:
				l := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
				sp, dp = uint16(l.SrcPort), uint16(l.DstPort)
			case header.ProtocolICMPv4:
				l := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
				sp, dp = l.Id, l.Id
			default:
				l := pkt.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
				sp, dp = l.Identifier, l.Identifier
			}
			wsp, wdp := r.SrcPort, r.DstPort
			if pr.p == header.ProtocolICMPv4 || pr.p == header.ProtocolICMPv6 {
				id := r.SrcPort
				if id == 0 {
					id = r.DstPort
				}
				if id == 0 {
					id = binary.BigEndian.Uint16(p.b[p.l4+4:])
				}
				wsp, wdp = id, id
			}
			orig := p.b[p.l4:]
			if wsp == 0 {
				wsp = binary.BigEndian.Uint16(orig[0:])
			}
			if wdp == 0 {
				wdp = binary.BigEndian.Uint16(orig[2:])
			}
			if sp != wsp || dp != wdp {
				t.Fatalf("%s: ports %d -> %d, want %d -> %d", pr.name, sp, dp, wsp, wdp)
			}
			if !checksumsValid(p, b) {
				t.Fatalf("%s: invalid checksum", pr.name)
			}
		}
	}
}

// gopacketDecodes reports whether gopacket decodes the transport header of a generated
// packet: not in a fragment, nor after a segment routing header (it knows only type 0).
func gopacketDecodes(p testPkt) bool {
	if p.v4 {
		return !header.IPv4(p.b).IsFragment()
	}
	next, off := p.b[6], 40
	for off < p.l4 {
		if next == header.ProtocolFragment || next == header.ProtocolRouting {
			return false
		}
		next, off = p.b[off], off+8
	}
	return true
}

func addrOf(ip []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// TestApplyUDPZeroChecksum checks that a UDP/IPv4 datagram without a checksum keeps
// none, and that a rewrite whose checksum comes out as zero writes 0xffff.
func TestApplyUDPZeroChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200; i++ {
		p := genPacket(rng, true, header.ProtocolUDP, genOpts{})
		seg := p.b[p.l4:p.end]
		binary.BigEndian.PutUint16(seg[6:], 0)
		if !Apply(p.b, randRewrite(rng, true, header.ProtocolUDP), false) {
			t.Fatal("Apply refused")
		}
		if x := binary.BigEndian.Uint16(seg[6:]); x != 0 {
			t.Fatalf("UDP checksum %#04x, want 0 (none)", x)
		}
	}
	// Find a rewrite whose checksum is zero and check it is sent as 0xffff.
	for _, v4 := range []bool{true, false} {
		found := false
		for i := 0; i < 1<<20 && !found; i++ {
			p := genPacket(rng, v4, header.ProtocolUDP, genOpts{noPad: true})
			seg := p.b[p.l4:p.end]
			if binary.BigEndian.Uint16(seg[6:]) == 0 {
				continue
			}
			// Choose the source port that makes the full checksum zero.
			old := binary.BigEndian.Uint16(seg[0:])
			x := binary.BigEndian.Uint16(seg[6:])
			// ~(~x - old + new) == 0  <=>  new == old - ~x
			np := ^header.ChecksumCombine(^old, ^x)
			if np == 0 {
				continue
			}
			if !Apply(p.b, Rewrite{SrcPort: np}, false) {
				t.Fatal("Apply refused")
			}
			if got := binary.BigEndian.Uint16(seg[6:]); got != 0xffff {
				t.Fatalf("v4=%v: checksum %#04x for a zero sum, want 0xffff", v4, got)
			}
			if !checksumsValid(p, p.b) {
				t.Fatalf("v4=%v: invalid checksum", v4)
			}
			found = true
		}
		if !found {
			t.Fatalf("v4=%v: no zero-sum case generated", v4)
		}
	}
}

// TestApplyRefuses checks that what Apply cannot rewrite is refused and left unchanged.
func TestApplyRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	v4 := genPacket(rng, true, header.ProtocolTCP, genOpts{noPad: true})
	v6 := genPacket(rng, false, header.ProtocolUDP, genOpts{noPad: true})
	echo4 := genPacket(rng, true, header.ProtocolICMPv4, genOpts{noPad: true})
	a4, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	mod := func(p testPkt, f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), p.b...))
	}
	v4hdr := func(b []byte) {
		v := header.IPv4(b)
		v.SetChecksum(0)
		v.SetChecksum(v.CalculateChecksum())
	}
	cases := []struct {
		name string
		b    []byte
		r    Rewrite
	}{
		{"empty", nil, Rewrite{Dst: a4}},
		{"version 5", mod(v4, func(b []byte) []byte { b[0] = 0x55; return b }), Rewrite{Dst: a4}},
		{"v4 short", v4.b[:19], Rewrite{Dst: a4}},
		{"v4 total length past end", mod(v4, func(b []byte) []byte { return b[:len(b)-1] }), Rewrite{Dst: a4}},
		{"v4 ihl 4", mod(v4, func(b []byte) []byte { b[0] = 0x44; return b }), Rewrite{Dst: a4}},
		{"v4 later fragment", mod(v4, func(b []byte) []byte { b[7] = 1; v4hdr(b); return b }), Rewrite{Dst: a4}},
		{"v4 tcp cut", mod(v4, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[2:], uint16(v4.l4+19))
			v4hdr(b)
			return b
		}), Rewrite{Dst: a4}},
		{"v4 tcp data offset past end", mod(v4, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[2:], uint16(v4.l4+20))
			b[v4.l4+12] = 0x60
			v4hdr(b)
			return b
		}), Rewrite{Dst: a4}},
		{"v4 unknown protocol", mod(v4, func(b []byte) []byte { b[9] = 47; v4hdr(b); return b }), Rewrite{Dst: a4}},
		{"v4 with v6 address", v4.b, Rewrite{Dst: a6}},
		{"v6 with v4 address", v6.b, Rewrite{Src: a4}},
		{"v6 with v4-mapped address", v6.b, Rewrite{Src: netip.AddrFrom16(a4.As16())}},
		{"v6 short", v6.b[:39], Rewrite{Dst: a6}},
		{"v6 payload past end", v6.b[:len(v6.b)-1], Rewrite{Dst: a6}},
		{"v6 udp cut", mod(v6, func(b []byte) []byte {
			b[6] = header.ProtocolUDP
			binary.BigEndian.PutUint16(b[4:], 7)
			return b[:47]
		}), Rewrite{Dst: a6}},
		{"v6 later fragment", mod(v6, func(b []byte) []byte {
			frag := []byte{b[6], 0, 0, 8, 1, 2, 3, 4}
			b[6] = header.ProtocolFragment
			binary.BigEndian.PutUint16(b[4:], binary.BigEndian.Uint16(b[4:])+8)
			return append(b[:40:40], append(frag, b[40:]...)...)
		}), Rewrite{Dst: a6}},
		{"v6 routing segments left", mod(v6, func(b []byte) []byte {
			rt := []byte{b[6], 0, 4, 1, 0, 0, 0, 0}
			b[6] = header.ProtocolRouting
			binary.BigEndian.PutUint16(b[4:], binary.BigEndian.Uint16(b[4:])+8)
			return append(b[:40:40], append(rt, b[40:]...)...)
		}), Rewrite{Dst: a6}},
		{"v6 esp", mod(v6, func(b []byte) []byte { b[6] = header.ProtocolESP; return b }), Rewrite{Dst: a6}},
		{"icmp4 not echo", mod(echo4, func(b []byte) []byte { b[echo4.l4] = header.ICMPv4DstUnreachable; return b }), Rewrite{Dst: a4}},
		{"echo ids differ", echo4.b, Rewrite{SrcPort: 1, DstPort: 2}},
		{"icmp4 in v6", mod(v6, func(b []byte) []byte { b[6] = header.ProtocolICMPv4; return b }), Rewrite{Dst: a6}},
	}
	for _, c := range cases {
		in := append([]byte(nil), c.b...)
		if Apply(c.b, c.r, false) {
			t.Errorf("%s: Apply accepted it", c.name)
		}
		if !bytes.Equal(in, c.b) {
			t.Errorf("%s: Apply changed a refused packet", c.name)
		}
	}
}

// TestApplyFirstFragment checks that the first fragment of a datagram (v4 MF, v6
// fragment header with offset 0) is rewritten like a whole datagram.
func TestApplyFirstFragment(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	seen4, seen6 := false, false
	for i := 0; i < 400; i++ {
		v4 := i%2 == 0
		proto := header.ProtocolUDP
		p := genPacket(rng, v4, proto, genOpts{})
		if v4 && !header.IPv4(p.b).MoreFragments() {
			continue
		}
		if !v4 && p.b[6] != header.ProtocolFragment {
			continue
		}
		seen4, seen6 = seen4 || v4, seen6 || !v4
		r := randRewrite(rng, v4, proto)
		want := refApply(p, r, false)
		if !Apply(p.b, r, false) {
			t.Fatal("Apply refused a first fragment")
		}
		if err := diffPkt(p, p.b, want); err != nil {
			t.Fatal(err)
		}
	}
	if !seen4 || !seen6 {
		t.Fatalf("generator made no first fragment (v4 %v, v6 %v)", seen4, seen6)
	}
}

// TestApplyNoChange checks that a zero rewrite leaves a packet as it was.
func TestApplyNoChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, pr := range protos {
		p := genPacket(rng, pr.v4, pr.p, genOpts{})
		in := append([]byte(nil), p.b...)
		if !Apply(p.b, Rewrite{}, false) || !bytes.Equal(in, p.b) {
			t.Fatalf("%s: zero rewrite changed the packet or was refused", pr.name)
		}
	}
	if !(Rewrite{}).IsZero() || (Rewrite{DstPort: 1}).IsZero() {
		t.Fatal("IsZero")
	}
}

// TestParse checks the endpoints read from complete and quoted packets.
func TestParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, pr := range protos {
		for i := 0; i < 100; i++ {
			p := genPacket(rng, pr.v4, pr.p, genOpts{})
			src, dst := p.addrs()
			seg := p.b[p.l4:]
			want := Endpoints{Src: src, Dst: dst, Proto: pr.p,
				SrcPort: binary.BigEndian.Uint16(seg), DstPort: binary.BigEndian.Uint16(seg[2:])}
			if pr.p == header.ProtocolICMPv4 || pr.p == header.ProtocolICMPv6 {
				want.SrcPort = binary.BigEndian.Uint16(seg[4:])
				want.DstPort = want.SrcPort
			}
			for _, cut := range []int{len(p.b), p.end, p.l4 + 8} {
				e, ok := Parse(p.b[:cut])
				if !ok || e != want {
					t.Fatalf("%s cut %d: Parse = %+v %v, want %+v", pr.name, cut, e, ok, want)
				}
			}
			if _, ok := Parse(p.b[:p.l4+7]); ok {
				t.Fatalf("%s: Parse accepted a quote without 8 transport bytes", pr.name)
			}
		}
	}
}

// TestApplyAllocs checks that Apply allocates nothing.
func TestApplyAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, pr := range protos {
		p := genPacket(rng, pr.v4, pr.p, genOpts{})
		r := Rewrite{Src: randAddr(rng, pr.v4), Dst: randAddr(rng, pr.v4), SrcPort: 1000, DstPort: 1000}
		if a := testing.AllocsPerRun(100, func() { Apply(p.b, r, false) }); a != 0 {
			t.Errorf("%s: %v allocations per Apply", pr.name, a)
		}
		if a := testing.AllocsPerRun(100, func() { Parse(p.b) }); a != 0 {
			t.Errorf("%s: %v allocations per Parse", pr.name, a)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, pr := range protos {
		for _, partial := range []bool{false, true} {
			p := genPacket(rng, pr.v4, pr.p, genOpts{partial: partial})
			// A full-NAT rewrite: both addresses and both ports.
			r := [2]Rewrite{
				{Src: randAddr(rng, pr.v4), Dst: randAddr(rng, pr.v4), SrcPort: 40000, DstPort: 8080},
				{Src: randAddr(rng, pr.v4), Dst: randAddr(rng, pr.v4), SrcPort: 50000, DstPort: 80},
			}
			if pr.p == header.ProtocolICMPv4 || pr.p == header.ProtocolICMPv6 {
				r[0].DstPort, r[1].DstPort = r[0].SrcPort, r[1].SrcPort // one identifier
			}
			b.Run(fmt.Sprintf("%s/partial=%v", pr.name, partial), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if !Apply(p.b, r[i&1], partial) {
						b.Fatal("refused")
					}
				}
			})
		}
	}
}
