package header

import (
	"encoding/binary"
	"net/netip"
)

const (
	// DefaultTTL is the TTL and hop limit of the packets the builders here write.
	DefaultTTL = 64
	// icmpv4ErrorTOS is the precedence "internetwork control" (RFC 1812 section 4.3.2.5).
	icmpv4ErrorTOS = 0xc0
)

// BuildICMPv4Error writes an IPv4 packet from src to dst holding an ICMPv4 error of the
// given type and code, whose second header word is rest (the next-hop MTU for
// fragmentation needed, the pointer in the high byte for a parameter problem, else 0),
// quoting orig, the offending IPv4 packet: as much of it as fits in 576 bytes in all
// (RFC 1812 section 4.3.2.3), never past its total length when it is a valid IPv4
// packet, nor past the end of b. orig may overlap b. It returns the packet's length, or
// 0 when b cannot hold the 28 header bytes or src or dst is not IPv4.
func BuildICMPv4Error(b []byte, src, dst netip.Addr, typ, code uint8, rest uint32, orig []byte) int {
	const hdr = IPv4MinimumSize + ICMPv4MinimumSize
	if len(b) < hdr || !src.Is4() || !dst.Is4() {
		return 0
	}
	q := orig
	if o := IPv4(orig); o.IsValid() {
		q = orig[:o.TotalLength()]
	}
	n := min(len(q), ICMPv4MaxErrorSize-hdr, len(b)-hdr)
	copy(b[hdr:hdr+n], q[:n]) // first: orig may overlap the headers written below
	total := hdr + n
	EncodeIPv4(b, IPv4Fields{
		TOS:         icmpv4ErrorTOS,
		TotalLength: uint16(total),
		TTL:         DefaultTTL,
		Protocol:    ProtocolICMPv4,
		Src:         src,
		Dst:         dst,
	})
	icmp := ICMPv4(b[IPv4MinimumSize:total])
	icmp[icmpType] = typ
	icmp[icmpCode] = code
	binary.BigEndian.PutUint32(icmp[icmpRest:], rest)
	icmp.SetChecksum(0)
	icmp.SetChecksum(icmp.CalculateChecksum())
	return total
}

// BuildICMPv6Error writes an IPv6 packet from src to dst holding an ICMPv6 error of the
// given type and code, whose second header word is rest (the MTU for packet too big,
// the pointer for a parameter problem, else 0), quoting as much of orig, the offending
// packet, as fits in 1280 bytes in all (RFC 4443 section 2.4), never past its payload
// length when it is a valid IPv6 packet, nor past the end of b. orig may overlap b. It
// returns the packet's length, or 0 when b cannot hold the 48 header bytes or src or
// dst is not IPv6.
func BuildICMPv6Error(b []byte, src, dst netip.Addr, typ, code uint8, rest uint32, orig []byte) int {
	const hdr = IPv6MinimumSize + ICMPv6MinimumSize
	if len(b) < hdr || !src.Is6() || !dst.Is6() {
		return 0
	}
	q := orig
	if o := IPv6(orig); o.IsValid() {
		q = orig[:IPv6MinimumSize+int(o.PayloadLength())]
	}
	n := min(len(q), ICMPv6MaxErrorSize-hdr, len(b)-hdr)
	copy(b[hdr:hdr+n], q[:n])
	total := hdr + n
	EncodeIPv6(b, IPv6Fields{
		PayloadLength: uint16(total - IPv6MinimumSize),
		NextHeader:    ProtocolICMPv6,
		HopLimit:      DefaultTTL,
		Src:           src,
		Dst:           dst,
	})
	icmp := ICMPv6(b[IPv6MinimumSize:total])
	icmp[icmpType] = typ
	icmp[icmpCode] = code
	binary.BigEndian.PutUint32(icmp[icmpRest:], rest)
	SetTransportChecksum(ProtocolICMPv6, src, dst, icmp)
	return total
}

// ShouldSendICMPv4Error reports whether an ICMPv4 error may be sent about the valid
// IPv4 packet p (RFC 1812 section 4.3.2.7): not about an ICMP error, a fragment other
// than the first, or a packet whose source is not a unicast address. The router still
// has to refuse link-layer broadcasts and the directed broadcasts of its networks.
func ShouldSendICMPv4Error(p IPv4) bool {
	if p.FragmentOffset() != 0 {
		return false
	}
	s := p.SourceAddr()
	if s.IsUnspecified() || s.IsMulticast() || s.IsLoopback() || s == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	if d := p.DestinationAddr(); d.IsMulticast() || d == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	if p.Protocol() == ProtocolICMPv4 {
		icmp := ICMPv4(p.Payload())
		// A truncated ICMP header cannot be told apart from an error: stay silent.
		if !icmp.IsValid() || icmp.IsError() {
			return false
		}
	}
	return true
}

