package header

import (
	"encoding/binary"
	"net/netip"
)

// ICMPv6 is a view of an ICMPv6 message (RFC 4443), the upper-layer payload of
// protocol 58. Its checksum covers the IPv6 pseudo-header.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Identifier (echo)            |  Sequence (echo)              |
//	|  / MTU (packet too big) / pointer (parameter problem)         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Data / invoking packet (errors) / NDP body ...            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ICMPv6 []byte

const (
	// ICMPv6MinimumSize is the size of the ICMPv6 header with its second word.
	ICMPv6MinimumSize = 8
	// ICMPv6MaxErrorSize is the largest ICMPv6 error (IPv6 header included) that
	// BuildICMPv6Error writes (RFC 4443 section 2.4 (c)).
	ICMPv6MaxErrorSize = IPv6MinimumMTU
)

// ICMPv6 types.
const (
	ICMPv6DstUnreachable  uint8 = 1
	ICMPv6PacketTooBig    uint8 = 2
	ICMPv6TimeExceeded    uint8 = 3
	ICMPv6ParamProblem    uint8 = 4
	ICMPv6EchoRequest     uint8 = 128
	ICMPv6EchoReply       uint8 = 129
	ICMPv6RouterSolicit   uint8 = 133
	ICMPv6RouterAdvert    uint8 = 134
	ICMPv6NeighborSolicit uint8 = 135
	ICMPv6NeighborAdvert  uint8 = 136
	ICMPv6Redirect        uint8 = 137
)

// ICMPv6 destination unreachable codes.
const (
	ICMPv6NoRoute            uint8 = 0
	ICMPv6AdminProhibited    uint8 = 1
	ICMPv6BeyondScope        uint8 = 2
	ICMPv6AddressUnreachable uint8 = 3
	ICMPv6PortUnreachable    uint8 = 4
)

// ICMPv6 time exceeded codes.
const (
	ICMPv6HopLimitExceeded  uint8 = 0
	ICMPv6ReassemblyTimeout uint8 = 1
)

// IsValid reports whether b holds at least the 8-byte ICMPv6 header.
func (b ICMPv6) IsValid() bool { return len(b) >= ICMPv6MinimumSize }

// Type returns the message type.
func (b ICMPv6) Type() uint8 { return b[icmpType] }

// Code returns the message code.
func (b ICMPv6) Code() uint8 { return b[icmpCode] }

// Checksum returns the checksum field.
func (b ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// SetType sets the type without touching the checksum.
func (b ICMPv6) SetType(t uint8) { b[icmpType] = t }

// SetCode sets the code without touching the checksum.
func (b ICMPv6) SetCode(c uint8) { b[icmpCode] = c }

// SetChecksum sets the checksum field.
func (b ICMPv6) SetChecksum(x uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], x) }

// SetTypeCodeWithChecksumUpdate sets type and code and updates the checksum.
func (b ICMPv6) SetTypeCodeWithChecksumUpdate(t, c uint8) {
	old := binary.BigEndian.Uint16(b[icmpType:])
	b[icmpType], b[icmpCode] = t, c
	b.SetChecksum(ChecksumUpdate(b.Checksum(), old, uint16(t)<<8|uint16(c)))
}

// Ident returns the identifier of an echo request or reply.
func (b ICMPv6) Ident() uint16 { return binary.BigEndian.Uint16(b[icmpIdent:]) }

// Sequence returns the sequence number of an echo request or reply.
func (b ICMPv6) Sequence() uint16 { return binary.BigEndian.Uint16(b[icmpSequence:]) }

// SetIdent sets the echo identifier without touching the checksum.
func (b ICMPv6) SetIdent(id uint16) { binary.BigEndian.PutUint16(b[icmpIdent:], id) }

// SetIdentWithChecksumUpdate sets the echo identifier and updates the checksum.
func (b ICMPv6) SetIdentWithChecksumUpdate(id uint16) {
	b.SetChecksum(ChecksumUpdate(b.Checksum(), b.Ident(), id))
	b.SetIdent(id)
}

// UpdateChecksumPseudoHeader updates the checksum for a change d of the
// pseudo-header's sum, as the IPv6 view's address setters return it.
func (b ICMPv6) UpdateChecksumPseudoHeader(d SumDelta) { b.SetChecksum(d.Checksum(b.Checksum())) }

// UpdatePartialChecksumPseudoHeader updates a CHECKSUM_PARTIAL checksum field (see
// SumDelta.Partial) for a change d of the pseudo-header's sum.
func (b ICMPv6) UpdatePartialChecksumPseudoHeader(d SumDelta) {
	b.SetChecksum(d.Partial(b.Checksum()))
}

// MTU returns the MTU of a packet-too-big message.
func (b ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(b[icmpRest:]) }

// Rest returns the second 32-bit word of the header.
func (b ICMPv6) Rest() uint32 { return binary.BigEndian.Uint32(b[icmpRest:]) }

// Payload returns the bytes after the 8-byte header.
func (b ICMPv6) Payload() []byte { return b[ICMPv6MinimumSize:] }

// IsError reports whether the type is an error message (types below 128).
func (b ICMPv6) IsError() bool { return b.Type() < 128 }

// CalculateChecksum returns the checksum of the message carried from src to dst, with
// the checksum field taken as zero.
func (b ICMPv6) CalculateChecksum(src, dst netip.Addr) uint16 {
	xsum, _ := TransportChecksum(ProtocolICMPv6, src, dst, b)
	return xsum
}
