package router

import (
	"net/netip"

	"ulb/router/header"
	"ulb/router/port"
)

// icmp4Error sends an ICMP error about the offending IPv4 packet back to its source,
// from the receiving port's address, within the rate limit.
func (l *loop) icmp4Error(ip header.IPv4, typ, code uint8, mtu uint32) {
	l.icmpError(ip, typ, code, mtu)
}

// icmp6Error sends an ICMPv6 error about the offending IPv6 packet back to its source.
func (l *loop) icmp6Error(ip header.IPv6, typ, code uint8, mtu uint32) {
	l.icmpError(ip, typ, code, mtu)
}

func (l *loop) icmpError(orig []byte, typ, code uint8, rest uint32) {
	if l.l2mcast {
		// RFC 1812 §4.3.2.7, RFC 4443 §2.4 (e.4, e.5): no ICMP error about a packet
		// received as a link-layer broadcast or multicast.
		return
	}
	src, dst, ok := errorAddrs(l.in, orig, typ, code)
	if !ok {
		return
	}
	b := l.icmpScratch(l.r.icmp)
	if b == nil {
		return
	}
	l.bc.icmpErrors++
	l.route(writeICMPError(b, src, dst, orig, typ, code, rest), dst)
}

// errorAddrs returns the source (p's address of the family) and destination (the
// offender's source) of an ICMP error about the IP packet orig, and whether one may be
// sent at all (RFC 1812 §4.3.2.7, RFC 4443 §2.4).
func errorAddrs(p *routerPort, orig []byte, typ, code uint8) (src, dst netip.Addr, ok bool) {
	if header.IPv4(orig).IsValid() {
		ip := header.IPv4(orig)
		return p.state().src4, ip.SourceAddr(), p.state().src4.IsValid() && header.ShouldSendICMPv4Error(ip)
	}
	ip := header.IPv6(orig)
	if !ip.IsValid() {
		return src, dst, false
	}
	src, dst = p.state().src6, ip.SourceAddr()
	if dst.IsLinkLocalUnicast() && !p.layer3 {
		// To a link-local address, from the router's own on that link: the source a
		// node picks for that destination (RFC 4443 §2.2, RFC 6724 §5 rule 2).
		src = header.LinkLocalFromMAC(p.mac)
	}
	return src, dst, src.IsValid() && header.ShouldSendICMPv6Error(ip, typ, code)
}

// writeICMPError builds in buf, at headroom, the Ethernet frame (MACs left to emit) of an
// ICMP or ICMPv6 error about orig, and returns buf cut at the frame's end.
func writeICMPError(buf []byte, src, dst netip.Addr, orig []byte, typ, code uint8, rest uint32) []byte {
	port.Hdr(buf, headroom).Clear()
	var n int
	if src.Is4() {
		n = header.BuildICMPv4Error(buf[headroom+ethLen:], src, dst, typ, code, rest, orig)
		header.Ethernet(buf[headroom:]).SetEtherType(header.EtherTypeIPv4)
	} else {
		n = header.BuildICMPv6Error(buf[headroom+ethLen:], src, dst, typ, code, rest, orig)
		header.Ethernet(buf[headroom:]).SetEtherType(header.EtherTypeIPv6)
	}
	return buf[:headroom+ethLen+n]
}

// icmpScratch returns a scratch buffer for an ICMP message that lim lets through, or nil,
// counted as rate-limited, when lim refuses it or no buffer is left.
func (l *loop) icmpScratch(lim *tokenBucket) []byte {
	if !lim.allow(l.r.now()) {
		l.bc.icmpLimit++
		return nil
	}
	b := l.newScratch()
	if b == nil {
		l.bc.icmpLimit++
	}
	return b
}
