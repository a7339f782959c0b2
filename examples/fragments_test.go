package examples

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ulb/bench/netns"
	"ulb/internal/testenv"
	"ulb/router/control"
)

const fragSocket = "/run/ulb/ulbt-frag.sock"

// TestFragments sends fragmented traffic through a real ulbd with real kernels at both
// ends: echo requests the client's kernel fragments, to ulbd's own addresses, which ulbd
// reassembles and answers (RFC 1122 section 3.3.2, RFC 8200 section 4.5); 3000-byte UDP
// datagrams in transit, whose fragments ulbd forwards as they are, both ways (RFC 8200
// section 4: IPv6 fragments other than the first were once dropped); and the same
// datagrams through half-NAT VIPs, whose fragments follow their first one's flow, both
// families. A UDP echo server of the test's own, in the server's namespace, sends each
// datagram back whole, so the answers are fragmented by the server's kernel too.
func TestFragments(t *testing.T) {
	testenv.NeedTool(t, "ping")
	b := upBench(t, "testdata/fragments/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	exec := func(t *testing.T, host string, argv ...string) string {
		t.Helper()
		out, err := b.Exec(ctx, host, argv...)
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", host, strings.Join(argv, " "), err, out)
		}
		return string(out)
	}
	echo := startUDPEcho(t, b.Namespace("srv"), ":7007")

	t.Run("echo to ulbd", func(t *testing.T) {
		// Route MTUs towards ulbd's addresses that make the client's kernel fragment: a
		// 560-byte IPv4 echo in two fragments, a 1448-byte IPv6 one in two.
		exec(t, "cli", "ip", "route", "replace", "192.0.2.1/32", "dev", "eth0", "mtu", "lock", "552")
		exec(t, "cli", "ip", "-6", "route", "replace", "2001:db8:1::1/128", "dev", "eth0", "mtu", "1280")
		before := reassembled(t)
		c4, c6 := fragCreates(t, exec), fragCreates6(t, exec)
		out := exec(t, "cli", "ping", "-n", "-c", "3", "-W", "2", "-s", "532", "-M", "dont", "192.0.2.1")
		if !strings.Contains(out, "3 received") {
			t.Errorf("ping 192.0.2.1 with 560-byte packets:\n%s", out)
		}
		out = exec(t, "cli", "ping", "-6", "-n", "-c", "3", "-W", "2", "-s", "1400", "-M", "dont", "2001:db8:1::1")
		if !strings.Contains(out, "3 received") {
			t.Errorf("ping 2001:db8:1::1 with 1400 bytes:\n%s", out)
		}
		if n := fragCreates(t, exec) - c4; n < 6 {
			t.Errorf("the client's kernel made %d IPv4 fragments, want at least 6 (2 per request)", n)
		}
		if n := fragCreates6(t, exec) - c6; n < 6 {
			t.Errorf("the client's kernel made %d IPv6 fragments, want at least 6", n)
		}
		if n := reassembled(t) - before; n != 6 {
			t.Errorf("ulbd reassembled %d datagrams, want 6", n)
		}
	})

	t.Run("udp in transit", func(t *testing.T) {
		before := reassembly(t)
		c4, c6 := fragCreates(t, exec), fragCreates6(t, exec)
		for _, to := range []string{"198.51.100.2:7007", "[2001:db8:2::2]:7007"} {
			from := exchangeUDP(t, b.Namespace("cli"), to, 3000, echo)
			if want := pick(strings.HasPrefix(to, "["), "192.0.2.2", "2001:db8:1::2"); from.Addr().String() != want {
				t.Errorf("%s: the server saw %s, want the client %s", to, from, want)
			}
		}
		if fragCreates(t, exec) == c4 || fragCreates6(t, exec) == c6 {
			t.Error("the client's kernel did not fragment the datagrams")
		}
		if after := reassembly(t); after.Fragments != before.Fragments {
			t.Errorf("ulbd took %d transit fragments for itself", after.Fragments-before.Fragments)
		}
	})

	t.Run("udp through half-nat VIP", func(t *testing.T) {
		before := reassembly(t)
		for _, to := range []string{"192.0.2.100:7000", "[2001:db8:1::100]:7000"} {
			// The answer must come back from the VIP: the client's socket is connected
			// to it and would not take anything else.
			from := exchangeUDP(t, b.Namespace("cli"), to, 3000, echo)
			if want := pick(strings.HasPrefix(to, "["), "192.0.2.2", "2001:db8:1::2"); from.Addr().String() != want {
				t.Errorf("%s: the server saw %s, want the client %s (half-NAT keeps it)", to, from, want)
			}
		}
		if after := reassembly(t); after.Fragments != before.Fragments {
			t.Errorf("ulbd took %d fragments of balanced flows for itself", after.Fragments-before.Fragments)
		}
		var st control.StatsInfo
		ulbadm(t, fragSocket, &st, "show-stats")
		if n := st.Drops["lb-rewrite"]; n != 0 {
			t.Errorf("%d packets of the flows could not be rewritten", n)
		}
	})
}

