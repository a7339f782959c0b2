package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Every check type but ping against live servers on loopback, through the kernel's
// sockets (ulbd's router crafts the packets instead; its tests run them in namespaces).

var loopback = netip.MustParseAddr("127.0.0.1")

// checkOnce runs c once against t and returns the outcome.
func checkOnce(t *testing.T, p Prober, c Check, tg Target) outcome {
	t.Helper()
	c, err := c.withDefaults("c")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	e := New(Config{Prober: p, HTTPDialer: d.DialContext})
	r := &runner{e: e, p: &probe{key: probeKey{"c", tg}, chk: c}}
	if c.Test == TestHTTP {
		r.http = newHTTPChecker(e.cfg.HTTPDialer)
		defer r.http.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	return r.check(ctx)
}

// closedPort returns a loopback port nothing listens on (for network "tcp" or "udp").
func closedPort(t *testing.T, network string) uint16 {
	t.Helper()
	var ap netip.AddrPort
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap = l.Addr().(*net.TCPAddr).AddrPort()
		l.Close()
	} else {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap = c.LocalAddr().(*net.UDPAddr).AddrPort()
		c.Close()
	}
	return ap.Port()
}

func loTarget(port uint16) Target {
	return Target{Group: "lo", Addr: loopback, Port: port, VIP: netip.MustParseAddr("198.51.100.100"), Proto: 6}
}

func TestLiveTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).AddrPort().Port()
	c := Check{Test: TestTCP, Timeout: time.Second}
	if o := checkOnce(t, netProber{}, c, loTarget(port)); !o.ok || o.rtt <= 0 {
		t.Errorf("tcp to a listener: %+v", o)
	}
	if o := checkOnce(t, netProber{}, c, loTarget(closedPort(t, "tcp"))); o.ok || o.reason != "refused" {
		t.Errorf("tcp to a closed port: %+v, want refused", o)
	}
	// The check's port wins over the server's.
	c.Port = port
	if o := checkOnce(t, netProber{}, c, loTarget(closedPort(t, "tcp"))); !o.ok {
		t.Errorf("tcp with the check's port: %+v", o)
	}
	if o := checkOnce(t, netProber{}, Check{Test: TestTCP}, loTarget(0)); o.ok || o.reason != "no port to test" {
		t.Errorf("tcp without a port: %+v", o)
	}
}

