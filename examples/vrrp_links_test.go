package examples

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulb/bench"
	"ulb/config"
	"ulb/internal/testenv"
	"ulb/router/control"
)

const (
	vrxSocket1 = "/run/ulb/vrx1.sock"
	vrxSocket2 = "/run/ulb/vrx2.sock"
	// testdata/vrx: interval 200ms; the priority-100 backup's Master_Down_Interval is
	// 3 × 200ms + (256 − 100) × 200ms / 256 ≈ 722ms.
	vrxInterval   = 200 * time.Millisecond
	vrxMasterDown = 3*vrxInterval + (256-100)*vrxInterval/256
)

// vrxInfo returns show-router's view of an instance, failing the test when ulbd does
// not answer.
func vrxInfo(t *testing.T, socket, instance string) control.RouterInfo {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", socket, "-o", "json", "show-router", instance).Output()
	if err != nil {
		t.Fatalf("show-router %s on %s: %v", instance, socket, err)
	}
	var infos []control.RouterInfo
	if err := json.Unmarshal(out, &infos); err != nil || len(infos) != 1 {
		t.Fatalf("show-router %s on %s: %v (%s)", instance, socket, err, out)
	}
	return infos[0]
}

// holdState checks, for d, that the instances stay in state on the node behind socket.
func holdState(t *testing.T, socket string, instances []string, state string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for _, in := range instances {
			if s := vrState(socket, in); s != state {
				t.Fatalf("%s on %s: %q, want it to stay %s", in, socket, s, state)
			}
		}
	}
}

