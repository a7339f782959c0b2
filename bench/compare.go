package bench

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"ulb/bench/loadgen"
)

// Workload types of a compare file.
const (
	WorkloadTCPStream = "tcp-stream" // one TCP stream, iperf3 (or the transfer check)
	WorkloadPPS64     = "pps64"      // 64-byte frames, bench/loadgen
	WorkloadConns     = "conns"      // short TCP connections, the bench's conns client
	// WorkloadSYNFlood is a SYN flood with a keep-alive load and a connection probe
	// during it, each run first quiet then under the flood (flood.go).
	WorkloadSYNFlood = "syn-flood"
	// WorkloadOverload is pps64 past the router's capacity: the capacity found by a
	// search, then twice it offered (compare_run.go, overload).
	WorkloadOverload = "pps64-overload"
)

// How a pps64 server disposes of the counted frames (Workload.Sink).
const (
	SinkDrop   = "drop"   // at its interface's ingress, before the IP stack
	SinkSocket = "socket" // at a full UDP socket
)

// Compare-file defaults and limits.
const (
	DefaultRepeat        = 3
	MaxRepeat            = 100
	DefaultWorkloadTime  = 5 * time.Second
	MaxWorkloadTime      = 5 * time.Minute
	DefaultIperfPort     = 5201
	DefaultCountDevice   = "eth0"
	DefaultFallbackBytes = 1 << 30
	// DefaultConnsTimeout bounds one repetition of a conns workload.
	DefaultConnsTimeout = time.Minute
	DefaultConnsCount   = 1000
	DefaultConcurrency  = 8
	MaxConnsConcurrency = 1024
	MaxConnsCount       = 1_000_000
)

// CompareSpec is a validated compare file: the same workloads run on every target (a
// bench file), and each figure of a target is divided by the baseline's.
type CompareSpec struct {
	Name      string     `toml:"name"`
	Repeat    int        `toml:"repeat"`   // repetitions of each workload; the median is reported
	Baseline  string     `toml:"baseline"` // target the ratios divide by; default the first
	Targets   []Target   `toml:"target"`
	Workloads []Workload `toml:"workload"`

	File string `toml:"-"` // path it was loaded from
	Dir  string `toml:"-"` // its directory, against which target bench paths resolve
}

// Target is one bench the workloads run on.
type Target struct {
	Name  string `toml:"name"`
	Bench string `toml:"bench"` // bench file, relative to the compare file
	// ControlSocket is ulbd's control socket, whose counters are read around each pps64
	// run. Default: the ready socket of the bench's process running ulbd, if any.
	ControlSocket string `toml:"control_socket"`
	// CPULimit, when set, confines the bench's ulbd processes to this fraction of one
	// CPU (a cgroup CPU quota, cgroup.go), e.g. 0.25, so that the senders can offer more
	// than ulbd forwards (pps64-overload).
	CPULimit float64 `toml:"cpu_limit"`
}

