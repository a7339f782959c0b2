package header

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Checksum returns the 16-bit ones'-complement sum of b added to initial, not
// complemented. An odd trailing byte is summed as if followed by a zero byte, so
// Checksum(b2, Checksum(b1, 0)) equals Checksum(b1+b2, 0) when len(b1) is even.
//
// The result is 0 only when b is all zero and initial is 0. The sum is computed eight
// bytes at a time with end-around carry, on words loaded little-endian: the
// ones'-complement sum commutes with swapping the bytes of every word (RFC 1071,
// section 2(B)), so the byte-swapped sum of the little-endian words is the sum of the
// big-endian ones, and most CPUs load little-endian words without a swap.
func Checksum(b []byte, initial uint16) uint16 {
	acc := uint64(bits.ReverseBytes16(initial))
	var c uint64
	for len(b) >= 64 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:40]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:48]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:56]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:64]), c)
		b = b[64:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b[0:4])), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b[0:2])), c)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0]), c) // the high byte of a big-endian word
	}
	acc, c = bits.Add64(acc, 0, c)
	acc += c // acc was at most 2^64-1 before adding c, and c=1 implies acc is 0 now.
	return bits.ReverseBytes16(fold64(acc))
}

// fold64 reduces a 64-bit ones'-complement accumulator to 16 bits.
func fold64(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// ChecksumCombine returns the ones'-complement sum of two partial checksums.
func ChecksumCombine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// PseudoHeaderChecksum returns the uncomplemented sum of the IPv4 or IPv6 pseudo-header
// (RFC 768, RFC 793, RFC 8200 section 8.1) for a transport segment of the given length.
// src and dst must be of the same family.
func PseudoHeaderChecksum(proto uint8, src, dst netip.Addr, length uint16) uint16 {
	xsum := addrChecksum(src, 0)
	xsum = addrChecksum(dst, xsum)
	return ChecksumCombine(ChecksumCombine(xsum, uint16(proto)), length)
}

// addrChecksum adds the bytes of an address to initial without allocating. It sums
// the address's words in registers: NAT calls it for every address it rewrites.
func addrChecksum(a netip.Addr, initial uint16) uint16 {
	var s uint64
	if a.Is4() {
		b := a.As4()
		s = uint64(binary.BigEndian.Uint32(b[:]))
	} else {
		b := a.As16()
		var c uint64
		s, c = bits.Add64(binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), 0)
		s += c // s was at most 2^64-2 after a carry: no second carry
	}
	return ChecksumCombine(initial, fold64(s))
}

// ChecksumUpdate returns the checksum field value xsum updated for one 16-bit word of
// the covered data changing from old to new (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
func ChecksumUpdate(xsum, old, new uint16) uint16 {
	return ^ChecksumCombine(ChecksumCombine(^xsum, ^old), new)
}

// ChecksumUpdateAddr returns the checksum field value xsum updated for an address in the
// covered data (an IP header or a transport pseudo-header) changing from old to new.
// old and new must be of the same family.
func ChecksumUpdateAddr(xsum uint16, old, new netip.Addr) uint16 {
	return ^ChecksumCombine(ChecksumCombine(^xsum, ^addrChecksum(old, 0)), addrChecksum(new, 0))
}

// A SumDelta is the change of a ones'-complement sum when bytes it covers are
// rewritten: sum(new) - sum(old), in ones' complement. The address setters of the IP
// views return the change of the address's sum, for the transport checksum whose
// pseudo-header covers the address (see TCP.UpdateChecksumPseudoHeader).
type SumDelta uint16

// sumDelta returns the change of a sum from old to new.
func sumDelta(old, new uint16) SumDelta { return SumDelta(ChecksumCombine(^old, new)) }

// sum32 returns the ones'-complement sum of a 32-bit word.
func sum32(w uint32) uint16 { return ChecksumCombine(uint16(w>>16), uint16(w)) }

// sum128 returns the ones'-complement sum of the 16 bytes of f, an IPv6 address, as
// Checksum does.
func sum128(f []byte) uint16 {
	s, c := bits.Add64(binary.LittleEndian.Uint64(f[0:8]), binary.LittleEndian.Uint64(f[8:16]), 0)
	return bits.ReverseBytes16(fold64(s + c)) // s was at most 2^64-2 after a carry
}

// Add returns the change of d followed by e, to update a checksum once for both.
func (d SumDelta) Add(e SumDelta) SumDelta { return SumDelta(ChecksumCombine(uint16(d), uint16(e))) }

