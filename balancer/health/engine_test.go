package health

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestStep checks the state machine: fall after Count failures, rise after Rise
// successes, and a report on every transition, the first success (unknown→up) too.
func TestStep(t *testing.T) {
	tests := []struct {
		name    string
		results string // o = ok, x = fail
		states  string // u = unknown, U = up, D = down, after each result
		reports string // . = none, d = reported down, u = reported up
	}{
		{"first success is up, reported", "oo", "UU", "u."},
		{"unknown until count failures", "xxx", "uuD", "..d"},
		{"up to down after count", "oxxx", "UUUD", "u..d"},
		{"failures must be consecutive", "xxoxxoxx", "uuUUUUUU", "..u....."},
		{"down to up after rise", "xxxoo", "uuDDU", "..d.u"},
		{"rise must be consecutive", "xxxoxoo", "uuDDDDU", "..d...u"},
		{"down stays down unreported", "xxxxx", "uuDDD", "..d.."},
		{"flap", "oxxxooxxx", "UUUDDUUUD", "u..d.u..d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s status
			for i, r := range tc.results {
				rep := s.step(r == 'o', 3, 2)
				st := map[State]byte{Unknown: 'u', Up: 'U', Down: 'D'}[s.state]
				want := map[bool]byte{true: 'u', false: 'd'}[s.state == Up]
				if !rep {
					want = '.'
				}
				if st != tc.states[i] || want != tc.reports[i] {
					t.Fatalf("after %q: state %c report %c, want %c %c", tc.results[:i+1], st, want, tc.states[i], tc.reports[i])
				}
			}
		})
	}
	// Count and rise of 1.
	var s status
	if !s.step(false, 1, 1) || s.state != Down || !s.step(true, 1, 1) || s.state != Up {
		t.Errorf("count 1 rise 1: %+v", s)
	}
}

// TestFallRise runs the engine with the fake prober: a server goes down after exactly
// Count failed checks and comes back after exactly Rise successful ones; a server that
// stays up is reported once, up, on its first success.
func TestFallRise(t *testing.T) {
	p := newFakeProber()
	e, ch, _ := engine(p)
	chk := Check{Test: TestTCP, Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond, Count: 3, Rise: 2}
	if err := e.Set(map[string]Check{"web-tcp": chk}, map[string][]Target{"web-tcp": {target(1), target(2)}}); err != nil {
		t.Fatal(err)
	}
	p.set(addrN(1), ErrRefused)
	run(t, e)
	var ev event
	for range 2 { // .1 down and .2 up, in either order
		if e := waitEvent(t, ch, 2*time.Second); e.t == target(1) {
			ev = e
		} else if e.t != target(2) || !e.up {
			t.Fatalf("first transitions: %+v, want .2 up", e)
		}
	}
	if ev.t != target(1) || ev.up {
		t.Fatalf("first transitions: %+v, want .1 down", ev)
	}
	if ev.calls != 3 {
		t.Errorf("down after %d checks, want 3", ev.calls)
	}
	r := waitResult(t, e, target(1), time.Second, func(r Result) bool { return r.State == Down })
	if r.LastResult != "fail: refused" || r.Fails < 3 || r.Check != "web-tcp" || r.Test != TestTCP {
		t.Errorf("result of the down server: %+v", r)
	}
	before := p.set(addrN(1), nil)
	ev = waitEvent(t, ch, 2*time.Second)
	if ev.t != target(1) || !ev.up {
		t.Fatalf("second transition %+v, want .1 up", ev)
	}
	if n := ev.calls - before; n != 2 {
		t.Errorf("up after %d successful checks, want 2", n)
	}
	// Silence fails as a timeout.
	p.set(addrN(2), context.DeadlineExceeded)
	ev = waitEvent(t, ch, 2*time.Second)
	if ev.t != target(2) || ev.up {
		t.Fatalf("transition %+v, want .2 down", ev)
	}
	r = waitResult(t, e, target(2), time.Second, func(r Result) bool { return r.State == Down })
	if r.LastResult != "fail: timeout" {
		t.Errorf("silent server's last result %q", r.LastResult)
	}
	select {
	case ev := <-ch:
		t.Errorf("unexpected transition %+v", ev)
	default:
	}
}

