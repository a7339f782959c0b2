package header

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The NDP views (RFC 4861) cover the whole ICMPv6 message, starting at its type byte,
// so that ICMPv6 and NDP offsets agree.

// NDPNeighborSolicit is a view of a neighbor solicitation (type 135).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           Reserved                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Target Address (16)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Options ...
//	+-+-+-+-+-+-+-+-+-+-+-+-
type NDPNeighborSolicit []byte

const (
	ndpTarget      = 8
	ndpNSOptions   = 24
	ndpNAFlags     = 4
	ndpNAOptions   = 24
	ndpRSOptions   = 8
	ndpRAHopLimit  = 4
	ndpRAFlags     = 5
	ndpRALifetime  = 6
	ndpRAReachable = 8
	ndpRARetrans   = 12
	ndpRAOptions   = 16

	// NDPNeighborSolicitMinimumSize is the size of an NS without options.
	NDPNeighborSolicitMinimumSize = 24
	// NDPNeighborAdvertMinimumSize is the size of an NA without options.
	NDPNeighborAdvertMinimumSize = 24
	// NDPRouterSolicitMinimumSize is the size of an RS without options.
	NDPRouterSolicitMinimumSize = 8
	// NDPRouterAdvertMinimumSize is the size of an RA without options.
	NDPRouterAdvertMinimumSize = 16
	// NDPHopLimit is the hop limit every NDP message is sent and must be received with.
	NDPHopLimit = 255
)

// IsValid reports whether b is long enough for an NS.
func (b NDPNeighborSolicit) IsValid() bool { return len(b) >= NDPNeighborSolicitMinimumSize }

// TargetAddress returns the target address.
func (b NDPNeighborSolicit) TargetAddress() netip.Addr {
	return netip.AddrFrom16([16]byte(b[ndpTarget : ndpTarget+16]))
}

// Options returns the options area.
func (b NDPNeighborSolicit) Options() NDPOptions { return NDPOptions(b[ndpNSOptions:]) }

// NDPNeighborAdvert is a view of a neighbor advertisement (type 136).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|S|O|                     Reserved                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Target Address (16)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Options ...
//	+-+-+-+-+-+-+-+-+-+-+-+-
type NDPNeighborAdvert []byte

// Neighbor advertisement flags, in the byte at offset 4.
const (
	NDPNARouterFlag    uint8 = 0x80
	NDPNASolicitedFlag uint8 = 0x40
	NDPNAOverrideFlag  uint8 = 0x20
)

// IsValid reports whether b is long enough for an NA.
func (b NDPNeighborAdvert) IsValid() bool { return len(b) >= NDPNeighborAdvertMinimumSize }

// Flags returns the R, S and O flags (NDPNARouterFlag and so on).
func (b NDPNeighborAdvert) Flags() uint8 { return b[ndpNAFlags] & 0xe0 }

// RouterFlag reports whether R is set.
func (b NDPNeighborAdvert) RouterFlag() bool { return b[ndpNAFlags]&NDPNARouterFlag != 0 }

// SolicitedFlag reports whether S is set.
func (b NDPNeighborAdvert) SolicitedFlag() bool { return b[ndpNAFlags]&NDPNASolicitedFlag != 0 }

// OverrideFlag reports whether O is set.
func (b NDPNeighborAdvert) OverrideFlag() bool { return b[ndpNAFlags]&NDPNAOverrideFlag != 0 }

func (b NDPNeighborAdvert) setFlag(f uint8, on bool) {
	if on {
		b[ndpNAFlags] |= f
	} else {
		b[ndpNAFlags] &^= f
	}
}

// SetRouterFlag sets or clears R without touching the checksum.
func (b NDPNeighborAdvert) SetRouterFlag(on bool) { b.setFlag(NDPNARouterFlag, on) }

// SetSolicitedFlag sets or clears S without touching the checksum.
func (b NDPNeighborAdvert) SetSolicitedFlag(on bool) { b.setFlag(NDPNASolicitedFlag, on) }

// SetOverrideFlag sets or clears O without touching the checksum.
func (b NDPNeighborAdvert) SetOverrideFlag(on bool) { b.setFlag(NDPNAOverrideFlag, on) }

// TargetAddress returns the target address.
func (b NDPNeighborAdvert) TargetAddress() netip.Addr {
	return netip.AddrFrom16([16]byte(b[ndpTarget : ndpTarget+16]))
}

// SetTargetAddress sets the target address without touching the checksum.
func (b NDPNeighborAdvert) SetTargetAddress(a netip.Addr) {
	a16 := a.As16()
	copy(b[ndpTarget:ndpTarget+16], a16[:])
}

// Options returns the options area.
func (b NDPNeighborAdvert) Options() NDPOptions { return NDPOptions(b[ndpNAOptions:]) }

// NDPRouterSolicit is a view of a router solicitation (type 133): the 8-byte ICMPv6
// header (type, code, checksum, reserved) followed by options.
type NDPRouterSolicit []byte

// IsValid reports whether b is long enough for an RS.
func (b NDPRouterSolicit) IsValid() bool { return len(b) >= NDPRouterSolicitMinimumSize }

// Options returns the options area.
func (b NDPRouterSolicit) Options() NDPOptions { return NDPOptions(b[ndpRSOptions:]) }

// NDPRouterAdvert is a view of a router advertisement (type 134).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Cur Hop Limit |M|O|  Reserved |       Router Lifetime         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Reachable Time                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          Retrans Timer                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Options ...
//	+-+-+-+-+-+-+-+-+-+-+-+-
type NDPRouterAdvert []byte

// Router advertisement flags, in the byte at offset 5.
const (
	NDPRAManagedFlag uint8 = 0x80
	NDPRAOtherFlag   uint8 = 0x40
)

