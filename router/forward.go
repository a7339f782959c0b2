package router

import (
	"net/netip"

	"ulb/balancer"
	"ulb/nat"
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
	// RFC 1812 §5.3.4: remember whether the frame came as a link-layer broadcast or
	// multicast; such a packet is never forwarded (see ipv4, ipv6) and earns no ICMP
	// error (icmpError).
	l.l2mcast = !in.layer3 && eth.Destination().IsMulticast()
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
// (RFC 1812 §5.3.7): unspecified (0/8), loopback (127/8), multicast (224/4), class E
// (240/4, which a router SHOULD NOT forward) and limited broadcast. They are dropped,
// forwarded or not, and counted as ipv4-source.
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
		if mux := l.in.vrrpMux.Load(); dst == vrrp.GroupIPv4 && ip.Protocol() == header.ProtocolVRRP && mux != nil && !ip.IsFragment() {
			l.bc.local++
			mux.Receive(l.r.now(), src, dst, ip.TTL(), ip.Payload())
			l.r.wakeVRRP()
			return
		}
		l.bc.drop(DropMulticast)
		return
	}
	if dst == limitedBroadcast {
		// RFC 1812 §5.3.5.1: a limited broadcast is never forwarded, and no service of
		// the router takes one (an echo request is not answered, RFC 1122 §3.2.2.6).
		l.bc.drop(DropBroadcast)
		return
	}
	if dst.As4()[0] == 0 || dst.IsLoopback() {
		l.bc.drop(DropLocalUnhandled)
		return
	}
	if ip.HeaderLength() > header.IPv4MinimumSize && !l.options4(ip) {
		return
	}
	p := pkt{buf: buf, ip: ip, src: src, dst: dst}
	if l.hostPortSource(src) {
		if t, ok := readL4(ip.Protocol(), ip.Payload()); ok && !ip.IsFragment() {
			l.masquerade(&p, t)
		} else {
			l.bc.drop(DropLocalUnhandled)
		}
		return
	}
	// Balancing and translating forward a packet: not one that came as a link-layer
	// broadcast or multicast (RFC 1812 §5.3.4).
	if l.r.tracking.Load() && !l.l2mcast {
		switch proto := ip.Protocol(); {
		case ip.IsFragment():
			// RFC 791 section 3.2: fragments of a balanced flow follow its first one.
			p.frag, p.fragFirst, p.fragProto, p.fragID = true, ip.FragmentOffset() == 0, proto, uint32(ip.ID())
			if l.balanceFragment(&p, ip.Payload()) {
				return
			}
		case proto == header.ProtocolTCP, proto == header.ProtocolUDP:
			if t, ok := readL4(proto, ip.Payload()); ok && l.balance(&p, t) {
				return
			}
		case proto == header.ProtocolICMPv4:
			if icmp := header.ICMPv4(ip.Payload()); icmp.IsValid() && icmp.IsError() && (l.tunnelError(&p, icmp) || l.icmpErrorNAT(&p)) {
				return
			}
			if l.natEcho(&p, proto, ip.Payload()) {
				return
			}
		}
	}
	nh, ok := l.r.fib.Load().Lookup(dst)
	if !ok {
		if l.l2mcast {
			l.bc.drop(DropLinkBroadcast) // RFC 1812 §5.3.4, no ICMP error (§4.3.2.7)
			return
		}
		l.icmp4Error(ip, header.ICMPv4DstUnreachable, header.ICMPv4NetUnreachable, 0)
		l.bc.drop(DropNoRoute)
		return
	}
	if nh.Kind == fib.Local {
		l.local4(buf, ip)
		return
	}
	if nh.Kind == fib.Connected && l.r.ports()[nh.Port].isBroadcast4(dst) {
		l.directedBroadcast(&p, nh)
		return
	}
	if l.l2mcast {
		// RFC 1812 §5.3.4: a router MUST NOT forward a packet it received as a
		// link-layer broadcast or multicast unless it routes its IP multicast group,
		// and ulb routes none; nor would it send it back onto its link.
		l.bc.drop(DropLinkBroadcast)
		return
	}
	if nh.Port == l.in.idx && l.in.state().redirects {
		l.redirect4(&p, nh)
	}
	l.forward(&p, nh, dst, nil)
}

