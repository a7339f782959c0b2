package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ulb/bench/loadgen"
	"ulb/bench/traffic"
)

// syn-flood defaults and limits.
const (
	DefaultFloodTime      = 10 * time.Second
	MinFloodTime          = 2 * time.Second
	DefaultKeepAliveConns = 4
	DefaultProbeInterval  = 100 * time.Millisecond
	MinProbeInterval      = 10 * time.Millisecond
	DefaultProbeTimeout   = time.Second
	MaxProbeTimeout       = 30 * time.Second
	DefaultRecoveryWindow = 5 * time.Second
	MaxRecoveryWindow     = time.Minute
	// floodLead is how long after the flood starts the keep-alive load and the probe
	// start, and how long before it ends the keep-alive load stops: the flood's own
	// start (route and neighbour look-up) is not measured as flood.
	floodLead = 500 * time.Millisecond
	// floodSample is the interval at which ulbd's RSS and table are read during a flood.
	floodSample = 250 * time.Millisecond
)

// The figures of a syn-flood workload, in the order of the report.
const (
	figKeepAliveFraction = "keep-alive flood/quiet"
	figKeepAliveQuiet    = "keep-alive req/s quiet"
	figKeepAliveFlood    = "keep-alive req/s flood"
	figProbeSuccess      = "probe success % flood"
	figProbeAttempts     = "probe attempts flood"
	figProbeP99Quiet     = "probe p99 ms quiet"
	figProbeP99Flood     = "probe p99 ms flood"
	figRecovery          = "recovery ms"
	figFloodKpps         = "flood kpps sent"
	figFloodFrames       = "flood frames sent"
	figRSSBefore         = "ulbd RSS MiB before"
	figRSSPeak           = "ulbd RSS MiB peak"
	figTablePeak         = "conntrack flows peak"
)

// floodFigures lists the figures: name, whether a ratio to the baseline means something.
var floodFigures = []struct {
	name  string
	ratio bool
}{
	{figKeepAliveFraction, true}, {figKeepAliveQuiet, true}, {figKeepAliveFlood, true},
	{figProbeSuccess, false}, {figProbeAttempts, false}, {figProbeP99Quiet, false}, {figProbeP99Flood, false},
	{figRecovery, false}, {figFloodKpps, false}, {figFloodFrames, false},
	{figRSSBefore, false}, {figRSSPeak, false}, {figTablePeak, false},
}

// figureGoal bounds one figure: at least (Min) or at most Bound.
type figureGoal struct {
	Figure string
	Min    bool
	Bound  float64
}

func (g figureGoal) String() string {
	op := "<="
	if g.Min {
		op = ">="
	}
	return op + " " + formatFigure(g.Bound)
}

func (g figureGoal) met(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if g.Min {
		return v >= g.Bound
	}
	return v <= g.Bound
}

// parseFigureGoal parses ">= X" or "<= X".
func parseFigureGoal(figure, s string) (figureGoal, error) {
	s = strings.TrimSpace(s)
	g := figureGoal{Figure: figure}
	switch {
	case strings.HasPrefix(s, ">="):
		g.Min = true
	case strings.HasPrefix(s, "<="):
	default:
		return g, fmt.Errorf("goal %q for %q: want \">= NUMBER\" or \"<= NUMBER\"", s, figure)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s[2:]), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return g, fmt.Errorf("goal %q for %q: want \">= NUMBER\" or \"<= NUMBER\"", s, figure)
	}
	g.Bound = v
	return g, nil
}

func (w *Workload) hasFloodKeys() bool {
	return w.SourcePrefix != "" || w.KeepAliveTo != "" || w.KeepAliveConns != 0 || w.ProbeTo != "" ||
		w.ProbeInterval != 0 || w.ProbeTimeout != 0 || w.RecoveryWindow != 0 || len(w.Goals) > 0
}