// IsValid reports whether b is long enough for an RA.
func (b NDPRouterAdvert) IsValid() bool { return len(b) >= NDPRouterAdvertMinimumSize }

// CurHopLimit returns the advertised hop limit (0: unspecified).
func (b NDPRouterAdvert) CurHopLimit() uint8 { return b[ndpRAHopLimit] }

// Flags returns the flag byte (NDPRAManagedFlag, NDPRAOtherFlag, ...).
func (b NDPRouterAdvert) Flags() uint8 { return b[ndpRAFlags] }

// ManagedFlag reports whether M is set.
func (b NDPRouterAdvert) ManagedFlag() bool { return b[ndpRAFlags]&NDPRAManagedFlag != 0 }

// OtherFlag reports whether O is set.
func (b NDPRouterAdvert) OtherFlag() bool { return b[ndpRAFlags]&NDPRAOtherFlag != 0 }

// RouterLifetime returns the router lifetime in seconds (0: not a default router).
func (b NDPRouterAdvert) RouterLifetime() uint16 {
	return binary.BigEndian.Uint16(b[ndpRALifetime:])
}

// ReachableTime returns the reachable time in milliseconds (0: unspecified).
func (b NDPRouterAdvert) ReachableTime() uint32 {
	return binary.BigEndian.Uint32(b[ndpRAReachable:])
}

// RetransTimer returns the retransmission timer in milliseconds (0: unspecified).
func (b NDPRouterAdvert) RetransTimer() uint32 {
	return binary.BigEndian.Uint32(b[ndpRARetrans:])
}

// Options returns the options area.
func (b NDPRouterAdvert) Options() NDPOptions { return NDPOptions(b[ndpRAOptions:]) }

// NDP option types.
const (
	NDPOptionSourceLinkLayerAddress uint8 = 1
	NDPOptionTargetLinkLayerAddress uint8 = 2
	NDPOptionPrefixInformation      uint8 = 3
	NDPOptionRedirectedHeader       uint8 = 4
	NDPOptionMTU                    uint8 = 5

	// NDPLinkLayerOptionSize is the size of a link-layer address option for Ethernet.
	NDPLinkLayerOptionSize = 8
)

// ErrNDPOptionZeroLength means an NDP option has length 0, which RFC 4861 section 4.6
// requires the whole message to be discarded for.
var ErrNDPOptionZeroLength = errors.New("header: NDP option with length 0")

// NDPOptions is the options area of an NDP message: options of a type byte, a length byte
// in units of 8 octets (type and length included), and data.
type NDPOptions []byte

// Iter returns an iterator over the options.
func (o NDPOptions) Iter() NDPOptionIterator { return NDPOptionIterator{b: o} }

// Validate returns nil when every option is well formed, else the first error
// (ErrNDPOptionZeroLength or ErrOptionTruncated). RFC 4861 asks to discard a message
// whose options do not validate.
func (o NDPOptions) Validate() error {
	it := o.Iter()
	for {
		if _, ok := it.Next(); !ok {
			return it.Err()
		}
	}
}

// linkLayerAddress returns the Ethernet address of the first option of type t.
func (o NDPOptions) linkLayerAddress(t uint8) (MAC, bool) {
	it := o.Iter()
	for {
		opt, ok := it.Next()
		if !ok {
			return MAC{}, false
		}
		if opt.Type == t && len(opt.Data) >= 6 {
			return MAC(opt.Data[:6]), true
		}
	}
}

// SourceLinkLayerAddress returns the Ethernet address of the first source link-layer
// address option, stopping at a malformed option.
func (o NDPOptions) SourceLinkLayerAddress() (MAC, bool) {
	return o.linkLayerAddress(NDPOptionSourceLinkLayerAddress)
}

// TargetLinkLayerAddress returns the Ethernet address of the first target link-layer
// address option, stopping at a malformed option.
func (o NDPOptions) TargetLinkLayerAddress() (MAC, bool) {
	return o.linkLayerAddress(NDPOptionTargetLinkLayerAddress)
}

// NDPOptionIterator walks NDP options. A zero-length or truncated option stops it, and
// Err then reports why.
type NDPOptionIterator struct {
	b   []byte
	err error
}

// Next returns the next option; Data holds the bytes after the type and length bytes
// (len(Data) = 8*length - 2) and aliases the message.
func (it *NDPOptionIterator) Next() (Option, bool) {
	if len(it.b) == 0 {
		return Option{}, false
	}
	if len(it.b) < 2 {
		it.b, it.err = nil, ErrOptionTruncated
		return Option{}, false
	}
	l := int(it.b[1]) * 8
	if l == 0 {
		it.b, it.err = nil, ErrNDPOptionZeroLength
		return Option{}, false
	}
	if l > len(it.b) {
		it.b, it.err = nil, ErrOptionTruncated
		return Option{}, false
	}
	o := Option{Type: it.b[0], Data: it.b[2:l:l]}
	it.b = it.b[l:]
	return o, true
}

// Err returns why the walk stopped early, or nil.
func (it *NDPOptionIterator) Err() error { return it.err }

// PutNDPLinkLayerOption writes an 8-byte source or target link-layer address option
// (typ NDPOptionSourceLinkLayerAddress or NDPOptionTargetLinkLayerAddress) into b and
// returns 8, or 0 when b is too short.
func PutNDPLinkLayerOption(b []byte, typ uint8, m MAC) int {
	if len(b) < NDPLinkLayerOptionSize {
		return 0
	}
	b[0] = typ
	b[1] = 1
	copy(b[2:8], m[:])
	return NDPLinkLayerOptionSize
}
