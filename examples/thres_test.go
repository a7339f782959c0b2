package examples

import (
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/bench/netns"
	"ulb/router/control"
)

const thresSocket = "/run/ulb/thres.sock"

// thresServers returns show-server's servers of a rule by address.
func thresServers(t *testing.T, rule string) map[string]control.ServerInfo {
	t.Helper()
	var servers []control.ServerInfo
	ulbadm(t, thresSocket, &servers, "show-server", rule)
	out := map[string]control.ServerInfo{}
	for _, s := range servers {
		out[s.Address] = s
	}
	return out
}

// askUDPFrom sends a query from 198.51.100.2:port (a socket of its own in ns) to a
// bench UDP server behind to and returns the name it answers with; it retries a few
// times, as a UDP client does.
func askUDPFrom(t *testing.T, ns string, port int, to string) string {
	t.Helper()
	var name string
	err := netns.Do(ns, func() error {
		raddr, err := net.ResolveUDPAddr("udp", to)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(198, 51, 100, 2), Port: port}, raddr)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 512)
		for range 5 {
			if _, err := c.Write([]byte("who")); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := c.Read(buf)
			if err == nil {
				name = strings.TrimSpace(string(buf[:n]))
				return nil
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("UDP from port %d to %s: %v (answer %q)", port, to, err, name)
	}
	if name == "" {
		t.Fatalf("UDP from port %d to %s: no answer", port, to)
	}
	return name
}