// rewrite is what a flow changes in a packet the router forwards for it, besides the
// TTL, and where the packet is counted.
type rewrite struct {
	// nat is the flow's rewrite; zero for none (DSR). For an ICMP error about a flow
	// (icmpError set) it rewrites the outer header, and quoted the packet it quotes.
	nat       nat.Rewrite
	quoted    nat.Rewrite
	icmpError bool
	// addrsOnly: a fragment other than the first of a flow's datagram, which gets its
	// addresses rewritten alone (nat.ApplyAddrs).
	addrsOnly bool
	// snap, when set, counts the packet on the flow's rule and server.
	snap         *balancer.Snapshot
	rule, server uint32
	reply        bool
	// adjust translates a SYN-proxied flow's TCP segments (Seq 0 and no flags: none).
	adjust nat.SeqAdjust
	// tunnel: the packet goes to its server encapsulated (the tunnel topology), from
	// tunnelSrc (invalid: the egress port's address); see tunnel.go.
	tunnel    bool
	tunnelSrc netip.Addr
}

// forward is the egress stage of every packet the router forwards: plain IPv4 and IPv6
// transit (rw nil), balanced flows (half-NAT, full-NAT, DSR, tunnel), translated ICMP errors and
// the host port's flows. nh is the next hop the route gave, to the address the packet
// travels to from here (its destination after the rewrite, or DSR's server), which is
// the neighbour to resolve when nh has no gateway.
//
// In order: the TTL or hop-limit check (time exceeded) and the MTU check (fragmentation
// needed or packet too big, or the decision to fragment), both about the packet as its
// sender sent it; then the rewrite, the decrement, and the frame queued on the egress
// port, fragmented or cut into segments when it must be; a tunnel flow's packet is
// encapsulated last (tunnelOut), the MTU check allowing for the outer header
// (oversizeTunnel). Packets the router originates do not come here (see route).
func (l *loop) forward(p *pkt, nh fib.NextHop, to netip.Addr, rw *rewrite) {
	ep := l.r.ports()[nh.Port]
	if p.ttl() <= 1 {
		if p.v6 {
			l.icmpError(p.ip, header.ICMPv6TimeExceeded, header.ICMPv6HopLimitExceeded, 0)
		} else {
			l.icmpError(p.ip, header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded, 0)
		}
		l.bc.drop(DropTTLExceeded)
		return
	}
	how := sendWhole
	over, mtu := 0, ep.state().mtu
	if rw != nil && rw.tunnel {
		over = tunnelOverhead(p.v6)
		mtu = l.r.tunnelPaths.mtu(to, mtu, l.r.now)
	}
	switch {
	case len(p.ip)+over <= mtu:
	case over != 0:
		if how = l.oversizeTunnel(p, mtu, over); how == sendNot {
			return
		}
	default:
		if how = l.oversize(p, ep); how == sendNot {
			return
		}
	}
	if rw != nil {
		ok := true
		switch {
		case rw.addrsOnly:
			ok = nat.ApplyAddrs(p.ip, rw.nat)
		case rw.icmpError:
			ok = nat.TranslateICMPError(p.ip, rw.nat, rw.quoted)
		case !rw.nat.IsZero():
			ok = nat.Apply(p.ip, rw.nat, port.Hdr(p.buf, headroom).NeedsCsum())
		}
		if ok && rw.adjust != (nat.SeqAdjust{}) {
			ok = l.adjustSegment(p, rw)
		}
		if !ok {
			if rw.snap != nil {
				rw.snap.CountDrop(rw.rule, rw.server)
			}
			l.bc.drop(DropLBRewrite)
			return
		}
	}
	if !p.v6 && header.IPv4(p.ip).HeaderLength() > header.IPv4MinimumSize {
		l.transitOptions4(header.IPv4(p.ip), ep)
	}
	p.decTTL()
	if rw != nil && rw.snap != nil {
		rw.snap.Account(rw.rule, rw.server, rw.reply, len(p.ip))
	}
	if over != 0 {
		l.tunnelOut(p, ep, mtu, nh.Gateway, to, rw.tunnelSrc)
		return
	}
	switch how {
	case sendFragments:
		l.fragment4(p.buf, ep, nh.Gateway, to)
	case sendSegments:
		l.segment4(p.buf, ep, nh.Gateway, to)
	default:
		l.bc.forwarded++
		l.emit(ep, nh.Gateway, to, p.buf)
	}
}

