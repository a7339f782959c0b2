package ctsync

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
)

// Queue sizes and timings of a Syncer.
const (
	queueLen = 4096 // records from the receive loops waiting to be sent
	inboxLen = 256  // received messages waiting to be applied
	// linger is how long a record waits for others to share its message.
	linger = 10 * time.Millisecond
	// followEvery is how often the syncer asks whether this node is master.
	followEvery = 50 * time.Millisecond
)

// Outcome is what became of a received record.
type Outcome uint8

const (
	Adopted   Outcome = iota // a new flow entered on the peer's server
	Refreshed                // a flow this node has took the peer's state
	Unknown                  // no rule or server of this node matches the record
	Refused                  // it matches, but cannot be entered (table full, proxy port taken)
)

// Config is what NewSyncer needs.
type Config struct {
	Peers   []netip.Addr
	Port    uint16
	Refresh time.Duration // the whole table is sent this often
	// Master reports whether this node forwards (is master of the VRRP instance sync
	// follows); nil: always.
	Master func() bool
	// Send sends a message to every peer; it returns how many peers it could not
	// send to (no route, no source address).
	Send func(msg []byte) (failed int)
	// Flows lists the records of the flows this node forwarded, for a refresh.
	Flows func() iter.Seq[Record]
	// Apply enters a peer's record into this node's table.
	Apply func(Record) Outcome
	Log   *slog.Logger
}

// Stats are a Syncer's counters.
type Stats struct {
	Sending                              bool
	SentMessages, SentRecords            uint64
	ReceivedMessages, ReceivedRecords    uint64
	Adopted, Refreshed, Unknown, Refused uint64
	Malformed, FromStranger, Overflow    uint64
	NoRoute                              uint64 // messages not sent to a peer: no route or no source address
	Requests                             uint64 // peers' requests for the flows
}

// Syncer is connection sync's transport beside the data plane, like IPVS's sync
// daemon: while this node forwards it sends the records the receive loops queue, in
// messages of up to MaxRecords, and the whole table every Refresh, when it stops being
// master and when a peer asks; it applies the messages of its peers.
type Syncer struct {
	cfg     Config
	peers   map[netip.Addr]bool
	sending atomic.Bool
	queue   chan Record
	inbox   chan []byte

	sentRecords, sentMessages         atomic.Uint64
	recvMessages, recvRecords         atomic.Uint64
	outcomes                          [Refused + 1]atomic.Uint64
	malformed, fromStranger, overflow atomic.Uint64
	noRoute, requests                 atomic.Uint64
}

// NewSyncer checks the configuration and makes a syncer; Run starts it.
func NewSyncer(cfg Config) (*Syncer, error) {
	if len(cfg.Peers) == 0 || cfg.Port == 0 {
		return nil, errors.New("sync: needs peers and a port")
	}
	if cfg.Refresh <= 0 {
		return nil, errors.New("sync: needs a refresh interval")
	}
	if cfg.Send == nil || cfg.Flows == nil || cfg.Apply == nil {
		return nil, errors.New("sync: needs Send, Flows and Apply")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{cfg: cfg, peers: map[netip.Addr]bool{}, queue: make(chan Record, queueLen),
		inbox: make(chan []byte, inboxLen)}
	for _, p := range cfg.Peers {
		s.peers[p] = true
	}
	s.sending.Store(cfg.Master == nil)
	return s, nil
}

// Port is the UDP port of the sync messages.
func (s *Syncer) Port() uint16 { return s.cfg.Port }

// Sending reports whether this node sends its flows now.
func (s *Syncer) Sending() bool { return s.sending.Load() }

// Queue hands a record to the sender; it never blocks (a full queue is counted).
func (s *Syncer) Queue(rec Record) {
	select {
	case s.queue <- rec:
	default:
		s.overflow.Add(1)
	}
}

// Receive takes a datagram to the sync port from the receive loop: a peer's message is
// copied and queued for Run, anything else counted and dropped.
func (s *Syncer) Receive(src netip.Addr, payload []byte) {
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

// Run asks the peers for their flows, then sends the queued records, applies the peers'
// messages and follows the master state until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	refresh := time.NewTicker(s.cfg.Refresh)
	defer refresh.Stop()
	follow := time.NewTicker(followEvery)
	defer follow.Stop()
	lingerT := time.NewTimer(time.Hour)
	lingerT.Stop()
	// Ask the peers for the flows they forward, so that this node knows the open
	// connections before it may take over.
	s.send(AppendRequest(nil))
	var batch []Record
	flush := func() {
		if len(batch) > 0 {
			s.sendRecords(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case rec := <-s.queue:
			if len(batch) == 0 {
				lingerT.Reset(linger)
			}
			batch = append(batch, rec)
			if len(batch) == MaxRecords {
				flush()
			}
		case <-lingerT.C:
			flush()
		case msg := <-s.inbox:
			s.apply(msg)
		case <-follow.C:
			s.follow()
		case <-refresh.C:
			if s.sending.Load() {
				flush()
				s.refresh()
			}
		}
	}
}

// follow sends while this node is master.
func (s *Syncer) follow() {
	if s.cfg.Master == nil {
		return
	}
	master := s.cfg.Master()
	if was := s.sending.Swap(master); was != master {
		// Stepping down, the peer that takes over (a preempting master that just came
		// back, say) learns at once the flows this node forwarded; becoming master, the
		// peer learns those made since the node forwards, before it followed.
		s.refresh()
	}
}

// refresh sends every flow this node forwarded.
func (s *Syncer) refresh() {
	batch := make([]Record, 0, MaxRecords)
	for rec := range s.cfg.Flows() {
		batch = append(batch, rec)
		if len(batch) == MaxRecords {
			s.sendRecords(batch)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		s.sendRecords(batch)
	}
}

func (s *Syncer) sendRecords(recs []Record) {
	s.send(Append(make([]byte, 0, HeaderLen+len(recs)*RecordLen), recs))
	s.sentMessages.Add(1)
	s.sentRecords.Add(uint64(len(recs)))
}

func (s *Syncer) send(msg []byte) {
	if n := s.cfg.Send(msg); n > 0 {
		s.noRoute.Add(uint64(n))
	}
}

// apply takes a peer's message.
func (s *Syncer) apply(msg []byte) {
	s.recvMessages.Add(1)
	request, err := Decode(msg, func(rec Record) {
		s.recvRecords.Add(1)
		if o := s.cfg.Apply(rec); o <= Refused {
			s.outcomes[o].Add(1)
		}
	})
	if err != nil {
		s.malformed.Add(1)
		s.cfg.Log.Debug("sync: message dropped", "err", err)
		return
	}
	if request {
		s.requests.Add(1)
		if s.sending.Load() {
			s.refresh()
		}
	}
}

// Stats returns the counters.
func (s *Syncer) Stats() Stats {
	return Stats{
		Sending: s.sending.Load(), SentMessages: s.sentMessages.Load(), SentRecords: s.sentRecords.Load(),
		ReceivedMessages: s.recvMessages.Load(), ReceivedRecords: s.recvRecords.Load(),
		Adopted: s.outcomes[Adopted].Load(), Refreshed: s.outcomes[Refreshed].Load(),
		Unknown: s.outcomes[Unknown].Load(), Refused: s.outcomes[Refused].Load(),
		Malformed: s.malformed.Load(), FromStranger: s.fromStranger.Load(), Overflow: s.overflow.Load(),
		NoRoute: s.noRoute.Load(), Requests: s.requests.Load(),
	}
}
