// Package health runs the health checks of server groups — ping, tcp, udp, http, agent
// and script — and reports each server's transitions between up and down.
//
// The engine runs one goroutine per (check, server) pair, as Seesaw's healthcheck does:
// each waits a random part of its interval first, so checks sharing an interval do not
// fire in step, then runs its check every interval with the check's timeout as a context
// deadline. The engine opens no raw socket: ping, TCP handshakes and UDP datagrams go
// through a Prober (ulbd's router crafts them from its own addresses), HTTP checks
// through an HTTPDialer (ulbd's host port), scripts run as child processes.
//
// States. A server is Unknown until its first success (then Up) or until Count
// consecutive failures (then Down). Down is declared after Count consecutive failures,
// Up again after Rise consecutive successes. Unknown counts as up for the balancer (a
// server takes flows until a check says otherwise, as in Solaris ILB); OnChange is
// called on every transition (unknown→up, unknown→down, up→down and down→up), so that
// what the balancer shows follows the checks. Typically OnChange calls balancer.SetHealth and OnLoad balancer.SetLoad.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	"ulb/balancer"
)

// Prober sends the layer-4 probes the checks need; ulbd's router implements it with
// packets it crafts from its own addresses. Its methods are called concurrently, and
// must return when ctx is done (its deadline is the check's timeout).
type Prober interface {
	// Ping sends an ICMP or ICMPv6 echo request to dst and waits for the reply.
	Ping(ctx context.Context, dst netip.Addr) (rtt time.Duration, err error)
	// TCPConnect sends a SYN to dst: nil on a SYN-ACK (the router then resets the
	// half-open connection), ErrRefused on a RST, ctx's error on silence.
	TCPConnect(ctx context.Context, dst netip.AddrPort) (rtt time.Duration, err error)
	// UDPExchange sends req to dst and copies the first reply into resp: n is the
	// reply's length (at most len(resp)); ErrUnreachable on an ICMP port unreachable,
	// ctx's error on silence.
	UDPExchange(ctx context.Context, dst netip.AddrPort, req []byte, resp []byte) (n int, rtt time.Duration, err error)
}

// HTTPDialer opens the TCP connections of HTTP checks (ulbd dials through its host port;
// tests use (*net.Dialer).DialContext).
type HTTPDialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Errors a Prober returns, tested with errors.Is.
var (
	ErrRefused     = errors.New("connection refused")
	ErrUnreachable = errors.New("port unreachable")
)

// ErrCheck is returned by Set for an invalid check, or a target list naming no check.
var ErrCheck = errors.New("invalid health check")

// ErrRunning is returned by Run when the engine is already running.
var ErrRunning = errors.New("health engine already running")

// Check tests.
const (
	TestPing   = "ping"
	TestTCP    = "tcp"
	TestUDP    = "udp"
	TestHTTP   = "http"
	TestAgent  = "agent"
	TestScript = "script"
)

// Tests lists every check test.
var Tests = []string{TestPing, TestTCP, TestUDP, TestHTTP, TestAgent, TestScript}

// Defaults of the Check fields left zero.
const (
	DefaultInterval     = 5 * time.Second
	DefaultTimeout      = 2 * time.Second
	DefaultCount        = 3
	DefaultRise         = 2
	DefaultExpectStatus = 200
	// MaxHTTPBody is how much of an HTTP check's response body is read and matched.
	MaxHTTPBody = 64 << 10
)

