package router

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"ulb/balancer"
	"ulb/balancer/srclimit"
	"ulb/balancer/synproxy"
	"ulb/conntrack"
	"ulb/nat"
	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
)

// The SYN proxy (Config.SYNProxy): the router answers the SYNs to a half-NAT or full-NAT
// rule's VIP itself, with a SYN cookie (balancer/synproxy), and keeps no state for them.
// Only an ACK that carries a valid cookie makes a flow: the balancer picks a server, the
// router opens the connection to it with the client's initial sequence number and
// options (loop.synCookie), and on the server's SYN-ACK (loop.proxyPending) records how
// the server's sequence numbers, timestamps and window scale differ from what the client
// was told (conntrack.Adjust), acknowledges the server and opens the client's window.
// From then on every segment of the flow is translated (nat.AdjustToClient, AdjustToServer)
// beside its NAT rewrite.
//
// The cookie's SYN-ACK announces a zero window, so that the client sends no data before
// the server's handshake is done (as the kernel's SYNPROXY does): nothing has to be held.
// DSR rules are not proxied: the server's answers do not come back through the router,
// so there would be no way to translate them.

// SYNProxyConfig turns the SYN proxy on.
type SYNProxyConfig struct {
	// Enabled answers every SYN to a half-NAT or full-NAT TCP rule with a cookie; with
	// Auto, only while the SYNs to them come faster than Threshold per second (on at
	// once, off after 10 seconds below half of it), as the kernel resorts to cookies
	// when its SYN queue overflows.
	Enabled   bool
	Auto      bool
	Threshold int
	// WScale is the window scale shift (0-14) the router announces to clients that
	// offer window scaling (config's default: DefaultProxyWScale). Servers with the same
	// shift need no window translation; others get their windows shifted, which rounds
	// them down.
	WScale int
	// Secret keys the cookies; zero: a random one. Nodes that share one accept each
	// other's cookies.
	Secret [16]byte
}

// DefaultProxyWScale is Linux's window scale for its default receive buffers.
const DefaultProxyWScale = 7

// proxyMSS is the MSS the router announces in its cookie SYN-ACKs: the server's MSS is
// not known yet, and the client's segments must fit the links behind the router; the
// largest MSS of a 1500-byte link, by family.
func proxyMSS(v6 bool) uint16 {
	if v6 {
		return 1440
	}
	return 1460
}

// SYNProxyStats count the SYN proxy's work.
type SYNProxyStats struct {
	// Active says the cookies answer SYNs now (always, or Auto's switch); Activations
	// counts Auto's switching on.
	Auto           bool
	Active         bool
	Activations    uint64
	CookiesSent    uint64 // SYN-ACKs with a cookie
	CookiesValid   uint64 // ACKs whose cookie made a flow
	CookiesInvalid uint64 // ACKs to a VIP without a flow or a valid cookie
	Established    uint64 // server handshakes completed
	ServerRefused  uint64 // server handshakes answered with a RST
}

type proxyCounters struct {
	sent, valid, invalid, established, refused atomic.Uint64
	activations                                atomic.Uint64
}

// Modes of the SYN proxy (proxyState.mode).
const (
	proxyOff int32 = iota
	proxyAuto
	proxyAlways
)

// proxyState is the SYN proxy's mode and automatic switch (SYNProxyConfig.Auto).
type proxyState struct {
	mode      atomic.Int32
	threshold atomic.Uint64
	wscale    atomic.Int32 // SYNProxyConfig.WScale
	on        atomic.Bool
	lastOn    atomic.Int64  // Unix ns when it was last on: its cookies' ACKs are checked for 2 periods more
	syns      atomic.Uint64 // SYNs to proxied rules
	// Guarded by the Run loop alone.
	lastCount uint64
	lastAt    time.Time
	calmSince time.Time // when the rate fell below half the threshold, zero while above
}

// proxyCalm is how long SYNs must stay below half the threshold before Auto turns the
// cookies off.
const proxyCalm = 10 * time.Second

