package router

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"ulb/conntrack"
	"ulb/router/fib"
	"ulb/router/header"
)

// Autonat and static NAT: the translations of connections that are not the balancer's.
//
// Autonat (a NAPT, RFC 3022 section 2.2) masquerades the connections that hosts of the
// configured inside networks (the real servers) open towards the outside: a packet whose
// source lies in one of From and whose route leaves by Out opens a flow whose source
// becomes the outside address and a port (ICMP echo: an identifier) from the router's
// masquerade pool, the one the host port's kernel connections use, so that their reply
// tuples never collide. The replies come back through the connection table.
//
// A static mapping (basic NAT, RFC 3022 section 2.1) binds a public address to a private
// one: inbound flows to the public address are DNATed to the private host, and the
// private host's own connections leaving by the mapping's port are SNATed to the public
// address (ports kept). A port mapping (a port forward) DNATs one protocol and port of
// the public address alone. The router answers ARP and NDP for the public addresses on
// the port whose network holds them, as it does for VIPs.
//
// What is implemented of the NAT behaviour RFCs, and what not (README, "autonat and
// static NAT"): TCP and UDP ports and ICMP echo identifiers are mapped
// endpoint-independently (RFC 4787 section 4.1 REQ-1, RFC 5382 section 4.1 REQ-1, and
// for ICMP query identifiers RFC 5508 section 3.1:
// an inside endpoint keeps its external port whatever the destination while any flow
// of it lives, natMap); filtering is address and port-dependent (RFC 4787 section 5,
// REQ-8: only a flow's own remote end gets in); TCP flows open on a SYN
// alone (RFC 5382 section 4.2); ICMP errors about translated flows are translated both
// ways (RFC 5508 section 4, REQ-4 and REQ-5); a balanced flow is never translated (the
// connection table finds it first), nor is traffic between the router's own networks.

// NATConfig is the router's autonat and static mappings.
type NATConfig struct {
	AutoNAT []AutoNAT
	Static  []StaticNAT
}

// AutoNAT masquerades the connections the hosts of From open through the port Out.
type AutoNAT struct {
	From []netip.Prefix
	Out  string
	// Address is the translated source; invalid: Out's own address of the packet's
	// family. An address that is not the router's own is answered for on Out.
	Address netip.Addr
}

// StaticNAT maps Public to Private. With Proto 0 it is a 1:1 mapping of the addresses
// (TCP, UDP and ICMP echo, both directions); with Proto TCP or UDP a port forward of
// PublicPort to PrivatePort, inbound alone.
type StaticNAT struct {
	Public, Private         netip.Addr
	PublicPort, PrivatePort uint16
	Proto                   uint8
	// Out is the port the public address lives on: its ARP and NDP answers, and the
	// egress of the private host's translated connections. Empty: the port whose
	// connected network holds Public.
	Out string
}

// NATStats counts the flows the translations opened, by kind.
type NATStats struct {
	AutoNAT, SNAT, DNAT uint64
}

// natState is the published form of a NATConfig.
type natState struct {
	auto   []autoNAT
	static []staticNAT
	dnat   map[natKey]int     // public address, protocol and port (0, 0: 1:1) → static
	snat   map[netip.Addr]int // private address of a 1:1 mapping → static
}

type autoNAT struct {
	from []netip.Prefix
	out  int
	addr netip.Addr
}

type staticNAT struct {
	StaticNAT
	out int
}

type natKey struct {
	addr  netip.Addr
	proto uint8
	port  uint16
}

// natMap holds autonat's endpoint-independent mappings (RFC 4787 section 4.1, REQ-1;
// RFC 5382 section 4.1, REQ-1; for echo identifiers RFC 5508 section 3.1): an inside host's address,
// port (echo: identifier) and protocol get one external port on an outside address,
// counted by the flows that use it, and given back to the pool with the last of them.
// Only new flows and their ends come here; the keys hold no pointer.
type natMap struct {
	mu sync.Mutex
	m  map[natMapKey]natMapping
}

type natMapKey struct {
	inside, outside [16]byte
	port            uint16
	proto           uint8
}

type natMapping struct {
	port uint16
	refs uint32
}

