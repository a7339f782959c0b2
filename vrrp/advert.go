package vrrp

import (
	"encoding/binary"
	"net/netip"
	"time"

	"ulb/router/header"
)

// Advert is a view of a VRRP advertisement, the payload of an IP packet of protocol
// 112. Version 3 (RFC 9568, IPv4 and IPv6):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|(rsvd) |     Max Adver Int     |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 IPvX Address(es): 4 or 16 bytes each          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Version 2 (RFC 3768, IPv4 only) has Auth Type and an 8-bit Adver Int in seconds in
// the second word, and 8 bytes of authentication data after the addresses:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Auth Type   |   Adver Int   |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         IP Address(es)                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Authentication Data (1)                   |
//	|                     Authentication Data (2)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Call IsValid before any other method.
type Advert []byte

const (
	advVersType = 0
	advVRID     = 1
	advPriority = 2
	advCount    = 3
	advAuthType = 4 // v2
	advAdverInt = 4 // v2: byte 5; v3: 12 bits of bytes 4-5
	advChecksum = 6
	advAddrs    = 8

	// AdvertHeaderSize is the size of the fixed part of an advertisement.
	AdvertHeaderSize = 8
	// AuthDataSize is the size of the authentication data that ends a version 2
	// advertisement.
	AuthDataSize = 8
	// MaxAdvertSize is the size of the largest advertisement: version 3, IPv6, 255
	// addresses.
	MaxAdvertSize = AdvertHeaderSize + 255*16

	// TypeAdvertisement is the only VRRP packet type.
	TypeAdvertisement = 1
	// PriorityOwner is the priority of the router that owns the virtual addresses.
	PriorityOwner = 255
	// PriorityStop is the priority a master sends when it stops being master.
	PriorityStop = 0
	// AuthNone is the only version 2 authentication type this package sends or accepts
	// (RFC 3768 removed the others).
	AuthNone = 0
	// MaxAdverIntV3 is the largest version 3 interval, in centiseconds (12 bits).
	MaxAdverIntV3 = 0xfff
)

// Multicast groups that adverts are sent to (RFC 9568 section 5.1).
var (
	GroupIPv4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	GroupIPv6 = netip.MustParseAddr("ff02::12")
)

// AdvertSize returns the size of an advertisement of the given version carrying count
// addresses of the family (IPv6 when ipv6 is true).
func AdvertSize(version uint8, count int, ipv6 bool) int {
	alen := 4
	if ipv6 {
		alen = 16
	}
	n := AdvertHeaderSize + count*alen
	if version == 2 {
		n += AuthDataSize
	}
	return n
}

// IsValid reports whether b is exactly one well-formed advertisement of an address
// family: version 2 (IPv4 only) or 3, and a length that matches the address count.
// It checks neither the type nor the checksum.
func (b Advert) IsValid(ipv6 bool) bool {
	if len(b) < AdvertHeaderSize {
		return false
	}
	v := b.Version()
	if v != 3 && (v != 2 || ipv6) {
		return false
	}
	return len(b) == AdvertSize(v, int(b.CountIPAddrs()), ipv6)
}

// Version returns the protocol version (2 or 3 for a valid advert).
func (b Advert) Version() uint8 { return b[advVersType] >> 4 }

// Type returns the packet type (1, TypeAdvertisement, is the only one defined).
func (b Advert) Type() uint8 { return b[advVersType] & 0xf }

// VRID returns the virtual router identifier.
func (b Advert) VRID() uint8 { return b[advVRID] }

// Priority returns the sender's priority: 255 for the address owner, 0 for a master
// that stops.
func (b Advert) Priority() uint8 { return b[advPriority] }

// CountIPAddrs returns the number of addresses the advert carries.
func (b Advert) CountIPAddrs() uint8 { return b[advCount] }

// AuthType returns the authentication type of a version 2 advert.
func (b Advert) AuthType() uint8 { return b[advAuthType] }

// AdverInt returns the advertisement interval of a version 2 advert, in seconds.
func (b Advert) AdverInt() uint8 { return b[advAdverInt+1] }

// MaxAdverInt returns the advertisement interval of a version 3 advert, in
// centiseconds (12 bits).
func (b Advert) MaxAdverInt() uint16 {
	return binary.BigEndian.Uint16(b[advAdverInt:]) & MaxAdverIntV3
}

// Interval returns the advertisement interval of the advert, for either version.
func (b Advert) Interval() time.Duration {
	if b.Version() == 2 {
		return time.Duration(b.AdverInt()) * time.Second
	}
	return time.Duration(b.MaxAdverInt()) * centisecond
}

// Checksum returns the checksum field.
func (b Advert) Checksum() uint16 { return binary.BigEndian.Uint16(b[advChecksum:]) }

// Address returns the i-th address of the advert (0 <= i < CountIPAddrs).
func (b Advert) Address(i int, ipv6 bool) netip.Addr {
	if ipv6 {
		return netip.AddrFrom16([16]byte(b[advAddrs+16*i:]))
	}
	return netip.AddrFrom4([4]byte(b[advAddrs+4*i:]))
}

// AppendAddresses appends the advert's addresses to dst and returns it.
func (b Advert) AppendAddresses(dst []netip.Addr, ipv6 bool) []netip.Addr {
	for i := range int(b.CountIPAddrs()) {
		dst = append(dst, b.Address(i, ipv6))
	}
	return dst
}

// ChecksumMode says whether the checksum of a version 3 advert over IPv4 covers the
// IPv4 pseudo-header. RFC 5798 and RFC 9568 section 5.2.8 say it does, and keepalived
// (2.x, the default of Debian's package) sends it so; some older RFC 5798
// implementations leave it out, as version 2 does. Receivers in this package accept
// both. Version 2 never and version 3 over IPv6 always include it.
type ChecksumMode uint8

