package router

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/conntrack"
	"ulb/router/header"
	"ulb/router/port"
)

// Autonat and static mappings over the balancer's fixture: the left link is the
// outside (client) network, the right one the servers'. hopR4 / hopR6 are inside hosts
// that open connections; hostL4 / hostL6 the outside hosts they reach. Every translated
// packet is decoded with gopacket and its checksums recomputed in full.

var (
	public1to1 = netip.MustParseAddr("192.0.2.50")    // 1:1 to hostR4 (also the balanced server)
	publicFwd  = netip.MustParseAddr("192.0.2.51")    // :2222 forwarded to hopR4:22
	autoAddr4  = netip.MustParseAddr("192.0.2.1")     // the left port's own address
	autoAddr6  = netip.MustParseAddr("2001:db8:1::1") // the left port's own IPv6 address
)

func natTestConfig() NATConfig {
	return NATConfig{
		AutoNAT: []AutoNAT{{From: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:2::/64")}, Out: "left"}},
		Static: []StaticNAT{
			{Public: public1to1, Private: hostR4},
			{Public: publicFwd, Private: hopR4, PublicPort: 2222, PrivatePort: 22, Proto: header.ProtocolTCP},
		},
	}
}

func newNATFixture(t testing.TB, cfg NATConfig) *lbFixture {
	t.Helper()
	f := newLBFixture(t, nil)
	if err := f.r.SetNAT(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

// natSeen is a decoded TCP, UDP or ICMP echo packet; for echo both ports are the
// identifier.
type natSeen struct {
	proto    uint8
	src, dst netip.AddrPort
	echoType uint8
}

// decodeNAT decodes a frame with gopacket and checks its IP and transport checksums
// against a full recomputation.
func decodeNAT(t *testing.T, what string, frame []byte) natSeen {
	t.Helper()
	if frame == nil {
		t.Fatalf("%s: not forwarded", what)
	}
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	var s natSeen
	var src, dst netip.Addr
	var l4 []byte
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		src, dst = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4()))
		hl := int(ip.IHL) * 4
		raw := frame[14 : 14+int(ip.Length)]
		if got, want := binary.BigEndian.Uint16(raw[10:]), csumRecomputed(nil, raw[:hl], 10); got != want {
			t.Errorf("%s: IPv4 header checksum %#04x, recomputed %#04x", what, got, want)
		}
		s.proto, l4 = uint8(ip.Protocol), raw[hl:]
	case *layers.IPv6:
		src, dst = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP))
		s.proto, l4 = uint8(ip.NextHeader), frame[14+40:14+40+int(ip.Length)]
	default:
		t.Fatalf("%s: not IP: %v", what, p)
	}
	ps := pseudoHeader(src, dst, s.proto, len(l4))
	var sport, dport uint16
	csumAt := 0
	switch s.proto {
	case header.ProtocolTCP:
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		sport, dport, csumAt = uint16(tcp.SrcPort), uint16(tcp.DstPort), 16
	case header.ProtocolUDP:
		u := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		sport, dport, csumAt = uint16(u.SrcPort), uint16(u.DstPort), 6
	case header.ProtocolICMPv4:
		ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		sport, dport, csumAt, ps = ic.Id, ic.Id, 2, nil
		s.echoType = ic.TypeCode.Type()
	case header.ProtocolICMPv6:
		e := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
		sport, dport, csumAt = e.Identifier, e.Identifier, 2
		s.echoType = p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).TypeCode.Type()
	default:
		t.Fatalf("%s: protocol %d", what, s.proto)
	}
	if got, want := binary.BigEndian.Uint16(l4[csumAt:]), csumRecomputed(ps, l4, csumAt); got != want {
		t.Errorf("%s: transport checksum %#04x, recomputed %#04x", what, got, want)
	}
	s.src, s.dst = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	return s
}

func udpFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte) []byte {
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		u.SetNetworkLayerForChecksum(ip)
		return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv4), ip, u, gopacket.Payload(payload))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv6), ip, u, gopacket.Payload(payload))
}

func echoFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, reply bool, id uint16) []byte {
	if src.Is4() {
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if reply {
			typ = layers.ICMPv4TypeEchoReply
		}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv4), ip,
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: 1}, gopacket.Payload("ping"))
	}
	typ := uint8(layers.ICMPv6TypeEchoRequest)
	if reply {
		typ = layers.ICMPv6TypeEchoReply
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv6), ip, ic,
		&layers.ICMPv6Echo{Identifier: id, SeqNumber: 1}, gopacket.Payload("ping"))
}

// inPool reports whether a translated port is one of the masquerade pool's.
func inPool(p uint16) bool { return p >= masqPortLo && p <= masqPortHi }

// TestAutoNATTCPUDP: an inside host's TCP and UDP connections leave with the outside
// port's address and a pool port, their answers come back to the host, both ways with
// correct checksums and no allocation once the flow is open.
func TestAutoNATTCPUDP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		inside, outside, addr := pick(v6, hopR4, hopR6), pick(v6, hostL4, hostL6), pick(v6, autoAddr4, autoAddr6)
		t.Run(pick(v6, "ipv4", "ipv6"), func(t *testing.T) {
			f := newNATFixture(t, natTestConfig())
			host := netip.AddrPortFrom(inside, 40000)
			far := netip.AddrPortFrom(outside, 80)
			syn := decodeNAT(t, "SYN out", f.pass(f.right, 0, tcpFrame(macHostR, macRouterR, host, far, 64, flagSYN, 1000, nil)))
			if syn.src.Addr() != addr || !inPool(syn.src.Port()) || syn.dst != far {
				t.Fatalf("SYN left as %s -> %s, want %s:pool -> %s", syn.src, syn.dst, addr, far)
			}
			back := decodeNAT(t, "SYN-ACK in", f.pass(f.left, 1, tcpFrame(macHostL, macRouterL, far, syn.src, 64, flagSYN|flagACK, 5000, nil)))
			if back.src != far || back.dst != host {
				t.Fatalf("SYN-ACK arrived as %s -> %s, want %s -> %s", back.src, back.dst, far, host)
			}
			// UDP: a flow of its own, on a mapping of its own (another protocol).
			dns := netip.AddrPortFrom(outside, 53)
			q := decodeNAT(t, "UDP out", f.pass(f.right, 0, udpFrame(macHostR, macRouterR, host, dns, []byte("query"))))
			if q.src.Addr() != addr || !inPool(q.src.Port()) || q.dst != dns {
				t.Fatalf("UDP left as %s -> %s", q.src, q.dst)
			}
			a := decodeNAT(t, "UDP in", f.pass(f.left, 1, udpFrame(macHostL, macRouterL, dns, q.src, []byte("answer"))))
			if a.src != dns || a.dst != host {
				t.Fatalf("UDP answer arrived as %s -> %s", a.src, a.dst)
			}
			if n := f.r.NATStats().AutoNAT; n != 2 {
				t.Errorf("%d autonat flows counted, want 2", n)
			}
			out := tcpFrame(macHostR, macRouterR, host, far, 64, flagACK, 1001, []byte("data"))
			in := tcpFrame(macHostL, macRouterL, far, syn.src, 64, flagACK, 5001, []byte("answer"))
			allocs := testing.AllocsPerRun(1000, func() {
				if f.pass(f.right, 0, out) == nil || f.pass(f.left, 1, in) == nil {
					t.Fatal("established packet not forwarded")
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per autonat packet pair", allocs)
			}
			// The flow's end gives its port back to the pool.
			used := f.r.masqPorts.InUse(addr)
			f.r.ct.Delete(conntrack.MakeTuple(inside, outside, 40000, 80, header.ProtocolTCP))
			if got := f.r.masqPorts.InUse(addr); got != used-1 {
				t.Errorf("pool ports in use %d after the flow ended, want %d", got, used-1)
			}
		})
	}
}

