package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ulb/bench/netns"
	"ulb/internal/testenv"
)

// veth creates two namespaces joined by a veth pair eth0 <-> eth0, with 192.0.2.1/24 on
// the first and 192.0.2.2/24 on the second, removed when the test ends.
func vethPair(t *testing.T) (a, b string) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip")
	a = fmt.Sprintf("ulbt-lg%d-a", os.Getpid())
	b = fmt.Sprintf("ulbt-lg%d-b", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{a, b} {
		run("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run("-n", ns, "link", "set", "lo", "up")
	}
	run("-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	run("-n", a, "addr", "add", "192.0.2.1/24", "dev", "eth0")
	run("-n", b, "addr", "add", "192.0.2.2/24", "dev", "eth0")
	run("-n", a, "link", "set", "eth0", "up")
	run("-n", b, "link", "set", "eth0", "up")
	for i := 0; i < 100; i++ {
		out, _ := exec.Command("ip", "-n", a, "-br", "link", "show", "eth0").Output()
		if f := strings.Fields(string(out)); len(f) > 1 && f[1] == "UP" {
			return a, b
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("veth not up after 2s")
	return
}

// TestSendDeliversValidFrames sends rate-limited frames to a UDP socket: the receiving
// kernel drops datagrams with bad checksums, so every frame the sender's kernel accepted
// must arrive, from every flow's source port.
func TestSendDeliversValidFrames(t *testing.T) {
	a, b := vethPair(t)
	var conn *net.UDPConn
	if err := netns.Do(b, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.2:9999")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	got := 0
	ports := map[int]bool{}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if n == payloadLen && bytes.HasPrefix(buf[:n], []byte("ulb loadgen")) {
				mu.Lock()
				got++
				ports[from.Port] = true
				mu.Unlock()
			}
		}
	}()

	const rate, flows = 2000, 16
	cfg := SendConfig{Dst: netip.MustParseAddr("192.0.2.2"), DstPort: 9999, Flows: flows, Duration: 300 * time.Millisecond, Rate: rate}
	var rep SendReport
	if err := netns.Do(a, func() error {
		var err error
		rep, err = Send(context.Background(), cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %+v", rep)
	if rep.Sent == 0 || rep.Accepted+rep.TxErrors != rep.Sent || rep.Device != "eth0" || rep.Src != "192.0.2.1" {
		t.Fatalf("report %+v", rep)
	}
	// The limiter never runs ahead of its schedule by more than one frame.
	if limit := uint64(float64(rate)*rep.Elapsed().Seconds()) + 1; rep.Sent > limit {
		t.Errorf("sent %d frames in %v at %d/s: more than %d", rep.Sent, rep.Elapsed(), rate, limit)
	}
	var n int
	for i := 0; i < 100; i++ {
		mu.Lock()
		n = got
		mu.Unlock()
		if uint64(n) >= rep.Accepted {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if uint64(n) != rep.Accepted {
		t.Errorf("received %d datagrams, the sender's kernel accepted %d", n, rep.Accepted)
	}
	if rep.Sent >= flows && len(ports) != flows {
		t.Errorf("%d distinct source ports, want %d", len(ports), flows)
	}
}

func TestSendFullSpeedAndErrors(t *testing.T) {
	a, _ := vethPair(t)
	var rep SendReport
	if err := netns.Do(a, func() error {
		var err error
		rep, err = Send(context.Background(), SendConfig{Dst: netip.MustParseAddr("192.0.2.2"), Duration: 200 * time.Millisecond,
			DstMAC: "02:00:00:00:00:99", Senders: 2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("full speed: %+v (%.0f pps)", rep, rep.PPS)
	if rep.Sent == 0 || rep.PPS <= 0 || rep.DstMAC != "02:00:00:00:00:99" || rep.Flows != DefaultFlows ||
		rep.Senders != 2 || rep.Accepted+rep.TxErrors != rep.Sent {
		t.Errorf("report %+v", rep)
	}
	err := netns.Do(a, func() error {
		_, err := Send(context.Background(), SendConfig{Dst: netip.MustParseAddr("203.0.113.1"), Duration: 100 * time.Millisecond})
		return err
	})
	if err == nil {
		t.Error("send without a route to the destination: no error")
	}
	for _, cfg := range []SendConfig{
		{Dst: netip.MustParseAddr("2001:db8::1"), Duration: time.Second},
		{Dst: netip.MustParseAddr("192.0.2.2"), Duration: time.Second, Senders: MaxSenders + 1},
		{Dst: netip.MustParseAddr("192.0.2.2"), Duration: time.Second, Senders: 4, Rate: 3},
		{Dst: netip.MustParseAddr("192.0.2.2"), Duration: time.Second, Batch: 5000},
		{Dst: netip.MustParseAddr("192.0.2.2")},
	} {
		if _, err := Send(context.Background(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// TestCountSinkStopsPortUnreachable checks that while Count holds its sink socket the
// receiver answers no ICMP port unreachable (a connected UDP socket would see
// ECONNREFUSED), and that without it the receiver does.
func TestCountSinkStopsPortUnreachable(t *testing.T) {
	a, b := vethPair(t)
	root, set := fakeStats(t, "eth0")
	set(0, 0)
	refused := func() bool {
		t.Helper()
		var got bool
		if err := netns.Do(a, func() error {
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.2:9999")))
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < 5 && !got; i++ {
				if _, err := c.Write([]byte("probe")); err != nil {
					got = errors.Is(err, syscall.ECONNREFUSED)
				}
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := c.Read(make([]byte, 16)); errors.Is(err, syscall.ECONNREFUSED) {
					got = true
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if !refused() {
		t.Fatal("no port unreachable without the sink: the test cannot tell")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- netns.Do(b, func() error {
			_, err := Count(ctx, CountConfig{Device: "eth0", Duration: 30 * time.Second, SysClassNet: root, SinkPort: 9999},
				func() { close(ready) })
			return err
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("count: %v", err)
	}
	if refused() {
		t.Error("port unreachable while the sink is bound")
	}
	// A second sink on the same port is refused with an error.
	if err := netns.Do(b, func() error {
		_, err := Count(context.Background(), CountConfig{Device: "eth0", Duration: time.Second, SysClassNet: root, SinkPort: 9999}, nil)
		return err
	}); err == nil {
		t.Error("a second sink on a bound port: no error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSendWaitsOnFullBuffer slows the sender's interface with a token bucket so that the
// socket's send buffer fills: the non-blocking sendmmsg then finds it full, the sender
// falls back to a blocking call, and no frame is refused or lost.
func TestSendWaitsOnFullBuffer(t *testing.T) {
	a, _ := vethPair(t)
	testenv.NeedTool(t, "tc")
	if out, err := exec.Command("ip", "netns", "exec", a, "tc", "qdisc", "add", "dev", "eth0", "root",
		"tbf", "rate", "8mbit", "burst", "4kb", "limit", "4mb").CombinedOutput(); err != nil {
		t.Fatalf("tc qdisc add: %v: %s", err, out)
	}
	var rep SendReport
	if err := netns.Do(a, func() error {
		var err error
		rep, err = Send(context.Background(), SendConfig{Dst: netip.MustParseAddr("192.0.2.2"), Duration: 300 * time.Millisecond,
			DstMAC: "02:00:00:00:00:99"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("through 8 Mbit/s: %+v (%.0f pps)", rep, rep.PPS)
	if rep.Blocked == 0 {
		t.Errorf("no sendmmsg found the send buffer full: %+v", rep)
	}
	if rep.TxErrors != 0 || rep.Accepted != rep.Sent || rep.Sent == 0 {
		t.Errorf("frames refused or lost while waiting: %+v", rep)
	}
	// 8 Mbit/s of 60-byte frames is under 17000 frames a second: the sender was held back.
	if rep.PPS > 100000 {
		t.Errorf("%.0f pps through an 8 Mbit/s bucket: the sender did not wait", rep.PPS)
	}
}

// TestCountSinkDrop checks that with SinkDrop the sink's datagrams never reach the
// receiver's UDP layer (its InDatagrams and RcvbufErrors stay put), while with the socket
// alone they do, and that the report names the sink.
func TestCountSinkDrop(t *testing.T) {
	a, b := vethPair(t)
	root, set := fakeStats(t, "eth0") // this thread's sysfs is not b's
	set(0, 0)
	udpSeen := func() uint64 { // InDatagrams + RcvbufErrors of b's kernel
		t.Helper()
		var sum uint64
		if err := netns.Do(b, func() error {
			data, err := os.ReadFile("/proc/thread-self/net/snmp")
			if err != nil {
				return err
			}
			var keys []string
			for _, line := range strings.Split(string(data), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 || f[0] != "Udp:" {
					continue
				}
				if keys == nil {
					keys = f
					continue
				}
				for i, k := range keys {
					if (k == "InDatagrams" || k == "RcvbufErrors") && i < len(f) {
						n, _ := strconv.ParseUint(f[i], 10, 64)
						sum += n
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return sum
	}
	send := func() {
		t.Helper()
		if err := netns.Do(a, func() error {
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.2:9999")))
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < 50; i++ {
				c.Write([]byte("sink me"))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, drop := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan CountReport, 1)
		errc := make(chan error, 1)
		go func() {
			errc <- netns.Do(b, func() error {
				rep, err := Count(ctx, CountConfig{Device: "eth0", Duration: 30 * time.Second, SysClassNet: root, SinkPort: 9999, SinkDrop: drop},
					func() { close(ready) })
				done <- rep
				return err
			})
		}()
		select {
		case <-ready:
		case err := <-errc:
			cancel()
			t.Fatalf("count: %v", err)
		}
		before := udpSeen()
		send()
		grew := udpSeen() - before
		cancel()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		rep := <-done
		switch {
		case drop && (rep.Sink != "ingress-drop" || grew != 0):
			t.Errorf("with SinkDrop: sink %q (%s), the UDP layer saw %d datagrams", rep.Sink, rep.SinkNote, grew)
		case !drop && (rep.Sink != "socket" || grew < 40): // the first few may wait on ARP
			t.Errorf("socket sink: sink %q, the UDP layer saw %d of 50 datagrams", rep.Sink, grew)
		}
	}
}
