// Package examples holds one folder per real topology (ulbd configs and a bench file that
// reproduces it). Its tests bring every example's bench up in network namespaces with a
// real ulbd, run the bench's checks, and tear it down; forward_test.go drives the
// forwarding core through a dedicated bench in testdata.
package examples

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/bench"
	"ulb/internal/testenv"
	"ulb/router/control"
)

// binDir holds ulbd, ulbadm, ulbbench and ulbagent built from this checkout.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ulb-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for _, cmd := range []string{"ulbd", "ulbadm", "ulbbench", "ulbagent"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "ulb/cmd/"+cmd).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", cmd, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logWriter sends a bench's progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// upBench brings the bench of file up and registers its teardown, which also checks
// that none of its namespaces is left.
func upBench(t *testing.T, file string) *bench.Bench {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip")
	spec, err := bench.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := bench.Options{BinDir: binDir, Out: logWriter{t}}
	bench.Down(spec, opts) // a bench left over by a killed run
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := bench.Up(ctx, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range spec.Processes {
				if log, err := os.ReadFile(b.LogPath(p.Name)); err == nil {
					t.Logf("log of %s:\n%s", p.Name, tail(string(log), 40))
				}
			}
		}
		if err := b.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, ns := range spec.Namespaces() {
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Fields(line + " x")[0] == ns {
					t.Errorf("namespace %s left after down", ns)
				}
			}
		}
	})
	return b
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestExampleBenches runs every example's bench with its checks.
func TestExampleBenches(t *testing.T) {
	files, err := filepath.Glob("*/bench.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example benches found (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Dir(f), func(t *testing.T) {
			b := upBench(t, f)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			rs := b.Run(ctx)
			for _, r := range rs {
				if !r.Pass {
					t.Errorf("%s", r)
				}
			}
			if len(rs) == 0 {
				t.Error("the bench has no checks")
			}
			if filepath.Dir(f) == "dsr" {
				// The servers' answers bypass ulbd: the rule saw the clients' packets only.
				var s control.StatsInfo
				ulbadm(t, "/run/ulb/dsr-lb1.sock", &s, "show-stats", "-r", "web")
				if len(s.Rules) != 1 || s.Rules[0].PacketsIn == 0 || s.Rules[0].PacketsOut != 0 {
					t.Errorf("DSR rule counters %+v: want packets in, none out", s.Rules)
				}
			}
		})
	}
}

// ulbadm runs ulbadm against a control socket and decodes its -o json output into out.
func ulbadm(t *testing.T, socket string, out any, args ...string) {
	t.Helper()
	argv := append([]string{"-s", socket, "-o", "json"}, args...)
	data, err := exec.Command(filepath.Join(binDir, "ulbadm"), argv...).Output()
	if err != nil {
		t.Fatalf("ulbadm %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("ulbadm %s: %v\n%s", strings.Join(args, " "), err, data)
	}
}
