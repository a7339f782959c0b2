package nat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

// testErr is a generated ICMP error and where its parts are.
type testErr struct {
	b     []byte
	v4    bool
	icmp  int     // offset of the ICMP message
	inner testPkt // the invoking packet, complete
	quote int     // bytes of it quoted
}

// errTypes are the handled error types and a code of each, v4 then v6.
var errTypes = map[bool][][2]uint8{
	true: {
		{header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded},
		{header.ICMPv4DstUnreachable, header.ICMPv4PortUnreachable},
		{header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded},
		{header.ICMPv4ParamProblem, 0},
	},
	false: {
		{header.ICMPv6DstUnreachable, header.ICMPv6PortUnreachable},
		{header.ICMPv6PacketTooBig, 0},
		{header.ICMPv6TimeExceeded, header.ICMPv6HopLimitExceeded},
		{header.ICMPv6ParamProblem, 0},
	},
}

// genError wraps the first quote bytes of inner in an ICMP error of type tc from src to
// dst, with valid checksums. The second word carries an MTU of 1400.
func genError(inner testPkt, quote int, tc [2]uint8, src, dst netip.Addr) testErr {
	msg := make([]byte, 8, 8+quote)
	msg[0], msg[1] = tc[0], tc[1]
	binary.BigEndian.PutUint32(msg[4:], 1400)
	msg = append(msg, inner.b[:quote]...)
	var b []byte
	e := testErr{v4: inner.v4, inner: inner, quote: quote}
	if inner.v4 {
		b = make([]byte, header.IPv4MinimumSize, header.IPv4MinimumSize+len(msg))
		header.EncodeIPv4(b, header.IPv4Fields{TotalLength: uint16(header.IPv4MinimumSize + len(msg)),
			TTL: 64, Protocol: header.ProtocolICMPv4, Src: src, Dst: dst})
		e.icmp = header.IPv4MinimumSize
		b = append(b, msg...)
		header.SetTransportChecksum(header.ProtocolICMPv4, src, dst, b[e.icmp:])
	} else {
		b = make([]byte, header.IPv6MinimumSize, header.IPv6MinimumSize+len(msg))
		header.EncodeIPv6(b, header.IPv6Fields{PayloadLength: uint16(len(msg)),
			NextHeader: header.ProtocolICMPv6, HopLimit: 64, Src: src, Dst: dst})
		e.icmp = header.IPv6MinimumSize
		b = append(b, msg...)
		header.SetTransportChecksum(header.ProtocolICMPv6, src, dst, b[e.icmp:])
	}
	e.b = b
	return e
}

// refTranslate is the slow reference: it rewrites the complete invoking packet with
// refApply, quotes it again, and rebuilds the error with fresh checksums.
func refTranslate(e testErr, outer, inner Rewrite) []byte {
	in := refApply(e.inner, inner, false)
	// A quote that cuts the transport checksum field in half keeps its old byte: the
	// new value of one half depends on the missing other.
	if co := e.inner.l4 + checksumOffset(e.inner.proto); co < e.quote && e.quote < co+2 {
		in[co] = e.inner.b[co]
	}
	src, dst := addrsOf(e.b, e.v4)
	if outer.Src.IsValid() {
		src = outer.Src.Unmap()
	}
	if outer.Dst.IsValid() {
		dst = outer.Dst.Unmap()
	}
	tc := [2]uint8{e.b[e.icmp], e.b[e.icmp+1]}
	return genError(testPkt{b: in, v4: e.v4}, e.quote, tc, src, dst).b
}

func addrsOf(b []byte, v4 bool) (src, dst netip.Addr) {
	if v4 {
		return header.IPv4(b).SourceAddr(), header.IPv4(b).DestinationAddr()
	}
	return header.IPv6(b).SourceAddr(), header.IPv6(b).DestinationAddr()
}

