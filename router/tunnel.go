package router

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ulb/conntrack"
	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
)

// The tunnel topology: a flow's packets go to its server unchanged inside an IP-in-IP
// header, IPv4 in IPv4 (RFC 2003) or IPv6 in IPv6 (RFC 2473), from the rule's
// tunnel_source or the egress port's own address to the server's address, routed like
// any packet the router forwards. The server decapsulates, owns the VIP and answers
// the client directly, as under DSR: the flow has no reply tuple.

// tunnelOverhead is what the outer header adds to a packet of the family.
func tunnelOverhead(v6 bool) int {
	if v6 {
		return header.IPv6TunnelOverhead
	}
	return header.IPv4TunnelOverhead
}

// tunnelSource is the outer source of a tunnel packet leaving by ep: the port's own
// address of the family (the one its ICMP errors come from), invalid when it has none
// that a routed hop can answer (an IPv6 link-local one).
func tunnelSource(ep *routerPort, v6 bool) netip.Addr {
	if !v6 {
		return ep.state().src4
	}
	if ep.state().src6.IsLinkLocalUnicast() {
		return netip.Addr{}
	}
	return ep.state().src6
}

// oversizeTunnel decides about a packet that does not fit the path MTU to its server
// once encapsulated (the egress port's MTU, or less when an error from inside the
// tunnel said so: tunnelPaths): the MTU the client's packet sees is that less the
// outer header.
//   - IPv4 with DF set: fragmentation needed with that MTU (RFC 2003 section 5.1: the
//     tunnel's MTU is the path's less the encapsulation; RFC 1191 section 4: the
//     next-hop MTU field); with DF clear the outer packet is fragmented after
//     encapsulation (RFC 2003 section 5.1 lets the encapsulator fragment; the outer
//     header then has DF clear like the inner one, and the server reassembles before
//     it decapsulates), as Linux's ipip does.
//   - IPv6: packet too big with max(MTU, 1280) when the packet is larger than 1280
//     bytes; a packet of at most 1280 bytes is encapsulated and the outer packet
//     fragmented (RFC 2473 section 7.1, (a) and (b)), as IPv6 lets only a packet's
//     source fragment it and the router is the outer packet's source.
//
// A GSO frame whose segments fit once encapsulated is cut into them (sendSegments): no
// port can segment a TCP stream inside an IP-in-IP header.
func (l *loop) oversizeTunnel(p *pkt, pathMTU, over int) sendHow {
	vh := port.Hdr(p.buf, headroom)
	gso := vh.IsGSO()
	mtu := pathMTU - over
	size := len(p.ip)
	if gso {
		size = gsoSegmentLen(p.ip, vh)
	}
	switch {
	case gso && size <= mtu:
		return sendSegments
	case p.v6 && size <= header.IPv6MinimumMTU:
		if gso {
			return sendSegments
		}
		return sendFragments
	case p.v6:
		l.icmpError(p.ip, header.ICMPv6PacketTooBig, 0, uint32(max(mtu, header.IPv6MinimumMTU)))
	case header.IPv4(p.ip).DontFragment():
		// RFC 791: 68 is the least MTU an IPv4 link has.
		l.icmpError(p.ip, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded, uint32(max(mtu, 68)))
	case gso:
		return sendSegments
	default:
		return sendFragments
	}
	l.bc.drop(DropTooBig)
	return sendNot
}

// tunnelOut is forward's last step for a tunnel flow's packet (TTL decremented, the MTU
// decided): it encapsulates the packet towards the server to and sends it out of ep,
// whole or as fragments of the outer packet; a GSO frame is cut into its segments
// first, each encapsulated.
func (l *loop) tunnelOut(p *pkt, ep *routerPort, mtu int, gw, to, src netip.Addr) {
	if !src.IsValid() {
		src = tunnelSource(ep, p.v6)
	}
	if !src.IsValid() {
		l.bc.drop(DropTunnel)
		return
	}
	if port.Hdr(p.buf, headroom).IsGSO() {
		l.segmentTunnel(p.buf, p.v6, ep, mtu, gw, to, src)
		return
	}
	// The inner packet is sent as its source would have: a checksum its kernel left to
	// the NIC is completed now, as no NIC finds it inside the outer header.
	completeChecksum(p.buf)
	buf, ok := l.encapsulate(p.buf, len(p.ip), p.v6, src, to)
	if !ok {
		l.bc.drop(DropTunnel)
		return
	}
	l.sendTunneled(buf, p.v6, ep, mtu, gw, to)
}

