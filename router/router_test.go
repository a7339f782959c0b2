package router

import (
	"bytes"
	"context"
	"errors"

	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/balancer/health/probe"
	"ulb/router/header"
	"ulb/router/port"
	"ulb/router/port/porttest"
)

var (
	macRouterL = net.HardwareAddr{0x02, 0, 0, 0, 1, 1}
	macHostL   = net.HardwareAddr{0x02, 0, 0, 0, 1, 2}
	macRouterR = net.HardwareAddr{0x02, 0, 0, 0, 2, 1}
	macHostR   = net.HardwareAddr{0x02, 0, 0, 0, 2, 2}

	routerL4 = netip.MustParseAddr("192.0.2.1")
	hostL4   = netip.MustParseAddr("192.0.2.2")
	routerR4 = netip.MustParseAddr("198.51.100.1")
	hostR4   = netip.MustParseAddr("198.51.100.2")
	routerL6 = netip.MustParseAddr("2001:db8:1::1")
	hostL6   = netip.MustParseAddr("2001:db8:1::2")
	routerR6 = netip.MustParseAddr("2001:db8:2::1")
	hostR6   = netip.MustParseAddr("2001:db8:2::2")
	remote4  = netip.MustParseAddr("203.0.113.5")   // behind hostR
	noroute4 = netip.MustParseAddr("203.0.113.200") // outside 203.0.113.0/25
	noroute6 = netip.MustParseAddr("2001:db8:ff::1")
)

// peer is a host on the far end of a porttest link: it answers ARP and NS for its
// addresses like a kernel would, and hands every frame it receives to the test.
type peer struct {
	p     *porttest.Port
	mac   net.HardwareAddr
	addrs []netip.Addr
	rx    chan []byte
}

func newPeer(p *porttest.Port, mac net.HardwareAddr, addrs ...netip.Addr) *peer {
	return &peer{p: p, mac: mac, addrs: addrs, rx: make(chan []byte, 256)}
}

func (h *peer) run(wg *sync.WaitGroup) {
	defer wg.Done()
	bufs := [][]byte{make([]byte, port.BufSize)}
	sizes := []int{0}
	for {
		n, err := h.p.Read(bufs, sizes, port.Headroom)
		if err != nil {
			close(h.rx)
			return
		}
		for i := 0; i < n; i++ {
			f := bytes.Clone(bufs[i][port.Headroom : port.Headroom+sizes[i]])
			h.answer(f)
			select {
			case h.rx <- f:
			default:
			}
		}
	}
}

func (h *peer) owns(a netip.Addr) bool {
	for _, x := range h.addrs {
		if x == a {
			return true
		}
	}
	return false
}