// ShouldSendICMPv6Error reports whether an ICMPv6 error of type typ and code may be sent
// about the valid IPv6 packet p (RFC 4443 section 2.4 (e)): not about an ICMPv6 error,
// not from an unspecified or multicast source, and not about a packet to a multicast
// address unless the error is a packet-too-big or a parameter problem of code 2.
func ShouldSendICMPv6Error(p IPv6, typ, code uint8) bool {
	s := p.SourceAddr()
	if s.IsUnspecified() || s.IsMulticast() || s.IsLoopback() {
		return false
	}
	if p.DestinationAddr().IsMulticast() && typ != ICMPv6PacketTooBig && !(typ == ICMPv6ParamProblem && code == 2) {
		return false
	}
	proto, off, ok := p.TransportProtocol()
	if ok && proto == ProtocolICMPv6 {
		icmp := ICMPv6(p[off : IPv6MinimumSize+int(p.PayloadLength())])
		if !icmp.IsValid() || icmp.IsError() {
			return false
		}
	}
	return true
}

// EchoReplyIPv4InPlace turns the IPv4 ICMP echo request p into its echo reply in place:
// destination = the request's source, source = src when src is valid (for a request
// sent to a broadcast or multicast address) else the request's destination, TTL 64, type
// echo reply; both checksums are updated incrementally. It reports false, changing
// nothing, when p is not a valid, unfragmented echo request with a valid ICMP header
// or src is valid but not IPv4.
func EchoReplyIPv4InPlace(p IPv4, src netip.Addr) bool {
	if !p.IsValid() || p.Protocol() != ProtocolICMPv4 || p.IsFragment() || (src.IsValid() && !src.Is4()) {
		return false
	}
	icmp := ICMPv4(p.Payload())
	if !icmp.IsValid() || icmp.Type() != ICMPv4Echo {
		return false
	}
	s, d := p.SourceAddr(), p.DestinationAddr()
	if !src.IsValid() {
		src = d
	}
	// The header sum holds s and d; afterwards it holds src and s: only d -> src changes.
	p.SetChecksum(ChecksumUpdateAddr(p.Checksum(), d, src))
	p.SetSourceAddr(src)
	p.SetDestinationAddr(s)
	p.SetTTLWithChecksumUpdate(DefaultTTL)
	icmp.SetTypeCodeWithChecksumUpdate(ICMPv4EchoReply, 0)
	return true
}

// EchoReplyIPv6InPlace turns the ICMPv6 echo request p into its echo reply in place, as
// EchoReplyIPv4InPlace does (hop limit 64, pseudo-header and type changes folded into
// the ICMPv6 checksum). Only a request without extension headers is turned; for any
// other packet, or src valid but not IPv6, it reports false and changes nothing.
func EchoReplyIPv6InPlace(p IPv6, src netip.Addr) bool {
	if !p.IsValid() || p.NextHeader() != ProtocolICMPv6 || (src.IsValid() && !src.Is6()) {
		return false
	}
	icmp := ICMPv6(p.Payload())
	if !icmp.IsValid() || icmp.Type() != ICMPv6EchoRequest {
		return false
	}
	s, d := p.SourceAddr(), p.DestinationAddr()
	if !src.IsValid() {
		src = d
	}
	icmp.SetChecksum(ChecksumUpdateAddr(icmp.Checksum(), d, src))
	p.SetSourceAddr(src)
	p.SetDestinationAddr(s)
	p.SetHopLimit(DefaultTTL)
	icmp.SetTypeCodeWithChecksumUpdate(ICMPv6EchoReply, 0)
	return true
}

// NDPNeighborSolicitPacketSize is the length of the packet BuildNDPNeighborSolicit and
// BuildNDPNeighborAdvert write with a link-layer option.
const NDPNeighborSolicitPacketSize = IPv6MinimumSize + NDPNeighborSolicitMinimumSize + NDPLinkLayerOptionSize

