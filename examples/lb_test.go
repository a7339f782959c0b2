package examples

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/bench"
	"ulb/bench/netns"
	"ulb/router/control"
	"ulb/router/header"
	"ulb/router/port"
)

const lbSocket = "/run/ulb/ulbt-lb.sock"

// dialIn opens a TCP connection from inside the namespace ns (from src when valid); the
// socket stays in that namespace wherever it is used from.
func dialIn(ns string, src netip.Addr, to string) (net.Conn, error) {
	return dialFrom(ns, src, 0, to)
}

// dialFrom connects from src:port (port 0: any) inside ns; a fixed port is bound with
// SO_REUSEADDR, so that it can be used again at once after the server closed first.
func dialFrom(ns string, src netip.Addr, port int, to string) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(ns, func() error {
		d := net.Dialer{Timeout: 2 * time.Second}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice(), Port: port}
		}
		if port != 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
				})
			}
		}
		var err error
		c, err = d.Dial("tcp", to)
		return err
	})
	return c, err
}

// askFrom connects from src:port to a name server (the bench's tcp servers) and returns
// its answer.
func askFrom(ns string, src netip.Addr, port int, to string) (string, error) {
	c, err := dialFrom(ns, src, port, to)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// askName connects to a name server (the bench's tcp servers) and returns its answer.
func askName(ns string, src netip.Addr, to string) (string, error) {
	return askFrom(ns, src, 0, to)
}

// spread asks n times and counts the answers by server name.
func spread(t *testing.T, ns string, src netip.Addr, to string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := askName(ns, src, to)
		if err != nil {
			t.Fatalf("connection %d to %s: %v", i, to, err)
		}
		got[name]++
	}
	return got
}

// sinkConn is a long-lived connection to a bench sink: it stays open until finish.
type sinkConn struct {
	c    net.Conn
	sent int64
}

func openSink(t *testing.T, ns, to string) *sinkConn {
	t.Helper()
	c, err := dialIn(ns, netip.Addr{}, to)
	if err != nil {
		t.Fatalf("open %s: %v", to, err)
	}
	s := &sinkConn{c: c}
	s.send(t, 1000)
	return s
}

func (s *sinkConn) send(t *testing.T, n int) {
	t.Helper()
	s.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.c.Write(make([]byte, n)); err != nil {
		t.Fatalf("write on a long-lived connection: %v", err)
	}
	s.sent += int64(n)
}

// finish closes the sending side and returns the name of the server that received
// everything.
func (s *sinkConn) finish(t *testing.T) string {
	t.Helper()
	defer s.c.Close()
	s.c.(*net.TCPConn).CloseWrite()
	s.c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(s.c).ReadString('\n')
	if err != nil {
		t.Fatalf("sink answer: %v", err)
	}
	var n int64
	var sum, name string
	if _, err := fmt.Sscan(line, &n, &sum, &name); err != nil || n != s.sent {
		t.Fatalf("sink answer %q: want %d bytes (%v)", line, s.sent, err)
	}
	return name
}

func lbServers(t *testing.T, rule string) map[string]control.ServerInfo {
	t.Helper()
	var servers []control.ServerInfo
	ulbadm(t, lbSocket, &servers, "show-server", rule)
	out := map[string]control.ServerInfo{}
	for _, s := range servers {
		out[s.Address] = s
	}
	return out
}

func within(got, want, tol int) bool { return got >= want-tol && got <= want+tol }

