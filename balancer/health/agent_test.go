package health

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestAgentCodec(t *testing.T) {
	req := AppendAgentRequest(nil, 42)
	if string(req) != "load? 42\n" {
		t.Errorf("request %q", req)
	}
	tok, ok := parseAgentRequest(req)
	if !ok || string(tok) != "42" {
		t.Errorf("parse own request: %q %v", tok, ok)
	}
	if got := appendAgentReply(nil, 7, tok); string(got) != "load 7 42\n" {
		t.Errorf("reply %q", got)
	}
	if l, err := ParseAgentReply([]byte("load 7 42\n"), 42); err != nil || l != 7 {
		t.Errorf("ParseAgentReply = %d, %v", l, err)
	}
	for _, bad := range []string{"", "load 7 41\n", "load 7 42", "load 101 42\n", "load -1 42\n",
		"load x 42\n", "load 0100 42\n", "load 07 42\n", "load +7 42\n", "load  42\n", "LOAD 7 42\n", "load 7 42 \n", "load 7\n"} {
		if _, err := ParseAgentReply([]byte(bad), 42); !errors.Is(err, ErrAgentReply) {
			t.Errorf("ParseAgentReply(%q) = %v, want ErrAgentReply", bad, err)
		}
	}
	for _, good := range []string{"load?\n", "load? abcXYZ09\n", "load? " + string(make32('a')) + "\n"} {
		if _, ok := parseAgentRequest([]byte(good)); !ok {
			t.Errorf("request %q refused", good)
		}
	}
	for _, bad := range []string{"", "load?", "load? \n", "load?x\n", "load? a b\n", "load? a-b\n",
		"load? " + string(make32('a')) + "a\n", "GET / HTTP/1.0\r\n\r\n"} {
		if _, ok := parseAgentRequest([]byte(bad)); ok {
			t.Errorf("request %q accepted", bad)
		}
	}
}

func make32(c byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = c
	}
	return b
}

// FuzzAgentReply checks that any reply parses or fails cleanly, and that what parses is
// a load the agent could have sent.
func FuzzAgentReply(f *testing.F) {
	for _, s := range []string{"load 7 42\n", "load 100 1\n", "load 0 4294967295\n", "load 7\n", "load 99999999999999999999 1\n"} {
		f.Add([]byte(s), uint32(42))
	}
	f.Fuzz(func(t *testing.T, b []byte, token uint32) {
		l, err := ParseAgentReply(b, token)
		if err != nil {
			return
		}
		if l < 0 || l > 100 {
			t.Fatalf("load %d from %q", l, b)
		}
		if got := appendAgentReply(nil, l, strconv.AppendUint(nil, uint64(token), 10)); string(got) != string(b) {
			t.Fatalf("reply %q parsed as %d but the agent would send %q", b, l, got)
		}
	})
}

// FuzzAgentRequest checks that any datagram is a request or ignored, never a panic, and
// that the reply to a request is at most 3 bytes longer.
func FuzzAgentRequest(f *testing.F) {
	for _, s := range []string{"load?\n", "load? 1\n", "load? abc\n", "load? \n", "xload?\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, ok := parseAgentRequest(b)
		if !ok {
			return
		}
		if r := appendAgentReply(nil, 100, tok); len(r) > len(b)+3 {
			t.Fatalf("reply %q to %q is %d bytes longer", r, b, len(r)-len(b))
		}
	})
}

// TestServeAgentIgnores checks that the agent answers requests only, and that load is
// clamped to 100.
func TestServeAgentIgnores(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = ServeAgent(ctx, conn, FixedLoad(250)) }()
	c, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 128)
	for _, junk := range []string{"hello\n", "load?", "GET / HTTP/1.0\r\n\r\n"} {
		_, _ = c.Write([]byte(junk))
	}
	_, _ = c.Write([]byte("load? 9\n"))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "load 100 9\n" {
		t.Fatalf("first reply %q (%v), want only the request's answer, clamped", buf[:n], err)
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Errorf("extra reply %q", buf[:n])
	}
}

func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "load")
	load := FileLoad(f)
	if l := load(); l != -1 {
		t.Errorf("missing file: %d, want -1 (no answer)", l)
	}
	for content, want := range map[string]int{"35\n": 35, " 7 extra": 7, "250": 100, "-5": 0, "x": -1, "": -1} {
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if l := load(); l != want {
			t.Errorf("file %q: %d, want %d", content, l, want)
		}
	}
	avg := filepath.Join(dir, "loadavg")
	auto := AutoLoad(avg, 2)
	for content, want := range map[string]int{"0.50 0.40 0.30 1/100 1234\n": 25, "1.00 0 0": 50, "5.5 0 0": 100, "0.00": 0, "nan": -1, "x": -1} {
		if err := os.WriteFile(avg, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if l := auto(); l != want {
			t.Errorf("loadavg %q on 2 CPUs: %d, want %d", content, l, want)
		}
	}
	if _, err := os.Stat("/proc/loadavg"); err == nil {
		if l := AutoLoad("/proc/loadavg", 0)(); l < 0 || l > 100 {
			t.Errorf("/proc/loadavg gives %d", l)
		}
	}
}