// Checksum returns the checksum field value xsum updated for the change (RFC 1624,
// eqn. 3: HC' = ~(~HC + ~m + m')).
func (d SumDelta) Checksum(xsum uint16) uint16 { return ^ChecksumCombine(^xsum, uint16(d)) }

// Partial returns the value sum of a CHECKSUM_PARTIAL checksum field updated for the
// change. Such a field holds the uncomplemented sum of the pseudo-header only, which the
// NIC completes with the segment's sum later: it follows the change as a plain sum
// (P' = P + ~m + m').
func (d SumDelta) Partial(sum uint16) uint16 { return ChecksumCombine(sum, uint16(d)) }

// ChecksumUpdate32 returns the checksum field value xsum updated for an aligned 32-bit
// word of the covered data changing from old to new.
func ChecksumUpdate32(xsum uint16, old, new uint32) uint16 {
	xsum = ChecksumUpdate(xsum, uint16(old>>16), uint16(new>>16))
	return ChecksumUpdate(xsum, uint16(old), uint16(new))
}

// rewriteWithChecksumUpdate copies nb into seg[off:] and returns the checksum field value
// xsum updated for the change. seg must start at a 16-bit aligned position of the
// checksummed data; off may be odd. The bytes from off to off+len(nb) must lie in seg.
func rewriteWithChecksumUpdate(xsum uint16, seg []byte, off int, nb []byte) uint16 {
	start := off &^ 1
	end := (off + len(nb) + 1) &^ 1
	if end > len(seg) {
		end = len(seg) // odd-length segment: Checksum pads the last byte
	}
	oldSum := Checksum(seg[start:end], 0)
	copy(seg[off:], nb)
	newSum := Checksum(seg[start:end], 0)
	return ^ChecksumCombine(ChecksumCombine(^xsum, ^oldSum), newSum)
}

// TransportChecksum computes the full checksum field value of a TCP, UDP, ICMPv4 or
// ICMPv6 segment carried between src and dst, ignoring the value currently in the
// segment's checksum field. ICMPv4 has no pseudo-header. A UDP result of zero is
// returned as 0xffff (RFC 768). ok is false for another protocol, a segment too short to
// hold the checksum field, or a segment longer than 65535 bytes.
func TransportChecksum(proto uint8, src, dst netip.Addr, seg []byte) (xsum uint16, ok bool) {
	var off int
	switch proto {
	case ProtocolTCP:
		off = tcpChecksum
	case ProtocolUDP:
		off = udpChecksum
	case ProtocolICMPv4, ProtocolICMPv6:
		off = icmpChecksum
	default:
		return 0, false
	}
	if len(seg) < off+2 || len(seg) > 0xffff {
		return 0, false
	}
	var sum uint16
	if proto != ProtocolICMPv4 {
		sum = PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
	}
	sum = Checksum(seg[:off], sum)
	sum = Checksum(seg[off+2:], sum)
	xsum = ^sum
	if proto == ProtocolUDP && xsum == 0 {
		xsum = 0xffff
	}
	return xsum, true
}

// SetTransportChecksum computes the checksum of seg (see TransportChecksum) and stores it
// in the segment's checksum field. It reports false, leaving seg unchanged, when
// TransportChecksum does.
func SetTransportChecksum(proto uint8, src, dst netip.Addr, seg []byte) bool {
	xsum, ok := TransportChecksum(proto, src, dst, seg)
	if !ok {
		return false
	}
	off := icmpChecksum
	switch proto {
	case ProtocolTCP:
		off = tcpChecksum
	case ProtocolUDP:
		off = udpChecksum
	}
	binary.BigEndian.PutUint16(seg[off:], xsum)
	return true
}

// IsTransportChecksumValid reports whether seg carries a correct checksum (see
// TransportChecksum). A UDP-over-IPv4 segment with checksum 0 (none) is valid.
func IsTransportChecksumValid(proto uint8, src, dst netip.Addr, seg []byte) bool {
	xsum, ok := TransportChecksum(proto, src, dst, seg)
	if !ok {
		return false
	}
	var have uint16
	switch proto {
	case ProtocolTCP:
		have = binary.BigEndian.Uint16(seg[tcpChecksum:])
	case ProtocolUDP:
		have = binary.BigEndian.Uint16(seg[udpChecksum:])
		// Zero means "no checksum" over IPv4 and is invalid over IPv6; a computed zero
		// is sent as 0xffff.
		return have == xsum || (have == 0 && src.Is4())
	default:
		have = binary.BigEndian.Uint16(seg[icmpChecksum:])
	}
	// 0x0000 and 0xffff are the two representations of zero in ones' complement.
	return have == xsum || (have == 0 && xsum == 0xffff) || (have == 0xffff && xsum == 0)
}