func natMapKeyOf(inside netip.Addr, port uint16, proto uint8, outside netip.Addr) natMapKey {
	return natMapKey{inside: inside.As16(), outside: outside.As16(), port: port, proto: proto}
}

// get returns the external port of an inside endpoint, taking one from the pool for
// its first flow; false when the pool has none.
func (nm *natMap) get(r *Router, k natMapKey) (uint16, bool) {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	if e, ok := nm.m[k]; ok {
		e.refs++
		nm.m[k] = e
		return e.port, true
	}
	p, ok := r.masqPorts.Get(netip.AddrFrom16(k.outside).Unmap())
	if !ok {
		return 0, false
	}
	if nm.m == nil {
		nm.m = map[natMapKey]natMapping{}
	}
	nm.m[k] = natMapping{port: p, refs: 1}
	return p, true
}

// put ends one flow's use of a mapping; the last one gives the port back.
func (nm *natMap) put(r *Router, k natMapKey) {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	e, ok := nm.m[k]
	if !ok {
		return
	}
	if e.refs--; e.refs > 0 {
		nm.m[k] = e
		return
	}
	delete(nm.m, k)
	r.masqPorts.Put(netip.AddrFrom16(k.outside).Unmap(), e.port)
}

// natCounters are the router's NAT counters.
type natCounters struct {
	auto, snat, dnat atomic.Uint64
}

// ErrNAT is wrapped by SetNAT's refusals.
var ErrNAT = errors.New("nat")

// SetNAT installs the autonat and static mappings; the flows already translated go on.
// The public addresses and the autonat addresses that are not the router's own become
// its virtual addresses (ARP, NDP).
func (r *Router) SetNAT(cfg NATConfig) error {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	tab := r.tab.Load()
	ns := &natState{dnat: map[natKey]int{}, snat: map[netip.Addr]int{}}
	addrs := map[netip.Addr]bool{}
	var pool []netip.Addr
	for _, a := range cfg.AutoNAT {
		i, ok := tab.byName[a.Out]
		if !ok || tab.ports[i].host {
			return fmt.Errorf("%w: %w: autonat: no port %q", ErrConfig, ErrNAT, a.Out)
		}
		if len(a.From) == 0 {
			return fmt.Errorf("%w: %w: autonat through %q: no inside network", ErrConfig, ErrNAT, a.Out)
		}
		ns.auto = append(ns.auto, autoNAT{from: append([]netip.Prefix(nil), a.From...), out: i, addr: a.Address})
		if a.Address.IsValid() {
			pool = append(pool, a.Address)
			if !r.ownAddr(a.Address) {
				addrs[a.Address] = true
			}
		} else {
			st := tab.ports[i].state()
			for _, s := range []netip.Addr{st.src4, st.src6} {
				if s.IsValid() && !s.IsLinkLocalUnicast() {
					pool = append(pool, s)
				}
			}
		}
	}
	for _, s := range cfg.Static {
		if !s.Public.IsValid() || !s.Private.IsValid() || s.Public.Is4() != s.Private.Is4() {
			return fmt.Errorf("%w: %w: static mapping %s to %s: addresses of one family needed", ErrConfig, ErrNAT, s.Public, s.Private)
		}
		out, ok := -1, false
		if s.Out != "" {
			out, ok = tab.byName[s.Out]
		} else {
			out, ok = r.connectedPort(s.Public)
		}
		if !ok {
			return fmt.Errorf("%w: %w: static mapping of %s: no port for it", ErrConfig, ErrNAT, s.Public)
		}
		k := natKey{addr: s.Public, proto: s.Proto, port: s.PublicPort}
		if s.Proto == 0 {
			k.port = 0
		}
		if _, dup := ns.dnat[k]; dup {
			return fmt.Errorf("%w: %w: static mapping of %s given twice", ErrConfig, ErrNAT, s.Public)
		}
		ns.dnat[k] = len(ns.static)
		if s.Proto == 0 {
			if _, dup := ns.snat[s.Private]; dup {
				return fmt.Errorf("%w: %w: %s is the private address of two 1:1 mappings", ErrConfig, ErrNAT, s.Private)
			}
			ns.snat[s.Private] = len(ns.static)
		}
		ns.static = append(ns.static, staticNAT{StaticNAT: s, out: out})
		if !r.ownAddr(s.Public) {
			addrs[s.Public] = true
		}
	}
	if err := r.masqPorts.Add(pool...); err != nil {
		return fmt.Errorf("%w: %w: autonat addresses: %v", ErrConfig, ErrNAT, err)
	}
	old := r.natAddrs
	r.natAddrs = addrs
	if err := r.publishVirtual(r.ruleVirtual()); err != nil {
		r.natAddrs = old
		return err
	}
	if len(ns.auto) == 0 && len(ns.static) == 0 {
		ns = nil
	} else {
		r.natEver.Store(true)
		r.tracking.Store(true)
	}
	r.nat.Store(ns)
	return nil
}

