package router

import (
	"net/netip"

	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
	"ulb/vrrp"
)

// handle classifies one received frame, buf[headroom:], and acts on it: a drop with its
// reason, a local delivery, or a frame queued on an egress port.
func (l *loop) handle(buf []byte) {
	frame := buf[headroom:]
	eth := header.Ethernet(frame)
	if !eth.IsValid() {
		l.bc.drop(DropEthernetShort)
		return
	}
	in := l.in
	if !in.layer3 {
		if eth.Source() == in.mac {
			l.bc.drop(DropOwnFrame)
			return
		}
		if d := eth.Destination(); d != in.mac && !d.IsMulticast() && !in.acceptsVMAC(d) {
			l.bc.drop(DropNotForUs)
			return
		}
	}
	if _, tagged := eth.VLAN(); tagged {
		l.bc.drop(DropVLAN)
		return
	}
	switch eth.EtherType() {
	case header.EtherTypeIPv4:
		l.ipv4(buf)
	case header.EtherTypeIPv6:
		l.ipv6(buf)
	case header.EtherTypeARP:
		l.bc.local++
		if in.neigh != nil {
			in.neigh.HandleARP(frame)
		}
	default:
		l.bc.drop(DropEtherType)
	}
}

const ethLen = 14

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// badSource4 reports IPv4 source addresses a router must not accept from a wire
// (RFC 1812 §5.3.7): unspecified, loopback, multicast, limited broadcast, class E.
func badSource4(a netip.Addr) bool {
	b := a.As4()
	return b[0] == 0 || b[0] == 127 || b[0] >= 224
}

func (l *loop) ipv4(buf []byte) {
	ip := header.IPv4(buf[headroom+ethLen:])
	if !ip.IsValid() {
		l.bc.drop(DropIPv4Header)
		return
	}
	if !ip.IsChecksumValid() {
		l.bc.drop(DropIPv4Checksum)
		return
	}
	// Cut Ethernet padding: the packet ends where its total length says.
	tot := int(ip.TotalLength())
	ip = ip[:tot]
	buf = buf[:headroom+ethLen+tot]
	src, dst := ip.SourceAddr(), ip.DestinationAddr()
	if badSource4(src) {
		l.bc.drop(DropIPv4Source)
		return
	}
	if dst.IsMulticast() {
		if dst == vrrp.GroupIPv4 && ip.Protocol() == header.ProtocolVRRP && l.in.vrrp != nil && !ip.IsFragment() {
			l.bc.local++
			l.in.vrrp.Receive(l.r.now(), src, dst, ip.TTL(), ip.Payload())
			l.r.wakeVRRP()
			return
		}
		l.bc.drop(DropMulticast)
		return
	}
	if dst == limitedBroadcast || dst.As4()[0] == 0 || dst.IsLoopback() {
		l.bc.drop(DropLocalUnhandled)
		return
	}
	if l.hostPortSource(src) {
		p := pkt{buf: buf, ip: ip, src: src, dst: dst}
		if t, ok := readL4(ip.Protocol(), ip.Payload()); ok && !ip.IsFragment() {
			l.masquerade(&p, t)
		} else {
			l.bc.drop(DropLocalUnhandled)
		}
		return
	}
	if l.r.tracking.Load() {
		p := pkt{buf: buf, ip: ip, src: src, dst: dst}
		switch proto := ip.Protocol(); proto {
		case header.ProtocolTCP, header.ProtocolUDP:
			if t, ok := readL4(proto, ip.Payload()); ok && l.balance(&p, t) {
				return
			}
		case header.ProtocolICMPv4:
			if icmp := header.ICMPv4(ip.Payload()); icmp.IsValid() && icmp.IsError() && l.icmpErrorNAT(&p) {
				return
			}
		}
	}
	nh, ok := l.r.fib.Load().Lookup(dst)
	if !ok {
		l.icmp4Error(ip, header.ICMPv4DstUnreachable, header.ICMPv4NetUnreachable, 0)
		l.bc.drop(DropNoRoute)
		return
	}
	if nh.Kind == fib.Local {
		l.local4(buf, ip)
		return
	}
	if ip.TTL() <= 1 {
		l.icmp4Error(ip, header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded, 0)
		l.bc.drop(DropTTLExceeded)
		return
	}
	ep := l.r.ports[nh.Port]
	if tot > ep.mtu {
		vh := port.Hdr(buf, headroom)
		switch {
		case vh.IsGSO():
			if seg := gsoSegmentLen(ip, vh); seg > ep.mtu {
				if ip.DontFragment() {
					l.icmp4Error(ip, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded, uint32(ep.mtu))
					l.bc.drop(DropTooBig)
				} else {
					l.bc.drop(DropFragment)
				}
				return
			}
		case ip.DontFragment():
			l.icmp4Error(ip, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded, uint32(ep.mtu))
			l.bc.drop(DropTooBig)
			return
		default:
			ip.DecTTL()
			l.fragment4(buf, ep, nh)
			return
		}
	}
	ip.DecTTL()
	l.bc.forwarded++
	l.emit(ep, nh.Gateway, dst, buf)
}

