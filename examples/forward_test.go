package examples

import (
	"context"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"ulb/bench"
	"ulb/internal/testenv"
	"ulb/router/control"
)

const fwdSocket = "/run/ulb/ulbt-fwd.sock"

// TestForwarding drives the forwarding core end to end: a real ulbd owns r1's two NICs
// (no kernel address on them, kernel forwarding off), the client and the server keep
// their default offloads, and ulbd's right port is held at a 1400-byte MTU.
func TestForwarding(t *testing.T) {
	testenv.NeedTool(t, "ping") // ping -t and -M do, beyond what the ping check does
	b := upBench(t, "testdata/forward/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	check := func(t *testing.T, c bench.Check) {
		t.Helper()
		r := b.Check(ctx, c)
		t.Log(r)
		if !r.Pass {
			t.Fatalf("%s", r)
		}
	}

	t.Run("kernel stays out", func(t *testing.T) {
		for _, dev := range []string{"left", "right"} {
			out, err := b.Exec(ctx, "r1", "ip", "-o", "addr", "show", "dev", dev)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), "inet") {
				t.Errorf("r1's kernel holds an address on %s: %s", dev, out)
			}
		}
		for _, key := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			out, err := b.Exec(ctx, "r1", "cat", "/proc/sys/"+key)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(out)) != "0" {
				t.Errorf("%s = %s in r1, want 0", key, out)
			}
		}
		// ulbd drops the owned NICs' frames at ingress once its sockets have them: r1's
		// kernel receives no IP packet while traffic crosses.
		var ports []control.PortInfo
		ulbadm(t, fwdSocket, &ports, "show-port")
		for _, p := range ports {
			if p.Kind == "afpacket" && p.KernelRX != "dropped" {
				t.Errorf("port %s: kernel_rx %q, want dropped", p.Name, p.KernelRX)
			}
		}
		before := kernelIPReceives(t, b, "r1")
		check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "198.51.100.2", Count: 3})
		check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "2001:db8:2::2", Count: 3})
		check(t, bench.Check{Type: bench.CheckUDP, From: "client", To: "198.51.100.2:53", ExpectName: "server"})
		if after := kernelIPReceives(t, b, "r1"); after != before {
			t.Errorf("r1's kernel received %d IP packets while ulbd forwarded", after-before)
		}
	})

	// PMTU first, while the client has no path MTU cached: its TCP starts with 1500-byte
	// segments (the server advertises an MSS of 1460), ulbd answers fragmentation-needed
	// and packet-too-big, and the transfers still complete.
	before := stats(t, fwdSocket)
	check(t, bench.Check{Type: bench.CheckTransfer, From: "client", To: "198.51.100.2:9000", Bytes: 1 << 30, Timeout: 5 * time.Minute})
	check(t, bench.Check{Type: bench.CheckTransfer, From: "client", To: "[2001:db8:2::2]:9000", Bytes: 64 << 20})
	after := stats(t, fwdSocket)
	if after.Drops["too-big"] <= before.Drops["too-big"] {
		t.Errorf("no fragmentation-needed or packet-too-big was sent (too-big drops %d -> %d)", before.Drops["too-big"], after.Drops["too-big"])
	}
	if after.ICMPSent <= before.ICMPSent {
		t.Errorf("no ICMP error counted (%d -> %d)", before.ICMPSent, after.ICMPSent)
	}

	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "198.51.100.2", Count: 3})
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "2001:db8:2::2", Count: 3})
	check(t, bench.Check{Type: bench.CheckPing, From: "server", To: "192.0.2.1", Count: 2})
	check(t, bench.Check{Type: bench.CheckPing, From: "server", To: "2001:db8:1::1", Count: 2})

	t.Run("neighbour caches", func(t *testing.T) {
		var neigh []control.NeighInfo
		ulbadm(t, fwdSocket, &neigh, "show-neigh")
		want := map[string]string{"192.0.2.2": "left", "2001:db8:1::2": "left", "198.51.100.2": "right", "2001:db8:2::2": "right"}
		for _, n := range neigh {
			if port, ok := want[n.Address]; ok && n.Port == port && n.MAC != "" {
				delete(want, n.Address)
			}
		}
		if len(want) != 0 {
			t.Errorf("show-neigh lacks resolved entries for %v: %+v", want, neigh)
		}
	})

	check(t, bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.2:80", Count: 1000, ExpectNames: []string{"server"}, Timeout: 3 * time.Minute})
	check(t, bench.Check{Type: bench.CheckUDP, From: "client", To: "198.51.100.2:53", ExpectName: "server"})
	check(t, bench.Check{Type: bench.CheckUDP, From: "server", To: "192.0.2.2:53", ExpectName: "client"})
	check(t, bench.Check{Type: bench.CheckUDP, From: "client", To: "[2001:db8:2::2]:53", ExpectName: "server"})
	check(t, bench.Check{Type: bench.CheckUDP, From: "server", To: "[2001:db8:1::2]:53", ExpectName: "client"})

	t.Run("ttl and hop limit exceeded", func(t *testing.T) {
		out, _ := b.Exec(ctx, "client", "ping", "-n", "-c", "1", "-W", "2", "-t", "1", "198.51.100.2")
		if !strings.Contains(string(out), "From 192.0.2.1") || !strings.Contains(string(out), "Time to live exceeded") {
			t.Errorf("ping -t 1 did not get time-exceeded from 192.0.2.1:\n%s", out)
		}
		out, _ = b.Exec(ctx, "client", "ping", "-6", "-n", "-c", "1", "-W", "2", "-t", "1", "2001:db8:2::2")
		if !strings.Contains(string(out), "From 2001:db8:1::1") || !strings.Contains(string(out), "Time exceeded") {
			t.Errorf("ping -6 -t 1 did not get time-exceeded from 2001:db8:1::1:\n%s", out)
		}
	})

	t.Run("fragmentation needed", func(t *testing.T) {
		// A fresh destination, so no path MTU is cached for it.
		out, _ := b.Exec(ctx, "server", "ip", "addr", "add", "198.51.100.3/24", "dev", "eth0")
		t.Log(string(out))
		out, _ = b.Exec(ctx, "client", "ping", "-n", "-c", "2", "-W", "2", "-M", "do", "-s", "1472", "198.51.100.3")
		if !strings.Contains(string(out), "mtu = 1400") {
			t.Errorf("a 1500-byte DF ping did not learn mtu 1400:\n%s", out)
		}
	})

	// r1's own kernel sits behind the TUN port: its traffic crosses ulbd to the server.
	t.Run("tun port", func(t *testing.T) {
		for _, args := range [][]string{
			{"ip", "addr", "add", "203.0.113.2/30", "dev", "ulbtun0"},
			{"ip", "route", "add", "198.51.100.0/24", "via", "203.0.113.1"},
		} {
			if out, err := b.Exec(ctx, "r1", args...); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
		check(t, bench.Check{Type: bench.CheckPing, From: "r1", To: "203.0.113.1", Count: 2})
		check(t, bench.Check{Type: bench.CheckPing, From: "r1", To: "198.51.100.2", Count: 2})
		check(t, bench.Check{Type: bench.CheckTCP, From: "r1", To: "198.51.100.2:80", ExpectName: "server"})
		check(t, bench.Check{Type: bench.CheckTransfer, From: "r1", To: "198.51.100.2:9000", Bytes: 32 << 20})
	})

	t.Run("malformed frames", func(t *testing.T) {
		var ports []control.PortInfo
		ulbadm(t, fwdSocket, &ports, "show-port", "left")
		routerMAC, err := net.ParseMAC(ports[0].MAC)
		if err != nil {
			t.Fatal(err)
		}
		before := stats(t, fwdSocket)
		frames, want := malformedFrames(t, routerMAC)
		inject(t, b.Namespace("client"), "eth0", routerMAC, frames)
		deadline := time.Now().Add(5 * time.Second)
		var after control.StatsInfo
		for {
			after = stats(t, fwdSocket)
			ok := true
			for reason, n := range want {
				if after.Drops[reason]-before.Drops[reason] < n {
					ok = false
				}
			}
			if ok || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for reason, n := range want {
			if got := after.Drops[reason] - before.Drops[reason]; got != n {
				t.Errorf("drops[%s] grew by %d, want %d", reason, got, n)
			}
		}
		// Nothing broke.
		check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "198.51.100.2", Count: 2})
		check(t, bench.Check{Type: bench.CheckTCP, From: "client", To: "198.51.100.2:80", ExpectName: "server"})
	})
}

