package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"ulb/bench/loadgen"
	"ulb/bench/traffic"
	"ulb/router/control"
)

// CompareOptions tune RunCompare.
type CompareOptions struct {
	Options // how each bench is brought up; Out also receives the progress lines
	// Repeat, when not zero, overrides the compare file's repeat.
	Repeat int
	// Targets, when not empty, restricts the run to these targets (the baseline's ratios
	// are then missing unless it is among them).
	Targets []string
	// BenchName, when not nil, renames each target's bench (see Spec.Rename), e.g. to give
	// a test's namespaces a unique prefix.
	BenchName func(target, name string) string
	// Iperf3 is the iperf3 program, a name looked up in PATH or a path (default "iperf3").
	// When it cannot be found, tcp-stream falls back to the transfer check.
	Iperf3 string
}

// Timing of the workloads around their measured part.
const (
	iperfReadyTimeout = 10 * time.Second
	workloadGrace     = 20 * time.Second // beyond a repetition's duration, before it is abandoned
	counterReady      = 10 * time.Second
	// settleTime lets the frames a router still holds reach the counter after the sender
	// stops.
	settleTime = 300 * time.Millisecond
)

// RunCompare brings each target's bench up in turn, runs every workload Repeat times,
// reads ulbd's counters around the pps64 runs, and brings the bench down again. A failed
// repetition is recorded in the report and the run goes on; an error is returned only
// when a bench cannot be loaded or brought up or down, or ctx ends.
func RunCompare(ctx context.Context, c *CompareSpec, opts CompareOptions) (*CompareReport, error) {
	repeat := c.Repeat
	if opts.Repeat > 0 {
		repeat = opts.Repeat
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	rep := &CompareReport{Name: c.Name, Repeat: repeat, Baseline: c.Baseline, Started: time.Now()}
	for _, w := range c.Workloads {
		rep.Workloads = append(rep.Workloads, WorkloadReport{Name: w.Name, Type: w.Type, Duration: w.Duration.String()})
	}
	for _, t := range c.Targets {
		if len(opts.Targets) > 0 && !containsString(opts.Targets, t.Name) {
			continue
		}
		rep.Targets = append(rep.Targets, t.Name)
		if err := runTarget(ctx, c, t, opts, repeat, rep, out); err != nil {
			rep.finish(c.Workloads)
			return rep, err
		}
	}
	if len(rep.Targets) == 0 {
		return rep, fmt.Errorf("bench: compare: no target selected out of %d", len(c.Targets))
	}
	rep.finish(c.Workloads)
	return rep, nil
}

// limitULBD puts each ulbd process of the bench into a cgroup of its own with a CPU
// quota of frac of one CPU, and returns those made so far even on an error.
func limitULBD(b *Bench, frac float64) ([]*cpuLimit, error) {
	b.mu.Lock()
	procs := slices.Clone(b.state.Processes)
	b.mu.Unlock()
	var out []*cpuLimit
	for _, ps := range procs {
		if len(ps.Argv) == 0 || filepath.Base(ps.Argv[0]) != "ulbd" {
			continue
		}
		l, err := limitCPU("ulbbench-"+b.spec.Name+"-"+ps.Name, ps.PID, frac)
		if err != nil {
			return out, fmt.Errorf("process %s: %w", ps.Name, err)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("cpu_limit: the bench runs no ulbd")
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func runTarget(ctx context.Context, c *CompareSpec, t Target, opts CompareOptions, repeat int, rep *CompareReport, out io.Writer) (err error) {
	spec, err := Load(c.BenchPath(t))
	if err != nil {
		return err
	}
	if opts.BenchName != nil {
		if err := spec.Rename(opts.BenchName(t.Name, spec.Name)); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "target %s: bench %s up\n", t.Name, spec.File)
	bopts := opts.Options
	bopts.Out = io.Discard
	b, err := Up(ctx, spec, bopts)
	if err != nil {
		return fmt.Errorf("target %s: %w", t.Name, err)
	}
	defer func() {
		if derr := b.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("target %s: down: %w", t.Name, derr))
		}
		fmt.Fprintf(out, "target %s: bench down\n", t.Name)
	}()
	if t.CPULimit > 0 {
		limits, err := limitULBD(b, t.CPULimit)
		defer func() {
			for _, l := range limits {
				err = errors.Join(err, l.remove())
			}
		}()
		if err != nil {
			return fmt.Errorf("target %s: %w", t.Name, err)
		}
		fmt.Fprintf(out, "target %s: ulbd confined to %.2f of a CPU (%d process(es))\n", t.Name, t.CPULimit, len(limits))
	}
	socket := t.ControlSocket
	if socket == "" {
		socket = ulbdSocket(spec)
	}
	for wi, w := range c.Workloads {
		wr := &rep.Workloads[wi]
		if err := ctx.Err(); err != nil {
			return err
		}
		run := newWorkloadRun(b, w, t.Name, socket, wr)
		run.iperf3 = opts.Iperf3
		if err := run.start(ctx); err != nil {
			wr.addError(t.Name, err)
			fmt.Fprintf(out, "  %s on %s: %v\n", w.Name, t.Name, err)
			continue
		}
		for i := 1; i <= repeat; i++ {
			line, err := run.once(ctx)
			if err != nil {
				wr.addError(t.Name, fmt.Errorf("repetition %d: %w", i, err))
				line = "error: " + err.Error()
			}
			fmt.Fprintf(out, "  %s on %s, %d/%d: %s\n", w.Name, t.Name, i, repeat, line)
			if ctx.Err() != nil {
				break
			}
		}
		run.stop()
	}
	return ctx.Err()
}

func (w *WorkloadReport) addError(target string, err error) {
	if w.Errors == nil {
		w.Errors = map[string][]string{}
	}
	w.Errors[target] = append(w.Errors[target], err.Error())
}

func (w *WorkloadReport) addNote(note string) {
	if !containsString(w.Notes, note) {
		w.Notes = append(w.Notes, note)
	}
}

// ulbdSocket returns the ready socket of the bench's process running ulbd, or "".
func ulbdSocket(spec *Spec) string {
	for _, p := range spec.Processes {
		if len(p.Run) > 0 && filepath.Base(p.Run[0]) == "ulbd" && p.Ready.Socket != "" {
			return p.Ready.Socket
		}
	}
	return ""
}

// workloadRun is one workload on one bench: start, once per repetition, stop.
type workloadRun struct {
	b      *Bench
	w      Workload
	target string
	socket string
	rep    *WorkloadReport

	iperf3    string        // the iperf3 program; a path once start found it
	iperf     *exec.Cmd     // tcp-stream: the iperf3 server
	iperfDone chan struct{} // closed when it exited
	fallback  bool          // tcp-stream: iperf3 is missing, the transfer check measures
}

func newWorkloadRun(b *Bench, w Workload, target, socket string, rep *WorkloadReport) *workloadRun {
	return &workloadRun{b: b, w: w, target: target, socket: socket, rep: rep}
}

func (r *workloadRun) start(ctx context.Context) error {
	if r.w.Type == WorkloadConns {
		return r.warmUp(ctx)
	}
	if r.w.Type == WorkloadSYNFlood {
		return r.floodStart(ctx)
	}
	if r.w.Type != WorkloadTCPStream {
		return nil
	}
	if r.iperf3 == "" {
		r.iperf3 = "iperf3"
	}
	path, err := exec.LookPath(r.iperf3)
	if err != nil {
		if r.w.FallbackSink == "" {
			return fmt.Errorf("%s is not installed and the workload has no fallback_sink", r.iperf3)
		}
		r.fallback = true
		r.rep.addNote(fmt.Sprintf("%s not found: measured with the bench's transfer check (%s to %s), receiver figure only",
			r.iperf3, formatSize(int64(r.w.FallbackBytes)), r.w.FallbackSink))
		return nil
	}
	r.iperf3 = path
	r.rep.addNote(fmt.Sprintf("iperf3 -c %s -t %d -J from %s, iperf3 -s on %s", r.w.To, int(r.w.Duration/time.Second), r.w.From, r.w.Server))
	return r.startIperf(ctx)
}

// startIperf starts `iperf3 -s` in the server's namespace and waits until it listens.
func (r *workloadRun) startIperf(ctx context.Context) error {
	logPath := r.b.LogPath("iperf3-" + r.w.Name)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	defer logf.Close()
	port := fmt.Sprint(r.w.Port)
	cmd := exec.Command("ip", "netns", "exec", r.b.Namespace(r.w.Server), r.iperf3, "-s", "-p", port)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	r.iperf, r.iperfDone = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(r.iperfDone)
	}()
	deadline := time.Now().Add(iperfReadyTimeout)
	for {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", r.b.Namespace(r.w.Server),
			"ss", "-Hltn", "sport = :"+port).Output()
		if err == nil && len(strings.TrimSpace(string(out))) > 0 {
			return nil
		}
		select {
		case <-r.iperfDone:
			return fmt.Errorf("iperf3 server exited%s", logTail(logPath))
		case <-ctx.Done():
			r.stop()
			return ctx.Err()
		case <-time.After(readyPoll):
		}
		if time.Now().After(deadline) {
			r.stop()
			return fmt.Errorf("iperf3 server not listening after %v%s", iperfReadyTimeout, logTail(logPath))
		}
	}
}

