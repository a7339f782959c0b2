package header

import "encoding/binary"

// ICMPv4 is a view of an ICMP message for IPv4 (RFC 792), the IPv4 payload of protocol 1.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Identifier (echo) / unused   | Sequence (echo) / Next-hop MTU|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Data (echo) / Internet Header + leading data (errors) ... |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ICMPv4 []byte

const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpIdent    = 4
	icmpSequence = 6
	icmpRest     = 4
	icmpv4MTU    = 6

	// ICMPv4MinimumSize is the size of the ICMPv4 header.
	ICMPv4MinimumSize = 8
	// ICMPv4MaxErrorSize is the largest ICMPv4 error (IP header included) that
	// BuildICMPv4Error writes: the IPv4 minimum MTU (RFC 1812 section 4.3.2.3).
	ICMPv4MaxErrorSize = IPv4MinimumMTU
)

// ICMPv4 types.
const (
	ICMPv4EchoReply      uint8 = 0
	ICMPv4DstUnreachable uint8 = 3
	ICMPv4Redirect       uint8 = 5
	ICMPv4Echo           uint8 = 8
	ICMPv4TimeExceeded   uint8 = 11
	ICMPv4ParamProblem   uint8 = 12
)

// ICMPv4 destination unreachable codes.
const (
	ICMPv4NetUnreachable      uint8 = 0
	ICMPv4HostUnreachable     uint8 = 1
	ICMPv4ProtoUnreachable    uint8 = 2
	ICMPv4PortUnreachable     uint8 = 3
	ICMPv4FragmentationNeeded uint8 = 4
	ICMPv4AdminProhibited     uint8 = 13
)

// ICMPv4 time exceeded codes.
const (
	ICMPv4TTLExceeded       uint8 = 0
	ICMPv4ReassemblyTimeout uint8 = 1
)

// IsValid reports whether b holds at least the 8-byte ICMPv4 header.
func (b ICMPv4) IsValid() bool { return len(b) >= ICMPv4MinimumSize }

// Type returns the message type.
func (b ICMPv4) Type() uint8 { return b[icmpType] }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[icmpCode] }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// SetType sets the type without touching the checksum.
func (b ICMPv4) SetType(t uint8) { b[icmpType] = t }

// SetCode sets the code without touching the checksum.
func (b ICMPv4) SetCode(c uint8) { b[icmpCode] = c }

// SetChecksum sets the checksum field.
func (b ICMPv4) SetChecksum(x uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], x) }

// SetTypeCodeWithChecksumUpdate sets type and code and updates the checksum.
func (b ICMPv4) SetTypeCodeWithChecksumUpdate(t, c uint8) {
	old := binary.BigEndian.Uint16(b[icmpType:])
	b[icmpType], b[icmpCode] = t, c
	b.SetChecksum(ChecksumUpdate(b.Checksum(), old, uint16(t)<<8|uint16(c)))
}

// Ident returns the identifier of an echo or echo reply.
func (b ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(b[icmpIdent:]) }

// Sequence returns the sequence number of an echo or echo reply.
func (b ICMPv4) Sequence() uint16 { return binary.BigEndian.Uint16(b[icmpSequence:]) }

// SetIdent sets the echo identifier without touching the checksum.
func (b ICMPv4) SetIdent(id uint16) { binary.BigEndian.PutUint16(b[icmpIdent:], id) }

// SetIdentWithChecksumUpdate sets the echo identifier and updates the checksum (used
// by NAT of echo flows).
func (b ICMPv4) SetIdentWithChecksumUpdate(id uint16) {
	b.SetChecksum(ChecksumUpdate(b.Checksum(), b.Ident(), id))
	b.SetIdent(id)
}

// MTU returns the next-hop MTU of a fragmentation-needed message (RFC 1191).
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[icmpv4MTU:]) }

// Rest returns the second 32-bit word of the header (identifier and sequence, next-hop
// MTU, pointer, gateway, depending on the type).
func (b ICMPv4) Rest() uint32 { return binary.BigEndian.Uint32(b[icmpRest:]) }

// Payload returns the bytes after the 8-byte header: echo data or, in an error, the
// quoted packet.
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinimumSize:] }

// IsError reports whether the type is an error message (it quotes a packet).
func (b ICMPv4) IsError() bool {
	switch b.Type() {
	case ICMPv4DstUnreachable, ICMPv4Redirect, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// CalculateChecksum returns the checksum of the message with the checksum field taken
// as zero.
func (b ICMPv4) CalculateChecksum() uint16 {
	return ^Checksum(b[icmpChecksum+2:], Checksum(b[:icmpChecksum], 0))
}
