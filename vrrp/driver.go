package vrrp

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"
)

// Clock is the driver's time: the router's clock in production, a manual one in tests.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time                         { return time.Now() }
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Member is one instance the driver runs, with what it tracks.
type Member struct {
	Instance *Instance
	// Tracker follows the instance's ports, pinged addresses and server groups.
	Tracker *Tracker
	// Ports are the names of the ports whose links the tracker follows.
	Ports []string
	// Pings are pinged every PingInterval (default 1s), the results fed to Tracker.
	Pings        []netip.Addr
	PingInterval time.Duration
	// Tick, when set, runs after the instance's own timers on every pass (a master's
	// gratuitous ARP refresh).
	Tick func(now time.Time)
}

// DriverConfig is what NewDriver needs.
type DriverConfig struct {
	Clock   Clock // SystemClock when nil
	Members []Member
	// LinkUp reports whether a port's link is up; polled every LinkPoll (default 100ms).
	LinkUp   func(port string) bool
	LinkPoll time.Duration
	// Ping sends one echo request and waits for its reply until ctx ends.
	Ping func(ctx context.Context, dst netip.Addr) error
	Log  *slog.Logger
}

// Driver runs a node's instances beside the data plane: it starts them, fires their
// timers, polls the tracked links, pings the tracked addresses, and when its context
// ends makes every master say goodbye (priority 0). Set changes the instances it runs
// while it runs (a reload): the members that stay keep their state and timers.
type Driver struct {
	cfg  DriverConfig
	wake chan struct{}

	mu      sync.Mutex
	members []Member // before Run; then Run's own copy is authoritative
	running bool
	updates chan memberUpdate // Set's requests to a running driver
	stopped chan struct{}     // closed when Run returns
}

// memberUpdate is a new member set; done is closed once Run has applied it.
type memberUpdate struct {
	members []Member
	done    chan struct{}
}

// NewDriver makes a driver; Run starts it.
func NewDriver(cfg DriverConfig) *Driver {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.LinkPoll <= 0 {
		cfg.LinkPoll = 100 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Driver{cfg: cfg, wake: make(chan struct{}, 1), members: cfg.Members,
		updates: make(chan memberUpdate), stopped: make(chan struct{})}
}

// Wake tells the driver that a timer may have moved (an advert was received, a
// tracked group changed). It never blocks.
func (d *Driver) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Set replaces the instances the driver runs, matched by *Instance: those no longer in
// members are shut down (a master sends priority 0 and releases its addresses), new
// ones are started, and the others go on untouched. On a running driver it returns once
// the change is made (or Run has returned); before Run it only records the set.
func (d *Driver) Set(members []Member) {
	d.mu.Lock()
	if !d.running {
		d.members = append([]Member(nil), members...)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	u := memberUpdate{members: append([]Member(nil), members...), done: make(chan struct{})}
	select {
	case d.updates <- u:
		select {
		case <-u.done:
		case <-d.stopped:
		}
	case <-d.stopped:
	}
}

// runningMember is a member as Run drives it: with the cancel of its ping loops.
type runningMember struct {
	Member
	stopPings context.CancelFunc
}

// Run drives the instances until ctx ends, then shuts them down (a master sends its
// priority-0 advert) and returns.
func (d *Driver) Run(ctx context.Context) {
	d.mu.Lock()
	d.running = true
	initial := d.members
	d.mu.Unlock()
	defer close(d.stopped)
	// Adverts must leave on time even when the forwarding loops keep the CPUs busy: the
	// timer loop gets a thread of its own, with a better scheduling priority when the
	// process may raise it (a late advert is a needless takeover at the peers).
	runtime.LockOSThread() // not unlocked: a reniced thread ends with the goroutine
	if err := raiseThreadPriority(); err != nil {
		d.cfg.Log.Debug("vrrp: cannot raise the timer thread's priority", "err", err)
	}
	clock := d.cfg.Clock
	var wg sync.WaitGroup
	var members []runningMember
	start := func(m Member) {
		pctx, cancel := context.WithCancel(ctx)
		m.Instance.Start(clock.Now())
		for _, a := range m.Pings {
			wg.Go(func() { d.pingLoop(pctx, m, a) })
		}
		members = append(members, runningMember{Member: m, stopPings: cancel})
	}
	for _, m := range initial {
		start(m)
	}
	nextLinks := clock.Now().Add(d.cfg.LinkPoll)
	for {
		now := clock.Now()
		if !now.Before(nextLinks) {
			nextLinks = now.Add(d.cfg.LinkPoll)
			for _, m := range members {
				d.trackLinks(m.Member)
			}
		}
		for _, m := range members {
			m.Instance.Tick(now)
			if m.Tick != nil {
				m.Tick(now)
			}
		}
		next := nextLinks
		for _, m := range members {
			if t := m.Instance.NextTimeout(); !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			now := clock.Now()
			for _, m := range members {
				m.Instance.Shutdown(now)
			}
			return
		case u := <-d.updates:
			keep := map[*Instance]bool{}
			for _, m := range u.members {
				keep[m.Instance] = true
			}
			now := clock.Now()
			had := map[*Instance]bool{}
			var stay []runningMember
			for _, m := range members {
				had[m.Instance] = true
				if keep[m.Instance] {
					stay = append(stay, m)
					continue
				}
				m.stopPings()
				m.Instance.Shutdown(now)
			}
			members = stay
			for _, m := range u.members {
				if !had[m.Instance] {
					start(m)
				}
			}
			close(u.done)
		case <-clock.After(max(next.Sub(now), 0)):
		case <-d.wake:
		}
	}
}

// trackLinks feeds the link states of a member's ports to its tracker.
func (d *Driver) trackLinks(m Member) {
	if d.cfg.LinkUp == nil || m.Tracker == nil {
		return
	}
	changed := false
	for _, p := range m.Ports {
		if m.Tracker.SetPort(p, d.cfg.LinkUp(p)) {
			changed = true
		}
	}
	if changed {
		m.Tracker.Apply(m.Instance)
	}
}

// pingLoop pings a tracked address at the member's interval and feeds the results.
func (d *Driver) pingLoop(ctx context.Context, m Member, addr netip.Addr) {
	every := m.PingInterval
	if every <= 0 {
		every = time.Second
	}
	for {
		next := d.cfg.Clock.After(every)
		pctx, cancel := context.WithTimeout(ctx, every)
		err := d.cfg.Ping(pctx, addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if m.Tracker.PingResult(addr, err == nil) {
			m.Tracker.Apply(m.Instance)
			d.Wake()
		}
		select {
		case <-ctx.Done():
			return
		case <-next:
		}
	}
}
