package router

import (
	"context"
	"iter"
	"net/netip"
	"slices"
	"time"

	"ulb/balancer"
	"ulb/conntrack"
	"ulb/conntrack/ctsync"
	"ulb/router/header"
	"ulb/vrrp"
)

// SyncConfig is connection sync with peer nodes (config.Sync): while this node forwards
// (it is master of the VRRP instance VRRP names, or always when VRRP is empty) it sends
// its new flows and their state changes to Peers, and it takes the flows its peers send
// into its connection table, so that a node that takes over forwards the open
// connections on to the same servers.
type SyncConfig struct {
	Peers   []netip.Addr
	Port    uint16
	VRRP    string
	Refresh time.Duration
}

// syncEstablishedPackets is the packet count of a TCP flow at which its state is sent
// again: the handshake is over, the flow ESTABLISHED.
const syncEstablishedPackets = 3

// syncRun is one configuration of connection sync with its transport.
type syncRun struct {
	s    *ctsync.Syncer
	cfg  SyncConfig
	stop context.CancelFunc // ends its Run; nil until it runs
	done chan struct{}      // closed when its Run returns
}

// SetSync turns connection sync on, or changes it (a reload): the new transport takes
// over from the old one, which stops; a peer asked at start for its flows answers the
// new one.
func (r *Router) SetSync(cfg SyncConfig) error {
	cfg.Peers = slices.Clone(cfg.Peers)
	sc := ctsync.Config{Peers: cfg.Peers, Port: cfg.Port, Refresh: cfg.Refresh,
		Send:  func(payload []byte) int { return r.syncSendTo(cfg, payload) },
		Flows: r.syncFlows, Apply: r.syncAdopt, Log: r.log}
	if cfg.VRRP != "" {
		sc.Master = func() bool { return r.vrrpMaster(cfg.VRRP) }
	}
	s, err := ctsync.NewSyncer(sc)
	if err != nil {
		return err
	}
	r.swapSync(&syncRun{s: s, cfg: cfg, done: make(chan struct{})})
	return nil
}

// StopSync turns connection sync off.
func (r *Router) StopSync() { r.swapSync(nil) }

// swapSync installs next (nil: none), starts it when the router runs, and stops the one
// it replaces.
func (r *Router) swapSync(next *syncRun) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if next != nil && r.runCtx != nil {
		r.startSync(next)
	}
	old := r.syncer.Swap(next)
	if old != nil && old.stop != nil {
		old.stop()
		<-old.done
	}
}

// startSync runs a transport until the router's run ends or it is replaced. syncMu
// is held and the router runs.
func (r *Router) startSync(sr *syncRun) {
	ctx, cancel := context.WithCancel(r.runCtx)
	sr.stop = cancel
	go func() {
		defer close(sr.done)
		sr.s.Run(ctx)
	}()
}

// Sync is connection sync's transport, nil when it is off.
func (r *Router) Sync() *ctsync.Syncer {
	if sr := r.syncer.Load(); sr != nil {
		return sr.s
	}
	return nil
}

// SyncPeers are the nodes connection sync talks to.
func (r *Router) SyncPeers() []netip.Addr {
	if sr := r.syncer.Load(); sr != nil {
		return sr.cfg.Peers
	}
	return nil
}

// SyncVRRP names the VRRP instance connection sync follows ("" for none).
func (r *Router) SyncVRRP() string {
	if sr := r.syncer.Load(); sr != nil {
		return sr.cfg.VRRP
	}
	return ""
}

// syncFlow queues a record of f for the peers when this node sends; the receive loops
// call it for a new flow and for packets that may change a flow's state.
func (l *loop) syncFlow(snap *balancer.Snapshot, f *conntrack.Flow) {
	s := l.r.Sync()
	if s == nil || !s.Sending() || f.Server == sorryServer {
		return
	}
	if rec, ok := syncRecord(snap, f); ok {
		s.Queue(rec)
	}
}

// syncAfter decides whether a packet of an existing flow is worth a record: the end of
// the handshake and any FIN or RST (state changes the peer's timeouts depend on).
func (l *loop) syncAfter(snap *balancer.Snapshot, f *conntrack.Flow, tcpFlags uint8) {
	if l.r.syncer.Load() == nil || f.Orig.Proto != conntrack.ProtoTCP {
		return
	}
	if tcpFlags&(header.TCPFlagFIN|header.TCPFlagRST) != 0 || f.OrigPackets+f.ReplyPackets == syncEstablishedPackets {
		l.syncFlow(snap, f)
	}
}

