package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"time"

	"ulb/bench/traffic"
)

// Default check timeouts.
const (
	DefaultCheckTimeout    = 10 * time.Second
	DefaultTransferTimeout = 120 * time.Second
	// clientGrace is the extra time a client process gets beyond its own timeout.
	clientGrace = 5 * time.Second
)

// Result is the outcome of one check.
type Result struct {
	Name    string
	Type    string
	Pass    bool
	Detail  string // PASS: what was seen; FAIL: why
	Elapsed time.Duration
}

// String formats a result as "PASS name (detail)" or "FAIL name: why".
func (r Result) String() string {
	if r.Pass {
		if r.Detail == "" {
			return "PASS " + r.Name
		}
		return fmt.Sprintf("PASS %s (%s)", r.Name, r.Detail)
	}
	return fmt.Sprintf("FAIL %s: %s", r.Name, r.Detail)
}

// Summary formats "checks: N passed, M failed".
func Summary(rs []Result) string {
	pass := 0
	for _, r := range rs {
		if r.Pass {
			pass++
		}
	}
	return fmt.Sprintf("checks: %d passed, %d failed", pass, len(rs)-pass)
}

// Failed reports whether any result failed.
func Failed(rs []Result) bool {
	return slices.ContainsFunc(rs, func(r Result) bool { return !r.Pass })
}

// Run runs every check of the spec in order, printing each result line to Options.Out.
func (b *Bench) Run(ctx context.Context) []Result {
	rs := make([]Result, 0, len(b.spec.Checks))
	for _, c := range b.spec.Checks {
		r := b.Check(ctx, c)
		b.logf("%s", r)
		rs = append(rs, r)
	}
	return rs
}

// Check runs one check (which need not come from the spec; it is not validated again
// beyond what running it needs).
func (b *Bench) Check(ctx context.Context, c Check) Result {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultCheckTimeout
		switch c.Type {
		case CheckTransfer:
			timeout = DefaultTransferTimeout
		case CheckFailover:
			timeout = failoverDuration(c) + DefaultCheckTimeout
		}
	}
	from := c.From
	if from == "" {
		from = c.Host
	}
	if c.Name == "" {
		c.Name = defaultCheckName(&c)
	}
	start := time.Now()
	detail, err := b.probe(ctx, c, from, timeout)
	r := Result{Name: c.Name, Type: c.Type, Elapsed: time.Since(start)}
	switch {
	case err == nil && !c.ExpectFailure():
		r.Pass, r.Detail = true, detail
	case err == nil:
		r.Detail = "succeeded but failure was expected"
		if detail != "" {
			r.Detail += " (" + detail + ")"
		}
	case c.ExpectFailure() && ctx.Err() == nil:
		r.Pass, r.Detail = true, "failed as expected: "+err.Error()
	default:
		r.Detail = err.Error()
	}
	return r
}

// probe runs the check's client and returns a detail line, or why it failed.
func (b *Bench) probe(ctx context.Context, c Check, from string, timeout time.Duration) (string, error) {
	if b.spec.Host(from) == nil {
		return "", fmt.Errorf("no host %q", from)
	}
	switch c.Type {
	case CheckExec:
		return b.execCheck(ctx, c, from, timeout)
	case CheckFailover:
		return b.failover(ctx, c, from, timeout)
	case CheckPing, CheckTCP, CheckUDP, CheckHTTP, CheckTransfer, CheckConns:
	default:
		return "", fmt.Errorf("unknown check type %q", c.Type)
	}
	args := []string{"client", c.Type, "-to", c.To, "-timeout", timeout.String()}
	switch c.Type {
	case CheckHTTP:
		args = append(args, "-path", c.Path)
	case CheckTransfer:
		args = append(args, "-bytes", fmt.Sprint(int64(c.Bytes)))
	case CheckConns:
		args = append(args, "-count", fmt.Sprint(c.Count), "-concurrency", fmt.Sprint(c.Concurrency))
	case CheckPing:
		args = append(args, "-count", fmt.Sprint(pingCount(c)))
	}
	cctx, cancel := context.WithTimeout(ctx, timeout+clientGrace)
	defer cancel()
	out, runErr := b.Exec(cctx, from, append([]string{"ulbbench"}, args...)...)
	var rep ClientReport
	if err := json.Unmarshal(lastLine(out), &rep); err != nil {
		if runErr != nil {
			return "", fmt.Errorf("client: %v: %s", runErr, strings.TrimSpace(string(out)))
		}
		return "", fmt.Errorf("client printed no report: %q", out)
	}
	if c.Type == CheckPing {
		return judgePing(c, from, rep)
	}
	return judge(c, rep)
}