// Check is one named health check, shared by the servers of the groups using it.
type Check struct {
	Name string
	// Test is one of Tests.
	Test string
	// Interval between the starts of two checks of a server (DefaultInterval if 0);
	// Timeout bounds one check (DefaultTimeout if 0).
	Interval, Timeout time.Duration
	// Count consecutive failures declare a server down (DefaultCount if 0); Rise
	// consecutive successes bring a down server up again (DefaultRise if 0).
	Count, Rise int
	// Port is the port tcp, udp, http and script checks test; 0 means the server's port.
	Port uint16

	// Send is the udp check's datagram. Expect, when set, must appear in the reply;
	// when empty any reply passes. Silence or ICMP port unreachable fails.
	Send, Expect []byte

	// HTTP: GET Path ("/" if empty) with Host as the Host header (the server's address
	// if empty); the status must be ExpectStatus (DefaultExpectStatus if 0) and, when
	// ExpectBody is set, the first MaxHTTPBody bytes of the body must match it.
	// Redirects are not followed.
	Path         string
	Host         string
	ExpectStatus int
	ExpectBody   *regexp.Regexp

	// AgentPort is the agent check's UDP port on the server (DefaultAgentPort if 0).
	AgentPort uint16

	// Command is the script check's program and its first arguments; the engine adds
	// VIP, server address, protocol (tcp|udp), port and timeout in whole seconds, as
	// Solaris ILB does. The program prints a round-trip time in microseconds, 0 (none
	// measured) or -1 (failure); a non-zero exit status fails too.
	Command []string
}

