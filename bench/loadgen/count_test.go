package loadgen

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fakeStats is a /sys/class/net with one device whose counters the test sets.
func fakeStats(t *testing.T, dev string) (root string, set func(rx, drop uint64)) {
	t.Helper()
	root = t.TempDir()
	dir := filepath.Join(root, dev, "statistics")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	set = func(rx, drop uint64) {
		for name, v := range map[string]uint64{"rx_packets": rx, "rx_dropped": drop} {
			tmp := filepath.Join(dir, name+".tmp")
			if err := os.WriteFile(tmp, []byte(strconv.FormatUint(v, 10)+"\n"), 0o644); err != nil {
				t.Error(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
				t.Error(err)
			}
		}
	}
	return root, set
}

func TestCountDeltas(t *testing.T) {
	root, set := fakeStats(t, "eth0")
	set(1000, 7)
	var readyCalled atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan CountReport, 1)
	errc := make(chan error, 1)
	go func() {
		rep, err := Count(ctx, CountConfig{Device: "eth0", Duration: 10 * time.Second, Poll: 5 * time.Millisecond, SysClassNet: root},
			func() { readyCalled.Store(true) })
		done <- rep
		errc <- err
	}()
	for !readyCalled.Load() {
		time.Sleep(time.Millisecond)
	}
	// Traffic arrives in steps over about 100 ms.
	for i := uint64(1); i <= 10; i++ {
		set(1000+i*500, 7+i)
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond)
	cancel()
	rep := <-done
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if rep.Packets != 5000 || rep.Dropped != 10 {
		t.Errorf("packets %d dropped %d, want 5000 and 10", rep.Packets, rep.Dropped)
	}
	if rep.ActiveNS <= 0 || rep.ElapsedNS < rep.ActiveNS || rep.PPS <= 0 {
		t.Errorf("times: active %v elapsed %v pps %v", time.Duration(rep.ActiveNS), time.Duration(rep.ElapsedNS), rep.PPS)
	}
}

func TestCountEndsAfterDuration(t *testing.T) {
	root, set := fakeStats(t, "eth0")
	set(5, 0)
	start := time.Now()
	rep, err := Count(context.Background(), CountConfig{Device: "eth0", Duration: 50 * time.Millisecond, SysClassNet: root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second || rep.Packets != 0 || rep.ActiveNS != 0 || rep.PPS != 0 {
		t.Errorf("idle count: %+v after %v", rep, time.Since(start))
	}
}

func TestCountRejects(t *testing.T) {
	root, set := fakeStats(t, "eth0")
	set(1, 1)
	for _, cfg := range []CountConfig{
		{Device: "eth0", SysClassNet: root},                            // no duration
		{Device: "eth0", Duration: 2 * MaxDuration, SysClassNet: root}, // too long
		{Device: "../eth0", Duration: time.Second, SysClassNet: root},  // a path
		{Device: "", Duration: time.Second, SysClassNet: root},         // no device
		{Device: "missing0", Duration: time.Second, SysClassNet: root}, // no such device
	} {
		if _, err := Count(context.Background(), cfg, nil); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "eth0", "statistics", "rx_packets"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Count(context.Background(), CountConfig{Device: "eth0", Duration: time.Second, SysClassNet: root}, nil); err == nil {
		t.Error("a garbage counter gave no error")
	}
}