// udpEcho answers every datagram with "echo " and the datagram.
func udpEcho(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

func TestLiveUDP(t *testing.T) {
	port := udpEcho(t)
	c := Check{Test: TestUDP, Timeout: time.Second, Send: []byte("hello")}
	if o := checkOnce(t, netProber{}, c, loTarget(port)); !o.ok {
		t.Errorf("udp to an echo server: %+v", o)
	}
	c.Expect = []byte("echo hello")
	if o := checkOnce(t, netProber{}, c, loTarget(port)); !o.ok {
		t.Errorf("udp expecting the echo: %+v", o)
	}
	c.Expect = []byte("something else")
	if o := checkOnce(t, netProber{}, c, loTarget(port)); o.ok || o.reason != "unexpected reply" {
		t.Errorf("udp with a wrong reply: %+v", o)
	}
	c.Expect = nil
	if o := checkOnce(t, netProber{}, c, loTarget(closedPort(t, "udp"))); o.ok || o.reason != "port unreachable" {
		t.Errorf("udp to a closed port: %+v, want port unreachable", o)
	}
	// A server that reads and never answers: silence is a failure.
	mute, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	c.Timeout = 100 * time.Millisecond
	if o := checkOnce(t, netProber{}, c, loTarget(mute.LocalAddr().(*net.UDPAddr).AddrPort().Port())); o.ok || o.reason != "timeout" {
		t.Errorf("udp to a silent server: %+v, want timeout", o)
	}
}

func TestLiveHTTP(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	var host atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		w.WriteHeader(int(status.Load()))
		fmt.Fprintf(w, "service %s is fine\n", r.URL.Path)
	}))
	defer srv.Close()
	port := netip.MustParseAddrPort(srv.Listener.Addr().String()).Port()
	tg := loTarget(port)
	c := Check{Test: TestHTTP, Timeout: time.Second, Path: "/health", Host: "www.example.test"}
	if o := checkOnce(t, nil, c, tg); !o.ok || o.rtt <= 0 {
		t.Errorf("http 200: %+v", o)
	}
	if h, _ := host.Load().(string); h != "www.example.test" {
		t.Errorf("Host header %q", h)
	}
	c.ExpectBody = regexp.MustCompile(`^service /health is (fine|ok)`)
	if o := checkOnce(t, nil, c, tg); !o.ok {
		t.Errorf("http with a matching body: %+v", o)
	}
	c.ExpectBody = regexp.MustCompile(`broken`)
	if o := checkOnce(t, nil, c, tg); o.ok || !strings.Contains(o.reason, "body does not match") {
		t.Errorf("http with a body not matching: %+v", o)
	}
	c.ExpectBody = nil
	status.Store(503)
	if o := checkOnce(t, nil, c, tg); o.ok || o.reason != "status 503, want 200" {
		t.Errorf("http 503: %+v", o)
	}
	c.ExpectStatus = 503
	if o := checkOnce(t, nil, c, tg); !o.ok {
		t.Errorf("http 503 when 503 is expected: %+v", o)
	}
	// Redirects are not followed: the 302 is the answer.
	status.Store(200)
	c.ExpectStatus, c.Path = 0, "/redirect"
	if o := checkOnce(t, nil, c, tg); o.ok || o.reason != "status 302, want 200" {
		t.Errorf("http redirect: %+v", o)
	}
	c.Path = "/"
	if o := checkOnce(t, nil, c, loTarget(closedPort(t, "tcp"))); o.ok || !strings.Contains(o.reason, "refused") {
		t.Errorf("http to a closed port: %+v", o)
	}
	// A server that accepts and never answers: the timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c.Timeout = 100 * time.Millisecond
	if o := checkOnce(t, nil, c, loTarget(netip.MustParseAddrPort(l.Addr().String()).Port())); o.ok || o.reason != "timeout" {
		t.Errorf("http to a silent server: %+v, want timeout", o)
	}
	// An engine without a dialer fails the check, it does not panic.
	r := &runner{e: New(Config{}), p: &probe{key: probeKey{"c", tg}, chk: c}, http: newHTTPChecker(nil)}
	if o := r.check(context.Background()); o.ok || o.reason != "no HTTP dialer" {
		t.Errorf("http without a dialer: %+v", o)
	}
}

// TestLiveHTTPEngine runs the engine against an HTTP server that starts answering 503:
// the server goes down, and comes back when it answers 200 again.
func TestLiveHTTPEngine(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	tg := loTarget(netip.MustParseAddrPort(srv.Listener.Addr().String()).Port())
	ch := make(chan event, 10)
	var d net.Dialer
	e := New(Config{HTTPDialer: d.DialContext, OnChange: func(t Target, up bool) { ch <- event{t: t, up: up} }})
	c := Check{Test: TestHTTP, Interval: 10 * time.Millisecond, Timeout: time.Second, Count: 2, Rise: 2}
	if err := e.Set(map[string]Check{"web-http": c}, map[string][]Target{"web-http": {tg}}); err != nil {
		t.Fatal(err)
	}
	run(t, e)
	if ev := waitEvent(t, ch, 2*time.Second); !ev.up {
		t.Fatalf("200: %+v, want up", ev)
	}
	status.Store(503)
	if ev := waitEvent(t, ch, 2*time.Second); ev.up {
		t.Fatalf("503: %+v, want down", ev)
	}
	status.Store(200)
	if ev := waitEvent(t, ch, 2*time.Second); !ev.up {
		t.Fatalf("200 again: %+v, want up", ev)
	}
}

