package router

import (
	"errors"
	"net/netip"

	"ulb/balancer"
	"ulb/conntrack"
	"ulb/nat"
	"ulb/router/fib"
	"ulb/router/header"
)

// l4 are the transport fields the balancer keys a packet on.
type l4 struct {
	proto        uint8
	sport, dport uint16
	flags        uint8 // TCP flags
}

// sorryServer is the server ID of flows sent to a rule's sorry server (the balancer's
// IDs start at 1).
const sorryServer = 0

// readL4 reads the ports of a TCP or UDP header; ok is false for other protocols or a
// header cut short.
func readL4(proto uint8, b []byte) (l l4, ok bool) {
	l.proto = proto
	switch proto {
	case header.ProtocolTCP:
		t := header.TCP(b)
		if !t.IsValid() {
			return l, false
		}
		l.sport, l.dport, l.flags = t.SourcePort(), t.DestinationPort(), t.Flags()
	case header.ProtocolUDP:
		u := header.UDP(b)
		if !u.IsValid() {
			return l, false
		}
		l.sport, l.dport = u.SourcePort(), u.DestinationPort()
	default:
		return l, false
	}
	return l, true
}

// pkt is an IP packet of either family the balancer works on, in buf[headroom+ethLen:].
type pkt struct {
	buf      []byte
	ip       []byte
	v6       bool
	src, dst netip.Addr
	// A fragment (not an IPv6 atomic one): its identification, the protocol of the
	// datagram (IPv6: the fragment header's Next Header), and whether it is the first.
	frag, fragFirst bool
	fragProto       uint8
	fragID          uint32
}

func (p *pkt) ttl() uint8 {
	if p.v6 {
		return header.IPv6(p.ip).HopLimit()
	}
	return header.IPv4(p.ip).TTL()
}

func (p *pkt) decTTL() {
	if p.v6 {
		header.IPv6(p.ip).DecHopLimit()
	} else {
		header.IPv4(p.ip).DecTTL()
	}
}

// balance runs a TCP or UDP packet through the connection table and the rules. It
// reports false when the packet is none of the balancer's business (no flow, no rule):
// the caller then routes or delivers it as usual.
func (l *loop) balance(p *pkt, t l4) bool {
	if p.v6 {
		ip := header.IPv6(p.ip)
		if _, off, ok := ip.TransportProtocol(); !ok || (off != header.IPv6MinimumSize &&
			(off != header.IPv6MinimumSize+header.IPv6FragmentSize || ip.NextHeader() != header.ProtocolFragment)) {
			// Extension headers in front of the transport, other than a lone fragment
			// header (a first or an atomic fragment): not balanced.
			return false
		}
	} else if header.IPv4(p.ip).IsFragment() && !p.fragFirst {
		return false
	}
	key := conntrack.MakeTuple(p.src, p.dst, t.sport, t.dport, t.proto)
	if t.proto == header.ProtocolTCP && t.flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN {
		l.reuse(key)
	}
	f, dir, ok := l.r.ct.Lookup(key, t.flags, len(p.ip))
	snap := l.r.lb.Snapshot()
	if !ok {
		rule, ok := snap.Match(t.proto, p.dst, t.dport)
		if !ok {
			// Not the balancer's: autonat or a static mapping may translate it.
			return l.natFlow(p, t, key)
		}
		if t.proto == header.ProtocolTCP && !rule.Topology().Direct() &&
			l.r.cookiesFor(t.flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN) && l.synCookie(snap, rule, p, t, key) {
			return true
		}
		if t.proto == header.ProtocolTCP && t.flags&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST) != header.TCPFlagSYN {
			// Only a SYN opens a flow. Anything else for the VIP without one belongs to a
			// connection the table no longer has (its server went down, ulbd restarted):
			// a RST ends it at the client at once.
			snap.CountDrop(rule.ID(), 0)
			l.bc.drop(DropLBNoFlow)
			l.refuse(p, t)
			return true
		}
		if !l.newFlowWork() {
			return true
		}
		if lim := l.r.srcLimit.Load(); lim != nil && !lim.Allow(p.src) {
			// The client's prefix has opened its share of new flows: shed silently (a
			// real client retransmits its SYN), before any other work for it.
			snap.CountDrop(rule.ID(), 0)
			l.bc.drop(DropLBSourceLimit)
			return true
		}
		if f, ok = l.newFlow(snap, rule, p, t, key, conntrack.Adjust{}); !ok {
			return true
		}
		dir = conntrack.Original
		l.syncFlow(snap, &f)
	} else {
		if f.Adjust.Flags&conntrack.AdjustPending != 0 {
			l.proxyPending(snap, p, t, &f, dir)
			return true
		}
		l.syncAfter(snap, &f, t.flags)
	}
	l.forwardFlow(snap, p, &f, dir)
	return true
}

