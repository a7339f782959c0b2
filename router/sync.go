package router

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"ulb/balancer"
	"ulb/conntrack"
	"ulb/conntrack/ctsync"
	"ulb/router/control"
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

// Queue sizes of connection sync.
const (
	syncQueue = 4096 // records from the receive loops waiting to be sent
	syncInbox = 256  // received messages waiting to be applied
	// syncLinger is how long a record waits for others to share its message.
	syncLinger = 10 * time.Millisecond
	// syncEstablishedPackets is the packet count of a TCP flow at which its state is
	// sent again: the handshake is over, the flow ESTABLISHED.
	syncEstablishedPackets = 3
)

type syncer struct {
	cfg     SyncConfig
	peers   map[netip.Addr]bool
	sending atomic.Bool
	queue   chan ctsync.Record
	inbox   chan []byte

	sentRecords, sentMessages            atomic.Uint64
	recvMessages, recvRecords            atomic.Uint64
	adopted, refreshed, unknown, refused atomic.Uint64
	malformed, fromStranger, overflow    atomic.Uint64
	noRoute                              atomic.Uint64 // messages not sent to a peer: no route or no source address
	requests                             atomic.Uint64 // peers' requests for the flows
}

// SetSync turns connection sync on; call it before Run.
func (r *Router) SetSync(cfg SyncConfig) error {
	if len(cfg.Peers) == 0 || cfg.Port == 0 {
		return errors.New("sync: needs peers and a port")
	}
	if cfg.Refresh <= 0 {
		return errors.New("sync: needs a refresh interval")
	}
	s := &syncer{cfg: cfg, peers: make(map[netip.Addr]bool), queue: make(chan ctsync.Record, syncQueue),
		inbox: make(chan []byte, syncInbox)}
	for _, p := range cfg.Peers {
		s.peers[p] = true
	}
	s.sending.Store(cfg.VRRP == "")
	r.sync = s
	return nil
}

// syncFlow queues a record of f for the peers when this node sends; the receive loops
// call it for a new flow and for packets that may change a flow's state.
func (l *loop) syncFlow(snap *balancer.Snapshot, f *conntrack.Flow) {
	s := l.r.sync
	if s == nil || !s.sending.Load() || f.Server == sorryServer {
		return
	}
	rec, ok := syncRecord(snap, f)
	if !ok {
		return
	}
	select {
	case s.queue <- rec:
	default:
		s.overflow.Add(1)
	}
}

// syncAfter decides whether a packet of an existing flow is worth a record: the end of
// the handshake and any FIN or RST (state changes the peer's timeouts depend on).
func (l *loop) syncAfter(snap *balancer.Snapshot, f *conntrack.Flow, tcpFlags uint8) {
	if l.r.sync == nil || f.Orig.Proto != conntrack.ProtoTCP {
		return
	}
	if tcpFlags&(header.TCPFlagFIN|header.TCPFlagRST) != 0 || f.OrigPackets+f.ReplyPackets == syncEstablishedPackets {
		l.syncFlow(snap, f)
	}
}

