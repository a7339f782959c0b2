package examples

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulb/bench"
	"ulb/bench/netns"
	"ulb/router/control"
)

const (
	haSocket1 = "/run/ulb/ha-lb1.sock"
	haSocket2 = "/run/ulb/ha-lb2.sock"
)

// TestHAPair runs the Solaris ILB HA tutorial on two ulbd nodes: the VIP outside and the
// servers' gateway inside, one sync group. It kills the master, pulls one cable, brings
// it back, and splits the brain; after each step new connections to the VIP succeed and
// the VIP and the gateway sit on the same node.
func TestHAPair(t *testing.T) {
	b := upBench(t, "ha-half-nat/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Master_Down_Interval of the priority-100 backup with a 500ms interval, plus a
	// margin for a loaded machine.
	const limit = 3*500*time.Millisecond + 305*time.Millisecond + 2*time.Second

	// on waits until both instances are master on the node behind socket and not master
	// on the other.
	on := func(t *testing.T, master, other string) {
		t.Helper()
		for _, inst := range []string{"vip", "gw"} {
			waitState(t, master, inst, control.RouterMaster, limit)
		}
		for _, inst := range []string{"vip", "gw"} {
			if s := vrState(other, inst); s == control.RouterMaster {
				t.Errorf("%s is master on both nodes", inst)
			}
		}
	}
	conns := func(t *testing.T) {
		t.Helper()
		r := b.Check(ctx, bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 10,
			ExpectNames: []string{"s1", "s2"}, Timeout: 20 * time.Second})
		if !r.Pass {
			t.Fatalf("%s", r)
		}
	}
	on(t, haSocket1, haSocket2)
	conns(t)

	t.Run("pull one cable", func(t *testing.T) {
		// lb1 loses its inside link: its gateway instance fails, and the sync group takes
		// the VIP along to lb2.
		if out, err := b.Exec(ctx, "lb1", "ip", "link", "set", "inside", "down"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		on(t, haSocket2, haSocket1)
		for _, inst := range []string{"vip", "gw"} {
			if s := vrState(haSocket1, inst); s != control.RouterFault {
				t.Errorf("lb1's %s is %s with its inside cable pulled, want fault", inst, s)
			}
		}
		conns(t)
	})

	t.Run("plug it back", func(t *testing.T) {
		if out, err := b.Exec(ctx, "lb1", "ip", "link", "set", "inside", "up"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		on(t, haSocket1, haSocket2) // lb1 has the higher priority and preempts
		conns(t)
	})

	t.Run("split brain", func(t *testing.T) {
		// Both segments stop carrying VRRP: lb2 hears no advert and becomes master of
		// both instances too.
		for _, seg := range []string{"out", "in"} {
			for _, args := range [][]string{
				{"nft", "add", "table", "bridge", "ulbt"},
				{"nft", "add", "chain", "bridge", "ulbt", "forward", "{ type filter hook forward priority 0; }"},
				{"nft", "add", "rule", "bridge", "ulbt", "forward", "ip", "protocol", "112", "drop"},
			} {
				if out, err := execIn(ctx, b.Namespace(seg), args...); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
			}
		}
		waitState(t, haSocket2, "vip", control.RouterMaster, limit)
		for _, inst := range []string{"vip", "gw"} {
			if s := vrState(haSocket1, inst); s != control.RouterMaster {
				t.Fatalf("lb1's %s is %s during the split, want master", inst, s)
			}
		}
		// The adverts flow again: the two masters see each other and resolve at once.
		for _, seg := range []string{"out", "in"} {
			if out, err := execIn(ctx, b.Namespace(seg), "nft", "delete", "table", "bridge", "ulbt"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
		start := time.Now()
		waitState(t, haSocket2, "vip", control.RouterBackup, limit)
		t.Logf("split brain resolved %v after the adverts flowed again", time.Since(start))
		on(t, haSocket1, haSocket2)
		conns(t)
	})

	t.Run("kill the master", func(t *testing.T) {
		// A connection open through lb1 lives on through lb2: connection sync told lb2
		// about it (half-NAT, the same server), so its next segments are forwarded.
		sc := openSink(t, b.Namespace("client"), "198.51.100.100:9000")
		client := sc.c.LocalAddr().String()
		deadline := time.Now().Add(5 * time.Second)
		for !hasConn(t, haSocket2, client, "ESTABLISHED") {
			if time.Now().After(deadline) {
				t.Fatalf("lb2 never learned the flow of %s (ESTABLISHED) from lb1", client)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := syscall.Kill(benchPID(t, b, "lb1"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for _, inst := range []string{"vip", "gw"} {
			waitState(t, haSocket2, inst, control.RouterMaster, limit)
		}
		sc.send(t, 64<<10)
		if name := sc.finish(t); name != "s1" && name != "s2" {
			t.Errorf("the sink answered as %q", name)
		}
		var st control.StatsInfo
		ulbadm(t, haSocket2, &st, "show-stats")
		if st.Sync == nil || st.Sync.Adopted == 0 || st.Sync.Malformed != 0 || st.Sync.FromStranger != 0 {
			t.Fatalf("lb2's sync counters %+v", st.Sync)
		}
		// A message from an address that is no peer is dropped and counted.
		if err := netns.Do(b.Namespace("client"), func() error {
			c, err := net.Dial("udp", "198.51.100.12:8848")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("ULBS\x01\x00\x00\x00"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		before := st.Sync.FromStranger
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			ulbadm(t, haSocket2, &st, "show-stats")
			if st.Sync.FromStranger > before || time.Now().After(deadline) {
				break
			}
		}
		if st.Sync.FromStranger != before+1 || st.Sync.ReceivedMessages == 0 {
			t.Errorf("a message from the client: sync counters %+v", st.Sync)
		}
		if st.Drops["lb-no-flow"] != 0 {
			t.Errorf("lb2 dropped %d segments without a flow", st.Drops["lb-no-flow"])
		}
		conns(t)
	})

	t.Run("the killed master comes back and learns the open connections", func(t *testing.T) {
		// A connection opened through lb2 alone; lb1 starts, asks lb2 for its flows,
		// preempts, and forwards the connection on.
		sc := openSink(t, b.Namespace("client"), "198.51.100.100:9000")
		client := sc.c.LocalAddr().String()
		startIn(t, "ha-half-nat", b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", "lb1.toml")
		on(t, haSocket1, haSocket2)
		if !hasConn(t, haSocket1, client, "ESTABLISHED") {
			t.Errorf("lb1 took over without the flow of %s", client)
		}
		sc.send(t, 64<<10)
		if name := sc.finish(t); name != "s1" && name != "s2" {
			t.Errorf("the sink answered as %q", name)
		}
		var st control.StatsInfo
		ulbadm(t, haSocket2, &st, "show-stats")
		if st.Sync == nil || st.Sync.Requests == 0 {
			t.Errorf("lb2 got no request for its flows: %+v", st.Sync)
		}
		conns(t)
	})
}

// hasConn tells whether the node behind socket tracks a flow of client (ADDRESS:PORT) in
// the given state.
func hasConn(t *testing.T, socket, client, state string) bool {
	t.Helper()
	var conns control.ConnList
	ulbadm(t, socket, &conns, "show-conn", "-r", "sink")
	for _, c := range conns.Conns {
		if c.Client == client && c.State == state {
			return true
		}
	}
	return false
}

// execIn runs a command in a network namespace.
func execIn(ctx context.Context, ns string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
}

// TestHAPairSYNProxy: the HA pair with the SYN proxy on both nodes. A connection whose
// handshake lb1 answered with a cookie lives on through lb2 after lb1 is killed:
// connection sync told lb2 the flow and its sequence translation.
func TestHAPairSYNProxy(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"bench.toml", "lb1.toml", "lb2.toml"} {
		data, err := os.ReadFile(filepath.Join("ha-half-nat", f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		switch f {
		case "bench.toml":
			s = strings.Replace(s, "\nname = \"ha\"\n", "\nname = \"hac\"\n", 1)
		default:
			s += "\n[defence]\nsyn_cookies = \"always\"\n"
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	const limit = 3*500*time.Millisecond + 305*time.Millisecond + 2*time.Second
	for _, inst := range []string{"vip", "gw"} {
		waitState(t, haSocket1, inst, control.RouterMaster, limit)
	}
	// At once: a flow made before lb1's sync follows its new master state goes to lb2
	// when it does.
	var st control.StatsInfo
	sc := openSink(t, b.Namespace("client"), "198.51.100.100:9000")
	client := sc.c.LocalAddr().String()
	sc.send(t, 16<<10)
	deadline := time.Now().Add(5 * time.Second)
	for !hasConn(t, haSocket2, client, "ESTABLISHED") {
		if time.Now().After(deadline) {
			var s1, s2 control.StatsInfo
			ulbadm(t, haSocket1, &s1, "show-stats")
			ulbadm(t, haSocket2, &s2, "show-stats")
			var conns control.ConnList
			ulbadm(t, haSocket2, &conns, "show-conn")
			t.Fatalf("lb2 never learned the flow of %s (ESTABLISHED) from lb1: lb1 sync %+v proxy %+v; lb2 sync %+v; lb2 conns %+v",
				client, s1.Sync, s1.SYNProxy, s2.Sync, conns.Conns)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ulbadm(t, haSocket1, &st, "show-stats")
	if st.SYNProxy == nil || st.SYNProxy.Established == 0 {
		t.Fatalf("lb1 did not proxy the connection: %+v", st.SYNProxy)
	}
	if err := syscall.Kill(benchPID(t, b, "lb1"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []string{"vip", "gw"} {
		waitState(t, haSocket2, inst, control.RouterMaster, limit)
	}
	// The rest of the transfer crosses lb2, translated as lb1 did.
	sc.send(t, 256<<10)
	if name := sc.finish(t); name != "s1" && name != "s2" {
		t.Errorf("the sink answered as %q", name)
	}
	r := b.Check(context.Background(), bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 20,
		ExpectNames: []string{"s1", "s2"}, Timeout: 20 * time.Second})
	if !r.Pass {
		t.Errorf("new connections through lb2: %s", r)
	}
	ulbadm(t, haSocket2, &st, "show-stats")
	if st.SYNProxy == nil || st.SYNProxy.Established < 20 || st.Drops["lb-no-flow"] != 0 {
		t.Errorf("lb2: syn_proxy %+v, lb-no-flow %d", st.SYNProxy, st.Drops["lb-no-flow"])
	}
}