// errChecksumsValid checks the outer IPv4 header, the ICMP message and the quoted IPv4
// header checksums.
func errChecksumsValid(e testErr, b []byte) error {
	src, dst := addrsOf(b, e.v4)
	if e.v4 && !header.IPv4(b).IsChecksumValid() {
		return fmt.Errorf("outer IPv4 header checksum")
	}
	proto := header.ProtocolICMPv4
	if !e.v4 {
		proto = header.ProtocolICMPv6
	}
	if !header.IsTransportChecksumValid(proto, src, dst, b[e.icmp:]) {
		return fmt.Errorf("ICMP checksum")
	}
	if e.v4 {
		q := b[e.icmp+8:]
		if header.Checksum(q[:header.IPv4(q).HeaderLength()], 0) != 0xffff {
			return fmt.Errorf("quoted IPv4 header checksum")
		}
	}
	return nil
}

// TestTranslateICMPErrorRandom checks TranslateICMPError against a full rebuild on
// random errors quoting random packets cut at random lengths, and decodes the result
// with gopacket.
func TestTranslateICMPErrorRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, pr := range protos {
		t.Run(pr.name, func(t *testing.T) {
			for i := 0; i < 2000; i++ {
				inner := genPacket(rng, pr.v4, pr.p, genOpts{noPad: true})
				inner.b = inner.b[:inner.end]
				quote := inner.l4 + 8 + rng.IntN(inner.end-inner.l4-7)
				switch rng.IntN(4) {
				case 0:
					quote = inner.end
				case 1:
					quote = inner.l4 + 8
				}
				tcs := errTypes[pr.v4]
				e := genError(inner, quote, tcs[rng.IntN(len(tcs))], randAddr(rng, pr.v4), randAddr(rng, pr.v4))
				outer := Rewrite{SrcPort: randPort(rng)} // ports of the outer rewrite are ignored
				if rng.IntN(2) == 0 {
					outer.Src = randAddr(rng, pr.v4)
				}
				if rng.IntN(2) == 0 {
					outer.Dst = randAddr(rng, pr.v4)
				}
				in := randRewrite(rng, pr.v4, pr.p)
				want := refTranslate(e, outer, in)
				got := append([]byte(nil), e.b...)
				if !TranslateICMPError(got, outer, in) {
					t.Fatalf("refused: % x", e.b)
				}
				if err := diffErr(e, got, want); err != nil {
					t.Fatalf("outer %+v inner %+v quote %d/%d: %v\nin   % x\ngot  % x\nwant % x",
						outer, in, quote, inner.end, err, e.b, got, want)
				}
				if err := errChecksumsValid(e, got); err != nil {
					t.Fatalf("invalid %v after translation: % x", err, got)
				}
				if quote == inner.end {
					q := testPkt{b: got[e.icmp+8:], v4: pr.v4, proto: pr.p, l4: inner.l4, end: inner.end}
					if !checksumsValid(q, q.b) {
						t.Fatalf("quoted packet's checksums invalid: % x", q.b)
					}
				}
				checkErrorGopacket(t, got, pr.v4, want)
			}
		})
	}
}