// reuse ends the flow a client's new SYN would otherwise restart: a client that reuses
// its port after the connection closed (TIME_WAIT, CLOSE) gets a fresh pick, as IPVS's
// conn_reuse_mode does, instead of landing on the old server's TIME_WAIT socket.
func (l *loop) reuse(key conntrack.Tuple) {
	f, dir, ok := l.r.ct.Get(key)
	if !ok || dir != conntrack.Original {
		return
	}
	switch f.State {
	case conntrack.StateTimeWait, conntrack.StateClose:
		l.r.ct.Delete(key)
	}
}

// newFlow picks a server for the first packet of a flow and enters the flow in the
// connection table.
func (l *loop) newFlow(snap *balancer.Snapshot, rule *balancer.Rule, p *pkt, t l4, key conntrack.Tuple, adj conntrack.Adjust) (conntrack.Flow, bool) {
	pick, ok := rule.Pick(p.src, t.sport, t.dport)
	if !ok {
		sorry := l.r.ruleOptions(rule.Name()).SorryServer
		if !sorry.IsValid() || rule.Topology().Direct() {
			if pick.Overloaded {
				l.bc.drop(DropLBOverloaded)
			} else {
				l.bc.drop(DropLBNoServer)
			}
			l.refuse(p, t)
			return conntrack.Flow{}, false
		}
		// Every server is down: the sorry server takes the flow (half-NAT).
		pick = balancer.Pick{Server: sorryServer, Addr: sorry.Addr(), Port: sorry.Port()}
		if pick.Port == 0 {
			pick.Port = t.dport
		}
		f := conntrack.Flow{Orig: key, Rule: rule.ID(), Server: sorryServer, Topology: conntrack.HalfNAT,
			Reply: conntrack.MakeTuple(pick.Addr, p.src, pick.Port, t.sport, t.proto), Adjust: adj}
		f.Account(conntrack.Original, t.flags, len(p.ip))
		err := l.r.ct.Insert(f)
		if errors.Is(err, conntrack.ErrExists) && l.reuseReply(f.Reply) {
			err = l.r.ct.Insert(f)
		}
		switch {
		case err == nil:
			return f, true
		case errors.Is(err, conntrack.ErrExists):
			l.bc.drop(DropLBTupleInUse)
		default:
			l.bc.drop(DropLBTableFull)
		}
		return conntrack.Flow{}, false
	}
	f := conntrack.Flow{Orig: key, Rule: rule.ID(), Server: pick.Server, Topology: rule.Topology(), Adjust: adj}
	var proxy netip.Addr
	var pport uint16
	switch rule.Topology() {
	case balancer.HalfNAT:
		f.Reply = conntrack.MakeTuple(pick.Addr, p.src, pick.Port, t.sport, t.proto)
	case balancer.FullNAT:
		pools := l.r.proxyPools(rule)
		if pools != nil {
			proxy, pport, ok = pools.GetFor(p.src)
		}
		if pools == nil || !ok {
			l.r.lb.FlowEnded(rule.ID(), pick.Server, p.src, t.sport, t.dport)
			snap.CountDrop(rule.ID(), pick.Server)
			l.bc.drop(DropLBNoProxyPort)
			return conntrack.Flow{}, false
		}
		f.Reply = conntrack.MakeTuple(pick.Addr, proxy, pick.Port, pport, t.proto)
	case balancer.DSR, balancer.Tunnel:
		// The server answers the client directly: no reply tuple to watch.
	}
	f.Account(conntrack.Original, t.flags, len(p.ip))
	err := l.r.ct.Insert(f)
	if errors.Is(err, conntrack.ErrExists) && l.reuseReply(f.Reply) {
		err = l.r.ct.Insert(f)
	}
	if err == nil {
		return f, true
	}
	// Give the pick back before anything else.
	l.r.lb.FlowEnded(rule.ID(), pick.Server, p.src, t.sport, t.dport)
	if proxy.IsValid() {
		l.r.proxyPorts.Put(proxy, pport)
	}
	if errors.Is(err, conntrack.ErrExists) {
		// Another receive loop entered the same flow a moment ago.
		if f, dir, ok := l.r.ct.Lookup(key, t.flags, len(p.ip)); ok && dir == conntrack.Original {
			return f, true
		}
		snap.CountDrop(rule.ID(), pick.Server)
		l.bc.drop(DropLBTupleInUse)
		return conntrack.Flow{}, false
	}
	snap.CountDrop(rule.ID(), pick.Server)
	l.bc.drop(DropLBTableFull)
	return conntrack.Flow{}, false
}

