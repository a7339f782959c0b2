package nat

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"ulb/router/header"
)

// fuzzAddr makes an address of 4 or 16 bytes, else none (keep).
func fuzzAddr(b []byte) netip.Addr {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Addr{}
	}
	return a
}

// transportState is what the fuzz oracles know about a packet before and after.
type transportState struct {
	ipValid  bool // IPv4 header checksum (always true for IPv6)
	l4Valid  bool // transport checksum
	pseudoOK bool // the field holds the pseudo-header sum (CHECKSUM_PARTIAL form)
}

func protoOf(lay layout) uint8 {
	switch lay.kind {
	case kindTCP:
		return header.ProtocolTCP
	case kindUDP:
		return header.ProtocolUDP
	}
	if lay.v4 {
		return header.ProtocolICMPv4
	}
	return header.ProtocolICMPv6
}

// stateOf reads the checksum state of a complete packet b laid out as lay (found on
// b or a copy of the same length and capacity).
func stateOf(b []byte, lay layout, l4off int) transportState {
	seg := b[l4off : l4off+len(lay.l4)]
	var src, dst netip.Addr
	s := transportState{ipValid: true}
	if lay.v4 {
		v := header.IPv4(b)
		s.ipValid = v.IsChecksumValid()
		src, dst = v.SourceAddr(), v.DestinationAddr()
	} else {
		src, dst = header.IPv6(b).SourceAddr(), header.IPv6(b).DestinationAddr()
	}
	p := protoOf(lay)
	s.l4Valid = header.IsTransportChecksumValid(p, src, dst, seg)
	if p != header.ProtocolICMPv4 && len(seg) <= 0xffff {
		have := binary.BigEndian.Uint16(seg[lay.csum:])
		s.pseudoOK = sameSum(have, header.PseudoHeaderChecksum(p, src, dst, uint16(len(seg))))
	}
	return s
}

func FuzzApply(f *testing.F) {
	rng := rand.New(rand.NewPCG(99, 99))
	for _, pr := range protos {
		for _, partial := range []bool{false, true} {
			p := genPacket(rng, pr.v4, pr.p, genOpts{partial: partial})
			r := randRewrite(rng, pr.v4, pr.p)
			f.Add(p.b, r.Src.AsSlice(), r.Dst.AsSlice(), r.SrcPort, r.DstPort, partial)
		}
	}
	f.Add([]byte{0x45}, []byte(nil), []byte(nil), uint16(0), uint16(0), false)
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 44, 64}, []byte(nil), []byte(nil), uint16(1), uint16(1), true)
	f.Fuzz(func(t *testing.T, data, src, dst []byte, sport, dport uint16, partial bool) {
		r := Rewrite{Src: fuzzAddr(src), Dst: fuzzAddr(dst), SrcPort: sport, DstPort: dport}
		b := append([]byte(nil), data...)
		lay, parsed := parseIP(exactCopy(data), false)
		fits := parsed && lay.fits(r)
		var before transportState
		var l4off int
		if parsed {
			l4off = len(data) - cap(lay.l4) // lay.l4's capacity runs to the end of the copy
			before = stateOf(data, lay, l4off)
		}
		ok := Apply(b, r, partial)
		if ok != fits {
			t.Fatalf("Apply = %v, parse/fit = %v", ok, fits)
		}
		if !ok {
			if !bytes.Equal(b, data) {
				t.Fatal("refused and changed")
			}
			return
		}
		after := stateOf(b, lay, l4off)
		if before.ipValid && !after.ipValid {
			t.Fatal("IPv4 header checksum broken")
		}
		if partial {
			if before.pseudoOK && !after.pseudoOK {
				t.Fatal("pseudo-header sum broken")
			}
			if lay.kind == kindEcho && lay.v4 &&
				!bytes.Equal(b[l4off+2:l4off+4], data[l4off+2:l4off+4]) {
				t.Fatal("partial ICMPv4 checksum field changed")
			}
		} else if before.l4Valid && !after.l4Valid {
			t.Fatal("transport checksum broken")
		}
		// Apply again with the old values: the packet comes back.
		e, _ := Parse(data)
		back := Rewrite{SrcPort: e.SrcPort, DstPort: e.DstPort}
		if r.Src.IsValid() {
			back.Src = e.Src
		}
		if r.Dst.IsValid() {
			back.Dst = e.Dst
		}
		if !Apply(b, back, partial) {
			t.Fatal("reverse rewrite refused")
		}
		if s := stateOf(b, lay, l4off); s.ipValid != before.ipValid ||
			(!partial && s.l4Valid != before.l4Valid) || (partial && s.pseudoOK != before.pseudoOK) {
			t.Fatalf("reverse rewrite: checksum state %+v, want %+v", s, before)
		}
	})
}

