package header

import "net/netip"

// IP-in-IP encapsulation: the outer header of a packet that carries another IP packet,
// unchanged, to a tunnel's exit point.
//
// IPv4 in IPv4 (RFC 2003 section 3.1), protocol 4:
//
//	+--------------------+--------------------+-----------------------+
//	| outer IPv4 header  | inner IPv4 header  | inner payload         |
//	| 20 bytes, proto 4  | as the client sent | as the client sent    |
//	+--------------------+--------------------+-----------------------+
//
// IPv6 in IPv6 (RFC 2473 section 3.1), next header 41, no extension headers:
//
//	+--------------------+--------------------+-----------------------+
//	| outer IPv6 header  | inner IPv6 header  | inner extension       |
//	| 40 bytes, next 41  | as the client sent | headers and payload   |
//	+--------------------+--------------------+-----------------------+
const (
	// IPv4TunnelOverhead and IPv6TunnelOverhead are what encapsulation adds: the
	// outer header, which lowers the MTU the inner packet sees by as much.
	IPv4TunnelOverhead = IPv4MinimumSize
	IPv6TunnelOverhead = IPv6MinimumSize
)

// EncapsulateIPv4 writes into b[:IPv4TunnelOverhead] the outer header of an
// IPv4-in-IPv4 packet whose inner packet, a valid IPv4 packet, is the rest of b (RFC
// 2003 section 3.1): TOS copied from the inner header (the DSCP by RFC 2983's uniform
// model, the ECN field by RFC 6040's normal mode), DF copied from the inner header (a
// packet its source may not fragment is not fragmented in the tunnel either), TTL a
// fresh DefaultTTL (the value "appropriate for delivery to the tunnel exit point"),
// identification id, protocol 4, and the checksum. It reports false, writing nothing,
// when the rest of b is not exactly one IPv4 packet or the outer packet would be longer
// than 65535 bytes.
func EncapsulateIPv4(b []byte, src, dst netip.Addr, id uint16) bool {
	if len(b) < IPv4TunnelOverhead || !src.Is4() || !dst.Is4() {
		return false
	}
	inner := IPv4(b[IPv4TunnelOverhead:])
	if !inner.IsValid() || int(inner.TotalLength()) != len(inner) || len(b) > 0xffff {
		return false
	}
	var flags uint8
	if inner.DontFragment() {
		flags = IPv4FlagDontFragment
	}
	EncodeIPv4(b, IPv4Fields{
		TOS:         inner.TOS(),
		TotalLength: uint16(len(b)),
		ID:          id,
		Flags:       flags,
		TTL:         DefaultTTL,
		Protocol:    ProtocolIPIP,
		Src:         src,
		Dst:         dst,
	})
	return true
}

// EncapsulateIPv6 writes into b[:IPv6TunnelOverhead] the outer header of an
// IPv6-in-IPv6 packet whose inner packet, a valid IPv6 packet, is the rest of b (RFC
// 2473 section 3.1): traffic class copied from the inner header (RFC 2983's uniform
// model; RFC 6040's normal mode for ECN), flow label copied (RFC 6437 section 3 lets a
// tunnel entry point set one, and the inner's keeps one flow on one path), payload
// length, next header 41, hop limit a fresh DefaultTTL (RFC 2473 section 6.3: the
// tunnel's own hop limit, the node's default), no Tunnel Encapsulation Limit option
// (RFC 2473 section 4.1.1 makes it optional; the packet is not nested). It reports
// false, writing nothing, when the rest of b is not exactly one IPv6 packet or the
// payload would be longer than 65535 bytes.
func EncapsulateIPv6(b []byte, src, dst netip.Addr) bool {
	if len(b) < IPv6TunnelOverhead || !src.Is6() || !dst.Is6() || src.Is4In6() || dst.Is4In6() {
		return false
	}
	inner := IPv6(b[IPv6TunnelOverhead:])
	if !inner.IsValid() || IPv6MinimumSize+int(inner.PayloadLength()) != len(inner) || len(inner) > 0xffff {
		return false
	}
	EncodeIPv6(b, IPv6Fields{
		TrafficClass:  inner.TrafficClass(),
		FlowLabel:     inner.FlowLabel(),
		PayloadLength: uint16(len(inner)),
		NextHeader:    ProtocolIPv6,
		HopLimit:      DefaultTTL,
		Src:           src,
		Dst:           dst,
	})
	return true
}
