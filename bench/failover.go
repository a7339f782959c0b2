package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"ulb/bench/traffic"
)

// The client loop of a failover check: one connection every FailoverInterval, each given
// FailoverAttemptTimeout.
const (
	FailoverInterval       = 100 * time.Millisecond
	FailoverAttemptTimeout = time.Second
)

// masterPoll is the interval between two looks at the nodes' VRRP states after the signal.
const masterPoll = 50 * time.Millisecond

// ulbadmTimeout bounds one `ulbadm show-router`.
const ulbadmTimeout = 2 * time.Second

// vrrpMaster is the state `ulbadm show-router` gives a master.
const vrrpMaster = "master"

// failover runs a failover check: the client loop in from, the signal to c.Stop during it,
// and, with c.VRRP, the VRRP states of c.Nodes before and after.
func (b *Bench) failover(ctx context.Context, c Check, from string, timeout time.Duration) (string, error) {
	b.mu.Lock()
	pr := b.procs[c.Stop]
	b.mu.Unlock()
	if pr == nil {
		return "", fmt.Errorf("process %q was not started by this bench", c.Stop)
	}
	select {
	case <-pr.done:
		return "", fmt.Errorf("process %q is not running (%v)", c.Stop, pr.err)
	default:
	}
	sig, ok := failoverSignals[c.Signal]
	if !ok {
		return "", fmt.Errorf("signal %q: want KILL or TERM", c.Signal)
	}
	if c.VRRP != "" {
		states := b.vrrpStates(ctx, c)
		if states[c.Stop] != vrrpMaster {
			return "", fmt.Errorf("%s is not master of %s before the failover, nothing to fail over (%s)", c.Stop, c.VRRP, formatStates(c.Nodes, states))
		}
	}

	d := failoverDuration(c)
	cctx, cancel := context.WithTimeout(ctx, timeout+clientGrace)
	defer cancel()
	type loopOut struct {
		out []byte
		err error
	}
	loopDone := make(chan loopOut, 1)
	go func() {
		out, err := b.Exec(cctx, from, "ulbbench", "client", "loop", "-to", c.To, "-for", d.String(),
			"-interval", FailoverInterval.String(), "-attempt-timeout", FailoverAttemptTimeout.String(),
			"-timeout", (d + FailoverAttemptTimeout + clientGrace).String())
		loopDone <- loopOut{out, err}
	}()
	var lo loopOut
	select {
	case <-time.After(failoverStopAfter(c)):
	case <-cctx.Done():
		<-loopDone
		return "", fmt.Errorf("before the signal: %w", cctx.Err())
	case lo = <-loopDone:
		return "", fmt.Errorf("the client loop ended before the signal: %v: %s", lo.err, strings.TrimSpace(string(lo.out)))
	}
	signalled := time.Now()
	if err := syscall.Kill(-pr.ps.PID, sig); err != nil {
		return "", fmt.Errorf("signal %s to %s (pid %d): %w", sig, c.Stop, pr.ps.PID, err)
	}
	f := failoverRun{signal: sig, signalled: signalled.UnixNano()}
	// Until the loop ends, watch for the node that takes over.
	for waiting := true; waiting; {
		if c.VRRP != "" && f.newMaster == "" {
			states := b.vrrpStates(cctx, c)
			for _, n := range c.Nodes {
				if n != c.Stop && states[n] == vrrpMaster {
					f.newMaster, f.takeover = n, time.Since(signalled)
					break
				}
			}
		}
		select {
		case lo = <-loopDone:
			waiting = false
		case <-time.After(masterPoll):
		}
	}
	var rep ClientReport
	if err := json.Unmarshal(lastLine(lo.out), &rep); err != nil || rep.Loop == nil {
		return "", fmt.Errorf("client loop: %v: %s", lo.err, strings.TrimSpace(string(lo.out)))
	}
	f.attempts = rep.Loop.Attempts
	return judgeFailover(c, f)
}

// failoverRun is what a failover check saw: the signal, when it was sent (Unix ns), the
// node that became master and how long after, and the client's attempts.
type failoverRun struct {
	signal    syscall.Signal
	signalled int64
	newMaster string
	takeover  time.Duration
	attempts  []traffic.Attempt
}