func FuzzTranslateICMPError(f *testing.F) {
	rng := rand.New(rand.NewPCG(98, 98))
	for _, pr := range protos {
		in := genPacket(rng, pr.v4, pr.p, genOpts{noPad: true})
		for _, q := range []int{in.l4 + 8, min(in.l4+17, in.end), in.end} {
			tcs := errTypes[pr.v4]
			e := genError(in, q, tcs[rng.IntN(len(tcs))], randAddr(rng, pr.v4), randAddr(rng, pr.v4))
			r := randRewrite(rng, pr.v4, pr.p)
			o := randAddr(rng, pr.v4)
			f.Add(e.b, o.AsSlice(), []byte(nil), r.Src.AsSlice(), r.Dst.AsSlice(), r.SrcPort, r.DstPort)
		}
	}
	f.Fuzz(func(t *testing.T, data, osrc, odst, isrc, idst []byte, sport, dport uint16) {
		outer := Rewrite{Src: fuzzAddr(osrc), Dst: fuzzAddr(odst)}
		inner := Rewrite{Src: fuzzAddr(isrc), Dst: fuzzAddr(idst), SrcPort: sport, DstPort: dport}
		if q, ok := ErrorInner(data); ok {
			Parse(q)
		}
		b := append([]byte(nil), data...)
		out, isErr := parseError(exactCopy(data))
		var icmpOff int
		var ipOK, icmpOK, innerIPOK, innerL4OK bool
		var inLay layout
		var inOK bool
		if isErr {
			icmpOff = len(data) - cap(out.l4)
			ipOK = !out.v4 || header.IPv4(data).IsChecksumValid()
			icmpOK = icmpValid(data, out, icmpOff)
			q := data[icmpOff+8 : icmpOff+len(out.l4)]
			innerIPOK = innerIPv4Valid(q)
			inLay, inOK = parseIP(exactCopy(q), false)
			if inOK {
				innerL4OK = stateOf(q, inLay, len(q)-cap(inLay.l4)).l4Valid
			}
		}
		if !TranslateICMPError(b, outer, inner) {
			if !bytes.Equal(b, data) {
				t.Fatal("refused and changed")
			}
			return
		}
		if !isErr {
			t.Fatal("translated what parseError refuses")
		}
		if ipOK && out.v4 && !header.IPv4(b).IsChecksumValid() {
			t.Fatal("outer IPv4 header checksum broken")
		}
		if icmpOK && !icmpValid(b, out, icmpOff) {
			t.Fatal("ICMP checksum broken")
		}
		q := b[icmpOff+8 : icmpOff+len(out.l4)]
		if innerIPOK && !innerIPv4Valid(q) {
			t.Fatal("quoted IPv4 header checksum broken")
		}
		if inOK && innerL4OK && !stateOf(q, inLay, len(q)-cap(inLay.l4)).l4Valid {
			t.Fatal("quoted transport checksum broken")
		}
	})
}

// exactCopy copies b into a slice whose capacity is its length, so that the offset of
// a subslice of the copy is len(b) minus the subslice's capacity.
func exactCopy(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

func icmpValid(b []byte, out layout, off int) bool {
	src, dst := addrsOf(b, out.v4)
	proto := header.ProtocolICMPv4
	if !out.v4 {
		proto = header.ProtocolICMPv6
	}
	return header.IsTransportChecksumValid(proto, src, dst, b[off:off+len(out.l4)])
}

// innerIPv4Valid reports whether q starts with a quoted IPv4 header whose checksum is
// correct.
func innerIPv4Valid(q []byte) bool {
	if len(q) < header.IPv4MinimumSize || q[0]>>4 != 4 {
		return false
	}
	hl := header.IPv4(q).HeaderLength()
	return hl >= header.IPv4MinimumSize && hl <= len(q) && header.Checksum(q[:hl], 0) == 0xffff
}