// gsoSegmentLen is the size of the largest IP packet a GSO frame becomes on the wire.
func gsoSegmentLen(ip []byte, vh port.VnetHdr) int {
	var hl int
	var l4 []byte
	if len(ip) > 0 && ip[0]>>4 == 4 {
		v4 := header.IPv4(ip)
		hl = v4.HeaderLength()
		l4 = v4.Payload()
	} else {
		v6 := header.IPv6(ip)
		proto, off, ok := v6.TransportProtocol()
		if !ok {
			return len(ip)
		}
		hl = off
		l4 = ip[off:]
		if proto != header.ProtocolTCP && proto != header.ProtocolUDP {
			return len(ip)
		}
	}
	switch vh.GSOType() &^ port.VnetGSOECN {
	case port.VnetGSOTCPv4, port.VnetGSOTCPv6:
		t := header.TCP(l4)
		if !t.IsValid() {
			return len(ip)
		}
		hl += t.DataOffset()
	case port.VnetGSOUDPL4:
		hl += 8
	}
	return hl + int(vh.GSOSize())
}

// emit sends the frame in buf[headroom:] out of ep towards dst, through gw when it is
// valid: it sets the MACs from the neighbour cache, or queues the frame while the next hop
// resolves.
func (l *loop) emit(ep *routerPort, gw, dst netip.Addr, buf []byte) {
	eth := header.Ethernet(buf[headroom:])
	eth.SetSource(ep.mac)
	if !ep.layer3 {
		next := dst
		if gw.IsValid() {
			next = gw
		}
		mac, ok := ep.neigh.Lookup(next)
		if !ok {
			ep.neigh.Enqueue(next, buf, headroom)
			return
		}
		eth.SetDestination(mac)
	}
	l.out[ep.idx] = append(l.out[ep.idx], buf)
}

// route sends a packet the router originates (echo reply, ICMP error, fragment) to dst.
func (l *loop) route(buf []byte, dst netip.Addr) {
	nh, ok := l.r.fib.Load().Lookup(dst)
	if !ok || nh.Kind == fib.Local {
		l.bc.drop(DropNoRoute)
		return
	}
	l.emit(l.r.ports[nh.Port], nh.Gateway, dst, buf)
}

