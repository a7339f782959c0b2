package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/balancer/health"
)

// query sends one agent request to addr and returns the load it answers.
func query(t *testing.T, addr net.Addr, token uint32) int {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(health.AppendAgentRequest(nil, token)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	l, err := health.ParseAgentReply(buf[:n], token)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// start runs ulbagent with args until the test ends and returns its address.
func start(t *testing.T, args ...string) net.Addr {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, func(a net.Addr) { ready <- a }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("ulbagent did not stop")
		}
	})
	select {
	case a := <-ready:
		return a
	case err := <-done:
		t.Fatalf("ulbagent %v: %v", args, err)
	case <-time.After(2 * time.Second):
		t.Fatal("ulbagent not ready")
	}
	return nil
}

func TestFixed(t *testing.T) {
	a := start(t, "-listen", "127.0.0.1:0", "-load", "42")
	if l := query(t, a, 1); l != 42 {
		t.Errorf("load %d, want 42", l)
	}
}

func TestLoadFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "load")
	if err := os.WriteFile(f, []byte("20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := start(t, "-listen", "127.0.0.1:0", "-load-file", f)
	if l := query(t, a, 1); l != 20 {
		t.Errorf("load %d, want 20", l)
	}
	if err := os.WriteFile(f, []byte("80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l := query(t, a, 2); l != 80 {
		t.Errorf("load after changing the file %d, want 80", l)
	}
}

func TestAuto(t *testing.T) {
	if _, err := os.Stat("/proc/loadavg"); err != nil {
		t.Skip("no /proc/loadavg")
	}
	a := start(t, "-listen", "127.0.0.1:0", "-auto")
	if l := query(t, a, 7); l < 0 || l > 100 {
		t.Errorf("auto load %d", l)
	}
}

func TestBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-load", "5", "-auto"},
		{"-load", "101"},
		{"-load", "5", "extra"},
		{"-nope"},
		{"-load", "5", "-listen", "256.0.0.1:1"},
	} {
		err := run(context.Background(), args, io.Discard, nil)
		if err == nil {
			t.Errorf("ulbagent %s: no error", strings.Join(args, " "))
		}
	}
}