const (
	// PseudoHeader includes the IPv4 pseudo-header, as RFC 9568 and keepalived do. It
	// is the zero value, so it is the default.
	PseudoHeader ChecksumMode = iota
	// NoPseudoHeader sums the VRRP message only, as in version 2.
	NoPseudoHeader
)

// String returns the mode as the configuration spells it.
func (m ChecksumMode) String() string {
	if m == NoPseudoHeader {
		return "no-pseudo-header"
	}
	return "pseudo-header"
}

// ComputeChecksum returns the checksum field value for the advert carried from src
// to dst, ignoring the value currently in the field. The pseudo-header is included
// for version 3 over IPv6 always, and for version 3 over IPv4 when mode is
// PseudoHeader. b must be valid.
func (b Advert) ComputeChecksum(mode ChecksumMode, src, dst netip.Addr) uint16 {
	var sum uint16
	if b.Version() == 3 && (src.Is6() || mode == PseudoHeader) {
		sum = header.PseudoHeaderChecksum(header.ProtocolVRRP, src, dst, uint16(len(b)))
	}
	sum = header.Checksum(b[:advChecksum], sum)
	sum = header.Checksum(b[advChecksum+2:], sum)
	return ^sum
}

// SetChecksum computes the checksum (see ComputeChecksum) and stores it.
func (b Advert) SetChecksum(mode ChecksumMode, src, dst netip.Addr) {
	binary.BigEndian.PutUint16(b[advChecksum:], b.ComputeChecksum(mode, src, dst))
}

// IsChecksumValid reports whether the advert, carried from src to dst, has a correct
// checksum, and in which mode it was computed. A version 3 IPv4 advert is accepted in
// either mode (PseudoHeader is tried first); the other kinds have only one.
func (b Advert) IsChecksumValid(src, dst netip.Addr) (ok bool, mode ChecksumMode) {
	have := b.Checksum()
	if xsumEqual(have, b.ComputeChecksum(PseudoHeader, src, dst)) {
		if b.Version() == 2 {
			return true, NoPseudoHeader
		}
		return true, PseudoHeader
	}
	if b.Version() == 3 && src.Is4() && xsumEqual(have, b.ComputeChecksum(NoPseudoHeader, src, dst)) {
		return true, NoPseudoHeader
	}
	return false, PseudoHeader
}

// xsumEqual compares checksum field values; 0x0000 and 0xffff both mean zero.
func xsumEqual(a, b uint16) bool {
	return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

// AdvertFields are the values BuildAdvert writes.
type AdvertFields struct {
	Version  uint8 // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval: whole seconds from 1 s to 255 s for
	// version 2, 10 ms steps from 10 ms to 40.95 s for version 3.
	Interval time.Duration
	// Addresses are the virtual addresses, all of one family (IPv4 for version 2), 1
	// to 255 of them.
	Addresses []netip.Addr
	// Checksum, Src and Dst give the checksum: Src and Dst are the addresses of the IP
	// header (the sender's primary address and the multicast group).
	Checksum ChecksumMode
	Src, Dst netip.Addr
}

// BuildAdvert writes the advertisement described by f at the start of b, checksum
// included, and returns its length. It returns 0, writing nothing, when b is too short
// or f is not a valid advertisement (version, interval out of range or not a
// multiple of the version's unit, address count or family).
func BuildAdvert(b []byte, f AdvertFields) int {
	n := len(f.Addresses)
	if n == 0 || n > 255 || (f.Version != 2 && f.Version != 3) {
		return 0
	}
	ipv6 := f.Addresses[0].Is6()
	if ipv6 && f.Version == 2 {
		return 0
	}
	for _, a := range f.Addresses {
		if !a.IsValid() || a.Is6() != ipv6 || a.Is4In6() || a.Zone() != "" {
			return 0
		}
	}
	if f.Src.Is6() != ipv6 || f.Dst.Is6() != ipv6 || !f.Src.IsValid() || !f.Dst.IsValid() {
		return 0
	}
	word, ok := intervalField(f.Version, f.Interval)
	if !ok {
		return 0
	}
	size := AdvertSize(f.Version, n, ipv6)
	if len(b) < size {
		return 0
	}
	a := Advert(b[:size])
	a[advVersType] = f.Version<<4 | TypeAdvertisement
	a[advVRID] = f.VRID
	a[advPriority] = f.Priority
	a[advCount] = uint8(n)
	binary.BigEndian.PutUint16(a[advAdverInt:], word) // v2: auth type 0 and seconds
	off := advAddrs
	for _, addr := range f.Addresses {
		if ipv6 {
			s := addr.As16()
			off += copy(a[off:], s[:])
		} else {
			s := addr.As4()
			off += copy(a[off:], s[:])
		}
	}
	clear(a[off:]) // version 2 authentication data
	a.SetChecksum(f.Checksum, f.Src, f.Dst)
	return size
}

// centisecond is the unit of version 3 intervals.
const centisecond = 10 * time.Millisecond

// intervalField returns the 16-bit word that holds interval d in an advert of the
// version: for version 2 the auth type (0) and the seconds, for version 3 the
// centiseconds. ok is false when d is out of range or not a whole number of units.
func intervalField(version uint8, d time.Duration) (word uint16, ok bool) {
	if version == 2 {
		if d%time.Second != 0 || d < time.Second || d > 255*time.Second {
			return 0, false
		}
		return uint16(d / time.Second), true
	}
	if d%centisecond != 0 || d < centisecond || d > MaxAdverIntV3*centisecond {
		return 0, false
	}
	return uint16(d / centisecond), true
}
