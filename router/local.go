package router

import (
	"net/netip"

	"ulb/router/header"
	"ulb/router/port"
)

// completeChecksum finishes a checksum the sender's kernel left to the NIC
// (CHECKSUM_PARTIAL), so the router can read or rewrite the transport header as final.
func completeChecksum(buf []byte) {
	vh := port.Hdr(buf, headroom)
	if vh.NeedsCsum() && !vh.IsGSO() {
		port.CompleteChecksum(buf[headroom:], vh)
		vh.Clear()
	}
}

// local4 delivers an IPv4 packet addressed to one of the router's addresses.
func (l *loop) local4(buf []byte, ip header.IPv4) {
	l.bc.local++
	if ip.IsFragment() {
		// RFC 791 section 3.2, RFC 1122 section 3.3.2: the destination reassembles.
		if buf, ip = l.reassemble4(buf, ip); buf == nil {
			return
		}
	}
	if port.Hdr(buf, headroom).IsGSO() {
		l.bc.drop(DropLocalUnhandled)
		return
	}
	switch ip.Protocol() {
	case header.ProtocolICMPv4:
		completeChecksum(buf)
		icmp := header.ICMPv4(ip.Payload())
		if !icmp.IsValid() || header.Checksum(icmp, 0) != 0xffff {
			l.bc.drop(DropICMPMalformed)
			return
		}
		if icmp.Type() == header.ICMPv4EchoReply && l.r.probes.EchoReply(icmp.Ident()) {
			return
		}
		if icmp.Type() == header.ICMPv4DstUnreachable && l.probeError(ip) {
			return
		}
		src := ip.SourceAddr()
		if !header.EchoReplyIPv4InPlace(ip, netip.Addr{}) {
			l.bc.drop(DropLocalUnhandled)
			return
		}
		if ip.HeaderLength() > header.IPv4MinimumSize {
			// RFC 1122 §3.2.2.6, RFC 1812 §4.3.3.6: the reply carries the request's
			// Record Route and Timestamp options, updated with this hop.
			l.stampOptions4(ip, ip.SourceAddr())
		}
		l.route(buf, src)
	case header.ProtocolUDP:
		completeChecksum(buf)
		if u := header.UDP(ip.Payload()); u.IsValid() && l.localUDP(buf, ip, ip.SourceAddr(), ip.DestinationAddr(), u) {
			return
		}
		l.icmp4Error(ip, header.ICMPv4DstUnreachable, header.ICMPv4PortUnreachable, 0)
		l.bc.drop(DropLocalUnhandled)
	case header.ProtocolTCP:
		if t := header.TCP(ip.Payload()); t.IsValid() {
			l.localTCP(buf, ip, ip.SourceAddr(), ip.DestinationAddr(), t, len(t.Payload()))
			return
		}
		l.bc.drop(DropLocalUnhandled)
	default:
		l.unknownProtocol(ip, ip.Protocol())
	}
}

// local6 delivers an IPv6 packet addressed to the router (or to all nodes); frag says
// it is a fragment (not an atomic one), handed to reassembly first.
func (l *loop) local6(buf []byte, ip header.IPv6, off int, proto uint8, frag bool) {
	l.bc.local++
	if frag {
		// RFC 8200 section 4.5: the destination reassembles.
		if buf, ip = l.reassemble6(buf, ip); buf == nil {
			return
		}
		var ok bool
		if proto, off, ok = ip.TransportProtocol(); !ok {
			l.bc.drop(DropIPv6Header)
			return
		}
	}
	if port.Hdr(buf, headroom).IsGSO() {
		l.bc.drop(DropLocalUnhandled)
		return
	}
	switch proto {
	case header.ProtocolICMPv6:
		completeChecksum(buf)
		icmp := header.ICMPv6(ip[off:])
		src, dst := ip.SourceAddr(), ip.DestinationAddr()
		if !icmp.IsValid() || !header.IsTransportChecksumValid(proto, src, dst, icmp) {
			l.bc.drop(DropICMPMalformed)
			return
		}
		if icmp.Type() == header.ICMPv6EchoReply && l.r.probes.EchoReply(icmp.Ident()) {
			return
		}
		if icmp.Type() == header.ICMPv6DstUnreachable && l.probeError(ip) {
			return
		}
		if icmp.Type() != header.ICMPv6EchoRequest {
			l.bc.drop(DropLocalUnhandled)
			return
		}
		if dst.IsMulticast() {
			// An echo to all nodes is answered from the port's own address.
			dst = l.in.state().src6
			if !dst.IsValid() {
				l.bc.drop(DropLocalUnhandled)
				return
			}
		}
		if off != header.IPv6MinimumSize {
			// Extension headers are not echoed back: make the reply plain.
			n := copy(ip[header.IPv6MinimumSize:], ip[off:])
			ip = ip[:header.IPv6MinimumSize+n]
			ip.SetNextHeader(header.ProtocolICMPv6)
			ip.SetPayloadLength(uint16(n))
			buf = buf[:headroom+ethLen+len(ip)]
			icmp = header.ICMPv6(ip[header.IPv6MinimumSize:])
		}
		if !header.EchoReplyIPv6InPlace(ip, dst) {
			l.bc.drop(DropLocalUnhandled)
			return
		}
		l.route(buf, src)
	case header.ProtocolUDP:
		completeChecksum(buf)
		if u := header.UDP(ip[off:]); u.IsValid() && l.localUDP(buf, ip, ip.SourceAddr(), ip.DestinationAddr(), u) {
			return
		}
		l.icmp6Error(ip, header.ICMPv6DstUnreachable, header.ICMPv6PortUnreachable, 0)
		l.bc.drop(DropLocalUnhandled)
	case header.ProtocolTCP:
		if t := header.TCP(ip[off:]); t.IsValid() {
			l.localTCP(buf, ip, ip.SourceAddr(), ip.DestinationAddr(), t, len(t.Payload()))
			return
		}
		l.bc.drop(DropLocalUnhandled)
	default:
		l.unknownProtocol(ip, proto)
	}
}
