package router

import (
	"net/netip"

	"ulb/conntrack"
	"ulb/nat"
	"ulb/router/fib"
)

// The host port links the router to the kernel of its own network namespace, like a host
// on a point-to-point link: the kernel reaches the networks behind the router through it
// (HTTP health checks use the kernel's TCP stack), and its connections leave with the
// router's own address of the egress port (a masquerade, tracked in the connection
// table), so that the kernel never needs an address on the NICs the router owns.
var (
	// HostPortRouter and HostPortKernel are the two ends of the host port's link.
	HostPortRouter = netip.MustParsePrefix("169.254.200.1/30")
	HostPortKernel = netip.MustParsePrefix("169.254.200.2/30")
	// HostPortRouter6 and HostPortKernel6 are its IPv6 ends, in a unique local prefix
	// (RFC 4193; "ulb" in its global ID) that never leaves the box: the kernel's packets
	// are masqueraded on the way out.
	HostPortRouter6 = netip.MustParsePrefix("fd75:6c62:ff::1/126")
	HostPortKernel6 = netip.MustParsePrefix("fd75:6c62:ff::2/126")
)

// Masquerade source ports on the router's own addresses: below the probes' range.
const (
	masqPortLo = 20000
	masqPortHi = 39999
)

// masquerade forwards a TCP or UDP packet the kernel sent through the host port: a flow of
// the table rewrites its source to the egress port's address and a port of its own.
func (l *loop) masquerade(p *pkt, t l4) {
	key := conntrack.MakeTuple(p.src, p.dst, t.sport, t.dport, t.proto)
	f, dir, ok := l.r.ct.Lookup(key, t.flags, len(p.ip))
	if !ok {
		nh, found := l.r.fib.Load().Lookup(p.dst)
		if !found || nh.Kind == fib.Local {
			l.bc.drop(DropNoRoute)
			return
		}
		ep := l.r.ports()[nh.Port]
		src := ep.state().src4
		if p.v6 {
			src = ep.state().src6
		}
		if !src.IsValid() || src.IsLinkLocalUnicast() {
			l.bc.drop(DropNoRoute)
			return
		}
		port, got := l.r.masqPorts.Get(src)
		if !got {
			l.bc.drop(DropLBNoProxyPort)
			return
		}
		f = conntrack.Flow{Orig: key, Reply: conntrack.MakeTuple(p.dst, src, t.dport, port, t.proto), Topology: conntrack.Masquerade}
		f.Account(conntrack.Original, t.flags, len(p.ip))
		if err := l.r.ct.Insert(f); err != nil {
			l.r.masqPorts.Put(src, port)
			l.bc.drop(DropLBTableFull)
			return
		}
		dir = conntrack.Original
	}
	l.forwardFlow(l.r.lb.Snapshot(), p, &f, dir)
}

// hostPortSource reports whether a packet came from the kernel through the host port.
func (l *loop) hostPortSource(src netip.Addr) bool {
	return l.in.host && (src == HostPortKernel.Addr() || src == HostPortKernel6.Addr())
}

// newMasqPorts makes the masquerade port pool of the router's own addresses (link-local
// ones aside).
func (r *Router) newMasqPorts() error {
	pp, err := nat.NewPortPool(masqPortLo, masqPortHi)
	if err != nil {
		return err
	}
	for _, rp := range r.ports() {
		for _, a := range rp.state().addrs {
			if !rp.host && !a.Addr().IsLinkLocalUnicast() {
				if err := pp.Add(a.Addr()); err != nil {
					return err
				}
			}
		}
	}
	r.masqPorts = pp
	return nil
}

// toHostPort hands a TCP or UDP packet for one of the router's own addresses that the
// router does not answer itself to the kernel behind the host port (a management login,
// say): a flow of the table rewrites its destination to the kernel's end and the answers
// back. It reports false when there is no host port.
func (l *loop) toHostPort(p *pkt, t l4) bool {
	hp := l.r.hostPort
	if hp == nil {
		return false
	}
	kernel := HostPortKernel.Addr()
	if p.v6 {
		kernel = HostPortKernel6.Addr()
	}
	key := conntrack.MakeTuple(p.src, p.dst, t.sport, t.dport, t.proto)
	f := conntrack.Flow{Orig: key, Reply: conntrack.MakeTuple(kernel, p.src, t.dport, t.sport, t.proto),
		Topology: conntrack.HostPort}
	f.Account(conntrack.Original, t.flags, len(p.ip))
	if err := l.r.ct.Insert(f); err != nil {
		var dir conntrack.Direction
		var ok bool
		if f, dir, ok = l.r.ct.Lookup(key, t.flags, len(p.ip)); !ok || dir != conntrack.Original {
			l.bc.drop(DropLBTableFull)
			return true
		}
	}
	l.forwardFlow(l.r.lb.Snapshot(), p, &f, conntrack.Original)
	return true
}