// answer replies to ARP requests and neighbour solicitations for the peer's addresses.
func (h *peer) answer(f []byte) {
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if a, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP); ok && a.Operation == layers.ARPRequest {
		tpa, _ := netip.AddrFromSlice(a.DstProtAddress)
		if !h.owns(tpa) {
			return
		}
		h.send(&layers.Ethernet{SrcMAC: h.mac, DstMAC: a.SourceHwAddress, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPReply, SourceHwAddress: h.mac, SourceProtAddress: tpa.AsSlice(),
				DstHwAddress: a.SourceHwAddress, DstProtAddress: a.SourceProtAddress})
		return
	}
	if ic, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && ic.TypeCode.Type() == layers.ICMPv4TypeEchoRequest {
		ip4 := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !h.owns(netip.AddrFrom4([4]byte(ip4.DstIP.To4()))) {
			return
		}
		h.send(&layers.Ethernet{SrcMAC: h.mac, DstMAC: eth.SrcMAC, EthernetType: layers.EthernetTypeIPv4},
			&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ip4.DstIP, DstIP: ip4.SrcIP},
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: ic.Id, Seq: ic.Seq},
			gopacket.Payload(ic.Payload))
		return
	}
	if ic, ok := pkt.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok && pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).TypeCode.Type() == layers.ICMPv6TypeEchoRequest {
		ip6 := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !h.owns(netip.AddrFrom16([16]byte(ip6.DstIP))) {
			return
		}
		ipl := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: ip6.DstIP, DstIP: ip6.SrcIP}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoReply, 0)}
		icmp.SetNetworkLayerForChecksum(ipl)
		h.send(&layers.Ethernet{SrcMAC: h.mac, DstMAC: eth.SrcMAC, EthernetType: layers.EthernetTypeIPv6}, ipl, icmp,
			&layers.ICMPv6Echo{Identifier: ic.Identifier, SeqNumber: ic.SeqNumber}, gopacket.Payload(ic.Payload))
		return
	}
	if tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && tcp.SYN && !tcp.ACK {
		// A listener on port 80 only.
		ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok || !h.owns(netip.AddrFrom4([4]byte(ip4.DstIP.To4()))) {
			return
		}
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ipl := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ip4.DstIP, DstIP: ip4.SrcIP}
		ans := &layers.TCP{SrcPort: tcp.DstPort, DstPort: tcp.SrcPort, Ack: tcp.Seq + 1, ACK: true, Window: 1000}
		if tcp.DstPort == 80 {
			ans.SYN, ans.Seq = true, 777
		} else {
			ans.RST = true
		}
		ans.SetNetworkLayerForChecksum(ipl)
		h.send(&layers.Ethernet{SrcMAC: h.mac, DstMAC: eth.SrcMAC, EthernetType: layers.EthernetTypeIPv4}, ipl, ans)
		return
	}
	if udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		// An echo service on port 7; anything else is unreachable.
		ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok || !h.owns(netip.AddrFrom4([4]byte(ip4.DstIP.To4()))) {
			return
		}
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ipl := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, SrcIP: ip4.DstIP, DstIP: ip4.SrcIP}
		e := &layers.Ethernet{SrcMAC: h.mac, DstMAC: eth.SrcMAC, EthernetType: layers.EthernetTypeIPv4}
		if udp.DstPort == 7 {
			ipl.Protocol = layers.IPProtocolUDP
			ans := &layers.UDP{SrcPort: udp.DstPort, DstPort: udp.SrcPort}
			ans.SetNetworkLayerForChecksum(ipl)
			h.send(e, ipl, ans, gopacket.Payload(udp.Payload))
		} else {
			ipl.Protocol = layers.IPProtocolICMPv4
			h.send(e, ipl, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)},
				gopacket.Payload(ip4.Contents), gopacket.Payload(udp.Contents))
		}
		return
	}
	if ns, ok := pkt.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation); ok {
		tgt, _ := netip.AddrFromSlice(ns.TargetAddress)
		if !h.owns(tgt) {
			return
		}
		ip6 := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ipl := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: tgt.AsSlice(), DstIP: ip6.SrcIP}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
		icmp.SetNetworkLayerForChecksum(ipl)
		h.send(&layers.Ethernet{SrcMAC: h.mac, DstMAC: eth.SrcMAC, EthernetType: layers.EthernetTypeIPv6}, ipl, icmp,
			&layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: ns.TargetAddress,
				Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: h.mac}}})
	}
}

func (h *peer) send(ls ...gopacket.SerializableLayer) {
	b := serialize(ls...)
	buf := make([]byte, port.Headroom+len(b))
	copy(buf[port.Headroom:], b)
	h.p.Write([][]byte{buf}, port.Headroom)
}

func (h *peer) sendRaw(frame []byte) {
	buf := make([]byte, port.Headroom+len(frame))
	copy(buf[port.Headroom:], frame)
	h.p.Write([][]byte{buf}, port.Headroom)
}

func serialize(ls ...gopacket.SerializableLayer) []byte {
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return bytes.Clone(sb.Bytes())
}

// expect returns the first frame the peer receives that match accepts, failing the test
// after a timeout.
func (h *peer) expect(t *testing.T, what string, match func(gopacket.Packet) bool) gopacket.Packet {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case f, ok := <-h.rx:
			if !ok {
				t.Fatalf("%s: link closed", what)
			}
			pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			if match(pkt) {
				return pkt
			}
		case <-deadline:
			t.Fatalf("%s: nothing arrived", what)
		}
	}
}