// TestAutoNATEndpointIndependent: one inside endpoint keeps its external port towards
// every destination (RFC 4787 section 4.1, REQ-1) while a flow of it lives; another
// outside host still cannot send to that port (address and port-dependent filtering,
// REQ-8); the port goes back to the pool with the endpoint's last flow.
func TestAutoNATEndpointIndependent(t *testing.T) {
	f := newNATFixture(t, natTestConfig())
	host := netip.AddrPortFrom(hopR4, 5000)
	a := decodeNAT(t, "to the first", f.pass(f.right, 0, udpFrame(macHostR, macRouterR, host, netip.AddrPortFrom(hostL4, 53), nil)))
	b := decodeNAT(t, "to the second", f.pass(f.right, 0, udpFrame(macHostR, macRouterR, host, netip.AddrPortFrom(hopL4, 53), nil)))
	if a.src != b.src || a.src.Addr() != autoAddr4 {
		t.Fatalf("one endpoint mapped to %s and %s", a.src, b.src)
	}
	other := decodeNAT(t, "another endpoint", f.pass(f.right, 0, udpFrame(macHostR, macRouterR, netip.AddrPortFrom(hopR4, 5001), netip.AddrPortFrom(hostL4, 53), nil)))
	if other.src == a.src {
		t.Fatalf("two endpoints share %s", a.src)
	}
	if got := f.pass(f.left, 1, udpFrame(macHostL, macRouterL, netip.AddrPortFrom(hostL4, 999), a.src, nil)); got != nil {
		t.Errorf("a port the flows' remote ends did not use got in")
	}
	used := f.r.masqPorts.InUse(autoAddr4)
	f.r.ct.Delete(conntrack.MakeTuple(hopR4, hostL4, 5000, 53, header.ProtocolUDP))
	if got := f.r.masqPorts.InUse(autoAddr4); got != used {
		t.Errorf("the port went back with a flow of the endpoint still open (%d -> %d in use)", used, got)
	}
	f.r.ct.Delete(conntrack.MakeTuple(hopR4, hopL4, 5000, 53, header.ProtocolUDP))
	if got := f.r.masqPorts.InUse(autoAddr4); got != used-1 {
		t.Errorf("the endpoint's last flow ended, %d ports in use, want %d", got, used-1)
	}
}

