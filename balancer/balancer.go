// Package balancer chooses a back-end server for each new flow to a virtual service:
// rules, server groups, scheduling algorithms, persistence, server states and counters.
//
// The control plane calls Set with the configured rules and the admin verbs (EnableServer,
// DrainServer, DisableRule, ...); each change builds an immutable *Snapshot, published with
// atomic.Pointer. The data plane loads the Snapshot once per batch, calls Match on a
// conntrack miss and (*Rule).Pick for a new flow, Account for the packets of existing
// flows, and FlowEnded when conntrack lets a flow go. None of these allocate or block on
// the control plane; Pick takes short per-rule locks only for weighted-roundrobin and
// persistence.
//
// A server is identified by its group (or rule) name, address and port. A group may serve
// several rules: each (rule, server) pair has its own state, counters and ID, while
// max_conns and the least-connection algorithms count the server's flows over all its
// rules. Rules and pairs have stable numeric IDs (Rule.ID, Pick.Server) that flows store;
// they survive every Set that keeps the rule's name and the server's identity and are
// never reused, so a flow that outlives a reload still ends on the right counters. State
// and counters survive such a Set too.
package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Balancer.
type Config struct {
	// Now is the clock (persistence, drain deadlines); nil means time.Now.
	Now func() time.Time
	// Logger receives one line per configuration or state change; nil discards.
	Logger *slog.Logger
	// PersistCapacity limits the persistence entries (DefaultPersistCapacity if 0). When
	// full, new client prefixes are scheduled without an entry (counted in Stats).
	PersistCapacity int
}

// ServerState is a server's administrative state.
type ServerState uint8

// Server states.
const (
	// Enabled servers take new flows (when their weight is above 0 and they are not
	// overloaded: see ServerConfig.MaxConns).
	Enabled ServerState = iota
	// Disabled servers take no new flows, and Drained reports their flows for removal
	// at once (like a halt).
	Disabled
	// Draining servers take no new flows; their flows go on, and Drained reports them
	// for removal after the rule's ConnDrain.
	Draining
)