// expectNone fails if a frame that match accepts arrives within a short time.
func (h *peer) expectNone(t *testing.T, what string, match func(gopacket.Packet) bool) {
	t.Helper()
	deadline := time.After(300 * time.Millisecond)
	for {
		select {
		case f := <-h.rx:
			if match(gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)) {
				t.Fatalf("%s: unexpected frame", what)
			}
		case <-deadline:
			return
		}
	}
}

type testBench struct {
	r           *Router
	left, right *peer
}

// newTestBench runs a router between two in-memory links: left (1500 MTU) and right
// (1400 MTU), with a static route to 203.0.113.0/25 via the right host.
func newTestBench(t *testing.T) *testBench {
	t.Helper()
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1400)
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{
				netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:2::1/64")}},
		},
		Routes: []Route{{To: netip.MustParsePrefix("203.0.113.0/25"), Via: hostR4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return startBench(t, r, newPeer(hl, macHostL, hostL4, hostL6), newPeer(hr, macHostR, hostR4, hostR6))
}

// startBench runs r and the peers on its two links until the test ends.
func startBench(t *testing.T, r *Router, left, right *peer) *testBench {
	t.Helper()
	tb := &testBench{r: r, left: left, right: right}
	var wg sync.WaitGroup
	wg.Add(2)
	go tb.left.run(&wg)
	go tb.right.run(&wg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		left.p.Close()
		right.p.Close()
		wg.Wait()
	})
	return tb
}

func eth(src net.HardwareAddr, dst net.HardwareAddr, typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: typ}
}

func udp4(src, dst netip.Addr, ttl uint8, flags layers.IPv4Flag, payload []byte) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Id: 77, Flags: flags, Protocol: layers.IPProtocolUDP,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	u := &layers.UDP{SrcPort: 4000, DstPort: 5000}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip, u, gopacket.Payload(payload))
}

func udp6(src, dst netip.Addr, hops uint8, payload []byte) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: hops, NextHeader: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	u := &layers.UDP{SrcPort: 4000, DstPort: 5000}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(eth(macHostL, macRouterL, layers.EthernetTypeIPv6), ip, u, gopacket.Payload(payload))
}

func isUDPTo(dst netip.Addr) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		if _, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); !ok {
			return false
		}
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			return netip.AddrFrom4([4]byte(ip.DstIP.To4())) == dst
		}
		if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			return netip.AddrFrom16([16]byte(ip.DstIP)) == dst
		}
		return false
	}
}

func isICMPv4(typ, code uint8) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ic.TypeCode.Type() == typ && ic.TypeCode.Code() == code
	}
}

func isICMPv6(typ, code uint8) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		return ok && ic.TypeCode.Type() == typ && ic.TypeCode.Code() == code
	}
}

// checkIPv4 verifies the IPv4 header checksum and the transport checksum of a frame.
func checkIPv4(t *testing.T, frame []byte) header.IPv4 {
	t.Helper()
	ip := header.IPv4(frame[14:])
	if !ip.IsValid() || !ip.IsChecksumValid() {
		t.Fatalf("invalid IPv4 header or checksum: % x", frame[14:34])
	}
	if !ip.IsFragment() && !header.IsTransportChecksumValid(ip.Protocol(), ip.SourceAddr(), ip.DestinationAddr(), ip.Payload()) {
		t.Fatalf("bad transport checksum")
	}
	return ip
}

func TestForwardIPv4(t *testing.T) {
	tb := newTestBench(t)
	payload := []byte("through the router")
	tb.left.sendRaw(udp4(hostL4, remote4, 9, layers.IPv4DontFragment, payload))
	pkt := tb.right.expect(t, "forwarded UDP", isUDPTo(remote4))
	e := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(e.SrcMAC, macRouterR) || !bytes.Equal(e.DstMAC, macHostR) {
		t.Errorf("MACs %s -> %s, want %s -> %s", e.SrcMAC, e.DstMAC, macRouterR, macHostR)
	}
	ip := checkIPv4(t, pkt.Data())
	if ip.TTL() != 8 {
		t.Errorf("TTL %d, want 8", ip.TTL())
	}
	if !bytes.Equal(pkt.ApplicationLayer().Payload(), payload) {
		t.Errorf("payload changed")
	}
	// The second packet finds the neighbour resolved.
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, 0, payload))
	tb.right.expect(t, "second UDP", isUDPTo(hostR4))
	// The counters are added at the end of the batch, after its frames went out.
	for deadline := time.Now().Add(2 * time.Second); tb.r.ports()[0].counters.Forwarded.Load() != 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := tb.r.ports()[0].counters.Forwarded.Load(); got != 2 {
		t.Errorf("forwarded %d, want 2", got)
	}
}