// judgeFailover describes a failover run and tells whether it meets the check: answers
// before and after the signal, all from ExpectNames, no failure once the service was
// back, a new master when the check names a VRRP instance, a gap within MaxGap.
func judgeFailover(c Check, f failoverRun) (string, error) {
	var before, after phase
	var answers []int64 // end times of answered attempts
	firstBack := -1     // index of the first attempt begun after the signal and answered
	var problems []string
	for i, a := range f.attempts {
		ph := &before
		if a.Start >= f.signalled {
			ph = &after
		}
		ph.add(a)
		if a.Err != "" {
			continue
		}
		answers = append(answers, a.End)
		if a.Start >= f.signalled && firstBack < 0 {
			firstBack = i
		}
		if len(c.ExpectNames) > 0 && !slices.Contains(c.ExpectNames, a.Name) {
			problems = append(problems, fmt.Sprintf("answered by unexpected %q", a.Name))
		}
	}
	var lateFails int
	var lateErr string
	if firstBack >= 0 {
		// The service is back when the first answer arrives: an attempt begun before that
		// may still fail (its SYN went out during the outage and the retransmission came
		// too late); one begun after it must not.
		back := f.attempts[firstBack].End
		for _, a := range f.attempts[firstBack+1:] {
			if a.Err != "" && a.Start >= back {
				if lateFails++; lateErr == "" {
					lateErr = a.Err
				}
			}
		}
	}
	slices.Sort(answers)
	var gap time.Duration
	for i := 1; i < len(answers); i++ {
		gap = max(gap, time.Duration(answers[i]-answers[i-1]))
	}

	// What happened, in one line.
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s", c.Stop)
	if c.VRRP != "" {
		fmt.Fprintf(&sb, " (master of %s)", c.VRRP)
	}
	fmt.Fprintf(&sb, " got SIG%s after %d connections", signalName(f.signal), before.n)
	switch {
	case c.VRRP != "" && f.newMaster != "":
		fmt.Fprintf(&sb, ", %s was master %v later", f.newMaster, round(f.takeover))
	case c.VRRP != "":
		fmt.Fprintf(&sb, ", no other node became master")
	}
	fmt.Fprintf(&sb, "; before: %s; after: %s", before, after)
	if firstBack >= 0 {
		fmt.Fprintf(&sb, ", first answer %v after the signal", round(time.Duration(f.attempts[firstBack].End-f.signalled)))
	}
	fmt.Fprintf(&sb, "; longest gap without an answer %v", round(gap))
	summary := sb.String()

	switch {
	case len(f.attempts) == 0:
		problems = append(problems, "the client made no connection")
	case before.ok == 0:
		problems = append(problems, "no answer before the signal (first error: "+before.firstErr+")")
	}
	if after.ok == 0 {
		problems = append(problems, fmt.Sprintf("no answer after the signal (first error: %s)", after.firstErr))
	}
	if c.VRRP != "" && f.newMaster == "" {
		problems = append(problems, fmt.Sprintf("no other node became master of %s", c.VRRP))
	}
	if lateFails > 0 {
		problems = append(problems, fmt.Sprintf("%d connections failed after the service was back (first: %s)", lateFails, lateErr))
	}
	if c.MaxGap > 0 && gap > c.MaxGap {
		problems = append(problems, fmt.Sprintf("the longest gap %v exceeds max_gap %v", round(gap), c.MaxGap))
	}
	if len(problems) > 0 {
		return "", errors.New(strings.Join(slices.Compact(problems), "; ") + ": " + summary)
	}
	return summary, nil
}

// phase counts the attempts begun before, or after, the signal.
type phase struct {
	n, ok    int
	names    map[string]int
	firstErr string
}

func (p *phase) add(a traffic.Attempt) {
	p.n++
	if a.Err != "" {
		if p.firstErr == "" {
			p.firstErr = a.Err
		}
		return
	}
	if p.names == nil {
		p.names = map[string]int{}
	}
	p.ok++
	p.names[a.Name]++
}

// String formats "18/20 answered (s1=9 s2=9)".
func (p phase) String() string {
	return fmt.Sprintf("%d/%d answered (%s)", p.ok, p.n, formatNames(p.names))
}

func signalName(s syscall.Signal) string {
	if s == syscall.SIGTERM {
		return "TERM"
	}
	return "KILL"
}

// round keeps two or three significant digits of a duration: 1ms, 42ms, 1.65s.
func round(d time.Duration) time.Duration {
	if d < 100*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}

// vrrpStates asks each node of a failover check for the state of instance c.VRRP with
// `ulbadm -s SOCKET -o json show-router NAME`; a node that does not answer gets the
// reason instead of a state.
func (b *Bench) vrrpStates(ctx context.Context, c Check) map[string]string {
	states := make(map[string]string, len(c.Nodes))
	for _, n := range c.Nodes {
		states[n] = b.vrrpState(ctx, n, c.VRRP)
	}
	return states
}

func (b *Bench) vrrpState(ctx context.Context, node, instance string) string {
	var socket string
	for _, p := range b.spec.Processes {
		if p.Name == node {
			socket = p.Ready.Socket
		}
	}
	if socket == "" {
		return "no control socket"
	}
	prog, err := b.lookBin("ulbadm")
	if err != nil {
		return err.Error()
	}
	cctx, cancel := context.WithTimeout(ctx, ulbadmTimeout)
	defer cancel()
	out, err := execOutput(cctx, prog, "-s", socket, "-o", "json", "show-router", instance)
	if err != nil {
		return "unreachable"
	}
	var infos []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(out, &infos); err != nil || len(infos) != 1 || infos[0].Name != instance {
		return "unknown"
	}
	return infos[0].State
}

// execOutput runs a program outside the bench's namespaces and returns its standard output.
func execOutput(ctx context.Context, prog string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, prog, args...).Output()
}

// formatStates formats "lb1=backup lb2=master" in the nodes' order.
func formatStates(nodes []string, states map[string]string) string {
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = n + "=" + states[n]
	}
	return strings.Join(parts, " ")
}
