package router

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ulb/internal/testenv"
	"ulb/router/port/porttest"
)

// threadsWithNice lists this process's threads of niceness nice, with their allowed CPUs.
func threadsWithNice(t *testing.T, nice int) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue // the thread ended
		}
		// Fields after the command's closing parenthesis; nice is the 19th field of stat.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if n, _ := strconv.Atoi(f[16]); n != nice {
			continue
		}
		status, _ := os.ReadFile(filepath.Join(d, "status"))
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				out = append(out, strings.TrimSpace(v))
			}
		}
	}
	return out
}

// The port loops run at the configured niceness on the configured CPUs, and a CPU the
// process may not use stops Run with the port's name.
func TestThreadTuning(t *testing.T) {
	testenv.NeedRoot(t) // a negative niceness needs CAP_SYS_NICE
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1500)
	defer hl.Close()
	defer hr.Close()
	r, err := New(Config{Ports: []PortConfig{{Name: "left", Port: rl}, {Name: "right", Port: rr}},
		ThreadNice: -7, ThreadCPUs: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// A loop sets its niceness and then its CPUs: wait for both on both threads.
		if got = threadsWithNice(t, -7); len(got) == 2 && got[0] == "0" && got[1] == "0" {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(got) != 2 || got[0] != "0" || got[1] != "0" {
		t.Errorf("threads at nice -7 on CPUs %v, want two on CPU 0", got)
	}
	// The loops' threads ended with them.
	left := threadsWithNice(t, -7)
	for deadline := time.Now().Add(5 * time.Second); len(left) != 0 && time.Now().Before(deadline); left = threadsWithNice(t, -7) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(left) != 0 {
		t.Errorf("%d tuned threads left after Run", len(left))
	}

	rl, hl2 := porttest.NewPair(macRouterL, macHostL, 1500)
	defer hl2.Close()
	r, err = New(Config{Ports: []PortConfig{{Name: "left", Port: rl}}, ThreadCPUs: []int{1023}})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "port left: cpu 1023") {
		t.Errorf("Run on CPU 1023: %v", err)
	}
}
