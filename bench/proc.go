package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ulb/bench/netns"
)

// readyPoll is the interval between two looks at a ready condition.
const readyPoll = 50 * time.Millisecond

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// proc is a process started by this Bench.
type proc struct {
	ps   procState
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, valid after done
}

// argv builds the command line of a process: its program resolved, or the built-in servers.
func (b *Bench) argv(p *Process) ([]string, error) {
	if p.Serve == nil {
		prog, err := b.lookBin(p.Run[0])
		if err != nil {
			return nil, err
		}
		return append([]string{prog}, p.Run[1:]...), nil
	}
	prog, err := b.lookBin("ulbbench")
	if err != nil {
		return nil, err
	}
	name := p.Serve.Name
	if name == "" {
		name = p.Host
	}
	argv := []string{prog, "serve", "-name", name, "-ready", b.readyFile(p)}
	for _, l := range []struct {
		flag  string
		addrs []string
	}{{"-tcp", p.Serve.TCP}, {"-udp", p.Serve.UDP}, {"-http", p.Serve.HTTP}, {"-sink", p.Serve.Sink}} {
		for _, a := range l.addrs {
			argv = append(argv, l.flag, a)
		}
	}
	return argv, nil
}

func (b *Bench) readyFile(p *Process) string {
	return filepath.Join(b.stateDir, p.Name+".ready")
}

// start launches a process in its host's namespace, records it, and waits until it is ready.
func (b *Bench) start(ctx context.Context, p *Process) error {
	argv, err := b.argv(p)
	if err != nil {
		return err
	}
	ready := p.Ready
	if p.Serve != nil && ready == (Ready{Timeout: ready.Timeout}) {
		ready.File = b.readyFile(p)
		os.Remove(ready.File)
	}
	logPath := b.LogPath(p.Name)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("bench: process %s: %w", p.Name, err)
	}
	defer logf.Close()
	ns := b.spec.Namespace(p.Host)
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Dir = b.spec.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: start %s: %w", p.Name, err)
	}
	pr := &proc{
		ps: procState{Name: p.Name, Host: p.Host, PID: cmd.Process.Pid,
			Start: startTime(cmd.Process.Pid), Argv: argv, Log: logPath},
		done: make(chan struct{}),
	}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	b.mu.Lock()
	b.procs[p.Name] = pr
	b.state.Processes = append(b.state.Processes, pr.ps)
	b.mu.Unlock()
	if err := b.saveState(); err != nil {
		return err
	}
	if err := b.waitReady(ctx, ns, pr, ready); err != nil {
		return fmt.Errorf("bench: process %s on %s: %w%s", p.Name, p.Host, err, logTail(logPath))
	}
	b.logf("process %s on %s: pid %d, ready, log %s", p.Name, p.Host, pr.ps.PID, logPath)
	return nil
}

// waitReady polls the ready condition until it holds, the process exits, or the timeout.
func (b *Bench) waitReady(ctx context.Context, ns string, pr *proc, r Ready) error {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = DefaultReadyTimeout
	}
	if r.Delay > 0 {
		timeout = r.Delay
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	var why string // the last reason a ready socket did not count
	for {
		if r.Delay == 0 {
			ok, reason := readyNow(ns, pr.ps.PID, r)
			if ok {
				return nil
			}
			if reason != "" {
				why = "; " + reason
			}
		}
		select {
		case <-pr.done:
			return fmt.Errorf("exited before it was ready: %v", pr.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			if r.Delay > 0 {
				return nil
			}
			return fmt.Errorf("not ready after %v (%s%s)", timeout, describeReady(r), why)
		case <-tick.C:
		}
	}
}

// readyNow tells whether the ready condition holds. A unix socket counts only when the
// process that listens on it is pid or one of its descendants, not an earlier bench's
// ulbd still holding the path; reason says so when it is not.
func readyNow(ns string, pid int, r Ready) (ok bool, reason string) {
	switch {
	case r.Socket != "":
		c, err := net.DialTimeout("unix", r.Socket, readyPoll)
		if err != nil {
			return false, ""
		}
		defer c.Close()
		owner, err := peerPID(c.(*net.UnixConn))
		if err != nil {
			return false, err.Error()
		}
		if !descendsFrom(owner, pid) {
			return false, fmt.Sprintf("%s is served by pid %d, another process", r.Socket, owner)
		}
		return true, ""
	case r.TCP != "":
		return netns.Do(ns, func() error {
			c, err := net.DialTimeout("tcp", r.TCP, readyPoll)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil, ""
	case r.File != "":
		_, err := os.Stat(r.File)
		return err == nil, ""
	}
	return true, ""
}

// peerPID returns the pid of the process at the other end of a unix socket connection
// (SO_PEERCRED: the listener's).
func peerPID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return int(cred.Pid), nil
}

// descendsFrom tells whether process pid is ancestor or one of its descendants, going up
// the parent links of /proc.
func descendsFrom(pid, ancestor int) bool {
	for i := 0; i < 64 && pid > 1; i++ {
		if pid == ancestor {
			return true
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(data[bytes.LastIndexByte(data, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			return false
		}
		if pid, err = strconv.Atoi(f[1]); err != nil {
			return false
		}
	}
	return pid == ancestor
}

func describeReady(r Ready) string {
	switch {
	case r.Socket != "":
		return "unix socket " + r.Socket
	case r.TCP != "":
		return "tcp " + r.TCP
	case r.File != "":
		return "file " + r.File
	}
	return "started"
}

// logTail returns the last lines of a log for an error message.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "\n  log " + path + ":\n    " + strings.Join(lines, "\n    ")
}

// startTime returns a process's start time in clock ticks since boot (/proc/PID/stat field
// 22), or 0. Together with the pid it identifies the process even after pid reuse.
func startTime(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces; fields restart after its ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0
	}
	t, _ := strconv.ParseUint(f[19], 10, 64)
	return t
}

// alive reports whether the recorded process still runs (same pid, same start time).
func (ps procState) alive() bool {
	st := startTime(ps.PID)
	return st != 0 && st == ps.Start
}

// stop ends a recorded process group: SIGTERM, then SIGKILL after stopGrace. done, when
// not nil, is closed at the process's exit (a child of ours must be reaped to disappear).
func stop(ps procState, done <-chan struct{}) {
	gone := func() bool {
		if done != nil {
			select {
			case <-done:
				return true
			default:
				return false
			}
		}
		return !ps.alive()
	}
	if gone() || (done == nil && ps.Start == 0) {
		return
	}
	// Setsid made the process its group's leader: signal the whole group.
	syscall.Kill(-ps.PID, syscall.SIGTERM)
	for end := time.Now().Add(stopGrace); time.Now().Before(end); time.Sleep(readyPoll) {
		if gone() {
			return
		}
	}
	syscall.Kill(-ps.PID, syscall.SIGKILL)
	if done != nil {
		select {
		case <-done:
		case <-time.After(stopGrace):
		}
	}
}