// DefaultPingCount is the number of echo replies a ping check waits for by default.
const DefaultPingCount = 3

func pingCount(c Check) int {
	if c.Count == 0 {
		return DefaultPingCount
	}
	return c.Count
}

// judgePing turns a ping client's report into "3/3 replies, rtt min/avg/max ... ms", or
// "ping ADDR from HOST: 0/5 replies; ..." when fewer than count replies came back.
func judgePing(c Check, from string, rep ClientReport) (string, error) {
	if rep.Ping == nil {
		return "", fmt.Errorf("ping %s from %s: %s", c.To, from, rep.Error)
	}
	if !rep.OK {
		return "", fmt.Errorf("ping %s from %s: %s", c.To, from, rep.Ping)
	}
	return rep.Ping.String(), nil
}

// judge compares a client report with the check's expectations.
func judge(c Check, rep ClientReport) (string, error) {
	if !rep.OK {
		return "", errors.New(rep.Error)
	}
	switch c.Type {
	case CheckTCP, CheckUDP:
		if c.ExpectName != "" && rep.Name != c.ExpectName {
			return "", fmt.Errorf("answered by %q, want %q", rep.Name, c.ExpectName)
		}
		return "answered by " + rep.Name, nil
	case CheckHTTP:
		h := rep.HTTP
		if h == nil {
			return "", errors.New("client report has no http result")
		}
		want := c.ExpectStatus
		if want == 0 {
			want = 200
		}
		if h.Status != want {
			return "", fmt.Errorf("status %d, want %d", h.Status, want)
		}
		if c.ExpectName != "" && !strings.Contains(h.Body, c.ExpectName) {
			return "", fmt.Errorf("body %q does not contain %q", h.Body, c.ExpectName)
		}
		if c.ExpectPeer != "" {
			if err := matchPeer(h.Peer, c.ExpectPeer); err != nil {
				return "", err
			}
			return fmt.Sprintf("status %d, body %q, server saw %s", h.Status, h.Body, h.Peer), nil
		}
		return fmt.Sprintf("status %d, body %q", h.Status, h.Body), nil
	case CheckTransfer:
		t := rep.Transfer
		if t == nil {
			return "", errors.New("client report has no transfer result")
		}
		if t.SinkBytes != int64(c.Bytes) || t.Bytes != int64(c.Bytes) || t.SinkSHA256 != t.SHA256 {
			return "", fmt.Errorf("sent %d bytes sha256 %s, sink got %d bytes sha256 %s", t.Bytes, t.SHA256, t.SinkBytes, t.SinkSHA256)
		}
		if c.ExpectName != "" && t.Server != c.ExpectName {
			return "", fmt.Errorf("sink %q, want %q", t.Server, c.ExpectName)
		}
		return fmt.Sprintf("%s, sha256 %.16s, %.0f Mbit/s, sink %s", formatSize(t.Bytes), t.SHA256, t.Mbps, t.Server), nil
	case CheckConns:
		cr := rep.Conns
		if cr == nil {
			return "", errors.New("client report has no conns result")
		}
		names := formatNames(cr.Names)
		if cr.OK != c.Count || cr.Failed != 0 {
			return "", fmt.Errorf("%d/%d connections succeeded (%s); first error: %s", cr.OK, c.Count, names, cr.FirstErr)
		}
		for n := range cr.Names {
			if len(c.ExpectNames) > 0 && !slices.Contains(c.ExpectNames, n) {
				return "", fmt.Errorf("answered by unexpected %q (%s)", n, names)
			}
		}
		return fmt.Sprintf("%d/%d connections, %s", cr.OK, c.Count, names), nil
	}
	return "", fmt.Errorf("unknown check type %q", c.Type)
}

func formatNames(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	if len(parts) == 0 {
		return "no answers"
	}
	return strings.Join(parts, " ")
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return lines[len(lines)-1]
}

func (b *Bench) execCheck(ctx context.Context, c Check, from string, timeout time.Duration) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := b.Exec(cctx, from, c.Run...)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || cctx.Err() != nil {
			return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		code = ee.ExitCode()
	}
	if code != c.ExpectExit {
		return "", fmt.Errorf("exit status %d, want %d: %s", code, c.ExpectExit, strings.TrimSpace(string(out)))
	}
	if c.ExpectOutput != "" && !bytes.Contains(out, []byte(c.ExpectOutput)) {
		return "", fmt.Errorf("output does not contain %q: %s", c.ExpectOutput, strings.TrimSpace(string(out)))
	}
	return fmt.Sprintf("exit status %d", code), nil
}