// SetDefence sets the SYN proxy's mode, the per-source new-flow limit and the
// new-flow budget of a batch, at start and on a reload. The cookies' secret stays: ACKs
// for the cookies sent before are accepted for two cookie periods after the proxy is
// turned off. A changed source limit starts with full allowances.
func (r *Router) SetDefence(sp SYNProxyConfig, lim srclimit.Config, budget int) error {
	mode := proxyOff
	if sp.Enabled {
		if sp.WScale < 0 || sp.WScale > synproxy.MaxWScale {
			return fmt.Errorf("%w: SYN proxy window scale %d is not 0-%d", ErrConfig, sp.WScale, synproxy.MaxWScale)
		}
		mode = proxyAlways
		if sp.Auto {
			if sp.Threshold < 1 {
				return fmt.Errorf("%w: SYN proxy threshold %d is not positive", ErrConfig, sp.Threshold)
			}
			mode = proxyAuto
		}
	}
	var limiter *srclimit.Limiter
	if lim.Rate != 0 {
		l, err := srclimit.New(lim)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		limiter = l
	}
	r.defenceMu.Lock()
	defer r.defenceMu.Unlock()
	if old := r.proxy.mode.Load(); old != proxyOff && mode == proxyOff {
		r.proxy.lastOn.Store(r.now().UnixNano())
	}
	r.proxy.wscale.Store(int32(sp.WScale))
	r.proxy.threshold.Store(uint64(max(sp.Threshold, 0)))
	r.proxy.mode.Store(mode)
	if old := r.srcLimitCfg; lim.Rate != old.Rate || lim.Burst != old.Burst || lim.Bits4 != old.Bits4 ||
		lim.Bits6 != old.Bits6 || lim.Buckets != old.Buckets {
		r.srcLimit.Store(limiter)
		r.srcLimitCfg = lim
	}
	r.newFlowBudget.Store(int32(max(budget, 0)))
	return nil
}

// proxyTick measures the SYN rate once a second and switches the cookies (Auto); with
// the cookies always on it notes that they are.
func (r *Router) proxyTick(now time.Time) {
	ps := &r.proxy
	switch ps.mode.Load() {
	case proxyAlways:
		ps.lastOn.Store(now.UnixNano())
		return
	case proxyOff:
		return
	}
	threshold := ps.threshold.Load()
	if ps.lastAt.IsZero() {
		ps.lastAt, ps.lastCount = now, ps.syns.Load()
		return
	}
	el := now.Sub(ps.lastAt)
	if el < time.Second {
		return
	}
	n := ps.syns.Load()
	rate := uint64(float64(n-ps.lastCount) / el.Seconds())
	ps.lastAt, ps.lastCount = now, n
	switch on := ps.on.Load(); {
	case rate >= threshold && !on:
		ps.on.Store(true)
		ps.calmSince = time.Time{}
		r.proxyCount.activations.Add(1)
		r.log.Warn("SYN cookies on", "syns_per_second", rate, "threshold", threshold)
	case on && rate < threshold/2:
		if ps.calmSince.IsZero() {
			ps.calmSince = now
		} else if now.Sub(ps.calmSince) >= proxyCalm {
			ps.on.Store(false)
			r.log.Info("SYN cookies off", "syns_per_second", rate)
		}
	case on:
		ps.calmSince = time.Time{}
	}
	if ps.on.Load() {
		ps.lastOn.Store(now.UnixNano())
	}
}

// cookiesFor says whether a segment to a proxied rule goes to the SYN proxy: SYNs while
// it is on, other segments while its cookies may still come back.
func (r *Router) cookiesFor(syn bool) bool {
	ps := &r.proxy
	switch ps.mode.Load() {
	case proxyAlways:
		return true
	case proxyAuto:
		if syn {
			ps.syns.Add(1)
		}
		if ps.on.Load() {
			return true
		}
	}
	last := ps.lastOn.Load()
	return !syn && last != 0 && r.now().UnixNano()-last < int64(2*synproxy.Period)
}

// SYNProxyStats returns the SYN proxy's counters, and false when it is off.
func (r *Router) SYNProxyStats() (SYNProxyStats, bool) {
	mode := r.proxy.mode.Load()
	if mode == proxyOff {
		return SYNProxyStats{}, false
	}
	c := &r.proxyCount
	return SYNProxyStats{Auto: mode == proxyAuto, Active: mode == proxyAlways || r.proxy.on.Load(), Activations: c.activations.Load(),
		CookiesSent: c.sent.Load(), CookiesValid: c.valid.Load(), CookiesInvalid: c.invalid.Load(),
		Established: c.established.Load(), ServerRefused: c.refused.Load()}, true
}

// tcpOf is the TCP header of a packet the balancer took.
func (p *pkt) tcpOf() header.TCP {
	if p.v6 {
		_, off, _ := header.IPv6(p.ip).TransportProtocol()
		return header.TCP(p.ip[off:])
	}
	return header.TCP(header.IPv4(p.ip).Payload())
}

