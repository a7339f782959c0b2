package balancer

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// counters are one rule's or server's counters; the data plane adds with atomics.
type counters struct {
	connsNow   atomic.Int64
	connsTotal atomic.Uint64
	pktsIn     atomic.Uint64
	bytesIn    atomic.Uint64
	pktsOut    atomic.Uint64
	bytesOut   atomic.Uint64
	drops      atomic.Uint64
	_          [8]byte // a whole cache line, so neighbours' counters do not share it
}

func (c *counters) packet(reply bool, bytes int) {
	if reply {
		c.pktsOut.Add(1)
		c.bytesOut.Add(uint64(bytes))
		return
	}
	c.pktsIn.Add(1)
	c.bytesIn.Add(uint64(bytes))
}

func (c *counters) load() Counters {
	return Counters{
		ConnsNow:   c.connsNow.Load(),
		ConnsTotal: c.connsTotal.Load(),
		PacketsIn:  c.pktsIn.Load(),
		BytesIn:    c.bytesIn.Load(),
		PacketsOut: c.pktsOut.Load(),
		BytesOut:   c.bytesOut.Load(),
		Drops:      c.drops.Load(),
	}
}

// Counters of a rule or a server. In is client to server, Out is server to client.
type Counters struct {
	ConnsNow   int64  // active flows
	ConnsTotal uint64 // flows ever picked
	PacketsIn  uint64
	BytesIn    uint64
	PacketsOut uint64
	BytesOut   uint64
	Drops      uint64 // new flows without a server, and drops the router counted
}

// RuleStats are one rule's counters.
type RuleStats struct {
	ID   uint32
	Name string
	Counters
}

// ServerStats are the counters of one server within one rule.
type ServerStats struct {
	ID    uint32 // Pick.Server
	Rule  string
	Group string
	Addr  netip.Addr
	Port  uint16 // as configured: 0 = the client's destination port
	Counters
}

// Stats are the counters of every configured rule and server at one time.
type Stats struct {
	Time    time.Time
	Rules   []RuleStats   // in configuration order
	Servers []ServerStats // by rule, then in the rule's (group's) order
	// PersistEntries is the number of persistence entries (expired ones not yet swept
	// included); PersistRefused counts entries not made because the table was full.
	PersistEntries int
	PersistRefused uint64
}

// Stats returns the counters of the configured rules and servers.
func (b *Balancer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{Time: b.now(), PersistEntries: int(b.persist.len.Load()), PersistRefused: b.persist.refused.Load()}
	for _, r := range b.snap.Load().rules {
		st.Rules = append(st.Rules, RuleStats{ID: r.id, Name: r.cfg.Name, Counters: r.st.c.load()})
		for i := range r.members {
			m := &r.members[i]
			st.Servers = append(st.Servers, ServerStats{ID: m.pair.id, Rule: r.cfg.Name,
				Group: m.srv.key.group, Addr: m.addr, Port: m.port, Counters: m.pair.c.load()})
		}
	}
	return st
}

// RuleInfo describes a configured rule for listings.
type RuleInfo struct {
	ID      uint32
	Config  RuleConfig // a copy
	Enabled bool       // the current state (EnableRule / DisableRule)
}

// Rules lists the configured rules in configuration order.
func (b *Balancer) Rules() []RuleInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []RuleInfo
	for _, r := range b.snap.Load().rules {
		out = append(out, RuleInfo{ID: r.id, Config: r.Config(), Enabled: r.st.enabled})
	}
	return out
}