// encapsulate moves the IP packet of inLen bytes at buf[headroom+ethLen:] up by the
// outer header's size and writes the outer header in front of it, from src to dst; it
// returns the frame's buffer, or false when the buffer has no room or the packet is not
// one the outer header can carry.
func (l *loop) encapsulate(buf []byte, inLen int, v6 bool, src, dst netip.Addr) ([]byte, bool) {
	over := tunnelOverhead(v6)
	end := headroom + ethLen + over + inLen
	if end > cap(buf) {
		return nil, false
	}
	buf = buf[:end]
	at := headroom + ethLen
	copy(buf[at+over:], buf[at:at+inLen])
	if v6 {
		return buf, header.EncapsulateIPv6(buf[at:], src, dst)
	}
	// RFC 6864 section 4.1: an atomic datagram's identification has no meaning; one that
	// may be fragmented gets a fresh one.
	var id uint16
	if !header.IPv4(buf[at+over:]).DontFragment() {
		id = uint16(l.r.fragID.Add(1))
	}
	return buf, header.EncapsulateIPv4(buf[at:], src, dst, id)
}

// sendTunneled queues an encapsulated frame on ep, as fragments of the outer packet when
// it does not fit (see oversizeTunnel): IPv6 ones of the path MTU mtu, as only the
// source fragments; IPv4 ones (DF clear) of ep's MTU, which routers inside the tunnel
// may cut further.
func (l *loop) sendTunneled(buf []byte, v6 bool, ep *routerPort, mtu int, gw, to netip.Addr) {
	n := len(buf) - headroom - ethLen
	switch {
	case v6 && n > mtu:
		l.bc.forwarded++
		l.fragment6MTU(buf, ep, mtu, gw, to)
	case !v6 && n > ep.state().mtu:
		l.fragment4(buf, ep, gw, to)
	default:
		l.bc.forwarded++
		l.emit(ep, gw, to, buf)
	}
}

// segmentTunnel cuts a TCP GSO frame (TTL already decremented) into its segments, as
// segment4 does, and sends each encapsulated. What this frame queued on ep is written
// here, at once: the segments and fragments live in buffers the next frame reuses.
func (l *loop) segmentTunnel(buf []byte, v6 bool, ep *routerPort, mtu int, gw, to, src netip.Addr) {
	n, ok := l.segmentGSO(buf, tunnelOverhead(v6))
	if !ok {
		return
	}
	g := &l.gso
	mark := l.nused
	for i := range n {
		seg := g.bufs[i][:headroom+g.sizes[i]]
		port.Hdr(seg, headroom).Clear() // SegmentTCP completed every checksum
		seg, ok := l.encapsulate(seg, g.sizes[i]-ethLen, v6, src, to)
		if !ok {
			l.bc.drop(DropTunnel)
			continue
		}
		if ipLen := len(seg) - headroom - ethLen; ipLen > mtu && len(l.scratch)-l.nused < fragments(ipLen, mtu)+1 {
			l.flushPort(ep)
			l.nused = mark
		}
		l.sendTunneled(seg, v6, ep, mtu, gw, to)
	}
	l.flushPort(ep)
	l.nused = mark
}

// tunnelError relays an ICMP or ICMPv6 error that a router inside a tunnel sent back to
// the router, about an encapsulated packet of a tunnel flow, to that packet's own
// source, the client (RFC 2003 section 4; RFC 2473 section 8): the outer header
// quoted is the router's, the inner packet after it the client's. It reports false when
// the error does not quote an IP-in-IP packet from one of the router's addresses (the
// caller handles it as any other); an error that does and cannot be relayed (a quote
// too short to name the flow, no such flow, a type not relayed) is dropped, counted
// as tunnel-icmp.
func (l *loop) tunnelError(p *pkt, msg []byte) bool {
	var outer, inner []byte
	var osrc, odst netip.Addr
	if p.v6 {
		q := msg[header.ICMPv6MinimumSize:]
		if len(q) < header.IPv6MinimumSize || q[0]>>4 != 6 || header.IPv6(q).NextHeader() != header.ProtocolIPv6 {
			return false
		}
		outer, inner = q[:header.IPv6MinimumSize], q[header.IPv6MinimumSize:]
		osrc, odst = header.IPv6(outer).SourceAddr(), header.IPv6(outer).DestinationAddr()
	} else {
		q := msg[header.ICMPv4MinimumSize:]
		if len(q) < header.IPv4MinimumSize || q[0]>>4 != 4 || header.IPv4(q).Protocol() != header.ProtocolIPIP {
			return false
		}
		hl := header.IPv4(q).HeaderLength()
		if hl < header.IPv4MinimumSize || hl > len(q) {
			return false
		}
		outer, inner = q[:hl], q[hl:]
		osrc, odst = header.IPv4(outer).SourceAddr(), header.IPv4(outer).DestinationAddr()
	}
	if !l.isLocal(osrc) {
		return false
	}
	if !l.tunnelFlow(inner, p.v6, odst) {
		l.bc.drop(DropTunnelICMP)
		return true
	}
	typ, code, rest, path, ok := relayedError(msg, outer, p.v6)
	if !ok {
		l.bc.drop(DropTunnelICMP)
		return true
	}
	if path != 0 {
		// RFC 2003 section 5.1, RFC 2473 section 7.1: the tunnel's MTU, kept as soft
		// state for the packets that follow, whichever client sends them.
		l.r.tunnelPaths.learn(odst, path, l.r.now())
	}
	l.bc.local++ // the error ends here; what reaches the client is the router's own
	l.relayError(inner, p.v6, typ, code, rest)
	return true
}