// How a packet goes out of its egress port.
type sendHow uint8

const (
	sendWhole     sendHow = iota // as it is (a GSO frame: the port segments it)
	sendFragments                // IPv4 fragments
	sendSegments                 // an IPv4 GSO frame cut into segments, each fragmented if need be
	sendNot                      // refused (and counted)
)

// oversize decides about a packet larger than ep's MTU, by RFC 1812 §5.2.6 and RFC 8200
// §5: a GSO frame whose segments fit goes as it is; else IPv6 gets packet too big, IPv4
// with DF set fragmentation needed, and IPv4 with DF clear is fragmented, a GSO frame
// after cutting it into its segments (as Linux's ip_finish_output_gso does).
func (l *loop) oversize(p *pkt, ep *routerPort) sendHow {
	vh := port.Hdr(p.buf, headroom)
	gso := vh.IsGSO()
	switch {
	case gso && gsoSegmentLen(p.ip, vh) <= ep.state().mtu:
		return sendWhole
	case p.v6:
		l.icmpError(p.ip, header.ICMPv6PacketTooBig, 0, uint32(ep.state().mtu))
	case header.IPv4(p.ip).DontFragment():
		l.icmpError(p.ip, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded, uint32(ep.state().mtu))
	case gso:
		return sendSegments
	default:
		return sendFragments
	}
	l.bc.drop(DropTooBig)
	return sendNot
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
	if ep.idx >= len(l.out) {
		l.growOut() // a port added since the loop started
	}
	l.out[ep.idx] = append(l.out[ep.idx], buf)
}

