package header

import (
	"encoding/binary"
	"net/netip"
)

// TCP is a view of a TCP segment (RFC 9293).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type TCP []byte

const (
	tcpSrcPort  = 0
	tcpDstPort  = 2
	tcpSeq      = 4
	tcpAck      = 8
	tcpDataOff  = 12
	tcpFlags    = 13
	tcpWindow   = 14
	tcpChecksum = 16
	tcpUrgent   = 18

	// TCPMinimumSize is the size of a TCP header without options.
	TCPMinimumSize = 20
	// TCPMaximumHeaderSize is the size of a TCP header with 40 bytes of options.
	TCPMaximumHeaderSize = 60
)

// TCP flags, as returned by Flags.
const (
	TCPFlagFIN uint8 = 1 << iota
	TCPFlagSYN
	TCPFlagRST
	TCPFlagPSH
	TCPFlagACK
	TCPFlagURG
	TCPFlagECE
	TCPFlagCWR
)

// TCP option kinds.
const (
	TCPOptionEOL       uint8 = 0
	TCPOptionNOP       uint8 = 1
	TCPOptionMSS       uint8 = 2
	TCPOptionWS        uint8 = 3
	TCPOptionSACKPerm  uint8 = 4
	TCPOptionSACK      uint8 = 5
	TCPOptionTimestamp uint8 = 8

	tcpOptionMSSLen = 4
)

// IsValid reports whether b holds a TCP header: at least 20 bytes, and a data offset of
// at least 20 bytes that fits in b.
func (b TCP) IsValid() bool {
	if len(b) < TCPMinimumSize {
		return false
	}
	off := b.DataOffset()
	return off >= TCPMinimumSize && off <= len(b)
}

// SourcePort returns the source port.
func (b TCP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[tcpSrcPort:]) }

// DestinationPort returns the destination port.
func (b TCP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[tcpDstPort:]) }

// Seq returns the sequence number.
func (b TCP) Seq() uint32 { return binary.BigEndian.Uint32(b[tcpSeq:]) }

// Ack returns the acknowledgment number.
func (b TCP) Ack() uint32 { return binary.BigEndian.Uint32(b[tcpAck:]) }

// DataOffset returns the header length in bytes.
func (b TCP) DataOffset() int { return int(b[tcpDataOff]>>4) * 4 }

// Flags returns the flag byte (TCPFlagFIN ... TCPFlagCWR).
func (b TCP) Flags() uint8 { return b[tcpFlags] }

// Window returns the window field.
func (b TCP) Window() uint16 { return binary.BigEndian.Uint16(b[tcpWindow:]) }

// Checksum returns the checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[tcpChecksum:]) }

// UrgentPointer returns the urgent pointer.
func (b TCP) UrgentPointer() uint16 { return binary.BigEndian.Uint16(b[tcpUrgent:]) }

// Options returns the options area.
func (b TCP) Options() []byte { return b[TCPMinimumSize:b.DataOffset()] }

// OptionIter returns an iterator over the options.
func (b TCP) OptionIter() OptionIterator { return OptionIterator{b: b.Options()} }

// Payload returns the bytes after the header.
func (b TCP) Payload() []byte { return b[b.DataOffset():] }

// SetChecksum sets the checksum field.
func (b TCP) SetChecksum(x uint16) { binary.BigEndian.PutUint16(b[tcpChecksum:], x) }

// SetSourcePort sets the source port without touching the checksum.
func (b TCP) SetSourcePort(p uint16) { binary.BigEndian.PutUint16(b[tcpSrcPort:], p) }

// SetDestinationPort sets the destination port without touching the checksum.
func (b TCP) SetDestinationPort(p uint16) { binary.BigEndian.PutUint16(b[tcpDstPort:], p) }

// SetSourcePortWithChecksumUpdate sets the source port and updates the checksum.
func (b TCP) SetSourcePortWithChecksumUpdate(p uint16) {
	b.SetChecksum(ChecksumUpdate(b.Checksum(), b.SourcePort(), p))
	b.SetSourcePort(p)
}

// SetDestinationPortWithChecksumUpdate sets the destination port and updates the
// checksum.
func (b TCP) SetDestinationPortWithChecksumUpdate(p uint16) {
	b.SetChecksum(ChecksumUpdate(b.Checksum(), b.DestinationPort(), p))
	b.SetDestinationPort(p)
}

