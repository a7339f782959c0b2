package vrrp

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// manualClock is a Clock that moves only when the test advances it.
type manualClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []manualWait
	calls atomic.Int64 // After calls: the driver is about to block again
}

type manualWait struct {
	at time.Time
	c  chan time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waits = append(c.waits, manualWait{c.now.Add(d), ch})
	}
	c.calls.Add(1)
	return ch
}

// advance moves the clock by d and fires the timers due.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = slices.DeleteFunc(c.waits, func(w manualWait) bool {
		if w.at.After(c.now) {
			return false
		}
		w.c <- c.now
		return true
	})
}

// step advances the clock and waits until the driver has made its pass and waits
// again (it calls After once per pass).
func (c *manualClock) step(t *testing.T, d time.Duration) {
	t.Helper()
	n := c.calls.Load()
	c.advance(d)
	for deadline := time.Now().Add(5 * time.Second); c.calls.Load() == n; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the driver did not come back to its timers")
		}
	}
}

// TestDriver runs an instance on a manual clock: alone on its link it becomes master
// after Master_Down_Interval and advertises every interval; its port's link going down
// is a fault; a ping that fails lowers its priority; the end of the context sends the
// priority-0 goodbye.
func TestDriver(t *testing.T) {
	in, rec := newInst(t, nil)
	tr, err := NewTracker(TrackerConfig{Ports: []TrackPort{{Name: "outside"}},
		Pings: []TrackPing{{Address: lower4, Count: 1, Weight: 30}}})
	if err != nil {
		t.Fatal(err)
	}
	var linkUp atomic.Bool
	linkUp.Store(true)
	var pingFails atomic.Bool
	pinged := make(chan struct{}, 16)
	clock := &manualClock{now: t0}
	d := NewDriver(DriverConfig{
		Clock:    clock,
		Members:  []Member{{Instance: in, Tracker: tr, Ports: []string{"outside"}, Pings: []netip.Addr{lower4}, PingInterval: time.Hour}},
		LinkUp:   func(port string) bool { return port == "outside" && linkUp.Load() },
		LinkPoll: 100 * time.Millisecond,
		Ping: func(context.Context, netip.Addr) error {
			pinged <- struct{}{}
			if pingFails.Load() {
				return errors.New("no reply")
			}
			return nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	<-pinged // the first ping (it replied): nothing changes

	// Master_Down_Interval is 3 s + skew (100 - 100/256 s ≈ 0.61 s) for priority 100.
	for range 36 {
		clock.step(t, 100*time.Millisecond)
	}
	if got := in.State(); got != Backup {
		t.Fatalf("after 3.6 s: %v, want Backup", got)
	}
	for range 2 {
		clock.step(t, 100*time.Millisecond)
	}
	if got := in.State(); got != Master {
		t.Fatalf("after 3.8 s: %v, want Master", got)
	}
	rec.take()
	for range 30 {
		clock.step(t, 100*time.Millisecond)
	}
	if sent, _ := rec.take(); len(sent) != 3 || !slices.Equal(prios(sent), []uint8{100, 100, 100}) {
		t.Fatalf("3 s as master: adverts with priorities %v, want [100 100 100]", prios(sent))
	}

	linkUp.Store(false)
	clock.step(t, 100*time.Millisecond)
	if got := in.State(); got != Fault {
		t.Fatalf("link down: %v, want Fault", got)
	}
	if _, trans := rec.take(); len(trans) == 0 || trans[0][0] != Master {
		t.Fatalf("link down: transitions %v, want one out of Master", trans)
	}
	linkUp.Store(true)
	clock.step(t, 100*time.Millisecond)

	pingFails.Store(true)
	clock.step(t, time.Hour) // the next ping, which fails
	<-pinged
	for deadline := time.Now().Add(5 * time.Second); in.Priority() != 70; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("a failed ping: priority %d, want 100 - 30", in.Priority())
		}
	}

	for i := 0; in.State() != Master; i++ {
		if i == 100 {
			t.Fatalf("10 s after the link came back: %v, want Master", in.State())
		}
		clock.step(t, 100*time.Millisecond)
	}
	rec.take()
	cancel()
	<-done
	if sent, _ := rec.take(); len(sent) == 0 || sent[len(sent)-1].Priority() != 0 {
		t.Fatalf("shutdown: adverts with priorities %v, want a last one of 0", prios(sent))
	}
}

// TestDriverSet: Set on a running driver shuts down the instances it drops (a master
// says goodbye with priority 0), starts the ones it adds, and leaves the others as they
// were: a master stays master and keeps advertising without a gap.
func TestDriverSet(t *testing.T) {
	a, recA := newInst(t, func(c *Config) { c.Name = "a" })
	b, recB := newInst(t, func(c *Config) { c.Name, c.VRID = "b", 2 })
	c, recC := newInst(t, func(c *Config) { c.Name, c.VRID = "c", 3 })
	clock := &manualClock{now: t0}
	d := NewDriver(DriverConfig{Clock: clock, Members: []Member{{Instance: a}, {Instance: b}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	for i := 0; a.State() != Master || b.State() != Master; i++ {
		if i == 100 {
			t.Fatalf("after 10 s alone: a %v, b %v, want both Master", a.State(), b.State())
		}
		clock.step(t, 100*time.Millisecond)
	}
	recA.take()
	recB.take()

	d.Set([]Member{{Instance: a}, {Instance: c}}) // b goes, c comes, a stays
	if b.State() != Initialize {
		t.Errorf("dropped instance: %v, want Initialize", b.State())
	}
	if sent, _ := recB.take(); len(sent) != 1 || sent[0].Priority() != 0 {
		t.Errorf("dropped master: adverts with priorities %v, want one goodbye of 0", prios(sent))
	}
	if c.State() != Backup {
		t.Errorf("added instance: %v, want Backup (started)", c.State())
	}
	for range 30 {
		clock.step(t, 100*time.Millisecond)
	}
	if _, trans := recA.take(); len(trans) != 0 || a.State() != Master {
		t.Errorf("kept instance: transitions %v, state %v: want none, Master", trans, a.State())
	}
	for range 10 {
		clock.step(t, 100*time.Millisecond)
	}
	if sent, _ := recA.take(); len(sent) != 1 || sent[0].Priority() != 100 {
		t.Errorf("kept master, 1 s: adverts with priorities %v, want [100]", prios(sent))
	}
	for i := 0; c.State() != Master; i++ {
		if i == 100 {
			t.Fatalf("added instance after 10 s: %v, want Master", c.State())
		}
		clock.step(t, 100*time.Millisecond)
	}
	recC.take()
	cancel()
	<-done
	d.Set(nil) // after Run: returns at once
}