// TestResults checks the fields of a healthy server's result.
func TestResults(t *testing.T) {
	p := newFakeProber()
	e, _, _ := engine(p)
	if err := e.Set(map[string]Check{"p": {Test: TestPing, Interval: 20 * time.Millisecond}},
		map[string][]Target{"p": {target(2), target(1)}}); err != nil {
		t.Fatal(err)
	}
	if rs := e.Results(); len(rs) != 2 || rs[0].State != Unknown || rs[0].LastResult != "" || rs[0].Target != target(1) {
		t.Errorf("results before Run: %+v", rs)
	}
	start := time.Now()
	run(t, e)
	r := waitResult(t, e, target(1), time.Second, func(r Result) bool { return r.Successes >= 2 })
	if r.State != Up || r.LastResult != "ok" || r.RTT != time.Millisecond || r.Fails != 0 || r.Load != -1 ||
		r.Last.Before(start) || !r.Next.After(r.Last) || r.Next.Sub(r.Last) > 20*time.Millisecond {
		t.Errorf("result %+v", r)
	}
	if cs := e.Checks(); len(cs) != 1 || cs[0].Name != "p" || cs[0].Count != DefaultCount ||
		cs[0].Rise != DefaultRise || cs[0].Timeout != DefaultTimeout {
		t.Errorf("Checks() = %+v", cs)
	}
}

