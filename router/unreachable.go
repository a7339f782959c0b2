package router

import (
	"net/netip"
	"sync"

	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
)

// errBufs holds buffers for ICMP errors built outside the receive loops.
var errBufs = sync.Pool{New: func() any { b := make([]byte, headroom+ethLen+header.IPv6MinimumMTU); return &b }}

// hostUnreachable answers a frame that was waiting for a next hop that never resolved
// with ICMP host unreachable (ICMPv6 address unreachable), RFC 1812 §4.3.3.1 and RFC 4443
// §3.1. arpd calls it, from any goroutine, with no lock held.
func (r *Router) hostUnreachable(buf []byte, offset int) {
	eth := header.Ethernet(buf[offset:])
	if !eth.IsValid() {
		return
	}
	bp := errBufs.Get().(*[]byte)
	defer errBufs.Put(bp)
	b := *bp
	port.Hdr(b, headroom).Clear()
	var n int
	var dst netip.Addr
	switch eth.EtherType() {
	case header.EtherTypeIPv4:
		ip := header.IPv4(eth.Payload())
		if !ip.IsValid() || !header.ShouldSendICMPv4Error(ip) {
			return
		}
		dst = ip.SourceAddr()
		rp, nh, ok := r.routeBack(dst)
		if !ok || !rp.src4.IsValid() || !r.icmp.allow(r.now()) {
			return
		}
		n = header.BuildICMPv4Error(b[headroom+ethLen:], rp.src4, dst, header.ICMPv4DstUnreachable, header.ICMPv4HostUnreachable, 0, ip)
		header.Ethernet(b[headroom:]).SetEtherType(header.EtherTypeIPv4)
		r.sendOutside(rp, nh, dst, b[:headroom+ethLen+n])
	case header.EtherTypeIPv6:
		ip := header.IPv6(eth.Payload())
		if !ip.IsValid() || !header.ShouldSendICMPv6Error(ip, header.ICMPv6DstUnreachable, header.ICMPv6AddressUnreachable) {
			return
		}
		dst = ip.SourceAddr()
		rp, nh, ok := r.routeBack(dst)
		if !ok || !rp.src6.IsValid() || !r.icmp.allow(r.now()) {
			return
		}
		n = header.BuildICMPv6Error(b[headroom+ethLen:], rp.src6, dst, header.ICMPv6DstUnreachable, header.ICMPv6AddressUnreachable, 0, ip)
		header.Ethernet(b[headroom:]).SetEtherType(header.EtherTypeIPv6)
		r.sendOutside(rp, nh, dst, b[:headroom+ethLen+n])
	}
}

// routeBack finds the port and next hop towards dst.
func (r *Router) routeBack(dst netip.Addr) (*routerPort, fib.NextHop, bool) {
	nh, ok := r.fib.Load().Lookup(dst)
	if !ok || nh.Kind == fib.Local {
		return nil, nh, false
	}
	return r.ports[nh.Port], nh, true
}

// sendOutside sends a packet the router made outside the receive loops.
func (r *Router) sendOutside(rp *routerPort, nh fib.NextHop, dst netip.Addr, buf []byte) {
	eth := header.Ethernet(buf[headroom:])
	eth.SetSource(rp.mac)
	rp.counters.ICMPErrors.Add(1)
	if !rp.layer3 {
		next := dst
		if nh.Gateway.IsValid() {
			next = nh.Gateway
		}
		mac, ok := rp.neigh.Lookup(next)
		if !ok {
			rp.neigh.Enqueue(next, buf, headroom)
			return
		}
		eth.SetDestination(mac)
	}
	rp.sendOne(buf, headroom)
}
