package arpd

import (
	"net/netip"
	"sync/atomic"
	"time"

	"ulb/router/header"
)

// State is a neighbour entry's reachability state (RFC 4861 §7.3.2, plus Linux's FAILED
// and PERMANENT).
type State uint32

// Entry states.
const (
	StateIncomplete State = iota + 1 // resolution in progress, frames queued
	StateReachable                   // confirmed recently
	StateStale                       // address known but unconfirmed; the next use starts DELAY
	StateDelay                       // used while STALE; a unicast probe follows unless confirmed
	StateProbe                       // unicast probes sent, waiting for a confirmation
	StateFailed                      // resolution failed; misses are refused until the entry expires
	StatePermanent                   // static entry, never probed or expired
)

var stateNames = [...]string{
	StateIncomplete: "INCOMPLETE",
	StateReachable:  "REACHABLE",
	StateStale:      "STALE",
	StateDelay:      "DELAY",
	StateProbe:      "PROBE",
	StateFailed:     "FAILED",
	StatePermanent:  "PERMANENT",
}

func (s State) String() string {
	if s >= StateIncomplete && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "NONE"
}

// hasMAC reports whether an entry in state s holds a usable link-layer address.
func (s State) hasMAC() bool {
	switch s {
	case StateReachable, StateStale, StateDelay, StateProbe, StatePermanent:
		return true
	}
	return false
}

// entry is one neighbour. The mutex of Neighbours guards it: Lookup holds the read lock
// and writes only the atomic fields (state for STALE→DELAY, delayEnd, used); every other
// writer holds the write lock.
type entry struct {
	addr     netip.Addr
	mac      header.MAC
	state    atomic.Uint32 // a State
	delayEnd atomic.Int64  // Unix ns when DELAY ends, set with the STALE→DELAY transition
	used     atomic.Int64  // coarse Unix ns of the last Lookup hit (see Neighbours.coarse)

	updated   time.Time   // last change of state or MAC (a confirmation for REACHABLE)
	probes    int         // solicitations sent in INCOMPLETE or PROBE
	nextProbe time.Time   // when the next solicitation is due, or the state times out
	isRouter  bool        // the neighbour's last NA had the R flag
	queue     []*frameBuf // frames waiting for INCOMPLETE to resolve, oldest first
}

func (e *entry) State() State       { return State(e.state.Load()) }
func (e *entry) setState(s State)   { e.state.Store(uint32(s)) }
func (e *entry) lastUse() time.Time { return time.Unix(0, e.used.Load()) }

// Entry describes one neighbour for `ulbadm show-neigh`.
type Entry struct {
	Port     string
	Address  netip.Addr
	MAC      header.MAC // zero while INCOMPLETE or FAILED
	State    string
	Updated  time.Time     // last change of state or MAC
	Age      time.Duration // since Updated
	Queued   int           // frames waiting for resolution
	IsRouter bool          // IPv6: the neighbour advertised itself as a router
}
