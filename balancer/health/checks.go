package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// maxUDPReply is the size of the udp and agent checks' reply buffer.
const maxUDPReply = 2048

var errNoProber = errors.New("no prober")

// check runs the pair's check once; ctx carries its timeout.
func (r *runner) check(ctx context.Context) outcome {
	c, t := &r.p.chk, r.p.key.target
	pr := r.e.cfg.Prober
	switch c.Test {
	case TestPing:
		if pr == nil {
			return failErr(errNoProber)
		}
		rtt, err := pr.Ping(ctx, t.Addr)
		if err != nil {
			return failErr(err)
		}
		return outcome{ok: true, rtt: rtt, load: -1}
	case TestTCP:
		if pr == nil {
			return failErr(errNoProber)
		}
		if r.p.port() == 0 {
			return fail("no port to test")
		}
		rtt, err := pr.TCPConnect(ctx, netip.AddrPortFrom(t.Addr, r.p.port()))
		if err != nil {
			return failErr(err)
		}
		return outcome{ok: true, rtt: rtt, load: -1}
	case TestUDP:
		return r.udp(ctx)
	case TestAgent:
		return r.agent(ctx)
	case TestHTTP:
		if r.p.port() == 0 {
			return fail("no port to test")
		}
		return r.http.check(ctx, r.e.now, c, t.Addr, r.p.port())
	case TestScript:
		return runScript(ctx, c, t, r.p.port())
	}
	return fail("unknown test " + c.Test)
}

func (r *runner) udp(ctx context.Context) outcome {
	c, t := &r.p.chk, r.p.key.target
	if r.e.cfg.Prober == nil {
		return failErr(errNoProber)
	}
	if r.p.port() == 0 {
		return fail("no port to test")
	}
	if r.buf == nil {
		r.buf = make([]byte, maxUDPReply)
	}
	n, rtt, err := r.e.cfg.Prober.UDPExchange(ctx, netip.AddrPortFrom(t.Addr, r.p.port()), c.Send, r.buf)
	if err != nil {
		return failErr(err)
	}
	if len(c.Expect) > 0 && !bytes.Contains(r.buf[:min(n, len(r.buf))], c.Expect) {
		return fail("unexpected reply")
	}
	return outcome{ok: true, rtt: rtt, load: -1}
}

func (r *runner) agent(ctx context.Context) outcome {
	c, t := &r.p.chk, r.p.key.target
	if r.e.cfg.Prober == nil {
		return failErr(errNoProber)
	}
	if r.buf == nil {
		r.buf = make([]byte, maxUDPReply)
	}
	r.token++
	r.req = AppendAgentRequest(r.req[:0], r.token)
	n, rtt, err := r.e.cfg.Prober.UDPExchange(ctx, netip.AddrPortFrom(t.Addr, c.AgentPort), r.req, r.buf)
	if err != nil {
		return failErr(err)
	}
	load, err := ParseAgentReply(r.buf[:min(n, len(r.buf))], r.token)
	if err != nil {
		return failErr(err)
	}
	return outcome{ok: true, rtt: rtt, load: load}
}

// httpChecker runs one pair's HTTP checks, one connection per check.
type httpChecker struct {
	tr     *http.Transport
	client *http.Client
}

func newHTTPChecker(dial HTTPDialer) *httpChecker {
	tr := &http.Transport{
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: MaxHTTPBody,
		Proxy:                  nil,
	}
	if dial != nil {
		tr.DialContext = dial
	}
	return &httpChecker{tr: tr, client: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (h *httpChecker) close() { h.tr.CloseIdleConnections() }

func (h *httpChecker) check(ctx context.Context, now func() time.Time, c *Check, addr netip.Addr, port uint16) outcome {
	if h.tr.DialContext == nil {
		return fail("no HTTP dialer")
	}
	url := "http://" + netip.AddrPortFrom(addr, port).String() + c.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fail(err.Error())
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	req.Header.Set("User-Agent", "ulb-health")
	start := now()
	resp, err := h.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return fail("timeout")
		}
		return fail(trimURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxHTTPBody))
	rtt := now().Sub(start)
	if resp.StatusCode != c.ExpectStatus {
		return fail(fmt.Sprintf("status %d, want %d", resp.StatusCode, c.ExpectStatus))
	}
	if err != nil {
		return failErr(err)
	}
	if c.ExpectBody != nil && !c.ExpectBody.Match(body) {
		return fail("body does not match " + c.ExpectBody.String())
	}
	return outcome{ok: true, rtt: rtt, load: -1}
}

// trimURLError drops the method and URL net/http puts before an error (Results show
// the server already).
func trimURLError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "Get ") {
		return s[i+2:]
	}
	return s
}
