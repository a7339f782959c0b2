package bench

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/bench/loadgen"
	"ulb/bench/traffic"
)

const floodTarget = "[[target]]\nname = \"k\"\nbench = \"b.toml\"\n[[target]]\nname = \"u\"\nbench = \"u.toml\"\n"

const goodFlood = `[[workload]]
type = "syn-flood"
from = "client"
to = "198.51.100.100:80"
source_prefix = "192.0.2.0/24"
rate = 2000
duration = "4s"
keepalive_to = "198.51.100.100:8080"
goal_ratio = 0.5
goals = { "probe success % flood" = ">= 99", "recovery ms" = "<= 500" }
`

func TestParseSYNFlood(t *testing.T) {
	c, err := ParseCompare([]byte(floodTarget+goodFlood), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	w := c.Workloads[0]
	if w.Name != "syn-flood" || w.Duration != 4*time.Second || w.Rate != 2000 || w.ProbeTo != w.To ||
		w.KeepAliveConns != DefaultKeepAliveConns || w.ProbeInterval != DefaultProbeInterval ||
		w.ProbeTimeout != DefaultProbeTimeout || w.RecoveryWindow != DefaultRecoveryWindow {
		t.Errorf("defaults: %+v", w)
	}
	want := []figureGoal{{Figure: figProbeSuccess, Min: true, Bound: 99}, {Figure: figRecovery, Bound: 500}}
	if len(w.goals) != 2 || w.goals[0] != want[0] || w.goals[1] != want[1] {
		t.Errorf("goals %+v, want %+v", w.goals, want)
	}
}

func TestParseSYNFloodErrors(t *testing.T) {
	base := func(repl ...string) string {
		s := goodFlood
		for i := 0; i < len(repl); i += 2 {
			if !strings.Contains(s, repl[i]) {
				t.Fatalf("%q not in the base workload", repl[i])
			}
			s = strings.Replace(s, repl[i], repl[i+1], 1)
		}
		return floodTarget + s
	}
	for _, tc := range []struct{ name, text, want string }{
		{"outside the documentation prefixes", base(`"192.0.2.0/24"`, `"10.0.0.0/24"`),
			`source_prefix: source prefix 10.0.0.0/24 is outside the documentation prefixes 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32`},
		{"wider than a documentation prefix", base(`"192.0.2.0/24"`, `"192.0.0.0/16"`), "outside the documentation prefixes"},
		{"host bits", base(`"192.0.2.0/24"`, `"192.0.2.1/24"`), "host bits set"},
		{"not a prefix", base(`"192.0.2.0/24"`, `"192.0.2.0"`), `source_prefix "192.0.2.0"`},
		{"no prefix", base(`source_prefix = "192.0.2.0/24"`, ``), "needs source_prefix"},
		{"families", base(`"192.0.2.0/24"`, `"2001:db8:ff::/48"`), "of different families"},
		{"negative rate", base(`rate = 2000`, `rate = -5`), "rate -5 out of range 0..100000000 SYNs per second (0 = flat out)"},
		{"huge rate", base(`rate = 2000`, `rate = 200000000`), "rate 200000000 out of range"},
		{"short", base(`"4s"`, `"1s"`), "duration 1s out of range [2s, 5m0s]"},
		{"to without port", base(`to = "198.51.100.100:80"`, `to = "198.51.100.100"`), "want the ADDRESS:PORT the SYNs go to"},
		{"no keep-alive", base(`keepalive_to = "198.51.100.100:8080"`, ``), "keepalive_to \"\": want the HTTP server's ADDRESS:PORT"},
		{"server", base(`from = "client"`, "from = \"client\"\nserver = \"s1\""), "server is not a syn-flood key"},
		{"pps key", base(`rate = 2000`, "rate = 2000\nflows = 4"), "are not syn-flood keys"},
		{"probe interval", base(`rate = 2000`, "rate = 2000\nprobe_interval = \"1ms\""), "probe_interval 1ms: at least 10ms"},
		{"too many probes", base(`"4s"`, "\"5m\"\nprobe_interval = \"10ms\""), "probes over duration and recovery_window, at most 10000"},
		{"recovery window", base(`rate = 2000`, "rate = 2000\nrecovery_window = \"2m\""), "recovery_window 2m0s out of range"},
		{"goal figure", base(`"recovery ms"`, `"recovery s"`), `goals: no figure "recovery s" (want one of "keep-alive flood/quiet"`},
		{"goal form", base(`"<= 500"`, `"< 500"`), `goal "< 500" for "recovery ms": want ">= NUMBER" or "<= NUMBER"`},
		{"goal number", base(`"<= 500"`, `"<= fast"`), `want ">= NUMBER"`},
		{"flood key on conns", floodTarget + "[[workload]]\ntype = \"conns\"\nfrom = \"c\"\nto = \"192.0.2.1:80\"\nsource_prefix = \"192.0.2.0/24\"\n", "are syn-flood keys"},
	} {
		_, err := ParseCompare([]byte(tc.text), "c.toml")
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadFloodExample(t *testing.T) {
	c, err := LoadCompare(filepath.Join(examplesDir(t), "half-nat", "flood.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 2 || c.Baseline != "kernel-dnat" || len(c.Workloads) != 1 || c.Workloads[0].Type != WorkloadSYNFlood {
		t.Fatalf("example %+v", c)
	}
	w := c.Workloads[0]
	// A run of both targets stays under a minute on a small machine.
	if per := floodBound(w) - workloadGrace; time.Duration(c.Repeat)*per*2 > time.Minute {
		t.Errorf("%d repetitions of up to %v on two targets: over a minute", c.Repeat, per)
	}
	ulbd, err := Load(c.BenchPath(c.Targets[1]))
	if err != nil {
		t.Fatal(err)
	}
	if got := ulbdSocket(ulbd); got == "" || got != c.Targets[1].ControlSocket {
		t.Errorf("ulbd's ready socket %q, the example names %q", got, c.Targets[1].ControlSocket)
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 0, 200)
	for i := 200; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	for _, tc := range []struct{ p, want float64 }{{99, 198}, {50, 100}, {100, 200}, {0.1, 1}} {
		if got := Percentile(xs, tc.p); got != tc.want {
			t.Errorf("p%v of 1..200 = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("p99 of one = %v", got)
	}
	if !math.IsNaN(Percentile(nil, 99)) {
		t.Error("p99 of none is not NaN")
	}
	if xs[0] != 200 {
		t.Error("Percentile sorted its argument")
	}
}

func ms(n int64) int64 { return n * int64(time.Millisecond) }

func TestComputeFloodFigures(t *testing.T) {
	t0 := int64(1_700_000_000) * int64(time.Second)
	quiet := floodPhase{
		keepAlive: traffic.KeepAliveResult{Requests: 3000, Seconds: 3},
		probes: traffic.LoopResult{Attempts: []traffic.Attempt{
			{Start: t0, End: t0 + ms(1)}, {Start: t0 + ms(100), End: t0 + ms(103)}, {Start: t0 + ms(200), Err: "timeout", End: t0 + ms(1200)},
		}},
	}
	end := t0 + ms(4000)
	flood := floodPhase{
		keepAlive: traffic.KeepAliveResult{Requests: 750, Seconds: 3},
		flood:     &loadgen.FloodReport{Sent: 8000, StartNS: t0, EndNS: end, ElapsedNS: ms(4000)},
		probes: traffic.LoopResult{Attempts: []traffic.Attempt{
			{Start: t0 + ms(500), End: t0 + ms(502)},
			{Start: t0 + ms(600), End: t0 + ms(1600), Err: "i/o timeout"},
			{Start: t0 + ms(700), End: t0 + ms(740)},
			{Start: t0 + ms(3990), End: end + ms(900), Err: "i/o timeout"}, // started during the flood
			{Start: end + ms(90), End: end + ms(1090), Err: "i/o timeout"},
			{Start: end + ms(190), End: end + ms(195)}, // the first success after the end
			{Start: end + ms(290), End: end + ms(292)},
		}},
	}
	f := computeFloodFigures(quiet, flood)
	if f.KeepAliveQuiet != 1000 || f.KeepAliveFlood != 250 || f.KeepAliveFraction != 0.25 {
		t.Errorf("keep-alive %v quiet, %v flood, fraction %v", f.KeepAliveQuiet, f.KeepAliveFlood, f.KeepAliveFraction)
	}
	if f.ProbeAttempts != 4 || f.ProbeSucceeded != 2 || f.ProbeSuccessPct != 50 {
		t.Errorf("probes %d/%d, %v %%", f.ProbeSucceeded, f.ProbeAttempts, f.ProbeSuccessPct)
	}
	if f.ProbeP99FloodMS != 40 || f.ProbeP99QuietMS != 3 {
		t.Errorf("p99 %v ms flood, %v ms quiet", f.ProbeP99FloodMS, f.ProbeP99QuietMS)
	}
	if f.RecoveryMS != 195 {
		t.Errorf("recovery %v ms, want 195", f.RecoveryMS)
	}
	if f.FloodFrames != 8000 || f.FloodKpps != 2 {
		t.Errorf("flood %d frames, %v kpps", f.FloodFrames, f.FloodKpps)
	}

	// No answer at all: no fraction when the quiet run had none, no p99, no recovery.
	flood.probes.Attempts = flood.probes.Attempts[1:2]
	f = computeFloodFigures(floodPhase{}, flood)
	if !math.IsNaN(f.KeepAliveFraction) || !math.IsNaN(f.ProbeP99FloodMS) || !math.IsNaN(f.RecoveryMS) || f.ProbeSuccessPct != 0 || f.ProbeAttempts != 1 {
		t.Errorf("figures of a dead target %+v", f)
	}
}

func TestFloodGoals(t *testing.T) {
	c, err := ParseCompare([]byte(floodTarget+goodFlood), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := &CompareReport{Name: "f", Repeat: 1, Baseline: "k", Targets: []string{"k", "u"}, Workloads: []WorkloadReport{{Name: "syn-flood", Type: WorkloadSYNFlood}}}
	w := &r.Workloads[0]
	w.metric(figKeepAliveFraction, true, true).add("k", 0.9)
	w.metric(figKeepAliveFraction, true, true).add("u", 0.3)
	w.metric(figProbeSuccess, false, false).add("k", 100)
	w.metric(figProbeSuccess, false, false).add("u", 99.5)
	w.metric(figRecovery, false, false).add("k", 100) // u recovered never: no sample
	w.metric(figRSSPeak, false, false).add("u", 80)
	r.finish(c.Workloads)
	m := func(name string) Metric { return *w.metric(name, false, false) }
	if frac := m(figKeepAliveFraction); frac.Goal != ">= 0.50x k" || frac.GoalMet["u"] || math.Abs(frac.Ratios["u"]-1.0/3) > 1e-9 {
		t.Errorf("fraction %+v", frac)
	}
	if p := m(figProbeSuccess); p.Goal != ">= 99.0" || !p.GoalMet["u"] {
		t.Errorf("probe success %+v", p)
	}
	if rec := m(figRecovery); rec.Goal != "<= 500" || rec.GoalMet["u"] {
		t.Errorf("recovery %+v: a target that never recovered met the goal", rec)
	}
	if _, judged := m(figRecovery).GoalMet["k"]; judged {
		t.Error("the baseline was judged")
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	for _, want := range []string{"keep-alive flood/quiet", ">= 0.50x k: u MISSED", ">= 99.0: u met", "<= 500: u MISSED", "ulbd RSS MiB peak       -      80.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := []byte("Name:\tulbd\nVmPeak:\t  900000 kB\nVmRSS:\t   53120 kB\nThreads:\t9\n")
	if kb, err := parseVmRSS(status); err != nil || kb != 53120 {
		t.Errorf("VmRSS = %d, %v", kb, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
