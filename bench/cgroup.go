package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A compare target's cpu_limit confines its ulbd processes to a fraction of one CPU with
// a CPU quota of their own cgroup (cgroup v2's cpu.max, or v1's cpu controller), so that
// a sender on a small machine can offer more than the router under test can forward:
// how it behaves past its capacity (pps64-overload) cannot be seen otherwise when the
// router has a whole CPU and the sender one too.

// cgroupPeriodUS is the quota's period.
const cgroupPeriodUS = 100_000

// cpuLimit is a cgroup made for one process.
type cpuLimit struct {
	dir    string // the cgroup's directory
	parent string // where the process goes back to
}

// limitCPU moves process pid (all its threads) into a new cgroup named name that may use
// frac of one CPU.
func limitCPU(name string, pid int, frac float64) (*cpuLimit, error) {
	if frac <= 0 || frac > 64 {
		return nil, fmt.Errorf("cpu limit %v out of range (0, 64]", frac)
	}
	quota := int(frac * cgroupPeriodUS)
	var l cpuLimit
	var files map[string]string
	switch {
	case fileHas("/sys/fs/cgroup/cgroup.controllers", "cpu"):
		// cgroup v2 at the root: the cpu controller must be enabled for the children.
		l.parent = "/sys/fs/cgroup"
		if !fileHas(filepath.Join(l.parent, "cgroup.subtree_control"), "cpu") {
			if err := os.WriteFile(filepath.Join(l.parent, "cgroup.subtree_control"), []byte("+cpu"), 0); err != nil {
				return nil, fmt.Errorf("cpu limit: enable the cpu controller: %w", err)
			}
		}
		files = map[string]string{"cpu.max": fmt.Sprintf("%d %d", quota, cgroupPeriodUS)}
	case fileExists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
		l.parent = "/sys/fs/cgroup/cpu"
		files = map[string]string{"cpu.cfs_period_us": strconv.Itoa(cgroupPeriodUS), "cpu.cfs_quota_us": strconv.Itoa(quota)}
	default:
		return nil, errors.New("cpu limit: no cgroup cpu controller (neither v2's cpu.max nor v1's cpu.cfs_quota_us)")
	}
	l.dir = filepath.Join(l.parent, name)
	if err := os.Mkdir(l.dir, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("cpu limit: %w", err)
	}
	for _, f := range []string{"cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.max"} {
		v, ok := files[f]
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(l.dir, f), []byte(v), 0); err != nil {
			l.remove()
			return nil, fmt.Errorf("cpu limit: %s: %w", f, err)
		}
	}
	if err := os.WriteFile(filepath.Join(l.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		l.remove()
		return nil, fmt.Errorf("cpu limit: move process %d: %w", pid, err)
	}
	return &l, nil
}

// remove moves the cgroup's processes back to its parent and removes it.
func (l *cpuLimit) remove() error {
	if data, err := os.ReadFile(filepath.Join(l.dir, "cgroup.procs")); err == nil {
		for _, pid := range strings.Fields(string(data)) {
			os.WriteFile(filepath.Join(l.parent, "cgroup.procs"), []byte(pid), 0)
		}
	}
	if err := os.Remove(l.dir); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("cpu limit: remove %s: %w", l.dir, err)
	}
	return nil
}

func fileHas(path, word string) bool {
	data, err := os.ReadFile(path)
	return err == nil && strings.Contains(" "+strings.Join(strings.Fields(string(data)), " ")+" ", " "+word+" ")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