func TestForwardIPv6(t *testing.T) {
	tb := newTestBench(t)
	payload := []byte("v6 through the router")
	tb.left.sendRaw(udp6(hostL6, hostR6, 2, payload))
	pkt := tb.right.expect(t, "forwarded UDP", isUDPTo(hostR6))
	ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip.HopLimit != 1 {
		t.Errorf("hop limit %d, want 1", ip.HopLimit)
	}
	v6 := header.IPv6(pkt.Data()[14:])
	if !header.IsTransportChecksumValid(header.ProtocolUDP, v6.SourceAddr(), v6.DestinationAddr(), v6.Payload()) {
		t.Errorf("bad UDP checksum")
	}
}

func TestEcho(t *testing.T) {
	tb := newTestBench(t)
	for _, dst := range []netip.Addr{routerL4, routerR4} {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: hostL4.AsSlice(), DstIP: dst.AsSlice()}
		tb.left.send(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip,
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}, gopacket.Payload("ping"))
		pkt := tb.left.expect(t, "echo reply from "+dst.String(), isICMPv4(layers.ICMPv4TypeEchoReply, 0))
		v4 := checkIPv4(t, pkt.Data())
		if v4.SourceAddr() != dst || v4.DestinationAddr() != hostL4 {
			t.Errorf("reply %s -> %s", v4.SourceAddr(), v4.DestinationAddr())
		}
	}
	for _, dst := range []netip.Addr{routerL6, routerR6} {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: hostL6.AsSlice(), DstIP: dst.AsSlice()}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		tb.left.send(eth(macHostL, macRouterL, layers.EthernetTypeIPv6), ip, icmp, &layers.ICMPv6Echo{Identifier: 9, SeqNumber: 1})
		pkt := tb.left.expect(t, "echo reply from "+dst.String(), isICMPv6(layers.ICMPv6TypeEchoReply, 0))
		v6 := header.IPv6(pkt.Data()[14:])
		if v6.SourceAddr() != dst || !header.IsTransportChecksumValid(header.ProtocolICMPv6, v6.SourceAddr(), v6.DestinationAddr(), v6.Payload()) {
			t.Errorf("bad echo reply from %s", v6.SourceAddr())
		}
	}
}

func TestICMPErrors(t *testing.T) {
	tb := newTestBench(t)
	big := make([]byte, 1500-28)

	tb.left.sendRaw(udp4(hostL4, hostR4, 1, 0, []byte("ttl")))
	pkt := tb.left.expect(t, "time exceeded", isICMPv4(layers.ICMPv4TypeTimeExceeded, 0))
	if ip := checkIPv4(t, pkt.Data()); ip.SourceAddr() != routerL4 {
		t.Errorf("time exceeded from %s, want %s", ip.SourceAddr(), routerL4)
	}

	tb.left.sendRaw(udp4(hostL4, noroute4, 64, 0, []byte("where")))
	tb.left.expect(t, "net unreachable", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet))

	tb.left.sendRaw(udp4(hostL4, hostR4, 64, layers.IPv4DontFragment, big))
	pkt = tb.left.expect(t, "fragmentation needed", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded))
	if mtu := header.ICMPv4(header.IPv4(pkt.Data()[14:]).Payload()).MTU(); mtu != 1400 {
		t.Errorf("next-hop MTU %d, want 1400", mtu)
	}

	tb.left.sendRaw(udp4(hostL4, routerL4, 64, 0, []byte("closed")))
	tb.left.expect(t, "port unreachable", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort))

	tb.left.sendRaw(udp6(hostL6, hostR6, 1, []byte("hops")))
	tb.left.expect(t, "hop limit exceeded", isICMPv6(layers.ICMPv6TypeTimeExceeded, 0))

	tb.left.sendRaw(udp6(hostL6, noroute6, 64, []byte("where")))
	tb.left.expect(t, "no route", isICMPv6(layers.ICMPv6TypeDestinationUnreachable, 0))

	tb.left.sendRaw(udp6(hostL6, hostR6, 64, make([]byte, 1500-48)))
	pkt = tb.left.expect(t, "packet too big", isICMPv6(layers.ICMPv6TypePacketTooBig, 0))
	if mtu := header.ICMPv6(header.IPv6(pkt.Data()[14:]).Payload()).MTU(); mtu != 1400 {
		t.Errorf("PTB MTU %d, want 1400", mtu)
	}
	// No error about an ICMP error.
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, 0, nil)) // resolves hostR4 first
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 1, Protocol: layers.IPProtocolICMPv4, SrcIP: hostL4.AsSlice(), DstIP: hostR4.AsSlice()}
	tb.left.send(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, 1)}, gopacket.Payload(make([]byte, 28)))
	tb.left.expectNone(t, "error about an error", isICMPv4(layers.ICMPv4TypeTimeExceeded, 0))
}

