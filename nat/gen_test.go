package nat

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"

	"ulb/router/header"
)

// testPkt is a generated packet and where its parts are.
type testPkt struct {
	b     []byte // the packet, possibly followed by link-layer padding
	end   int    // end of the IP packet (total length)
	v4    bool
	proto uint8
	l4    int // offset of the transport header
}

// genOpts shapes a generated packet.
type genOpts struct {
	partial bool // checksum field holds the pseudo-header sum (CHECKSUM_PARTIAL)
	noPad   bool // no link-layer padding after the packet
}

func randAddr(rng *rand.Rand, v4 bool) netip.Addr {
	if v4 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], rng.Uint32())
		return netip.AddrFrom4(a)
	}
	var a [16]byte
	binary.BigEndian.PutUint64(a[:], rng.Uint64())
	binary.BigEndian.PutUint64(a[8:], rng.Uint64())
	// Never an IPv4-mapped address: that is IPv4 to Rewrite.
	a[10] |= 1
	return netip.AddrFrom16(a)
}

func randPort(rng *rand.Rand) uint16 { return uint16(1 + rng.IntN(65535)) }

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// genL4 builds a transport header with payload for proto (ICMP: an echo request or
// reply), its checksum field zero.
func genL4(rng *rand.Rand, v4 bool, proto uint8) []byte {
	n := rng.IntN(300)
	if rng.IntN(4) == 0 {
		n = 0
	}
	switch proto {
	case header.ProtocolTCP:
		opt := 4 * rng.IntN(11)
		b := make([]byte, header.TCPMinimumSize+opt, header.TCPMinimumSize+opt+n)
		header.EncodeTCP(b, header.TCPFields{
			SrcPort: randPort(rng), DstPort: randPort(rng), Seq: rng.Uint32(), Ack: rng.Uint32(),
			DataOffset: uint8(header.TCPMinimumSize + opt), Flags: uint8(rng.Uint32()),
			Window: uint16(rng.Uint32()), UrgentPointer: uint16(rng.Uint32()),
		})
		for i := header.TCPMinimumSize; i < len(b); i++ {
			b[i] = header.TCPOptionNOP
		}
		if opt >= 4 {
			copy(b[header.TCPMinimumSize:], []byte{header.TCPOptionMSS, 4, byte(rng.Uint32()), byte(rng.Uint32())})
		}
		return append(b, randBytes(rng, n)...)
	case header.ProtocolUDP:
		b := make([]byte, header.UDPMinimumSize, header.UDPMinimumSize+n)
		header.EncodeUDP(b, randPort(rng), randPort(rng), uint16(header.UDPMinimumSize+n))
		return append(b, randBytes(rng, n)...)
	default:
		b := make([]byte, 8, 8+n)
		switch {
		case v4 && rng.IntN(2) == 0:
			b[0] = header.ICMPv4Echo
		case v4:
			b[0] = header.ICMPv4EchoReply
		case rng.IntN(2) == 0:
			b[0] = header.ICMPv6EchoRequest
		default:
			b[0] = header.ICMPv6EchoReply
		}
		binary.BigEndian.PutUint16(b[4:], uint16(rng.Uint32()))
		binary.BigEndian.PutUint16(b[6:], uint16(rng.Uint32()))
		return append(b, randBytes(rng, n)...)
	}
}

// checksumOffset is the offset of the transport checksum field.
func checksumOffset(proto uint8) int {
	switch proto {
	case header.ProtocolTCP:
		return 16
	case header.ProtocolUDP:
		return 6
	}
	return 2
}

