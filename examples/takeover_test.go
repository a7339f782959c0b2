package examples

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ulb/bench"
	"ulb/bench/netns"
	"ulb/internal/testenv"
)

// takeoverBench writes a bench where a client reaches a server through a VRRP gateway
// pair: two ulbd nodes, or two kernel routers with keepalived, at the given advert
// interval. The client's gateway is 198.51.100.1 (VRID 1), the server's 203.0.113.1
// (VRID 2), one sync group.
func takeoverBench(t testing.TB, kind string, interval time.Duration) string {
	dir := t.TempDir()
	hosts := `
[[host]]
name = "client"
[[host.route]]
to = "default"
via = "198.51.100.1"

[[host]]
name = "server"
[[host.route]]
to = "default"
via = "203.0.113.1"
`
	var procs, members string
	for n := 1; n <= 2; n++ {
		prio := 200 / n
		if kind == "ulbd" {
			hosts += fmt.Sprintf("\n[[host]]\nname = \"r%d\"\nrouter = true\n", n)
			members += fmt.Sprintf(`{ port = "r%d:outside" }, `, n)
			procs += fmt.Sprintf("\n[[process]]\nname = \"r%d\"\nhost = \"r%d\"\nrun = [\"ulbd\", \"-c\", \"r%d.toml\"]\nready = { socket = \"/run/ulb/ulbt-to%d.sock\", timeout = \"20s\" }\n", n, n, n, n)
			conf := fmt.Sprintf(`control_socket = "/run/ulb/ulbt-to%d.sock"
[[port]]
name = "outside"
device = "outside"
address = ["198.51.100.1%d/24"]
[[port]]
name = "inside"
device = "inside"
address = ["203.0.113.1%d/24"]
[[vrrp]]
name = "out"
port = "outside"
vrid = 1
priority = %d
interval = "%s"
address = ["198.51.100.1"]
sync_group = "g"
[[vrrp]]
name = "in"
port = "inside"
vrid = 2
priority = %d
interval = "%s"
address = ["203.0.113.1"]
sync_group = "g"
`, n, n, n, prio, interval, prio, interval)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%d.toml", n)), []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		hosts += fmt.Sprintf("\n[[host]]\nname = \"r%d\"\nsysctls = { \"net.ipv4.ip_forward\" = 1 }\n", n)
		members += fmt.Sprintf(`{ port = "r%d:outside", address = ["198.51.100.1%d/24"] }, `, n, n)
		procs += fmt.Sprintf("\n[[process]]\nname = \"r%d\"\nhost = \"r%d\"\nrun = [\"keepalived\", \"-n\", \"-l\", \"-D\", \"--vrrp\", \"-f\", \"ka%d.conf\", \"-p\", \"%s/ka%d.pid\", \"-r\", \"%s/vr%d.pid\"]\nready = { delay = \"1s\" }\n", n, n, n, dir, n, dir, n)
		conf := fmt.Sprintf(`global_defs {
  router_id r%d
  vrrp_version 3
  vrrp_garp_master_delay 0
}
vrrp_sync_group g {
  group {
    out
    in
  }
}
vrrp_instance out {
  state BACKUP
  interface outside
  virtual_router_id 1
  priority %d
  advert_int %g
  virtual_ipaddress {
    198.51.100.1/24
  }
}
vrrp_instance in {
  state BACKUP
  interface inside
  virtual_router_id 2
  priority %d
  advert_int %g
  virtual_ipaddress {
    203.0.113.1/24
  }
}
`, n, prio, interval.Seconds(), prio, interval.Seconds())
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("ka%d.conf", n)), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inside := "{ port = \"r1:inside\" }, { port = \"r2:inside\" }, "
	if kind != "ulbd" {
		inside = "{ port = \"r1:inside\", address = [\"203.0.113.11/24\"] }, { port = \"r2:inside\", address = [\"203.0.113.12/24\"] }, "
	}
	spec := fmt.Sprintf(`name = "ulbt-to"
%s
[[segment]]
name = "out"
member = [ { port = "client:eth0", address = ["198.51.100.2/24"] }, %s]

[[segment]]
name = "in"
member = [ %s{ port = "server:eth0", address = ["203.0.113.200/24"] } ]
%s`, hosts, members, inside, procs)
	p := filepath.Join(dir, "bench.toml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// measureTakeover sends a UDP datagram every millisecond from the client to the server
// through the gateway pair, kills the master router, and returns the time from the kill
// to the first datagram the server gets afterwards.
func measureTakeover(b *testing.B, file string) time.Duration {
	spec, err := bench.Load(file)
	if err != nil {
		b.Fatal(err)
	}
	opts := bench.Options{BinDir: binDir}
	bench.Down(spec, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bn, err := bench.Up(ctx, spec, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer bn.Down()
	var srv net.PacketConn
	if err := netns.Do(bn.Namespace("server"), func() error {
		var err error
		srv, err = net.ListenPacket("udp", "203.0.113.200:9999")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	var cli net.Conn
	if err := netns.Do(bn.Namespace("client"), func() error {
		var err error
		cli, err = net.Dial("udp", "203.0.113.200:9999")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	var mu sync.Mutex
	var arrivals []time.Time
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := srv.ReadFrom(buf); err != nil {
				return
			}
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
	}()
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				cli.Write([]byte("x"))
			}
		}
	}()
	defer close(stop)
	// Wait until traffic flows steadily through the master.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(arrivals)
		mu.Unlock()
		if n > 500 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("no traffic through the gateway pair")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The master dies like a machine losing power: its processes end and its links go
	// down (a kernel router would otherwise go on forwarding without keepalived).
	// Links first, so that no goodbye (priority 0) gets out: keepalived's VRRP child
	// says goodbye when its parent dies.
	pid := benchPID(b, bn, "r1")
	killed := time.Now()
	for _, dev := range []string{"outside", "inside"} {
		execIn(context.Background(), bn.Namespace("r1"), "ip", "link", "set", dev, "down")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	killAll(bn.Namespace("r1"))
	for time.Since(killed) < 30*time.Second {
		// Datagrams already queued at the kill may still land: the outage ends with the
		// first datagram after a gap of more than 20ms.
		mu.Lock()
		i := sort.Search(len(arrivals), func(i int) bool { return arrivals[i].After(killed) })
		var first time.Time
		for ; i < len(arrivals); i++ {
			if i > 0 && arrivals[i].Sub(arrivals[i-1]) > 20*time.Millisecond {
				first = arrivals[i]
				break
			}
		}
		mu.Unlock()
		if !first.IsZero() {
			return first.Sub(killed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("traffic never came back after the master died")
	return 0
}

// killAll ends every process left in a namespace (keepalived forks its VRRP child).
func killAll(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// BenchmarkVRRPTakeover measures the time from the master's death to the first packet
// forwarded by the new master, for ulbd and for keepalived on kernel routers, at advert
// intervals of 1s and 100ms. Run: go test -run XXX -bench VRRPTakeover -benchtime 5x ./examples
func BenchmarkVRRPTakeover(b *testing.B) {
	testenv.NeedRoot(b)
	testenv.NeedTool(b, "keepalived", "ip")
	for _, kind := range []string{"ulbd", "keepalived"} {
		for _, interval := range []time.Duration{time.Second, 100 * time.Millisecond} {
			b.Run(fmt.Sprintf("%s/%v", kind, interval), func(b *testing.B) {
				var samples []time.Duration
				for b.Loop() {
					samples = append(samples, measureTakeover(b, takeoverBench(b, kind, interval)))
				}
				sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
				mdi := 3*interval + (256-100)*interval/256
				b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "median-ms")
				b.ReportMetric(float64(samples[len(samples)-1].Microseconds())/1000, "max-ms")
				b.ReportMetric(float64(mdi.Microseconds())/1000, "mdi-ms")
				b.Logf("%s at %v: takeover samples %v (Master_Down_Interval of the backup %v)", kind, interval, samples, mdi)
			})
		}
	}
}
