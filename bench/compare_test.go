package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"ulb/router/control"
)

const goodCompare = `name = "r-vs-k"
repeat = 5
baseline = "kernel"

[[target]]
name = "kernel"
bench = "../kernel/bench.toml"

[[target]]
name = "ulbd"
bench = "bench.toml"
control_socket = "/run/ulb/r1.sock"

[[workload]]
type = "tcp-stream"
from = "client"
server = "server"
to = "198.51.100.2"
duration = "3s"
goal_ratio = 0.5

[[workload]]
name = "pps-slow"
type = "pps64"
from = "client"
server = "server"
to = "198.51.100.2"
rate = 100000
flows = 16
goal_min = 0.35

[[workload]]
name = "new-conns"
type = "conns"
from = "client"
to = "198.51.100.100:80"
count = 2000
concurrency = 16
goal_ratio = 0.5

[[workload]]
type = "conns"
from = "client"
to = "[2001:db8:1::100]:80"
`

func TestParseCompareGood(t *testing.T) {
	c, err := ParseCompare([]byte(goodCompare), "/x/examples/router/compare.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "r-vs-k" || c.Repeat != 5 || c.Baseline != "kernel" || len(c.Targets) != 2 || len(c.Workloads) != 4 {
		t.Fatalf("spec %+v", c)
	}
	if got := c.BenchPath(c.Targets[0]); got != "/x/examples/kernel/bench.toml" {
		t.Errorf("kernel bench path %q", got)
	}
	tcp, pps := c.Workloads[0], c.Workloads[1]
	if tcp.Name != "tcp-stream" || tcp.Duration != 3*time.Second || tcp.Port != DefaultIperfPort ||
		tcp.FallbackBytes != DefaultFallbackBytes || tcp.GoalRatio != 0.5 {
		t.Errorf("tcp-stream workload %+v", tcp)
	}
	if pps.Name != "pps-slow" || pps.Duration != DefaultWorkloadTime || pps.Rate != 100000 || pps.Flows != 16 ||
		pps.Device != DefaultCountDevice || pps.GoalMin != 0.35 {
		t.Errorf("pps64 workload %+v", pps)
	}
	conns, conns6 := c.Workloads[2], c.Workloads[3]
	if conns.Name != "new-conns" || conns.To != "198.51.100.100:80" || conns.Count != 2000 || conns.Concurrency != 16 ||
		conns.Duration != DefaultConnsTimeout || conns.GoalRatio != 0.5 || conns.Server != "" {
		t.Errorf("conns workload %+v", conns)
	}
	if conns6.Name != "conns" || conns6.Count != DefaultConnsCount || conns6.Concurrency != DefaultConcurrency {
		t.Errorf("conns defaults %+v", conns6)
	}
	c, err = ParseCompare([]byte("[[target]]\nname=\"a\"\nbench=\"b.toml\"\n[[workload]]\ntype=\"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Baseline != "a" || c.Repeat != DefaultRepeat {
		t.Errorf("defaults: baseline %q repeat %d", c.Baseline, c.Repeat)
	}
}

func TestParseCompareErrors(t *testing.T) {
	target := "[[target]]\nname = \"k\"\nbench = \"b.toml\"\n"
	work := func(body string) string { return target + "[[workload]]\n" + body }
	for _, tc := range []struct{ name, text, want string }{
		{"syntax", "repeat = = 1", "c.toml:1:"},
		{"unknown key", target + "colour = \"red\"\n", `c.toml:4: unknown key "target.colour"`},
		{"no target", "[[workload]]\ntype=\"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\n", "no [[target]]"},
		{"no workload", target, "no [[workload]]"},
		{"repeat", "repeat = 1000\n" + work(`type="pps64"`+"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\n"), "c.toml:1: repeat 1000 out of range"},
		{"bad baseline", "baseline = \"x\"\n" + target, `c.toml:1: baseline "x" is not a target`},
		{"duplicate target", target + target, `c.toml:4: target name "k"`},
		{"target without bench", "[[target]]\nname = \"k\"\n", `needs bench`},
		{"bad type", work("type = \"udp-flood\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\n"), `c.toml:4: workload "udp-flood": type "udp-flood"`},
		{"no hosts", work("type = \"pps64\"\nto=\"192.0.2.1\"\n"), "needs from and server"},
		{"bad address", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"server\"\n"), `to "server": want the server's address`},
		{"pps over IPv6", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"2001:db8::2\"\n"), "IPv4 only"},
		{"fractional iperf3 time", work("type = \"tcp-stream\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nduration=\"1500ms\"\n"), "whole seconds"},
		{"too long", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nduration=\"1h\"\n"), "out of range"},
		{"negative rate", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nrate=-1\n"), "negative rate, flows or senders"},
		{"too many flows", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nflows=70000\n"), "flows 70000"},
		{"bad device", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\ndevice=\"a/b\"\n"), `device "a/b"`},
		{"pps key on tcp", work("type = \"tcp-stream\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nrate=5\n"), "pps64 keys"},
		{"pps sink kind", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nsink=\"xdp\"\n"), `sink "xdp": want drop or socket`},
		{"sink on tcp", work("type = \"tcp-stream\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nsink=\"drop\"\n"), "pps64 keys"},
		{"tcp key on pps", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nport=5\n"), "tcp-stream keys"},
		{"bad sink", work("type = \"tcp-stream\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\nfallback_sink=\"x\"\n"), "fallback_sink"},
		{"conns without from", work("type = \"conns\"\nto=\"192.0.2.1:80\"\n"), `c.toml:4: workload "conns": needs from`},
		{"conns to without port", work("type = \"conns\"\nfrom=\"c\"\nto=\"192.0.2.1\"\n"), `to "192.0.2.1": want ADDRESS:PORT`},
		{"conns with server", work("type = \"conns\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1:80\"\n"), "server is not a conns key"},
		{"conns count", work("type = \"conns\"\nfrom=\"c\"\nto=\"192.0.2.1:80\"\ncount=-5\n"), "count -5 out of range"},
		{"conns concurrency", work("type = \"conns\"\nfrom=\"c\"\nto=\"192.0.2.1:80\"\nconcurrency=5000\n"), "concurrency 5000 out of range"},
		{"conns pps key", work("type = \"conns\"\nfrom=\"c\"\nto=\"192.0.2.1:80\"\nflows=3\n"), "not conns keys"},
		{"conns too long", work("type = \"conns\"\nfrom=\"c\"\nto=\"192.0.2.1:80\"\nduration=\"10m\"\n"), "out of range"},
		{"conns key on pps", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\ncount=5\n"), "count and concurrency are conns keys"},
		{"cpu limit", "[[target]]\nname = \"k\"\nbench = \"b.toml\"\ncpu_limit = -0.5\n", `c.toml:1: target "k": cpu_limit -0.5 out of range`},
		{"overload over IPv6", work("type = \"pps64-overload\"\nfrom=\"c\"\nserver=\"s\"\nto=\"2001:db8::2\"\n"), "IPv4 only"},
		{"negative goal", work("type = \"pps64\"\nfrom=\"c\"\nserver=\"s\"\nto=\"192.0.2.1\"\ngoal_min=-1\n"), "negative goal"},
	} {
		_, err := ParseCompare([]byte(tc.text), "c.toml")
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func examplesDir(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "examples")
}

func TestLoadCompareExample(t *testing.T) {
	c, err := LoadCompare(filepath.Join(examplesDir(t), "router", "compare.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Baseline != "kernel" || len(c.Targets) != 2 || c.Targets[1].Name != "ulbd" {
		t.Errorf("example: %+v", c)
	}
	ulbd, err := Load(c.BenchPath(c.Targets[1]))
	if err != nil {
		t.Fatal(err)
	}
	if got := ulbdSocket(ulbd); got != c.Targets[1].ControlSocket {
		t.Errorf("ulbd's ready socket %q, the example names %q", got, c.Targets[1].ControlSocket)
	}
}

// The overload example confines ulbd to a quarter of a CPU and runs pps64-overload.
func TestLoadCompareOverloadExample(t *testing.T) {
	c, err := LoadCompare(filepath.Join(examplesDir(t), "router", "overload.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 1 || c.Targets[0].CPULimit != 0.25 || c.Workloads[0].Type != WorkloadOverload || c.Workloads[0].GoalMin != 0.8 {
		t.Errorf("example: %+v", c)
	}
}

// The half-NAT example compares ulbd with kernel forwarding plus an nftables DNAT rule on
// benches of the same hosts; its conns workload goes to the VIP.
func TestLoadCompareHalfNATExample(t *testing.T) {
	c, err := LoadCompare(filepath.Join(examplesDir(t), "half-nat", "compare.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Baseline != "kernel-dnat" || len(c.Targets) != 2 {
		t.Fatalf("example: %+v", c)
	}
	var conns *Workload
	for i := range c.Workloads {
		if c.Workloads[i].Type == WorkloadConns {
			conns = &c.Workloads[i]
		}
	}
	if conns == nil || conns.To != "198.51.100.100:80" {
		t.Errorf("no conns workload to the VIP: %+v", c.Workloads)
	}
	ulbd, err := Load(c.BenchPath(c.Targets[1]))
	if err != nil {
		t.Fatal(err)
	}
	if got := ulbdSocket(ulbd); got == "" || got != c.Targets[1].ControlSocket {
		t.Errorf("ulbd's ready socket %q, the example names %q", got, c.Targets[1].ControlSocket)
	}
	kernel, err := Load(c.BenchPath(c.Targets[0]))
	if err != nil {
		t.Fatal(err)
	}
	if lb := kernel.Host("lb1"); lb == nil || lb.Router || len(lb.Setup) == 0 {
		t.Errorf("kernel-dnat lb1 %+v: want a kernel router with a setup (the nftables rules)", lb)
	}
}

func TestLoadCompareChecksBenches(t *testing.T) {
	dir := t.TempDir()
	ex := examplesDir(t)
	text := `[[target]]
name = "k"
bench = "` + filepath.Join(ex, "kernel", "bench.toml") + `"
[[target]]
name = "missing"
bench = "nope.toml"
[[workload]]
type = "pps64"
from = "client"
server = "backend"
to = "198.51.100.2"
`
	path := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadCompare(path)
	if err == nil || !strings.Contains(err.Error(), `target "missing"`) || !strings.Contains(err.Error(), `no host "backend"`) {
		t.Errorf("error %v, want the missing bench and the missing host", err)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2, 2, 9, 1, 2}, 2},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("Median reordered its input %v", tc.in)
			}
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median of nothing is not NaN")
	}
}

// sampleReport is a finished report of two targets, as RunCompare builds it.
func sampleReport() *CompareReport {
	r := &CompareReport{Name: "r-vs-k", Repeat: 3, Baseline: "kernel", Targets: []string{"kernel", "ulbd"}}
	tcp := WorkloadReport{Name: "tcp-stream", Type: WorkloadTCPStream, Duration: "5s"}
	for _, v := range []float64{24, 26, 25} {
		tcp.metric("Gbit/s received", true, true).add("kernel", v)
	}
	for _, v := range []float64{14, 12, 13} {
		tcp.metric("Gbit/s received", true, true).add("ulbd", v)
	}
	tcp.metric("retransmits", false, false).add("kernel", 10)
	tcp.metric("retransmits", false, false).add("ulbd", 20)
	pps := WorkloadReport{Name: "pps64", Type: WorkloadPPS64, Duration: "5s"}
	pps.metric("Mpps delivered", true, true).add("kernel", 0.8)
	pps.metric("Mpps delivered", true, true).add("ulbd", 0.2)
	pps.metric("loss %", false, false).add("kernel", 0)
	pps.metric("loss %", false, false).add("ulbd", 75)
	pps.addError("ulbd", errors.New("repetition 2: loadgen sent nothing"))
	pps.addNote("delivered = rx_packets delta")
	pps.Router = map[string]*control.StatsInfo{"ulbd": statsDelta(
		&control.StatsInfo{Uptime: int64(time.Second), Forwarded: 10, Drops: map[string]uint64{"no-route": 1},
			Ports: []control.PortStats{{Name: "left", PortCounters: control.PortCounters{RxPackets: 10, RxDrops: 5}}}},
		&control.StatsInfo{Uptime: int64(6 * time.Second), Forwarded: 1010, Drops: map[string]uint64{"no-route": 4, "bad-checksum": 0},
			Ports: []control.PortStats{{Name: "left", PortCounters: control.PortCounters{RxPackets: 1010, RxDrops: 3005}}, {Name: "right", PortCounters: control.PortCounters{TxPackets: 1000}}}},
	)}
	r.Workloads = []WorkloadReport{tcp, pps}
	r.finish([]Workload{{GoalRatio: 0.5}, {GoalMin: 0.35}})
	return r
}

func TestReportFigures(t *testing.T) {
	r := sampleReport()
	tcp := r.Workloads[0].Metrics[0]
	if tcp.Median["kernel"] != 25 || tcp.Median["ulbd"] != 13 || tcp.Ratios["ulbd"] != 0.52 || !tcp.GoalMet["ulbd"] {
		t.Errorf("tcp-stream: %+v", tcp)
	}
	if _, ok := tcp.GoalMet["kernel"]; ok {
		t.Error("a goal was judged on the baseline")
	}
	if rt := r.Workloads[0].Metrics[1]; rt.Ratios != nil || rt.Goal != "" {
		t.Errorf("retransmits got a ratio or goal: %+v", rt)
	}
	pps := r.Workloads[1].Metrics[0]
	if pps.Ratios["ulbd"] != 0.25 || pps.GoalMet["ulbd"] {
		t.Errorf("pps64: %+v", pps)
	}
	d := r.Workloads[1].Router["ulbd"]
	if d.Forwarded != 1000 || d.Drops["no-route"] != 3 || d.Ports[0].RxDrops != 3000 || d.Ports[1].TxPackets != 1000 ||
		time.Duration(d.Uptime) != 5*time.Second {
		t.Errorf("router delta %+v", d)
	}
	if !r.Failed() {
		t.Error("a report with an error is not Failed")
	}
}

func TestReportTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	lines := strings.Split(out, "\n")
	fields := func(prefix string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no line starting %q in\n%s", prefix, out)
		return nil
	}
	head := fields("WORKLOAD")
	if strings.Join(head, " ") != "WORKLOAD METRIC kernel ulbd ulbd/kernel GOAL" {
		t.Errorf("header %q", head)
	}
	if got := strings.Join(fields("tcp-stream")[:6], " "); got != "tcp-stream Gbit/s received 25.0 13.0 0.52" {
		t.Errorf("tcp-stream row %q", got)
	}
	if !strings.Contains(out, ">= 0.50x kernel: ulbd met") || !strings.Contains(out, ">= 0.350: ulbd MISSED") {
		t.Errorf("goal verdicts missing")
	}
	if got := strings.Join(fields("pps64")[:5], " "); got != "pps64 Mpps delivered 0.800 0.200" {
		t.Errorf("pps64 row %q", got)
	}
	for _, want := range []string{
		"retransmits", "loss %", "error: pps64 on ulbd: repetition 2: loadgen sent nothing",
		"note: pps64: delivered = rx_packets delta",
		"ulbd counters during pps64 (last repetition, 5.0 s): forwarded 1000",
		"router drops: no-route=3\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	// A ratio column shows "-" where there is none, never a number.
	for _, l := range lines {
		if strings.Contains(l, "loss %") && !strings.HasSuffix(strings.TrimSpace(l), "-") {
			t.Errorf("loss row has a ratio: %q", l)
		}
	}
}

func TestReportJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back CompareReport
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	m := back.Workloads[0].Metrics[0]
	if back.Baseline != "kernel" || len(m.Samples["ulbd"]) != 3 || m.Median["ulbd"] != 13 || back.Workloads[1].Router["ulbd"].Forwarded != 1000 {
		t.Errorf("round trip: %+v", back)
	}
}

