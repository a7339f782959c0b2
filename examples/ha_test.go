package examples

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"ulb/bench"
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
		if err := syscall.Kill(benchPID(t, b, "lb1"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for _, inst := range []string{"vip", "gw"} {
			waitState(t, haSocket2, inst, control.RouterMaster, limit)
		}
		conns(t)
	})
}

// execIn runs a command in a network namespace.
func execIn(ctx context.Context, ns string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
}