// diffErr compares a translated error with the reference, checksum fields in ones'
// complement.
func diffErr(e testErr, got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("length %d, want %d", len(got), len(want))
	}
	q := e.icmp + 8
	sums := map[int]bool{e.icmp + 2: true}
	if e.v4 {
		sums[10] = true
		sums[q+10] = true
	}
	if co := e.inner.l4 + checksumOffset(e.inner.proto); co+2 <= e.quote {
		sums[q+co] = true
	}
	for i := 0; i < len(got); i++ {
		if sums[i] {
			g, w := binary.BigEndian.Uint16(got[i:]), binary.BigEndian.Uint16(want[i:])
			if !sameSum(g, w) {
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

// checkErrorGopacket decodes a translated error and the reference with gopacket and
// compares the outer addresses, the ICMP type and code, the quoted addresses and, where
// gopacket decodes the quoted transport header, its ports.
func checkErrorGopacket(t *testing.T, got []byte, v4 bool, want []byte) {
	t.Helper()
	type view struct {
		src, dst, isrc, idst net.IP
		typ                  uint16
		ports                string
	}
	decode := func(b []byte) view {
		var v view
		var quote []byte
		if v4 {
			p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if ip == nil || ic == nil {
				t.Fatalf("gopacket: no IPv4/ICMPv4 in % x", b)
			}
			v.src, v.dst, v.typ, quote = ip.SrcIP, ip.DstIP, uint16(ic.TypeCode), ic.Payload
		} else {
			p := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
			ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			ic, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			if ip == nil || ic == nil {
				t.Fatalf("gopacket: no IPv6/ICMPv6 in % x", b)
			}
			// ICMPv6's payload starts after its 4-byte header: skip the second word.
			v.src, v.dst, v.typ, quote = ip.SrcIP, ip.DstIP, uint16(ic.TypeCode), ic.Payload[4:]
		}
		first := layers.LayerTypeIPv6
		if v4 {
			first = layers.LayerTypeIPv4
		}
		p := gopacket.NewPacket(quote, first, gopacket.Default)
		if l, ok := p.NetworkLayer().(*layers.IPv4); ok {
			v.isrc, v.idst = l.SrcIP, l.DstIP
		} else if l, ok := p.NetworkLayer().(*layers.IPv6); ok {
			v.isrc, v.idst = l.SrcIP, l.DstIP
		} else {
			t.Fatalf("gopacket: no quoted IP header in % x", quote)
		}
		switch l := p.TransportLayer().(type) {
		case *layers.TCP:
			v.ports = fmt.Sprint(l.SrcPort, l.DstPort)
		case *layers.UDP:
			v.ports = fmt.Sprint(l.SrcPort, l.DstPort)
		}
		if l, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			v.ports = fmt.Sprint(l.Id)
		}
		if l, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
			v.ports = fmt.Sprint(l.Identifier)
		}
		return v
	}
	g, w := decode(got), decode(want)
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("gopacket: got %+v, want %+v", g, w)
	}
}

