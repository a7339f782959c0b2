package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var testPorts = []PortInfo{
	{Name: "outside", Device: "eth1", Kind: "afpacket", MAC: "02:00:00:00:00:01", MTU: 1500,
		Addresses: []string{"198.51.100.10/24"}, Up: true, PortCounters: PortCounters{RxPackets: 10, TxBytes: 999}},
	{Name: "inside", Device: "eth2", Kind: "afpacket", MAC: "02:00:00:00:00:02", MTU: 9000,
		Addresses: []string{"203.0.113.10/24"}},
}

func showPort(_ context.Context, args json.RawMessage) (any, error) {
	var a ShowPortArgs
	if args != nil {
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, fmt.Errorf("bad arguments: %w", err)
		}
	}
	if a.Name == "" {
		return testPorts, nil
	}
	for _, p := range testPorts {
		if p.Name == a.Name {
			return []PortInfo{p}, nil
		}
	}
	return nil, fmt.Errorf("no port named %q", a.Name)
}

// startServer serves on a fresh socket until the test ends and returns its path and a
// function that stops it and waits for Serve to return.
func startServer(t *testing.T, setup func(*Server)) (string, func() error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "ulbd.sock")
	s := NewServer(path, nil)
	s.Handle(VerbShowPort, showPort)
	if setup != nil {
		setup(s)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(5 * time.Second):
				serr = errors.New("Serve did not return 5s after cancel")
			}
		})
		return serr
	}
	t.Cleanup(func() { stop() })
	return path, stop
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCallsOnOneConnection(t *testing.T) {
	path, _ := startServer(t, nil)
	c := dial(t, path)
	ctx := context.Background()
	var all []PortInfo
	if err := c.Call(ctx, VerbShowPort, nil, &all); err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Name != "outside" || all[0].RxPackets != 10 || all[1].MTU != 9000 {
		t.Fatalf("show-port = %+v", all)
	}
	var one []PortInfo
	if err := c.Call(ctx, VerbShowPort, ShowPortArgs{Name: "inside"}, &one); err != nil {
		t.Fatal(err)
	}
	if len(one) != 1 || one[0].Device != "eth2" || one[0].Addresses[0] != "203.0.113.10/24" {
		t.Fatalf("show-port inside = %+v", one)
	}
	err := c.Call(ctx, VerbShowPort, ShowPortArgs{Name: "nope"}, &one)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != `no port named "nope"` || re.Verb != VerbShowPort {
		t.Fatalf("unknown port: err = %#v", err)
	}
	// The connection still works after an error response.
	var raw json.RawMessage
	if err := c.Call(ctx, VerbShowPort, ShowPortArgs{Name: "outside"}, &raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"rx_packets":10`) || !strings.Contains(string(raw), `"name":"outside"`) {
		t.Fatalf("raw data = %s", raw)
	}
}

func TestUnknownVerb(t *testing.T) {
	path, _ := startServer(t, nil)
	err := dial(t, path).Call(context.Background(), "show-frobs", nil, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != `unknown verb "show-frobs"` {
		t.Fatalf("err = %v", err)
	}
}

func TestHandlerErrorsAndPanics(t *testing.T) {
	path, _ := startServer(t, func(s *Server) {
		s.Handle("boom", func(context.Context, json.RawMessage) (any, error) { panic("boom") })
		s.Handle("unencodable", func(context.Context, json.RawMessage) (any, error) { return make(chan int), nil })
		s.Handle("nothing", func(context.Context, json.RawMessage) (any, error) { return nil, nil })
	})
	c := dial(t, path)
	ctx := context.Background()
	var re *RemoteError
	if err := c.Call(ctx, "boom", nil, nil); !errors.As(err, &re) || re.Message != "boom: internal error" {
		t.Errorf("panicking handler: err = %v", err)
	}
	if err := c.Call(ctx, "unencodable", nil, nil); !errors.As(err, &re) || !strings.HasPrefix(re.Message, "unencodable: internal error") {
		t.Errorf("unencodable result: err = %v", err)
	}
	var out []PortInfo
	if err := c.Call(ctx, "nothing", nil, &out); err != nil || out != nil {
		t.Errorf("nil result: err = %v, out = %v", err, out)
	}
}

// rawExchange writes lines on a raw connection and returns the response lines.
func rawExchange(t *testing.T, path string, lines ...string) []Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(c)
	var out []Response
	for _, l := range lines {
		if _, err := c.Write([]byte(l + "\n")); err != nil {
			t.Fatal(err)
		}
		reply, err := rd.ReadBytes('\n')
		if err != nil {
			t.Fatalf("after %q: %v", l, err)
		}
		var r Response
		if err := json.Unmarshal(reply, &r); err != nil {
			t.Fatalf("response %q: %v", reply, err)
		}
		out = append(out, r)
	}
	return out
}

func TestBadRequestsGetErrorResponses(t *testing.T) {
	path, _ := startServer(t, nil)
	rs := rawExchange(t, path,
		`this is not json`,
		`{"verb":"show-port","args":{"name":"inside"}}`,
		`{"verb":42}`,
		`{"args":{}}`,
		`[1,2,3]`,
		`{"verb":"show-port","args":{"name":7}}`,
		`{"verb":"show-port"}`,
	)
	want := []struct {
		ok  bool
		err string
	}{
		{false, "bad request: "},
		{true, ""},
		{false, "bad request: "},
		{false, "bad request: no verb"},
		{false, "bad request: "},
		{false, "bad arguments: "},
		{true, ""},
	}
	for i, r := range rs {
		if r.OK != want[i].ok || !strings.HasPrefix(r.Error, want[i].err) {
			t.Errorf("response %d = %+v, want ok=%v error prefix %q", i, r, want[i].ok, want[i].err)
		}
	}
	var one []PortInfo
	if err := json.Unmarshal(rs[1].Data, &one); err != nil || len(one) != 1 || one[0].Name != "inside" {
		t.Errorf("data after a bad line = %s (%v)", rs[1].Data, err)
	}
}

func TestTooLongRequest(t *testing.T) {
	path, _ := startServer(t, nil)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		// The server stops reading once the limit is passed; ignore the write error.
		c.Write([]byte(`{"verb":"` + strings.Repeat("x", MaxRequest+10) + "\"}\n"))
	}()
	reply, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var r Response
	if err := json.Unmarshal(reply, &r); err != nil || r.OK || !strings.Contains(r.Error, "longer than") {
		t.Fatalf("response %s (%v)", reply, err)
	}
}

