package examples

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"ulb/internal/testenv"
	"ulb/router/control"
)

const l2Socket = "/run/ulb/ulbt-l2.sock"

// TestL2Rules checks, with a real ulbd on real links, the rules of RFC 1812 and RFC
// 4861 about broadcasts and redirects: a unicast packet in a link-layer broadcast or
// multicast frame is not forwarded, directed broadcasts go only where a port allows
// them, echoes to broadcast addresses are not answered, and a host whose packets r1
// sends back onto their own link is redirected to the better router, which its kernel
// then uses.
func TestL2Rules(t *testing.T) {
	testenv.NeedTool(t, "ping")
	b := upBench(t, "testdata/l2/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	exec := func(host string, argv ...string) (string, error) {
		out, err := b.Exec(ctx, host, argv...)
		return string(out), err
	}
	// Warm the neighbour caches both ways.
	for _, to := range []string{"198.51.100.2", "2001:db8:2::2", "198.51.100.130"} {
		if out, err := exec("client", "ping", "-n", "-c", "2", "-W", "2", to); err != nil {
			t.Fatalf("ping %s: %v\n%s", to, err, out)
		}
	}
	var ports []control.PortInfo
	ulbadm(t, l2Socket, &ports, "show-port")
	for _, p := range ports {
		want := [2]bool{p.Name == "right", p.Kind == "afpacket"} // directed_broadcast, redirects
		if got := [2]bool{p.DirectedBroadcast, p.Redirects}; got != want {
			t.Errorf("show-port %s: directed_broadcast, redirects = %v, want %v", p.Name, got, want)
		}
	}
	ulbadm(t, l2Socket, &ports, "show-port", "left")
	r1MAC, err := net.ParseMAC(ports[0].MAC)
	if err != nil {
		t.Fatal(err)
	}
	clientMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x12, 1}
	udp := func(dstMAC net.HardwareAddr, src, dst string, marker string) []byte {
		s, d := net.ParseIP(src), net.ParseIP(dst)
		u := &layers.UDP{SrcPort: 40001, DstPort: 9}
		if s.To4() != nil {
			ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: s.To4(), DstIP: d.To4()}
			u.SetNetworkLayerForChecksum(ip)
			return serialize(t, &layers.Ethernet{SrcMAC: clientMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4},
				ip, u, gopacket.Payload(marker))
		}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: s, DstIP: d}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: clientMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv6},
			ip, u, gopacket.Payload(marker))
	}
	broadcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	t.Run("link-layer broadcast and multicast not forwarded", func(t *testing.T) {
		before := stats(t, l2Socket)
		atServer := l2Capture(t, b.Namespace("server"), "eth0")
		atGW := l2Capture(t, b.Namespace("gw"), "eth0")
		inject(t, b.Namespace("client"), "eth0", broadcast, [][]byte{
			udp(broadcast, "192.0.2.2", "198.51.100.2", "l2-broadcast"),
			udp(net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}, "192.0.2.2", "198.51.100.2", "l2-multicast"),
			udp(net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}, "2001:db8:1::2", "2001:db8:2::2", "l2-multicast6"),
			udp(broadcast, "192.0.2.2", "203.0.113.7", "l2-back-onto-the-lan"),
			udp(r1MAC, "192.0.2.2", "198.51.100.2", "l2-unicast"), // the control case
		})
		server := atServer.until(t, 5*time.Second, hasMarker("l2-unicast"))
		gw := atGW.stop()
		for _, m := range []string{"l2-broadcast", "l2-multicast", "l2-multicast6"} {
			if n := count(server, hasMarker(m)); n != 0 {
				t.Errorf("%s: %d frames reached the server, want none", m, n)
			}
		}
		// The broadcast to a gw address reaches gw through the bridge, but r1 must not
		// send it back onto the LAN.
		if n := count(gw, func(p gopacket.Packet) bool { return hasMarker("l2-back-onto-the-lan")(p) && fromMAC(p, r1MAC) }); n != 0 {
			t.Errorf("r1 sent %d copies of the broadcast back onto the LAN", n)
		}
		after := waitDrops(t, before, "link-broadcast", 4)
		if got := after.Drops["link-broadcast"] - before.Drops["link-broadcast"]; got != 4 {
			t.Errorf("link-broadcast drops grew by %d, want 4", got)
		}
	})

	t.Run("directed broadcasts", func(t *testing.T) {
		before := stats(t, l2Socket)
		atServer := l2Capture(t, b.Namespace("server"), "eth0")
		atDMZ := l2Capture(t, b.Namespace("dmz"), "eth0")
		inject(t, b.Namespace("client"), "eth0", r1MAC, [][]byte{
			udp(r1MAC, "192.0.2.2", "198.51.100.255", "l2-dmz-broadcast"),   // dmz: not allowed
			udp(r1MAC, "192.0.2.2", "198.51.100.127", "l2-right-broadcast"), // right: allowed
		})
		server := atServer.until(t, 5*time.Second, hasMarker("l2-right-broadcast"))
		dmz := atDMZ.stop()
		for _, p := range server {
			if hasMarker("l2-right-broadcast")(p) {
				if e := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(e.DstMAC, broadcast) {
					t.Errorf("directed broadcast forwarded to %s, want the link-layer broadcast", e.DstMAC)
				}
			}
		}
		if n := count(dmz, hasMarker("l2-dmz-broadcast")); n != 0 {
			t.Errorf("%d directed broadcasts reached the dmz, whose port does not allow them", n)
		}
		after := waitDrops(t, before, "directed-broadcast", 1)
		if got := after.Drops["directed-broadcast"] - before.Drops["directed-broadcast"]; got != 1 {
			t.Errorf("directed-broadcast drops grew by %d, want 1", got)
		}
		// No echo reply from r1 to a broadcast echo: the LAN's directed broadcast and the
		// limited broadcast (RFC 1122 §3.2.2.6), nor to the dmz's directed broadcast.
		before = stats(t, l2Socket)
		for _, argv := range [][]string{
			{"ping", "-n", "-b", "-c", "2", "-W", "1", "192.0.2.255"},
			{"ping", "-n", "-b", "-c", "2", "-W", "1", "-I", "eth0", "255.255.255.255"},
			{"ping", "-n", "-c", "2", "-W", "1", "198.51.100.255"},
		} {
			out, _ := exec("client", argv...)
			if strings.Contains(out, "from 192.0.2.1") || strings.Contains(out, "from 198.51.100.1") || strings.Contains(out, "from 198.51.100.129") {
				t.Errorf("%s: r1 answered:\n%s", strings.Join(argv, " "), out)
			}
		}
		after = waitDrops(t, before, "broadcast", 4)
		if got := after.Drops["broadcast"] - before.Drops["broadcast"]; got != 4 {
			t.Errorf("broadcast drops grew by %d, want 4 (two echoes to each broadcast of the LAN)", got)
		}
	})

	t.Run("redirects", func(t *testing.T) {
		before := stats(t, l2Socket)
		for _, c := range []struct{ to, gw string }{
			{"203.0.113.7", "via 192.0.2.3"},
			{"2001:db8:3::7", "via fe80::3"},
		} {
			if out, err := exec("client", "ping", "-n", "-c", "4", "-i", "0.2", "-W", "2", c.to); err != nil {
				t.Errorf("ping %s through r1: %v\n%s", c.to, err, out)
			}
			out, err := exec("client", "ip", "route", "get", c.to)
			if err != nil {
				t.Fatalf("ip route get %s: %v\n%s", c.to, err, out)
			}
			if !strings.Contains(out, c.gw) {
				t.Errorf("the client's route to %s does not follow the redirect (%s):\n%s", c.to, c.gw, out)
			}
		}
		if after := stats(t, l2Socket); after.ICMPSent <= before.ICMPSent {
			t.Errorf("no redirect counted (icmp sent %d -> %d)", before.ICMPSent, after.ICMPSent)
		}
		// Redirected, the client reaches gw directly; the ping still works.
		if out, err := exec("client", "ping", "-n", "-c", "2", "-W", "2", "203.0.113.7"); err != nil {
			t.Errorf("ping after the redirect: %v\n%s", err, out)
		}
	})
}

