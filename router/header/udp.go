package header

import (
	"encoding/binary"
	"net/netip"
)

// UDP is a view of a UDP datagram (RFC 768).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Length             |           Checksum            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Data ...
//	+-+-+-+-+-+-+-+-+-+-+-+-
//
// Over IPv4 a checksum of 0 means the sender computed none; the setters here keep it 0,
// and write a computed 0 as 0xffff.
type UDP []byte

const (
	udpSrcPort  = 0
	udpDstPort  = 2
	udpLength   = 4
	udpChecksum = 6

	// UDPMinimumSize is the size of the UDP header.
	UDPMinimumSize = 8
)

// IsValid reports whether b holds a UDP header whose length field is at least 8 and at
// most len(b).
func (b UDP) IsValid() bool {
	if len(b) < UDPMinimumSize {
		return false
	}
	l := int(b.Length())
	return l >= UDPMinimumSize && l <= len(b)
}

// SourcePort returns the source port.
func (b UDP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[udpSrcPort:]) }

// DestinationPort returns the destination port.
func (b UDP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[udpDstPort:]) }

// Length returns the length field (header and data).
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[udpLength:]) }

// Checksum returns the checksum field.
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[udpChecksum:]) }

// Payload returns the data up to the length field.
func (b UDP) Payload() []byte { return b[UDPMinimumSize:b.Length()] }

// SetChecksum sets the checksum field.
func (b UDP) SetChecksum(x uint16) { binary.BigEndian.PutUint16(b[udpChecksum:], x) }

// SetSourcePort sets the source port without touching the checksum.
func (b UDP) SetSourcePort(p uint16) { binary.BigEndian.PutUint16(b[udpSrcPort:], p) }

// SetDestinationPort sets the destination port without touching the checksum.
func (b UDP) SetDestinationPort(p uint16) { binary.BigEndian.PutUint16(b[udpDstPort:], p) }

// SetLength sets the length field without touching the checksum.
func (b UDP) SetLength(l uint16) { binary.BigEndian.PutUint16(b[udpLength:], l) }

// updateChecksum applies an incremental update unless the datagram carries no checksum.
func (b UDP) updateChecksum(x uint16) {
	if b.Checksum() == 0 {
		return
	}
	if x == 0 {
		x = 0xffff
	}
	b.SetChecksum(x)
}

// SetSourcePortWithChecksumUpdate sets the source port and updates the checksum.
func (b UDP) SetSourcePortWithChecksumUpdate(p uint16) {
	b.updateChecksum(ChecksumUpdate(b.Checksum(), b.SourcePort(), p))
	b.SetSourcePort(p)
}

// SetDestinationPortWithChecksumUpdate sets the destination port and updates the
// checksum.
func (b UDP) SetDestinationPortWithChecksumUpdate(p uint16) {
	b.updateChecksum(ChecksumUpdate(b.Checksum(), b.DestinationPort(), p))
	b.SetDestinationPort(p)
}

// UpdateChecksumPseudoHeaderAddress updates the checksum for an address of the
// pseudo-header changing from old to new.
func (b UDP) UpdateChecksumPseudoHeaderAddress(old, new netip.Addr) {
	b.updateChecksum(ChecksumUpdateAddr(b.Checksum(), old, new))
}

// UpdateChecksumPseudoHeader updates the checksum for a change d of the
// pseudo-header's sum, as the IP views' address setters return it.
func (b UDP) UpdateChecksumPseudoHeader(d SumDelta) { b.updateChecksum(d.Checksum(b.Checksum())) }

// UpdatePartialChecksumPseudoHeader updates a CHECKSUM_PARTIAL checksum field (see
// SumDelta.Partial) for a change d of the pseudo-header's sum. The field holds a sum,
// not a checksum: 0 has no special meaning in it.
func (b UDP) UpdatePartialChecksumPseudoHeader(d SumDelta) {
	b.SetChecksum(d.Partial(b.Checksum()))
}

// EncodeUDP writes a UDP header with a zero checksum into b (at least UDPMinimumSize
// bytes); complete it with SetTransportChecksum.
func EncodeUDP(b []byte, src, dst, length uint16) {
	_ = b[UDPMinimumSize-1]
	binary.BigEndian.PutUint16(b[udpSrcPort:], src)
	binary.BigEndian.PutUint16(b[udpDstPort:], dst)
	binary.BigEndian.PutUint16(b[udpLength:], length)
	binary.BigEndian.PutUint16(b[udpChecksum:], 0)
}