// UpdateChecksumPseudoHeaderAddress updates the checksum for an address of the
// pseudo-header changing from old to new.
func (b TCP) UpdateChecksumPseudoHeaderAddress(old, new netip.Addr) {
	b.SetChecksum(ChecksumUpdateAddr(b.Checksum(), old, new))
}

// UpdateChecksumPseudoHeader updates the checksum for a change d of the
// pseudo-header's sum, as the IP views' address setters return it (call it beside
// them when rewriting addresses).
func (b TCP) UpdateChecksumPseudoHeader(d SumDelta) { b.SetChecksum(d.Checksum(b.Checksum())) }

// UpdatePartialChecksumPseudoHeader updates a CHECKSUM_PARTIAL checksum field (see
// SumDelta.Partial) for a change d of the pseudo-header's sum. Port changes leave such
// a field alone: set them with SetSourcePort and SetDestinationPort.
func (b TCP) UpdatePartialChecksumPseudoHeader(d SumDelta) {
	b.SetChecksum(d.Partial(b.Checksum()))
}

// mssOption returns the offset in b of the MSS option's value, or -1.
func (b TCP) mssOption() int {
	opts := b.Options()
	for i := 0; i < len(opts); {
		switch opts[i] {
		case TCPOptionEOL:
			return -1
		case TCPOptionNOP:
			i++
			continue
		}
		if i+1 >= len(opts) {
			return -1
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return -1
		}
		if opts[i] == TCPOptionMSS && l == tcpOptionMSSLen {
			return TCPMinimumSize + i + 2
		}
		i += l
	}
	return -1
}

// MSS returns the value of the maximum segment size option, if the header carries a
// well-formed one before any malformed option.
func (b TCP) MSS() (uint16, bool) {
	off := b.mssOption()
	if off < 0 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[off:]), true
}

// SetMSSWithChecksumUpdate rewrites the value of the MSS option and updates the
// checksum. It reports false, changing nothing, when there is no MSS option. The option
// may start at an odd offset.
func (b TCP) SetMSSWithChecksumUpdate(mss uint16) bool {
	off := b.mssOption()
	if off < 0 {
		return false
	}
	var v [2]byte
	binary.BigEndian.PutUint16(v[:], mss)
	b.SetChecksum(rewriteWithChecksumUpdate(b.Checksum(), b, off, v[:]))
	return true
}

// ClampMSSWithChecksumUpdate lowers the MSS option to max when it is larger (MSS
// clamping on SYNs) and reports whether it changed the segment.
func (b TCP) ClampMSSWithChecksumUpdate(max uint16) bool {
	mss, ok := b.MSS()
	if !ok || mss <= max {
		return false
	}
	return b.SetMSSWithChecksumUpdate(max)
}

// TCPFields are the fields EncodeTCP writes.
type TCPFields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	DataOffset       uint8 // header length in bytes, a multiple of 4 from 20 to 60; 0 means 20
	Flags            uint8
	Window           uint16
	Checksum         uint16
	UrgentPointer    uint16
}

// EncodeTCP writes the 20 fixed bytes of a TCP header into b (at least TCPMinimumSize
// bytes); options, if DataOffset announces any, are the caller's.
func EncodeTCP(b []byte, f TCPFields) {
	_ = b[TCPMinimumSize-1]
	off := f.DataOffset
	if off == 0 {
		off = TCPMinimumSize
	}
	binary.BigEndian.PutUint16(b[tcpSrcPort:], f.SrcPort)
	binary.BigEndian.PutUint16(b[tcpDstPort:], f.DstPort)
	binary.BigEndian.PutUint32(b[tcpSeq:], f.Seq)
	binary.BigEndian.PutUint32(b[tcpAck:], f.Ack)
	b[tcpDataOff] = (off / 4) << 4
	b[tcpFlags] = f.Flags
	binary.BigEndian.PutUint16(b[tcpWindow:], f.Window)
	binary.BigEndian.PutUint16(b[tcpChecksum:], f.Checksum)
	binary.BigEndian.PutUint16(b[tcpUrgent:], f.UrgentPointer)
}
