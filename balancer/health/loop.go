package health

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// status is a pair's state machine: step feeds it one result.
type status struct {
	state       State
	fails, succ int // consecutive
}

// step records one check result and reports whether the state changed in a way the
// balancer must hear: to Down (from Up or Unknown), or from Down to Up. Unknown becomes
// Up on the first success without a report (unknown already counts as up).
func (s *status) step(ok bool, count, rise int) (report bool) {
	if ok {
		s.fails = 0
		s.succ++
		switch {
		case s.state == Unknown:
			s.state = Up
			return true
		case s.state == Down && s.succ >= rise:
			s.state = Up
			return true
		}
		return false
	}
	s.succ = 0
	s.fails++
	if s.state != Down && s.fails >= count {
		s.state = Down
		return true
	}
	return false
}

// outcome is one check's result.
type outcome struct {
	ok     bool
	reason string // why it failed
	rtt    time.Duration
	load   int // agent load, or -1
}

func fail(reason string) outcome { return outcome{reason: reason, load: -1} }

// failErr describes a probe's error.
func failErr(err error) outcome {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fail("timeout")
	case errors.Is(err, ErrRefused):
		return fail("refused")
	case errors.Is(err, ErrUnreachable):
		return fail("port unreachable")
	}
	return fail(err.Error())
}

// runner runs one pair's checks; it holds the buffers and clients a check reuses.
type runner struct {
	e     *Engine
	p     *probe
	buf   []byte // udp and agent replies
	req   []byte // agent requests
	token uint32 // agent request counter
	http  *httpChecker
}

// loop is a pair's goroutine: a random wait within the interval, then a check every
// interval until ctx is done.
func (e *Engine) loop(ctx context.Context, p *probe) {
	defer e.wg.Done()
	defer close(p.done)
	r := &runner{e: e, p: p}
	if p.chk.Test == TestHTTP {
		r.http = newHTTPChecker(e.cfg.HTTPDialer)
		defer r.http.close()
	}
	wait := rand.N(p.chk.Interval)
	e.mu.Lock()
	p.next = e.now().Add(wait)
	e.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, p.chk.Timeout)
		out := r.check(cctx)
		cancel()
		if ctx.Err() != nil {
			return // stopped mid-check: no result
		}
		wait = max(p.chk.Interval-time.Since(start), 0)
		e.record(p, out, wait)
		timer.Reset(wait)
	}
}

// record applies one result to p and calls the callbacks.
func (e *Engine) record(p *probe, out outcome, wait time.Duration) {
	e.mu.Lock()
	now := e.now()
	p.last, p.next = now, now.Add(wait)
	if out.ok {
		p.lastResult, p.rtt = "ok", out.rtt
	} else {
		p.lastResult = "fail: " + out.reason
	}
	if out.load >= 0 {
		p.load = out.load
	}
	report := p.st.step(out.ok, p.chk.Count, p.chk.Rise)
	state := p.st.state
	e.mu.Unlock()

	t := p.key.target
	if !out.ok {
		e.log.LogAttrs(context.Background(), slog.LevelDebug, "health check failed",
			slog.String("check", p.key.check), slog.String("server", t.String()), slog.String("reason", out.reason))
	}
	if out.load >= 0 && e.cfg.OnLoad != nil {
		e.cfg.OnLoad(t, out.load)
	}
	if report {
		attrs := []slog.Attr{slog.String("check", p.key.check), slog.String("server", t.String()),
			slog.String("state", state.String())}
		if !out.ok {
			attrs = append(attrs, slog.String("reason", out.reason))
		}
		e.log.LogAttrs(context.Background(), slog.LevelInfo, "server health changed", attrs...)
		if e.cfg.OnChange != nil {
			e.cfg.OnChange(t, state == Up)
		}
	}
}

// port is the port a check tests on t.
func (p *probe) port() uint16 {
	if p.chk.Port != 0 {
		return p.chk.Port
	}
	if p.key.target.Port == 0 {
		return p.key.target.RulePort
	}
	return p.key.target.Port
}