// TestLoadBalancing drives ulbd's load balancer end to end in namespaces: algorithms,
// persistence, IPv6, UDP and flow expiry, long-lived flows under leastconn, max_conns
// and drain, ICMP translation for path-MTU discovery, and captured packets checked with
// gopacket.
func TestLoadBalancing(t *testing.T) {
	b := upBench(t, "testdata/lb/bench.toml")
	client := b.Namespace("client")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c2 := netip.MustParseAddr("198.51.100.2")

	t.Run("roundrobin", func(t *testing.T) {
		got := spread(t, client, c2, "198.51.100.100:80", 30)
		if got["s1"] != 10 || got["s2"] != 10 || got["s3"] != 10 {
			t.Errorf("round robin over 30 connections: %v, want 10 each", got)
		}
	})

	t.Run("a client port reused after close gets a new pick", func(t *testing.T) {
		// The server closes first, so the client may reuse its port at once; ulbd's old
		// flow sits in TIME_WAIT and must not pin the new connection to the old server.
		var names []string
		for i := 0; i < 3; i++ {
			name, err := askFrom(client, c2, 40123, "198.51.100.100:80")
			if err != nil {
				t.Fatalf("connection %d from port 40123: %v", i, err)
			}
			names = append(names, name)
			time.Sleep(200 * time.Millisecond)
		}
		if names[0] == names[1] || names[1] == names[2] {
			t.Errorf("round robin from a reused client port answered %v: the old flow pinned the new connection", names)
		}
	})

	t.Run("a client port reused toward the same server through another rule", func(t *testing.T) {
		// Half-NAT keeps the client's address and port: a connection from port 40124 to
		// the maglev rule and a later one to the round-robin rule that picks the same
		// server are one connection to the server. Once the first has closed, its flow
		// must give the server's side up; while it is open, the second is refused.
		first, err := askFrom(client, c2, 40124, "198.51.100.100:83")
		if err != nil {
			t.Fatalf("first connection: %v", err)
		}
		before := stats(t, lbSocket).Drops["lb-tuple-in-use"]
		hit := false
		for i := 0; i < 3 && !hit; i++ { // round robin reaches every server within 3
			time.Sleep(200 * time.Millisecond)
			name, err := askFrom(client, c2, 40124, "198.51.100.100:80")
			if err != nil {
				t.Fatalf("connection %d from port 40124 to the round-robin rule (the maglev one went to %s): %v", i, first, err)
			}
			hit = name == first
		}
		if !hit {
			t.Fatalf("round robin never picked %s", first)
		}
		if after := stats(t, lbSocket).Drops["lb-tuple-in-use"]; after != before {
			t.Errorf("lb-tuple-in-use drops %d -> %d with no open flow", before, after)
		}

		// Open: port 40125 holds a connection through the maglev rule; connections from
		// it to the round-robin rule succeed, and the SYN that would have reached the same
		// server is refused and counted (its retransmission gets another pick).
		open, err := dialFrom(client, c2, 40125, "198.51.100.100:83")
		if err != nil {
			t.Fatal(err)
		}
		defer open.Close()
		open.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(open).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		held := strings.TrimSpace(line)
		before = stats(t, lbSocket).Drops["lb-tuple-in-use"]
		for i := 0; i < 3; i++ {
			name, err := askFrom(client, c2, 40125, "198.51.100.100:80")
			if err != nil {
				t.Fatalf("connection %d from port 40125: %v", i, err)
			}
			if name == held {
				t.Errorf("connection %d reached %s, which holds the open connection from the same port", i, name)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if after := stats(t, lbSocket).Drops["lb-tuple-in-use"]; after == before {
			t.Errorf("no lb-tuple-in-use drop counted in 3 round-robin picks beside an open flow to %s", held)
		}
	})

	t.Run("weighted 1:2:3", func(t *testing.T) {
		got := spread(t, client, c2, "198.51.100.100:81", 60)
		// Smooth weighted round robin is exact over every period of 6 picks; allow one
		// pick of slack for the period the counters started in.
		if !within(got["s1"], 10, 1) || !within(got["s2"], 20, 1) || !within(got["s3"], 30, 1) {
			t.Errorf("weights 1:2:3 over 60 connections: %v, want 10/20/30 ±1", got)
		}
	})

	t.Run("maglev", func(t *testing.T) {
		got := spread(t, client, c2, "198.51.100.100:83", 90)
		for _, s := range []string{"s1", "s2", "s3"} {
			if got[s] < 12 {
				t.Errorf("maglev over 90 connections from random ports: %v, want each server well used", got)
				break
			}
		}
	})

	t.Run("persistence", func(t *testing.T) {
		servers := map[string]bool{}
		for i := 2; i <= 9; i++ {
			src := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
			got := spread(t, client, src, "198.51.100.100:82", 4)
			if len(got) != 1 {
				t.Errorf("client %s reached several servers despite pmask 32: %v", src, got)
			}
			for s := range got {
				servers[s] = true
			}
		}
		if len(servers) < 2 {
			t.Errorf("8 client addresses all went to %v: persistence entries did not spread", servers)
		}
		var list control.PersistList
		ulbadm(t, lbSocket, &list, "show-persist", "-r", "sticky")
		if list.Total != 8 {
			t.Errorf("show-persist lists %d entries, want 8: %+v", list.Total, list.Entries)
		}
	})

	t.Run("IPv6 rule", func(t *testing.T) {
		got := spread(t, client, netip.Addr{}, "[2001:db8:1::100]:80", 9)
		if got["s1"] != 3 || got["s2"] != 3 || got["s3"] != 3 {
			t.Errorf("IPv6 round robin: %v, want 3 each", got)
		}
	})

	t.Run("UDP rule and flow expiry", func(t *testing.T) {
		r := b.Check(ctx, bench.Check{Type: bench.CheckUDP, From: "client", To: "198.51.100.100:53"})
		if !r.Pass {
			t.Fatalf("%s", r)
		}
		var conns control.ConnList
		ulbadm(t, lbSocket, &conns, "show-conn", "-r", "dns")
		if conns.Total != 1 || conns.Conns[0].Protocol != "udp" {
			t.Fatalf("show-conn -r dns: %+v, want one UDP flow", conns)
		}
		// The bench sets the UDP timeout to 3s; the sweep runs every 100ms.
		deadline := time.Now().Add(10 * time.Second)
		for {
			ulbadm(t, lbSocket, &conns, "show-conn", "-r", "dns")
			if conns.Total == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the UDP flow did not expire: %+v", conns)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})

	t.Run("leastconn with long-lived flows", func(t *testing.T) {
		var open []*sinkConn
		for i := 0; i < 6; i++ {
			open = append(open, openSink(t, client, "198.51.100.100:9000"))
		}
		for addr, s := range lbServers(t, "lc") {
			if s.ConnsActive != 2 {
				t.Errorf("leastconn: %s has %d active flows, want 2", addr, s.ConnsActive)
			}
		}
		got := map[string]int{}
		for _, s := range open {
			got[s.finish(t)]++
		}
		if got["s1"] != 2 || got["s2"] != 2 || got["s3"] != 2 {
			t.Errorf("leastconn over 6 long-lived flows: %v, want 2 each", got)
		}
	})

	t.Run("max_conns", func(t *testing.T) {
		var open []*sinkConn
		for i := 0; i < 6; i++ {
			open = append(open, openSink(t, client, "198.51.100.100:9001"))
		}
		before := ruleStats(t, "max")
		start := time.Now()
		if c, err := dialIn(client, netip.Addr{}, "198.51.100.100:9001"); err == nil {
			c.Close()
			t.Error("a 7th connection got through although every server is at max_conns 2")
		} else if !strings.Contains(err.Error(), "refused") || time.Since(start) > time.Second {
			t.Errorf("a connection no server can take: %v after %v, want refused at once (RST)", err, time.Since(start))
		}
		if after := ruleStats(t, "max"); after.Drops <= before.Drops {
			t.Errorf("the refused connection was not counted as a drop (%d -> %d)", before.Drops, after.Drops)
		}
		for _, s := range open {
			s.finish(t)
		}
		// Once the flows have left the table (TIME_WAIT is 3s on this bench), new
		// connections are taken again.
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := askSinkName(client, "198.51.100.100:9001")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the long-lived flows ended: %v", err)
			}
		}
	})

	t.Run("drain", func(t *testing.T) {
		var open []*sinkConn
		for i := 0; i < 3; i++ {
			open = append(open, openSink(t, client, "198.51.100.100:9002"))
		}
		var changed []control.ServerInfo
		ulbadm(t, lbSocket, &changed, "drain-server", "-r", "drain", "203.0.113.201:9002")
		if len(changed) != 1 || changed[0].State != control.ServerDraining {
			t.Fatalf("drain-server answered %+v", changed)
		}
		for i := 0; i < 6; i++ {
			name, err := askSinkName(client, "198.51.100.100:9002")
			if err != nil {
				t.Fatal(err)
			}
			if name == "s1" {
				t.Errorf("a new connection reached the draining server s1")
			}
		}
		names := map[string]bool{}
		for _, s := range open {
			s.send(t, 64<<10) // the open flows, s1's included, go on
			names[s.finish(t)] = true
		}
		if !names["s1"] {
			t.Errorf("the open connection to the draining server did not complete: %v", names)
		}
	})

	t.Run("fragmentation needed from behind the balancer", func(t *testing.T) {
		// s4's own link says 1500 while mid's side of it holds 1400: mid sends
		// fragmentation-needed to the client's real address, quoting the translated
		// packet, and ulbd must translate it back for the client's TCP to adapt.
		if out, err := b.Exec(ctx, "s4", "ip", "link", "set", "eth0", "mtu", "1500"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		before := stats(t, lbSocket)
		r := b.Check(ctx, bench.Check{Type: bench.CheckTransfer, From: "client", To: "198.51.100.101:9000", Bytes: 32 << 20, Timeout: 2 * time.Minute})
		t.Log(r)
		if !r.Pass {
			t.Fatalf("%s", r)
		}
		out, err := b.Exec(ctx, "client", "ip", "route", "get", "198.51.100.101")
		if err != nil || !strings.Contains(string(out), "mtu 1400") {
			t.Errorf("the client learned no path MTU of 1400 for the VIP (%v):\n%s", err, out)
		}
		if after := stats(t, lbSocket); after.Forwarded <= before.Forwarded {
			t.Error("no packet was forwarded")
		}
	})

	t.Run("disable and enable a rule", func(t *testing.T) {
		var ri []control.RuleInfo
		ulbadm(t, lbSocket, &ri, "disable-rule", "rr")
		if len(ri) != 1 || ri[0].Enabled {
			t.Fatalf("disable-rule answered %+v", ri)
		}
		if _, err := askName(client, c2, "198.51.100.100:80"); err == nil {
			t.Error("a disabled rule still took a new connection")
		}
		ulbadm(t, lbSocket, &ri, "enable-rule", "rr")
		if _, err := askName(client, c2, "198.51.100.100:80"); err != nil {
			t.Errorf("after enable-rule: %v", err)
		}
	})

	t.Run("captured packets", func(t *testing.T) {
		capS1 := startCapture(t, b.Namespace("s1"), "eth0")
		capClient := startCapture(t, client, "eth0")
		// From known ports, so that late packets of earlier subtests' flows (a FIN the
		// drain rule's server sends again, say) are told apart.
		const firstPort, conns = 40300, 6
		for i := 0; i < conns; i++ {
			if _, err := askFrom(client, c2, firstPort+i, "198.51.100.100:80"); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
		time.Sleep(200 * time.Millisecond)
		ours := func(port uint16) bool { return port >= firstPort && port < firstPort+conns }
		vip := netip.MustParseAddr("198.51.100.100")
		s1 := netip.MustParseAddr("203.0.113.201")
		nS1 := checkCaptured(t, "s1", capS1.stop(), func(ip header.IPv4, tcp header.TCP) bool {
			// Half-NAT: the server sees the client's own address.
			if ip.DestinationAddr() == s1 && tcp.DestinationPort() == 80 && ours(tcp.SourcePort()) {
				if ip.SourceAddr() != c2 {
					t.Errorf("s1 got a packet from %s, want the client's %s", ip.SourceAddr(), c2)
				}
				return true
			}
			return false
		})
		nClient := checkCaptured(t, "client", capClient.stop(), func(ip header.IPv4, tcp header.TCP) bool {
			if ip.DestinationAddr() == c2 && ours(tcp.DestinationPort()) {
				if ip.SourceAddr() != vip || tcp.SourcePort() != 80 {
					t.Errorf("the client got an answer from %s:%d, want %s:80", ip.SourceAddr(), tcp.SourcePort(), vip)
				}
				return true
			}
			return false
		})
		if nS1 == 0 || nClient == 0 {
			t.Errorf("captured %d rewritten packets at s1 and %d at the client, want some of each", nS1, nClient)
		}
	})
}

func askSinkName(ns, to string) (string, error) {
	c, err := dialIn(ns, netip.Addr{}, to)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("x"))
	c.(*net.TCPConn).CloseWrite()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		return "", fmt.Errorf("sink answer %q", line)
	}
	return f[2], nil
}

func ruleStats(t *testing.T, rule string) control.RuleStats {
	t.Helper()
	var s control.StatsInfo
	ulbadm(t, lbSocket, &s, "show-stats", "-r", rule)
	if len(s.Rules) != 1 {
		t.Fatalf("show-stats -r %s: %+v", rule, s.Rules)
	}
	return s.Rules[0]
}

// capture reads the frames of one interface, with their virtio-net headers, through an
// AF_PACKET port opened inside a namespace.
type capture struct {
	p      *port.AFPacket
	mu     sync.Mutex
	frames [][]byte // virtio-net header + frame
	done   chan struct{}
}

func startCapture(t *testing.T, ns, dev string) *capture {
	t.Helper()
	c := &capture{done: make(chan struct{})}
	err := netns.Do(ns, func() error {
		var err error
		c.p, err = port.OpenAFPacket(dev, port.AFPacketOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", dev, ns, err)
	}
	go func() {
		defer close(c.done)
		bufs := [][]byte{make([]byte, port.BufSize)}
		sizes := []int{0}
		for {
			n, err := c.p.Read(bufs, sizes, port.Headroom)
			if err != nil {
				return
			}
			for i := 0; i < n; i++ {
				f := append([]byte(nil), bufs[i][port.Headroom-port.VnetHdrLen:port.Headroom+sizes[i]]...)
				c.mu.Lock()
				c.frames = append(c.frames, f)
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { c.p.Close() })
	return c
}

func (c *capture) stop() [][]byte {
	c.p.Close()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// checkCaptured decodes every IPv4 TCP frame with gopacket, completes the checksums the
// sender left to the NIC, checks every checksum, and hands the frames to want; it returns
// how many want accepted.
func checkCaptured(t *testing.T, where string, frames [][]byte, want func(header.IPv4, header.TCP) bool) int {
	t.Helper()
	n := 0
	for _, raw := range frames {
		vh := port.VnetHdr(raw[:port.VnetHdrLen])
		frame := raw[port.VnetHdrLen:]
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		if pkt.Layer(layers.LayerTypeTCP) == nil || pkt.Layer(layers.LayerTypeIPv4) == nil {
			continue
		}
		if errs := pkt.ErrorLayer(); errs != nil {
			t.Errorf("%s: gopacket cannot decode a frame: %v", where, errs.Error())
			continue
		}
		if vh.NeedsCsum() {
			if err := port.CompleteChecksum(frame, vh); err != nil {
				t.Errorf("%s: completing a partial checksum: %v", where, err)
				continue
			}
		}
		ip := header.IPv4(frame[14:])
		if !ip.IsChecksumValid() {
			t.Errorf("%s: bad IPv4 header checksum %s -> %s", where, ip.SourceAddr(), ip.DestinationAddr())
		}
		if !header.IsTransportChecksumValid(ip.Protocol(), ip.SourceAddr(), ip.DestinationAddr(), ip.Payload()) {
			t.Errorf("%s: bad TCP checksum %s -> %s", where, ip.SourceAddr(), ip.DestinationAddr())
		}
		if want(ip, header.TCP(ip.Payload())) {
			n++
		}
	}
	return n
}