// genIP wraps l4 in an IPv4 header (with options, maybe a first fragment) or an IPv6
// header (with extension headers, maybe a first fragment).
func genIP(rng *rand.Rand, v4 bool, proto uint8, src, dst netip.Addr, l4 []byte) testPkt {
	var b []byte
	var off int
	if v4 {
		hl := header.IPv4MinimumSize + 4*rng.IntN(4)
		b = make([]byte, hl, hl+len(l4))
		var flags uint8
		switch rng.IntN(4) {
		case 0:
			flags = header.IPv4FlagMoreFragments // a first fragment
		case 1:
			flags = header.IPv4FlagDontFragment
		}
		header.EncodeIPv4(b, header.IPv4Fields{
			TOS: uint8(rng.Uint32()), TotalLength: uint16(hl + len(l4)), ID: uint16(rng.Uint32()),
			Flags: flags, TTL: uint8(1 + rng.IntN(255)), Protocol: proto, Src: src, Dst: dst,
		})
		b[0] = 0x40 | byte(hl/4)
		for i := header.IPv4MinimumSize; i < hl; i++ {
			b[i] = header.IPv4OptionNOP
		}
		v := header.IPv4(b)
		v.SetChecksum(0)
		v.SetChecksum(v.CalculateChecksum())
		off = hl
	} else {
		exts := [][]byte{}
		next := proto
		// Built back to front: each header names the one after it.
		kinds := []uint8{header.ProtocolHopByHop, header.ProtocolDstOpts, header.ProtocolRouting, header.ProtocolFragment}
		var chain []uint8
		for i := 1; i < len(kinds); i++ {
			if rng.IntN(3) == 0 {
				chain = append(chain, kinds[i])
			}
		}
		if rng.IntN(3) == 0 {
			chain = append([]uint8{header.ProtocolHopByHop}, chain...)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			e := make([]byte, 8)
			e[0] = next
			switch chain[i] {
			case header.ProtocolHopByHop, header.ProtocolDstOpts:
				e[2], e[3] = 1, 4 // PadN
			case header.ProtocolRouting:
				e[2] = 4 // segment routing, segments left 0
			case header.ProtocolFragment:
				binary.BigEndian.PutUint16(e[2:], uint16(rng.IntN(2))) // offset 0, maybe M
				binary.BigEndian.PutUint32(e[4:], rng.Uint32())
			}
			exts = append([][]byte{e}, exts...)
			next = chain[i]
		}
		b = make([]byte, header.IPv6MinimumSize, header.IPv6MinimumSize+8*len(exts)+len(l4))
		for _, e := range exts {
			b = append(b, e...)
		}
		header.EncodeIPv6(b, header.IPv6Fields{
			TrafficClass: uint8(rng.Uint32()), FlowLabel: rng.Uint32(),
			PayloadLength: uint16(len(b) - header.IPv6MinimumSize + len(l4)),
			NextHeader:    next, HopLimit: uint8(rng.Uint32()), Src: src, Dst: dst,
		})
		off = len(b)
	}
	b = append(b, l4...)
	return testPkt{b: b, end: len(b), v4: v4, proto: proto, l4: off}
}

// genPacket builds a random packet with valid checksums (or pseudo-header sums when
// partial), followed by up to 5 bytes of padding.
func genPacket(rng *rand.Rand, v4 bool, proto uint8, o genOpts) testPkt {
	src, dst := randAddr(rng, v4), randAddr(rng, v4)
	p := genIP(rng, v4, proto, src, dst, genL4(rng, v4, proto))
	seg := p.b[p.l4:p.end]
	switch {
	case o.partial:
		if proto != header.ProtocolICMPv4 {
			binary.BigEndian.PutUint16(seg[checksumOffset(proto):],
				header.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg))))
		}
	case proto == header.ProtocolUDP && v4 && rng.IntN(4) == 0:
		// no checksum
	default:
		header.SetTransportChecksum(proto, src, dst, seg)
	}
	if !o.noPad {
		p.b = append(p.b, randBytes(rng, rng.IntN(6))...)
	}
	return p
}

func (p testPkt) addrs() (src, dst netip.Addr) {
	if p.v4 {
		return header.IPv4(p.b).SourceAddr(), header.IPv4(p.b).DestinationAddr()
	}
	return header.IPv6(p.b).SourceAddr(), header.IPv6(p.b).DestinationAddr()
}

