package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 is a view of an IPv6 packet (RFC 8200).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                         Source Address (16)                   +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                      Destination Address (16)                 +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv6 []byte

const (
	ipv6VersTCFL     = 0
	ipv6PayloadLen   = 4
	ipv6NextHeader   = 6
	ipv6HopLimit     = 7
	ipv6Src          = 8
	ipv6Dst          = 24
	ipv6FlowLabelMsk = 0x000fffff

	// IPv6MinimumSize is the size of the fixed IPv6 header.
	IPv6MinimumSize = 40
	// IPv6MinimumMTU is the link MTU every IPv6 link must carry (RFC 8200).
	IPv6MinimumMTU = 1280
	// IPv6MaxExtensionHeaders caps the extension headers TransportProtocol walks.
	IPv6MaxExtensionHeaders = 8
)

// IsValid reports whether b holds a 40-byte header with version 6 whose payload length
// fits in b. Jumbograms (payload length 0 with a jumbo option) are not recognised: their
// payload is taken as empty.
func (b IPv6) IsValid() bool {
	return len(b) >= IPv6MinimumSize && b[ipv6VersTCFL]>>4 == 6 &&
		IPv6MinimumSize+int(binary.BigEndian.Uint16(b[ipv6PayloadLen:])) <= len(b)
}

// TrafficClass returns the traffic class (DSCP and ECN).
func (b IPv6) TrafficClass() uint8 {
	return uint8(binary.BigEndian.Uint16(b[ipv6VersTCFL:]) >> 4)
}

// FlowLabel returns the 20-bit flow label.
func (b IPv6) FlowLabel() uint32 {
	return binary.BigEndian.Uint32(b[ipv6VersTCFL:]) & ipv6FlowLabelMsk
}

// PayloadLength returns the payload length field.
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[ipv6PayloadLen:]) }

// NextHeader returns the type of the header after the fixed header.
func (b IPv6) NextHeader() uint8 { return b[ipv6NextHeader] }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[ipv6HopLimit] }

// SetHopLimit sets the hop limit. IPv6 has no header checksum.
func (b IPv6) SetHopLimit(h uint8) { b[ipv6HopLimit] = h }

// DecHopLimit decrements the hop limit and returns the new value. A hop limit of 0 is
// left unchanged.
func (b IPv6) DecHopLimit() uint8 {
	h := b[ipv6HopLimit]
	if h == 0 {
		return 0
	}
	b[ipv6HopLimit] = h - 1
	return h - 1
}

// SourceAddr returns the source address.
func (b IPv6) SourceAddr() netip.Addr {
	return netip.AddrFrom16([16]byte(b[ipv6Src : ipv6Src+16]))
}

// DestinationAddr returns the destination address.
func (b IPv6) DestinationAddr() netip.Addr {
	return netip.AddrFrom16([16]byte(b[ipv6Dst : ipv6Dst+16]))
}

// SetSourceAddr sets the source address (a must be IPv6; an IPv4-mapped form of an IPv4
// address is written for an IPv4 one). Transport checksums are the caller's.
func (b IPv6) SetSourceAddr(a netip.Addr) {
	a16 := a.As16()
	copy(b[ipv6Src:ipv6Src+16], a16[:])
}

// SetDestinationAddr sets the destination address (see SetSourceAddr).
func (b IPv6) SetDestinationAddr(a netip.Addr) {
	a16 := a.As16()
	copy(b[ipv6Dst:ipv6Dst+16], a16[:])
}

// SetSourceAddrWithDelta sets the source address and returns the change of its sum,
// for the checksum of the upper-layer header whose pseudo-header covers it (see
// TCP.UpdateChecksumPseudoHeader; IPv6 itself has no header checksum). a must be IPv6.
func (b IPv6) SetSourceAddrWithDelta(a netip.Addr) SumDelta {
	return b.setAddrWithDelta(b[ipv6Src:ipv6Src+16], a)
}

// SetDestinationAddrWithDelta sets the destination address and returns the change of
// its sum (see SetSourceAddrWithDelta). a must be IPv6.
func (b IPv6) SetDestinationAddrWithDelta(a netip.Addr) SumDelta {
	return b.setAddrWithDelta(b[ipv6Dst:ipv6Dst+16], a)
}

// setAddrWithDelta writes a over the address field f. The sums are read from the
// packet: converting a netip.Addr to bytes costs more than summing 16 bytes.
func (b IPv6) setAddrWithDelta(f []byte, a netip.Addr) SumDelta {
	old := sum128(f)
	a16 := a.As16()
	copy(f, a16[:])
	return sumDelta(old, sum128(f))
}

// SetPayloadLength sets the payload length field.
func (b IPv6) SetPayloadLength(l uint16) { binary.BigEndian.PutUint16(b[ipv6PayloadLen:], l) }

// SetNextHeader sets the next header field.
func (b IPv6) SetNextHeader(p uint8) { b[ipv6NextHeader] = p }