func (r *workloadRun) stop() {
	if r.iperf == nil {
		return
	}
	select {
	case <-r.iperfDone:
	default:
		syscall.Kill(-r.iperf.Process.Pid, syscall.SIGTERM)
		select {
		case <-r.iperfDone:
		case <-time.After(stopGrace):
			syscall.Kill(-r.iperf.Process.Pid, syscall.SIGKILL)
			<-r.iperfDone
		}
	}
	r.iperf = nil
}

// once runs one repetition, records its figures, and returns a progress line.
func (r *workloadRun) once(ctx context.Context) (string, error) {
	bound := r.w.Duration + workloadGrace
	switch r.w.Type {
	case WorkloadSYNFlood:
		bound = floodBound(r.w)
	case WorkloadOverload:
		bound += overloadMaxSteps * (overloadStep + workloadGrace)
	}
	cctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	switch {
	case r.w.Type == WorkloadSYNFlood:
		return r.floodOnce(cctx)
	case r.w.Type == WorkloadPPS64:
		return r.pps(cctx)
	case r.w.Type == WorkloadOverload:
		return r.overload(cctx)
	case r.w.Type == WorkloadConns:
		return r.connsOnce(cctx)
	case r.fallback:
		return r.transfer(cctx)
	}
	return r.iperfClient(cctx)
}