// Workload is one measurement. Which fields apply depends on Type.
type Workload struct {
	Name   string `toml:"name"` // default Type
	Type   string `toml:"type"`
	From   string `toml:"from"`   // host that sends
	Server string `toml:"server"` // host that receives (iperf3 server, frame counter); not for conns
	// To is the server's IPv4 address (tcp-stream: also IPv6); conns: ADDRESS:PORT, e.g.
	// a VIP.
	To string `toml:"to"`
	// Duration is the length of one repetition (tcp-stream: whole seconds); conns: its
	// time limit (default DefaultConnsTimeout), since the connection count sets its length.
	Duration time.Duration `toml:"duration"`

	Port          int    `toml:"port"`           // tcp-stream: iperf3 port
	FallbackSink  string `toml:"fallback_sink"`  // tcp-stream without iperf3: a sink ADDR:PORT of the bench
	FallbackBytes Size   `toml:"fallback_bytes"` // tcp-stream without iperf3: bytes to transfer

	Rate  int `toml:"rate"`  // pps64: frames per second, 0 = full speed; pps64-overload: where the capacity search starts
	Flows int `toml:"flows"` // pps64: distinct UDP source ports (default loadgen's)
	// Senders is the number of parallel sending sockets (pps64, default 1). On a small
	// machine more senders take CPU from the router under test.
	Senders int    `toml:"senders"`
	Device  string `toml:"device"` // pps64: the server's interface whose rx_packets is counted
	// Sink is how the server disposes of the frames once counted (pps64): "drop" (the
	// default) drops them at its interface's ingress, before its IP stack, so that the
	// receiver's work does not land on the CPU of the device under test (veth delivers on
	// the sender's CPU); "socket" lets them climb to a full UDP socket.
	Sink string `toml:"sink"`

	Count       int `toml:"count"`       // conns: connections per repetition (default DefaultConnsCount)
	Concurrency int `toml:"concurrency"` // conns: connections open at a time (default DefaultConcurrency)

	// syn-flood (flood.go): the SYNs go from From to To (ADDRESS:PORT, a VIP) from random
	// addresses of SourcePrefix (inside the documentation prefixes) at Rate per second
	// (0: flat out) for Duration.
	SourcePrefix string `toml:"source_prefix"`
	// KeepAliveTo is the HTTP ADDRESS:PORT of the keep-alive load, over KeepAliveConns
	// connections (default DefaultKeepAliveConns).
	KeepAliveTo    string `toml:"keepalive_to"`
	KeepAliveConns int    `toml:"keepalive_conns"`
	// ProbeTo (default To) gets a new connection every ProbeInterval, each bounded by
	// ProbeTimeout, during the flood and RecoveryWindow after it.
	ProbeTo        string        `toml:"probe_to"`
	ProbeInterval  time.Duration `toml:"probe_interval"`
	ProbeTimeout   time.Duration `toml:"probe_timeout"`
	RecoveryWindow time.Duration `toml:"recovery_window"`
	// Goals (syn-flood) bound any of the workload's figures by name, ">= X" or "<= X",
	// e.g. { "probe success %" = ">= 99" }; checked like GoalMin.
	Goals map[string]string `toml:"goals"`
	goals []figureGoal      // Goals, parsed

	// Goals, checked for every target but the baseline on the workload's main figure
	// (tcp-stream: received Gbit/s; pps64: delivered Mpps; conns: connections per second;
	// syn-flood: the keep-alive throughput under the flood as a fraction of the quiet one):
	// at least GoalRatio times the
	// baseline's, and at least GoalMin.
	GoalRatio float64 `toml:"goal_ratio"`
	GoalMin   float64 `toml:"goal_min"`
}

// LoadCompare reads and validates a compare file. The bench files it names are checked
// to exist and load, and to have the workloads' hosts.
func LoadCompare(path string) (*CompareSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	c, err := ParseCompare(data, abs)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, t := range c.Targets {
		spec, err := Load(c.BenchPath(t))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: target %q: %v", c.File, t.Name, err))
			continue
		}
		for _, w := range c.Workloads {
			for _, h := range []string{w.From, w.Server} {
				if h != "" && spec.Host(h) == nil {
					problems = append(problems, fmt.Sprintf("%s: workload %q: bench %s of target %q has no host %q", c.File, w.Name, spec.File, t.Name, h))
				}
			}
		}
	}
	if len(problems) > 0 {
		return nil, &SpecError{Problems: problems}
	}
	return c, nil
}

// BenchPath returns the path of a target's bench file.
func (c *CompareSpec) BenchPath(t Target) string {
	if filepath.IsAbs(t.Bench) {
		return t.Bench
	}
	return filepath.Join(c.Dir, t.Bench)
}

// ParseCompare decodes and validates a compare file's contents (file names it in errors
// and is where target bench paths resolve from). It does not open the bench files.
func ParseCompare(data []byte, file string) (*CompareSpec, error) {
	if file == "" {
		file = "compare.toml"
	}
	var c CompareSpec
	v, err := decodeFile(data, file, &c)
	if err != nil {
		return nil, err
	}
	c.File, c.Dir = file, filepath.Dir(file)
	v.compare(&c)
	if len(v.problems) > 0 {
		return nil, &SpecError{Problems: v.problems}
	}
	return &c, nil
}