// syncRecord describes a balanced flow for the wire; false for flows that are not the
// balancer's (the host port's) or whose server is gone.
func syncRecord(snap *balancer.Snapshot, f *conntrack.Flow) (ctsync.Record, bool) {
	if !f.Topology.Balanced() || f.Server == sorryServer || f.Adjust.Flags&conntrack.AdjustPending != 0 {
		// A SYN-proxied flow whose server handshake is not done is this node's alone.
		return ctsync.Record{}, false
	}
	rec := ctsync.Record{Orig: f.Orig, Reply: f.Reply, State: f.State, Topology: uint8(f.Topology)}
	if f.Adjust.Flags&conntrack.AdjustOn != 0 {
		a := f.Adjust
		rec.Adjust = conntrack.Adjust{Flags: a.Flags & (conntrack.AdjustOn | conntrack.AdjustTimestamps), Seq: a.Seq, TS: a.TS,
			WScale: a.WScale}
	}
	if f.Orig.Proto != conntrack.ProtoTCP {
		rec.State = conntrack.StateUDP
		if f.Orig.Proto != conntrack.ProtoUDP {
			return ctsync.Record{}, false
		}
	}
	switch f.Topology {
	case conntrack.HalfNAT, conntrack.FullNAT:
		rec.Server = netip.AddrPortFrom(f.Reply.Src(), f.Reply.SrcPort)
	default: // direct server return: the frame keeps the VIP's port
		addr, ok := snap.ServerAddr(f.Server)
		if !ok {
			return ctsync.Record{}, false
		}
		rec.Server = netip.AddrPortFrom(addr, f.Orig.DstPort)
	}
	return rec, true
}

// vrrpMaster reports whether this node is master of the named VRRP instance.
func (r *Router) vrrpMaster(instance string) bool {
	for _, n := range r.vrrpNodes() {
		if n.in.Name() == instance {
			return n.in.State() == vrrp.Master
		}
	}
	return false
}

// syncFlows lists the balanced flows this node has forwarded packets of, for a
// refresh. Flows only adopted from a peer stay out: sent back, they would keep each
// other alive forever between two nodes that both send.
func (r *Router) syncFlows() iter.Seq[ctsync.Record] {
	return func(yield func(ctsync.Record) bool) {
		snap := r.lb.Snapshot()
		r.ct.Range(func(f conntrack.Flow) bool {
			if f.OrigPackets+f.ReplyPackets == 0 {
				return true
			}
			if rec, ok := syncRecord(snap, &f); ok {
				return yield(rec)
			}
			return true
		})
	}
}

// syncSendTo sends a message to every peer, from the router's address on the port that
// leads to it.
func (r *Router) syncSendTo(cfg SyncConfig, payload []byte) (failed int) {
	port := cfg.Port
	for _, peer := range cfg.Peers {
		rp, nh, src, err := r.probeRoute(peer)
		if err != nil {
			failed++
			continue
		}
		r.sendOutside(rp, nh, peer, buildUDP(src, peer, port, port, payload))
	}
	return failed
}

// syncAdopt enters one record (the syncer's Apply): a flow this node has gets the
// peer's state; a new one is counted on the server the peer chose.
func (r *Router) syncAdopt(rec ctsync.Record) ctsync.Outcome {
	snap := r.lb.Snapshot()
	if r.ct.Refresh(rec.Orig, rec.State) {
		if rec.Adjust.Flags != 0 {
			r.ct.SetAdjust(rec.Orig, rec.Adjust)
		}
		return ctsync.Refreshed
	}
	rule, ok := snap.Match(rec.Orig.Proto, rec.Orig.Dst(), rec.Orig.DstPort)
	if !ok || rule.Topology() != conntrack.Topology(rec.Topology) {
		return ctsync.Unknown
	}
	pick, ok := rule.Adopt(rec.Orig.Src(), rec.Orig.SrcPort, rec.Orig.DstPort, rec.Server.Addr(), rec.Server.Port())
	if !ok {
		return ctsync.Unknown
	}
	f := conntrack.Flow{Orig: rec.Orig, Reply: rec.Reply, Rule: rule.ID(), Server: pick.Server,
		Topology: conntrack.Topology(rec.Topology), State: rec.State, Adjust: rec.Adjust}
	if rule.Topology() == balancer.FullNAT && (r.proxyPorts == nil || !r.proxyPorts.Take(rec.Reply.Dst(), rec.Reply.DstPort)) {
		r.lb.FlowEnded(rule.ID(), pick.Server, rec.Orig.Src(), rec.Orig.SrcPort, rec.Orig.DstPort)
		return ctsync.Refused
	}
	if err := r.ct.Insert(f); err != nil {
		r.lb.FlowEnded(rule.ID(), pick.Server, rec.Orig.Src(), rec.Orig.SrcPort, rec.Orig.DstPort)
		if rule.Topology() == balancer.FullNAT {
			r.proxyPorts.Put(rec.Reply.Dst(), rec.Reply.DstPort)
		}
		return ctsync.Refused
	}
	r.tracking.Store(true)
	return ctsync.Adopted
}
