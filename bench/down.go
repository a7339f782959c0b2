package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"ulb/bench/netns"
)

// Down stops the bench's processes and deletes its namespaces (and with them every link
// and bridge). It keeps the logs directory. It is idempotent.
func (b *Bench) Down() error {
	b.mu.Lock()
	procs := make([]*proc, 0, len(b.procs))
	for _, p := range b.procs {
		procs = append(procs, p)
	}
	st := b.state
	st.Namespaces = slices.Clone(st.Namespaces)
	b.mu.Unlock()
	for _, p := range procs {
		stop(p.ps, p.done)
	}
	err := teardown(b.spec, b.stateDir, st)
	if err == nil {
		b.logf("bench %s is down", b.spec.Name)
	}
	return err
}

// Down tears down a bench that was brought up by another process (ulbbench up), also
// after a crash: it stops the processes recorded in the state directory and deletes every
// namespace of the spec and of the recorded state. It is idempotent.
func Down(spec *Spec, opts Options) error {
	b := newBench(spec, opts)
	var st state
	data, err := os.ReadFile(filepath.Join(b.stateDir, stateFile))
	switch {
	case err == nil:
		if jerr := json.Unmarshal(data, &st); jerr != nil {
			return fmt.Errorf("bench: %s: %w", filepath.Join(b.stateDir, stateFile), jerr)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("bench: %w", err)
	}
	for _, ps := range st.Processes {
		stop(ps, nil)
	}
	if err := teardown(spec, b.stateDir, st); err != nil {
		return err
	}
	b.logf("bench %s is down", spec.Name)
	return nil
}

// teardown kills whatever still runs in the bench's namespaces, deletes them, and removes
// the state directory except its logs.
func teardown(spec *Spec, stateDir string, st state) error {
	names := slices.Clone(st.Namespaces)
	for _, ns := range spec.Namespaces() {
		if !slices.Contains(names, ns) {
			names = append(names, ns)
		}
	}
	var errs []error
	for _, ns := range names {
		if !netns.Exists(ns) {
			continue
		}
		killAll(ns)
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	entries, _ := os.ReadDir(stateDir)
	for _, e := range entries {
		if e.Name() == "logs" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(stateDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killAll SIGKILLs every process inside a namespace of the bench (they are ours: the
// namespace was created by the bench).
func killAll(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