// waitDrops polls ulbd's counters until the drops of reason grew by want, or a
// timeout, and returns the last snapshot.
func waitDrops(t *testing.T, before control.StatsInfo, reason string, want uint64) control.StatsInfo {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := stats(t, l2Socket)
		if after.Drops[reason]-before.Drops[reason] >= want || time.Now().After(deadline) {
			return after
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasMarker(m string) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		return ok && string(u.Payload) == m
	}
}

func fromMAC(p gopacket.Packet, mac net.HardwareAddr) bool {
	e, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	return ok && bytes.Equal(e.SrcMAC, mac)
}

func count(ps []gopacket.Packet, match func(gopacket.Packet) bool) int {
	n := 0
	for _, p := range ps {
		if match(p) {
			n++
		}
	}
	return n
}

// l2Capturer collects the frames an interface receives, from an AF_PACKET socket
// opened inside the interface's namespace.
type l2Capturer struct {
	stopc  chan struct{}
	frames chan []gopacket.Packet
	seen   chan struct{} // closed when a frame matching want arrived
	wantc  chan func(gopacket.Packet) bool
}

// l2Capture starts capturing on dev inside namespace ns and returns once the socket is
// open.
func l2Capture(t *testing.T, ns, dev string) *l2Capturer {
	t.Helper()
	c := &l2Capturer{stopc: make(chan struct{}), frames: make(chan []gopacket.Packet, 1), seen: make(chan struct{}),
		wantc: make(chan func(gopacket.Packet) bool, 1)}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		var got []gopacket.Packet
		defer func() { c.frames <- got }()
		fd, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ready <- err
			return
		}
		err = unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET)
		fd.Close()
		if err != nil {
			ready <- err
			return
		}
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			ready <- err
			return
		}
		conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		if err != nil {
			ready <- err
			return
		}
		defer conn.Close()
		ready <- nil
		buf := make([]byte, 65536)
		var want func(gopacket.Packet) bool
		seen := false
		for {
			select {
			case <-c.stopc:
				return
			case want = <-c.wantc:
				for _, p := range got {
					if !seen && want(p) {
						seen = true
						close(c.seen)
					}
				}
			default:
			}
			conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					continue
				}
				return
			}
			p := gopacket.NewPacket(bytes.Clone(buf[:n]), layers.LayerTypeEthernet, gopacket.Default)
			got = append(got, p)
			if want != nil && !seen && want(p) {
				seen = true
				close(c.seen)
			}
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("capture in %s on %s: %v", ns, dev, err)
	}
	return c
}

// until waits for a frame that want accepts, then goes on capturing a little longer
// (for frames that must not come) and returns them all; it fails the test when none
// came within d.
func (c *l2Capturer) until(t *testing.T, d time.Duration, want func(gopacket.Packet) bool) []gopacket.Packet {
	t.Helper()
	c.wantc <- want
	select {
	case <-c.seen:
		time.Sleep(500 * time.Millisecond)
	case <-time.After(d):
		t.Errorf("capture: the expected frame did not arrive within %s", d)
	}
	return c.stop()
}

// stop ends the capture and returns what it got.
func (c *l2Capturer) stop() []gopacket.Packet {
	close(c.stopc)
	return <-c.frames
}