// synFlood validates a syn-flood workload and fills its defaults.
func (v *validator) synFlood(line int, where string, w *Workload) {
	if w.From == "" {
		v.at(line, "%s: needs from (the host that floods, keeps the connections alive and probes)", where)
	}
	if w.Server != "" {
		v.at(line, "%s: server is not a %s key (to is the ADDRESS:PORT flooded)", where, WorkloadSYNFlood)
	}
	to, err := netip.ParseAddrPort(w.To)
	if err != nil || to.Port() == 0 {
		v.at(line, "%s: to %q: want the ADDRESS:PORT the SYNs go to (e.g. a VIP)", where, w.To)
	}
	if w.SourcePrefix == "" {
		v.at(line, "%s: needs source_prefix (the flood's source addresses, inside 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 or 2001:db8::/32)", where)
	} else if p, perr := netip.ParsePrefix(w.SourcePrefix); perr != nil {
		v.at(line, "%s: source_prefix %q: %v", where, w.SourcePrefix, perr)
	} else if cerr := loadgen.CheckFloodSources(p); cerr != nil {
		v.at(line, "%s: source_prefix: %v", where, strings.TrimPrefix(cerr.Error(), loadgen.ErrBadFrameSpec.Error()+": "))
	} else if err == nil && p.Addr().Is4() != to.Addr().Is4() {
		v.at(line, "%s: source_prefix %v and to %v are of different families", where, p, to)
	}
	if w.Rate < 0 || w.Rate > loadgen.MaxFloodRate {
		v.at(line, "%s: rate %d out of range 0..%d SYNs per second (0 = flat out)", where, w.Rate, loadgen.MaxFloodRate)
	}
	if w.Duration == 0 {
		w.Duration = DefaultFloodTime
	}
	if w.Duration < MinFloodTime || w.Duration > MaxWorkloadTime {
		v.at(line, "%s: duration %v out of range [%v, %v]", where, w.Duration, MinFloodTime, MaxWorkloadTime)
	}
	if _, err := netip.ParseAddrPort(w.KeepAliveTo); err != nil {
		v.at(line, "%s: keepalive_to %q: want the HTTP server's ADDRESS:PORT", where, w.KeepAliveTo)
	}
	if w.KeepAliveConns == 0 {
		w.KeepAliveConns = DefaultKeepAliveConns
	}
	if w.KeepAliveConns < 1 || w.KeepAliveConns > traffic.MaxKeepAliveConns {
		v.at(line, "%s: keepalive_conns %d out of range 1..%d", where, w.KeepAliveConns, traffic.MaxKeepAliveConns)
	}
	if w.ProbeTo == "" {
		w.ProbeTo = w.To
	}
	if _, err := netip.ParseAddrPort(w.ProbeTo); err != nil {
		v.at(line, "%s: probe_to %q: want ADDRESS:PORT", where, w.ProbeTo)
	}
	if w.ProbeInterval == 0 {
		w.ProbeInterval = DefaultProbeInterval
	}
	if w.ProbeTimeout == 0 {
		w.ProbeTimeout = DefaultProbeTimeout
	}
	if w.RecoveryWindow == 0 {
		w.RecoveryWindow = DefaultRecoveryWindow
	}
	if w.ProbeInterval < MinProbeInterval {
		v.at(line, "%s: probe_interval %v: at least %v", where, w.ProbeInterval, MinProbeInterval)
	} else if n := (w.Duration + w.RecoveryWindow) / w.ProbeInterval; n > traffic.MaxLoopAttempts {
		v.at(line, "%s: probe_interval %v: %d probes over duration and recovery_window, at most %d", where, w.ProbeInterval, n, traffic.MaxLoopAttempts)
	}
	if w.ProbeTimeout < 0 || w.ProbeTimeout > MaxProbeTimeout {
		v.at(line, "%s: probe_timeout %v out of range (0, %v]", where, w.ProbeTimeout, MaxProbeTimeout)
	}
	if w.RecoveryWindow < 0 || w.RecoveryWindow > MaxRecoveryWindow {
		v.at(line, "%s: recovery_window %v out of range (0, %v]", where, w.RecoveryWindow, MaxRecoveryWindow)
	}
	if w.GoalRatio < 0 || w.GoalMin < 0 {
		v.at(line, "%s: negative goal", where)
	}
	w.goals = nil
	for _, name := range slices.Sorted(mapKeys(w.Goals)) {
		if !slices.ContainsFunc(floodFigures, func(f struct {
			name  string
			ratio bool
		}) bool {
			return f.name == name
		}) {
			v.at(line, "%s: goals: no figure %q (want one of %s)", where, name, floodFigureNames())
			continue
		}
		g, err := parseFigureGoal(name, w.Goals[name])
		if err != nil {
			v.at(line, "%s: goals: %v", where, err)
			continue
		}
		w.goals = append(w.goals, g)
	}
	if w.Port != 0 || w.FallbackSink != "" || w.FallbackBytes != 0 || w.Flows != 0 || w.Senders != 0 || w.Device != "" || w.Sink != "" ||
		w.Count != 0 || w.Concurrency != 0 {
		v.at(line, "%s: port, fallback_sink, fallback_bytes, flows, senders, device, sink, count and concurrency are not %s keys", where, WorkloadSYNFlood)
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func floodFigureNames() string {
	var names []string
	for _, f := range floodFigures {
		names = append(names, strconv.Quote(f.name))
	}
	return strings.Join(names, ", ")
}

// floodBound is the longest a syn-flood repetition may take: the quiet run, the flood,
// the recovery window, and the grace of every workload.
func floodBound(w Workload) time.Duration {
	return 2*w.Duration + w.RecoveryWindow + 2*w.ProbeTimeout + workloadGrace
}

// floodStart checks, before the first repetition, that the keep-alive target and the
// probed address answer at all (which also resolves the neighbours on the path).
func (r *workloadRun) floodStart(ctx context.Context) error {
	r.rep.addNote(fmt.Sprintf("ulbbench loadgen flood from %s: TCP SYNs to %s from random addresses of %s, random ports and sequence numbers, at %s, for %v (AF_PACKET sendmmsg); "+
		"keep-alive load: ulbbench client keepalive (HTTP GETs back to back over %d keep-alive connections to %s); probe: a new connection to %s every %v (connect and read the answer, at most %v); "+
		"each repetition runs the load and the probe %v quiet, then the same during the flood; probe figures of the flood count the probes started during it; "+
		"recovery = from the flood's end to the end of the first successful probe started after it (within %v)",
		r.w.From, r.w.To, r.w.SourcePrefix, formatFloodRate(r.w.Rate), r.w.Duration, r.w.KeepAliveConns, r.w.KeepAliveTo, r.w.ProbeTo,
		r.w.ProbeInterval, r.w.ProbeTimeout, r.w.Duration-2*floodLead, r.w.RecoveryWindow))
	cctx, cancel := context.WithTimeout(ctx, workloadGrace)
	defer cancel()
	for _, c := range [][2]string{{CheckHTTP, r.w.KeepAliveTo}, {CheckTCP, r.w.ProbeTo}} {
		out, err := r.b.Exec(cctx, r.w.From, "ulbbench", "client", c[0], "-to", c[1], "-timeout", r.w.ProbeTimeout.String())
		if err != nil {
			return fmt.Errorf("warm-up: %s %s: %v: %s", c[0], c[1], err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

func formatFloodRate(rate int) string {
	if rate == 0 {
		return "full speed"
	}
	return fmt.Sprintf("%d SYNs/s", rate)
}

// floodPhase is what one phase (quiet or flood) of a repetition measured.
type floodPhase struct {
	keepAlive traffic.KeepAliveResult
	probes    traffic.LoopResult
	flood     *loadgen.FloodReport // nil in the quiet phase
}

// FloodFigures are a repetition's figures. NaN marks a figure that has no value (no
// successful probe, no ulbd).
type FloodFigures struct {
	KeepAliveQuiet, KeepAliveFlood, KeepAliveFraction float64
	ProbeAttempts, ProbeSucceeded                     int
	ProbeSuccessPct                                   float64
	ProbeP99QuietMS, ProbeP99FloodMS                  float64
	RecoveryMS                                        float64
	FloodFrames                                       uint64
	FloodKpps                                         float64
}

// Percentile returns the p-th percentile (0 < p <= 100) of xs by nearest rank, or NaN for
// none.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// computeFloodFigures derives a repetition's figures from its two phases.
func computeFloodFigures(quiet, flood floodPhase) FloodFigures {
	var f FloodFigures
	f.KeepAliveQuiet, f.KeepAliveFlood = rate(quiet.keepAlive), rate(flood.keepAlive)
	f.KeepAliveFraction = math.NaN()
	if f.KeepAliveQuiet > 0 {
		f.KeepAliveFraction = f.KeepAliveFlood / f.KeepAliveQuiet
	}
	var quietMS []float64
	for _, a := range quiet.probes.Attempts {
		if a.Err == "" && a.End > 0 {
			quietMS = append(quietMS, float64(a.End-a.Start)/1e6)
		}
	}
	f.ProbeP99QuietMS = Percentile(quietMS, 99)
	var end int64
	if flood.flood != nil {
		end = flood.flood.EndNS
		f.FloodFrames = flood.flood.Sent
		if flood.flood.ElapsedNS > 0 {
			f.FloodKpps = float64(flood.flood.Sent) / time.Duration(flood.flood.ElapsedNS).Seconds() / 1e3
		}
	}
	var floodMS []float64
	f.RecoveryMS = math.NaN()
	for _, a := range flood.probes.Attempts {
		ok := a.Err == "" && a.End > 0
		if end == 0 || a.Start < end {
			f.ProbeAttempts++
			if ok {
				f.ProbeSucceeded++
				floodMS = append(floodMS, float64(a.End-a.Start)/1e6)
			}
			continue
		}
		// Attempts are in the order they started: the first success after the end.
		if ok && math.IsNaN(f.RecoveryMS) {
			f.RecoveryMS = float64(a.End-end) / 1e6
		}
	}
	f.ProbeSuccessPct = math.NaN()
	if f.ProbeAttempts > 0 {
		f.ProbeSuccessPct = 100 * float64(f.ProbeSucceeded) / float64(f.ProbeAttempts)
	}
	f.ProbeP99FloodMS = Percentile(floodMS, 99)
	return f
}

func rate(k traffic.KeepAliveResult) float64 {
	if k.Seconds <= 0 {
		return 0
	}
	return float64(k.Requests) / k.Seconds
}

// floodOnce runs one repetition: the keep-alive load and the probe quiet, then the flood
// with the same load and probe during it, ulbd's RSS and table read as it goes.
func (r *workloadRun) floodOnce(ctx context.Context) (string, error) {
	for _, f := range floodFigures {
		r.rep.metric(f.name, f.name == figKeepAliveFraction, f.ratio)
	}
	measure := r.w.Duration - 2*floodLead
	var quiet floodPhase
	var kaErr, probeErr error
	var wg sync.WaitGroup
	wg.Go(func() { quiet.keepAlive, kaErr = r.keepAlive(ctx, measure) })
	wg.Go(func() { quiet.probes, probeErr = r.probe(ctx, measure) })
	wg.Wait()
	if err := errors.Join(kaErr, probeErr); err != nil {
		return "", fmt.Errorf("quiet: %w", err)
	}
	if quiet.keepAlive.Requests == 0 {
		return "", fmt.Errorf("quiet: the keep-alive load got no answer (%d failed: %s)", quiet.keepAlive.Failed, quiet.keepAlive.FirstErr)
	}

	pid := r.ulbdPID()
	rssBefore := math.NaN()
	if pid > 0 {
		if kb, err := readRSS(pid); err == nil {
			rssBefore = float64(kb) / 1024
		}
	}
	before, serr := r.routerStats(ctx)
	var flood floodPhase
	var floodErr error
	floodDone := make(chan struct{})
	wg.Go(func() {
		defer close(floodDone)
		flood.flood, floodErr = r.runFlood(ctx)
	})
	var peakRSS, peakFlows float64 = math.NaN(), math.NaN()
	var capacity int
	wg.Go(func() {
		tick := time.NewTicker(floodSample)
		defer tick.Stop()
		for {
			if pid > 0 {
				if kb, err := readRSS(pid); err == nil {
					peakRSS = maxNaN(peakRSS, float64(kb)/1024)
				}
			}
			if s, err := r.routerStats(ctx); err == nil && s.Conntrack != nil {
				peakFlows = maxNaN(peakFlows, float64(s.Conntrack.Flows))
				capacity = s.Conntrack.Capacity
			}
			select {
			case <-floodDone:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	select {
	case <-time.After(floodLead):
	case <-ctx.Done():
		wg.Wait()
		return "", ctx.Err()
	}
	wg.Go(func() { flood.keepAlive, kaErr = r.keepAlive(ctx, measure) })
	wg.Go(func() { flood.probes, probeErr = r.probe(ctx, r.w.Duration-floodLead+r.w.RecoveryWindow) })
	wg.Wait()
	r.recordRouter(ctx, before, serr)
	if err := errors.Join(floodErr, kaErr, probeErr); err != nil {
		return "", fmt.Errorf("flood: %w", err)
	}
	if flood.flood.Sent == 0 {
		return "", fmt.Errorf("flood: loadgen sent nothing: %+v", *flood.flood)
	}
	f := computeFloodFigures(quiet, flood)
	add := func(name string, v float64) {
		if !math.IsNaN(v) {
			r.rep.metric(name, false, false).add(r.target, v)
		}
	}
	add(figKeepAliveFraction, f.KeepAliveFraction)
	add(figKeepAliveQuiet, f.KeepAliveQuiet)
	add(figKeepAliveFlood, f.KeepAliveFlood)
	add(figProbeSuccess, f.ProbeSuccessPct)
	add(figProbeAttempts, float64(f.ProbeAttempts))
	add(figProbeP99Quiet, f.ProbeP99QuietMS)
	add(figProbeP99Flood, f.ProbeP99FloodMS)
	add(figRecovery, f.RecoveryMS)
	add(figFloodKpps, f.FloodKpps)
	add(figFloodFrames, float64(f.FloodFrames))
	add(figRSSBefore, rssBefore)
	add(figRSSPeak, peakRSS)
	add(figTablePeak, peakFlows)
	if capacity > 0 {
		r.rep.addNote(fmt.Sprintf("%s: conntrack capacity %d flows", r.target, capacity))
	}
	if math.IsNaN(f.RecoveryMS) {
		r.rep.addNote(fmt.Sprintf("%s: no probe succeeded within recovery_window %v after the flood: no recovery figure", r.target, r.w.RecoveryWindow))
	}
	return fmt.Sprintf("flood %d SYNs (%.1f kpps, %d refused by the kernel); keep-alive %.0f req/s quiet, %.0f during (%.2f); probes %d/%d ok, p99 %s ms (quiet %s ms); recovery %s ms",
		f.FloodFrames, f.FloodKpps, flood.flood.TxErrors, f.KeepAliveQuiet, f.KeepAliveFlood, f.KeepAliveFraction, f.ProbeSucceeded, f.ProbeAttempts,
		formatFigure(f.ProbeP99FloodMS), formatFigure(f.ProbeP99QuietMS), formatFigure(f.RecoveryMS)), nil
}

func maxNaN(a, b float64) float64 {
	if math.IsNaN(a) {
		return b
	}
	return max(a, b)
}

// runFlood runs ulbbench loadgen flood in the sender's namespace.
func (r *workloadRun) runFlood(ctx context.Context) (*loadgen.FloodReport, error) {
	out, err := r.b.Exec(ctx, r.w.From, "ulbbench", "loadgen", "flood", "-to", r.w.To, "-sources", r.w.SourcePrefix,
		"-rate", fmt.Sprint(r.w.Rate), "-for", r.w.Duration.String())
	var rep loadgen.FloodReport
	if jerr := json.Unmarshal(lastLine(out), &rep); jerr != nil || err != nil {
		return nil, fmt.Errorf("loadgen flood: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return &rep, nil
}

// keepAlive runs the keep-alive client for d in the sender's namespace.
func (r *workloadRun) keepAlive(ctx context.Context, d time.Duration) (traffic.KeepAliveResult, error) {
	out, err := r.b.Exec(ctx, r.w.From, "ulbbench", "client", ClientKeepAlive, "-to", r.w.KeepAliveTo,
		"-concurrency", fmt.Sprint(r.w.KeepAliveConns), "-for", d.String(), "-attempt-timeout", r.w.ProbeTimeout.String(),
		"-timeout", (d + r.w.ProbeTimeout + workloadGrace).String())
	var rep ClientReport
	if jerr := json.Unmarshal(lastLine(out), &rep); jerr != nil || rep.KeepAlive == nil {
		return traffic.KeepAliveResult{}, fmt.Errorf("keepalive client: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return *rep.KeepAlive, nil
}

// probe runs the connection loop for d in the sender's namespace.
func (r *workloadRun) probe(ctx context.Context, d time.Duration) (traffic.LoopResult, error) {
	out, err := r.b.Exec(ctx, r.w.From, "ulbbench", "client", ClientLoop, "-to", r.w.ProbeTo, "-for", d.String(),
		"-interval", r.w.ProbeInterval.String(), "-attempt-timeout", r.w.ProbeTimeout.String(),
		"-timeout", (d + r.w.ProbeTimeout + workloadGrace).String())
	var rep ClientReport
	if jerr := json.Unmarshal(lastLine(out), &rep); jerr != nil || rep.Loop == nil {
		return traffic.LoopResult{}, fmt.Errorf("probe loop: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return *rep.Loop, nil
}

// ulbdPID returns the pid of the bench's process running ulbd, or 0 (a kernel target).
func (r *workloadRun) ulbdPID() int {
	for _, p := range r.b.spec.Processes {
		if len(p.Run) > 0 && filepath.Base(p.Run[0]) == "ulbd" {
			r.b.mu.Lock()
			pr := r.b.procs[p.Name]
			r.b.mu.Unlock()
			if pr != nil && pr.ps.alive() {
				return pr.ps.PID
			}
		}
	}
	return 0
}

// readRSS returns VmRSS of /proc/PID/status in KiB.
func readRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(data)
}

// parseVmRSS finds the line "VmRSS:   1234 kB" of a /proc/PID/status.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("no VmRSS line")
}