// TestJitter checks that checks with one interval start spread over it, not in step.
func TestJitter(t *testing.T) {
	const n, interval = 40, 400 * time.Millisecond
	p := newFakeProber()
	e, _, _ := engine(p)
	var ts []Target
	for i := range n {
		ts = append(ts, target(i+1))
	}
	if err := e.Set(map[string]Check{"c": {Test: TestPing, Interval: interval}}, map[string][]Target{"c": ts}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, e)
	deadline := time.Now().Add(2 * time.Second)
	for len(p.firstCalls()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	first := p.firstCalls()
	if len(first) != n {
		t.Fatalf("%d of %d targets checked within 2s", len(first), n)
	}
	var buckets [4]int
	lo, hi := time.Hour, time.Duration(0)
	for _, at := range first {
		d := at.Sub(start)
		lo, hi = min(lo, d), max(hi, d)
		if d > interval+100*time.Millisecond {
			t.Errorf("first check after %v, past the interval %v", d, interval)
		}
		buckets[min(int(d*4/interval), 3)]++
	}
	t.Logf("first checks between %v and %v, per quarter of the interval %v", lo, hi, buckets)
	for i, b := range buckets {
		if b == 0 {
			t.Errorf("no check started in quarter %d of the interval: %v", i, buckets)
		}
	}
}

// TestSetKeepsState checks Set: unchanged pairs keep their state and counts, a changed
// check's pair inherits the state only, a new target starts unknown, a removed down
// target is reported up.
func TestSetKeepsState(t *testing.T) {
	p := newFakeProber()
	e, ch, _ := engine(p)
	chk := Check{Test: TestTCP, Interval: 10 * time.Millisecond, Count: 2, Rise: 2}
	checks := map[string]Check{"c": chk}
	if err := e.Set(checks, map[string][]Target{"c": {target(1)}}); err != nil {
		t.Fatal(err)
	}
	p.set(addrN(1), ErrRefused)
	run(t, e)
	if ev := waitEvent(t, ch, 2*time.Second); ev.up {
		t.Fatalf("transition %+v, want down", ev)
	}
	waitResult(t, e, target(1), time.Second, func(r Result) bool { return r.Fails >= 4 })
	// Same check, one more target: .1 keeps its state and counts.
	if err := e.Set(checks, map[string][]Target{"c": {target(1), target(2)}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.Results() {
		if r.Target == target(1) && (r.State != Down || r.Fails < 4) {
			t.Errorf("unchanged pair lost its state: %+v", r)
		}
		if r.Target == target(2) && r.State != Unknown {
			t.Errorf("new pair: %+v", r)
		}
	}
	if ev := waitEvent(t, ch, time.Second); ev.t != target(2) || !ev.up {
		t.Errorf("the new target's first success: %+v, want .2 up", ev)
	}
	// A changed check: .1 stays down (no report), counts start again.
	chk.Interval = 15 * time.Millisecond
	checks = map[string]Check{"c": chk}
	if err := e.Set(checks, map[string][]Target{"c": {target(1), target(2)}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.Results() {
		if r.Target == target(1) && (r.State != Down || r.Fails >= 4) {
			t.Errorf("changed check's pair: %+v, want down with counts reset", r)
		}
	}
	time.Sleep(50 * time.Millisecond)
	// Renamed check and .1 removed: .1 is reported up (no check holds it down any more).
	if err := e.Set(map[string]Check{"d": chk}, map[string][]Target{"d": {target(2)}}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, ch, time.Second); ev.t != target(1) || !ev.up {
		t.Errorf("after removing the down server's check: %+v, want .1 up", ev)
	}
	rs := e.Results()
	if len(rs) != 1 || rs[0].Check != "d" || rs[0].State != Up {
		t.Errorf("renamed check's pair of .2: %+v, want up (inherited)", rs)
	}
	select {
	case ev := <-ch:
		t.Errorf("unexpected transition %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestSetErrors(t *testing.T) {
	e := New(Config{})
	good := map[string]Check{"ok": {Test: TestPing}}
	if err := e.Set(good, map[string][]Target{"ok": {target(1)}}); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name    string
		checks  map[string]Check
		targets map[string][]Target
		want    string
	}{
		{"unknown test", map[string]Check{"a": {Test: "smtp"}}, nil, "unknown test"},
		{"script without command", map[string]Check{"a": {Test: TestScript}}, nil, "without a command"},
		{"http path", map[string]Check{"a": {Test: TestHTTP, Path: "x"}}, nil, "does not start with /"},
		{"http status", map[string]Check{"a": {Test: TestHTTP, ExpectStatus: 42}}, nil, "expected status"},
		{"negative interval", map[string]Check{"a": {Test: TestTCP, Interval: -1}}, nil, "negative"},
		{"negative count", map[string]Check{"a": {Test: TestTCP, Count: -1}}, nil, "negative"},
		{"name mismatch", map[string]Check{"a": {Name: "b", Test: TestTCP}}, nil, "named"},
		{"targets of no check", good, map[string][]Target{"nope": {target(1)}}, "no such check"},
		{"target without address", good, map[string][]Target{"ok": {{Group: "g"}}}, "without an address"},
	}
	for _, tc := range bad {
		err := e.Set(tc.checks, tc.targets)
		if !errors.Is(err, ErrCheck) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrCheck with %q", tc.name, err, tc.want)
		}
	}
	if rs := e.Results(); len(rs) != 1 || rs[0].Check != "ok" {
		t.Errorf("a refused Set changed the pairs: %+v", rs)
	}
}

// TestNoGoroutineLeak checks that Run stops every check's goroutine (also those in the
// middle of a check) and that a second Run works.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	p := newFakeProber()
	e, _, _ := engine(p)
	var ts []Target
	for i := range 20 {
		ts = append(ts, target(i+1))
		if i%2 == 0 {
			p.set(addrN(i+1), context.DeadlineExceeded) // hangs until the timeout
		}
	}
	checks := map[string]Check{
		"tcp":    {Test: TestTCP, Interval: 5 * time.Millisecond, Timeout: time.Minute},
		"script": {Test: TestScript, Interval: 5 * time.Millisecond, Timeout: time.Minute, Command: []string{"/bin/sh", "testdata/hang.sh"}},
	}
	if err := e.Set(checks, map[string][]Target{"tcp": ts, "script": ts[:2]}); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		time.Sleep(100 * time.Millisecond)
		if round == 0 {
			if err := e.Run(ctx); !errors.Is(err, ErrRunning) {
				t.Errorf("second Run: %v, want ErrRunning", err)
			}
		}
		if runtime.NumGoroutine() < base+22 {
			t.Errorf("round %d: %d goroutines running, want one per pair (22) more than %d", round, runtime.NumGoroutine(), base)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return")
		}
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base {
			buf := make([]byte, 1<<16)
			t.Fatalf("round %d: %d goroutines after Run returned, %d before:\n%s", round, n, base, buf[:runtime.Stack(buf, true)])
		}
	}
}

// TestRulePort: a check without a port tests a server's own port, else (a server that
// takes the client's destination port) the port of a rule using its group; with neither
// it fails, saying so.
func TestRulePort(t *testing.T) {
	p := newFakeProber()
	e, _, _ := engine(p)
	own, ruled, none := target(1), target(2), target(3)
	ruled.Port, ruled.RulePort = 0, 8080
	none.Port = 0
	chk := Check{Test: TestTCP, Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond}
	if err := e.Set(map[string]Check{"c": chk}, map[string][]Target{"c": {own, ruled, none}}); err != nil {
		t.Fatal(err)
	}
	run(t, e)
	waitResult(t, e, own, time.Second, func(r Result) bool { return r.State == Up })
	waitResult(t, e, ruled, time.Second, func(r Result) bool { return r.State == Up })
	if r := waitResult(t, e, none, time.Second, func(r Result) bool { return r.Fails > 0 }); r.LastResult != "fail: no port to test" {
		t.Errorf("a server and a check without a port: %+v", r)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ports[own.Addr] != own.Port || p.ports[ruled.Addr] != 8080 {
		t.Errorf("tested ports %v, want %d for the server's own and 8080 for the rule's", p.ports, own.Port)
	}
}