// isLocal reports whether a is one of the router's own addresses.
func (l *loop) isLocal(a netip.Addr) bool {
	nh, ok := l.r.fib.Load().Lookup(a)
	return ok && nh.Kind == fib.Local
}

// tunnelFlow reports whether the quoted inner packet, from a client to a VIP, belongs
// to a tunnel flow whose server is srv: the error is about a packet the router did
// encapsulate, which keeps a forged one from making the router send errors to
// addresses of its choosing. The quote must hold the inner IP header and the first 8
// bytes of its TCP or UDP header (RFC 792, RFC 1812 section 4.3.2.3).
func (l *loop) tunnelFlow(inner []byte, v6 bool, srv netip.Addr) bool {
	var src, dst netip.Addr
	var proto uint8
	var l4 []byte
	if v6 {
		if len(inner) < header.IPv6MinimumSize+8 || inner[0]>>4 != 6 {
			return false
		}
		ip := header.IPv6(inner)
		src, dst, proto, l4 = ip.SourceAddr(), ip.DestinationAddr(), ip.NextHeader(), inner[header.IPv6MinimumSize:]
	} else {
		if len(inner) < header.IPv4MinimumSize || inner[0]>>4 != 4 {
			return false
		}
		ip := header.IPv4(inner)
		hl := ip.HeaderLength()
		if hl < header.IPv4MinimumSize || len(inner) < hl+8 || ip.FragmentOffset() != 0 {
			return false
		}
		src, dst, proto, l4 = ip.SourceAddr(), ip.DestinationAddr(), ip.Protocol(), inner[hl:]
	}
	if proto != header.ProtocolTCP && proto != header.ProtocolUDP {
		return false
	}
	sport := uint16(l4[0])<<8 | uint16(l4[1])
	dport := uint16(l4[2])<<8 | uint16(l4[3])
	f, dir, ok := l.r.ct.Get(conntrack.MakeTuple(src, dst, sport, dport, proto))
	if !ok || dir != conntrack.Original || f.Topology != conntrack.Tunnel {
		return false
	}
	a, ok := l.r.lb.Snapshot().ServerAddr(f.Server)
	return ok && a == srv
}

// relayedError is the error the client gets for an error from inside the tunnel: its
// type, code and second word (the MTU), and for a too-big error the path MTU to the
// server it reported (else 0). ok is false for errors not relayed.
//
// IPv4, RFC 2003 section 4: network, host and protocol unreachable become host
// unreachable (the VIP is on the encapsulator's own network, which the encapsulator
// simulates; protocol 4 means nothing to the client); fragmentation needed is relayed
// with the next-hop MTU less the outer header (section 5.1; a router that sent no MTU,
// RFC 1191 section 5, gets the plateau below the quoted outer packet's length); time
// exceeded becomes host unreachable (a routing loop inside the tunnel); port
// unreachable, source route failed, redirects, source quench and parameter problems
// about the outer header are not relayed.
//
// IPv6, RFC 2473 section 8.2: packet too big is relayed with the MTU less the outer
// header, and never below 1280 (section 7.1); destination unreachable and hop limit
// exceeded become destination unreachable, address unreachable; parameter problems
// (about the outer header, as the router adds no option) are not relayed.
func relayedError(msg, outer []byte, v6 bool) (typ, code uint8, rest uint32, path int, ok bool) {
	t, c := msg[0], msg[1]
	if v6 {
		switch t {
		case header.ICMPv6PacketTooBig:
			path = int(min(header.ICMPv6(msg).MTU(), 0xffff))
			mtu := path - header.IPv6TunnelOverhead
			return header.ICMPv6PacketTooBig, 0, uint32(max(mtu, header.IPv6MinimumMTU)), path, true
		case header.ICMPv6DstUnreachable, header.ICMPv6TimeExceeded:
			return header.ICMPv6DstUnreachable, header.ICMPv6AddressUnreachable, 0, 0, true
		}
		return 0, 0, 0, 0, false
	}
	switch {
	case t == header.ICMPv4DstUnreachable && c == header.ICMPv4FragmentationNeeded:
		path = int(header.ICMPv4(msg).MTU())
		if path == 0 {
			path = plateauBelow(int(header.IPv4(outer).TotalLength()))
		}
		return header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded, uint32(max(path-header.IPv4TunnelOverhead, 68)), path, true
	case t == header.ICMPv4DstUnreachable && c <= header.ICMPv4ProtoUnreachable, t == header.ICMPv4TimeExceeded:
		return header.ICMPv4DstUnreachable, header.ICMPv4HostUnreachable, 0, 0, true
	}
	return 0, 0, 0, 0, false
}