func (v *validator) compare(c *CompareSpec) {
	if c.Name != "" && !nameRE.MatchString(c.Name) {
		v.at(v.keyLine("name"), "name %q: want letters, digits, '-' or '_'", c.Name)
	}
	if c.Repeat == 0 {
		c.Repeat = DefaultRepeat
	}
	if c.Repeat < 1 || c.Repeat > MaxRepeat {
		v.at(v.keyLine("repeat"), "repeat %d out of range 1..%d", c.Repeat, MaxRepeat)
	}
	if len(c.Targets) == 0 {
		v.at(0, "no [[target]]")
	}
	if len(c.Workloads) == 0 {
		v.at(0, "no [[workload]]")
	}
	names := map[string]bool{}
	for i := range c.Targets {
		t := &c.Targets[i]
		line := v.header("target", i)
		if !nameRE.MatchString(t.Name) || names[t.Name] {
			v.at(line, "target name %q: want a unique name of letters, digits, '-' or '_'", t.Name)
		}
		names[t.Name] = true
		if t.Bench == "" {
			v.at(line, "target %q: needs bench (a bench file)", t.Name)
		}
		if t.CPULimit < 0 || t.CPULimit > 64 {
			v.at(line, "target %q: cpu_limit %v out of range (0, 64] (a fraction of one CPU)", t.Name, t.CPULimit)
		}
	}
	if c.Baseline == "" && len(c.Targets) > 0 {
		c.Baseline = c.Targets[0].Name
	} else if c.Baseline != "" && !names[c.Baseline] {
		v.at(v.keyLine("baseline"), "baseline %q is not a target", c.Baseline)
	}
	wnames := map[string]bool{}
	for i := range c.Workloads {
		w := &c.Workloads[i]
		line := v.header("workload", i)
		if w.Name == "" {
			w.Name = w.Type
		}
		if !nameRE.MatchString(w.Name) || wnames[w.Name] {
			v.at(line, "workload name %q: want a unique name of letters, digits, '-' or '_'", w.Name)
		}
		wnames[w.Name] = true
		v.workload(line, w)
	}
}

