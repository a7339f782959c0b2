package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/bench/netns"
	"ulb/internal/testenv"
)

// TestCompareKernelQuick runs a very short comparison (1 s workloads, one repetition) on
// the kernel-forwarding example only, under a unique bench name, and checks that every
// figure is there and positive and that the table prints. It asserts no rate.
func TestCompareKernelQuick(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip", "ss", "iperf3")
	dir := t.TempDir()
	kernel := filepath.Join(examplesDir(t), "kernel", "bench.toml")
	text := fmt.Sprintf(`name = "quick"
repeat = 2

[[target]]
name = "kernel"
bench = %q

[[workload]]
type = "tcp-stream"
from = "client"
server = "server"
to = "198.51.100.2"
duration = "1s"

[[workload]]
type = "pps64"
from = "client"
server = "server"
to = "198.51.100.2"
duration = "1s"
flows = 64
goal_min = 0.001

[[workload]]
type = "conns"
from = "client"
to = "198.51.100.2:80"
count = 200
concurrency = 4
`, kernel)
	file := filepath.Join(dir, "compare.toml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCompare(file)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("ulbt%04d", os.Getpid()%10000)
	// Build ulbbench once for both comparisons (each bench would build its own).
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "ulbbench"), "./cmd/ulbbench")
	build.Dir = filepath.Join(examplesDir(t), "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ulbbench: %v\n%s", err, out)
	}
	rep, out := runTestCompare(t, c, kernel, name, bin, dir, 1, 90*time.Second, "")
	want := map[string][]string{
		"tcp-stream": {"Gbit/s received", "Gbit/s sent"},
		"pps64":      {"Mpps delivered", "Mpps offered"},
		"conns":      {"conns/s"},
	}
	for _, w := range rep.Workloads {
		for _, name := range want[w.Name] {
			found := false
			for _, m := range w.Metrics {
				if m.Name != name {
					continue
				}
				found = true
				if len(m.Samples["kernel"]) != 1 || !(m.Median["kernel"] > 0) {
					t.Errorf("%s %s: samples %v, median %v", w.Name, name, m.Samples["kernel"], m.Median["kernel"])
				}
			}
			if !found {
				t.Errorf("%s: no %q figure", w.Name, name)
			}
		}
		delete(want, w.Name)
	}
	if len(want) > 0 {
		t.Errorf("workloads missing from the report: %v", want)
	}
	for _, s := range []string{"WORKLOAD", "tcp-stream", "Gbit/s received", "pps64", "Mpps delivered", "iperf3 -c 198.51.100.2",
		"conns/s", "ulbbench client conns -to 198.51.100.2:80 -count 200 -concurrency 4 from client"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q", s)
		}
	}
	if strings.Contains(out, "GOAL") {
		t.Error("a goal column with the baseline alone")
	}

	// Without iperf3 the TCP stream is measured by the bench's transfer check, and the
	// report says so.
	c.Workloads = c.Workloads[:1]
	c.Workloads[0].FallbackSink = "198.51.100.2:9000"
	c.Workloads[0].FallbackBytes = 16 << 20
	rep, out = runTestCompare(t, c, kernel, name, bin, dir, 1, 90*time.Second, "ulbt-no-such-iperf3")
	m := rep.Workloads[0].Metrics
	if len(m) != 1 || m[0].Name != "Gbit/s received" || !(m[0].Median["kernel"] > 0) {
		t.Errorf("fallback figures %+v", m)
	}
	if !strings.Contains(out, "ulbt-no-such-iperf3 not found: measured with the bench's transfer check (16 MiB to 198.51.100.2:9000)") {
		t.Error("the table does not say iperf3 was missing")
	}
}

// runTestCompare runs the comparison c on benchFile's bench renamed to name, with the
// programs built into bin and state under dir (and iperf3 as the iperf3 program, when
// given), logs its progress and table, fails the test on an error or a failed
// repetition, checks that no namespace is left, and returns the report and its table.
func runTestCompare(t *testing.T, c *CompareSpec, benchFile, name, bin, dir string, repeat int, timeout time.Duration,
	iperf3 string) (*CompareReport, string) {
	t.Helper()
	var progress bytes.Buffer
	opts := CompareOptions{
		Options:   Options{BinDir: bin, StateRoot: filepath.Join(dir, "state"), Out: &progress},
		Repeat:    repeat,
		BenchName: func(string, string) string { return name },
		Iperf3:    iperf3,
	}
	spec, err := Load(benchFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Rename(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Down(spec, opts.Options); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rep, err := RunCompare(ctx, c, opts)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("table:\n%s", table.String())
	if rep.Failed() {
		t.Fatalf("a repetition failed: %+v", rep.Workloads)
	}
	for _, ns := range spec.Namespaces() {
		if netns.Exists(ns) {
			t.Errorf("namespace %s still exists after the comparison", ns)
		}
	}
	return rep, table.String()
}