// kernelIPReceives is the sum of a host kernel's Ip InReceives and Ip6InReceives.
func kernelIPReceives(t *testing.T, b *bench.Bench, host string) uint64 {
	t.Helper()
	out, err := b.Exec(context.Background(), host, "cat", "/proc/net/snmp", "/proc/net/snmp6")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var sum uint64
	var ipKeys []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Ip6InReceives":
			n, _ := strconv.ParseUint(f[1], 10, 64)
			sum += n
		case len(f) > 1 && f[0] == "Ip:" && ipKeys == nil:
			ipKeys = f
		case len(f) > 1 && f[0] == "Ip:":
			for i, k := range ipKeys {
				if k == "InReceives" && i < len(f) {
					n, _ := strconv.ParseUint(f[i], 10, 64)
					sum += n
				}
			}
		}
	}
	if ipKeys == nil {
		t.Fatalf("no Ip: line in %s's /proc/net/snmp", host)
	}
	return sum
}

func stats(t *testing.T, socket string) control.StatsInfo {
	t.Helper()
	var s control.StatsInfo
	ulbadm(t, socket, &s, "show-stats")
	return s
}

// malformedFrames builds broken frames from the client to the router and the drop
// reason each must be counted under.
func malformedFrames(t *testing.T, routerMAC net.HardwareAddr) ([][]byte, map[string]uint64) {
	t.Helper()
	clientMAC := net.HardwareAddr{0x02, 0, 0, 0, 0xee, 1}
	udp4 := func() []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: net.ParseIP("192.0.2.2"), DstIP: net.ParseIP("198.51.100.2")}
		u := &layers.UDP{SrcPort: 1, DstPort: 9}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: clientMAC, DstMAC: routerMAC, EthernetType: layers.EthernetTypeIPv4},
			ip, u, gopacket.Payload("malformed"))
	}
	udp6 := func() []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
			SrcIP: net.ParseIP("2001:db8:1::2"), DstIP: net.ParseIP("2001:db8:2::2")}
		u := &layers.UDP{SrcPort: 1, DstPort: 9}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: clientMAC, DstMAC: routerMAC, EthernetType: layers.EthernetTypeIPv6},
			ip, u, gopacket.Payload("malformed"))
	}
	var frames [][]byte
	want := map[string]uint64{}
	add := func(f []byte, reason string) {
		frames = append(frames, f)
		want[reason]++
	}
	f := udp4()
	f[14] = 0x44 // IHL 4: shorter than an IPv4 header
	add(f, "ipv4-header")
	f = udp4()
	f[16], f[17] = 0x05, 0xdc // total length 1500 in a short frame
	add(f, "ipv4-header")
	f = udp4()
	f[14] = 0x65 // version 6 in an IPv4 frame
	add(f, "ipv4-header")
	f = udp4()
	f[24] ^= 0x5a // header checksum
	add(f, "ipv4-checksum")
	add(udp4()[:14+12], "ipv4-header") // truncated header
	f = udp6()
	f[18], f[19] = 0x40, 0x00 // payload length 16384 in a short frame
	add(f, "ipv6-header")
	f = udp6()
	f[20] = 0 // next header hop-by-hop, whose length runs past the packet
	f[54+1] = 200
	add(f, "ipv6-header")
	add(udp6()[:14+30], "ipv6-header")
	f = udp4()
	f[12], f[13] = 0x88, 0xb5 // local experimental EtherType
	add(f, "ethertype")
	return frames, want
}

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), sb.Bytes()...)
}

// inject writes raw frames on dev inside the network namespace ns, from a thread that
// entered it (and dies with its goroutine, never going back to another namespace).
func inject(t *testing.T, ns, dev string, dst net.HardwareAddr, frames [][]byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		errc <- func() error {
			fd, err := os.Open("/run/netns/" + ns)
			if err != nil {
				return err
			}
			defer fd.Close()
			if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
				return err
			}
			ifi, err := net.InterfaceByName(dev)
			if err != nil {
				return err
			}
			c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
			if err != nil {
				return err
			}
			defer c.Close()
			for _, f := range frames {
				if _, err := c.WriteTo(f, &packet.Addr{HardwareAddr: dst}); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("inject in %s: %v", ns, err)
	}
}