// randRewrite returns a rewrite of p's family with each field set or kept at random.
func randRewrite(rng *rand.Rand, v4 bool, proto uint8) Rewrite {
	var r Rewrite
	if rng.IntN(3) > 0 {
		r.Src = randAddr(rng, v4)
	}
	if rng.IntN(3) > 0 {
		r.Dst = randAddr(rng, v4)
	}
	if v4 && rng.IntN(8) == 0 && r.Src.IsValid() {
		r.Src = netip.AddrFrom16(r.Src.As16()) // IPv4-mapped form
	}
	if rng.IntN(3) > 0 {
		r.SrcPort = randPort(rng)
	}
	if rng.IntN(3) > 0 {
		r.DstPort = randPort(rng)
	}
	if proto == header.ProtocolICMPv4 || proto == header.ProtocolICMPv6 {
		switch rng.IntN(3) {
		case 0:
			r.SrcPort = r.DstPort
		case 1:
			r.DstPort = 0
		default:
			r.SrcPort = 0
		}
	}
	return r
}

// refApply is the slow reference for Apply: it sets the fields and recomputes every
// checksum from scratch. The packet is copied.
func refApply(p testPkt, r Rewrite, partial bool) []byte {
	b := append([]byte(nil), p.b...)
	ao, n := 12, 4
	if !p.v4 {
		ao, n = 8, 16
	}
	put := func(off int, a netip.Addr) {
		if p.v4 {
			a4 := a.Unmap().As4()
			copy(b[off:], a4[:])
		} else {
			a16 := a.As16()
			copy(b[off:], a16[:])
		}
	}
	if r.Src.IsValid() {
		put(ao, r.Src)
	}
	if r.Dst.IsValid() {
		put(ao+n, r.Dst)
	}
	seg := b[p.l4:p.end]
	switch p.proto {
	case header.ProtocolTCP, header.ProtocolUDP:
		if r.SrcPort != 0 {
			binary.BigEndian.PutUint16(seg[0:], r.SrcPort)
		}
		if r.DstPort != 0 {
			binary.BigEndian.PutUint16(seg[2:], r.DstPort)
		}
	default:
		id := r.SrcPort
		if id == 0 {
			id = r.DstPort
		}
		if id != 0 {
			binary.BigEndian.PutUint16(seg[4:], id)
		}
	}
	if p.v4 {
		v := header.IPv4(b)
		v.SetChecksum(v.CalculateChecksum())
	}
	np := p
	np.b = b
	src, dst := np.addrs()
	co := checksumOffset(p.proto)
	switch {
	case partial:
		if p.proto != header.ProtocolICMPv4 {
			binary.BigEndian.PutUint16(seg[co:], header.PseudoHeaderChecksum(p.proto, src, dst, uint16(len(seg))))
		}
	case p.proto == header.ProtocolUDP && p.v4 && binary.BigEndian.Uint16(seg[co:]) == 0:
	default:
		header.SetTransportChecksum(p.proto, src, dst, seg)
	}
	return b
}

// sameSum reports whether two checksum field values are equal in ones' complement
// (0x0000 and 0xffff are both zero).
func sameSum(a, b uint16) bool {
	return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

// completePartial does what the NIC does with a CHECKSUM_PARTIAL frame: it sums the
// segment (the field holding the pseudo-header sum) and stores the complement.
func completePartial(p testPkt, b []byte) {
	seg := b[p.l4:p.end]
	co := checksumOffset(p.proto)
	x := ^header.Checksum(seg, 0)
	if p.proto == header.ProtocolUDP && x == 0 {
		x = 0xffff
	}
	binary.BigEndian.PutUint16(seg[co:], x)
}

// checksumsValid reports whether the IPv4 header checksum and the transport checksum of
// the packet in b (laid out as p) are correct.
func checksumsValid(p testPkt, b []byte) bool {
	np := p
	np.b = b
	if p.v4 && !header.IPv4(b).IsChecksumValid() {
		return false
	}
	src, dst := np.addrs()
	return header.IsTransportChecksumValid(p.proto, src, dst, b[p.l4:p.end])
}