// route sends a packet the router originates (echo reply, ICMP error, fragment) to dst.
func (l *loop) route(buf []byte, dst netip.Addr) {
	if dst.Is6() && dst.IsLinkLocalUnicast() {
		// A link-local address is reachable only on its link (RFC 4291 §2.5.6): what the
		// router sends to one answers a packet that arrived here, and goes back here.
		l.emit(l.in, netip.Addr{}, dst, buf)
		return
	}
	nh, ok := l.r.fib.Load().Lookup(dst)
	if !ok || nh.Kind == fib.Local {
		l.bc.drop(DropNoRoute)
		return
	}
	ep := l.r.ports()[nh.Port]
	if len(buf)-headroom-ethLen > ep.state().mtu {
		// A reply to a reassembled request can be larger than the link: the router, its
		// source, fragments it (RFC 791 section 3.2, RFC 8200 section 4.5).
		if dst.Is4() {
			l.fragment4(buf, ep, nh.Gateway, dst)
		} else {
			l.fragment6(buf, ep, nh.Gateway, dst)
		}
		return
	}
	l.emit(ep, nh.Gateway, dst, buf)
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
	proto, off, segmentsLeft, ok := ip.UpperLayer()
	var frag header.IPv6Fragment
	if !ok || off != header.IPv6MinimumSize {
		// Extension headers: a fragment header among them? The walk refuses a fragment
		// other than the first, as it holds no upper-layer header; a router forwards it
		// all the same (RFC 8200 sections 4 and 4.5).
		if at, _, isFrag := ip.FragmentHeader(); isFrag {
			if f := header.IPv6Fragment(ip[at:]); !f.IsAtomic() {
				// An atomic fragment (offset 0, M clear) is a whole packet (RFC 6946).
				frag = f
				ok = ok || f.Offset() != 0
			}
		}
	}
	if !ok {
		l.bc.drop(DropIPv6Header)
		return
	}
	if proto == header.ProtocolICMPv6 && len(ip) > off && frag == nil {
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
	if segmentsLeft && l.routingHeader6(ip, dst) {
		return
	}
	if dst.IsMulticast() {
		if mux := l.in.vrrpMux.Load(); dst == vrrp.GroupIPv6 && proto == header.ProtocolVRRP && mux != nil && frag == nil {
			l.bc.local++
			mux.Receive(l.r.now(), src, dst, ip.HopLimit(), ip[off:])
			l.r.wakeVRRP()
			return
		}
		if dst == allNodes && proto == header.ProtocolICMPv6 {
			l.local6(buf, ip, off, proto, frag != nil)
			return
		}
		l.bc.drop(DropMulticast)
		return
	}
	p := pkt{buf: buf, ip: ip, v6: true, src: src, dst: dst}
	if frag != nil {
		p.frag, p.fragFirst, p.fragProto, p.fragID = true, frag.Offset() == 0, frag.NextHeader(), frag.ID()
	}
	if l.hostPortSource(src) {
		if proto == header.ProtocolTCP || proto == header.ProtocolUDP {
			if t, ok := readL4(proto, ip[off:]); ok && off == header.IPv6MinimumSize {
				l.masquerade(&p, t)
			} else {
				l.bc.drop(DropLocalUnhandled)
			}
			return
		}
	}
	if l.r.tracking.Load() && !l.l2mcast { // RFC 1812 §5.3.4, as for IPv4
		switch {
		case p.frag:
			// RFC 8200 section 4.5: fragments of a balanced flow follow its first one.
			if l.balanceFragment(&p, ip[off:]) {
				return
			}
		case proto == header.ProtocolTCP, proto == header.ProtocolUDP:
			if t, ok := readL4(proto, ip[off:]); ok && l.balance(&p, t) {
				return
			}
		case proto == header.ProtocolICMPv6:
			if icmp := header.ICMPv6(ip[off:]); icmp.IsValid() && icmp.IsError() && (l.tunnelError(&p, icmp) || l.icmpErrorNAT(&p)) {
				return
			}
			if l.natEcho(&p, proto, ip[off:]) {
				return
			}
		}
	}
	nh, ok := l.r.fib.Load().Lookup(dst)
	if ok && nh.Kind == fib.Local {
		l.local6(buf, ip, off, proto, p.frag)
		return
	}
	if l.l2mcast {
		// A unicast packet in a link-layer multicast frame is not forwarded: RFC 1812
		// §5.3.4's rule, which RFC 4443 §2.4 (e.4) echoes for ICMPv6 errors.
		l.bc.drop(DropLinkBroadcast)
		return
	}
	if dst.IsLinkLocalUnicast() || dst.IsLoopback() {
		l.bc.drop(DropLinkLocal)
		return
	}
	if src.IsLinkLocalUnicast() {
		// RFC 4443 §3.1: beyond scope of source address, sent back on the arrival link
		// (see route) from the router's link-local address there (see errorAddrs).
		l.icmp6Error(ip, header.ICMPv6DstUnreachable, header.ICMPv6BeyondScope, 0)
		l.bc.drop(DropLinkLocal)
		return
	}
	if !ok {
		l.icmp6Error(ip, header.ICMPv6DstUnreachable, header.ICMPv6NoRoute, 0)
		l.bc.drop(DropNoRoute)
		return
	}
	if nh.Port == l.in.idx && l.in.state().redirects {
		l.redirect6(&p, nh)
	}
	l.forward(&p, nh, dst, nil)
}

var allNodes = netip.MustParseAddr("ff02::1")
