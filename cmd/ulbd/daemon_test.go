package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulb/internal/testenv"
	"ulb/router/control"
)

// TestDaemonLifecycle runs a real ulbd on a veth pair in a namespace of its own: it
// serves the control socket, installs new routes on SIGHUP, and on SIGTERM releases its
// ports, removes its socket and exits 0.
func TestDaemonLifecycle(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip")
	bin := buildUlbd(t)
	suffix := make([]byte, 3)
	rand.Read(suffix)
	ns := "ulbt-d" + hex.EncodeToString(suffix)
	ipCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ipCmd("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipCmd("-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
	ipCmd("-n", ns, "link", "add", "q0", "type", "veth", "peer", "name", "q1")

	dir := t.TempDir()
	sock := filepath.Join(dir, "ulbd.sock")
	conf := filepath.Join(dir, "ulbd.toml")
	base := `control_socket = "` + sock + `"
[[port]]
name = "a"
device = "p0"
address = ["192.0.2.1/24"]
[[port]]
name = "b"
device = "q0"
address = ["198.51.100.1/24", "2001:db8:2::1/64"]
`
	if err := os.WriteFile(conf, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "ulbd.log")
	lf, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf)
			t.Logf("ulbd log:\n%s", b)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var c *control.Client
	for c == nil {
		select {
		case err := <-exited:
			t.Fatalf("ulbd exited early: %v", err)
		case <-ctx.Done():
			t.Fatal("the control socket never answered")
		case <-time.After(50 * time.Millisecond):
		}
		c, _ = control.Dial(sock)
	}
	defer c.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	var ports []control.PortInfo
	if err := c.Call(ctx, control.VerbShowPort, nil, &ports); err != nil {
		t.Fatal(err)
	}
	if len(ports) != 2 || ports[0].Name != "a" || ports[1].Name != "b" {
		t.Fatalf("show-port: %+v", ports)
	}

	// SIGHUP with a new route: it appears without a restart.
	if err := os.WriteFile(conf, []byte(base+"[[route]]\nto = \"203.0.113.0/24\"\nvia = \"198.51.100.2\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hasRoute := func(routes []control.RouteInfo) bool {
		return slices.ContainsFunc(routes, func(r control.RouteInfo) bool {
			return r.Prefix == "203.0.113.0/24" && r.Via == "198.51.100.2" && r.Port == "b" && r.Kind == "static"
		})
	}
	for {
		var routes []control.RouteInfo
		if err := c.Call(ctx, control.VerbShowRoute, nil, &routes); err != nil {
			t.Fatal(err)
		}
		if hasRoute(routes) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the reloaded route never appeared: %+v", routes)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// The reload verb: a file that fails validation changes nothing and the error names
	// FILE:LINE; a valid one is installed before the verb answers.
	if err := os.WriteFile(conf, []byte(base+"[[route]]\nto = \"192.0.2.128/25\"\nvia = \"198.51.100.300\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var info control.ReloadInfo
	err = c.Call(ctx, control.VerbReload, nil, &info)
	lines := strings.Count(base, "\n")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s:%d:", conf, lines+3)) {
		t.Fatalf("reload of a bad file: %v, want an error at %s:%d", err, conf, lines+3)
	}
	var routes []control.RouteInfo
	if err := c.Call(ctx, control.VerbShowRoute, nil, &routes); err != nil || !hasRoute(routes) {
		t.Fatalf("after a refused reload: %+v, %v: the running route is gone", routes, err)
	}
	if err := os.WriteFile(conf, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, control.VerbReload, nil, &info); err != nil || info.File != conf || info.Routes != 0 {
		t.Fatalf("reload: %+v, %v", info, err)
	}
	if err := c.Call(ctx, control.VerbShowRoute, nil, &routes); err != nil || hasRoute(routes) {
		t.Fatalf("after reload without the route: %+v, %v", routes, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("ulbd exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ulbd did not stop within 10s of SIGTERM")
	}
	log, _ := os.ReadFile(logf)
	if !strings.Contains(string(log), "ports released") {
		t.Errorf("log lacks ports released:\n%s", log)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left after stop: %v", err)
	}
}