// TestTranslateFragNeeded is the case path-MTU discovery depends on: a client talks to
// a VIP, half-NAT sends it to a server, and a router on the server's 1400-MTU link sends
// fragmentation-needed (v4) or packet-too-big (v6) to the client about the translated
// packet. The router finds the flow with ErrorInner and Parse and translates the error
// so that the client sees it come from the VIP about its own packet to the VIP.
func TestTranslateFragNeeded(t *testing.T) {
	for _, v4 := range []bool{true, false} {
		client, vip, server, hop := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.100"),
			netip.MustParseAddr("203.0.113.200"), netip.MustParseAddr("203.0.113.1")
		tc := [2]uint8{header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded}
		proto := header.ProtocolICMPv4
		if !v4 {
			client, vip, server, hop = netip.MustParseAddr("2001:db8:1::7"), netip.MustParseAddr("2001:db8:1::100"),
				netip.MustParseAddr("2001:db8:2::200"), netip.MustParseAddr("2001:db8:2::1")
			tc = [2]uint8{header.ICMPv6PacketTooBig, 0}
			proto = header.ProtocolICMPv6
		}
		// The translated packet the server link could not carry: client -> server:8080.
		l4 := make([]byte, header.TCPMinimumSize+1460)
		header.EncodeTCP(l4, header.TCPFields{SrcPort: 40000, DstPort: 8080, Seq: 1, Ack: 2, Flags: header.TCPFlagACK, Window: 512})
		sent := genIP(rand.New(rand.NewPCG(1, 2)), v4, header.ProtocolTCP, client, server, l4)
		header.SetTransportChecksum(header.ProtocolTCP, client, server, sent.b[sent.l4:])
		quote := min(len(sent.b), 548)
		e := genError(sent, quote, tc, hop, client)

		inner, ok := ErrorInner(e.b)
		if !ok {
			t.Fatal("ErrorInner refused a fragmentation-needed")
		}
		ep, ok := Parse(inner)
		want := Endpoints{Src: client, Dst: server, SrcPort: 40000, DstPort: 8080, Proto: header.ProtocolTCP}
		if !ok || ep != want {
			t.Fatalf("Parse(inner) = %+v %v, want %+v", ep, ok, want)
		}
		b := append([]byte(nil), e.b...)
		// The error travels like the flow's replies, whose rewrite is this.
		reply := Rewrite{Src: vip, SrcPort: 80}
		if !TranslateICMPError(b, reply, reply.Reversed()) {
			t.Fatal("TranslateICMPError refused")
		}
		if err := errChecksumsValid(e, b); err != nil {
			t.Fatalf("invalid %v", err)
		}
		src, dst := addrsOf(b, v4)
		if src != vip || dst != client {
			t.Fatalf("outer %v -> %v, want %v -> %v", src, dst, vip, client)
		}
		ep, ok = Parse(b[e.icmp+8:])
		want = Endpoints{Src: client, Dst: vip, SrcPort: 40000, DstPort: 80, Proto: header.ProtocolTCP}
		if !ok || ep != want {
			t.Fatalf("translated quote %+v %v, want %+v", ep, ok, want)
		}
		if mtu := binary.BigEndian.Uint32(b[e.icmp+4:]); mtu != 1400 {
			t.Fatalf("MTU word %d, want 1400", mtu)
		}
		// The quoted TCP checksum is the one the client computed for its packet to the VIP.
		orig := append([]byte(nil), sent.b...)
		if !Apply(orig, Rewrite{Dst: vip, DstPort: 80}, false) {
			t.Fatal("Apply refused")
		}
		co := e.icmp + 8 + sent.l4 + 16
		if g, w := binary.BigEndian.Uint16(b[co:]), binary.BigEndian.Uint16(orig[sent.l4+16:]); !sameSum(g, w) {
			t.Fatalf("quoted TCP checksum %#04x, want %#04x", g, w)
		}
		if !header.IsTransportChecksumValid(proto, src, dst, b[e.icmp:]) {
			t.Fatal("ICMP checksum")
		}
	}
}

