package router

import (
	"encoding/binary"
	"net/netip"

	"ulb/router/fib"
	"ulb/router/header"
)

// This file holds the rules about broadcasts and redirects that RFC 1812 and RFC 4861
// set for a router: a packet that came as a link-layer broadcast or multicast is never
// forwarded, directed broadcasts are forwarded only where a port allows them, and a
// packet that leaves by the port it came in by earns its sender an ICMP redirect.

// broadcast4 returns the directed broadcast address of the IPv4 network of p.
func broadcast4(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(a)
}

// isBroadcast4 reports whether a is the directed broadcast address of one of the
// port's IPv4 networks.
func (rp *routerPort) isBroadcast4(a netip.Addr) bool {
	for _, b := range rp.state().bcast4 {
		if a == b {
			return true
		}
	}
	return false
}

// directedBroadcast handles an IPv4 packet to the directed broadcast address of the
// network of port nh.Port (RFC 1812 §5.3.5.2, RFC 2644).
func (l *loop) directedBroadcast(p *pkt, nh fib.NextHop) {
	switch {
	case nh.Port == l.in.idx:
		// A broadcast to the network it came from is a local broadcast: never sent back
		// onto its link (RFC 1812 §5.3.5.2), and no service of the router takes one; an
		// echo request is not answered (RFC 1122 §3.2.2.6 allows the silence, and it
		// denies smurf attacks their amplifier).
		l.bc.drop(DropBroadcast)
	case l.l2mcast:
		// RFC 1812 §5.3.4: what came as a link-layer broadcast is not forwarded.
		l.bc.drop(DropLinkBroadcast)
	case !l.r.ports()[nh.Port].state().directedBroadcast:
		// RFC 2644 (BCP 34): forwarding directed broadcasts is off unless configured.
		// RFC 1812 §5.3.5.2 allows an ICMP unreachable here; the drop is silent, so
		// that a sweep of broadcast addresses learns nothing.
		l.bc.drop(DropDirectedBcast)
	default:
		// Allowed: forwarded onto the target network, where arpd resolves the
		// directed broadcast address to the link-layer broadcast (RFC 1812 §5.3.5.2).
		l.forward(p, nh, p.dst, nil)
	}
}

// vrrpNodeFor returns the VRRP instance of the receiving port whose virtual MAC is m,
// or nil.
func (l *loop) vrrpNodeFor(m header.MAC) *vrrpNode {
	for _, n := range l.r.vrrpNodes() {
		if n.rp == l.in && n.in.VirtualMAC() == m {
			return n
		}
	}
	return nil
}

