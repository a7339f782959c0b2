package vrrp

import (
	"fmt"
	"time"
)

// SyncGroup makes instances change state together, with keepalived's vrrp_sync_group
// semantics, so that (for example) a VIP outside and the servers' gateway inside never
// end up on different nodes:
//   - when a member fails (its tracking reports a fault) every member goes to Fault, a
//     master sending priority 0 first; they leave Fault together when no member fails;
//   - when a member goes Backup every master member goes Backup too (sending priority 0
//     so that the peer's instance takes over after Skew_Time);
//   - a member whose Master_Down_Timer fires becomes master only when another member is
//     master or every other member's timer has fired too (it waits otherwise, preferring
//     backup to thrashing); when a member becomes master the backup members follow.
//
// Transitions a group makes do not propagate again, so there are no loops. As in
// keepalived, the members should have the same priority order on every node (tracking
// weights in a group are better left at 0, which means Fault).
type SyncGroup struct {
	name    string
	members []*Instance
	busy    bool // propagating: transitions of members do not propagate again
}

// NewSyncGroup joins the instances, which must be in Initialize and in no other group,
// into a group.
func NewSyncGroup(name string, members ...*Instance) (*SyncGroup, error) {
	g := &SyncGroup{name: name}
	for _, in := range members {
		if in.sync != nil {
			return nil, fmt.Errorf("%w: %s is already in sync group %s", ErrConfig, in.cfg.Name, in.sync.name)
		}
		if in.State() != Initialize {
			return nil, fmt.Errorf("%w: %s joins sync group %s after Start", ErrConfig, in.cfg.Name, name)
		}
	}
	for _, in := range members {
		in.sync = g
		g.members = append(g.members, in)
	}
	return g, nil
}

// Name returns the group's name.
func (g *SyncGroup) Name() string { return g.name }

// Members returns the member instances.
func (g *SyncGroup) Members() []*Instance { return append([]*Instance(nil), g.members...) }

// anyFault reports whether the tracking of some member fails.
func (g *SyncGroup) anyFault() bool {
	for _, m := range g.members {
		if m.ownFault.Load() {
			return true
		}
	}
	return false
}

// canGoMaster reports whether in may become master: another member is master, or all
// the others wait to become master too.
func (g *SyncGroup) canGoMaster(in *Instance) bool {
	all := true
	for _, m := range g.members {
		if m == in {
			continue
		}
		st, want := m.published()
		if st == Master {
			return true
		}
		if st != Backup || !want {
			all = false
		}
	}
	return all
}

// changed propagates a member's transition to the others.
func (g *SyncGroup) changed(src *Instance, to State, now time.Time) {
	if g.busy {
		return
	}
	g.busy = true
	defer func() { g.busy = false }()
	for _, m := range g.members {
		if m == src {
			continue
		}
		switch to {
		case Master:
			m.syncMaster(now)
		case Backup:
			m.syncBackup(now)
		case Fault:
			m.syncFault()
		}
	}
}

// faultChanged applies a change of a member's tracking to the whole group.
func (g *SyncGroup) faultChanged(src *Instance, now time.Time) {
	if g.busy {
		return
	}
	g.busy = true
	defer func() { g.busy = false }()
	for _, m := range g.members {
		if m != src {
			m.syncFault()
		}
	}
}

// syncMaster makes a backup member master.
func (in *Instance) syncMaster(now time.Time) {
	in.mu.Lock()
	in.lastNow = later(in.lastNow, now)
	if in.state == Backup {
		in.becomeMaster(now)
	}
	in.mu.Unlock()
	in.flush()
}

// syncBackup makes a master member backup (announcing priority 0) and takes a member
// out of a Fault that has cleared.
func (in *Instance) syncBackup(now time.Time) {
	in.mu.Lock()
	in.lastNow = later(in.lastNow, now)
	switch in.state {
	case Master:
		in.queueAdvert(PriorityStop)
		in.mai = in.cfg.Interval
		in.enterBackup(now)
	case Fault:
		if !in.faulty() {
			in.recover = false
			in.startup(now)
		}
	}
	in.mu.Unlock()
	in.flush()
}

// syncFault re-evaluates a member's fault inputs after another member's changed.
func (in *Instance) syncFault() {
	in.mu.Lock()
	in.applyFault()
	in.mu.Unlock()
	in.flush()
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