// TestTranslateICMPErrorRefuses checks the refusals, which leave the packet unchanged.
func TestTranslateICMPErrorRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	a4, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	in4 := genPacket(rng, true, header.ProtocolUDP, genOpts{noPad: true})
	in6 := genPacket(rng, false, header.ProtocolTCP, genOpts{noPad: true})
	tc4 := [2]uint8{header.ICMPv4TimeExceeded, 0}
	tc6 := [2]uint8{header.ICMPv6TimeExceeded, 0}
	e4 := genError(in4, in4.end, tc4, a4, a4)
	e6 := genError(in6, in6.end, tc6, a6, a6)
	fix4 := func(b []byte) []byte {
		v := header.IPv4(b)
		v.SetChecksum(0)
		v.SetChecksum(v.CalculateChecksum())
		return b
	}
	cases := []struct {
		name         string
		b            []byte
		outer, inner Rewrite
	}{
		{"empty", nil, Rewrite{}, Rewrite{}},
		{"v4 redirect", genError(in4, in4.end, [2]uint8{header.ICMPv4Redirect, 0}, a4, a4).b, Rewrite{}, Rewrite{}},
		{"v4 echo", genError(in4, in4.end, [2]uint8{header.ICMPv4Echo, 0}, a4, a4).b, Rewrite{}, Rewrite{}},
		{"v6 echo", genError(in6, in6.end, [2]uint8{header.ICMPv6EchoRequest, 0}, a6, a6).b, Rewrite{}, Rewrite{}},
		{"v6 neighbor solicitation", genError(in6, in6.end, [2]uint8{header.ICMPv6NeighborSolicit, 0}, a6, a6).b, Rewrite{}, Rewrite{}},
		{"v4 quote of 7 transport bytes", genError(in4, in4.l4+7, tc4, a4, a4).b, Rewrite{}, Rewrite{}},
		{"v6 quote of 7 transport bytes", genError(in6, in6.l4+7, tc6, a6, a6).b, Rewrite{}, Rewrite{}},
		{"v4 quoting v6", genError(in6, in6.end, tc4, a4, a4).b, Rewrite{}, Rewrite{}},
		{"v4 fragmented", fix4(append([]byte(nil), e4.b...)), Rewrite{}, Rewrite{}},
		{"v4 outer v6 address", e4.b, Rewrite{Src: a6}, Rewrite{}},
		{"v4 inner v6 address", e4.b, Rewrite{}, Rewrite{Dst: a6}},
		{"v6 outer v4 address", e6.b, Rewrite{Dst: a4}, Rewrite{}},
		{"v6 inner v4 address", e6.b, Rewrite{}, Rewrite{Src: a4}},
		{"v4 message cut", e4.b[:len(e4.b)-1], Rewrite{}, Rewrite{}},
		{"v4 no ICMP header", fix4(append([]byte(nil), e4.b[:27]...)), Rewrite{}, Rewrite{}},
	}
	// Make the "fragmented" case a later fragment and then a first one (MF).
	cases[8].b[6] = 0x20
	fix4(cases[8].b)
	binary.BigEndian.PutUint16(cases[14].b[2:], 27)
	fix4(cases[14].b)
	for _, c := range cases {
		in := append([]byte(nil), c.b...)
		if TranslateICMPError(c.b, c.outer, c.inner) {
			t.Errorf("%s: accepted", c.name)
		}
		if !bytes.Equal(in, c.b) {
			t.Errorf("%s: changed a refused packet", c.name)
		}
	}
	if _, ok := ErrorInner(genError(in4, 0, tc4, a4, a4).b); ok {
		t.Error("ErrorInner accepted an empty quote")
	}
	if _, ok := ErrorInner(in4.b); ok {
		t.Error("ErrorInner accepted a UDP packet")
	}
}

// TestTranslateICMPErrorAllocs checks that the ICMP error path allocates nothing.
func TestTranslateICMPErrorAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, v4 := range []bool{true, false} {
		in := genPacket(rng, v4, header.ProtocolTCP, genOpts{noPad: true})
		e := genError(in, in.end, errTypes[v4][0], randAddr(rng, v4), randAddr(rng, v4))
		o, r := Rewrite{Src: randAddr(rng, v4)}, Rewrite{Dst: randAddr(rng, v4), DstPort: 80}
		a := testing.AllocsPerRun(100, func() {
			q, _ := ErrorInner(e.b)
			Parse(q)
			TranslateICMPError(e.b, o, r)
		})
		if a != 0 {
			t.Errorf("v4=%v: %v allocations", v4, a)
		}
	}
}

func BenchmarkTranslateICMPError(b *testing.B) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, v4 := range []bool{true, false} {
		in := genPacket(rng, v4, header.ProtocolTCP, genOpts{noPad: true})
		e := genError(in, min(in.end, 548), errTypes[v4][0], randAddr(rng, v4), randAddr(rng, v4))
		r := [2][2]Rewrite{
			{{Src: randAddr(rng, v4)}, {Dst: randAddr(rng, v4), DstPort: 80}},
			{{Src: randAddr(rng, v4)}, {Dst: randAddr(rng, v4), DstPort: 8080}},
		}
		b.Run(fmt.Sprintf("v4=%v", v4), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if !TranslateICMPError(e.b, r[i&1][0], r[i&1][1]) {
					b.Fatal("refused")
				}
			}
		})
	}
}