// onLink reports whether a is on one of the port's networks of a's family (link-local
// ones included), and returns that network.
func (rp *routerPort) onLink(a netip.Addr) (netip.Prefix, bool) {
	for _, p := range rp.state().addrs {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// hasSourceRoute reports whether an IPv4 header carries a loose or strict source route
// option (or options too broken to tell).
func hasSourceRoute(ip header.IPv4) bool {
	if ip.HeaderLength() == header.IPv4MinimumSize {
		return false
	}
	it := ip.Options().Iter()
	for {
		o, ok := it.Next()
		if !ok {
			return it.Err() != nil
		}
		if o.Type == header.IPv4OptionLSRR || o.Type == header.IPv4OptionSSRR {
			return true
		}
	}
}

// redirect4 sends an ICMP Redirect for Host about the IPv4 packet p, which is about
// to leave by the port it came in by, to the next hop of nh (RFC 1812 §5.2.7.2).
// The packet is forwarded all the same.
func (l *loop) redirect4(p *pkt, nh fib.NextHop) {
	ip := header.IPv4(p.ip)
	next := nh.Via(p.dst)
	// RFC 1812 §5.2.7.2: only when the source is on the same subnet as the next hop,
	// and the packet carries no source route (its path is its sender's choice).
	sub, ok := l.in.onLink(p.src)
	if !ok || !sub.Addr().Is4() || !sub.Contains(next) || next == p.src || p.ttl() <= 1 || hasSourceRoute(ip) {
		return
	}
	// RFC 1812 §4.3.2.7: the rules of every ICMP error (not about an ICMP error, a
	// later fragment, a broadcast or multicast).
	if !header.ShouldSendICMPv4Error(ip) {
		return
	}
	// The source is the address the host uses as its gateway, which a host checks
	// (RFC 1122 §3.2.2.2): the port's address on the host's subnet, or, for a frame
	// sent to the virtual MAC of a VRRP instance this router is master for, that
	// virtual router's address (RFC 9568 §8.1.1, as RFC 5798 §8.1.1: the destination
	// MAC tells which virtual router the host used).
	src := sub.Addr()
	if d := header.Ethernet(p.buf[headroom:]).Destination(); d != l.in.mac {
		n := l.vrrpNodeFor(d)
		if n == nil {
			return
		}
		src = netip.Addr{}
		for _, a := range n.in.Addresses() {
			if a.Is4() && sub.Contains(a) {
				src = a // the host's gateway is on its subnet
				break
			}
			if a.Is4() && !src.IsValid() {
				src = a
			}
		}
		if !src.IsValid() {
			return
		}
	}
	b := l.icmpScratch(l.r.redirects)
	if b == nil {
		return
	}
	l.bc.icmpErrors++
	// RFC 1812 §5.2.7.2: host redirects only, never network redirects. The second
	// word is the gateway's address (RFC 792).
	gw := next.As4()
	l.route(writeICMPError(b, src, p.src, ip, header.ICMPv4Redirect, header.ICMPv4HostRedirect, binary.BigEndian.Uint32(gw[:])), p.src)
}

// redirect6 sends an ICMPv6 Redirect about the IPv6 packet p, which is about to leave
// by the port it came in by, to the next hop of nh (RFC 4861 §8.2). The packet is
// forwarded all the same.
func (l *loop) redirect6(p *pkt, nh fib.NextHop) {
	ip := header.IPv6(p.ip)
	// RFC 4861 §8.2: the source is a neighbour, the destination not multicast (the
	// caller's), and the target is the better first hop: the destination itself when
	// it is on the link, else the next router, named by its link-local address so that
	// hosts can tell routers apart. A gateway configured by a global address has no
	// link-local address the router knows: no redirect then.
	if _, ok := l.in.onLink(p.src); !ok || p.ttl() <= 1 {
		return
	}
	target := p.dst
	if nh.Gateway.IsValid() {
		target = nh.Gateway
		if !target.IsLinkLocalUnicast() {
			return
		}
	}
	if target == p.src || !header.ShouldSendICMPv6Error(ip, header.ICMPv6Redirect, 0) {
		return
	}
	// RFC 4861 §8.1, §8.2: the source is the router's link-local address on the link;
	// for a frame sent to the virtual MAC of a VRRP instance this router is master for,
	// that virtual router's link-local address, which the host uses as its router
	// (RFC 9568 §8.2.1). An instance without a link-local address sends none.
	src := l.in.state().ll6
	if d := header.Ethernet(p.buf[headroom:]).Destination(); d != l.in.mac {
		n := l.vrrpNodeFor(d)
		if n == nil {
			return
		}
		src = netip.Addr{}
		for _, a := range n.in.Addresses() {
			if a.IsLinkLocalUnicast() {
				src = a
				break
			}
		}
	}
	if !src.IsValid() {
		return
	}
	b := l.icmpScratch(l.r.redirects)
	if b == nil {
		return
	}
	// The target's link-layer address when the cache knows it (RFC 4861 §8.2).
	var tll header.MAC
	if m, ok := l.in.neigh.Lookup(target); ok {
		tll = m
	}
	n := header.BuildICMPv6Redirect(b[headroom+ethLen:], src, p.src, target, p.dst, tll, ip)
	if n == 0 {
		return
	}
	l.bc.icmpErrors++
	header.Ethernet(b[headroom:]).SetEtherType(header.EtherTypeIPv6)
	l.route(b[:headroom+ethLen+n], p.src)
}