func (l *loop) ipv6(buf []byte) {
	frame := buf[headroom:]
	ip := header.IPv6(frame[ethLen:])
	if !ip.IsValid() {
		l.bc.drop(DropIPv6Header)
		return
	}
	tot := header.IPv6MinimumSize + int(ip.PayloadLength())
	ip = ip[:tot]
	buf = buf[:headroom+ethLen+tot]
	proto, off, ok := ip.TransportProtocol()
	if !ok {
		l.bc.drop(DropIPv6Header)
		return
	}
	if proto == header.ProtocolICMPv6 && len(ip) > off {
		switch ip[off] {
		case header.ICMPv6RouterSolicit, header.ICMPv6RouterAdvert, header.ICMPv6NeighborSolicit,
			header.ICMPv6NeighborAdvert, header.ICMPv6Redirect:
			l.bc.local++
			if l.in.neigh != nil {
				l.in.neigh.HandleNDP(buf[headroom : headroom+ethLen+tot])
			}
			return
		}
	}
	src, dst := ip.SourceAddr(), ip.DestinationAddr()
	if src.IsMulticast() || src.IsUnspecified() || src.IsLoopback() {
		l.bc.drop(DropIPv6Source)
		return
	}
	if dst.IsMulticast() {
		if dst == vrrp.GroupIPv6 && proto == header.ProtocolVRRP && l.in.vrrp != nil {
			l.bc.local++
			l.in.vrrp.Receive(l.r.now(), src, dst, ip.HopLimit(), ip[off:])
			l.r.wakeVRRP()
			return
		}
		if dst == allNodes && proto == header.ProtocolICMPv6 {
			l.local6(buf, ip, off, proto)
			return
		}
		l.bc.drop(DropMulticast)
		return
	}
	if l.hostPortSource(src) {
		p := pkt{buf: buf, ip: ip, v6: true, src: src, dst: dst}
		if proto == header.ProtocolTCP || proto == header.ProtocolUDP {
			if t, ok := readL4(proto, ip[off:]); ok && off == header.IPv6MinimumSize {
				l.masquerade(&p, t)
			} else {
				l.bc.drop(DropLocalUnhandled)
			}
			return
		}
	}
	if l.r.tracking.Load() {
		p := pkt{buf: buf, ip: ip, v6: true, src: src, dst: dst}
		switch proto {
		case header.ProtocolTCP, header.ProtocolUDP:
			if t, ok := readL4(proto, ip[off:]); ok && l.balance(&p, t) {
				return
			}
		case header.ProtocolICMPv6:
			if icmp := header.ICMPv6(ip[off:]); icmp.IsValid() && icmp.IsError() && l.icmpErrorNAT(&p) {
				return
			}
		}
	}
	nh, ok := l.r.fib.Load().Lookup(dst)
	if ok && nh.Kind == fib.Local {
		l.local6(buf, ip, off, proto)
		return
	}
	if dst.IsLinkLocalUnicast() || dst.IsLoopback() {
		l.bc.drop(DropLinkLocal)
		return
	}
	if src.IsLinkLocalUnicast() {
		l.icmp6Error(ip, header.ICMPv6DstUnreachable, header.ICMPv6BeyondScope, 0)
		l.bc.drop(DropLinkLocal)
		return
	}
	if !ok {
		l.icmp6Error(ip, header.ICMPv6DstUnreachable, header.ICMPv6NoRoute, 0)
		l.bc.drop(DropNoRoute)
		return
	}
	if ip.HopLimit() <= 1 {
		l.icmp6Error(ip, header.ICMPv6TimeExceeded, header.ICMPv6HopLimitExceeded, 0)
		l.bc.drop(DropTTLExceeded)
		return
	}
	ep := l.r.ports[nh.Port]
	if tot > ep.mtu {
		vh := port.Hdr(buf, headroom)
		if !vh.IsGSO() || gsoSegmentLen(ip, vh) > ep.mtu {
			l.icmp6Error(ip, header.ICMPv6PacketTooBig, 0, uint32(ep.mtu))
			l.bc.drop(DropTooBig)
			return
		}
	}
	ip.DecHopLimit()
	l.bc.forwarded++
	l.emit(ep, nh.Gateway, dst, buf)
}

var allNodes = netip.MustParseAddr("ff02::1")
