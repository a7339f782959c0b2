package router

import (
	"net/netip"

	"ulb/router/fib"
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
	if ip.MoreFragments() || ip.FragmentOffset() != 0 || port.Hdr(buf, headroom).IsGSO() {
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
		l.bc.drop(DropLocalUnhandled)
	}
}

// local6 delivers an IPv6 packet addressed to the router (or to all nodes).
func (l *loop) local6(buf []byte, ip header.IPv6, off int, proto uint8) {
	l.bc.local++
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
			dst = l.in.src6
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
		l.bc.drop(DropLocalUnhandled)
	}
}

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
	src, dst, ok := errorAddrs(l.in, orig, typ, code)
	if !ok {
		return
	}
	if !l.r.icmp.allow(l.r.now()) {
		l.bc.icmpLimit++
		return
	}
	b := l.newScratch()
	if b == nil {
		l.bc.icmpLimit++
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
		return p.src4, ip.SourceAddr(), p.src4.IsValid() && header.ShouldSendICMPv4Error(ip)
	}
	ip := header.IPv6(orig)
	if !ip.IsValid() {
		return src, dst, false
	}
	return p.src6, ip.SourceAddr(), p.src6.IsValid() && header.ShouldSendICMPv6Error(ip, typ, code)
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

// fragment4 splits an IPv4 packet (DF clear, TTL already decremented) that is larger
// than ep's MTU into fragments (RFC 791 §3.2), each in a scratch buffer, and sends them.
func (l *loop) fragment4(buf []byte, ep *routerPort, nh fib.NextHop) {
	completeChecksum(buf)
	ip := header.IPv4(buf[headroom+ethLen:])
	hl := ip.HeaderLength()
	data := ip[hl:]
	// Options that are copied into every fragment (the copied flag, RFC 791).
	var opts [40]byte
	nopts := copiedOptions(opts[:], ip[header.IPv4MinimumSize:hl])
	baseOff := int(ip.FragmentOffset()) // in bytes
	lastMF := ip.MoreFragments()
	dst := ip.DestinationAddr()
	for off := 0; off < len(data); {
		fhl := header.IPv4MinimumSize + nopts
		if off == 0 {
			fhl = hl
		}
		room := (ep.mtu - fhl) &^ 7
		if room <= 0 {
			l.bc.drop(DropFragment)
			return
		}
		n := min(room, len(data)-off)
		b := l.newScratch()
		if b == nil {
			l.bc.drop(DropFragment)
			return
		}
		f := b[headroom : headroom+ethLen+fhl+n]
		copy(f, buf[headroom:headroom+ethLen+header.IPv4MinimumSize])
		fip := header.IPv4(f[ethLen:])
		if off == 0 {
			copy(fip[header.IPv4MinimumSize:], ip[header.IPv4MinimumSize:hl])
		} else {
			copy(fip[header.IPv4MinimumSize:], opts[:nopts])
		}
		copy(fip[fhl:], data[off:off+n])
		fip[0] = 0x40 | byte(fhl/4)
		fip.SetTotalLength(uint16(fhl + n))
		more := off+n < len(data) || lastMF
		setFragment(fip, more, baseOff+off)
		fip.SetChecksum(fip.CalculateChecksum())
		l.bc.forwarded++
		l.emit(ep, nh.Gateway, dst, b[:headroom+len(f)])
		off += n
	}
}

// copiedOptions writes to dst the IPv4 options whose copied flag is set, padded to a
// multiple of 4 bytes, and returns their length.
func copiedOptions(dst, opts []byte) int {
	n := 0
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == 0 { // end of options
			break
		}
		if t == 1 { // no-operation
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break
		}
		ln := int(opts[i+1])
		if t&0x80 != 0 {
			n += copy(dst[n:], opts[i:i+ln])
		}
		i += ln
	}
	for n%4 != 0 {
		dst[n] = 0
		n++
	}
	return n
}

// setFragment writes the IPv4 flags and fragment offset field of a fragment: DF clear,
// MF as given, the offset in bytes (a multiple of 8).
func setFragment(ip header.IPv4, more bool, offset int) {
	v := uint16(offset / 8)
	if more {
		v |= 0x2000
	}
	ip[6], ip[7] = byte(v>>8), byte(v)
}