func (v *validator) workload(line int, w *Workload) {
	where := fmt.Sprintf("workload %q", w.Name)
	if w.Type == WorkloadSYNFlood {
		v.synFlood(line, where, w)
		return
	}
	if w.hasFloodKeys() {
		v.at(line, "%s: source_prefix, keepalive_to, keepalive_conns, probe_to, probe_interval, probe_timeout, recovery_window and goals are %s keys", where, WorkloadSYNFlood)
	}
	if w.Type == WorkloadConns {
		v.conns(line, where, w)
		return
	}
	if w.From == "" || w.Server == "" {
		v.at(line, "%s: needs from and server (host names)", where)
	}
	if w.Count != 0 || w.Concurrency != 0 {
		v.at(line, "%s: count and concurrency are conns keys", where)
	}
	if w.Duration == 0 {
		w.Duration = DefaultWorkloadTime
	}
	if w.Duration < 0 || w.Duration > MaxWorkloadTime {
		v.at(line, "%s: duration %v out of range (0, %v]", where, w.Duration, MaxWorkloadTime)
	}
	if w.GoalRatio < 0 || w.GoalMin < 0 {
		v.at(line, "%s: negative goal", where)
	}
	to, err := netip.ParseAddr(w.To)
	if err != nil {
		v.at(line, "%s: to %q: want the server's address", where, w.To)
	}
	switch w.Type {
	case WorkloadTCPStream:
		if w.Duration%time.Second != 0 {
			v.at(line, "%s: duration %v: iperf3 takes whole seconds", where, w.Duration)
		}
		if w.Port == 0 {
			w.Port = DefaultIperfPort
		}
		if w.Port < 1 || w.Port > 65535 {
			v.at(line, "%s: port %d out of range", where, w.Port)
		}
		if w.FallbackSink != "" {
			if _, _, err := net.SplitHostPort(w.FallbackSink); err != nil {
				v.at(line, "%s: fallback_sink %q: want ADDRESS:PORT", where, w.FallbackSink)
			}
		}
		if w.FallbackBytes == 0 {
			w.FallbackBytes = DefaultFallbackBytes
		}
		if w.FallbackBytes < 0 {
			v.at(line, "%s: negative fallback_bytes", where)
		}
		if w.Rate != 0 || w.Flows != 0 || w.Device != "" || w.Senders != 0 || w.Sink != "" {
			v.at(line, "%s: rate, flows, senders, device and sink are pps64 keys", where)
		}
	case WorkloadPPS64, WorkloadOverload:
		if err == nil && !to.Is4() {
			v.at(line, "%s: to %q: the frame generator sends IPv4 only", where, w.To)
		}
		if w.Rate < 0 || w.Flows < 0 || w.Senders < 0 {
			v.at(line, "%s: negative rate, flows or senders", where)
		}
		if w.Senders > loadgen.MaxSenders {
			v.at(line, "%s: senders %d: at most %d", where, w.Senders, loadgen.MaxSenders)
		}
		if w.Flows > loadgen.MaxFlows {
			v.at(line, "%s: flows %d: at most %d source ports", where, w.Flows, loadgen.MaxFlows)
		}
		if w.Device == "" {
			w.Device = DefaultCountDevice
		}
		if !ifnameRE.MatchString(w.Device) {
			v.at(line, "%s: device %q is not an interface name", where, w.Device)
		}
		switch w.Sink {
		case "":
			w.Sink = SinkDrop
		case SinkDrop, SinkSocket:
		default:
			v.at(line, "%s: sink %q: want %s or %s", where, w.Sink, SinkDrop, SinkSocket)
		}
		if w.Port != 0 || w.FallbackSink != "" || w.FallbackBytes != 0 {
			v.at(line, "%s: port, fallback_sink and fallback_bytes are tcp-stream keys", where)
		}
	default:
		v.at(line, "%s: type %q: want %s, %s, %s, %s or %s", where, w.Type, WorkloadTCPStream, WorkloadPPS64, WorkloadOverload, WorkloadConns, WorkloadSYNFlood)
	}
}

// conns validates a conns workload: from, to as ADDRESS:PORT, count and concurrency.
func (v *validator) conns(line int, where string, w *Workload) {
	if w.From == "" {
		v.at(line, "%s: needs from (a host name)", where)
	}
	if w.Server != "" {
		v.at(line, "%s: server is not a conns key (to is the ADDRESS:PORT connected to)", where)
	}
	if _, err := netip.ParseAddrPort(w.To); err != nil {
		v.at(line, "%s: to %q: want ADDRESS:PORT", where, w.To)
	}
	if w.Duration == 0 {
		w.Duration = DefaultConnsTimeout
	}
	if w.Duration < 0 || w.Duration > MaxWorkloadTime {
		v.at(line, "%s: duration %v out of range (0, %v]", where, w.Duration, MaxWorkloadTime)
	}
	if w.GoalRatio < 0 || w.GoalMin < 0 {
		v.at(line, "%s: negative goal", where)
	}
	if w.Count == 0 {
		w.Count = DefaultConnsCount
	}
	if w.Count < 1 || w.Count > MaxConnsCount {
		v.at(line, "%s: count %d out of range 1..%d", where, w.Count, MaxConnsCount)
	}
	if w.Concurrency == 0 {
		w.Concurrency = DefaultConcurrency
	}
	if w.Concurrency < 1 || w.Concurrency > MaxConnsConcurrency {
		v.at(line, "%s: concurrency %d out of range 1..%d", where, w.Concurrency, MaxConnsConcurrency)
	}
	if w.Port != 0 || w.FallbackSink != "" || w.FallbackBytes != 0 || w.Rate != 0 || w.Flows != 0 || w.Senders != 0 || w.Device != "" || w.Sink != "" {
		v.at(line, "%s: port, fallback_sink, fallback_bytes, rate, flows, senders, device and sink are not conns keys", where)
	}
}