// Payload returns the bytes after the fixed header up to the payload length.
func (b IPv6) Payload() []byte {
	return b[IPv6MinimumSize : IPv6MinimumSize+int(b.PayloadLength())]
}

// IsExtensionHeader reports whether p is one of the extension headers TransportProtocol
// walks over: hop-by-hop, routing, fragment, destination options or AH.
func IsExtensionHeader(p uint8) bool {
	switch p {
	case ProtocolHopByHop, ProtocolRouting, ProtocolFragment, ProtocolDstOpts, ProtocolAH:
		return true
	}
	return false
}

// TransportProtocol walks the extension headers (hop-by-hop, routing, fragment,
// destination options, AH) and returns the upper-layer protocol and the offset of its
// header from the start of b. ESP and "no next header" end the walk like an upper-layer
// protocol. ok is false when a header runs past the payload length, a hop-by-hop header
// is not first, more than IPv6MaxExtensionHeaders headers are chained, or the packet is
// a fragment with a non-zero offset (it holds no upper-layer header; proto and offset
// then describe the fragment's data). Call it on a view that passed IsValid, or on one
// cut short that holds at least the fixed header (a packet quoted in an ICMP error):
// the walk then ends at the end of b.
func (b IPv6) TransportProtocol() (proto uint8, offset int, ok bool) {
	proto, offset, _, ok = b.UpperLayer()
	return proto, offset, ok
}

// UpperLayer walks the extension headers as TransportProtocol does, and also reports
// whether the walk passed a routing header with segments left: the checksum of such a
// packet's upper-layer header covers its final destination, not its Destination
// Address field (RFC 8200, section 8.1).
func (b IPv6) UpperLayer() (proto uint8, offset int, segmentsLeft, ok bool) {
	w := b.walk()
	for IsExtensionHeader(w.proto) {
		at, typ := w.off, w.proto
		if !w.next() {
			return w.proto, w.off, segmentsLeft, false
		}
		switch {
		case typ == ProtocolFragment && binary.BigEndian.Uint16(b[at+2:])&^7 != 0:
			return w.proto, w.off, segmentsLeft, false
		case typ == ProtocolRouting && b[at+3] != 0:
			segmentsLeft = true
		}
	}
	return w.proto, w.off, segmentsLeft, true
}

// ipv6Walk steps through an IPv6 packet's extension headers, one a step: the one walk
// that UpperLayer, Chain and FragmentHeader read the chain with.
type ipv6Walk struct {
	b     IPv6
	end   int   // the end of the payload, or of b when it is cut short
	proto uint8 // the type of the header at off
	off   int
	field int // the offset of the Next Header field that names proto
	n     int // extension headers stepped over
}

func (b IPv6) walk() ipv6Walk {
	return ipv6Walk{b: b, end: min(IPv6MinimumSize+int(b.PayloadLength()), len(b)), proto: b[ipv6NextHeader],
		off: IPv6MinimumSize, field: ipv6NextHeader}
}

// check reports whether the extension header at off may be read: not past the chain's
// limit, hop-by-hop only first, its first 8 bytes within the payload.
func (w *ipv6Walk) check() bool {
	return w.n < IPv6MaxExtensionHeaders && (w.proto != ProtocolHopByHop || w.n == 0) && w.off+8 <= w.end
}

// next steps over the extension header at off. It reports false, leaving the walk where
// it is, when that header fails check or runs past the payload.
func (w *ipv6Walk) next() bool {
	if !w.check() {
		return false
	}
	var l int
	switch w.proto {
	case ProtocolFragment:
		l = 8
	case ProtocolAH:
		l = (int(w.b[w.off+1]) + 2) * 4
	default:
		l = (int(w.b[w.off+1]) + 1) * 8
	}
	if w.off+l > w.end {
		return false
	}
	w.field, w.proto, w.off = w.off, w.b[w.off], w.off+l
	w.n++
	return true
}

// IPv6Fields are the fields EncodeIPv6 writes.
type IPv6Fields struct {
	TrafficClass  uint8
	FlowLabel     uint32 // low 20 bits
	PayloadLength uint16
	NextHeader    uint8
	HopLimit      uint8
	Src, Dst      netip.Addr // IPv6
}

// EncodeIPv6 writes a 40-byte IPv6 header into b, which must hold at least
// IPv6MinimumSize bytes.
func EncodeIPv6(b []byte, f IPv6Fields) {
	_ = b[IPv6MinimumSize-1]
	binary.BigEndian.PutUint32(b[ipv6VersTCFL:], 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&ipv6FlowLabelMsk)
	binary.BigEndian.PutUint16(b[ipv6PayloadLen:], f.PayloadLength)
	b[ipv6NextHeader] = f.NextHeader
	b[ipv6HopLimit] = f.HopLimit
	v := IPv6(b)
	v.SetSourceAddr(f.Src)
	v.SetDestinationAddr(f.Dst)
}
