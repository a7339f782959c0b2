package examples

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulb/bench"
	"ulb/internal/testenv"
	"ulb/router/control"
)

const (
	vrSocket1 = "/run/ulb/ulbt-vr1.sock"
	vrSocket2 = "/run/ulb/ulbt-vr2.sock"
	// The bench's advertisement interval and the Master_Down_Interval of the priority-100
	// backup: 3 × 500ms + (256 − 100) × 500ms / 256.
	vrInterval   = 500 * time.Millisecond
	vrMasterDown = 3*vrInterval + (256-100)*vrInterval/256
)

// vrState returns the state of an instance of the ulbd behind socket, "" when that ulbd
// does not answer.
func vrState(socket, instance string) string {
	out, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", socket, "-o", "json", "show-router", instance).Output()
	if err != nil {
		return ""
	}
	var infos []control.RouterInfo
	if err := json.Unmarshal(out, &infos); err != nil || len(infos) != 1 {
		return ""
	}
	return infos[0].State
}

// waitState polls until the instance is in state, and returns how long that took.
func waitState(t *testing.T, socket, instance, state string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if vrState(socket, instance) == state {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s on %s: not %s after %v (now %q)", instance, socket, state, limit, vrState(socket, instance))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// daemon is a process started in a namespace by a test, ended with it.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  string
}

func startIn(t *testing.T, dir, ns string, argv ...string) *daemon {
	t.Helper()
	log := filepath.Join(t.TempDir(), filepath.Base(argv[0])+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{}), log: log}
	go func() {
		cmd.Wait()
		f.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("log of %s:\n%s", argv[0], tail(string(b), 30))
		}
	})
	return d
}

func (d *daemon) stop(sig syscall.Signal) {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
	}
}