// ServerInfo describes one server within one rule.
type ServerInfo struct {
	ID       uint32 // Pick.Server
	Rule     string
	Group    string // the server group, or the rule's name for a rule's own servers
	Addr     netip.Addr
	Port     uint16 // as configured: 0 = the client's destination port
	Weight   int    // as configured
	MaxConns int
	// MinConns is the lower threshold in effect: min_conns, or IPVS's default of three
	// quarters of MaxConns (0 without MaxConns). Overloaded is set from the flow that
	// brought the server to MaxConns until its flows fall below MinConns; meanwhile it
	// takes no new flows.
	MinConns   int
	Overloaded bool
	State      ServerState
	Since      time.Time // when State last changed (zero: never)
	// Health is HealthUnknown, HealthUp or HealthDown (health checks); Load is the agent's
	// last load figure (0-100), or -1 when no agent reported one; EffectiveWeight is the
	// weight the schedulers use (see health_state.go), relative to the rule's other servers.
	Health          string
	Load            int
	EffectiveWeight int
	// ConnsNow and ConnsTotal count the rule's flows on the server; ServerConns counts
	// the server's flows over every rule (what max_conns limits).
	ConnsNow    int64
	ConnsTotal  uint64
	ServerConns int64
}

// Servers lists the servers of every configured rule, by rule in configuration order.
func (b *Balancer) Servers() []ServerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []ServerInfo
	for _, r := range b.snap.Load().rules {
		for i := range r.members {
			m := &r.members[i]
			out = append(out, ServerInfo{ID: m.pair.id, Rule: r.cfg.Name, Group: m.srv.key.group,
				Addr: m.addr, Port: m.port, Weight: r.cfg.Servers[i].Weight, MaxConns: int(m.maxConns),
				MinConns: int(m.lowConns), Overloaded: m.full(), State: m.pair.admin, Since: m.pair.since, Health: m.srv.health.String(),
				Load: m.srv.health.load, EffectiveWeight: int(m.weight), ConnsNow: m.pair.c.connsNow.Load(),
				ConnsTotal: m.pair.c.connsTotal.Load(), ServerConns: m.srv.conns.Load()})
		}
	}
	return out
}

// PersistInfo is one persistence entry.
type PersistInfo struct {
	Rule string
	// Key is the rule's PersistKey. Client is the client prefix (the rule's pmask) and
	// KeyPort the client's port (PersistSrcPort); for PersistDstPort, Client is the VIP
	// as a single-address prefix and KeyPort the destination port. KeyPort is 0 for
	// PersistSrc.
	Key     PersistKey
	Client  netip.Prefix
	KeyPort uint16
	Server  uint32     // Pick.Server
	Addr    netip.Addr // the server's address and configured port
	Port    uint16
	Flows   int       // live flows from the prefix
	Last    time.Time // last use or end of its last flow
	// Expires is when the entry goes if nothing uses it; zero while it has flows.
	Expires time.Time
}

// Persist lists the live persistence entries of the configured rules, by rule then client.
func (b *Balancer) Persist() []PersistInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.snap.Load()
	now := b.now().UnixNano()
	var out []PersistInfo
	b.persist.each(func(k persistKey, v persistVal) {
		r, ok := s.Rule(k.rule)
		if !ok || v.expired(now) {
			return
		}
		a := netip.AddrFrom16(k.addr)
		if r.cfg.VIP.Is4() {
			a = a.Unmap()
		}
		bits := r.cfg.PMask
		if r.cfg.PersistKey == PersistDstPort {
			bits = a.BitLen()
		}
		p := PersistInfo{Rule: r.cfg.Name, Key: r.cfg.PersistKey, Client: netip.PrefixFrom(a, bits), KeyPort: k.port,
			Server: v.server, Flows: int(v.flows), Last: time.Unix(0, v.last)}
		if int(v.server) < len(s.pairIDs) && s.pairIDs[v.server] != nil {
			k := s.pairIDs[v.server].srv.key
			p.Addr, p.Port = k.addr, k.port
		}
		if v.flows <= 0 {
			p.Expires = time.Unix(0, v.last+v.timeout)
		}
		out = append(out, p)
	})
	slices.SortFunc(out, func(x, y PersistInfo) int {
		if x.Rule != y.Rule {
			if x.Rule < y.Rule {
				return -1
			}
			return 1
		}
		if c := x.Client.Addr().Compare(y.Client.Addr()); c != 0 {
			return c
		}
		return int(x.KeyPort) - int(y.KeyPort)
	})
	return out
}
