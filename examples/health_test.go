package examples

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulb/router/control"
)

const hcSocket = "/run/ulb/ulbt-hc.sock"

// healthBench writes the health-check bench: a two-arm half-NAT ulbd in front of s1 and
// s2 (name servers on 80 and 53, an agent on 7777 reading its load from a file) and a
// sorry server.
func healthBench(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "check.sh")
	// ILB's convention: print an RTT in microseconds, or -1.
	os.WriteFile(script, []byte("#!/bin/sh\n# args: VIP SERVER PROTO PORT TIMEOUT\nif [ -e \""+dir+"/$2.ok\" ]; then echo 1234; else echo -1; fi\n"), 0o755)
	for _, s := range []string{"203.0.113.201", "203.0.113.202"} {
		os.WriteFile(filepath.Join(dir, s+".ok"), nil, 0o644)
	}
	files := map[string]string{
		"bench.toml": `name = "ulbt-hc"
[[host]]
name = "client"
[[host.route]]
to = "default"
via = "198.51.100.10"
[[host.route]]
to = "default"
via = "2001:db8:1::10"
[[host]]
name = "lb1"
router = true
[[host]]
name = "s1"
[[host.route]]
to = "default"
via = "203.0.113.10"
[[host.route]]
to = "default"
via = "2001:db8:2::10"
[[host]]
name = "s2"
[[host.route]]
to = "default"
via = "203.0.113.10"
[[host.route]]
to = "default"
via = "2001:db8:2::10"
[[host]]
name = "sorry"
[[host.route]]
to = "default"
via = "203.0.113.10"
[[link]]
a = "client:eth0"
b = "lb1:outside"
a_address = ["198.51.100.2/24", "2001:db8:1::2/64"]
[[segment]]
name = "lan"
member = [
  { port = "lb1:inside" },
  { port = "s1:eth0", address = ["203.0.113.201/24", "2001:db8:2::201/64"] },
  { port = "s2:eth0", address = ["203.0.113.202/24", "2001:db8:2::202/64"] },
  { port = "sorry:eth0", address = ["203.0.113.250/24"] },
]
[[process]]
name = "ulbd"
host = "lb1"
run = ["ulbd", "-c", "lb1.toml"]
ready = { socket = "` + hcSocket + `", timeout = "20s" }
[[process]]
name = "s1web"
host = "s1"
serve = { tcp = [":80"], udp = [":53"], http = [":8080"], sink = [":9000"] }
[[process]]
name = "s2web"
host = "s2"
serve = { tcp = [":80"], udp = [":53"], http = [":8080"], sink = [":9000"] }
[[process]]
name = "s1agent"
host = "s1"
run = ["ulbagent", "-listen", ":7777", "-load-file", "s1.load"]
ready = { delay = "200ms" }
[[process]]
name = "s2agent"
host = "s2"
run = ["ulbagent", "-listen", ":7777", "-load-file", "s2.load"]
ready = { delay = "200ms" }
[[process]]
name = "sorryweb"
host = "sorry"
serve = { tcp = [":80"] }
`,
		"s1.load": "20\n",
		"s2.load": "80\n",
		"lb1.toml": `control_socket = "` + hcSocket + `"
[[port]]
name = "outside"
device = "outside"
address = ["198.51.100.10/24", "2001:db8:1::10/64"]
[[port]]
name = "inside"
device = "inside"
address = ["203.0.113.10/24", "2001:db8:2::10/64"]

# A VRRP instance that follows the web group's health (FAULT when every server is down).
[[vrrp]]
name = "vip"
port = "outside"
vrid = 9
interval = "500ms"
address = ["198.51.100.99"]
track_group = ["web"]

[[healthcheck]]
name = "tcp80"
test = "tcp"
interval = "500ms"
timeout = "300ms"
count = 2
rise = 1

[[healthcheck]]
name = "tcp81"
test = "tcp"
port = 81
interval = "500ms"
timeout = "300ms"
count = 2
rise = 1

[[healthcheck]]
name = "dns"
test = "udp"
send = "ping"
interval = "500ms"
timeout = "300ms"
count = 2
rise = 1

[[healthcheck]]
name = "agent"
test = "agent"
interval = "300ms"
timeout = "200ms"
count = 2
rise = 1

[[healthcheck]]
name = "ping"
test = "ping"
interval = "500ms"
timeout = "300ms"
count = 2
rise = 1

[[healthcheck]]
name = "script"
test = "script"
command = ["` + script + `"]
interval = "1s"
timeout = "800ms"
count = 2
rise = 1

[[healthcheck]]
name = "http"
test = "http"
port = 8080
path = "/"
expect_body = "^s[12]"
interval = "500ms"
timeout = "400ms"
count = 2
rise = 1

[[healthcheck]]
name = "http503"
test = "http"
port = 8080
path = "/status/503"
interval = "500ms"
timeout = "400ms"
count = 2
rise = 1

[[servergroup]]
name = "httpok"
healthcheck = "http"
server = ["203.0.113.201:8080", "203.0.113.202:8080"]

[[servergroup]]
name = "http503"
healthcheck = "http503"
server = ["203.0.113.201:8080", "203.0.113.202:8080"]

[[rule]]
name = "httpok"
vip = "198.51.100.100"
port = "8080"
servergroup = "httpok"

# The same GETs over IPv6: the kernel's connections leave the host port masqueraded.
[[servergroup]]
name = "httpok6"
healthcheck = "http"
server = ["[2001:db8:2::201]:8080", "[2001:db8:2::202]:8080"]

[[rule]]
name = "httpok6"
vip = "2001:db8:1::100"
port = "8080"
servergroup = "httpok6"

[[rule]]
name = "http503"
vip = "198.51.100.100"
port = "8081"
servergroup = "http503"

[[servergroup]]
name = "web"
healthcheck = "tcp80"
server = ["203.0.113.201:80", "203.0.113.202:80"]

[[servergroup]]
name = "closed"
healthcheck = "tcp81"
server = ["203.0.113.201:80", "203.0.113.202:80"]

[[servergroup]]
name = "dns"
healthcheck = "dns"
server = ["203.0.113.201:53", "203.0.113.202:53"]

[[servergroup]]
name = "loaded"
healthcheck = "agent"
server = ["203.0.113.201:80", "203.0.113.202:80"]

[[servergroup]]
name = "pinged"
healthcheck = "ping"
server = ["203.0.113.201:80", "203.0.113.202:80"]

[[servergroup]]
name = "scripted"
healthcheck = "script"
server = ["203.0.113.201:80", "203.0.113.202:80"]

[[rule]]
name = "web"
vip = "198.51.100.100"
port = "80"
servergroup = "web"

[[rule]]
name = "sorry"
vip = "198.51.100.100"
port = "81"
servergroup = "closed"
sorry_server = "203.0.113.250:80"

[[rule]]
name = "dns"
vip = "198.51.100.100"
port = "53"
protocol = "udp"
servergroup = "dns"

[[rule]]
name = "loaded"
vip = "198.51.100.100"
port = "82"
algorithm = "weighted-roundrobin"
servergroup = "loaded"

[[rule]]
name = "pinged"
vip = "198.51.100.100"
port = "83"
servergroup = "pinged"

[[rule]]
name = "scripted"
vip = "198.51.100.100"
port = "84"
servergroup = "scripted"

[[servergroup]]
name = "scripted-sink"
healthcheck = "script"
server = ["203.0.113.201:9000", "203.0.113.202:9000"]

[[rule]]
name = "end-flows"
vip = "198.51.100.100"
port = "9000"
servergroup = "scripted-sink"

[[rule]]
name = "keep-flows"
vip = "198.51.100.100"
port = "9001"
servergroup = "scripted-sink"
keep_flows_on_down = true
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hcState returns the health of a server of a group as show-hc-result says it.
func hcState(t *testing.T, group, server string) string {
	t.Helper()
	var rs []control.HCResult
	ulbadm(t, hcSocket, &rs, "show-hc-result", "-g", group, server)
	if len(rs) != 1 {
		t.Fatalf("show-hc-result -g %s %s: %+v", group, server, rs)
	}
	return rs[0].State
}

// waitHealth waits until a server's health is want and returns how long it took.
func waitHealth(t *testing.T, group, server, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if s := hcState(t, group, server); s == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s in %s is %s after %v, want %s", server, group, hcState(t, group, server), limit, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHealthChecks runs every check type against live servers, stopped ones and ones
// that come back, and checks the effects: traffic moves off a dead server and back,
// agent loads shift the split, a rule without servers sends to its sorry server, and
// all servers down gets the client a RST at once.
func TestHealthChecks(t *testing.T) {
	dir := healthBench(t)
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	client := b.Namespace("client")
	c2 := netip.MustParseAddr("198.51.100.2")
	// interval × count + one interval, plus a margin for a loaded machine.
	const detect = 500*time.Millisecond*2 + 500*time.Millisecond + 2*time.Second

	waitState(t, hcSocket, "vip", control.RouterMaster, 10*time.Second)
	for _, g := range []string{"web", "dns", "pinged", "scripted"} {
		for _, s := range []string{"203.0.113.201", "203.0.113.202"} {
			waitHealth(t, g, s, control.HealthUp, 10*time.Second)
		}
	}
	// What the balancer shows follows the checks: up from their first success on.
	var shown []control.ServerInfo
	ulbadm(t, hcSocket, &shown, "show-server")
	for _, s := range shown {
		if s.Group == "web" && s.Health != control.HealthUp {
			t.Errorf("show-server: %s of web is %q while its checks pass, want up", s.Address, s.Health)
		}
	}

	var s1srv *daemon // s1's name server once restarted: it outlives its subtest
	top := t
	t.Run("tcp: a dead server stops getting flows and comes back", func(t *testing.T) {
		if err := syscall.Kill(benchPID(t, b, "s1web"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		took := waitHealth(t, "web", "203.0.113.201", control.HealthDown, detect)
		t.Logf("tcp check: s1 down after %v", took)
		got := spread(t, client, c2, "198.51.100.100:80", 10)
		if got["s2"] != 10 {
			t.Errorf("with s1 down: %v, want every connection on s2", got)
		}
		// The udp check fails too (port unreachable), the ping check does not.
		waitHealth(t, "dns", "203.0.113.201", control.HealthDown, detect)
		if s := hcState(t, "pinged", "203.0.113.201"); s != control.HealthUp {
			t.Errorf("ping check says %s for a server whose host is alive", s)
		}
		s1srv = startIn(top, dir, b.Namespace("s1"), filepath.Join(binDir, "ulbbench"), "serve", "-name", "s1", "-tcp", ":80", "-udp", ":53", "-http", ":8080", "-sink", ":9000")
		took = waitHealth(t, "web", "203.0.113.201", control.HealthUp, detect)
		t.Logf("tcp check: s1 up again after %v", took)
		waitHealth(t, "dns", "203.0.113.201", control.HealthUp, detect)
		got = spread(t, client, c2, "198.51.100.100:80", 10)
		if got["s1"] == 0 {
			t.Errorf("s1 is back but gets no flows: %v", got)
		}
	})

	t.Run("http through the host port", func(t *testing.T) {
		// The kernel's TCP stack behind the host port runs the GETs.
		for _, s := range []string{"203.0.113.201", "203.0.113.202"} {
			waitHealth(t, "httpok", s, control.HealthUp, detect)
			waitHealth(t, "http503", s, control.HealthDown, detect)
		}
		for _, s := range []string{"2001:db8:2::201", "2001:db8:2::202"} {
			waitHealth(t, "httpok6", s, control.HealthUp, detect)
		}
		var rs []control.HCResult
		ulbadm(t, hcSocket, &rs, "show-hc-result", "-g", "http503", "203.0.113.201")
		if len(rs) != 1 || !strings.Contains(rs[0].LastResult, "503") {
			t.Errorf("the 503 check's last result: %+v", rs)
		}
	})

	t.Run("a login to the router's address reaches its kernel", func(t *testing.T) {
		// A service of the router's own host (think sshd) listens in ulbd's namespace; the
		// host port carries connections to the router's address to it.
		startIn(t, dir, b.Namespace("lb1"), filepath.Join(binDir, "ulbbench"), "serve", "-name", "lb1-host", "-tcp", ":2222")
		for _, to := range []string{"198.51.100.10:2222", "[2001:db8:1::10]:2222"} {
			deadline := time.Now().Add(5 * time.Second)
			for {
				name, err := askName(client, netip.Addr{}, to)
				if err == nil && name == "lb1-host" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("connecting to the router's address %s: %q, %v", to, name, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	t.Run("the router's kernel reaches the servers over IPv4 and IPv6", func(t *testing.T) {
		// Its connections leave the host port masqueraded behind the router's address.
		for _, to := range []string{"203.0.113.201:80", "[2001:db8:2::201]:80"} {
			out, err := b.Exec(context.Background(), "lb1", "ulbbench", "client", "tcp", "-to", to, "-timeout", "3s")
			if err != nil || !strings.Contains(string(out), "s1") {
				t.Errorf("from lb1's kernel to %s: %v: %s", to, err, out)
			}
		}
	})

	t.Run("agent loads 20 and 80 shift the split", func(t *testing.T) {
		for _, s := range []string{"203.0.113.201", "203.0.113.202"} {
			waitHealth(t, "loaded", s, control.HealthUp, 10*time.Second)
		}
		got := spread(t, client, c2, "198.51.100.100:82", 50)
		if !within(got["s1"], 40, 3) || !within(got["s2"], 10, 3) {
			t.Errorf("loads 20 (s1) and 80 (s2): %v, want about 40:10", got)
		}
		// Swap the loads: the split follows.
		os.WriteFile(filepath.Join(dir, "s1.load"), []byte("80\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "s2.load"), []byte("20\n"), 0o644)
		time.Sleep(time.Second)
		got = spread(t, client, c2, "198.51.100.100:82", 50)
		if !within(got["s1"], 10, 3) || !within(got["s2"], 40, 3) {
			t.Errorf("loads 80 (s1) and 20 (s2): %v, want about 10:40", got)
		}
	})

	t.Run("sorry server", func(t *testing.T) {
		// Nothing listens on port 81: the group is down, the sorry server answers.
		waitHealth(t, "closed", "203.0.113.201", control.HealthDown, detect)
		waitHealth(t, "closed", "203.0.113.202", control.HealthDown, detect)
		if name, err := askName(client, c2, "198.51.100.100:81"); err != nil || name != "sorry" {
			t.Errorf("with every server down: %q, %v, want the sorry server", name, err)
		}
	})

	t.Run("script", func(t *testing.T) {
		for _, s := range []string{"203.0.113.201", "203.0.113.202"} {
			waitHealth(t, "scripted", s, control.HealthUp, 10*time.Second)
			waitHealth(t, "scripted-sink", s, control.HealthUp, 10*time.Second)
		}
		// Long-lived flows to s2 (round robin: the second connection of each rule).
		var ending, kept []*sinkConn
		for i := 0; i < 2; i++ {
			ending = append(ending, openSink(t, client, "198.51.100.100:9000"))
			kept = append(kept, openSink(t, client, "198.51.100.100:9001"))
		}
		os.Remove(filepath.Join(dir, "203.0.113.202.ok"))
		waitHealth(t, "scripted", "203.0.113.202", control.HealthDown, detect)
		waitHealth(t, "scripted-sink", "203.0.113.202", control.HealthDown, detect)
		time.Sleep(1500 * time.Millisecond) // the drain sweep runs every second
		// A flow of a server that went down is ended: the client's next segment gets a
		// RST; with keep_flows_on_down the flows go on.
		reset := 0
		for _, s := range ending {
			s.c.SetDeadline(time.Now().Add(3 * time.Second))
			s.c.Write(make([]byte, 1000))
			if _, err := s.c.Read(make([]byte, 1)); err != nil && strings.Contains(err.Error(), "reset") {
				reset++
			}
			s.c.Close()
		}
		if reset != 1 {
			t.Errorf("%d of the 2 flows (one on the down server) were reset, want 1", reset)
		}
		names := map[string]int{}
		for _, s := range kept {
			s.send(t, 1000)
			names[s.finish(t)]++
		}
		if names["s1"] != 1 || names["s2"] != 1 {
			t.Errorf("keep_flows_on_down: the flows ended on %v, want one on each server", names)
		}
		got := spread(t, client, c2, "198.51.100.100:84", 6)
		if got["s1"] != 6 {
			t.Errorf("the script says s2 is down: %v, want every connection on s1", got)
		}
		os.WriteFile(filepath.Join(dir, "203.0.113.202.ok"), nil, 0o644)
		waitHealth(t, "scripted", "203.0.113.202", control.HealthUp, detect)
	})

	t.Run("ping: a host off the network", func(t *testing.T) {
		if out, err := b.Exec(context.Background(), "s2", "ip", "link", "set", "eth0", "down"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		took := waitHealth(t, "pinged", "203.0.113.202", control.HealthDown, detect)
		t.Logf("ping check: s2 down after %v", took)
		if out, err := b.Exec(context.Background(), "s2", "ip", "link", "set", "eth0", "up"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		b.Exec(context.Background(), "s2", "ip", "route", "replace", "default", "via", "203.0.113.10")
		waitHealth(t, "pinged", "203.0.113.202", control.HealthUp, detect+5*time.Second)
	})

	t.Run("all servers down: a RST at once", func(t *testing.T) {
		syscall.Kill(benchPID(t, b, "s2web"), syscall.SIGKILL)
		if s1srv != nil {
			s1srv.stop(syscall.SIGKILL)
		}
		waitHealth(t, "web", "203.0.113.201", control.HealthDown, detect)
		waitHealth(t, "web", "203.0.113.202", control.HealthDown, detect)
		start := time.Now()
		_, err := askName(client, c2, "198.51.100.100:80")
		took := time.Since(start)
		t.Logf("connecting with every server down: %v after %v", err, took)
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("with every server down the client got %v, want connection refused (RST)", err)
		}
		// VRRP tracking the group's health gives the address up.
		waitState(t, hcSocket, "vip", control.RouterFault, 5*time.Second)
	})
}
