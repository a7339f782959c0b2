package nat

import (
	"ulb/router/header"
)

// parseError finds the ICMP message of an ICMPv4 error (destination unreachable,
// fragmentation needed included; time exceeded; parameter problem) or an ICMPv6 error
// (destination unreachable, packet too big, time exceeded, parameter problem). The
// returned layout has l3 set to the outer IP header and l4 to the ICMP message, at
// least 8 bytes long. Fragmented errors are refused.
func parseError(ip []byte) (lay layout, ok bool) {
	if len(ip) == 0 {
		return lay, false
	}
	switch ip[0] >> 4 {
	case 4:
		v := header.IPv4(ip)
		if !v.IsValid() || v.IsFragment() || v.Protocol() != header.ProtocolICMPv4 {
			return lay, false
		}
		m := v.Payload()
		if len(m) < header.ICMPv4MinimumSize {
			return lay, false
		}
		switch m[0] {
		case header.ICMPv4DstUnreachable, header.ICMPv4TimeExceeded, header.ICMPv4ParamProblem:
		default:
			return lay, false
		}
		return layout{v4: true, l3: ip[:v.HeaderLength()], l4: m, csum: 2}, true
	case 6:
		v := header.IPv6(ip)
		if !v.IsValid() {
			return lay, false
		}
		end := header.IPv6MinimumSize + int(v.PayloadLength())
		proto, off, segmentsLeft, ok := v.UpperLayer()
		if !ok || segmentsLeft || proto != header.ProtocolICMPv6 || end-off < header.ICMPv6MinimumSize {
			return lay, false
		}
		m := ip[off:end]
		switch m[0] {
		case header.ICMPv6DstUnreachable, header.ICMPv6PacketTooBig, header.ICMPv6TimeExceeded,
			header.ICMPv6ParamProblem:
		default:
			return lay, false
		}
		return layout{l3: ip[:header.IPv6MinimumSize], l4: m, csum: 2}, true
	}
	return lay, false
}

// ErrorInner returns the packet quoted by an ICMPv4 or ICMPv6 error of a type that
// TranslateICMPError handles (see there), to find the flow it is about with Parse. ip
// starts at the outer IP header. ok is false for anything else, or an empty quote.
func ErrorInner(ip []byte) (inner []byte, ok bool) {
	lay, ok := parseError(ip)
	if !ok || len(lay.l4) == header.ICMPv4MinimumSize {
		return nil, false
	}
	return lay.l4[header.ICMPv4MinimumSize:], true
}

// TranslateICMPError rewrites an ICMP error about a translated flow in place: the outer
// IP header's addresses as outer says (its ports are ignored: the message has none), and
// the quoted packet's addresses and ports (or echo identifier) as inner says. It updates
// the outer IPv4 header checksum, the quoted IPv4 header checksum, the quoted transport
// checksum when the quote holds all of its field, and the ICMP checksum (ICMPv6: with the outer
// pseudo-header), all incrementally.
//
// Handled: ICMPv4 destination unreachable (fragmentation needed included), time
// exceeded and parameter problem; ICMPv6 destination unreachable, packet too big, time
// exceeded and parameter problem. The quote must hold the IP header and 8 bytes of a
// TCP, UDP or ICMP echo header, of the outer packet's family. It reports false and
// changes nothing otherwise, or when a rewrite does not fit its packet (see Apply). The
// message is assumed complete (locally generated ICMP carries no CHECKSUM_PARTIAL).
func TranslateICMPError(ip []byte, outer Rewrite, inner Rewrite) bool {
	out, ok := parseError(ip)
	if !ok || !fitsFamily(outer.Src, out.v4) || !fitsFamily(outer.Dst, out.v4) {
		return false
	}
	msg := out.l4
	in, ok := parseIP(msg[header.ICMPv4MinimumSize:], true)
	if !ok || in.v4 != out.v4 || !in.fits(inner) {
		return false
	}
	// The inner rewrite touches only the quoted IP header and the first 20 bytes of
	// its transport header; both start at even offsets of the message, so the change of
	// their sum updates the message's checksum as the change of one word would.
	n := min(len(in.l4), header.TCPMinimumSize)
	before := header.ChecksumCombine(header.Checksum(in.l3, 0), header.Checksum(in.l4[:n], 0))
	in.rewrite(inner, false)
	after := header.ChecksumCombine(header.Checksum(in.l3, 0), header.Checksum(in.l4[:n], 0))

	// The outer addresses; the ICMPv6 checksum covers them in its pseudo-header.
	if out.v4 {
		v4, icmp := header.IPv4(out.l3), header.ICMPv4(msg)
		icmp.SetChecksum(header.ChecksumUpdate(icmp.Checksum(), before, after))
		if outer.Src.IsValid() {
			v4.SetSourceAddrWithChecksumUpdate(outer.Src.Unmap())
		}
		if outer.Dst.IsValid() {
			v4.SetDestinationAddrWithChecksumUpdate(outer.Dst.Unmap())
		}
		return true
	}
	v6, icmp := header.IPv6(out.l3), header.ICMPv6(msg)
	icmp.SetChecksum(header.ChecksumUpdate(icmp.Checksum(), before, after))
	var d header.SumDelta
	if outer.Src.IsValid() {
		d = v6.SetSourceAddrWithDelta(outer.Src)
	}
	if outer.Dst.IsValid() {
		d = d.Add(v6.SetDestinationAddrWithDelta(outer.Dst))
	}
	icmp.UpdateChecksumPseudoHeader(d)
	return true
}
