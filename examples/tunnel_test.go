package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/router/control"
)

// tunSocket is the tunnel test's control socket, apart from the example's own (which
// TestExampleBenches uses under the bench name "tunl").
const tunSocket = "/run/ulb/tunt-lb1.sock"

// TestTunnelTopology runs examples/tunnel (Loadbalancer.org's TUN mode across a routed
// hop) under its own bench name, "tunt": every check of the scenario (both servers
// answer on both VIPs through IP-in-IP, the server sees the client, uploads complete as
// the client learns the tunnel's MTU, a dead server is taken out by its health check)
// and what ulbd shows of it: the rules' topology, tunnel flows, counters of one
// direction only (the servers answer the client directly), the relayed ICMP errors.
func TestTunnelTopology(t *testing.T) {
	dir := copyFiles(t, "tunnel", "bench.toml", "lb1.toml")
	for _, f := range []string{"bench.toml", "lb1.toml"} {
		p := filepath.Join(dir, f)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(data), "/run/ulb/tunl-lb1.sock", tunSocket)
		if f == "bench.toml" {
			if !strings.Contains(s, "\nname = \"tunl\"\n") {
				t.Fatal("examples/tunnel/bench.toml is not named tunl")
			}
			s = strings.Replace(s, "\nname = \"tunl\"\n", "\nname = \"tunt\"\n", 1)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := upBench(t, filepath.Join(dir, "bench.toml"))

	var rules []control.RuleInfo
	ulbadm(t, tunSocket, &rules, "show-rule")
	for _, r := range rules {
		if r.Topology != "tunnel" {
			t.Errorf("show-rule: rule %s has topology %q, want tunnel", r.Name, r.Topology)
		}
	}
	if len(rules) != 5 {
		t.Errorf("show-rule: %d rules, want 5", len(rules))
	}
	out, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", tunSocket, "show-rule", "-f", "web").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tunnel") || !strings.Contains(string(out), "TUNNEL-SOURCE:") {
		t.Errorf("show-rule -f web: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, r := range b.Run(ctx) {
		t.Log(r)
		if !r.Pass {
			t.Errorf("%s", r)
		}
	}

	// The servers' answers bypass ulbd: the rules saw the clients' packets only.
	var s control.StatsInfo
	ulbadm(t, tunSocket, &s, "show-stats", "-r", "web")
	if len(s.Rules) != 1 || s.Rules[0].PacketsIn == 0 || s.Rules[0].PacketsOut != 0 {
		t.Errorf("tunnel rule counters %+v: want packets in, none out", s.Rules)
	}
	// The uploads went through path MTU discovery: lb1's own fragmentation-needed and
	// packet-too-big (1480, 1460), then rtr's about the outer packets, relayed.
	if s.Drops["too-big"] == 0 || s.ICMPSent == 0 {
		t.Errorf("drops %v, ICMP sent %d: want too-big drops and ICMP errors", s.Drops, s.ICMPSent)
	}
	if s.Drops["tunnel"] != 0 {
		t.Errorf("drops %v: want no tunnel drops", s.Drops)
	}
	t.Logf("drops %v", s.Drops)

	var servers []control.ServerInfo
	ulbadm(t, tunSocket, &servers, "show-server", "web")
	for _, sv := range servers {
		want := control.HealthUp
		if sv.Address == "203.0.113.12" {
			want = control.HealthDown
		}
		if sv.Health != want {
			t.Errorf("show-server web: %s is %q, want %q (its checks cross rtr)", sv.Address, sv.Health, want)
		}
	}
	if len(servers) != 2 {
		t.Errorf("show-server web: %d servers, want 2", len(servers))
	}
}