// BuildNDPNeighborSolicit writes an IPv6 packet holding a neighbor solicitation for
// target from src to dst, hop limit 255. dst may be the zero Addr, meaning target's
// solicited-node address. A source link-layer address option with srcMAC is included
// unless src is unspecified (duplicate address detection, RFC 4861 section 7.2.2). It
// returns the length (72, or 64 without the option), or 0 when b is too short or an
// address is not IPv6.
func BuildNDPNeighborSolicit(b []byte, src, dst, target netip.Addr, srcMAC MAC) int {
	if !dst.IsValid() {
		dst = SolicitedNodeAddr(target)
	}
	if !src.Is6() || !dst.Is6() || !target.Is6() {
		return 0
	}
	n := NDPNeighborSolicitMinimumSize
	if !src.IsUnspecified() {
		n += NDPLinkLayerOptionSize
	}
	if len(b) < IPv6MinimumSize+n {
		return 0
	}
	m := b[IPv6MinimumSize : IPv6MinimumSize+n]
	m[icmpType], m[icmpCode] = ICMPv6NeighborSolicit, 0
	binary.BigEndian.PutUint32(m[icmpRest:], 0)
	t := target.As16()
	copy(m[ndpTarget:], t[:])
	if n > NDPNeighborSolicitMinimumSize {
		PutNDPLinkLayerOption(m[ndpNSOptions:], NDPOptionSourceLinkLayerAddress, srcMAC)
	}
	EncodeIPv6(b, IPv6Fields{PayloadLength: uint16(n), NextHeader: ProtocolICMPv6, HopLimit: NDPHopLimit, Src: src, Dst: dst})
	SetTransportChecksum(ProtocolICMPv6, src, dst, m)
	return IPv6MinimumSize + n
}

// BuildNDPNeighborAdvert writes an IPv6 packet holding a neighbor advertisement for
// target from src to dst (ff02::1 for an unsolicited one), hop limit 255, with flags (a
// combination of NDPNARouterFlag, NDPNASolicitedFlag, NDPNAOverrideFlag) and a target
// link-layer address option with tgtMAC. It returns the length (72), or 0 when b is too
// short or an address is not IPv6.
func BuildNDPNeighborAdvert(b []byte, src, dst, target netip.Addr, flags uint8, tgtMAC MAC) int {
	const n = NDPNeighborAdvertMinimumSize + NDPLinkLayerOptionSize
	if !src.Is6() || !dst.Is6() || !target.Is6() || len(b) < IPv6MinimumSize+n {
		return 0
	}
	m := b[IPv6MinimumSize : IPv6MinimumSize+n]
	m[icmpType], m[icmpCode] = ICMPv6NeighborAdvert, 0
	binary.BigEndian.PutUint32(m[icmpRest:], uint32(flags&0xe0)<<24)
	t := target.As16()
	copy(m[ndpTarget:], t[:])
	PutNDPLinkLayerOption(m[ndpNAOptions:], NDPOptionTargetLinkLayerAddress, tgtMAC)
	EncodeIPv6(b, IPv6Fields{PayloadLength: n, NextHeader: ProtocolICMPv6, HopLimit: NDPHopLimit, Src: src, Dst: dst})
	SetTransportChecksum(ProtocolICMPv6, src, dst, m)
	return IPv6MinimumSize + n
}

// BuildNDPRouterSolicit writes an IPv6 packet holding a router solicitation from src to
// ff02::2 with a source link-layer address option (omitted when src is unspecified),
// and returns its length, or 0 when b is too short or src is not IPv6.
func BuildNDPRouterSolicit(b []byte, src netip.Addr, srcMAC MAC) int {
	dst := netip.AddrFrom16([16]byte{0xff, 0x02, 15: 0x02})
	if !src.Is6() {
		return 0
	}
	n := NDPRouterSolicitMinimumSize
	if !src.IsUnspecified() {
		n += NDPLinkLayerOptionSize
	}
	if len(b) < IPv6MinimumSize+n {
		return 0
	}
	m := b[IPv6MinimumSize : IPv6MinimumSize+n]
	m[icmpType], m[icmpCode] = ICMPv6RouterSolicit, 0
	binary.BigEndian.PutUint32(m[icmpRest:], 0)
	if n > NDPRouterSolicitMinimumSize {
		PutNDPLinkLayerOption(m[ndpRSOptions:], NDPOptionSourceLinkLayerAddress, srcMAC)
	}
	EncodeIPv6(b, IPv6Fields{PayloadLength: uint16(n), NextHeader: ProtocolICMPv6, HopLimit: NDPHopLimit, Src: src, Dst: dst})
	SetTransportChecksum(ProtocolICMPv6, src, dst, m)
	return IPv6MinimumSize + n
}