func TestConcurrentClients(t *testing.T) {
	path, _ := startServer(t, func(s *Server) {
		s.Handle("echo", func(_ context.Context, args json.RawMessage) (any, error) { return args, nil })
	})
	const clients, calls = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			c, err := Dial(path)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range calls {
				want := fmt.Sprintf("client %d call %d", i, j)
				var got string
				if err := c.Call(context.Background(), "echo", want, &got); err != nil {
					errs <- err
					return
				}
				if got != want {
					errs <- fmt.Errorf("got %q, want %q", got, want)
					return
				}
			}
		})
	}
	// One client shared by several goroutines: calls are serialized, not interleaved.
	shared := dial(t, path)
	for i := range 4 {
		wg.Go(func() {
			for j := range calls {
				want := fmt.Sprintf("shared %d/%d", i, j)
				var got string
				if err := shared.Call(context.Background(), "echo", want, &got); err != nil || got != want {
					errs <- fmt.Errorf("shared: got %q, %v; want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSocketModeAndDirectory(t *testing.T) {
	path, stop := startServer(t, nil)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file after Serve returned: %v", err)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ulbd.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a dead ulbd's socket file
	s := NewServer(path, nil)
	s.Handle(VerbShowPort, showPort)
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	var ports []PortInfo
	if err := dial(t, path).Call(context.Background(), VerbShowPort, nil, &ports); err != nil || len(ports) != 2 {
		t.Fatalf("call after replacing a stale socket: %v %v", ports, err)
	}
}

func TestRefusesSocketInUse(t *testing.T) {
	path, _ := startServer(t, nil)
	s2 := NewServer(path, nil)
	if err := s2.Serve(context.Background()); !errors.Is(err, ErrInUse) {
		t.Fatalf("second server: err = %v, want ErrInUse", err)
	}
	// The first server still answers.
	if err := dial(t, path).Call(context.Background(), VerbShowPort, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ulbd.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := NewServer(path, nil).Listen(); !errors.Is(err, ErrInUse) {
		t.Fatalf("err = %v, want ErrInUse", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Fatalf("the file was touched: %q %v", b, err)
	}
}

func TestDialUnreachable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ulbd.sock")
	_, err := Dial(path)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if want := "cannot reach ulbd at " + path + ": is it running?"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

func TestCallHonoursContext(t *testing.T) {
	release := make(chan struct{})
	path, _ := startServer(t, func(s *Server) {
		s.Handle("slow", func(ctx context.Context, _ json.RawMessage) (any, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return "late", nil
		})
	})
	defer close(release)
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Call(ctx, "slow", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
}

func TestShutdownLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	entered := make(chan struct{})
	path, stop := startServer(t, func(s *Server) {
		s.Handle("block", func(ctx context.Context, _ json.RawMessage) (any, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	// Idle connections, one that never sends a full line, and a call in progress.
	for range 3 {
		dial(t, path)
	}
	partial, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	partial.Write([]byte(`{"verb":`))
	busy := dial(t, path)
	callDone := make(chan error, 1)
	go func() { callDone <- busy.Call(context.Background(), "block", nil, nil) }()
	<-entered

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-callDone:
		if err == nil {
			t.Error("the interrupted call succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call in progress did not end at shutdown")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after shutdown, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file left: %v", err)
	}
}