// reuseReply frees the reply tuple of a new flow when an ended flow still holds it: the
// same client address and port reached the same server port through another rule or VIP
// (half-NAT keeps the client's address and port), so that the server sees the very
// connection again. The server's TIME_WAIT socket takes the new SYN, as Linux does for a
// SYN with a newer timestamp; a flow that is still open keeps the tuple, and the new one
// is refused (lb-tuple-in-use).
func (l *loop) reuseReply(tu conntrack.Tuple) bool {
	if tu.IsZero() {
		return false
	}
	f, dir, ok := l.r.ct.Get(tu)
	if !ok || dir != conntrack.Reply {
		return false
	}
	switch f.State {
	case conntrack.StateTimeWait, conntrack.StateClose:
		return l.r.ct.Delete(tu)
	}
	return false
}

// forwardFlow rewrites a packet of a balanced flow (or of the host port's) as its
// direction says and sends it on: client to server (Original) or server to client
// (Reply).
func (l *loop) forwardFlow(snap *balancer.Snapshot, p *pkt, f *conntrack.Flow, dir conntrack.Direction) {
	rw := rewrite{snap: snap, rule: f.Rule, server: f.Server, reply: dir == conntrack.Reply}
	if f.Adjust.Flags&conntrack.AdjustOn != 0 {
		rw.adjust = seqAdjust(f.Adjust)
	}
	var to netip.Addr
	switch {
	case dir == conntrack.Reply:
		rw.nat = nat.Rewrite{Src: f.Orig.Dst(), Dst: f.Orig.Src(), SrcPort: f.Orig.DstPort, DstPort: f.Orig.SrcPort}
		to = rw.nat.Dst
	case f.Topology.Direct():
		srv, ok := snap.ServerAddr(f.Server)
		if !ok {
			l.bc.drop(DropLBNoServer)
			return
		}
		to = srv // the frame goes to the server unchanged (tunnel: inside an outer header)
		if f.Topology == conntrack.Tunnel {
			rw.tunnel = true
			if rule, ok := snap.Rule(f.Rule); ok {
				rw.tunnelSrc = rule.TunnelSource()
			}
		}
	default:
		rw.nat = nat.Rewrite{Src: f.Reply.Dst(), Dst: f.Reply.Src(), SrcPort: f.Reply.DstPort, DstPort: f.Reply.SrcPort}
		to = rw.nat.Dst
	}
	if nh, ok := l.flowHop(to); ok {
		if p.fragFirst {
			l.recordFragment(p, &rw, to)
		}
		l.forward(p, nh, to, &rw)
	}
}

