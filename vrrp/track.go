package vrrp

import (
	"fmt"
	"net/netip"
	"sync"
)

// TrackPort is a port whose link state an instance follows (keepalived's
// track_interface, with ulb's weights): link down means Fault when Weight is 0, else
// a priority decrease by Weight.
type TrackPort struct {
	Name   string
	Weight int // 0 or 1..254
}

// TrackPing is an address (a gateway) the router pings: Count consecutive pings
// without a reply make it down (Fault when Weight is 0, else a priority decrease by
// Weight) until a reply comes again.
type TrackPing struct {
	Address netip.Addr
	Count   int // 1 or more
	Weight  int // 0 or 1..254
}

// TrackGroup is a server group whose health an instance follows: unhealthy means Fault
// when Weight is 0, else a priority decrease by Weight.
type TrackGroup struct {
	Name   string
	Weight int // 0 or 1..254
}

// TrackerConfig lists what a Tracker follows.
type TrackerConfig struct {
	Ports  []TrackPort
	Pings  []TrackPing
	Groups []TrackGroup
}

// MaxTrackWeight bounds a tracking weight.
const MaxTrackWeight = PriorityOwner - 1

// Tracker combines port link states, ping results and server-group health into a
// fault flag and a priority adjustment for Instance.SetFault and
// Instance.SetPriorityAdjust. It is pure logic: the router feeds it events. Every item
// starts up (healthy). It is safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	ports   []TrackPort
	portUp  []bool
	pings   []TrackPing
	fails   []int // consecutive failures
	groups  []TrackGroup
	groupOK []bool
}

// NewTracker checks cfg and returns a tracker with every item up.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	weight := func(kind, name string, w int) error {
		if w < 0 || w > MaxTrackWeight {
			return fmt.Errorf("%w: track %s %s: weight %d, want 0..%d", ErrConfig, kind, name, w, MaxTrackWeight)
		}
		return nil
	}
	for _, p := range cfg.Ports {
		if err := weight("port", p.Name, p.Weight); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.Pings {
		if err := weight("ping", p.Address.String(), p.Weight); err != nil {
			return nil, err
		}
		if p.Count < 1 {
			return nil, fmt.Errorf("%w: track ping %v: count %d, want 1 or more", ErrConfig, p.Address, p.Count)
		}
	}
	for _, g := range cfg.Groups {
		if err := weight("group", g.Name, g.Weight); err != nil {
			return nil, err
		}
	}
	t := &Tracker{
		ports:   append([]TrackPort(nil), cfg.Ports...),
		portUp:  make([]bool, len(cfg.Ports)),
		pings:   append([]TrackPing(nil), cfg.Pings...),
		fails:   make([]int, len(cfg.Pings)),
		groups:  append([]TrackGroup(nil), cfg.Groups...),
		groupOK: make([]bool, len(cfg.Groups)),
	}
	for i := range t.portUp {
		t.portUp[i] = true
	}
	for i := range t.groupOK {
		t.groupOK[i] = true
	}
	return t, nil
}

// SetPort records the link state of every tracked port of that name and reports
// whether the result (Result) changed.
func (t *Tracker) SetPort(name string, up bool) (changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, d := t.result()
	for i, p := range t.ports {
		if p.Name == name {
			t.portUp[i] = up
		}
	}
	f2, d2 := t.result()
	return f != f2 || d != d2
}

// PingResult records one ping of addr (replied or not) and reports whether the result
// changed.
func (t *Tracker) PingResult(addr netip.Addr, replied bool) (changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, d := t.result()
	for i, p := range t.pings {
		if p.Address != addr {
			continue
		}
		if replied {
			t.fails[i] = 0
		} else if t.fails[i] < p.Count {
			t.fails[i]++
		}
	}
	f2, d2 := t.result()
	return f != f2 || d != d2
}

// SetGroup records the health of every tracked server group of that name and reports
// whether the result changed.
func (t *Tracker) SetGroup(name string, healthy bool) (changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, d := t.result()
	for i, g := range t.groups {
		if g.Name == name {
			t.groupOK[i] = healthy
		}
	}
	f2, d2 := t.result()
	return f != f2 || d != d2
}

// Result returns whether some weightless item is down (fault) and the sum of the
// negated weights of the weighted items that are down (delta, 0 or negative).
func (t *Tracker) Result() (fault bool, delta int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.result()
}

func (t *Tracker) result() (fault bool, delta int) {
	down := func(w int) {
		if w == 0 {
			fault = true
		}
		delta -= w
	}
	for i, p := range t.ports {
		if !t.portUp[i] {
			down(p.Weight)
		}
	}
	for i, p := range t.pings {
		if t.fails[i] >= p.Count {
			down(p.Weight)
		}
	}
	for i, g := range t.groups {
		if !t.groupOK[i] {
			down(g.Weight)
		}
	}
	return fault, delta
}

// Apply hands the result to an instance.
func (t *Tracker) Apply(in *Instance) {
	fault, delta := t.Result()
	in.SetPriorityAdjust(delta)
	in.SetFault(fault)
}