func TestParseIperf(t *testing.T) {
	good := `{"start":{},"intervals":[],"end":{"sum_sent":{"bytes":1,"bits_per_second":2.4e10,"retransmits":7},"sum_received":{"bits_per_second":2.39e10}}}`
	res, err := ParseIperf([]byte(good))
	if err != nil || res.SentBPS != 2.4e10 || res.ReceivedBPS != 2.39e10 || res.Retransmits != 7 {
		t.Errorf("%+v %v", res, err)
	}
	for _, bad := range []string{
		`{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`,
		`{"end":{}}`,
		`iperf3: error`,
	} {
		if _, err := ParseIperf([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestTCPStreamNeedsIperf3OrFallback(t *testing.T) {
	w := Workload{Name: "tcp-stream", Type: WorkloadTCPStream, To: "198.51.100.2", Duration: time.Second}
	rep := &WorkloadReport{}
	run := newWorkloadRun(nil, w, "kernel", "", rep)
	run.iperf3 = "ulbt-no-such-iperf3"
	if err := run.start(context.Background()); err == nil || !strings.Contains(err.Error(), "no fallback_sink") {
		t.Errorf("start without iperf3 or fallback: %v", err)
	}
	w.FallbackSink, w.FallbackBytes = "198.51.100.2:9000", 1<<20
	run = newWorkloadRun(nil, w, "kernel", "", rep)
	run.iperf3 = "ulbt-no-such-iperf3"
	if err := run.start(context.Background()); err != nil || !run.fallback {
		t.Errorf("start with a fallback: %v, fallback %v", err, run.fallback)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "transfer check (1 MiB to 198.51.100.2:9000)") {
		t.Errorf("notes %q", rep.Notes)
	}
}
