package examples

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/router/control"
)

const anatSocket = "/run/ulb/anat-lb1.sock"

// TestAutoNAT brings up examples/autonat under a bench name of its own ("anat") and runs
// its checks: a server's TCP, UDP and ping to the outside host leave with the router's
// outside address (a), a 1:1 mapping takes the client to s1 on its public address and
// gives s1's own connections that address (b), a port forward reaches s2 (c), while the
// VIP still balances untranslated (d). Then it looks at what ulbd shows of the
// translations, an ICMP error coming back through autonat, and a reload that takes the
// port forward away.
func TestAutoNAT(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"bench.toml", "lb1.toml"} {
		data, err := os.ReadFile(filepath.Join("autonat", f))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(data), `name = "autonat"`, `name = "anat"`)
		s = strings.ReplaceAll(s, "/run/ulb/autonat-lb1.sock", anatSocket)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rs := b.Run(ctx)
	for _, r := range rs {
		t.Log(r)
		if !r.Pass {
			t.Errorf("%s", r)
		}
	}
	if len(rs) < 13 {
		t.Fatalf("%d checks ran, want the example's 13", len(rs))
	}

	t.Run("show-conn", func(t *testing.T) {
		var conns control.ConnList
		ulbadm(t, anatSocket, &conns, "show-conn", "1000")
		seen := map[string]bool{}
		for _, c := range conns.Conns {
			seen[c.Type+" "+c.Protocol] = true
			switch {
			case c.Type == "autonat" && c.Protocol == "udp":
				if !strings.HasPrefix(c.Client, "203.0.113.202:") || !strings.HasPrefix(c.Proxy, "198.51.100.10:") || c.Server != "198.51.100.2:53" {
					t.Errorf("autonat UDP flow %+v: want 203.0.113.202 -> 198.51.100.2:53 as 198.51.100.10", c)
				}
			case c.Type == "dnat" && c.Protocol == "icmp":
				// The ping of the public address went to s1, not to the router.
				if c.VIP != "198.51.100.50:"+strings.Split(c.VIP, ":")[1] || !strings.HasPrefix(c.Server, "203.0.113.201:") {
					t.Errorf("1:1 echo flow %+v: want 198.51.100.50 to 203.0.113.201", c)
				}
			case c.Type == "snat":
				if !strings.HasPrefix(c.Client, "203.0.113.201:") || !strings.HasPrefix(c.Proxy, "198.51.100.50:") {
					t.Errorf("SNAT flow %+v: want s1 as 198.51.100.50", c)
				}
			case c.Rule == "web" && c.Type != "":
				t.Errorf("a balanced flow has a type: %+v", c)
			}
		}
		for _, want := range []string{"autonat tcp", "autonat udp", "autonat icmp", "autonat ipv6-icmp", "snat tcp", "dnat tcp", "dnat icmp"} {
			if !seen[want] {
				t.Errorf("show-conn has no %s flow: %v", want, seen)
			}
		}
	})

	t.Run("counters", func(t *testing.T) {
		s := stats(t, anatSocket)
		if s.NAT == nil || s.NAT.AutoNAT < 6 || s.NAT.SNAT < 1 || s.NAT.DNAT < 3 {
			t.Errorf("NAT counters %+v: want at least 6 autonat, 1 snat, 3 dnat flows", s.NAT)
		}
	})

	t.Run("ICMP error back through autonat", func(t *testing.T) {
		// Nothing listens on the client's UDP port 9: its kernel's port unreachable,
		// sent to the router's outside address, reaches s2's socket (RFC 5508 REQ-4).
		// One datagram per try (the client's first read takes the error, within the
		// 200ms), a few tries apart as the client's kernel limits its ICMP errors to one
		// per second towards an address.
		var out []byte
		for try := 0; try < 5; try++ {
			out, _ = b.Exec(ctx, "s2", filepath.Join(binDir, "ulbbench"), "client", "udp", "-to", "198.51.100.2:9", "-timeout", "200ms")
			if strings.Contains(string(out), "connection refused") {
				return
			}
			time.Sleep(1100 * time.Millisecond)
		}
		t.Errorf("s2's datagram to a closed port: %s, want connection refused", out)
	})

	t.Run("reload without the port forward", func(t *testing.T) {
		conf := filepath.Join(dir, "lb1.toml")
		data, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		i := strings.Index(s, "# s2's service")
		if i < 0 {
			t.Fatal("lb1.toml has no port forward")
		}
		reloadWith(t, anatSocket, conf, []byte(s[:i]))
		out, err := b.Exec(ctx, "client", filepath.Join(binDir, "ulbbench"), "client", "tcp", "-to", "198.51.100.51:2222", "-timeout", "2s")
		if err == nil {
			t.Errorf("the port forward still answers after the reload: %s", out)
		}
		out, err = b.Exec(ctx, "client", filepath.Join(binDir, "ulbbench"), "client", "http", "-to", "198.51.100.50:8080", "-timeout", "3s")
		if err != nil || !strings.Contains(string(out), "s1") {
			t.Errorf("the 1:1 mapping after the reload: %v %s", err, out)
		}
	})
}