// IperfResult holds the figures of `iperf3 -J` that a comparison uses.
type IperfResult struct {
	SentBPS     float64
	ReceivedBPS float64
	Retransmits int64
}

// ParseIperf parses the JSON report of `iperf3 -c ... -J`.
func ParseIperf(data []byte) (IperfResult, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				BPS         float64 `json:"bits_per_second"`
				Retransmits int64   `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BPS float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 output: %w", err)
	}
	if doc.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	res := IperfResult{SentBPS: doc.End.SumSent.BPS, ReceivedBPS: doc.End.SumReceived.BPS, Retransmits: doc.End.SumSent.Retransmits}
	if res.ReceivedBPS <= 0 || res.SentBPS <= 0 {
		return res, errors.New("iperf3 reported no throughput")
	}
	return res, nil
}

func (r *workloadRun) iperfClient(ctx context.Context) (string, error) {
	out, err := r.b.Exec(ctx, r.w.From, r.iperf3, "-c", r.w.To, "-p", fmt.Sprint(r.w.Port),
		"-t", fmt.Sprint(int(r.w.Duration/time.Second)), "-J")
	res, perr := ParseIperf(out)
	if perr != nil {
		if err != nil {
			return "", fmt.Errorf("%v: %v", err, perr)
		}
		return "", perr
	}
	r.rep.metric("Gbit/s received", true, true).add(r.target, res.ReceivedBPS/1e9)
	r.rep.metric("Gbit/s sent", false, true).add(r.target, res.SentBPS/1e9)
	r.rep.metric("retransmits", false, false).add(r.target, float64(res.Retransmits))
	return fmt.Sprintf("%.2f Gbit/s received, %.2f sent, %d retransmits", res.ReceivedBPS/1e9, res.SentBPS/1e9, res.Retransmits), nil
}

func (r *workloadRun) transfer(ctx context.Context) (string, error) {
	out, err := r.b.Exec(ctx, r.w.From, "ulbbench", "client", "transfer", "-to", r.w.FallbackSink,
		"-bytes", fmt.Sprint(int64(r.w.FallbackBytes)), "-timeout", (r.w.Duration + workloadGrace).String())
	var rep ClientReport
	if jerr := json.Unmarshal(lastLine(out), &rep); jerr != nil {
		return "", fmt.Errorf("transfer client: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if !rep.OK || rep.Transfer == nil {
		return "", fmt.Errorf("transfer: %s", rep.Error)
	}
	if rep.Transfer.SinkBytes != rep.Transfer.Bytes || rep.Transfer.Mbps <= 0 {
		return "", fmt.Errorf("transfer: sent %d bytes, sink got %d", rep.Transfer.Bytes, rep.Transfer.SinkBytes)
	}
	r.rep.metric("Gbit/s received", true, true).add(r.target, rep.Transfer.Mbps/1e3)
	return fmt.Sprintf("%.2f Gbit/s (transfer of %s)", rep.Transfer.Mbps/1e3, formatSize(rep.Transfer.Bytes)), nil
}

// ppsRun is one measurement of frames sent and delivered.
type ppsRun struct {
	send      loadgen.SendReport
	count     loadgen.CountReport
	delivered float64 // frames per second counted at the server over the sending time
	loss      float64 // percent of the frames sent not counted
}

// sendCount runs the frame counter in the server's namespace and the generator in the
// sender's, at rate frames per second (0: flat out) for d.
func (r *workloadRun) sendCount(ctx context.Context, rate int, d time.Duration) (ppsRun, error) {
	var run ppsRun
	counter, err := r.startCounter(ctx)
	if err != nil {
		return run, err
	}
	defer counter.abort()
	args := []string{"ulbbench", "loadgen", "send", "-to", r.w.To, "-for", d.String(), "-rate", fmt.Sprint(rate)}
	if r.w.Flows > 0 {
		args = append(args, "-flows", fmt.Sprint(r.w.Flows))
	}
	if r.w.Senders > 0 {
		args = append(args, "-senders", fmt.Sprint(r.w.Senders))
	}
	out, err := r.b.Exec(ctx, r.w.From, args...)
	if jerr := json.Unmarshal(lastLine(out), &run.send); jerr != nil || err != nil {
		return run, fmt.Errorf("loadgen send: %v: %s", err, strings.TrimSpace(string(out)))
	}
	select {
	case <-time.After(settleTime):
	case <-ctx.Done():
		return run, ctx.Err()
	}
	if run.count, err = counter.finish(); err != nil {
		return run, err
	}
	if run.send.Sent == 0 || run.send.ElapsedNS <= 0 {
		return run, fmt.Errorf("loadgen sent nothing: %+v", run.send)
	}
	run.delivered = float64(run.count.Packets) / run.send.Elapsed().Seconds()
	// A few frames of other traffic (ARP) may make the count exceed what was sent.
	run.loss = max(0, 100*(1-float64(run.count.Packets)/float64(run.send.Sent)))
	return run, nil
}

// senderNote describes how frames were sent and counted.
func (r *workloadRun) senderNote(count loadgen.CountReport) string {
	sink := "at a full UDP socket (no ICMP)"
	switch count.Sink {
	case "ingress-drop":
		sink = "at its ingress, before its IP stack (tcx eBPF)"
	case "socket":
		if count.SinkNote != "" {
			sink += "; the ingress drop could not be had: " + count.SinkNote
		}
	}
	return fmt.Sprintf("ulbbench loadgen send from %s (%d-byte frames + FCS = 64, AF_PACKET sendmmsg, %d sender(s)); delivered = rx_packets delta of %s:%s over the sending time; the server drops them %s",
		r.w.From, loadgen.FrameLen, max(r.w.Senders, 1), r.w.Server, r.w.Device, sink)
}

// pps measures one pps64 repetition and reads the router's counters around it.
func (r *workloadRun) pps(ctx context.Context) (string, error) {
	before, serr := r.routerStats(ctx)
	run, err := r.sendCount(ctx, r.w.Rate, r.w.Duration)
	if err != nil {
		return "", err
	}
	r.rep.addNote(r.senderNote(run.count))
	r.recordRouter(ctx, before, serr)
	r.rep.metric("Mpps delivered", true, true).add(r.target, run.delivered/1e6)
	r.rep.metric("Mpps offered", false, true).add(r.target, run.send.PPS/1e6)
	r.rep.metric("loss %", false, false).add(r.target, run.loss)
	r.rep.metric("refused by sender's kernel %", false, false).add(r.target, 100*float64(run.send.TxErrors)/float64(run.send.Sent))
	return fmt.Sprintf("offered %.3f Mpps (%d frames in %.2f s, %d refused), delivered %.3f Mpps (%d), loss %.1f %%",
		run.send.PPS/1e6, run.send.Sent, run.send.Elapsed().Seconds(), run.send.TxErrors, run.delivered/1e6, run.count.Packets, run.loss), nil
}

// The capacity search of pps64-overload: steps of overloadStep, each offering
// overloadGrowth times the last, from the workload's rate (default
// DefaultOverloadStart), until the loss passes overloadLoss percent.
const (
	DefaultOverloadStart = 20_000
	overloadStep         = 2 * time.Second
	overloadGrowth       = 1.25
	overloadLoss         = 5.0
	overloadMaxSteps     = 24
)

// overload measures a router past its capacity (issue 11: no receive livelock). It
// first finds the capacity C, the most frames per second delivered by a step of the
// search, which ends at the first step losing more than overloadLoss percent (the router
// is then saturated); then it offers 2C for the workload's duration and reports what is
// delivered as a fraction of C. A router that wastes work on frames it cannot finish
// (receive livelock) forwards less at 2C than at C.
func (r *workloadRun) overload(ctx context.Context) (string, error) {
	rate := float64(r.w.Rate)
	if rate == 0 {
		rate = DefaultOverloadStart
	}
	var capacity, capacityLoss float64
	steps := 0
	for ; steps < overloadMaxSteps; steps++ {
		run, err := r.sendCount(ctx, int(rate), overloadStep)
		if err != nil {
			return "", fmt.Errorf("capacity step at %.0f pps: %w", rate, err)
		}
		if run.delivered > capacity {
			capacity, capacityLoss = run.delivered, run.loss
		}
		if run.loss > overloadLoss {
			break
		}
		if run.send.PPS < 0.9*rate {
			return "", fmt.Errorf("the sender reached only %.0f of %.0f pps with %.1f %% loss: the router was not saturated (set a target cpu_limit)", run.send.PPS, rate, run.loss)
		}
		rate *= overloadGrowth
	}
	if steps == overloadMaxSteps {
		return "", fmt.Errorf("no loss past %.1f %% up to %.0f pps: the router was not saturated", overloadLoss, rate)
	}
	before, serr := r.routerStats(ctx)
	run, err := r.sendCount(ctx, int(2*capacity), r.w.Duration)
	if err != nil {
		return "", fmt.Errorf("overload at %.0f pps: %w", 2*capacity, err)
	}
	r.rep.addNote(r.senderNote(run.count) + fmt.Sprintf("; capacity = the most delivered by a step of %v, offered from %.0f pps up by %.2fx until a step lost more than %.0f %%; then 2x capacity is offered",
		overloadStep, float64(max(r.w.Rate, DefaultOverloadStart)), overloadGrowth, overloadLoss))
	r.recordRouter(ctx, before, serr)
	offeredX := run.send.PPS / capacity
	r.rep.metric("delivered at 2x / capacity", true, false).add(r.target, run.delivered/capacity)
	r.rep.metric("capacity kpps", false, true).add(r.target, capacity/1e3)
	r.rep.metric("offered / capacity", false, false).add(r.target, offeredX)
	r.rep.metric("delivered kpps at 2x", false, true).add(r.target, run.delivered/1e3)
	return fmt.Sprintf("capacity %.1f kpps (%d steps, %.1f %% loss there); offered %.1f kpps (%.2fx), delivered %.1f kpps = %.2f of capacity, loss %.1f %%",
		capacity/1e3, steps+1, capacityLoss, run.send.PPS/1e3, offeredX, run.delivered/1e3, run.delivered/capacity, run.loss), nil
}

// recordRouter reads ulbd's counters again and records their difference from before
// (read with error serr) as the workload's router counters, or notes why there are none.
func (r *workloadRun) recordRouter(ctx context.Context, before *control.StatsInfo, serr error) {
	if serr == nil {
		after, err := r.routerStats(ctx)
		if err == nil {
			if r.rep.Router == nil {
				r.rep.Router = map[string]*control.StatsInfo{}
			}
			r.rep.Router[r.target] = statsDelta(before, after)
		} else {
			serr = err
		}
	}
	if serr != nil && r.socket != "" {
		r.rep.addNote(fmt.Sprintf("%s: router counters unavailable: %v", r.target, serr))
	}
}

// connsWarmUp is how many connections per unit of concurrency open before the first
// repetition of a conns workload: they resolve neighbours on the path and show that the
// address answers at all.
const connsWarmUp = 2

// warmUp opens a few connections before a conns workload's first repetition; a failure
// skips the workload on this target.
func (r *workloadRun) warmUp(ctx context.Context) error {
	n := connsWarmUp * r.w.Concurrency
	r.rep.addNote(fmt.Sprintf("ulbbench client conns -to %s -count %d -concurrency %d from %s (each connection: connect, read the server's one-line answer, close); conns/s = count / the client's time from the first connect to the last close; %d warm-up connections before the first repetition",
		r.w.To, r.w.Count, r.w.Concurrency, r.w.From, n))
	cctx, cancel := context.WithTimeout(ctx, r.w.Duration+workloadGrace)
	defer cancel()
	if _, err := r.runConns(cctx, n); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return nil
}

// runConns runs the conns client in the sender's namespace: n connections, all of which
// must succeed.
func (r *workloadRun) runConns(ctx context.Context, n int) (traffic.ConnsResult, error) {
	out, err := r.b.Exec(ctx, r.w.From, "ulbbench", "client", "conns", "-to", r.w.To, "-count", fmt.Sprint(n),
		"-concurrency", fmt.Sprint(r.w.Concurrency), "-timeout", r.w.Duration.String())
	var rep ClientReport
	if jerr := json.Unmarshal(lastLine(out), &rep); jerr != nil || rep.Conns == nil {
		return traffic.ConnsResult{}, fmt.Errorf("conns client: %v: %s", err, strings.TrimSpace(string(out)))
	}
	cr := *rep.Conns
	if !rep.OK {
		return cr, fmt.Errorf("conns client: %s", rep.Error)
	}
	if cr.OK != n || cr.Failed != 0 {
		return cr, fmt.Errorf("%d of %d connections failed (%s); first error: %s", n-cr.OK, n, formatNames(cr.Names), cr.FirstErr)
	}
	if cr.Seconds <= 0 {
		return cr, fmt.Errorf("conns client reported %v seconds", cr.Seconds)
	}
	return cr, nil
}

// connsOnce runs one repetition of a conns workload and records its rate.
func (r *workloadRun) connsOnce(ctx context.Context) (string, error) {
	before, serr := r.routerStats(ctx)
	cr, err := r.runConns(ctx, r.w.Count)
	r.recordRouter(ctx, before, serr)
	if err != nil {
		return "", err
	}
	rate := float64(cr.OK) / cr.Seconds
	r.rep.metric("conns/s", true, true).add(r.target, rate)
	return fmt.Sprintf("%d connections in %.3f s: %.0f conns/s (%s)", cr.OK, cr.Seconds, rate, formatNames(cr.Names)), nil
}

// routerStats reads ulbd's counters; an error when the target has no control socket.
func (r *workloadRun) routerStats(ctx context.Context) (*control.StatsInfo, error) {
	if r.socket == "" {
		return nil, errors.New("no control socket")
	}
	cl, err := control.DialContext(ctx, r.socket)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var s control.StatsInfo
	if err := cl.Call(ctx, control.VerbShowStats, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// frameCounter is a running `ulbbench loadgen count` in the server's namespace.
type frameCounter struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer // read only after done
	lines  chan string   // its stdout, line by line; closed at EOF
	done   chan error
}

func (r *workloadRun) startCounter(ctx context.Context) (*frameCounter, error) {
	prog, err := r.b.lookBin("ulbbench")
	if err != nil {
		return nil, err
	}
	bound := r.w.Duration + workloadGrace
	args := []string{"netns", "exec", r.b.Namespace(r.w.Server), prog, "loadgen", "count",
		"-dev", r.w.Device, "-for", bound.String(), "-sink-port", fmt.Sprint(loadgen.DefaultDstPort)}
	if r.w.Sink != SinkSocket {
		args = append(args, "-sink-drop")
	}
	cmd := exec.Command("ip", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loadgen count: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen count: %w", err)
	}
	fc := &frameCounter{cmd: cmd, stderr: &stderr, lines: make(chan string, 16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fc.lines <- sc.Text()
		}
		close(fc.lines)
		fc.done <- cmd.Wait()
	}()
	select {
	case l, ok := <-fc.lines:
		if ok && l == "ready" {
			return fc, nil
		}
		fc.abort()
		return nil, fmt.Errorf("loadgen count: did not start (%q): %s", l, strings.TrimSpace(stderr.String()))
	case <-time.After(counterReady):
		fc.abort()
		return nil, fmt.Errorf("loadgen count: not ready after %v", counterReady)
	case <-ctx.Done():
		fc.abort()
		return nil, ctx.Err()
	}
}

// finish stops the count (SIGINT) and returns its report.
func (fc *frameCounter) finish() (loadgen.CountReport, error) {
	var rep loadgen.CountReport
	if fc.cmd == nil {
		return rep, errors.New("loadgen count: already stopped")
	}
	fc.cmd.Process.Signal(syscall.SIGINT)
	var last string
	timeout := time.After(stopGrace)
	for eof := false; !eof; {
		select {
		case l, ok := <-fc.lines:
			if ok {
				last = l
			}
			eof = !ok
		case <-timeout:
			fc.abort()
			return rep, errors.New("loadgen count: no report after SIGINT")
		}
	}
	err := <-fc.done
	fc.cmd = nil
	if jerr := json.Unmarshal([]byte(last), &rep); jerr != nil {
		return rep, fmt.Errorf("loadgen count: %v, last line %q: %s", err, last, strings.TrimSpace(fc.stderr.String()))
	}
	return rep, nil
}

// abort kills a counter that is still running.
func (fc *frameCounter) abort() {
	if fc.cmd == nil {
		return
	}
	fc.cmd.Process.Kill()
	for range fc.lines {
	}
	<-fc.done
	fc.cmd = nil
}