// plateauBelow is the largest MTU plateau of RFC 1191 section 7 below n.
func plateauBelow(n int) int {
	for _, p := range [...]int{32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296} {
		if p < n {
			return p
		}
	}
	return 68
}

// relayError sends the client an ICMP error of the router's own about its packet,
// quoted as the tunnel's router quoted it (the quote may be cut short: it is sent as it
// is), from the arrival port's address, within the rate limit of ICMP errors.
func (l *loop) relayError(orig []byte, v6 bool, typ, code uint8, rest uint32) {
	var src, dst netip.Addr
	if v6 {
		src, dst = l.in.state().src6, header.IPv6(orig).SourceAddr()
	} else {
		src, dst = l.in.state().src4, header.IPv4(orig).SourceAddr()
	}
	if !src.IsValid() {
		return
	}
	b := l.icmpScratch(l.r.icmp)
	if b == nil {
		return
	}
	l.bc.icmpErrors++
	l.route(writeICMPError(b, src, dst, orig, typ, code, rest), dst)
}

// tunnelPaths is the soft state of RFC 2003 section 5.1 and RFC 2473 section 7.1: the
// path MTU to each tunnel exit point (server) that an error from inside the tunnel
// reported, for tunnelPathTimeout (RFC 1191 section 6.3: a reported MTU ages out after
// about ten minutes, so that a path that grew is found again). The data plane reads an
// immutable map; errors, which are rare, replace it.
type tunnelPaths struct {
	mu sync.Mutex
	m  atomic.Pointer[map[netip.Addr]tunnelPath]
}

type tunnelPath struct {
	mtu     int
	expires int64 // unix nanoseconds
}

const (
	tunnelPathTimeout = 10 * time.Minute
	// maxTunnelPaths bounds the table: past it, no new server is learnt until entries age.
	maxTunnelPaths = 4096
)

// mtu is the path MTU towards dst: mtu, or less when an error said so.
func (t *tunnelPaths) mtu(dst netip.Addr, mtu int, now func() time.Time) int {
	m := t.m.Load()
	if m == nil {
		return mtu
	}
	e, ok := (*m)[dst]
	if !ok || e.mtu >= mtu || e.expires < now().UnixNano() {
		return mtu
	}
	return e.mtu
}

// learn records that the path to dst carries packets of mtu bytes at most (never below
// the family's minimum, RFC 791 and RFC 8200).
func (t *tunnelPaths) learn(dst netip.Addr, mtu int, now time.Time) {
	mtu = max(mtu, 68)
	if dst.Is6() {
		mtu = max(mtu, header.IPv6MinimumMTU)
	}
	if m := t.m.Load(); m != nil {
		// The same news again within a minute (every packet in flight earns one): kept.
		if e, ok := (*m)[dst]; ok && e.mtu == mtu && e.expires-now.UnixNano() > int64(tunnelPathTimeout-time.Minute) {
			return
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := make(map[netip.Addr]tunnelPath)
	if m := t.m.Load(); m != nil {
		for a, e := range *m {
			if e.expires >= now.UnixNano() {
				next[a] = e
			}
		}
	}
	if _, known := next[dst]; !known && len(next) >= maxTunnelPaths {
		return
	}
	next[dst] = tunnelPath{mtu: mtu, expires: now.Add(tunnelPathTimeout).UnixNano()}
	t.m.Store(&next)
}