func TestPing(t *testing.T) {
	tb := newTestBench(t)
	for _, dst := range []netip.Addr{hostL4, hostR6, hostR4, hostL6} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		rtt, err := tb.r.Prober().Ping(ctx, dst)
		cancel()
		if err != nil || rtt <= 0 {
			t.Errorf("ping %s: %v, %v", dst, rtt, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := tb.r.Prober().Ping(ctx, netip.MustParseAddr("198.51.100.77")); !errors.Is(err, probe.ErrPingTimeout) {
		t.Errorf("ping of a silent address: %v, want ErrPingTimeout", err)
	}
}

func TestProbes(t *testing.T) {
	tb := newTestBench(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := tb.r.Prober().TCPConnect(ctx, netip.AddrPortFrom(hostR4, 80)); err != nil {
		t.Errorf("tcp to a listener: %v", err)
	}
	// The half-open connection is closed with a RST right after the SYN-ACK.
	var isn uint32
	tb.right.expect(t, "SYN", func(p gopacket.Packet) bool {
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ok && tcp.SYN {
			isn = tcp.Seq
		}
		return ok && tcp.SYN
	})
	tb.right.expect(t, "RST after the SYN-ACK", func(p gopacket.Packet) bool {
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		return ok && tcp.RST && tcp.DstPort == 80 && tcp.Seq == isn+1
	})
	if _, err := tb.r.Prober().TCPConnect(ctx, netip.AddrPortFrom(hostR4, 81)); !errors.Is(err, probe.ErrRefused) {
		t.Errorf("tcp to a closed port: %v, want ErrRefused", err)
	}
	resp := make([]byte, 64)
	n, _, err := tb.r.Prober().UDPExchange(ctx, netip.AddrPortFrom(hostR4, 7), []byte("hello"), resp)
	if err != nil || string(resp[:n]) != "hello" {
		t.Errorf("udp echo: %q, %v", resp[:n], err)
	}
	if _, _, err := tb.r.Prober().UDPExchange(ctx, netip.AddrPortFrom(hostR4, 9), []byte("hello"), resp); !errors.Is(err, probe.ErrPortUnreachable) {
		t.Errorf("udp to a closed port: %v, want ErrPortUnreachable", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := tb.r.Prober().TCPConnect(short, netip.AddrPortFrom(netip.MustParseAddr("198.51.100.77"), 80)); !errors.Is(err, probe.ErrTimeout) {
		t.Errorf("tcp to a silent address: %v, want ErrTimeout", err)
	}
}

func TestRSTForClosedPort(t *testing.T) {
	tb := newTestBench(t)
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: hostL4.AsSlice(), DstIP: routerL4.AsSlice()}
	syn := &layers.TCP{SrcPort: 5555, DstPort: 22, Seq: 1000, SYN: true, Window: 1000}
	syn.SetNetworkLayerForChecksum(ip)
	tb.left.send(eth(macHostL, macRouterL, layers.EthernetTypeIPv4), ip, syn)
	pkt := tb.left.expect(t, "RST", func(p gopacket.Packet) bool {
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		return ok && tcp.RST
	})
	tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !tcp.ACK || tcp.Ack != 1001 || tcp.SrcPort != 22 || tcp.DstPort != 5555 {
		t.Errorf("RST %+v: want RST|ACK ack 1001 from port 22", tcp)
	}
	checkIPv4(t, pkt.Data())
}

// manualClock is a clock the test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestHostUnreachable(t *testing.T) {
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1500)
	clock := &manualClock{t: time.Unix(1e9, 0)}
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{
				netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:2::1/64")}},
		},
		Now:          clock.now,
		TickInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The errors go back to a known host: the test's clock runs too fast for the left
	// host's answers to resolutions to be sure to arrive in time.
	r.ports()[0].neigh.AddStatic(hostL4, header.MAC(macHostL))
	r.ports()[0].neigh.AddStatic(hostL6, header.MAC(macHostL))
	left, right := newPeer(hl, macHostL, hostL4, hostL6), newPeer(hr, macHostR)
	var wg sync.WaitGroup
	wg.Add(2)
	go left.run(&wg)
	go right.run(&wg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		hl.Close()
		hr.Close()
		wg.Wait()
	}()
	silent4 := netip.MustParseAddr("198.51.100.9")
	silent6 := netip.MustParseAddr("2001:db8:2::9")
	left.sendRaw(udp4(hostL4, silent4, 64, 0, []byte("anyone?")))
	left.sendRaw(udp6(hostL6, silent6, 64, []byte("anyone?")))
	right.expect(t, "ARP request for the silent host", func(p gopacket.Packet) bool {
		a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		return ok && netip.AddrFrom4([4]byte(a.DstProtAddress)) == silent4
	})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				clock.advance(500 * time.Millisecond)
			}
		}
	}()
	// Both errors, in either order.
	v4 := isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeHost)
	v6 := isICMPv6(layers.ICMPv6TypeDestinationUnreachable, 3)
	var seen4, seen6 bool
	for !seen4 || !seen6 {
		p := left.expect(t, "host and address unreachable", func(p gopacket.Packet) bool { return v4(p) || v6(p) })
		seen4 = seen4 || v4(p)
		seen6 = seen6 || v6(p)
	}
}

