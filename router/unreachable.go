package router

import (
	"net/netip"
	"sync"

	"ulb/router/fib"
	"ulb/router/header"
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
	orig := eth.Payload()
	typ, code := header.ICMPv4DstUnreachable, header.ICMPv4HostUnreachable
	var back netip.Addr
	switch eth.EtherType() {
	case header.EtherTypeIPv4:
		if !header.IPv4(orig).IsValid() {
			return
		}
		back = header.IPv4(orig).SourceAddr()
	case header.EtherTypeIPv6:
		if !header.IPv6(orig).IsValid() {
			return
		}
		back = header.IPv6(orig).SourceAddr()
		typ, code = header.ICMPv6DstUnreachable, header.ICMPv6AddressUnreachable
	default:
		return
	}
	rp, nh, ok := r.routeBack(back)
	if !ok {
		return
	}
	src, dst, ok := errorAddrs(rp, orig, typ, code)
	if !ok || !r.icmp.allow(r.now()) {
		return
	}
	bp := errBufs.Get().(*[]byte)
	defer errBufs.Put(bp)
	rp.counters.ICMPErrors.Add(1)
	r.sendOutside(rp, nh, dst, writeICMPError(*bp, src, dst, orig, typ, code, 0))
}

// routeBack finds the port and next hop towards dst.
func (r *Router) routeBack(dst netip.Addr) (*routerPort, fib.NextHop, bool) {
	nh, ok := r.fib.Load().Lookup(dst)
	if !ok || nh.Kind == fib.Local {
		return nil, nh, false
	}
	return r.ports()[nh.Port], nh, true
}

// sendOutside sends a packet the router made outside the receive loops.
func (r *Router) sendOutside(rp *routerPort, nh fib.NextHop, dst netip.Addr, buf []byte) {
	eth := header.Ethernet(buf[headroom:])
	eth.SetSource(rp.mac)
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