func pick[T any](second bool, a, b T) T {
	if second {
		return b
	}
	return a
}

// reassembly reads ulbd's reassembly counters.
func reassembly(t *testing.T) control.ReassemblyInfo {
	t.Helper()
	var st control.StatsInfo
	ulbadm(t, fragSocket, &st, "show-stats")
	if st.Reassembly == nil {
		return control.ReassemblyInfo{}
	}
	return *st.Reassembly
}

func reassembled(t *testing.T) uint64 { return reassembly(t).Reassembled }

// fragCreates reads the client's Ip FragCreates counter (/proc/net/snmp).
func fragCreates(t *testing.T, exec func(*testing.T, string, ...string) string) uint64 {
	t.Helper()
	lines := strings.Split(exec(t, "cli", "cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "Ip:" || len(values) != len(names) || values[0] != "Ip:" {
			continue
		}
		for j, n := range names {
			if n == "FragCreates" {
				v, _ := strconv.ParseUint(values[j], 10, 64)
				return v
			}
		}
	}
	t.Fatal("no FragCreates in /proc/net/snmp")
	return 0
}

// fragCreates6 reads the client's Ip6FragCreates counter (/proc/net/snmp6).
func fragCreates6(t *testing.T, exec func(*testing.T, string, ...string) string) uint64 {
	t.Helper()
	for _, line := range strings.Split(exec(t, "cli", "cat", "/proc/net/snmp6"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Ip6FragCreates" {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v
		}
	}
	t.Fatal("no Ip6FragCreates in /proc/net/snmp6")
	return 0
}

// udpEcho is a UDP echo server in a namespace: it sends every datagram back as it came
// and remembers who sent the last one of each size.
type udpEcho struct {
	mu   sync.Mutex
	from map[int]netip.AddrPort
}

func (e *udpEcho) sender(n int) netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.from[n]
}

func startUDPEcho(t *testing.T, ns, addr string) *udpEcho {
	t.Helper()
	var pc net.PacketConn
	err := netns.Do(ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("udp echo in %s: %v", ns, err)
	}
	e := &udpEcho{from: map[int]netip.AddrPort{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			ap := from.(*net.UDPAddr).AddrPort()
			e.from[n] = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			e.mu.Unlock()
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return e
}

// exchangeUDP sends an n-byte datagram from the namespace ns to addr and waits for the
// same bytes back, retrying a few times (the first datagrams may meet neighbour
// resolution). It returns the address the echo server saw the datagram from.
func exchangeUDP(t *testing.T, ns, addr string, n int, echo *udpEcho) netip.AddrPort {
	t.Helper()
	var c net.Conn
	if err := netns.Do(ns, func() error {
		var err error
		c, err = net.Dial("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	msg := make([]byte, n)
	for i := range msg {
		msg[i] = byte(i*31 + 7)
	}
	buf := make([]byte, 65535)
	var last error
	for try := 0; try < 5; try++ {
		if _, err := c.Write(msg); err != nil {
			last = err
			time.Sleep(500 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		k, err := c.Read(buf)
		if err != nil {
			last = err
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				time.Sleep(500 * time.Millisecond)
			}
			continue
		}
		if !bytes.Equal(buf[:k], msg) {
			t.Fatalf("%s: %d bytes came back, not the %d sent", addr, k, n)
		}
		return echo.sender(n)
	}
	t.Fatalf("%s: no echo of a %d-byte datagram: %v", addr, n, fmt.Errorf("last: %w", last))
	return netip.AddrPort{}
}
