package header

import (
	"encoding/binary"
	"net/netip"
)

// ICMPv4 redirect codes (RFC 792).
const (
	ICMPv4NetRedirect     uint8 = 0
	ICMPv4HostRedirect    uint8 = 1
	ICMPv4TOSNetRedirect  uint8 = 2
	ICMPv4TOSHostRedirect uint8 = 3
)

// An ICMPv6 Redirect message (RFC 4861 section 4.5):
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
//	|                    Destination Address (16)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Options ...
//
// and its Redirected Header option (RFC 4861 section 4.6.3):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |    Length     |            Reserved           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           Reserved                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IP header + data                        |
const (
	ndpRedirectTarget      = 8
	ndpRedirectDestination = 24
	// NDPRedirectMinimumSize is the size of a Redirect without options.
	NDPRedirectMinimumSize = 40
	// ndpRedirectedHeaderHdr is the Redirected Header option's type, length and
	// reserved bytes.
	ndpRedirectedHeaderHdr = 8
)

// NDPRedirect is an ICMPv6 Redirect message, its ICMPv6 header included.
type NDPRedirect []byte

// IsValid reports whether b holds a Redirect without its options.
func (b NDPRedirect) IsValid() bool { return len(b) >= NDPRedirectMinimumSize }

// TargetAddress is the better first hop: a router's link-local address, or the
// destination itself when it is on the link.
func (b NDPRedirect) TargetAddress() netip.Addr {
	return netip.AddrFrom16([16]byte(b[ndpRedirectTarget : ndpRedirectTarget+16]))
}

// DestinationAddress is the destination being redirected.
func (b NDPRedirect) DestinationAddress() netip.Addr {
	return netip.AddrFrom16([16]byte(b[ndpRedirectDestination : ndpRedirectDestination+16]))
}

// Options returns the options after the fixed part.
func (b NDPRedirect) Options() NDPOptions { return NDPOptions(b[NDPRedirectMinimumSize:]) }

// BuildICMPv6Redirect writes an IPv6 packet from src (a link-local address of the
// router, RFC 4861 section 8.1) to dst with hop limit 255 holding a Redirect (RFC 4861
// section 4.5) of destination to target: with a target link-layer address option when
// tll is not zero, and a Redirected Header option quoting orig, the redirected packet,
// as much of it as keeps the whole packet within the IPv6 minimum MTU, zero-padded to
// a multiple of 8 bytes (RFC 4861 section 4.6.3), never past orig's payload length
// when it is a valid IPv6 packet. It returns the packet's length, or 0 when b is too
// short for it or an address is not IPv6.
func BuildICMPv6Redirect(b []byte, src, dst, target, destination netip.Addr, tll MAC, orig []byte) int {
	if !src.Is6() || !dst.Is6() || !target.Is6() || !destination.Is6() {
		return 0
	}
	q := orig
	if o := IPv6(orig); o.IsValid() {
		q = orig[:IPv6MinimumSize+int(o.PayloadLength())]
	}
	fixed := IPv6MinimumSize + NDPRedirectMinimumSize
	if !tll.IsZero() {
		fixed += NDPLinkLayerOptionSize
	}
	fixed += ndpRedirectedHeaderHdr
	// IPv6MinimumMTU and fixed are multiples of 8, so a quote cut at the limit needs
	// no padding.
	n := min(len(q), IPv6MinimumMTU-fixed)
	padded := (n + 7) &^ 7
	total := fixed + padded
	if len(b) < total {
		return 0
	}
	rh := b[total-padded-ndpRedirectedHeaderHdr : total]
	copy(rh[ndpRedirectedHeaderHdr:], q[:n])
	clear(rh[ndpRedirectedHeaderHdr+n:])
	clear(rh[:ndpRedirectedHeaderHdr])
	rh[0] = NDPOptionRedirectedHeader
	rh[1] = uint8(len(rh) / 8)
	EncodeIPv6(b, IPv6Fields{
		PayloadLength: uint16(total - IPv6MinimumSize),
		NextHeader:    ProtocolICMPv6,
		HopLimit:      255,
		Src:           src,
		Dst:           dst,
	})
	icmp := b[IPv6MinimumSize:total]
	icmp[icmpType] = ICMPv6Redirect
	icmp[icmpCode] = 0
	binary.BigEndian.PutUint32(icmp[icmpRest:], 0)
	t, d := target.As16(), destination.As16()
	copy(icmp[ndpRedirectTarget:], t[:])
	copy(icmp[ndpRedirectDestination:], d[:])
	if !tll.IsZero() {
		PutNDPLinkLayerOption(icmp[NDPRedirectMinimumSize:], NDPOptionTargetLinkLayerAddress, tll)
	}
	SetTransportChecksum(ProtocolICMPv6, src, dst, icmp)
	return total
}