// flowHop is the next hop towards a for a packet the router forwards on a flow's behalf;
// false, counted, when there is none or a is the router's own.
func (l *loop) flowHop(a netip.Addr) (fib.NextHop, bool) {
	nh, ok := l.r.fib.Load().Lookup(a)
	if !ok || nh.Kind == fib.Local {
		l.bc.drop(DropNoRoute)
		return nh, false
	}
	return nh, true
}

// icmpErrorNAT translates an ICMP or ICMPv6 error about a balanced flow (a router on the
// path saying fragmentation needed, unreachable, time exceeded) so that it reaches the
// flow's other end quoting the packet as that end sent it. It reports false when the
// error is about no flow of the table.
func (l *loop) icmpErrorNAT(p *pkt) bool {
	inner, ok := nat.ErrorInner(p.ip)
	if !ok {
		return false
	}
	q, ok := nat.Parse(inner)
	if !ok {
		return false
	}
	// The quoted packet went out after translation; its reverse is the tuple the error's
	// direction of the flow carries.
	key := conntrack.MakeTuple(q.Dst, q.Src, q.DstPort, q.SrcPort, q.Proto)
	f, dir, ok := l.r.ct.Get(key)
	if !ok || f.Topology.Direct() {
		return false
	}
	// rw is the rewrite of packets travelling the error's way: it gives the outer
	// destination and the quoted packet's endpoints as the receiver knows them.
	var rw nat.Rewrite
	if dir == conntrack.Original {
		rw = nat.Rewrite{Src: f.Reply.Dst(), Dst: f.Reply.Src(), SrcPort: f.Reply.DstPort, DstPort: f.Reply.SrcPort}
	} else {
		rw = nat.Rewrite{Src: f.Orig.Dst(), Dst: f.Orig.Src(), SrcPort: f.Orig.DstPort, DstPort: f.Orig.SrcPort}
	}
	// Towards the client the error comes from the VIP, as IPVS does it (the hop behind
	// the balancer stays hidden); towards the server only the destination changes.
	tr := rewrite{nat: nat.Rewrite{Dst: rw.Dst}, quoted: rw.Reversed(), icmpError: true}
	switch {
	case f.Topology.Outbound() || f.Topology == conntrack.DNAT:
		// RFC 5508 section 4: an error from the outside keeps its source, its
		// destination becomes the private host's (REQ-4); one from the inside gets the
		// public address of the mapping or the router's own as its source (REQ-5).
		if (dir == conntrack.Original) == f.Topology.Outbound() {
			tr.nat.Src = rw.Src
		}
	case dir == conntrack.Reply:
		tr.nat.Src = rw.Src
	}
	if nh, ok := l.flowHop(rw.Dst); ok {
		l.forward(p, nh, rw.Dst, &tr)
	}
	return true
}

// refuse answers the first packet of a flow no server can take: a RST for TCP, ICMP port
// unreachable for UDP, so that the client learns at once instead of timing out.
func (l *loop) refuse(p *pkt, t l4) {
	if t.proto == header.ProtocolTCP {
		var seg header.TCP
		if p.v6 {
			_, off, _ := header.IPv6(p.ip).TransportProtocol()
			seg = header.TCP(p.ip[off:])
		} else {
			seg = header.TCP(header.IPv4(p.ip).Payload())
		}
		l.tcpReset(p.src, p.dst, seg, len(seg.Payload()))
		return
	}
	if p.v6 {
		l.icmp6Error(p.ip, header.ICMPv6DstUnreachable, header.ICMPv6PortUnreachable, 0)
	} else {
		l.icmp4Error(p.ip, header.ICMPv4DstUnreachable, header.ICMPv4PortUnreachable, 0)
	}
}