// synCookie handles a TCP segment to rule's VIP for which there is no flow: a SYN is
// answered with a cookie, an ACK with a valid cookie opens the flow and the connection
// to the server. It reports false for anything else (the caller refuses it).
func (l *loop) synCookie(snap *balancer.Snapshot, rule *balancer.Rule, p *pkt, t l4, key conntrack.Tuple) bool {
	seg := p.tcpOf()
	f := synproxy.Flow{Client: netip.AddrPortFrom(p.src, t.sport), VIP: netip.AddrPortFrom(p.dst, t.dport)}
	switch t.flags & (header.TCPFlagSYN | header.TCPFlagACK | header.TCPFlagRST | header.TCPFlagFIN) {
	case header.TCPFlagSYN:
		if l.l2mcast {
			return true // RFC 1122 §4.2.3.10: not to a broadcast or multicast SYN
		}
		if !p.src.IsLinkLocalUnicast() {
			// A SYN-ACK to a source without a route back would be dropped after the
			// cookie's work (a flood from spoofed sources): drop the SYN first.
			if nh, ok := l.r.fib.Load().Lookup(p.src); !ok || nh.Kind == fib.Local {
				l.bc.drop(DropNoRoute)
				return true
			}
		}
		if !l.newFlowWork() {
			return true
		}
		o := synproxy.ParseSYN(seg, p.v6)
		cookie, tsval := l.r.cookies.Make(f, seg.Seq(), o)
		if b := l.newScratch(); b != nil {
			n := synproxy.BuildSYNACK(b[headroom+ethLen:], f, seg.Seq(), o, cookie, tsval,
				synproxy.SYNACK{Window: 0, MSS: proxyMSS(p.v6), WScale: int(l.r.proxy.wscale.Load())})
			l.sendBuilt(b, n, p.src)
			l.r.proxyCount.sent.Add(1)
		}
		return true
	case header.TCPFlagACK:
	default:
		return false
	}
	tsval, tsecr, hasTS := synproxy.Timestamps(seg)
	o, ok := l.r.cookies.Check(f, seg.Seq(), seg.Ack(), hasTS, tsval, tsecr)
	if !ok {
		l.r.proxyCount.invalid.Add(1)
		return false
	}
	if !l.newFlowWork() {
		return true
	}
	if lim := l.r.srcLimit.Load(); lim != nil && !lim.Allow(p.src) {
		snap.CountDrop(rule.ID(), 0)
		l.bc.drop(DropLBSourceLimit)
		return true
	}
	l.r.proxyCount.valid.Add(1)
	adj := conntrack.Adjust{Flags: conntrack.AdjustPending, Seq: seg.Ack() - 1, Window: seg.Window()}
	if o.Timestamps {
		adj.Flags |= conntrack.AdjustTimestamps
		adj.TS, adj.TSClient = tsecr, tsval
		if o.WScaleOK {
			adj.Flags |= conntrack.AdjustWScale
		}
	}
	// The flow starts as the client's SYN would have started it.
	t.flags = header.TCPFlagSYN
	fl, ok := l.newFlow(snap, rule, p, t, key, adj)
	if !ok {
		return true
	}
	// The server's handshake: the client's initial sequence number and options.
	syn := synproxy.Segment{Src: netip.AddrPortFrom(fl.Reply.Dst(), fl.Reply.DstPort),
		Dst: netip.AddrPortFrom(fl.Reply.Src(), fl.Reply.SrcPort), Seq: seg.Seq() - 1, Flags: header.TCPFlagSYN,
		Window: clientWindow(seg.Window(), o), MSS: o.MSS, WScale: -1, SACK: o.SACK, Timestamps: o.Timestamps, TSval: tsval}
	if o.WScaleOK {
		syn.WScale = int(o.WScale)
	}
	if b := l.newScratch(); b != nil {
		l.sendBuilt(b, synproxy.BuildSegment(b[headroom+ethLen:], syn), syn.Dst.Addr())
	}
	return true
}

// clientWindow is the client's window in bytes as a SYN carries it (unscaled, at most
// 65535).
func clientWindow(w uint16, o synproxy.Options) uint16 {
	if !o.WScaleOK {
		return w
	}
	return uint16(min(uint32(w)<<o.WScale, 0xffff))
}

