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

// ServerStats are one server's counters, over every rule sharing it.
type ServerStats struct {
	ID    uint32
	Group string
	Addr  netip.Addr
	Port  uint16
	Counters
}

// Stats are the counters of every configured rule and server at one time.
type Stats struct {
	Time    time.Time
	Rules   []RuleStats   // in configuration order
	Servers []ServerStats // in configuration order, each once
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
	seen := map[uint32]bool{}
	for _, r := range b.snap.Load().rules {
		st.Rules = append(st.Rules, RuleStats{ID: r.id, Name: r.cfg.Name, Counters: r.st.c.load()})
		for i := range r.members {
			ss := r.members[i].srv
			if !seen[ss.id] {
				seen[ss.id] = true
				st.Servers = append(st.Servers, ServerStats{ID: ss.id, Group: ss.key.group,
					Addr: ss.key.addr, Port: ss.key.port, Counters: ss.c.load()})
			}
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

// ServerInfo describes a configured server for listings.
type ServerInfo struct {
	ID       uint32
	Group    string   // the server group, or the rule's name for a rule's own servers
	Rules    []string // the rules using it
	Addr     netip.Addr
	Port     uint16
	Weight   int
	MaxConns int
	State    ServerState
	Since    time.Time // when State last changed (zero: never)
	ConnsNow int64
}

// Servers lists the configured servers, each once, in configuration order.
func (b *Balancer) Servers() []ServerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []ServerInfo
	at := map[uint32]int{}
	for _, r := range b.snap.Load().rules {
		for i := range r.members {
			m := &r.members[i]
			if j, ok := at[m.srv.id]; ok {
				out[j].Rules = append(out[j].Rules, r.cfg.Name)
				continue
			}
			at[m.srv.id] = len(out)
			out = append(out, ServerInfo{ID: m.srv.id, Group: m.srv.key.group, Rules: []string{r.cfg.Name},
				Addr: m.addr, Port: m.port, Weight: int(m.weight), MaxConns: int(m.maxConns),
				State: m.srv.admin, Since: m.srv.since, ConnsNow: m.srv.c.connsNow.Load()})
		}
	}
	return out
}

// PersistInfo is one persistence entry.
type PersistInfo struct {
	Rule   string
	Client netip.Prefix // the client prefix (the rule's pmask)
	Server uint32       // server ID
	Addr   netip.Addr   // the server's address and configured port
	Port   uint16
	Flows  int       // live flows from the prefix
	Last   time.Time // last use or end of its last flow
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
		p := PersistInfo{Rule: r.cfg.Name, Client: netip.PrefixFrom(a, r.cfg.PMask), Server: v.server,
			Flows: int(v.flows), Last: time.Unix(0, v.last)}
		if ss := s.srvIDs[v.server]; ss != nil {
			p.Addr, p.Port = ss.key.addr, ss.key.port
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
		return x.Client.Addr().Compare(y.Client.Addr())
	})
	return out
}
