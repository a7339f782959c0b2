package health

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeProber answers from a script per address: an error (nil = success) and, for UDP,
// a reply. It records the time of every call per address.
type fakeProber struct {
	mu    sync.Mutex
	err   map[netip.Addr]error
	reply map[netip.Addr][]byte
	calls map[netip.Addr][]time.Time
	ports map[netip.Addr]uint16 // the port of the last TCP or UDP call
}

func newFakeProber() *fakeProber {
	return &fakeProber{err: map[netip.Addr]error{}, reply: map[netip.Addr][]byte{}, calls: map[netip.Addr][]time.Time{}, ports: map[netip.Addr]uint16{}}
}

// set scripts a's answers from now on and returns how many calls a had before.
func (f *fakeProber) set(a netip.Addr, err error) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err[a] = err
	return len(f.calls[a])
}

func (f *fakeProber) ncalls(a netip.Addr) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[a])
}

func (f *fakeProber) firstCalls() map[netip.Addr]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[netip.Addr]time.Time{}
	for a, c := range f.calls {
		if len(c) > 0 {
			m[a] = c[0]
		}
	}
	return m
}

func (f *fakeProber) answer(ctx context.Context, a netip.Addr) error {
	f.mu.Lock()
	f.calls[a] = append(f.calls[a], time.Now())
	err := f.err[a]
	f.mu.Unlock()
	if errors.Is(err, context.DeadlineExceeded) { // silence: wait for the timeout
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *fakeProber) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	return time.Millisecond, f.answer(ctx, dst)
}

func (f *fakeProber) TCPConnect(ctx context.Context, dst netip.AddrPort) (time.Duration, error) {
	f.mu.Lock()
	f.ports[dst.Addr()] = dst.Port()
	f.mu.Unlock()
	return 2 * time.Millisecond, f.answer(ctx, dst.Addr())
}

func (f *fakeProber) UDPExchange(ctx context.Context, dst netip.AddrPort, req, resp []byte) (int, time.Duration, error) {
	if err := f.answer(ctx, dst.Addr()); err != nil {
		return 0, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return copy(resp, f.reply[dst.Addr()]), 3 * time.Millisecond, nil
}

// netProber probes through the kernel's sockets, for live servers on loopback.
type netProber struct{}

func (netProber) Ping(context.Context, netip.Addr) (time.Duration, error) {
	return 0, errors.New("ping needs the router")
}

func (netProber) TCPConnect(ctx context.Context, dst netip.AddrPort) (time.Duration, error) {
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", dst.String())
	if errors.Is(err, syscall.ECONNREFUSED) {
		return 0, ErrRefused
	}
	if err != nil {
		return 0, err
	}
	c.Close()
	return time.Since(start), nil
}

func (netProber) UDPExchange(ctx context.Context, dst netip.AddrPort, req, resp []byte) (int, time.Duration, error) {
	start := time.Now()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(req); err != nil {
		return 0, 0, err
	}
	n, err := c.Read(resp)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return 0, 0, ErrUnreachable
	case ctx.Err() != nil:
		return 0, 0, ctx.Err()
	case err != nil:
		return 0, 0, err
	}
	return n, time.Since(start), nil
}

// addrN is the test server 203.0.113.i.
func addrN(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }

func target(i int) Target {
	return Target{Group: "web", Addr: addrN(i), Port: 80, VIP: netip.MustParseAddr("198.51.100.100"), Proto: 6}
}

// event is one OnChange call, with the number of probes of its target at that time
// when the engine's prober is a *fakeProber.
type event struct {
	t     Target
	up    bool
	calls int
}

// engine returns an Engine on p whose OnChange and OnLoad calls arrive on the channels.
func engine(p Prober) (*Engine, chan event, chan int) {
	ch := make(chan event, 100)
	loads := make(chan int, 100)
	e := New(Config{Prober: p,
		OnChange: func(t Target, up bool) {
			n := 0
			if f, ok := p.(*fakeProber); ok {
				n = f.ncalls(t.Addr)
			}
			ch <- event{t, up, n}
		},
		OnLoad: func(_ Target, l int) { loads <- l }})
	return e, ch, loads
}

// run runs e until the test ends, and fails the test if Run does not return then.
func run(t *testing.T, e *Engine) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return cancel
}

// waitEvent returns the next OnChange call, failing after d.
func waitEvent(t *testing.T, ch chan event, d time.Duration) event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(d):
		t.Fatalf("no health transition within %v", d)
	}
	return event{}
}

// waitResult polls e's result of t until ok accepts it, failing after d.
func waitResult(t *testing.T, e *Engine, tg Target, d time.Duration, ok func(Result) bool) Result {
	t.Helper()
	deadline := time.Now().Add(d)
	var last Result
	for time.Now().Before(deadline) {
		for _, r := range e.Results() {
			if r.Target == tg {
				last = r
				if ok(r) {
					return r
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("result of %v never as expected; last %+v", tg, last)
	return last
}