// ClientReport is the one JSON line `ulbbench client` prints.
type ClientReport struct {
	OK       bool                    `json:"ok"`
	Error    string                  `json:"error,omitempty"`
	Name     string                  `json:"name,omitempty"` // tcp, udp: the answer
	HTTP     *traffic.HTTPResult     `json:"http,omitempty"`
	Transfer *traffic.TransferResult `json:"transfer,omitempty"`
	Conns    *traffic.ConnsResult    `json:"conns,omitempty"`
	Ping     *traffic.PingResult     `json:"ping,omitempty"`
	Loop     *traffic.LoopResult     `json:"loop,omitempty"`
	// KeepAlive is the keep-alive load's outcome (ClientKeepAlive).
	KeepAlive *traffic.KeepAliveResult `json:"keepalive,omitempty"`
}

// ClientArgs are the inputs of RunClient.
type ClientArgs struct {
	To          string
	Path        string
	Bytes       int64
	Count       int
	Concurrency int
	// loop: connections every Interval for Duration, each bounded by AttemptTimeout.
	Duration, Interval, AttemptTimeout time.Duration
}

// ClientLoop is the client kind of a failover check's loop (traffic.Loop).
const ClientLoop = "loop"

// ClientKeepAlive is the client kind of a syn-flood workload's keep-alive load
// (traffic.KeepAlive: Concurrency connections for Duration, requests bounded by
// AttemptTimeout).
const ClientKeepAlive = "keepalive"

// RunClient runs one client probe (ping, tcp, udp, http, transfer, conns, loop, keepalive) in the
// current network namespace and reports its outcome; ctx bounds it. For ping, To is an
// address and Count the replies to wait for.
func RunClient(ctx context.Context, kind string, a ClientArgs) ClientReport {
	var rep ClientReport
	var err error
	switch kind {
	case CheckPing:
		var addr netip.Addr
		if addr, err = netip.ParseAddr(a.To); err != nil {
			break
		}
		var p traffic.PingResult
		p, err = traffic.Ping(ctx, addr, a.Count)
		if err == nil || errors.Is(err, traffic.ErrTooFewReplies) {
			rep.Ping = &p
		}
	case CheckTCP:
		rep.Name, err = traffic.AskTCP(ctx, a.To)
	case CheckUDP:
		rep.Name, err = traffic.AskUDP(ctx, a.To)
	case CheckHTTP:
		var h traffic.HTTPResult
		h, err = traffic.GetHTTP(ctx, a.To, a.Path)
		if err == nil {
			rep.HTTP = &h
		}
	case CheckTransfer:
		var t traffic.TransferResult
		t, err = traffic.Transfer(ctx, a.To, a.Bytes)
		if err == nil || errors.Is(err, traffic.ErrMismatch) {
			rep.Transfer = &t
		}
	case CheckConns:
		cr := traffic.Conns(ctx, a.To, a.Count, a.Concurrency)
		rep.Conns = &cr
	case ClientLoop:
		if a.Duration <= 0 || a.Interval <= 0 || a.AttemptTimeout <= 0 {
			err = errors.New("loop: want a duration, an interval and an attempt timeout above 0")
			break
		}
		lr := traffic.Loop(ctx, a.To, a.Duration, a.Interval, a.AttemptTimeout)
		rep.Loop = &lr
	case ClientKeepAlive:
		var ka traffic.KeepAliveResult
		if ka, err = traffic.KeepAlive(ctx, a.To, a.Concurrency, a.Duration, a.AttemptTimeout); err == nil {
			rep.KeepAlive = &ka
		}
	default:
		err = fmt.Errorf("unknown client %q (want ping, tcp, udp, http, transfer, conns, loop, keepalive)", kind)
	}
	rep.OK = err == nil
	if err != nil {
		rep.Error = err.Error()
	}
	return rep
}

// matchPeer checks the client address a server saw (ADDR:PORT) against want, an address
// or a prefix.
func matchPeer(peer, want string) error {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		return fmt.Errorf("server reported peer %q: %v", peer, err)
	}
	addr := ap.Addr().Unmap()
	if p, err := netip.ParsePrefix(want); err == nil {
		if !p.Contains(addr) {
			return fmt.Errorf("server saw the client as %s, want one in %s", addr, p)
		}
		return nil
	}
	w, err := netip.ParseAddr(want)
	if err != nil {
		return fmt.Errorf("expect_peer %q: want an address or a prefix", want)
	}
	if addr != w {
		return fmt.Errorf("server saw the client as %s, want %s", addr, w)
	}
	return nil
}
