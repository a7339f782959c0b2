package wizard

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ulb/config"
)

// The answers of Loadbalancer.org's guide ("Example answers using the wizard for a
// two-arm NAT configuration", and its one-arm DR and clustered-pair variants), with
// its private networks mapped onto documentation prefixes: the internal 192.168.1.0/24
// is 203.0.113.0/24, the external 10.0.0.0/24 is 198.51.100.0/24 (the appliance .21,
// its peer .22, the gateway .254, the VIP .20, the real servers .50 and .51). As in the
// guide, eth1 is the outside NIC of a two-arm unit and eth0 the inside one. An empty
// line takes the default.

// twoArmHalfNAT is a single unit, two-arm, half-NAT.
var twoArmHalfNAT = []string{
	"single",           // single unit or HA pair
	"",                 // hostname [lb1]
	"two-arm",          // one-arm or two-arm
	"half-nat",         // topology
	"",                 // outside device [eth1]
	"",                 // inside device [eth0]
	"198.51.100.21/24", // outside addresses
	"203.0.113.21/24",  // inside addresses
	"198.51.100.254",   // default gateway
	"",                 // virtual server's name [web]
	"198.51.100.20",    // VIP
	"80",               // port
	"tcp",              // protocol
	"203.0.113.50",     // real server 1
	"80",               // its port
	"1",                // its weight
	"203.0.113.51",     // real server 2
	"",                 // its port [80]
	"2",                // its weight
	"",                 // real server 3 [done]
	"tcp",              // health check
	"",                 // its port [the server's port]
}

// oneArmDSR is a single unit, one-arm, direct routing (the default topology of one arm).
var oneArmDSR = []string{
	"",                 // single
	"lb1",              // hostname
	"one-arm",          // one-arm or two-arm
	"",                 // topology [dsr]
	"eth0",             // device
	"198.51.100.21/24", // addresses
	"198.51.100.254",   // default gateway
	"web",              // name
	"198.51.100.20",    // VIP
	"",                 // port [80]
	"",                 // protocol [tcp]
	"198.51.100.50",    // real server 1
	"",                 // its port [80]
	"",                 // its weight [1]
	"198.51.100.51",    // real server 2
	"",                 // port
	"",                 // weight
	"done",             // no more servers
	"",                 // health check [tcp]
	"",                 // its port
}

// pairNode is one node of a two-arm half-NAT HA pair: the VIP and the servers' floating
// gateway (.254 inside) move together between the nodes.
func pairNode(role, hostname, self, peer string) []string {
	return []string{
		"pair",                       // HA pair
		role,                         // master or backup
		hostname,                     // hostname
		"203.0.113." + peer,          // the other node, for connection sync
		"7",                          // VRID
		"two-arm",                    // arms
		"half-nat",                   // topology
		"eth1",                       // outside device
		"eth0",                       // inside device
		"198.51.100." + self + "/24", // outside addresses
		"203.0.113." + self + "/24",  // inside addresses
		"198.51.100.254",             // gateway
		"web",                        // name
		"198.51.100.20",              // VIP
		"80",                         // port
		"tcp",                        // protocol
		"203.0.113.254",              // the servers' floating gateway
		"203.0.113.50",               // real server 1
		"80",                         // port
		"1",                          // weight
		"203.0.113.51",               // real server 2
		"80",                         // port
		"1",                          // weight
		"",                           // done
		"tcp",                        // health check
		"",                           // server's port
	}
}

func script(answers []string) string { return strings.Join(answers, "\n") + "\n" }

// run runs the wizard on answers like ulbadm does with a pipe, into a new directory.
func run(t *testing.T, answers string) (file, out string, err error) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "ulbd.toml")
	var b strings.Builder
	_, err = Run(context.Background(), strings.NewReader(answers), &b,
		Options{File: file, Attempts: MaxAttempts, Echo: true})
	return file, b.String(), err
}