// waitNoFlows waits until the rule has no flow left in the connection table (UDP flows
// expire after 2s idle on this bench).
func waitNoFlows(t *testing.T, rule string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var l control.ConnList
		ulbadm(t, thresSocket, &l, "show-conn", "-r", rule)
		if len(l.Conns) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rule %s still has flows: %+v", rule, l.Conns)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestConnThresholds brings up testdata/thres: real long-lived TCP connections through
// the VIP to a server with max_conns 4 and min_conns 2 (IPVS's u-threshold and
// l-threshold), the overload refusal counted when every server is at max_conns, real
// UDP clients under persist_key src+port and dst+port, and the thresholds given to
// ulbadm's server verbs.
func TestConnThresholds(t *testing.T) {
	dir := copyFiles(t, "testdata/thres", "bench.toml", "lb1.toml")
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	client := b.Namespace("client")
	const s1, s2 = "203.0.113.201", "203.0.113.202"

	t.Run("hysteresis", func(t *testing.T) {
		var open []*sinkConn
		defer func() {
			for _, s := range open {
				s.c.Close()
			}
		}()
		dial := func(n int) {
			for range n {
				open = append(open, openSink(t, client, "198.51.100.100:9000"))
			}
		}
		// server returns the address of the server a connection's flow went to.
		server := func(s *sinkConn) string {
			var l control.ConnList
			ulbadm(t, thresSocket, &l, "show-conn", "-r", "lim")
			for _, c := range l.Conns {
				if c.Client == s.c.LocalAddr().String() {
					addr, _, _ := strings.Cut(c.Server, ":")
					return addr
				}
			}
			t.Fatalf("no flow of %v in show-conn", s.c.LocalAddr())
			return ""
		}
		// closeOnS1 finishes n of the open connections that s1 serves.
		closeOnS1 := func(n int) {
			for i := 0; i < len(open) && n > 0; i++ {
				if server(open[i]) != s1 {
					continue
				}
				if name := open[i].finish(t); name != "s1" {
					t.Fatalf("a flow show-conn puts on s1 was answered by %s", name)
				}
				open = append(open[:i], open[i+1:]...)
				i--
				n--
			}
			if n > 0 {
				t.Fatalf("%d fewer connections on s1 than the test closes", n)
			}
		}
		// waitS1 waits until s1 carries want flows (a closed flow leaves after its
		// TIME_WAIT, 1s on this bench) and returns its show-server line.
		waitS1 := func(want uint64) control.ServerInfo {
			deadline := time.Now().Add(15 * time.Second)
			for {
				s := thresServers(t, "lim")[s1]
				if s.ConnsActive == want {
					return s
				}
				if time.Now().After(deadline) {
					t.Fatalf("s1 carries %d flows, want %d", s.ConnsActive, want)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}

		dial(8) // leastconn: 4 each; s1 reaches max_conns 4
		srv := thresServers(t, "lim")
		if a, o := srv[s1], srv[s2]; a.ConnsActive != 4 || !a.Overloaded || a.MaxConns != 4 || a.MinConns != 2 || o.ConnsActive != 4 || o.Overloaded {
			t.Fatalf("after 8 connections: s1 %+v, s2 %+v; want 4 each, s1 overloaded with thresholds 4/2", a, o)
		}
		dial(4)
		if a, o := thresServers(t, "lim")[s1], thresServers(t, "lim")[s2]; a.ConnsActive != 4 || o.ConnsActive != 8 {
			t.Fatalf("4 more connections with s1 at max_conns: s1 %d, s2 %d flows; want 4 and 8", a.ConnsActive, o.ConnsActive)
		}

		closeOnS1(2) // 2 left: not below min_conns 2
		if a := waitS1(2); !a.Overloaded {
			t.Fatalf("s1 at 2 flows (min_conns 2): %+v, want still overloaded", a)
		}
		dial(4)
		if a := waitS1(2); !a.Overloaded {
			t.Fatalf("4 connections later: s1 %+v, want 2 flows, still overloaded", a)
		}
		for _, s := range open {
			s.send(t, 100) // existing flows on both servers go on
		}

		closeOnS1(1) // 1 left: below min_conns
		if a := waitS1(1); a.Overloaded {
			t.Fatalf("s1 at 1 flow (below min_conns 2): %+v, want no longer overloaded", a)
		}
		dial(5) // leastconn: s1 (1 flow) takes 3 up to max_conns, s2 the rest
		if a := waitS1(4); !a.Overloaded {
			t.Fatalf("back at max_conns: %+v, want overloaded", a)
		}
		var txt strings.Builder
		cmd := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", thresSocket, "show-server", "lim")
		cmd.Stdout = &txt
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if out := txt.String(); !strings.Contains(out, "4/2") || !strings.Contains(out, "overloaded") {
			t.Errorf("show-server lim shows no thresholds or overloaded state:\n%s", out)
		}
		t.Logf("show-server lim:\n%s", txt.String())
		for _, s := range open {
			s.finish(t)
		}
		open = nil
	})

	t.Run("every server overloaded", func(t *testing.T) {
		var open []*sinkConn
		for range 2 {
			open = append(open, openSink(t, client, "198.51.100.100:9001"))
		}
		before := stats(t, thresSocket).Drops["lb-overloaded"]
		start := time.Now()
		if c, err := dialIn(client, netip.Addr{}, "198.51.100.100:9001"); err == nil {
			c.Close()
			t.Error("a third connection got through although both servers are at max_conns 1")
		} else if !strings.Contains(err.Error(), "refused") || time.Since(start) > time.Second {
			t.Errorf("a connection no server can take: %v after %v, want refused at once (RST)", err, time.Since(start))
		}
		if after := stats(t, thresSocket).Drops["lb-overloaded"]; after != before+1 {
			t.Errorf("lb-overloaded drops %d -> %d, want one more", before, after)
		}
		for _, s := range open {
			s.finish(t)
		}
	})

	t.Run("persist_key src+port", func(t *testing.T) {
		// Round robin: the first socket's key goes to one server, the second's to the
		// other (with the default key, both would share their address's server).
		a := askUDPFrom(t, client, 41000, "198.51.100.100:53")
		b := askUDPFrom(t, client, 41001, "198.51.100.100:53")
		if a == b {
			t.Fatalf("two sockets of one address both went to %s: src+port did not tell them apart", a)
		}
		waitNoFlows(t, "sp")
		// New flows, in the other order: without persistence round robin would swap them.
		for range 2 {
			if got := askUDPFrom(t, client, 41001, "198.51.100.100:53"); got != b {
				t.Errorf("port 41001 came back to %s after its flow expired, had %s", got, b)
			}
			if got := askUDPFrom(t, client, 41000, "198.51.100.100:53"); got != a {
				t.Errorf("port 41000 came back to %s after its flow expired, had %s", got, a)
			}
		}
		var list control.PersistList
		ulbadm(t, thresSocket, &list, "show-persist", "-r", "sp")
		if list.Total != 2 || list.Entries[0].Key != "src+port" || list.Entries[0].Port != 41000 || list.Entries[1].Port != 41001 {
			t.Errorf("show-persist -r sp: %+v, want the two sockets", list)
		}
	})

	t.Run("persist_key dst+port", func(t *testing.T) {
		first := askUDPFrom(t, client, 42000, "198.51.100.100:5060")
		second := askUDPFrom(t, client, 42001, "198.51.100.100:5061")
		if first == second {
			t.Fatalf("ports 5060 and 5061 both on %s: round robin over the ports' keys should split them", first)
		}
		for i, port := range []int{42002, 42003, 42004} {
			if got := askUDPFrom(t, client, port, "198.51.100.100:5061"); got != second {
				t.Errorf("client %d to port 5061 reached %s, the port is on %s", i, got, second)
			}
		}
		waitNoFlows(t, "dp")
		if got := askUDPFrom(t, client, 42005, "198.51.100.100:5060"); got != first {
			t.Errorf("after the flows expired a new client to port 5060 reached %s, the port is on %s", got, first)
		}
		var list control.PersistList
		ulbadm(t, thresSocket, &list, "show-persist", "-r", "dp")
		if list.Total != 2 || list.Entries[0].Key != "dst+port" || list.Entries[0].Client != "198.51.100.100/32" || list.Entries[0].Port != 5060 {
			t.Errorf("show-persist -r dp: %+v", list)
		}
		var rules []control.RuleInfo
		ulbadm(t, thresSocket, &rules, "show-rule", "dp")
		if len(rules) != 1 || rules[0].PersistKey != "dst+port" || rules[0].PersistTimeout != 60 {
			t.Errorf("show-rule dp: %+v", rules)
		}
	})

	t.Run("ulbadm thresholds", func(t *testing.T) {
		run := func(args ...string) (string, error) {
			out, err := exec.Command(filepath.Join(binDir, "ulbadm"), append([]string{"-s", thresSocket}, args...)...).CombinedOutput()
			return string(out), err
		}
		if out, err := run("add-server", "-e", "203.0.113.201:9002", "-l", "max-conns=3,min-conns=1", "tiny"); err != nil {
			t.Fatalf("add-server -l: %v\n%s", err, out)
		}
		if out, err := run("create-servergroup", "-s", "server=203.0.113.202:9003", "-l", "max-conns=10", "spare"); err != nil {
			t.Fatalf("create-servergroup -l: %v\n%s", err, out)
		}
		out, err := run("export-config")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`{ address = "203.0.113.201", port = 9002, max_conns = 3, min_conns = 1 }`,
			`{ address = "203.0.113.202", port = 9003, max_conns = 10 }`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("export-config lacks %s:\n%s", want, out)
			}
		}
		var list []control.ServerInfo
		ulbadm(t, thresSocket, &list, "show-server", "tiny")
		found := false
		for _, s := range list {
			if s.Address == s1 && s.Port == 9002 {
				found = true
				if s.MaxConns != 3 || s.MinConns != 1 || s.Overloaded {
					t.Errorf("added server: %+v, want thresholds 3/1, not overloaded", s)
				}
			}
		}
		if !found {
			t.Errorf("show-server tiny lacks the added server: %+v", list)
		}
		out, err = run("add-server", "-e", "203.0.113.202:9004", "-l", "max-conns=3,min-conns=5", "tiny")
		if err == nil || !strings.Contains(out, "min_conns 5 is above max_conns 3") {
			t.Errorf("add-server with min-conns above max-conns: %v\n%s", err, out)
		}
	})
}