func TestFragmentIPv4(t *testing.T) {
	tb := newTestBench(t)
	payload := make([]byte, 1450)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, 0, payload))
	whole := make([]byte, 8+len(payload))
	got := 0
	for got < len(whole) {
		pkt := tb.right.expect(t, "fragment", func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeIPv4) != nil })
		ip := checkIPv4(t, pkt.Data())
		if ip.TotalLength() > 1400 {
			t.Fatalf("fragment of %d bytes on a 1400 MTU link", ip.TotalLength())
		}
		off := int(ip.FragmentOffset())
		copy(whole[off:], ip.Payload())
		got += len(ip.Payload())
		if !ip.MoreFragments() && off+len(ip.Payload()) != len(whole) {
			t.Fatalf("last fragment ends at %d, want %d", off+len(ip.Payload()), len(whole))
		}
	}
	if !bytes.Equal(whole[8:], payload) {
		t.Fatal("reassembled payload differs")
	}
}

func TestMalformedFramesCounted(t *testing.T) {
	tb := newTestBench(t)
	good := udp4(hostL4, hostR4, 64, 0, []byte("good"))
	badLen := bytes.Clone(good)
	header.IPv4(badLen[14:]).SetTotalLength(2000)
	badSum := bytes.Clone(good)
	badSum[14+10] ^= 0xff
	badIHL := bytes.Clone(good)
	badIHL[14] = 0x43
	v6 := udp6(hostL6, hostR6, 64, []byte("good"))
	badV6 := bytes.Clone(v6)
	badV6[14+4], badV6[14+5] = 0xff, 0xff
	cases := []struct {
		frame  []byte
		reason DropReason
	}{
		{good[:20], DropIPv4Header},
		{badLen, DropIPv4Header},
		{badIHL, DropIPv4Header},
		{badSum, DropIPv4Checksum},
		{v6[:30], DropIPv6Header},
		{badV6, DropIPv6Header},
		{append(bytes.Clone(good[:12]), 0x88, 0xb5, 1, 2), DropEtherType},
	}
	c := &tb.r.ports()[0].counters
	for _, tc := range cases {
		tb.left.sendRaw(tc.frame)
	}
	// A good frame after them still goes through.
	tb.left.sendRaw(good)
	tb.right.expect(t, "good frame after malformed ones", isUDPTo(hostR4))
	want := map[DropReason]uint64{}
	for _, tc := range cases {
		want[tc.reason]++
	}
	// The counters are added at the end of each batch, after its frames went out.
	deadline := time.Now().Add(2 * time.Second)
	for {
		ok := true
		for r, n := range want {
			if c.Drops[r].Load() != n {
				ok = false
			}
		}
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for r, n := range want {
		if got := c.Drops[r].Load(); got != n {
			t.Errorf("drops[%s] = %d, want %d", r, got, n)
		}
	}
}

// TestHandleShortFrames hands the classifier frames no port would deliver.
func TestHandleShortFrames(t *testing.T) {
	rl, _ := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, _ := porttest.NewPair(macRouterR, macHostR, 1500)
	r, err := New(Config{Ports: []PortConfig{
		{Name: "left", Port: rl, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}},
		{Name: "right", Port: rr, Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	l := r.newLoop(r.ports()[0])
	frame := udp4(hostL4, hostR4, 64, 0, nil)
	for n := 0; n < len(frame); n++ {
		buf := make([]byte, headroom+n)
		copy(buf[headroom:], frame[:n])
		l.handle(buf)
	}
	if got := l.bc.drops[DropEthernetShort]; got != 14 {
		t.Errorf("ethernet-short drops %d, want 14", got)
	}
	// Shorter than the 28 bytes of IPv4 and UDP headers it says it holds; longer ones
	// only cut the Ethernet padding.
	if got := l.bc.drops[DropIPv4Header]; got != 28 {
		t.Errorf("ipv4-header drops %d, want 28", got)
	}
}

// loopFixture is a router that is not running and the receive loop of its left port,
// with the right host's neighbour entry in place, and a frame for that host.
func loopFixture(tb testing.TB, v6 bool) (*loop, []byte) {
	tb.Helper()
	rl, _ := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, _ := porttest.NewPair(macRouterR, macHostR, 1500)
	left, right, host := "192.0.2.1/24", "198.51.100.1/24", hostR4
	if v6 {
		left, right, host = "2001:db8:1::1/64", "2001:db8:2::1/64", hostR6
	}
	r, err := New(Config{Ports: []PortConfig{
		{Name: "left", Port: rl, Addresses: []netip.Prefix{netip.MustParsePrefix(left)}},
		{Name: "right", Port: rr, Addresses: []netip.Prefix{netip.MustParsePrefix(right)}},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	r.ports()[1].neigh.AddStatic(host, header.MAC(macHostR))
	if v6 {
		return r.newLoop(r.ports()[0]), udp6(hostL6, hostR6, 64, make([]byte, 18))
	}
	return r.newLoop(r.ports()[0]), udp4(hostL4, hostR4, 64, 0, make([]byte, 18))
}

func TestForwardAllocatesNothing(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		l, frame := loopFixture(t, v6)
		buf := make([]byte, port.BufSize)
		allocs := testing.AllocsPerRun(1000, func() {
			copy(buf[headroom:], frame)
			l.handle(buf[:headroom+len(frame)])
			if len(l.out[1]) != 1 {
				t.Fatal("frame not forwarded")
			}
			l.out[1] = l.out[1][:0]
		})
		if allocs != 0 {
			t.Errorf("v6=%v: %v allocations per forwarded packet", v6, allocs)
		}
	}
}

func benchmarkForward(b *testing.B, v6 bool) {
	l, frame := loopFixture(b, v6)
	buf := make([]byte, port.BufSize)
	b.ReportAllocs()
	for b.Loop() {
		copy(buf[headroom:], frame)
		l.handle(buf[:headroom+len(frame)])
		l.out[1] = l.out[1][:0]
	}
}

func BenchmarkForwardIPv4(b *testing.B) { benchmarkForward(b, false) }
func BenchmarkForwardIPv6(b *testing.B) { benchmarkForward(b, true) }