// proxyPending handles a segment of a SYN-proxied flow whose server handshake is not
// done: the server's SYN-ACK completes it, a RST from the server ends the flow and is
// passed on to the client; anything else waits (the client has a zero window).
func (l *loop) proxyPending(snap *balancer.Snapshot, p *pkt, t l4, f *conntrack.Flow, dir conntrack.Direction) {
	seg := p.tcpOf()
	if dir != conntrack.Reply {
		if t.flags&header.TCPFlagRST != 0 {
			l.r.ct.Delete(f.Orig) // the client gave up; the server's half-open end times out
		}
		l.bc.drop(DropLBProxyPending)
		return
	}
	toClient := synproxy.Segment{Src: netip.AddrPortFrom(f.Orig.Dst(), f.Orig.DstPort),
		Dst: netip.AddrPortFrom(f.Orig.Src(), f.Orig.SrcPort), Seq: f.Adjust.Seq + 1, Ack: seg.Ack(), WScale: -1}
	switch {
	case t.flags&header.TCPFlagRST != 0:
		l.r.proxyCount.refused.Add(1)
		l.r.ct.Delete(f.Orig)
		toClient.Flags = header.TCPFlagRST | header.TCPFlagACK
		if b := l.newScratch(); b != nil {
			l.sendBuilt(b, synproxy.BuildSegment(b[headroom+ethLen:], toClient), toClient.Dst.Addr())
		}
		return
	case t.flags&(header.TCPFlagSYN|header.TCPFlagACK) != header.TCPFlagSYN|header.TCPFlagACK:
		l.bc.drop(DropLBProxyPending)
		return
	}
	so := synproxy.ParseSYN(seg, p.v6)
	server := seg.Seq()
	told := 0 // the window scale the client was told
	if f.Adjust.Flags&conntrack.AdjustWScale != 0 {
		told = int(l.r.proxy.wscale.Load())
	}
	got := 0
	if so.WScaleOK {
		got = int(so.WScale)
	}
	adj := conntrack.Adjust{Flags: conntrack.AdjustOn, Seq: f.Adjust.Seq - server, WScale: int8(got - told)}
	ts := f.Adjust.Flags&conntrack.AdjustTimestamps != 0 && so.Timestamps
	if ts {
		adj.Flags |= conntrack.AdjustTimestamps
		adj.TS = f.Adjust.TS - so.TSval
	}
	if !l.r.ct.SetAdjust(f.Reply, adj) {
		return
	}
	l.r.proxyCount.established.Add(1)
	// Both handshakes are done: the client's with its cookie, the server's with the ACK
	// below. The flow is established, and the peers learn it with its translation.
	l.r.ct.Refresh(f.Orig, conntrack.StateEstablished)
	est := *f
	est.State, est.Adjust = conntrack.StateEstablished, adj
	l.syncFlow(snap, &est)
	// The ACK of the server's handshake, as the client would have sent it.
	ack := synproxy.Segment{Src: netip.AddrPortFrom(f.Reply.Dst(), f.Reply.DstPort),
		Dst: netip.AddrPortFrom(f.Reply.Src(), f.Reply.SrcPort), Seq: seg.Ack(), Ack: server + 1,
		Flags: header.TCPFlagACK, Window: f.Adjust.Window, WScale: -1, Timestamps: ts, TSval: f.Adjust.TSClient, TSecr: so.TSval}
	if b := l.newScratch(); b != nil {
		l.sendBuilt(b, synproxy.BuildSegment(b[headroom+ethLen:], ack), ack.Dst.Addr())
	}
	// The client's window opens: the server's, in the scale the client was told.
	toClient.Flags = header.TCPFlagACK
	toClient.Window = uint16(min(uint32(seg.Window())>>told, 0xffff))
	if ts {
		toClient.Timestamps, toClient.TSval, toClient.TSecr = true, so.TSval+adj.TS, f.Adjust.TSClient
	}
	if b := l.newScratch(); b != nil {
		l.sendBuilt(b, synproxy.BuildSegment(b[headroom+ethLen:], toClient), toClient.Dst.Addr())
	}
}

// sendBuilt sends the IP packet of n bytes built at b[headroom+ethLen:] to dst, as the
// router's own (routed, not TTL-decremented).
func (l *loop) sendBuilt(b []byte, n int, dst netip.Addr) {
	port.Hdr(b, headroom).Clear()
	setEtherType(b, dst)
	l.route(b[:headroom+ethLen+n], dst)
}

// seqAdjust is nat's form of a flow's Adjust.
func seqAdjust(a conntrack.Adjust) nat.SeqAdjust {
	return nat.SeqAdjust{Seq: a.Seq, TS: a.TS, Timestamps: a.Flags&conntrack.AdjustTimestamps != 0, WScale: a.WScale}
}

// adjustSegment translates a SYN-proxied flow's TCP segment (after its NAT rewrite).
func (l *loop) adjustSegment(p *pkt, rw *rewrite) bool {
	if p.frag && !p.fragFirst {
		return true // no TCP header here
	}
	seg := p.tcpOf()
	partial := port.Hdr(p.buf, headroom).NeedsCsum()
	if rw.reply {
		return nat.AdjustToClient(seg, rw.adjust, partial)
	}
	return nat.AdjustToServer(seg, rw.adjust, partial)
}