// TestAutoNATEcho: a ping from an inside host leaves with a pool identifier and its reply
// comes back (RFC 5508 section 3.1); an echo request from outside to the router's
// address is still the router's to answer.
func TestAutoNATEcho(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		inside, outside, addr := pick(v6, hopR4, hopR6), pick(v6, hostL4, hostL6), pick(v6, autoAddr4, autoAddr6)
		t.Run(pick(v6, "ipv4", "ipv6"), func(t *testing.T) {
			f := newNATFixture(t, natTestConfig())
			req := decodeNAT(t, "echo out", f.pass(f.right, 0, echoFrame(macHostR, macRouterR, inside, outside, false, 7)))
			if req.src.Addr() != addr || !inPool(req.src.Port()) || req.dst.Addr() != outside {
				t.Fatalf("echo left as %s -> %s", req.src, req.dst)
			}
			rep := decodeNAT(t, "echo reply in", f.pass(f.left, 1, echoFrame(macHostL, macRouterL, outside, addr, true, req.src.Port())))
			if rep.src.Addr() != outside || rep.dst != netip.AddrPortFrom(inside, 7) {
				t.Fatalf("echo reply arrived as %s -> %s", rep.src, rep.dst)
			}
			// The same identifier in a request from outside is not the flow's.
			if got := f.pass(f.left, 1, echoFrame(macHostL, macRouterL, outside, addr, false, req.src.Port())); got != nil {
				t.Errorf("an outside echo request went in: %x", got)
			}
			in := echoFrame(macHostL, macRouterL, outside, addr, true, req.src.Port())
			allocs := testing.AllocsPerRun(1000, func() {
				if f.pass(f.left, 1, in) == nil {
					t.Fatal("echo reply not forwarded")
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per echo reply", allocs)
			}
		})
	}
}

// TestAutoNATICMPError: an error from a router on the outside about an autonat flow
// reaches the inside host with its own source kept and the quote reverted (RFC 5508
// section 4, REQ-4); an error from the inside host about the flow's answers leaves
// with the outside address as its source (REQ-5).
func TestAutoNATICMPError(t *testing.T) {
	f := newNATFixture(t, natTestConfig())
	host := netip.AddrPortFrom(hopR4, 40000)
	far := netip.AddrPortFrom(hostL4, 80)
	atOutside := bytes.Clone(f.pass(f.right, 0, tcpFrame(macHostR, macRouterR, host, far, 64, flagSYN, 1000, nil)))
	seen := decodeNAT(t, "SYN", atOutside).src
	atInside := bytes.Clone(f.pass(f.left, 1, tcpFrame(macHostL, macRouterL, far, seen, 64, flagSYN|flagACK, 5000, nil)))
	e := decodeError(t, "error in", f.pass(f.left, 1, icmpTooBig(macHostL, macRouterL, hopL4, autoAddr4, 1300, atOutside[14:])))
	if e.src != hopL4 || e.dst != hopR4 || e.qsrc != host || e.qdst != far {
		t.Errorf("error in: %s -> %s quoting %s -> %s, want %s -> %s quoting %s -> %s", e.src, e.dst, e.qsrc, e.qdst, hopL4, hopR4, host, far)
	}
	e = decodeError(t, "error out", f.pass(f.right, 0, icmpTooBig(macHostR, macRouterR, hopR4, hostL4, 1280, atInside[14:])))
	if e.src != autoAddr4 || e.dst != hostL4 || e.qsrc != far || e.qdst != seen {
		t.Errorf("error out: %s -> %s quoting %s -> %s, want %s -> %s quoting %s -> %s", e.src, e.dst, e.qsrc, e.qdst, autoAddr4, hostL4, far, seen)
	}
}

// TestStaticNAT: a 1:1 mapping takes inbound connections to the public address to the
// private host and gives the private host's own connections the public address; a port
// forward takes one port of another public address to an inside host's port.
func TestStaticNAT(t *testing.T) {
	f := newNATFixture(t, natTestConfig())
	client := netip.AddrPortFrom(hostL4, 41000)
	in := decodeNAT(t, "1:1 in", f.pass(f.left, 1, udpFrame(macHostL, macRouterL, client, netip.AddrPortFrom(public1to1, 7), []byte("hi"))))
	if in.src != client || in.dst != netip.AddrPortFrom(hostR4, 7) {
		t.Fatalf("1:1 inbound arrived as %s -> %s", in.src, in.dst)
	}
	ans := decodeNAT(t, "1:1 answer", f.pass(f.right, 0, udpFrame(macHostR, macRouterR, netip.AddrPortFrom(hostR4, 7), client, []byte("hi"))))
	if ans.src != netip.AddrPortFrom(public1to1, 7) || ans.dst != client {
		t.Fatalf("1:1 answer left as %s -> %s", ans.src, ans.dst)
	}
	// The private host's own connection leaves with the public address, its port kept.
	own := decodeNAT(t, "1:1 out", f.pass(f.right, 0, tcpFrame(macHostR, macRouterR, netip.AddrPortFrom(hostR4, 33000), netip.AddrPortFrom(hostL4, 443), 64, flagSYN, 1, nil)))
	if own.src != netip.AddrPortFrom(public1to1, 33000) {
		t.Fatalf("1:1 outbound left from %s, want %s:33000", own.src, public1to1)
	}
	// A ping to the public address reaches the private host.
	ping := decodeNAT(t, "1:1 ping", f.pass(f.left, 1, echoFrame(macHostL, macRouterL, hostL4, public1to1, false, 99)))
	if ping.dst.Addr() != hostR4 || ping.dst.Port() != 99 {
		t.Fatalf("1:1 ping arrived at %s", ping.dst)
	}
	// The port forward.
	fwd := decodeNAT(t, "forward in", f.pass(f.left, 1, tcpFrame(macHostL, macRouterL, client, netip.AddrPortFrom(publicFwd, 2222), 64, flagSYN, 1, nil)))
	if fwd.dst != netip.AddrPortFrom(hopR4, 22) {
		t.Fatalf("port forward arrived at %s, want %s:22", fwd.dst, hopR4)
	}
	back := decodeNAT(t, "forward back", f.pass(f.right, 0, tcpFrame(macHostR, macRouterR, netip.AddrPortFrom(hopR4, 22), client, 64, flagSYN|flagACK, 9, nil)))
	if back.src != netip.AddrPortFrom(publicFwd, 2222) || back.dst != client {
		t.Fatalf("port forward answer left as %s -> %s", back.src, back.dst)
	}
	// Another port of the forwarded address is not forwarded.
	if got := f.pass(f.left, 1, tcpFrame(macHostL, macRouterL, client, netip.AddrPortFrom(publicFwd, 2223), 64, flagSYN, 1, nil)); got != nil {
		t.Errorf("port 2223 of the forwarded address went in")
	}
	if st := f.r.NATStats(); st.DNAT != 3 || st.SNAT != 1 {
		t.Errorf("counted %+v, want 3 DNAT and 1 SNAT flows", st)
	}
	again := udpFrame(macHostL, macRouterL, client, netip.AddrPortFrom(public1to1, 7), []byte("hi"))
	allocs := testing.AllocsPerRun(1000, func() {
		if f.pass(f.left, 1, again) == nil {
			t.Fatal("1:1 packet not forwarded")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per static NAT packet", allocs)
	}
}

// TestNATLeavesOthersAlone: a balanced flow's server (which also has a 1:1 mapping and
// lies in an autonat network) answers with the VIP as source; traffic from the outside
// to an inside host is routed untranslated; inside traffic that does not leave by the
// autonat port is not translated; a TCP segment that cannot open a flow is dropped,
// counted, never sent with its private source.
func TestNATLeavesOthersAlone(t *testing.T) {
	f := newNATFixture(t, natTestConfig())
	c := lbCases[0] // half-NAT, IPv4: its server is hostR4
	_, atClient := f.open(t, c)
	if got := decodeTCP(t, "SYN-ACK", atClient).src; got != netip.AddrPortFrom(c.vip(), c.vport()) {
		t.Errorf("the server's answer to a balanced flow left from %s, want the VIP", got)
	}
	plain := decodeNAT(t, "routed in", f.pass(f.left, 1, udpFrame(macHostL, macRouterL, netip.AddrPortFrom(hostL4, 1000), netip.AddrPortFrom(hopR4, 2000), nil)))
	if plain.src.Addr() != hostL4 || plain.dst.Addr() != hopR4 {
		t.Errorf("outside to inside was translated: %s -> %s", plain.src, plain.dst)
	}
	if got := f.pass(f.right, 0, tcpFrame(macHostR, macRouterR, netip.AddrPortFrom(hopR4, 40001), netip.AddrPortFrom(hostL4, 80), 64, flagACK, 1, nil)); got != nil {
		t.Errorf("a segment without a flow left untranslated")
	}
	if n := f.right.bc.drops[DropNATNoFlow]; n != 1 {
		t.Errorf("nat-no-flow %d, want 1", n)
	}

	// With the autonat on the inside port only, nothing leaving by the outside port
	// is translated.
	g := newNATFixture(t, NATConfig{AutoNAT: []AutoNAT{{From: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Out: "right"}}})
	got := decodeNAT(t, "not through the autonat port", g.pass(g.right, 0, udpFrame(macHostR, macRouterR, netip.AddrPortFrom(hopR4, 1000), netip.AddrPortFrom(hostL4, 2000), nil)))
	if got.src != netip.AddrPortFrom(hopR4, 1000) {
		t.Errorf("translated to %s", got.src)
	}
}

// TestAutoNATPoolExhausted: with every pool port of the outside address in use, a new
// flow is dropped and counted as nat-no-port.
func TestAutoNATPoolExhausted(t *testing.T) {
	f := newNATFixture(t, natTestConfig())
	for p := masqPortLo; p <= masqPortHi; p++ {
		f.r.masqPorts.Take(autoAddr4, uint16(p))
	}
	if got := f.pass(f.right, 0, udpFrame(macHostR, macRouterR, netip.AddrPortFrom(hopR4, 1000), netip.AddrPortFrom(hostL4, 53), nil)); got != nil {
		t.Errorf("a flow left without a pool port")
	}
	if n := f.right.bc.drops[DropNATNoPort]; n != 1 {
		t.Errorf("nat-no-port %d, want 1", n)
	}
}

// TestSetNATRefuses: unknown ports and conflicting mappings are refused.
func TestSetNATRefuses(t *testing.T) {
	f := newLBFixture(t, nil)
	for name, cfg := range map[string]NATConfig{
		"unknown port":    {AutoNAT: []AutoNAT{{From: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Out: "nope"}}},
		"no network":      {AutoNAT: []AutoNAT{{Out: "left"}}},
		"mixed families":  {Static: []StaticNAT{{Public: public1to1, Private: hopR6}}},
		"public twice":    {Static: []StaticNAT{{Public: public1to1, Private: hostR4}, {Public: public1to1, Private: hopR4}}},
		"private twice":   {Static: []StaticNAT{{Public: public1to1, Private: hostR4}, {Public: publicFwd, Private: hostR4}}},
		"public off-link": {Static: []StaticNAT{{Public: netip.MustParseAddr("203.0.113.9"), Private: hostR4}}},
	} {
		if err := f.r.SetNAT(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkAutoNATEstablished forwards an inside host's packet of an open autonat flow.
func BenchmarkAutoNATEstablished(b *testing.B) {
	f := newNATFixture(b, natTestConfig())
	host, far := netip.AddrPortFrom(hopR4, 40000), netip.AddrPortFrom(hostL4, 80)
	if f.pass(f.right, 0, tcpFrame(macHostR, macRouterR, host, far, 64, flagSYN, 1000, nil)) == nil {
		b.Fatal("SYN not forwarded")
	}
	frame := tcpFrame(macHostR, macRouterR, host, far, 64, flagACK, 1001, make([]byte, 18))
	b.ReportAllocs()
	for b.Loop() {
		if f.pass(f.right, 0, frame) == nil {
			b.Fatal("not forwarded")
		}
	}
}

// FuzzHandleNAT feeds arbitrary frames to both loops of a router with autonat, a 1:1
// mapping and a port forward: every frame is dropped with a reason, delivered,
// forwarded or translated, and nothing panics.
func FuzzHandleNAT(f *testing.F) {
	host, far := netip.AddrPortFrom(hopR4, 40000), netip.AddrPortFrom(hostL4, 80)
	f.Add(tcpFrame(macHostR, macRouterR, host, far, 64, flagSYN, 1, nil), false)
	f.Add(udpFrame(macHostR, macRouterR, host, netip.AddrPortFrom(hostL4, 53), []byte("q")), false)
	f.Add(echoFrame(macHostR, macRouterR, hopR4, hostL4, false, 7), false)
	f.Add(echoFrame(macHostR, macRouterR, hopR6, hostL6, false, 7), false)
	f.Add(echoFrame(macHostL, macRouterL, hostL4, autoAddr4, true, masqPortLo), true)
	f.Add(udpFrame(macHostL, macRouterL, far, netip.AddrPortFrom(public1to1, 7), nil), true)
	f.Add(tcpFrame(macHostL, macRouterL, far, netip.AddrPortFrom(publicFwd, 2222), 64, flagSYN, 1, nil), true)
	syn := tcpFrame(macHostR, macRouterR, host, far, 64, flagSYN, 1, nil)
	f.Add(icmpTooBig(macHostL, macRouterL, hopL4, autoAddr4, 1300, syn[14:]), true)
	fx := newNATFixture(f, natTestConfig())
	buf := make([]byte, 0, len(fx.buf))
	f.Fuzz(func(t *testing.T, frame []byte, fromLeft bool) {
		if len(frame) > port.MaxFrame {
			return
		}
		l := fx.right
		if fromLeft {
			l = fx.left
		}
		buf = append(buf[:0], frame...)
		fx.pass(l, 0, buf)
		l.bc = batchCounters{}
	})
}
