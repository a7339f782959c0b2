package bench

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ulb/internal/testenv"
)

// TestLimitCPU: a process moved into a CPU-limited cgroup is listed there and uses no
// more than its quota; remove puts it back and deletes the cgroup.
func TestLimitCPU(t *testing.T) {
	testenv.NeedRoot(t)
	// A busy loop, killed at the end of the test.
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	l, err := limitCPU("ulbbench-test-limit", cmd.Process.Pid, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	procs, err := os.ReadFile(l.dir + "/cgroup.procs")
	if err != nil || !slices.Contains(strings.Fields(string(procs)), strconv.Itoa(cmd.Process.Pid)) {
		l.remove()
		t.Fatalf("cgroup.procs %q, %v: the process is not in the cgroup", procs, err)
	}
	before := cpuTicks(t, cmd.Process.Pid)
	time.Sleep(time.Second)
	used := float64(cpuTicks(t, cmd.Process.Pid)-before) / 100 // USER_HZ
	if err := l.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.dir); !os.IsNotExist(err) {
		t.Fatalf("cgroup %s still there: %v", l.dir, err)
	}
	// 0.1 of a CPU over a second, with room for the scheduler's granularity.
	if used > 0.3 {
		t.Fatalf("the limited loop used %.2f s of CPU in 1 s, limit 0.1", used)
	}
	if _, err := limitCPU("ulbbench-test-bad", cmd.Process.Pid, 0); err == nil {
		t.Fatal("a limit of 0 was accepted")
	}
}

// cpuTicks returns utime+stime of a process from /proc/PID/stat, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var ticks int
	for _, s := range f[11:13] { // fields 14 and 15: utime, stime
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		ticks += n
	}
	return ticks
}
