package header

import "encoding/binary"

// IPv6Fragment is a view of the IPv6 fragment header (RFC 8200, section 4.5).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv6Fragment []byte

// IPv6FragmentSize is the size of the fragment header.
const IPv6FragmentSize = 8

// IsValid reports whether b holds a whole fragment header.
func (b IPv6Fragment) IsValid() bool { return len(b) >= IPv6FragmentSize }

// NextHeader returns the type of the header after the fragment header (of the first
// fragment's fragmentable part).
func (b IPv6Fragment) NextHeader() uint8 { return b[0] }

// Offset returns the fragment offset in bytes.
func (b IPv6Fragment) Offset() int { return int(binary.BigEndian.Uint16(b[2:]) &^ 7) }

// More reports whether the M (more fragments) flag is set.
func (b IPv6Fragment) More() bool { return b[3]&1 != 0 }

// ID returns the identification field.
func (b IPv6Fragment) ID() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// IsAtomic reports whether the header is an atomic fragment (offset 0, M clear), which
// is processed as a whole packet (RFC 6946, section 4).
func (b IPv6Fragment) IsAtomic() bool { return binary.BigEndian.Uint16(b[2:])&^6 == 0 }

// EncodeIPv6Fragment writes a fragment header into b (at least IPv6FragmentSize bytes).
// offset is in bytes and must be a multiple of 8.
func EncodeIPv6Fragment(b []byte, next uint8, offset int, more bool, id uint32) {
	_ = b[IPv6FragmentSize-1]
	b[0], b[1] = next, 0
	v := uint16(offset) &^ 7
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], id)
}

// FragmentHeader walks the extension headers in front of a fragment header and returns
// the fragment header's offset from the start of b, and the offset of the Next Header
// field that names it (6, that of the fixed header, or the first byte of the extension
// header before it). ok is false when the packet has no fragment header, or the chain in
// front of it is broken (see UpperLayer); call it on a view that passed IsValid.
func (b IPv6) FragmentHeader() (at, prev int, ok bool) {
	w := b.walk()
	for IsExtensionHeader(w.proto) && w.check() {
		if w.proto == ProtocolFragment {
			return w.off, w.field, true
		}
		if !w.next() {
			break
		}
	}
	return 0, 0, false
}