// NATStats returns the counts of flows the translations opened.
func (r *Router) NATStats() NATStats {
	return NATStats{AutoNAT: r.natCount.auto.Load(), SNAT: r.natCount.snat.Load(), DNAT: r.natCount.dnat.Load()}
}

// ownAddr reports whether a is an address of one of the router's ports.
func (r *Router) ownAddr(a netip.Addr) bool {
	for _, rp := range r.ports() {
		for _, p := range rp.state().addrs {
			if p.Addr() == a {
				return true
			}
		}
	}
	return false
}

// natOpens reports whether a packet may open a translated flow: for TCP a SYN alone
// (RFC 5382 section 4.2: a connection, and the NAT's session, starts with its SYN; a
// simultaneous open's SYN from the outside matches the flow's reply tuple); UDP and ICMP
// echo requests always.
func natOpens(t l4) bool {
	return t.proto != header.ProtocolTCP || t.flags&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST) == header.TCPFlagSYN
}

// natFlow opens the flow of the first packet of a connection a static mapping or
// autonat translates (TCP, UDP, ICMP echo request; for echo both ports of t are the
// identifier) and forwards the packet. It reports false when no translation applies:
// the caller then goes on as for any packet.
func (l *loop) natFlow(p *pkt, t l4, key conntrack.Tuple) bool {
	ns := l.r.nat.Load()
	if ns == nil {
		return false
	}
	echo := t.proto == header.ProtocolICMPv4 || t.proto == header.ProtocolICMPv6
	f := conntrack.Flow{Orig: key}
	var pooled netip.Addr
	var pport uint16
	if i, ok := ns.inbound(p.dst, t.proto, t.dport); ok {
		// RFC 3022 section 2.1 (basic NAT) and 2.2 (NAPT's port mapping): a session to
		// the public address (and port) is translated to the private host.
		s := &ns.static[i]
		dport := t.dport
		if s.Proto != 0 {
			dport = s.PrivatePort
		}
		f.Reply = conntrack.MakeTuple(s.Private, p.src, dport, t.sport, t.proto)
		f.Topology = conntrack.DNAT
	} else {
		nh, ok := l.r.fib.Load().Lookup(p.dst)
		if !ok || nh.Kind == fib.Local {
			return false
		}
		if i, ok := ns.snat[p.src]; ok && ns.static[i].out == nh.Port {
			// RFC 3022 section 2.1: the private host's own sessions leave with its
			// public address, its ports kept.
			f.Reply = conntrack.MakeTuple(p.dst, ns.static[i].Public, t.dport, t.sport, t.proto)
			f.Topology = conntrack.SNAT
		} else if a := ns.autoFor(p.src, nh.Port); a != nil {
			// RFC 3022 section 2.2 (NAPT): the source becomes the outside address and a
			// port of the pool; ICMP echo's identifier is translated as a port is
			// (RFC 5508 section 3.1).
			if !natOpens(t) {
				l.bc.drop(DropNATNoFlow)
				return true
			}
			pooled = a.addr
			if !pooled.IsValid() {
				st := l.r.ports()[a.out].state()
				if pooled = st.src4; p.v6 {
					pooled = st.src6
				}
			}
			if !pooled.IsValid() || pooled.IsLinkLocalUnicast() || pooled.Is4() != p.src.Is4() {
				l.bc.drop(DropNATNoPort)
				return true
			}
			var got bool
			if pport, got = l.r.natMap.get(l.r, natMapKeyOf(p.src, t.sport, t.proto, pooled)); !got {
				l.bc.drop(DropNATNoPort)
				return true
			}
			dport := t.dport
			if echo {
				dport = pport
			}
			f.Reply = conntrack.MakeTuple(p.dst, pooled, dport, pport, t.proto)
			f.Topology = conntrack.AutoNAT
		} else {
			return false
		}
	}
	if !natOpens(t) {
		// A segment of a connection the table does not hold (it expired, or ulbd
		// restarted): not translated, and never let out with its private address.
		l.bc.drop(DropNATNoFlow)
		return true
	}
	f.Account(conntrack.Original, t.flags, len(p.ip))
	if err := l.r.ct.Insert(f); err != nil {
		if pooled.IsValid() {
			l.r.natMap.put(l.r, natMapKeyOf(p.src, t.sport, t.proto, pooled))
		}
		if !errors.Is(err, conntrack.ErrExists) {
			l.bc.drop(DropLBTableFull)
			return true
		}
		// Another receive loop entered the same flow a moment ago, or its reply tuple
		// belongs to another flow.
		var dir conntrack.Direction
		var ok bool
		if f, dir, ok = l.r.ct.Lookup(key, t.flags, len(p.ip)); !ok || dir != conntrack.Original {
			l.bc.drop(DropLBTupleInUse)
			return true
		}
	} else {
		switch f.Topology {
		case conntrack.AutoNAT:
			l.r.natCount.auto.Add(1)
		case conntrack.SNAT:
			l.r.natCount.snat.Add(1)
		case conntrack.DNAT:
			l.r.natCount.dnat.Add(1)
		}
	}
	l.forwardFlow(l.r.lb.Snapshot(), p, &f, conntrack.Original)
	return true
}

