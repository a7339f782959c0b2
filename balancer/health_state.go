package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Health and load of servers, as the health checks (package balancer/health) report them.
//
// A server's health is kept per server identity (group, address, port), so every rule
// sharing a group sees it. It is "unknown" until a check first reports it, and unknown
// counts as up: a server takes flows until a check says otherwise, as in Solaris ILB
// (and a server whose group has no health check is never anything but unknown). A server
// that is down takes no new flows, whatever its admin state; usable = enabled && !down &&
// effective weight > 0. Its persistence entries are dropped when it goes down, and
// Drained reports its flows with ReasonDown (the router decides about keep_flows_on_down).
//
// The agent's load (0-100) scales a server's effective weight: weight × (100 − load) / 100.
// Load 100 takes no new flows. The effective weights of a rule's servers are kept as
// integers in exact proportion — weight × (100 − load), divided by the greatest common
// divisor of 100 and every server's (100 − load) — so a weight of 1 keeps its share at
// any load (weights 1 and 1 at loads 20 and 80 become 4 and 1) and servers without
// agents keep their configured weights exactly. Every weighted algorithm and Maglev use
// the effective weight; a Maglev table is rebuilt only when effective weights change.

// MaxLoad is the largest agent load: a server at MaxLoad takes no new flows.
const MaxLoad = 100

// ErrLoad is returned by SetLoad for a load outside 0-MaxLoad.
var ErrLoad = errors.New("load out of range (0-100)")

// Health states as ServerInfo.Health shows them.
const (
	HealthUnknown = "unknown"
	HealthUp      = "up"
	HealthDown    = "down"
)

// healthState is one server's health and load. Guarded by Balancer.mu.
type healthState struct {
	known bool // a check has reported the server
	down  bool
	since time.Time // when the health last changed
	load  int       // the agent's last load, or -1 for none
}

func (h *healthState) String() string {
	switch {
	case !h.known:
		return HealthUnknown
	case h.down:
		return HealthDown
	}
	return HealthUp
}

// matchServers returns the live servers of group (a server group's name, or a rule's
// name for a rule's own servers) at addr and port (0: every port of addr). b.mu is held.
func (b *Balancer) matchServers(group string, addr netip.Addr, port uint16) []*serverState {
	seen := map[*serverState]bool{}
	var out []*serverState
	for _, ps := range b.pairs {
		k := ps.srv.key
		if !ps.live || k.group != group || k.addr != addr || (port != 0 && k.port != port) || seen[ps.srv] {
			continue
		}
		seen[ps.srv] = true
		out = append(out, ps.srv)
	}
	return out
}

// SetHealth records a health check's verdict on a server of group (a server group's name,
// or a rule's name for a rule's own servers) at addr and port (0: every port of addr).
// A server going down takes no new flows from the next snapshot on, and its persistence
// entries are dropped; coming up it takes flows again. Matching no configured server is
// ErrNotFound.
func (b *Balancer) SetHealth(group string, addr netip.Addr, port uint16, up bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	srvs := b.matchServers(group, addr, port)
	if len(srvs) == 0 {
		return fmt.Errorf("server %v in group %q: %w", netip.AddrPortFrom(addr, port), group, ErrNotFound)
	}
	now := b.now()
	changed := false
	drop := map[uint32]bool{}
	for _, ss := range srvs {
		h := &ss.health
		if h.known && h.down == !up {
			continue
		}
		wasDown := h.down
		h.known, h.down = true, !up
		if wasDown != h.down {
			h.since = now
			changed = true
		}
		if h.down {
			for _, ps := range b.pairs {
				if ps.srv == ss {
					drop[ps.id] = true
				}
			}
		}
		b.log.LogAttrs(context.Background(), slog.LevelInfo, "server health",
			slog.String("server", ss.key.String()), slog.String("health", h.String()))
	}
	if len(drop) > 0 {
		b.persist.dropServers(drop)
	}
	if changed {
		b.publish()
	}
	return nil
}

// SetLoad records an agent's load figure (0-MaxLoad) for a server (group, addr and port
// as in SetHealth): it scales the server's effective weight (see the package's health
// notes). A new snapshot is published only when the load changes.
func (b *Balancer) SetLoad(group string, addr netip.Addr, port uint16, load int) error {
	if load < 0 || load > MaxLoad {
		return fmt.Errorf("server %v in group %q: %w: %d", netip.AddrPortFrom(addr, port), group, ErrLoad, load)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	srvs := b.matchServers(group, addr, port)
	if len(srvs) == 0 {
		return fmt.Errorf("server %v in group %q: %w", netip.AddrPortFrom(addr, port), group, ErrNotFound)
	}
	changed := false
	for _, ss := range srvs {
		if ss.health.load != load {
			ss.health.load = load
			changed = true
		}
	}
	if changed {
		b.publish()
	}
	return nil
}

// forgetHealth resets the health and load of servers no longer configured, so a server
// configured again later starts unknown, as its new checks do. b.mu is held.
func (b *Balancer) forgetHealth() {
	live := map[*serverState]bool{}
	for _, ps := range b.pairs {
		if ps.live {
			live[ps.srv] = true
		}
	}
	for _, ss := range b.servers {
		if !live[ss] {
			ss.health = healthState{load: -1}
		}
	}
}

// loadFactor is 100 − load of a server, the factor of its effective weight.
func (ss *serverState) loadFactor() int64 {
	if ss.health.load < 0 {
		return MaxLoad
	}
	return int64(MaxLoad - ss.health.load)
}

// setEffectiveWeights sets the weight and eligibility of r's members from their
// configured weights, admin state, health and load (see the package's health notes).
// b.mu is held.
func (r *Rule) setEffectiveWeights() {
	g := int64(MaxLoad)
	for j := range r.members {
		if f := r.members[j].srv.loadFactor(); r.cfg.Servers[j].Weight > 0 && f > 0 {
			g = gcd(g, f)
		}
	}
	for j := range r.members {
		m := &r.members[j]
		m.down = m.srv.health.down
		m.weight = int64(r.cfg.Servers[j].Weight) * m.srv.loadFactor() / g
		m.eligible = m.pair.admin == Enabled && !m.down && m.weight > 0
	}
}

// Healthy returns how many of the rule's servers are not down by their health checks
// (unknown counts as up), whatever their admin state, when the snapshot was built.
func (r *Rule) Healthy() int {
	n := 0
	for i := range r.members {
		if !r.members[i].down {
			n++
		}
	}
	return n
}

// AllDown reports whether the rule has servers and health checks declared every one of
// them down: the router then answers new connections with a RST (ICMP port unreachable
// for UDP) or sends them to the sorry server.
func (r *Rule) AllDown() bool { return len(r.members) > 0 && r.Healthy() == 0 }

// dropServers deletes the persistence entries pointing at the given pair IDs.
func (t *persistTable) dropServers(pairs map[uint32]bool) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, v := range sh.m {
			if pairs[v.server] {
				delete(sh.m, k)
				t.len.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}
