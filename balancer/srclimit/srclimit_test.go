package srclimit

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)} }
func addr(s string) netip.Addr       { return netip.MustParseAddr(s) }
func count(l *Limiter, a netip.Addr, n int) (ok int) {
	for range n {
		if l.Allow(a) {
			ok++
		}
	}
	return ok
}

// A prefix gets its burst at once, then its rate; other prefixes are not affected; the
// addresses of one prefix share its allowance.
func TestLimit(t *testing.T) {
	clk := newClock()
	l, err := New(Config{Rate: 10, Burst: 5, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if got := count(l, addr("192.0.2.1"), 20); got != 5 {
		t.Errorf("burst: %d allowed, want 5", got)
	}
	if got := count(l, addr("192.0.2.200"), 5); got != 0 {
		t.Errorf("same /24: %d allowed, want 0", got)
	}
	if got := count(l, addr("198.51.100.1"), 5); got != 5 {
		t.Errorf("another prefix: %d allowed, want 5", got)
	}
	// A second later: ten more (the rate), not more than the burst at once.
	clk.add(time.Second)
	if got := count(l, addr("192.0.2.9"), 20); got != 5 {
		t.Errorf("after 1s: %d allowed at once, want the burst 5", got)
	}
	for range 10 {
		clk.add(100 * time.Millisecond)
		if !l.Allow(addr("192.0.2.9")) {
			t.Fatal("refused at the rate")
		}
	}
	// IPv6 by /64; an IPv4-mapped address is IPv4.
	if got := count(l, addr("2001:db8:1:2::1"), 6) + count(l, addr("2001:db8:1:2:ffff::9"), 6); got != 5 {
		t.Errorf("one /64: %d allowed, want 5", got)
	}
	if got := count(l, addr("2001:db8:1:3::1"), 5); got != 5 {
		t.Errorf("another /64: %d allowed, want 5", got)
	}
	if got := count(l, addr("::ffff:192.0.2.50"), 1); got != 0 {
		t.Errorf("IPv4-mapped 192.0.2.50: %d allowed, want 0 (its /24 is spent)", got)
	}
	st := l.Stats()
	if st.Allowed+st.Refused != 20+5+5+20+10+12+5+1 || st.Allowed != 5+5+5+10+5+5 {
		t.Errorf("stats %+v", st)
	}
}

// Concurrent callers never get more than the allowance.
func TestLimitConcurrent(t *testing.T) {
	clk := newClock()
	l, _ := New(Config{Rate: 1, Burst: 100, Now: clk.now})
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := count(l, addr("203.0.113.7"), 1000)
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != 100 {
		t.Errorf("%d allowed from 8 goroutines, want 100", total)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{{}, {Rate: -1}, {Rate: 1, Burst: -1}, {Rate: 1, Bits4: 33}, {Rate: 1, Bits6: 129},
		{Rate: 1, Buckets: 3}} {
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestAllowAllocs(t *testing.T) {
	l, _ := New(Config{Rate: 1e9})
	a := addr("2001:db8::1")
	if n := testing.AllocsPerRun(100, func() { l.Allow(a) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	l, _ := New(Config{Rate: 1e9})
	b.RunParallel(func(pb *testing.PB) {
		a := addr("192.0.2.1")
		for pb.Next() {
			l.Allow(a)
		}
	})
}