// inbound finds the static mapping of a packet's destination: a port forward of its
// protocol and port first, then a 1:1 mapping of the address.
func (ns *natState) inbound(dst netip.Addr, proto uint8, port uint16) (int, bool) {
	if len(ns.dnat) == 0 {
		return 0, false
	}
	if proto == header.ProtocolTCP || proto == header.ProtocolUDP {
		if i, ok := ns.dnat[natKey{addr: dst, proto: proto, port: port}]; ok {
			return i, true
		}
	}
	i, ok := ns.dnat[natKey{addr: dst}]
	return i, ok
}

// autoFor returns the autonat of a source leaving by port out, or nil.
func (ns *natState) autoFor(src netip.Addr, out int) *autoNAT {
	for i := range ns.auto {
		a := &ns.auto[i]
		if a.out != out {
			continue
		}
		for _, p := range a.from {
			if p.Contains(src) {
				return a
			}
		}
	}
	return nil
}

// natEcho runs an ICMP or ICMPv6 echo request or reply through the translations: a reply
// or request of a translated echo flow, or the request that opens one. It reports false
// when the message is none of theirs.
func (l *loop) natEcho(p *pkt, proto uint8, msg []byte) bool {
	if !l.r.natEver.Load() || p.frag || len(msg) < header.ICMPv4MinimumSize {
		return false
	}
	var request bool
	switch msg[0] {
	case header.ICMPv4Echo, header.ICMPv6EchoRequest:
		request = (msg[0] == header.ICMPv4Echo) == (proto == header.ProtocolICMPv4)
		if !request {
			return false
		}
	case header.ICMPv4EchoReply, header.ICMPv6EchoReply:
		if (msg[0] == header.ICMPv4EchoReply) != (proto == header.ProtocolICMPv4) {
			return false
		}
	default:
		return false
	}
	id := header.ICMPv4(msg).Ident()
	key := conntrack.MakeTuple(p.src, p.dst, id, id, proto)
	if f, dir, ok := l.r.ct.Get(key); ok {
		// The request goes the flow's way, the reply comes back.
		if f.Topology < conntrack.AutoNAT || request != (dir == conntrack.Original) {
			return false
		}
		if f, dir, ok = l.r.ct.Lookup(key, 0, len(p.ip)); ok {
			l.forwardFlow(l.r.lb.Snapshot(), p, &f, dir)
		}
		return true
	}
	if !request {
		return false
	}
	return l.natFlow(p, l4{proto: proto, sport: id, dport: id}, key)
}