// load runs the wizard and parses what it wrote, as ulbd -check does.
func load(t *testing.T, answers []string) (*config.Config, string) {
	t.Helper()
	file, out, err := run(t, script(answers))
	if err != nil {
		t.Fatalf("wizard: %v\noutput:\n%s", err, out)
	}
	cfg, err := config.Load(file)
	if err != nil {
		data, _ := os.ReadFile(file)
		t.Fatalf("the file written is refused: %v\n%s", err, data)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	return cfg, out
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func checkPorts(t *testing.T, cfg *config.Config, want []config.Port) {
	t.Helper()
	if len(cfg.Ports) != len(want) {
		t.Fatalf("ports: %+v, want %+v", cfg.Ports, want)
	}
	for i, w := range want {
		p := cfg.Ports[i]
		if p.Name != w.Name || p.Device != w.Device || p.Kind != config.KindAFPacket || !slices.Equal(p.Addresses, w.Addresses) {
			t.Errorf("port %d: %s %s %s %v, want %s %s afpacket %v", i, p.Name, p.Device, p.Kind, p.Addresses, w.Name, w.Device, w.Addresses)
		}
	}
}

func checkRule(t *testing.T, cfg *config.Config, vip string, topo config.Topology) *config.Rule {
	t.Helper()
	if len(cfg.Rules) != 1 {
		t.Fatalf("rules: %+v, want one", cfg.Rules)
	}
	r := &cfg.Rules[0]
	if r.Name != "web" || r.VIP != addr(vip) || r.PortLo != 80 || r.PortHi != 80 || r.Protocol != config.TCP ||
		r.Topology != topo || r.ServerGroup != "web" || r.Algorithm != config.WeightedLeastConn || !r.Enabled {
		t.Errorf("rule: %+v, want web %s tcp/80 %s to group web", r, vip, topo)
	}
	return r
}

func checkServers(t *testing.T, cfg *config.Config, want ...config.Server) {
	t.Helper()
	g := cfg.ServerGroup("web")
	if g == nil {
		t.Fatalf("no servergroup web: %+v", cfg.ServerGroups)
	}
	if len(g.Servers) != len(want) {
		t.Fatalf("servers %+v, want %+v", g.Servers, want)
	}
	for i, w := range want {
		s := g.Servers[i]
		if s.Addr != w.Addr || s.Port != w.Port || s.Weight != w.Weight || !s.Enabled {
			t.Errorf("server %d: %+v, want %+v", i, s, w)
		}
	}
	h := cfg.HealthCheck(g.HealthCheck)
	if h == nil || h.Test != "tcp" || h.Port != 0 {
		t.Errorf("group web's health check %q: %+v, want a tcp check of each server's port", g.HealthCheck, h)
	}
}

func checkDefaultRoute(t *testing.T, cfg *config.Config, via, port string) {
	t.Helper()
	if len(cfg.Routes) != 1 || cfg.Routes[0].To != netip.MustParsePrefix("0.0.0.0/0") ||
		cfg.Routes[0].Via != addr(via) || cfg.Routes[0].Port != port {
		t.Errorf("routes: %+v, want 0.0.0.0/0 via %s on %s", cfg.Routes, via, port)
	}
}

func TestWizardTwoArmHalfNAT(t *testing.T) {
	cfg, out := load(t, twoArmHalfNAT)
	if cfg.Hostname != "lb1" {
		t.Errorf("hostname %q, want the default lb1", cfg.Hostname)
	}
	checkPorts(t, cfg, []config.Port{
		{Name: "outside", Device: "eth1", Addresses: prefixes("198.51.100.21/24")},
		{Name: "inside", Device: "eth0", Addresses: prefixes("203.0.113.21/24")},
	})
	checkDefaultRoute(t, cfg, "198.51.100.254", "outside")
	checkRule(t, cfg, "198.51.100.20", config.HalfNAT)
	checkServers(t, cfg,
		config.Server{Addr: addr("203.0.113.50"), Port: 80, Weight: 1},
		config.Server{Addr: addr("203.0.113.51"), Port: 80, Weight: 2})
	if len(cfg.VRRP) != 0 || cfg.Sync.Enabled {
		t.Errorf("a single unit has VRRP %+v, sync %+v", cfg.VRRP, cfg.Sync)
	}
	for _, want := range []string{
		"Single unit or HA pair (single, pair) [single]: single\n",
		"Real server 2's port [80]: \n",
		"Wrote ", "ulbd -check -c ",
		"default gateway 203.0.113.21", // the servers' gateway for half-NAT
		"examples/systemd/ulbd.service",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestWizardOneArmDSR(t *testing.T) {
	cfg, out := load(t, oneArmDSR)
	checkPorts(t, cfg, []config.Port{{Name: "lan", Device: "eth0", Addresses: prefixes("198.51.100.21/24")}})
	checkDefaultRoute(t, cfg, "198.51.100.254", "lan")
	checkRule(t, cfg, "198.51.100.20", config.DSR)
	checkServers(t, cfg,
		config.Server{Addr: addr("198.51.100.50"), Port: 80, Weight: 1},
		config.Server{Addr: addr("198.51.100.51"), Port: 80, Weight: 1})
	if !strings.Contains(out, "put the VIP 198.51.100.20 on lo") {
		t.Errorf("the next steps do not tell what DSR servers need:\n%s", out)
	}
}

// TestWizardPair writes both nodes of a pair and checks that they make one: the same
// virtual routers and VRID, the master's priority above the backup's, each node's sync
// peer the other's address.
func TestWizardPair(t *testing.T) {
	master, _ := load(t, pairNode("master", "lb1", "21", "22"))
	backup, out := load(t, pairNode("backup", "lb2", "22", "21"))
	for _, n := range []struct {
		cfg        *config.Config
		host, self string
		peer       string
		prio       int
	}{{master, "lb1", "21", "22", 200}, {backup, "lb2", "22", "21", 100}} {
		cfg := n.cfg
		if cfg.Hostname != n.host {
			t.Errorf("hostname %q, want %q", cfg.Hostname, n.host)
		}
		checkPorts(t, cfg, []config.Port{
			{Name: "outside", Device: "eth1", Addresses: prefixes("198.51.100." + n.self + "/24")},
			{Name: "inside", Device: "eth0", Addresses: prefixes("203.0.113." + n.self + "/24")},
		})
		checkDefaultRoute(t, cfg, "198.51.100.254", "outside")
		checkRule(t, cfg, "198.51.100.20", config.HalfNAT)
		checkServers(t, cfg,
			config.Server{Addr: addr("203.0.113.50"), Port: 80, Weight: 1},
			config.Server{Addr: addr("203.0.113.51"), Port: 80, Weight: 1})
		if len(cfg.VRRP) != 2 {
			t.Fatalf("%s: VRRP %+v, want vip and gw", n.host, cfg.VRRP)
		}
		for i, w := range []struct{ name, port, addr string }{
			{"vip", "outside", "198.51.100.20/24"}, {"gw", "inside", "203.0.113.254/24"},
		} {
			v := cfg.VRRP[i]
			if v.Name != w.name || v.Port != w.port || v.VRID != 7 || v.Priority != n.prio || v.Version != 3 ||
				!v.Preempt || v.SyncGroup != "pair" || !slices.Equal(v.Addresses, prefixes(w.addr)) {
				t.Errorf("%s: vrrp %d: %+v, want %s on %s, vrid 7, priority %d, %s, sync group pair",
					n.host, i, v, w.name, w.port, n.prio, w.addr)
			}
		}
		if !cfg.Sync.Enabled || !slices.Equal(cfg.Sync.Peers, []netip.Addr{addr("203.0.113." + n.peer)}) || cfg.Sync.VRRP != "vip" {
			t.Errorf("%s: sync %+v, want peer 203.0.113.%s while master of vip", n.host, cfg.Sync, n.peer)
		}
	}
	if !strings.Contains(out, "default gateway 203.0.113.254") || !strings.Contains(out, "role master") {
		t.Errorf("the backup's next steps:\n%s", out)
	}
}

// TestWizardFullNATPair: two-arm full-NAT in a pair; the source addresses the servers
// answer float with VRRP on the inside port.
func TestWizardFullNATPair(t *testing.T) {
	cfg, out := load(t, []string{"pair", "master", "lb\x01", "\xff", "", "203.0.113.22", "", "two-arm", "full-nat", "", "",
		"198.51.100.21/24", "203.0.113.21/24", "none", "", "198.51.100.20", "", "",
		"203.0.113.60-203.0.113.61", "203.0.113.60, 203.0.113.61", "203.0.113.50", "", "", "", "ping"})
	for _, want := range []string{
		"the answer holds a control character ('\\x01')",
		"the answer is not UTF-8 text",
		"in a pair each source address floats with VRRP: list the addresses, not a range",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if cfg.Hostname != "lb1" {
		t.Errorf("hostname %q", cfg.Hostname)
	}
	r := checkRule(t, cfg, "198.51.100.20", config.FullNAT)
	if !slices.Equal(r.ProxySource, []netip.Addr{addr("203.0.113.60"), addr("203.0.113.61")}) {
		t.Errorf("proxy_source %v", r.ProxySource)
	}
	if len(cfg.Routes) != 0 {
		t.Errorf("routes %+v, want none", cfg.Routes)
	}
	if len(cfg.VRRP) != 2 || cfg.VRRP[1].Name != "src" || cfg.VRRP[1].Port != "inside" ||
		!slices.Equal(cfg.VRRP[1].Addresses, prefixes("203.0.113.60/24", "203.0.113.61/24")) || cfg.VRRP[1].VRID != 1 {
		t.Errorf("vrrp: %+v, want vip, and src holding the proxy sources on inside", cfg.VRRP)
	}
	if h := cfg.HealthCheck(cfg.ServerGroup("web").HealthCheck); h == nil || h.Test != "ping" {
		t.Errorf("health check %+v, want ping", h)
	}
}

// TestWizardReasks feeds a bad answer to several questions: each is refused with the
// reason and asked again, and the next answer goes on.
func TestWizardReasks(t *testing.T) {
	a := slices.Clone(oneArmDSR)
	bad := map[int][]string{
		2:  {"three-arm"},                       // not a layout
		5:  {"198.51.100.21"},                   // no prefix length
		6:  {"192.0.2.1"},                       // not on a connected network
		8:  {"198.51.100.300", "198.51.100.21"}, // not an address; the router's own
		11: {"198.51.100.20"},                   // the VIP as a server
		12: {"8080"},                            // DSR translates no port
	}
	var answers []string
	for i, s := range a {
		answers = append(answers, bad[i]...)
		answers = append(answers, s)
	}
	file, out, err := run(t, script(answers))
	if err != nil {
		t.Fatalf("wizard: %v\n%s", err, out)
	}
	if _, err := config.Load(file); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"One-arm (one network) or two-arm (outside and inside) [two-arm]: three-arm\n  \"three-arm\": want one-arm or two-arm\nOne-arm",
		"needs the prefix length of its network, e.g. \"198.51.100.21/24\"",
		"via 192.0.2.1 is not on a connected network",
		"\"198.51.100.300\" is not an IP address",
		"vip 198.51.100.21 is the router's own address",
		"is the rule's VIP",
		"topology dsr cannot translate ports",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "line ") {
		t.Errorf("a message points at a line of the wizard's draft:\n%s", out)
	}
}

func TestWizardRetryLimit(t *testing.T) {
	answers := script(append(slices.Clone(oneArmDSR[:8]), "nope", "198.51.100.999", "vip", "198.51.100.20"))
	file, out, err := run(t, answers)
	want := `3 bad answers to "Its virtual IP address (VIP)", giving up (nothing written)`
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q\n%s", err, want, out)
	}
	if n := strings.Count(out, "Its virtual IP address (VIP): "); n != 3 {
		t.Errorf("asked %d times, want 3:\n%s", n, out)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was written: %v", err)
	}
}

func TestWizardEOF(t *testing.T) {
	for _, n := range []int{0, 1, 9, len(oneArmDSR) - 1} {
		in := strings.Join(oneArmDSR[:n], "\n")
		file, out, err := run(t, in)
		if err == nil || !strings.HasPrefix(err.Error(), "standard input ended before an answer to ") ||
			!strings.HasSuffix(err.Error(), "(nothing written)") {
			t.Errorf("after %d answers: err %v\n%s", n, err, out)
		}
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after %d answers a file was written: %v", n, err)
		}
		entries, _ := os.ReadDir(filepath.Dir(file))
		if len(entries) != 0 {
			t.Errorf("after %d answers the directory holds %v", n, entries)
		}
	}
	// The last answer without its newline is still an answer.
	last := append(slices.Clone(oneArmDSR[:len(oneArmDSR)-1]), "80")
	file, _, err := run(t, strings.Join(last, "\n"))
	if err != nil {
		t.Fatalf("last line without newline: %v", err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.HealthChecks) != 1 || cfg.HealthChecks[0].Port != 80 {
		t.Errorf("health checks %+v, want one of port 80", cfg.HealthChecks)
	}
}

// TestWizardExistingFile: a file is replaced only with Force, atomically (no temporary
// file stays beside it).
func TestWizardExistingFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ulbd.toml")
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_, err := Run(context.Background(), strings.NewReader(script(oneArmDSR)), &b, Options{File: file})
	if err == nil || !strings.Contains(err.Error(), "exists: give -f to replace it") || b.Len() != 0 {
		t.Fatalf("err %v, output %q", err, b.String())
	}
	if _, err := Run(context.Background(), strings.NewReader(script(oneArmDSR)), &b, Options{File: file, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(file); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want the file alone", entries)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}

// TestWizardInterrupted: a question waiting for an answer ends with the context.
func TestWizardInterrupted(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	file := filepath.Join(t.TempDir(), "ulbd.toml")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, r, io.Discard, Options{File: file})
		done <- err
	}()
	w.Write([]byte("pair\n"))
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Errorf("err %v, want interrupted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wizard did not end with its context")
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was written: %v", err)
	}
}