func TestLiveAgent(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var load atomic.Int32
	load.Store(20)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeAgent(ctx, conn, func() int { return int(load.Load()) }) }()
	port := conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()

	c := Check{Test: TestAgent, Timeout: time.Second, AgentPort: port}
	if o := checkOnce(t, netProber{}, c, loTarget(80)); !o.ok || o.load != 20 {
		t.Errorf("agent at load 20: %+v", o)
	}
	load.Store(-1) // the agent answers nothing
	c.Timeout = 100 * time.Millisecond
	if o := checkOnce(t, netProber{}, c, loTarget(80)); o.ok || o.reason != "timeout" {
		t.Errorf("silent agent: %+v, want timeout", o)
	}

	// Through the engine: OnLoad gets every answer, the result shows the load.
	load.Store(80)
	e, _, loads := engine(netProber{})
	c = Check{Test: TestAgent, Interval: 10 * time.Millisecond, Timeout: time.Second, AgentPort: port}
	if err := e.Set(map[string]Check{"agent": c}, map[string][]Target{"agent": {loTarget(80)}}); err != nil {
		t.Fatal(err)
	}
	run(t, e)
	for range 3 {
		select {
		case l := <-loads:
			if l != 80 {
				t.Errorf("OnLoad(%d), want 80", l)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no OnLoad")
		}
	}
	waitResult(t, e, loTarget(80), time.Second, func(r Result) bool { return r.Load == 80 && r.State == Up })

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ServeAgent: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ServeAgent did not return after cancel")
	}
	// Nobody listens any more (ServeAgent leaves closing to its caller): ICMP port
	// unreachable.
	conn.Close()
	c.Timeout = time.Second
	if o := checkOnce(t, netProber{}, c, loTarget(80)); o.ok || o.reason != "port unreachable" {
		t.Errorf("stopped agent: %+v, want port unreachable", o)
	}
}

func TestLiveScript(t *testing.T) {
	argsFile := filepath.Join(t.TempDir(), "args")
	t.Setenv("ULB_TEST_ARGS", argsFile)
	tg := loTarget(8080)
	tg.Proto = 17
	c := Check{Test: TestScript, Timeout: 1500 * time.Millisecond, Command: []string{"/bin/sh", "testdata/rtt1234.sh"}}
	if o := checkOnce(t, nil, c, tg); !o.ok || o.rtt != 1234*time.Microsecond {
		t.Errorf("script printing 1234: %+v", o)
	}
	if b, err := os.ReadFile(argsFile); err != nil || string(b) != "198.51.100.100 127.0.0.1 udp 8080 2\n" {
		t.Errorf("script arguments %q (%v), want VIP server protocol port timeout", b, err)
	}
	c.Command = []string{"/bin/sh", "testdata/fail.sh"}
	if o := checkOnce(t, nil, c, tg); o.ok || o.reason != "script reported failure" {
		t.Errorf("script printing -1: %+v", o)
	}
	c.Command = []string{"/bin/sh", "testdata/exit3.sh"}
	if o := checkOnce(t, nil, c, tg); o.ok || o.reason != "exit status 3: backend said no" {
		t.Errorf("script exiting 3: %+v", o)
	}
	c.Command = []string{"/bin/echo", "not-a-number"}
	if o := checkOnce(t, nil, c, tg); o.ok || !strings.Contains(o.reason, "want microseconds") {
		t.Errorf("script printing garbage: %+v", o)
	}
	c.Command = []string{"/bin/true"}
	if o := checkOnce(t, nil, c, tg); o.ok || o.reason != "script printed nothing" {
		t.Errorf("script printing nothing: %+v", o)
	}
	c.Command = []string{filepath.Join(t.TempDir(), "missing")}
	if o := checkOnce(t, nil, c, tg); o.ok {
		t.Errorf("missing script: %+v", o)
	}
	// A script hanging past the timeout is killed with its children, in time.
	c.Command = []string{"/bin/sh", "testdata/hang.sh"}
	c.Timeout = 200 * time.Millisecond
	start := time.Now()
	if o := checkOnce(t, nil, c, tg); o.ok || o.reason != "timeout" {
		t.Errorf("hanging script: %+v, want timeout", o)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("hanging script took %v to fail (timeout 200ms)", d)
	}
}
