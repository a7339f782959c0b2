package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 options that a router checks and processes (RFC 791 section 3.1, RFC 1812
// sections 4.2.2.1 and 5.3.13). Record Route, Loose and Strict Source Route share a
// layout; the pointer counts from the option's type octet, starting at 1:
//
//	+--------+--------+--------+---------//--------+
//	|  type  | length | pointer|     route data    |
//	+--------+--------+--------+---------//--------+
//
// The Timestamp option adds an overflow count and flags in its fourth octet:
//
//	+--------+--------+--------+--------+
//	|01000100| length | pointer|oflw|flg|
//	+--------+--------+--------+--------+
//	|         internet address          |  (flags 1 and 3)
//	+--------+--------+--------+--------+
//	|             timestamp             |
//	+--------+--------+--------+--------+
//	|                 .                 |
const (
	optLen     = 1
	optPointer = 2
	optTSFlags = 3

	// Timestamp flags (RFC 791 section 3.1).
	IPv4TimestampOnly         uint8 = 0 // timestamps only
	IPv4TimestampAndAddr      uint8 = 1 // each timestamp preceded by the address of its module
	IPv4TimestampPrespecified uint8 = 3 // addresses prespecified: only those modules stamp

	ipv4TSOverflowMax = 15
)

// IPv4OptionSet says where CheckOptions found the options a router acts on: each an
// offset from the start of the IP header, 0 when the option is absent.
type IPv4OptionSet struct {
	RecordRoute int
	Timestamp   int
	SourceRoute int // loose or strict source route (the type octet tells which)
}

// CheckOptions validates the options of a header that passed IsValid, as a router
// must before it forwards or delivers the packet (RFC 1812 sections 4.2.2.1 and
// 5.2.2, RFC 791 section 3.1): every option's length fits the header and covers its
// type and length octets; Record Route, the source routes and Timestamp have a pointer
// at least at their first data slot, and, while their data area is not full, room for
// a whole slot there; Timestamp has a known flag and, when full, an overflow count that
// can still grow; Router Alert is 4 octets long (RFC 2113); a source route or a Record
// Route appears once. It returns where the options are and bad, the offset from the
// start of the header of the offending octet (the length octet of a length that does
// not fit, the pointer, the flags), which is what an ICMP Parameter Problem points at
// (RFC 1812 section 4.3.3.5); bad is 0 when the options are valid. Options it does not
// know are left alone (RFC 1812 section 5.3.13.1).
func (b IPv4) CheckOptions() (set IPv4OptionSet, bad int) {
	hl := b.HeaderLength()
	for i := IPv4MinimumSize; i < hl; {
		t := b[i]
		switch t {
		case IPv4OptionEOL:
			return set, 0
		case IPv4OptionNOP:
			i++
			continue
		}
		if i+optLen >= hl {
			return set, i // no room for the length octet
		}
		l := int(b[i+optLen])
		if l < ipv4OptionMinimumSize || i+l > hl {
			return set, i + optLen
		}
		switch t {
		case IPv4OptionRecordRoute, IPv4OptionLSRR, IPv4OptionSSRR:
			if l < 3 {
				return set, i + optLen
			}
			if p := int(b[i+optPointer]); p < 4 || (p <= l && p+3 > l) {
				return set, i + optPointer
			}
			if t == IPv4OptionRecordRoute {
				if set.RecordRoute != 0 {
					return set, i
				}
				set.RecordRoute = i
			} else {
				// RFC 1122 section 3.2.1.8: more than one source route is not sent.
				if set.SourceRoute != 0 {
					return set, i
				}
				set.SourceRoute = i
			}
		case IPv4OptionTimestamp:
			if l < 4 {
				return set, i + optLen
			}
			p, fl := int(b[i+optPointer]), b[i+optTSFlags]
			slot := 8
			switch fl & 0xf {
			case IPv4TimestampOnly:
				slot = 4
			case IPv4TimestampAndAddr, IPv4TimestampPrespecified:
			default:
				return set, i + optTSFlags
			}
			if p < 5 || (p <= l && p+slot-1 > l) {
				return set, i + optPointer
			}
			// RFC 791: an overflow count that overflows makes the datagram in error.
			if p > l && fl&0xf != IPv4TimestampPrespecified && fl>>4 == ipv4TSOverflowMax {
				return set, i + optTSFlags
			}
			if set.Timestamp != 0 {
				return set, i
			}
			set.Timestamp = i
		case IPv4OptionRouterAlert:
			if l != 4 {
				return set, i + optLen
			}
		}
		i += l
	}
	return set, 0
}

// RecordRouteWithChecksumUpdate records a in the Record Route option at off (from
// CheckOptions) when its data area has room for it, advances the pointer, and updates
// the header checksum (RFC 791 section 3.1). It reports whether it recorded a. a must
// be IPv4.
func (b IPv4) RecordRouteWithChecksumUpdate(off int, a netip.Addr) bool {
	o := b[off:]
	p := int(o[optPointer])
	if p > int(o[optLen]) {
		return false // full: forwarded as it is
	}
	a4 := a.As4()
	copy(o[p-1:p+3], a4[:])
	o[optPointer] = byte(p + 4)
	b.SetChecksum(b.CalculateChecksum())
	return true
}

// TimestampPrespecified returns the address of the next slot of the Timestamp option at
// off when its flag is 3 (prespecified addresses) and its data area is not full.
func (b IPv4) TimestampPrespecified(off int) (netip.Addr, bool) {
	o := b[off:]
	p := int(o[optPointer])
	if o[optTSFlags]&0xf != IPv4TimestampPrespecified || p > int(o[optLen]) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(o[p-1 : p+3])), true
}

// TimestampWithChecksumUpdate processes the Timestamp option at off (from CheckOptions)
// as the module of address a at time ts (milliseconds since midnight UT, RFC 791
// section 3.1), and updates the header checksum: flag 0 records ts, flag 1 a and ts,
// flag 3 ts when the next prespecified address is a; each advances the pointer. When
// the data area is full, flags 0 and 1 count the module in the overflow count instead
// (CheckOptions refused a count that cannot grow). It reports whether it changed the
// option.
func (b IPv4) TimestampWithChecksumUpdate(off int, a netip.Addr, ts uint32) bool {
	o := b[off:]
	p, l, fl := int(o[optPointer]), int(o[optLen]), o[optTSFlags]
	a4 := a.As4()
	switch {
	case p > l:
		if fl&0xf == IPv4TimestampPrespecified || fl>>4 == ipv4TSOverflowMax {
			return false
		}
		o[optTSFlags] = fl + 0x10
	case fl&0xf == IPv4TimestampOnly:
		binary.BigEndian.PutUint32(o[p-1:], ts)
		o[optPointer] = byte(p + 4)
	case fl&0xf == IPv4TimestampAndAddr:
		copy(o[p-1:p+3], a4[:])
		binary.BigEndian.PutUint32(o[p+3:], ts)
		o[optPointer] = byte(p + 8)
	default: // prespecified
		if [4]byte(o[p-1:p+3]) != a4 {
			return false
		}
		binary.BigEndian.PutUint32(o[p+3:], ts)
		o[optPointer] = byte(p + 8)
	}
	b.SetChecksum(b.CalculateChecksum())
	return true
}