// TestVRRPAdvertPorts: two ulbd nodes on a LAN and a crossover cable, their VRRP
// instances advertising on both (advert_ports). (1) lb2 stops hearing lb1 on the LAN:
// it stays backup, because the crossover still carries lb1's adverts (no split brain);
// (2) the crossover is cut too: lb2 becomes master; (3) both links come back: one master
// again, lb1 (the higher priority).
func TestVRRPAdvertPorts(t *testing.T) {
	b := upBench(t, "testdata/vrx/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	insts := []string{"v4", "v6"}
	for _, in := range insts {
		waitState(t, vrxSocket1, in, control.RouterMaster, 5*time.Second)
		waitState(t, vrxSocket2, in, control.RouterBackup, 5*time.Second)
	}
	ping := func(to string) {
		t.Helper()
		if r := b.Check(ctx, bench.Check{Type: bench.CheckPing, From: "client", To: to, Count: 2}); !r.Pass {
			t.Fatalf("%s", r)
		}
	}
	ping("198.51.100.100")
	ping("2001:db8:1::100")
	// The backup hears the master on both links, and the master sends on both.
	time.Sleep(3 * vrxInterval)
	for _, in := range insts {
		bk, ms := vrxInfo(t, vrxSocket2, in), vrxInfo(t, vrxSocket1, in)
		if len(bk.Links) != 2 || bk.Links[0].Port != "lan" || bk.Links[1].Port != "xover" {
			t.Fatalf("%s on lb2: links %+v, want lan and xover", in, bk.Links)
		}
		for _, l := range bk.Links {
			if l.AdvertsReceived == 0 || time.Since(l.LastAdvert) > vrxMasterDown {
				t.Errorf("%s on lb2, link %s: %d adverts received, last %v: want lb1's, fresh", in, l.Port, l.AdvertsReceived, l.LastAdvert)
			}
		}
		// The adverts' source on the crossover is lb1's address there (IPv6: the
		// crossover port's link-local address).
		src, ok := "", len(ms.Links) == 2
		if ok {
			src = ms.Links[1].Source
			ok = ms.Links[1].AdvertsSent > 0 && (in == "v4" && src == "192.0.2.1" || in == "v6" && strings.HasPrefix(src, "fe80::"))
		}
		if !ok || in == "v6" && src == ms.Links[0].Source {
			t.Errorf("%s on lb1: links %+v, want adverts sent on the crossover from its own address there", in, ms.Links)
		}
	}

	// (1) lb2's switch port stops forwarding: it leaves the bridge. lb2's own link keeps
	// its carrier (as with a broken switch or inter-switch link, not a dead NIC: a dead
	// NIC drops the carrier and puts the instance in FAULT, which no crossover changes).
	lan := b.Namespace("lan")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("-n", lan, "link", "set", "p2", "nomaster")
	restored := false
	t.Cleanup(func() {
		if !restored {
			exec.Command("ip", "-n", lan, "link", "set", "p2", "master", "br0").Run()
		}
	})
	// Four Master_Down_Intervals: lb2 stays backup, lb1 master.
	holdState(t, vrxSocket2, insts, control.RouterBackup, 4*vrxMasterDown)
	for _, in := range insts {
		if s := vrState(vrxSocket2, in); s != control.RouterBackup {
			t.Fatalf("LAN cut: %s on lb2 is %q, want backup (the crossover carries lb1's adverts)", in, s)
		}
		if s := vrState(vrxSocket1, in); s != control.RouterMaster {
			t.Fatalf("LAN cut: %s on lb1 is %q, want master", in, s)
		}
		bk := vrxInfo(t, vrxSocket2, in)
		lanAge, xAge := time.Since(bk.Links[0].LastAdvert), time.Since(bk.Links[1].LastAdvert)
		t.Logf("LAN cut: %s on lb2: last advert on lan %v ago, on xover %v ago", in, lanAge.Round(time.Millisecond), xAge.Round(time.Millisecond))
		if lanAge < 3*vrxMasterDown || xAge > vrxMasterDown {
			t.Errorf("LAN cut: %s on lb2: last advert on lan %v ago, on xover %v ago: want lan silent, xover fresh", in, lanAge, xAge)
		}
	}
	ping("198.51.100.100") // the client, on lb1's side of the LAN, still reaches the VIP

	// (2) The crossover is cut too: no link carries lb1's adverts, lb2 takes over.
	run("-n", b.Namespace("lb1"), "link", "set", "xover", "down")
	for _, in := range insts {
		took := waitState(t, vrxSocket2, in, control.RouterMaster, vrxMasterDown+2*time.Second)
		t.Logf("both links cut: %s on lb2 master after %v (Master_Down_Interval %v)", in, took, vrxMasterDown)
	}

	// (3) Both links back: one master again, lb1, the higher priority.
	run("-n", lan, "link", "set", "p2", "master", "br0")
	restored = true
	run("-n", b.Namespace("lb1"), "link", "set", "xover", "up")
	for _, in := range insts {
		waitState(t, vrxSocket2, in, control.RouterBackup, 5*time.Second)
		if s := vrState(vrxSocket1, in); s != control.RouterMaster {
			t.Fatalf("links restored: %s on lb1 is %q, want master", in, s)
		}
	}
	holdState(t, vrxSocket2, insts, control.RouterBackup, 2*vrxMasterDown)
	for _, in := range insts {
		if s := vrState(vrxSocket1, in); s != control.RouterMaster {
			t.Fatalf("links restored: %s on lb1 is %q, want master", in, s)
		}
		bk := vrxInfo(t, vrxSocket2, in)
		for _, l := range bk.Links {
			if time.Since(l.LastAdvert) > vrxMasterDown {
				t.Errorf("links restored: %s on lb2, link %s: last advert %v ago, want fresh", in, l.Port, time.Since(l.LastAdvert))
			}
		}
	}
	ping("198.51.100.100")
	ping("2001:db8:1::100")
}

// TestVRRPAdvertPortsKeepalived: a keepalived peer on the LAN (a keepalived instance
// advertises through one interface only) pairs with a ulbd instance that also advertises
// on a crossover: ulbd's adverts on its own port are what they were, so keepalived
// stays backup under the higher-priority ulbd, takes over when it dies, and yields when
// it returns; keepalived's adverts reach ulbd on the LAN only.
func TestVRRPAdvertPortsKeepalived(t *testing.T) {
	testenv.NeedTool(t, "keepalived")
	b := upBench(t, "testdata/vrx/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// lb2 leaves: the pair is lb1 and keepalived.
	lb2 := benchPID(t, b, "lb2")
	syscall.Kill(lb2, syscall.SIGTERM)
	waitGone(t, lb2)
	waitState(t, vrxSocket1, "v4", control.RouterMaster, 5*time.Second)
	ka := startKeepalived(t, b.Namespace("ka"), keepalivedConf(t, 3, 150, false, "0.2"))
	defer ka.stop(syscall.SIGTERM)
	time.Sleep(5 * vrxInterval)
	if kaHolds(ctx, b, "198.51.100.100") {
		t.Fatal("keepalived took the VIP from a higher-priority ulbd")
	}
	// ulbd dies: keepalived takes over within its Master_Down_Interval (plus a margin).
	lb1 := benchPID(t, b, "lb1")
	syscall.Kill(lb1, syscall.SIGKILL)
	waitGone(t, lb1)
	took := waitKA(t, ctx, b, "198.51.100.100", true, 3*vrxInterval+time.Second)
	t.Logf("keepalived took over %v after ulbd was killed", took)
	// ulbd returns as backup, hears keepalived on the LAN (not on the crossover, where no
	// peer is), and preempts.
	startIn(t, "testdata/vrx", b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", "lb1.toml")
	waitState(t, vrxSocket1, "v4", control.RouterMaster, 10*time.Second)
	waitKA(t, ctx, b, "198.51.100.100", false, 3*vrxInterval+time.Second)
	inf := vrxInfo(t, vrxSocket1, "v4")
	if len(inf.Links) != 2 || inf.Links[0].LastFrom != "198.51.100.13" || inf.Links[1].AdvertsReceived != 0 {
		t.Errorf("lb1's links %+v: want keepalived's adverts on the LAN, none on the crossover", inf.Links)
	}
	holdState(t, vrxSocket1, []string{"v4"}, control.RouterMaster, 5*vrxInterval)
	if kaHolds(ctx, b, "198.51.100.100") {
		t.Error("keepalived holds the VIP again beside the master ulbd")
	}
}

// TestVRRPAdvertPortsVerbs: create-router -x makes, at run time, an instance that also
// advertises on the crossover: with the LAN cut between the nodes the backup stays
// backup; the saved run-time state keeps advert_ports.
func TestVRRPAdvertPortsVerbs(t *testing.T) {
	dir := copyFiles(t, "testdata/vrx", "bench.toml", "lb1.toml", "lb2.toml")
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	waitState(t, vrxSocket1, "v4", control.RouterMaster, 5*time.Second)
	create := func(socket, prio string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", socket, "create-router", "-V", "2", "-l", "lan",
			"-x", "xover", "-a", "198.51.100.101", "-p", prio, "-i", "200", "v4x").CombinedOutput()
		if err != nil {
			t.Fatalf("create-router on %s: %v\n%s", socket, err, out)
		}
	}
	create(vrxSocket1, "150")
	create(vrxSocket2, "100")
	waitState(t, vrxSocket1, "v4x", control.RouterMaster, 5*time.Second)
	waitState(t, vrxSocket2, "v4x", control.RouterBackup, 5*time.Second)
	if inf := vrxInfo(t, vrxSocket2, "v4x"); len(inf.Links) != 2 || inf.Links[1].Port != "xover" {
		t.Fatalf("created v4x's links %+v, want lan and xover", inf.Links)
	}
	if c, err := config.Load(filepath.Join(dir, "lb2.toml.state")); err != nil || c.VRRPInstance("v4x") == nil ||
		!reflect.DeepEqual(c.VRRPInstance("v4x").AdvertPorts, []string{"xover"}) {
		t.Errorf("the saved state after create-router -x: %v", err)
	}
	lan := b.Namespace("lan")
	if out, err := exec.Command("ip", "-n", lan, "link", "set", "p2", "nomaster").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	holdState(t, vrxSocket2, []string{"v4", "v4x"}, control.RouterBackup, 4*vrxMasterDown)
	exec.Command("ip", "-n", lan, "link", "set", "p2", "master", "br0").Run()
}