// withDefaults returns c with its zero fields set to the defaults, or an error.
func (c Check) withDefaults(name string) (Check, error) {
	if c.Name == "" {
		c.Name = name
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Count == 0 {
		c.Count = DefaultCount
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	bad := func(format string, a ...any) (Check, error) {
		return c, fmt.Errorf("check %q: %w: %s", name, ErrCheck, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Name != name:
		return bad("named %q in its map under %q", c.Name, name)
	case !slices.Contains(Tests, c.Test):
		return bad("unknown test %q", c.Test)
	case c.Interval < 0 || c.Timeout < 0:
		return bad("negative interval or timeout")
	case c.Count < 0 || c.Rise < 0:
		return bad("negative count or rise")
	}
	switch c.Test {
	case TestHTTP:
		if c.Path == "" {
			c.Path = "/"
		}
		if c.Path[0] != '/' {
			return bad("path %q does not start with /", c.Path)
		}
		if c.ExpectStatus == 0 {
			c.ExpectStatus = DefaultExpectStatus
		}
		if c.ExpectStatus < 100 || c.ExpectStatus > 599 {
			return bad("expected status %d", c.ExpectStatus)
		}
	case TestAgent:
		if c.AgentPort == 0 {
			c.AgentPort = DefaultAgentPort
		}
	case TestScript:
		if len(c.Command) == 0 || c.Command[0] == "" {
			return bad("script without a command")
		}
	}
	return c, nil
}

// same reports whether two checks (with defaults) test the same way.
func (c Check) same(o Check) bool {
	re := func(r *regexp.Regexp) string {
		if r == nil {
			return "\x00"
		}
		return r.String()
	}
	return c.Name == o.Name && c.Test == o.Test && c.Interval == o.Interval && c.Timeout == o.Timeout &&
		c.Count == o.Count && c.Rise == o.Rise && c.Port == o.Port && string(c.Send) == string(o.Send) &&
		string(c.Expect) == string(o.Expect) && c.Path == o.Path && c.Host == o.Host &&
		c.ExpectStatus == o.ExpectStatus && re(c.ExpectBody) == re(o.ExpectBody) &&
		c.AgentPort == o.AgentPort && slices.Equal(c.Command, o.Command)
}

// Target is one server of a group that a check tests.
type Target struct {
	Group string     // the server group (what balancer.SetHealth takes)
	Addr  netip.Addr // the server's address
	Port  uint16     // the server's port (checks with Port 0 test this one)
	// RulePort is what a check with Port 0 tests on a server with Port 0 (one that
	// takes the client's destination port): a port of a rule that uses the group.
	RulePort uint16
	VIP      netip.Addr // a VIP the group serves (the script's first argument)
	Proto    uint8      // balancer.ProtoTCP or balancer.ProtoUDP (the script's third argument)
}

func (t Target) String() string {
	return fmt.Sprintf("%s/%v", t.Group, netip.AddrPortFrom(t.Addr, t.Port))
}

// State is a server's health as one check sees it.
type State uint8

// States.
const (
	Unknown State = iota // no success and fewer than Count failures yet
	Up
	Down
)

func (s State) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Result is the state of one (check, target) pair, for ulbadm show-hc-result.
type Result struct {
	Target Target
	Check  string
	Test   string
	State  State
	// LastResult is "ok" or "fail: REASON"; "" before the first check.
	LastResult string
	RTT        time.Duration // of the last successful check
	// Fails and Successes are the consecutive failures and successes so far.
	Fails, Successes int
	// Load is the agent's last load figure, -1 when none (or not an agent check).
	Load int
	// Last is when the last check ended (zero: none yet); Next when the next one starts.
	Last, Next time.Time
}

// Config configures an Engine.
type Config struct {
	Prober     Prober     // for ping, tcp, udp and agent checks
	HTTPDialer HTTPDialer // for http checks
	// Now is the clock of Result's times and RTTs; nil means time.Now. Intervals and
	// timeouts run on real timers.
	Now    func() time.Time
	Logger *slog.Logger // transitions at Info, failed checks at Debug; nil discards
	// OnChange is called on unknown→up, unknown→down, up→down and down→up (up is false
	// for down),
	// from the pair's goroutine; it must not call Set. Calls for one target are not
	// concurrent as long as it belongs to one check.
	OnChange func(t Target, up bool)
	// OnLoad is called with every agent answer's load (0-100).
	OnLoad func(t Target, load int)
}

type probeKey struct {
	check  string
	target Target
}

// probe is one (check, target) pair.
type probe struct {
	key    probeKey
	chk    Check
	cancel context.CancelFunc // nil while not running
	done   chan struct{}      // closed when the goroutine ends
	// Guarded by Engine.mu.
	st         status
	lastResult string
	rtt        time.Duration
	load       int
	last, next time.Time
}

// Engine runs health checks. Its methods are safe for concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	setMu  sync.Mutex // serializes Set and Run's start and stop
	mu     sync.Mutex
	checks map[string]Check
	probes map[probeKey]*probe
	runCtx context.Context // nil while not running
	wg     sync.WaitGroup
}

// New returns an Engine without checks; Set gives it checks, Run runs them.
func New(cfg Config) *Engine {
	e := &Engine{cfg: cfg, log: cfg.Logger, now: cfg.Now, checks: map[string]Check{}, probes: map[probeKey]*probe{}}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e
}

// Set replaces the checks and their targets (check name -> the servers it tests). It
// validates everything first and changes nothing on an error (ErrCheck, all joined).
//
// A (check, target) pair whose check is unchanged keeps its state and goes on running;
// removed pairs stop (Set waits for them); new pairs start (at once when running). A new
// pair for a target that lost its pair in this Set (its check was changed or renamed)
// inherits that pair's state, not its counts. A removed pair that was down and whose
// target has no pair any more is reported up through OnChange: an unchecked server is
// usable.
func (e *Engine) Set(checks map[string]Check, targets map[string][]Target) error {
	norm := make(map[string]Check, len(checks))
	var errs []error
	for name, c := range checks {
		nc, err := c.withDefaults(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		norm[name] = nc
	}
	want := map[probeKey]bool{}
	for name, ts := range targets {
		if _, ok := checks[name]; !ok {
			errs = append(errs, fmt.Errorf("targets of check %q: %w: no such check", name, ErrCheck))
			continue
		}
		for _, t := range ts {
			if !t.Addr.IsValid() {
				errs = append(errs, fmt.Errorf("check %q: %w: target without an address in group %q", name, ErrCheck, t.Group))
				continue
			}
			want[probeKey{name, t}] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	e.setMu.Lock()
	defer e.setMu.Unlock()
	e.mu.Lock()
	var removed []*probe
	for k, p := range e.probes {
		if !want[k] || !p.chk.same(norm[k.check]) {
			removed = append(removed, p)
			if p.cancel != nil {
				p.cancel()
			}
		}
	}
	e.mu.Unlock()
	for _, p := range removed {
		if p.cancel != nil {
			<-p.done
		}
	}

	e.mu.Lock()
	inherit := map[Target]State{}
	for _, p := range removed {
		delete(e.probes, p.key)
		if p.st.state != Unknown {
			inherit[p.key.target] = p.st.state
		}
	}
	for k := range want {
		if e.probes[k] != nil {
			continue
		}
		p := &probe{key: k, chk: norm[k.check], load: -1}
		if st, ok := inherit[k.target]; ok {
			p.st.state = st
			delete(inherit, k.target)
		}
		e.probes[k] = p
		if e.runCtx != nil {
			e.start(p)
		}
	}
	e.checks = norm
	e.mu.Unlock()

	for t, st := range inherit {
		if st == Down {
			e.log.LogAttrs(context.Background(), slog.LevelInfo, "health check removed from a down server",
				slog.String("server", t.String()))
			if e.cfg.OnChange != nil {
				e.cfg.OnChange(t, true)
			}
		}
	}
	return nil
}

// Run runs the checks until ctx is done, then stops every check's goroutine and waits
// for them. It returns nil then, or ErrRunning when already running.
func (e *Engine) Run(ctx context.Context) error {
	e.setMu.Lock()
	e.mu.Lock()
	if e.runCtx != nil {
		e.mu.Unlock()
		e.setMu.Unlock()
		return ErrRunning
	}
	e.runCtx = ctx
	for _, p := range e.probes {
		e.start(p)
	}
	e.mu.Unlock()
	e.setMu.Unlock()

	<-ctx.Done()

	e.setMu.Lock()
	defer e.setMu.Unlock()
	e.mu.Lock()
	for _, p := range e.probes {
		if p.cancel != nil {
			p.cancel()
		}
	}
	e.mu.Unlock()
	e.wg.Wait()
	e.mu.Lock()
	for _, p := range e.probes {
		p.cancel = nil
	}
	e.runCtx = nil
	e.mu.Unlock()
	return nil
}

// start starts p's goroutine. e.mu is held and e.runCtx set.
func (e *Engine) start(p *probe) {
	ctx, cancel := context.WithCancel(e.runCtx)
	p.cancel = cancel
	p.done = make(chan struct{})
	e.wg.Add(1)
	go e.loop(ctx, p)
}

// Results returns the state of every (check, target) pair, by group, address, port and
// check name.
func (e *Engine) Results() []Result {
	e.mu.Lock()
	out := make([]Result, 0, len(e.probes))
	for _, p := range e.probes {
		out = append(out, Result{Target: p.key.target, Check: p.key.check, Test: p.chk.Test,
			State: p.st.state, LastResult: p.lastResult, RTT: p.rtt, Fails: p.st.fails,
			Successes: p.st.succ, Load: p.load, Last: p.last, Next: p.next})
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Result) int {
		switch {
		case a.Target.Group != b.Target.Group:
			return cmpStr(a.Target.Group, b.Target.Group)
		case a.Target.Addr != b.Target.Addr:
			return a.Target.Addr.Compare(b.Target.Addr)
		case a.Target.Port != b.Target.Port:
			return int(a.Target.Port) - int(b.Target.Port)
		}
		return cmpStr(a.Check, b.Check)
	})
	return out
}

// Checks returns the configured checks, with their defaults filled in (for ulbadm
// show-healthcheck), by name.
func (e *Engine) Checks() []Check {
	e.mu.Lock()
	out := make([]Check, 0, len(e.checks))
	for _, c := range e.checks {
		out = append(out, c)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Check) int { return cmpStr(a.Name, b.Name) })
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// protoName is the script's protocol argument.
func protoName(p uint8) string {
	switch p {
	case balancer.ProtoTCP:
		return "tcp"
	case balancer.ProtoUDP:
		return "udp"
	}
	return fmt.Sprint(p)
}