// benchPID returns the pid of a process the bench started.
func benchPID(t testing.TB, b *bench.Bench, name string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.StateDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Processes []struct {
			Name string `json:"name"`
			PID  int    `json:"pid"`
		} `json:"processes"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Processes {
		if p.Name == name {
			return p.PID
		}
	}
	t.Fatalf("no process %s in the bench", name)
	return 0
}

// waitGone waits until the process pid has exited (its control socket is free again).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for start := time.Now(); syscall.Kill(pid, 0) == nil; {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("process %d did not exit", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVRRPTwoNodes: two ulbd nodes share a virtual address. The higher priority is
// master and answers for it with the virtual MAC; killed, the other takes over within
// Master_Down_Interval; back, it preempts; stopped cleanly, its priority-0 advert hands
// over at once.
func TestVRRPTwoNodes(t *testing.T) {
	b := upBench(t, "testdata/vrrp/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, inst := range []string{"v4", "v6"} {
		waitState(t, vrSocket1, inst, control.RouterMaster, 5*time.Second)
		waitState(t, vrSocket2, inst, control.RouterBackup, 5*time.Second)
	}
	ping := func(to string) {
		t.Helper()
		if r := b.Check(ctx, bench.Check{Type: bench.CheckPing, From: "client", To: to, Count: 2}); !r.Pass {
			t.Fatalf("%s", r)
		}
	}
	ping("198.51.100.100")
	ping("2001:db8:1::100")
	out, _ := b.Exec(ctx, "client", "ip", "neigh", "show", "198.51.100.100")
	if !strings.Contains(string(out), "00:00:5e:00:01:01") {
		t.Errorf("the VIP does not resolve to the virtual MAC 00:00:5e:00:01:01: %s", out)
	}
	out, _ = b.Exec(ctx, "client", "ip", "-6", "neigh", "show", "2001:db8:1::100")
	if !strings.Contains(string(out), "00:00:5e:00:02:01") {
		t.Errorf("the IPv6 VIP does not resolve to the virtual MAC 00:00:5e:00:02:01: %s", out)
	}

	// lb2's transitions are published as events.
	watch := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", vrSocket2, "-o", "json", "watch", "-k", "vrrp", "-n", "1", "v4")
	var events strings.Builder
	watch.Stdout = &events
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // subscribed before the change

	// The master dies without a word: the backup waits Master_Down_Interval.
	if err := syscall.Kill(benchPID(t, b, "lb1"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitState(t, vrSocket2, "v4", control.RouterMaster, vrMasterDown+2*time.Second)
	t.Logf("takeover after SIGKILL of the master: %v (Master_Down_Interval %v)", took, vrMasterDown)
	if took < vrMasterDown-2*vrInterval {
		t.Errorf("takeover after %v, before Master_Down_Interval %v", took, vrMasterDown)
	}
	waitState(t, vrSocket2, "v6", control.RouterMaster, 2*time.Second)
	if err := watch.Wait(); err != nil {
		t.Errorf("ulbadm watch: %v", err)
	}
	var ev control.Event
	if err := json.Unmarshal([]byte(events.String()), &ev); err != nil || ev.Kind != control.EventVRRP ||
		ev.Name != "v4" || ev.From != control.RouterBackup || ev.To != control.RouterMaster {
		t.Errorf("watch printed %q (%v), want the v4 backup -> master event", events.String(), err)
	}
	ping("198.51.100.100")
	out, _ = b.Exec(ctx, "client", "ip", "neigh", "show", "198.51.100.100")
	if !strings.Contains(string(out), "00:00:5e:00:01:01") {
		t.Errorf("after the takeover the VIP resolves to %s, want the virtual MAC", out)
	}

	// The old master comes back with a higher priority and preempts.
	lb1 := startIn(t, "testdata/vrrp", b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", "lb1.toml")
	waitState(t, vrSocket1, "v4", control.RouterMaster, 10*time.Second)
	waitState(t, vrSocket2, "v4", control.RouterBackup, 5*time.Second)
	ping("198.51.100.100")

	// A clean stop sends priority 0: the backup takes over after Skew_Time, long before
	// Master_Down_Interval.
	start := time.Now()
	lb1.stop(syscall.SIGTERM)
	took = waitState(t, vrSocket2, "v4", control.RouterMaster, vrMasterDown)
	t.Logf("takeover after SIGTERM of the master: %v (from the signal)", time.Since(start))
	if took > vrMasterDown-vrInterval {
		t.Errorf("takeover after a priority-0 advert took %v, not much less than Master_Down_Interval %v", took, vrMasterDown)
	}
}

// keepalivedConf writes a keepalived configuration with one instance.
func keepalivedConf(t *testing.T, version, prio int, v6 bool, interval string) string {
	t.Helper()
	addr := "198.51.100.100/24"
	if v6 {
		addr = "2001:db8:1::100/64"
	}
	conf := fmt.Sprintf(`global_defs {
  router_id ka
  vrrp_version %d
  vrrp_garp_master_delay 0
}
vrrp_instance ka {
  state BACKUP
  interface eth0
  virtual_router_id 1
  priority %d
  advert_int %s
  virtual_ipaddress {
    %s
  }
}
`, version, prio, interval, addr)
	p := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startKeepalived(t *testing.T, ns, conf string) *daemon {
	t.Helper()
	dir := t.TempDir()
	return startIn(t, dir, ns, "keepalived", "-n", "-l", "-D", "--vrrp", "-f", conf,
		"-p", filepath.Join(dir, "ka.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
}

// kaHolds reports whether keepalived's namespace carries the VIP (keepalived adds it to
// its interface as master).
func kaHolds(ctx context.Context, b *bench.Bench, vip string) bool {
	out, _ := b.Exec(ctx, "ka", "ip", "addr", "show", "dev", "eth0")
	return strings.Contains(string(out), vip+"/")
}

func waitKA(t *testing.T, ctx context.Context, b *bench.Bench, vip string, holds bool, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for kaHolds(ctx, b, vip) != holds {
		if time.Since(start) > limit {
			t.Fatalf("keepalived: VIP held = %v after %v, want %v", !holds, limit, holds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestVRRPKeepalived pairs ulbd with keepalived (Debian's package) in VRRPv3 over IPv4
// and IPv6 and VRRPv2, in both directions, and has tshark decode ulbd's adverts.
func TestVRRPKeepalived(t *testing.T) {
	testenv.NeedTool(t, "keepalived", "tshark")
	b := upBench(t, "testdata/vrrp/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// lb2 leaves: the pair is lb1 and keepalived.
	syscall.Kill(benchPID(t, b, "lb2"), syscall.SIGTERM)
	waitState(t, vrSocket1, "v4", control.RouterMaster, 5*time.Second)
	lb1pid := benchPID(t, b, "lb1")
	syscall.Kill(lb1pid, syscall.SIGTERM)
	waitGone(t, benchPID(t, b, "lb2"))
	waitGone(t, lb1pid)

	cases := []struct {
		name     string
		version  int
		v6       bool
		instance string
		vip      string
		conf     string // lb1's configuration
		interval time.Duration
	}{
		{"v3 IPv4", 3, false, "v4", "198.51.100.100", "lb1.toml", 500 * time.Millisecond},
		{"v3 IPv6", 3, true, "v6", "2001:db8:1::100", "lb1.toml", 500 * time.Millisecond},
		{"v2 IPv4", 2, false, "v4", "198.51.100.100", "lb1-v2.toml", time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			adv := fmt.Sprint(tc.interval.Seconds())
			// Master_Down_Interval of a backup of priority p, plus a margin for a loaded machine.
			mdi := func(p int) time.Duration { return 3*tc.interval + time.Duration(256-p)*tc.interval/256 + time.Second }
			// ulbd master (200) over keepalived (150).
			ulbd := startIn(t, "testdata/vrrp", b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", tc.conf)
			waitState(t, vrSocket1, tc.instance, control.RouterMaster, 10*time.Second)
			ka := startKeepalived(t, b.Namespace("ka"), keepalivedConf(t, tc.version, 150, tc.v6, adv))
			time.Sleep(3 * tc.interval)
			if kaHolds(ctx, b, tc.vip) {
				t.Fatal("keepalived took the VIP from a higher-priority ulbd")
			}
			if !tc.v6 {
				checkAdvertsWithTshark(t, b, ctx, "198.51.100.11", tc.version)
			}
			// ulbd dies: keepalived takes over within Master_Down_Interval (150: 3×0.5s + 0.21s).
			ulbd.stop(syscall.SIGKILL)
			took := waitKA(t, ctx, b, tc.vip, true, mdi(150))
			t.Logf("keepalived took over %v after ulbd was killed", took)
			// ulbd returns and preempts.
			ulbd = startIn(t, "testdata/vrrp", b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", tc.conf)
			waitState(t, vrSocket1, tc.instance, control.RouterMaster, 10*time.Second)
			waitKA(t, ctx, b, tc.vip, false, mdi(150))
			// A clean stop of ulbd: priority 0, keepalived takes over at once.
			start := time.Now()
			ulbd.stop(syscall.SIGTERM)
			took = waitKA(t, ctx, b, tc.vip, true, mdi(150))
			t.Logf("keepalived took over %v after ulbd's priority-0 advert (signal to VIP: %v)", took, time.Since(start))
			if took > 3*tc.interval {
				t.Errorf("takeover after ulbd's priority 0 took %v", took)
			}
			ka.stop(syscall.SIGTERM)

			// The other way: keepalived master (250), ulbd backup.
			ka = startKeepalived(t, b.Namespace("ka"), keepalivedConf(t, tc.version, 250, tc.v6, adv))
			waitKA(t, ctx, b, tc.vip, true, 5*time.Second)
			ulbd = startIn(t, "testdata/vrrp", b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", tc.conf)
			waitState(t, vrSocket1, tc.instance, control.RouterBackup, 10*time.Second)
			time.Sleep(3 * tc.interval)
			if s := vrState(vrSocket1, tc.instance); s != control.RouterBackup {
				t.Fatalf("ulbd is %s under a higher-priority keepalived", s)
			}
			// keepalived stops cleanly (priority 0): ulbd takes over after Skew_Time.
			start = time.Now()
			ka.stop(syscall.SIGTERM)
			took = waitState(t, vrSocket1, tc.instance, control.RouterMaster, mdi(200))
			t.Logf("ulbd took over %v after keepalived stopped", time.Since(start))
			if took > 3*tc.interval {
				t.Errorf("ulbd took %v to take over from a keepalived that sent priority 0", took)
			}
			ulbd.stop(syscall.SIGTERM)
		})
	}
}

// checkAdvertsWithTshark captures VRRP on the client's link and checks that tshark
// decodes every advert from src as valid VRRP of the version, checksum verified.
func checkAdvertsWithTshark(t *testing.T, b *bench.Bench, ctx context.Context, src string, version int) {
	t.Helper()
	out, err := b.Exec(ctx, "client", "timeout", "15", "tshark", "-i", "eth0", "-f", "ip proto 112", "-a", "duration:3",
		"-o", "vrrp.v3_checksum_as_in_v2:FALSE", "-T", "fields", "-E", "separator=,",
		"-e", "ip.src", "-e", "vrrp.version", "-e", "vrrp.virt_rtr_id", "-e", "vrrp.prio", "-e", "vrrp.checksum.status")
	if err != nil && len(out) == 0 {
		t.Fatalf("tshark: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) != 5 || f[0] != src {
			continue
		}
		n++
		if f[1] != fmt.Sprint(version) || f[2] != "1" || f[3] != "200" || f[4] != "1" {
			t.Errorf("tshark decodes an advert of ulbd as version %s vrid %s priority %s checksum status %s (want %d, 1, 200, 1 = good)",
				f[1], f[2], f[3], f[4], version)
		}
	}
	if n == 0 {
		t.Errorf("tshark saw no advert from %s:\n%s", src, out)
	}
}

// TestVRRPTrackPing: lb1 pings a gateway (ka); when the gateway stops answering, lb1's
// priority drops below lb2's and lb2 preempts; when it answers again, lb1 takes back.
func TestVRRPTrackPing(t *testing.T) {
	b := upBench(t, "testdata/vrrp/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lb1pid := benchPID(t, b, "lb1")
	syscall.Kill(lb1pid, syscall.SIGTERM)
	waitGone(t, lb1pid)
	startIn(t, "testdata/vrrp", b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", "lb1-track.toml")
	waitState(t, vrSocket1, "v4", control.RouterMaster, 10*time.Second)
	waitState(t, vrSocket2, "v4", control.RouterBackup, 5*time.Second)

	if out, err := b.Exec(ctx, "ka", "ip", "link", "set", "eth0", "down"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	took := waitState(t, vrSocket2, "v4", control.RouterMaster, 10*time.Second)
	t.Logf("lb2 took over %v after the tracked gateway went silent", took)
	var infos []control.RouterInfo
	ulbadm(t, vrSocket1, &infos, "show-router", "v4")
	if len(infos) != 1 || infos[0].EffectivePriority != 50 || infos[0].State != control.RouterBackup {
		t.Errorf("lb1 with its gateway silent: %+v, want backup at priority 50", infos)
	}

	if out, err := b.Exec(ctx, "ka", "ip", "link", "set", "eth0", "up"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitState(t, vrSocket1, "v4", control.RouterMaster, 10*time.Second)
	waitState(t, vrSocket2, "v4", control.RouterBackup, 5*time.Second)
}