func (s ServerState) String() string {
	switch s {
	case Enabled:
		return "enabled"
	case Disabled:
		return "disabled"
	case Draining:
		return "draining"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ErrNotFound is returned by the admin verbs for an unknown rule, group or server.
var ErrNotFound = errors.New("not found")

type serverKey struct {
	group string
	addr  netip.Addr
	port  uint16
}

func (k serverKey) String() string {
	return fmt.Sprintf("%s/%v", k.group, netip.AddrPortFrom(k.addr, k.port))
}

// serverState is one server identity: its flows over every rule that uses it.
type serverState struct {
	id    uint32
	key   serverKey
	conns atomic.Int64 // for max_conns and leastconn
	// over is set when conns reaches max_conns and cleared when conns falls below the
	// lower threshold (see member.acquire and release); low mirrors the configured lower
	// threshold for FlowEnded, which sees no member.
	over atomic.Bool
	max  atomic.Int64
	low  atomic.Int64
	// Guarded by Balancer.mu.
	health healthState // health checks' verdict and agent load (health_state.go)
}

// pairState is one server within one rule: what survives reloads for the pair.
type pairState struct {
	id   uint32
	rule *ruleState
	srv  *serverState
	c    counters
	// Guarded by Balancer.mu.
	admin ServerState
	since time.Time // when admin last changed
	live  bool      // in the current configuration
	// removed is when a reload or a run-time change took the pair out of the
	// configuration, drain its rule's ConnDrain then: its flows go on until drain has
	// passed (0: until they end), as ILB's conn-drain keeps a removed server's.
	removed time.Time
	drain   time.Duration
}

type ruleState struct {
	id   uint32
	name string
	c    counters
	// Guarded by Balancer.mu.
	enabled bool
	live    bool
}

type pairKey struct{ rule, server uint32 }

// Balancer holds the rules and their servers. It is safe for concurrent use.
type Balancer struct {
	now  func() time.Time
	log  *slog.Logger
	snap atomic.Pointer[Snapshot]

	persist persistTable

	mu      sync.Mutex
	cfg     []RuleConfig
	rules   map[string]*ruleState
	servers map[serverKey]*serverState
	pairs   map[pairKey]*pairState
	ruleIDs []*ruleState // by ID; [0] is nil
	pairIDs []*pairState // by ID; [0] is nil
	maglevs map[string][]uint32
}

// New returns a Balancer without rules.
func New(cfg Config) *Balancer {
	b := &Balancer{
		now:     cfg.Now,
		log:     cfg.Logger,
		rules:   map[string]*ruleState{},
		servers: map[serverKey]*serverState{},
		pairs:   map[pairKey]*pairState{},
		ruleIDs: []*ruleState{nil},
		pairIDs: []*pairState{nil},
		maglevs: map[string][]uint32{},
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.persist.init(cfg.PersistCapacity)
	b.mu.Lock()
	b.publish()
	b.mu.Unlock()
	return b
}

// Snapshot returns the current snapshot; the data plane loads it once per batch.
func (b *Balancer) Snapshot() *Snapshot { return b.snap.Load() }

// Set replaces the configuration. It checks every rule first and changes nothing when
// one is wrong, returning all the errors joined (see the Err variables).
//
// Rules and servers that stay keep their IDs, counters and state. An admin state set at
// run time (EnableRule, DrainServer, ...) stays unless the new configuration changes that
// rule's Enabled or that server's Disabled value. Persistence entries of removed rules and
// of rules whose PMask or PersistKey changed are dropped.
func (b *Balancer) Set(rules []RuleConfig) error {
	if err := validateAll(rules); err != nil {
		return err
	}
	cfg := make([]RuleConfig, len(rules))
	for i, rc := range rules {
		rc.ProxySource = append([]netip.Addr(nil), rc.ProxySource...)
		rc.Servers = append([]ServerConfig(nil), rc.Servers...)
		cfg[i] = rc
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	prevRule := make(map[string]*RuleConfig, len(b.cfg))
	for i := range b.cfg {
		prevRule[b.cfg[i].Name] = &b.cfg[i]
	}
	for _, rs := range b.rules {
		rs.live = false
	}
	wasLive := make(map[*pairState]bool, len(b.pairs))
	for _, ps := range b.pairs {
		wasLive[ps] = ps.live
		ps.live = false
	}
	var dropPersist []uint32
	for i := range cfg {
		rc := &cfg[i]
		prev := prevRule[rc.Name]
		rs := b.rules[rc.Name]
		if rs == nil {
			rs = &ruleState{id: uint32(len(b.ruleIDs)), name: rc.Name}
			b.ruleIDs = append(b.ruleIDs, rs)
			b.rules[rc.Name] = rs
		}
		if prev == nil || prev.Enabled != rc.Enabled {
			rs.enabled = rc.Enabled
		}
		if prev != nil && (prev.PMask != rc.PMask || prev.PersistKey != rc.PersistKey) {
			dropPersist = append(dropPersist, rs.id)
		}
		rs.live = true
		prevSrv := map[serverKey]ServerConfig{}
		if prev != nil && prev.groupName() == rc.groupName() {
			for _, sc := range prev.Servers {
				prevSrv[serverKey{prev.groupName(), sc.Addr, sc.Port}] = sc
			}
		}
		for _, sc := range rc.Servers {
			k := serverKey{rc.groupName(), sc.Addr, sc.Port}
			ss := b.servers[k]
			if ss == nil {
				ss = &serverState{id: uint32(len(b.servers) + 1), key: k, health: healthState{load: -1}}
				b.servers[k] = ss
			}
			pk := pairKey{rs.id, ss.id}
			ps := b.pairs[pk]
			if ps == nil {
				ps = &pairState{id: uint32(len(b.pairIDs)), rule: rs, srv: ss}
				b.pairIDs = append(b.pairIDs, ps)
				b.pairs[pk] = ps
			}
			// The configured state applies to a new pair, a pair configured again after
			// a removal, and when the configuration changes it; else the run-time one stays.
			if p, ok := prevSrv[k]; !ok || p.Disabled != sc.Disabled {
				st := Enabled
				if sc.Disabled {
					st = Disabled
				}
				if ps.admin != st {
					ps.admin, ps.since = st, now
				}
			}
			ps.live = true
		}
	}
	for name := range prevRule {
		if rs := b.rules[name]; !rs.live {
			dropPersist = append(dropPersist, rs.id)
		}
	}
	for ps, was := range wasLive {
		if was && !ps.live {
			ps.removed, ps.drain = now, 0
			if prev := prevRule[ps.rule.name]; prev != nil {
				ps.drain = prev.ConnDrain
			}
		}
	}
	b.persist.dropRules(dropPersist)
	b.forgetHealth()
	b.cfg = cfg
	b.publish()
	b.log.LogAttrs(context.Background(), slog.LevelInfo, "balancer rules set",
		slog.Int("rules", len(cfg)), slog.Int("rule_servers", b.liveServers()))
	return nil
}

func (b *Balancer) liveServers() int {
	n := 0
	for _, ps := range b.pairs {
		if ps.live {
			n++
		}
	}
	return n
}

// publish builds a Snapshot from b.cfg and the states, and stores it. b.mu is held.
func (b *Balancer) publish() {
	s := &Snapshot{
		byName:   make(map[string]*Rule, len(b.cfg)),
		match:    make(map[matchKey][]*Rule),
		ruleIDs:  b.ruleIDs[:len(b.ruleIDs):len(b.ruleIDs)],
		pairIDs:  b.pairIDs[:len(b.pairIDs):len(b.pairIDs)],
		ruleByID: make([]*Rule, len(b.ruleIDs)),
	}
	maglevs := make(map[string][]uint32)
	for i := range b.cfg {
		rc := &b.cfg[i]
		rs := b.rules[rc.Name]
		a, _ := parseAlgo(rc.Algorithm)
		r := &Rule{b: b, cfg: *rc, id: rs.id, st: rs, algo: a, enabled: rs.enabled,
			vip16: rc.VIP.As16(), bits: -1, persistent: rc.persistent()}
		if rc.PMask != NoPersistence {
			r.bits = rc.PMask
			if rc.VIP.Is4() {
				r.bits += 96
			}
		}
		r.members = make([]member, len(rc.Servers))
		r.byPair = make(map[uint32]int32, len(rc.Servers))
		for j, sc := range rc.Servers {
			ss := b.servers[serverKey{rc.groupName(), sc.Addr, sc.Port}]
			ps := b.pairs[pairKey{rs.id, ss.id}]
			m := &r.members[j]
			*m = member{srv: ss, pair: ps, addr: sc.Addr, port: sc.Port,
				maxConns: int64(sc.MaxConns), lowConns: lowThreshold(sc)}
			ss.setThresholds(m.maxConns, m.lowConns)
			r.byPair[ps.id] = int32(j)
		}
		r.setEffectiveWeights()
		for j := range r.members {
			if r.members[j].eligible {
				r.eligible = append(r.eligible, &r.members[j])
			}
		}
		r.initScheduler(b.maglevs, maglevs)
		s.rules = append(s.rules, r)
		s.byName[rc.Name] = r
		s.ruleByID[rs.id] = r
		mk := matchKey{vip: r.vip16, v6: rc.VIP.Is6(), proto: rc.Proto}
		s.match[mk] = append(s.match[mk], r)
	}
	for _, rs := range s.match {
		// Ranges never overlap (validateAll); sorting by PortLo lets Match stop early.
		for i := 1; i < len(rs); i++ {
			for j := i; j > 0 && rs[j].cfg.PortLo < rs[j-1].cfg.PortLo; j-- {
				rs[j], rs[j-1] = rs[j-1], rs[j]
			}
		}
	}
	b.maglevs = maglevs
	b.snap.Store(s)
}

// Snapshot is an immutable view of the rules for the data plane. Its methods are safe for
// concurrent use.
type Snapshot struct {
	rules    []*Rule
	byName   map[string]*Rule
	match    map[matchKey][]*Rule
	ruleByID []*Rule      // nil for rules no longer configured
	ruleIDs  []*ruleState // every rule ever configured, by ID
	pairIDs  []*pairState // every (rule, server) pair ever configured, by ID
}

type matchKey struct {
	vip   [16]byte
	v6    bool
	proto uint8
}

// Match returns the rule for a packet to vip:port with protocol proto. ok is false when
// no rule covers it, or when the rule covering it is disabled: r is then that rule (so the
// router can tell a disabled service from no service), else nil.
func (s *Snapshot) Match(proto uint8, vip netip.Addr, port uint16) (*Rule, bool) {
	for _, r := range s.match[matchKey{vip: vip.As16(), v6: vip.Is6(), proto: proto}] {
		if port < r.cfg.PortLo {
			break
		}
		if port <= r.cfg.PortHi {
			return r, r.enabled
		}
	}
	return nil, false
}

// Rules returns the snapshot's rules in configuration order; callers must not modify it.
func (s *Snapshot) Rules() []*Rule { return s.rules }

// Rule returns the configured rule with that ID.
func (s *Snapshot) Rule(id uint32) (*Rule, bool) {
	if int(id) < len(s.ruleByID) && s.ruleByID[id] != nil {
		return s.ruleByID[id], true
	}
	return nil, false
}

// RuleByName returns the configured rule with that name.
func (s *Snapshot) RuleByName(name string) (*Rule, bool) {
	r, ok := s.byName[name]
	return r, ok
}

// Account adds one packet of bytes to the counters of a rule and of its server (IDs as
// stored in the flow: Rule.ID and Pick.Server): reply is false for client-to-server
// packets, true for the server's answers. Unknown IDs are ignored; a server ID of 0
// counts on the rule only.
func (s *Snapshot) Account(rule, server uint32, reply bool, bytes int) {
	if int(rule) < len(s.ruleIDs) && s.ruleIDs[rule] != nil {
		s.ruleIDs[rule].c.packet(reply, bytes)
	}
	if int(server) < len(s.pairIDs) && s.pairIDs[server] != nil {
		s.pairIDs[server].c.packet(reply, bytes)
	}
}

// CountDrop counts a dropped packet on a rule and a server (0 = none), for drops the
// router decides (a full connection table, no free full-NAT port, a failed rewrite).
func (s *Snapshot) CountDrop(rule, server uint32) {
	if int(rule) < len(s.ruleIDs) && s.ruleIDs[rule] != nil {
		s.ruleIDs[rule].c.drops.Add(1)
	}
	if int(server) < len(s.pairIDs) && s.pairIDs[server] != nil {
		s.pairIDs[server].c.drops.Add(1)
	}
}

// FlowEnded gives back the connection a Pick counted: the router calls it from conntrack's
// OnExpire for every balanced flow that leaves the table, and when it cannot use a Pick
// (conntrack full, no full-NAT port). client:cport is the flow's client (the source of
// its original direction) and dport its destination port, as given to Pick: persistence
// entries live while their flows do. It works across reloads, also for rules and servers
// no longer configured.
func (b *Balancer) FlowEnded(rule, server uint32, client netip.Addr, cport, dport uint16) {
	s := b.snap.Load()
	if int(rule) < len(s.ruleIDs) && s.ruleIDs[rule] != nil {
		decr(&s.ruleIDs[rule].c.connsNow)
	}
	if int(server) < len(s.pairIDs) && s.pairIDs[server] != nil {
		ps := s.pairIDs[server]
		decr(&ps.c.connsNow)
		decr(&ps.srv.conns)
		ps.srv.release()
	}
	if r, ok := s.Rule(rule); ok && r.persistent {
		b.persist.release(r.persistKey(client, cport, dport), b.now().UnixNano())
	}
}

// decr lowers a connection count, never below zero (a double FlowEnded is a caller's bug
// that must not make a server look emptier than it is forever).
func decr(v *atomic.Int64) {
	for {
		n := v.Load()
		if n <= 0 || v.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// Expire drops timed-out persistence entries, one shard per call (persistShards calls
// sweep them all); run it every 100 ms or so. Lookups ignore expired entries anyway.
func (b *Balancer) Expire() int {
	return b.persist.sweep(b.now().UnixNano())
}

func (b *Balancer) setServer(name string, addr netip.Addr, port uint16, st ServerState) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	n, changed := 0, 0
	for _, ps := range b.pairs {
		k := ps.srv.key
		if !ps.live || (name != "" && k.group != name && ps.rule.name != name) ||
			k.addr != addr || (port != 0 && k.port != port) {
			continue
		}
		n++
		if ps.admin != st {
			ps.admin, ps.since = st, now
			changed++
			b.log.LogAttrs(context.Background(), slog.LevelInfo, "server state",
				slog.String("rule", ps.rule.name), slog.String("server", k.String()),
				slog.String("state", st.String()))
		}
	}
	if n == 0 {
		return fmt.Errorf("server %v in %q: %w", netip.AddrPortFrom(addr, port), name, ErrNotFound)
	}
	if changed > 0 {
		b.publish()
	}
	return nil
}

// EnableServer lets a server take new flows again. name selects the rules: those named
// name and those whose group is named name (a group is changed in every rule using it);
// "" selects every rule. port 0 means every port of addr. Matching nothing is ErrNotFound.
func (b *Balancer) EnableServer(name string, addr netip.Addr, port uint16) error {
	return b.setServer(name, addr, port, Enabled)
}

// DisableServer stops new flows to a server (name, addr and port as in EnableServer);
// Drained reports its flows for removal at once.
func (b *Balancer) DisableServer(name string, addr netip.Addr, port uint16) error {
	return b.setServer(name, addr, port, Disabled)
}

// DrainServer stops new flows to a server (name, addr and port as in EnableServer); its
// flows go on until the rule's ConnDrain has passed (then Drained reports them) or they end.
func (b *Balancer) DrainServer(name string, addr netip.Addr, port uint16) error {
	return b.setServer(name, addr, port, Draining)
}

func (b *Balancer) setRule(name string, on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	rs := b.rules[name]
	if rs == nil || !rs.live {
		return fmt.Errorf("rule %q: %w", name, ErrNotFound)
	}
	if rs.enabled != on {
		rs.enabled = on
		b.log.LogAttrs(context.Background(), slog.LevelInfo, "rule state",
			slog.String("rule", name), slog.Bool("enabled", on))
		b.publish()
	}
	return nil
}

// EnableRule makes a rule match new flows again.
func (b *Balancer) EnableRule(name string) error { return b.setRule(name, true) }

// DisableRule makes a rule match nothing; its existing flows go on until they end.
func (b *Balancer) DisableRule(name string) error { return b.setRule(name, false) }

// Reason says why Drained reports a server's flows.
type Reason uint8

// Reasons.
const (
	ReasonDisabled Reason = iota + 1 // the server is disabled
	ReasonDrained                    // the server is draining and ConnDrain has passed
	ReasonRemoved                    // the rule or the server is no longer configured
	ReasonDown                       // health checks declared the server down
)

func (r Reason) String() string {
	switch r {
	case ReasonDisabled:
		return "disabled"
	case ReasonDrained:
		return "drained"
	case ReasonRemoved:
		return "removed"
	case ReasonDown:
		return "down"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// ServerRef names the flows of one rule on one server.
type ServerRef struct {
	Rule, Server uint32 // IDs, as flows store them (Rule.ID, Pick.Server)
	RuleName     string
	Group        string
	Addr         netip.Addr
	Port         uint16
	Reason       Reason
}

// Drained lists the (rule, server) pairs whose remaining flows the router should remove
// now (conntrack DeleteIf on Rule and Server, whose OnExpire then calls FlowEnded): flows
// on disabled servers, on servers health checks declared down (ReasonDown: the router
// keeps them when keep_flows_on_down is set), on draining servers once the rule's
// ConnDrain has passed, and on rules or servers no longer configured once the ConnDrain
// their rule had when they were removed has passed (with none, those flows go on until
// they end). A pair is listed while it still has flows, so calling it every second or so
// is enough.
func (b *Balancer) Drained() []ServerRef {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	s := b.snap.Load()
	var out []ServerRef
	for _, ps := range b.pairIDs[1:] {
		if ps.c.connsNow.Load() <= 0 {
			continue
		}
		r, configured := s.Rule(ps.rule.id)
		var why Reason
		switch {
		case !ps.live || !configured:
			if ps.drain == 0 || now.Sub(ps.removed) < ps.drain {
				continue
			}
			why = ReasonRemoved
		case ps.admin == Disabled:
			why = ReasonDisabled
		case ps.srv.health.down:
			why = ReasonDown
		case ps.admin == Draining && r.cfg.ConnDrain > 0 && now.Sub(ps.since) >= r.cfg.ConnDrain:
			why = ReasonDrained
		default:
			continue
		}
		k := ps.srv.key
		out = append(out, ServerRef{Rule: ps.rule.id, Server: ps.id, RuleName: ps.rule.name,
			Group: k.group, Addr: k.addr, Port: k.port, Reason: why})
	}
	return out
}