// syncRecord describes a balanced flow for the wire; false for flows that are not the
// balancer's (the host port's) or whose server is gone.
func syncRecord(snap *balancer.Snapshot, f *conntrack.Flow) (ctsync.Record, bool) {
	if !f.Topology.Balanced() || f.Server == sorryServer {
		return ctsync.Record{}, false
	}
	rec := ctsync.Record{Orig: f.Orig, Reply: f.Reply, State: f.State, Topology: uint8(f.Topology)}
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

// syncReceive takes a datagram to the sync port from the receive loop: a peer's message
// is queued for runSync, anything else counted and dropped.
func (l *loop) syncReceive(src netip.Addr, payload []byte) {
	s := l.r.sync
	if !s.peers[src] {
		s.fromStranger.Add(1)
		return
	}
	msg := append([]byte(nil), payload...)
	select {
	case s.inbox <- msg:
	default:
		s.overflow.Add(1)
	}
}

// runSync sends the queued records in messages, applies the peers' messages, follows
// the VRRP instance's state, and sends the whole table every Refresh.
func (r *Router) runSync(ctx context.Context) {
	s := r.sync
	refresh := time.NewTicker(s.cfg.Refresh)
	defer refresh.Stop()
	follow := time.NewTicker(50 * time.Millisecond)
	defer follow.Stop()
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	// Ask the peers for the flows they forward, so that this node knows the open
	// connections before it may take over.
	r.syncSendTo(ctsync.AppendRequest(nil))
	var batch []ctsync.Record
	flush := func() {
		if len(batch) > 0 {
			r.syncSend(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case rec := <-s.queue:
			if len(batch) == 0 {
				linger.Reset(syncLinger)
			}
			batch = append(batch, rec)
			if len(batch) == ctsync.MaxRecords {
				flush()
			}
		case <-linger.C:
			flush()
		case msg := <-s.inbox:
			r.syncApply(msg)
		case <-follow.C:
			r.syncFollowVRRP()
		case <-refresh.C:
			if s.sending.Load() {
				flush()
				r.syncRefresh()
			}
		}
	}
}

// syncFollowVRRP sends while this node is master of the configured instance.
func (r *Router) syncFollowVRRP() {
	s := r.sync
	if s.cfg.VRRP == "" {
		return
	}
	master := false
	for _, in := range r.VRRPInfo() {
		if in.Name == s.cfg.VRRP {
			master = in.State == vrrp.Master
		}
	}
	if was := s.sending.Swap(master); was && !master {
		// The peer that takes over (a preempting master that just came back, say)
		// learns at once the flows this node forwarded.
		r.syncRefresh()
	}
}

// syncRefresh sends the balanced flows this node has forwarded packets of. Flows only
// adopted from a peer stay out: sent back, they would keep each other alive forever
// between two nodes that both send.
func (r *Router) syncRefresh() {
	snap := r.lb.Snapshot()
	batch := make([]ctsync.Record, 0, ctsync.MaxRecords)
	r.ct.Range(func(f conntrack.Flow) bool {
		if f.OrigPackets+f.ReplyPackets == 0 {
			return true
		}
		if rec, ok := syncRecord(snap, &f); ok {
			batch = append(batch, rec)
			if len(batch) == ctsync.MaxRecords {
				r.syncSend(batch)
				batch = batch[:0]
			}
		}
		return true
	})
	if len(batch) > 0 {
		r.syncSend(batch)
	}
}

// syncSend sends one message with recs to every peer.
func (r *Router) syncSend(recs []ctsync.Record) {
	s := r.sync
	r.syncSendTo(ctsync.Append(make([]byte, 0, ctsync.HeaderLen+len(recs)*ctsync.RecordLen), recs))
	s.sentMessages.Add(1)
	s.sentRecords.Add(uint64(len(recs)))
}

// syncSendTo sends a message to every peer, from the router's address on the port that
// leads to it.
func (r *Router) syncSendTo(payload []byte) {
	s := r.sync
	for _, peer := range s.cfg.Peers {
		rp, nh, src, err := r.probeRoute(peer)
		if err != nil {
			s.noRoute.Add(1)
			continue
		}
		r.sendOutside(rp, nh, peer, buildUDP(src, peer, s.cfg.Port, s.cfg.Port, payload))
	}
}

// syncApply takes a peer's message into the connection table.
func (r *Router) syncApply(msg []byte) {
	s := r.sync
	s.recvMessages.Add(1)
	snap := r.lb.Snapshot()
	request, err := ctsync.Decode(msg, func(rec ctsync.Record) {
		s.recvRecords.Add(1)
		r.syncAdopt(snap, rec)
	})
	if err != nil {
		s.malformed.Add(1)
		r.log.Debug("sync: message dropped", "err", err)
		return
	}
	if request {
		s.requests.Add(1)
		if s.sending.Load() {
			r.syncRefresh()
		}
	}
}

// syncAdopt enters one record: a flow this node has gets the peer's state; a new one is
// counted on the server the peer chose.
func (r *Router) syncAdopt(snap *balancer.Snapshot, rec ctsync.Record) {
	s := r.sync
	if r.ct.Refresh(rec.Orig, rec.State) {
		s.refreshed.Add(1)
		return
	}
	rule, ok := snap.Match(rec.Orig.Proto, rec.Orig.Dst(), rec.Orig.DstPort)
	if !ok || flowTopology(rule.Topology()) != conntrack.Topology(rec.Topology) {
		s.unknown.Add(1)
		return
	}
	pick, ok := rule.Adopt(rec.Orig.Src(), rec.Orig.DstPort, rec.Server.Addr(), rec.Server.Port())
	if !ok {
		s.unknown.Add(1)
		return
	}
	f := conntrack.Flow{Orig: rec.Orig, Reply: rec.Reply, Rule: rule.ID(), Server: pick.Server,
		Topology: conntrack.Topology(rec.Topology), State: rec.State}
	if rule.Topology() == balancer.FullNAT && (r.proxyPorts == nil || !r.proxyPorts.Take(rec.Reply.Dst(), rec.Reply.DstPort)) {
		r.lb.FlowEnded(rule.ID(), pick.Server, rec.Orig.Src())
		s.refused.Add(1)
		return
	}
	if err := r.ct.Insert(f); err != nil {
		r.lb.FlowEnded(rule.ID(), pick.Server, rec.Orig.Src())
		if rule.Topology() == balancer.FullNAT {
			r.proxyPorts.Put(rec.Reply.Dst(), rec.Reply.DstPort)
		}
		s.refused.Add(1)
		return
	}
	r.tracking.Store(true)
	s.adopted.Add(1)
}

// SyncInfo returns the counters of connection sync, or nil when it is off.
func (r *Router) SyncInfo() *control.SyncInfo {
	s := r.sync
	if s == nil {
		return nil
	}
	peers := make([]string, len(s.cfg.Peers))
	for i, p := range s.cfg.Peers {
		peers[i] = p.String()
	}
	return &control.SyncInfo{
		Peers: peers, Port: s.cfg.Port, VRRP: s.cfg.VRRP, Sending: s.sending.Load(),
		SentMessages: s.sentMessages.Load(), SentRecords: s.sentRecords.Load(),
		ReceivedMessages: s.recvMessages.Load(), ReceivedRecords: s.recvRecords.Load(),
		Adopted: s.adopted.Load(), Refreshed: s.refreshed.Load(), Unknown: s.unknown.Load(),
		Refused: s.refused.Load(), Malformed: s.malformed.Load(), FromStranger: s.fromStranger.Load(),
		Overflow: s.overflow.Load(), NoRoute: s.noRoute.Load(), Requests: s.requests.Load(),
	}
}
