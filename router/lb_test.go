package router

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/balancer"
	"ulb/balancer/srclimit"
	"ulb/conntrack"
	"ulb/router/header"
	"ulb/router/port"
	"ulb/router/port/porttest"
)

// The balancer's packet path, driven like the forwarding path: over porttest links
// without root, every rewritten packet decoded with gopacket and its checksums compared
// with a full recomputation, and a zero-allocation assertion per path.

var (
	vip4   = netip.MustParseAddr("192.0.2.100")
	vip6   = netip.MustParseAddr("2001:db8:1::100")
	proxy4 = netip.MustParseAddr("198.51.100.50")
	proxy6 = netip.MustParseAddr("2001:db8:2::50")
	// Routers on the path, behind the balancer and on the client's side.
	hopR4 = netip.MustParseAddr("198.51.100.3")
	hopR6 = netip.MustParseAddr("2001:db8:2::3")
	hopL4 = netip.MustParseAddr("192.0.2.3")
	hopL6 = netip.MustParseAddr("2001:db8:1::3")
)

const (
	serverPort = 80
	clientPort = 40000
)

// lbCase is a rule's topology on one address family.
type lbCase struct {
	name string
	topo balancer.Topology
	v6   bool
}

var lbCases = []lbCase{
	{"half-nat/ipv4", balancer.HalfNAT, false},
	{"half-nat/ipv6", balancer.HalfNAT, true},
	{"full-nat/ipv4", balancer.FullNAT, false},
	{"full-nat/ipv6", balancer.FullNAT, true},
	{"dsr/ipv4", balancer.DSR, false},
	{"dsr/ipv6", balancer.DSR, true},
}

// vport is the VIP port of the case's rule.
func (c lbCase) vport() uint16 { return 8080 + uint16(c.topo) }

func (c lbCase) client() netip.Addr { return pick(c.v6, hostL4, hostL6) }
func (c lbCase) vip() netip.Addr    { return pick(c.v6, vip4, vip6) }
func (c lbCase) server() netip.Addr { return pick(c.v6, hostR4, hostR6) }
func (c lbCase) proxy() netip.Addr  { return pick(c.v6, proxy4, proxy6) }

func pick[T any](v6 bool, a, b T) T {
	if v6 {
		return b
	}
	return a
}

// lbRules are a half-NAT, a full-NAT and a DSR rule per family, each with one server
// on the right link.
func lbRules() []balancer.RuleConfig {
	var rules []balancer.RuleConfig
	for _, c := range lbCases {
		rc := balancer.RuleConfig{Name: c.name, VIP: c.vip(), PortLo: c.vport(), PortHi: c.vport(), Proto: balancer.ProtoTCP,
			Algorithm: balancer.RoundRobin, PMask: balancer.NoPersistence, Topology: c.topo, Enabled: true,
			Servers: []balancer.ServerConfig{{Addr: c.server(), Port: serverPort, Weight: 1}}}
		switch c.topo {
		case balancer.FullNAT:
			rc.ProxySource = []netip.Addr{c.proxy()}
		case balancer.DSR:
			rc.Servers[0].Port = 0 // the server answers on the VIP's port
		}
		rules = append(rules, rc)
	}
	return rules
}

// newLBRouter makes a router with lbRules between a client link (left) and a server link
// (right), with the hosts' neighbour entries in place.
func newLBRouter(tb testing.TB, left, right port.Port) *Router {
	tb.Helper()
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: left, Addresses: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
			{Name: "right", Port: right, Addresses: []netip.Prefix{
				netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:2::1/64")}},
		},
		Rules: lbRules(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range []netip.Addr{hostL4, hostL6, hopL4, hopL6} {
		r.ports()[0].neigh.AddStatic(a, header.MAC(macHostL))
	}
	for _, a := range []netip.Addr{hostR4, hostR6, hopR4, hopR6} {
		r.ports()[1].neigh.AddStatic(a, header.MAC(macHostR))
	}
	return r
}

// newLBBench runs a router with lbRules between a client (left, MTU 1500) and a server
// (right, MTU 1400). Neither host answers anything by itself.
func newLBBench(t *testing.T) *testBench {
	t.Helper()
	rl, hl := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, hr := porttest.NewPair(macRouterR, macHostR, 1400)
	return startBench(t, newLBRouter(t, rl, rr), newPeer(hl, macHostL), newPeer(hr, macHostR))
}

// TCP flags of tcpFrame.
const (
	flagSYN = 1 << iota
	flagACK
	flagPSH
)

// tcpFrame builds an Ethernet frame of a TCP segment, DF set on IPv4.
func tcpFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, ttl uint8, flags int, seq uint32, payload []byte) []byte {
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: seq, Window: 1000,
		SYN: flags&flagSYN != 0, ACK: flags&flagACK != 0, PSH: flags&flagPSH != 0}
	if tcp.ACK {
		tcp.Ack = 1
	}
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Id: 99, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv6), ip, tcp, gopacket.Payload(payload))
}

// icmpTooBig builds an Ethernet frame of an ICMP fragmentation-needed (IPv4) or
// packet-too-big (IPv6) error from src to dst with the next-hop MTU mtu, quoting the IP
// packet quote whole.
func icmpTooBig(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, mtu uint16, quote []byte) []byte {
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded), Seq: mtu}
		return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(quote))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	body := binary.BigEndian.AppendUint32(nil, uint32(mtu))
	return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append(body, quote...)))
}

// csumRecomputed is the Internet checksum of pseudo followed by b, with b's 2-byte
// checksum field at off taken as zero: a full recomputation that shares no code with the
// router.
func csumRecomputed(pseudo, b []byte, off int) uint16 {
	c := bytes.Clone(b)
	c[off], c[off+1] = 0, 0
	var s uint64
	for _, x := range [][]byte{pseudo, c} {
		for i := 0; i < len(x); i += 2 {
			w := uint64(x[i]) << 8
			if i+1 < len(x) {
				w |= uint64(x[i+1])
			}
			s += w
		}
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// pseudoHeader is the TCP/UDP/ICMPv6 pseudo-header of an IPv4 or IPv6 packet.
func pseudoHeader(src, dst netip.Addr, proto uint8, n int) []byte {
	b := append(src.AsSlice(), dst.AsSlice()...)
	if src.Is4() {
		return append(b, 0, proto, byte(n>>8), byte(n))
	}
	return append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
}

// checkChecksums compares every checksum of the IP packet ip with a full
// recomputation: the IPv4 header's, the TCP or ICMP checksum, and inside an ICMP error
// the quoted IPv4 header's and, when the quote holds the whole packet, its TCP checksum.
// quoted says ip is a quote (its transport may be cut).
func checkChecksums(t *testing.T, what string, ip []byte, quoted bool) {
	t.Helper()
	var src, dst netip.Addr
	var proto uint8
	var l4 []byte
	if ip[0]>>4 == 4 {
		hl := int(ip[0]&0x0f) * 4
		if got, want := binary.BigEndian.Uint16(ip[10:]), csumRecomputed(nil, ip[:hl], 10); got != want {
			t.Errorf("%s: IPv4 header checksum %#04x, recomputed %#04x", what, got, want)
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		proto, l4 = ip[9], ip[hl:]
		if tot := int(binary.BigEndian.Uint16(ip[2:])); tot < len(ip) {
			l4 = ip[hl:tot]
		} else if tot > len(ip) {
			if !quoted {
				t.Fatalf("%s: IPv4 total length %d > %d", what, tot, len(ip))
			}
			return // a cut quote: its transport checksum cannot be checked
		}
	} else {
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		proto, l4 = ip[6], ip[40:]
		if n := int(binary.BigEndian.Uint16(ip[4:])); n != len(l4) {
			if !quoted || n < len(l4) {
				t.Fatalf("%s: IPv6 payload length %d, have %d", what, n, len(l4))
			}
			return
		}
	}
	ps := pseudoHeader(src, dst, proto, len(l4))
	switch proto {
	case header.ProtocolTCP:
		if got, want := binary.BigEndian.Uint16(l4[16:]), csumRecomputed(ps, l4, 16); got != want {
			t.Errorf("%s: TCP checksum %#04x, recomputed %#04x", what, got, want)
		}
	case header.ProtocolICMPv4, header.ProtocolICMPv6:
		if proto == header.ProtocolICMPv4 {
			ps = nil
		}
		if got, want := binary.BigEndian.Uint16(l4[2:]), csumRecomputed(ps, l4, 2); got != want {
			t.Errorf("%s: ICMP checksum %#04x, recomputed %#04x", what, got, want)
		}
		if !quoted && len(l4) > 8 {
			checkChecksums(t, what+" (quoted)", l4[8:], true)
		}
	default:
		t.Fatalf("%s: protocol %d", what, proto)
	}
}

// tcpSeen is what a TCP frame carries, as gopacket decodes it.
type tcpSeen struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.AddrPort
	ttl            uint8
	payload        []byte
}

// decodeTCP decodes a frame of a TCP segment with gopacket and checks its checksums.
func decodeTCP(t *testing.T, what string, frame []byte) tcpSeen {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	e, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if e == nil || tcp == nil {
		t.Fatalf("%s: not a TCP frame: %v", what, p)
	}
	s := tcpSeen{srcMAC: e.SrcMAC, dstMAC: e.DstMAC, payload: tcp.Payload}
	var src, dst netip.Addr
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		src, dst, s.ttl = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4())), ip.TTL
	case *layers.IPv6:
		src, dst, s.ttl = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP)), ip.HopLimit
	}
	s.src = netip.AddrPortFrom(src, uint16(tcp.SrcPort))
	s.dst = netip.AddrPortFrom(dst, uint16(tcp.DstPort))
	checkChecksums(t, what, frame[14:], false)
	return s
}

// errorSeen is what a frame of an ICMP error carries, as gopacket decodes it.
type errorSeen struct {
	src, dst         netip.Addr
	ttl              uint8
	mtu              uint32
	qsrc, qdst       netip.AddrPort // the quoted packet's endpoints
	typ, code, qprot uint8
}

// decodeError decodes a frame of an ICMP or ICMPv6 error quoting a TCP segment with
// gopacket, and checks its checksums.
func decodeError(t *testing.T, what string, frame []byte) errorSeen {
	t.Helper()
	var s errorSeen
	var quote []byte
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ok {
			t.Fatalf("%s: not ICMP: %v", what, p)
		}
		s.src, s.dst, s.ttl = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4())), ip.TTL
		s.typ, s.code, s.mtu, quote = ic.TypeCode.Type(), ic.TypeCode.Code(), uint32(ic.Seq), ic.Payload
	case *layers.IPv6:
		ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok || len(ic.Payload) < 4 {
			t.Fatalf("%s: not ICMPv6: %v", what, p)
		}
		s.src, s.dst, s.ttl = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP)), ip.HopLimit
		s.typ, s.code, s.mtu, quote = ic.TypeCode.Type(), ic.TypeCode.Code(), binary.BigEndian.Uint32(ic.Payload), ic.Payload[4:]
	default:
		t.Fatalf("%s: not IP: %v", what, p)
	}
	first := layers.LayerTypeIPv4
	if s.src.Is6() {
		first = layers.LayerTypeIPv6
	}
	q := gopacket.NewPacket(quote, first, gopacket.Default)
	tcp, ok := q.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatalf("%s: the quote is not TCP: %v", what, q)
	}
	var qs, qd netip.Addr
	switch ip := q.NetworkLayer().(type) {
	case *layers.IPv4:
		qs, qd, s.qprot = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4())), uint8(ip.Protocol)
	case *layers.IPv6:
		qs, qd, s.qprot = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP)), uint8(ip.NextHeader)
	}
	s.qsrc, s.qdst = netip.AddrPortFrom(qs, uint16(tcp.SrcPort)), netip.AddrPortFrom(qd, uint16(tcp.DstPort))
	checkChecksums(t, what, frame[14:], false)
	return s
}

func isTCP(p gopacket.Packet) bool {
	return p.Layer(layers.LayerTypeTCP) != nil && p.Layer(layers.LayerTypeICMPv4) == nil && p.Layer(layers.LayerTypeICMPv6) == nil
}

func isICMPError(p gopacket.Packet) bool {
	if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		return ic.TypeCode.Type() == layers.ICMPv4TypeDestinationUnreachable
	}
	ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	return ok && ic.TypeCode.Type() == layers.ICMPv6TypePacketTooBig
}

// wantServerSide checks the client's packet as the server receives it: the case's
// rewrite, TTL decremented, sent by the router to the server's MAC. It returns the
// source the server sees (the client, or the full-NAT proxy source and port).
func (c lbCase) wantServerSide(t *testing.T, s tcpSeen, ttl uint8) netip.AddrPort {
	t.Helper()
	client := netip.AddrPortFrom(c.client(), clientPort)
	wantDst := netip.AddrPortFrom(c.server(), serverPort)
	switch c.topo {
	case balancer.HalfNAT:
		if s.src != client {
			t.Errorf("server sees source %s, want the client %s", s.src, client)
		}
	case balancer.FullNAT:
		if s.src.Addr() != c.proxy() || s.src.Port() < 1024 {
			t.Errorf("server sees source %s, want the proxy source %s and a proxy port", s.src, c.proxy())
		}
	case balancer.DSR:
		if s.src != client {
			t.Errorf("server sees source %s, want the client %s", s.src, client)
		}
		wantDst = netip.AddrPortFrom(c.vip(), c.vport()) // unchanged
	}
	if s.dst != wantDst {
		t.Errorf("server sees destination %s, want %s", s.dst, wantDst)
	}
	if s.ttl != ttl-1 {
		t.Errorf("TTL %d at the server, want %d", s.ttl, ttl-1)
	}
	if !bytes.Equal(s.srcMAC, macRouterR) || !bytes.Equal(s.dstMAC, macHostR) {
		t.Errorf("MACs %s -> %s, want %s -> %s", s.srcMAC, s.dstMAC, macRouterR, macHostR)
	}
	return s.src
}

// wantClientSide checks a server's answer as the client receives it: from the VIP and
// its port, TTL decremented.
func (c lbCase) wantClientSide(t *testing.T, s tcpSeen, ttl uint8) {
	t.Helper()
	if want := netip.AddrPortFrom(c.vip(), c.vport()); s.src != want {
		t.Errorf("client sees source %s, want %s", s.src, want)
	}
	if want := netip.AddrPortFrom(c.client(), clientPort); s.dst != want {
		t.Errorf("client sees destination %s, want %s", s.dst, want)
	}
	if s.ttl != ttl-1 {
		t.Errorf("TTL %d at the client, want %d", s.ttl, ttl-1)
	}
	if !bytes.Equal(s.srcMAC, macRouterL) || !bytes.Equal(s.dstMAC, macHostL) {
		t.Errorf("MACs %s -> %s, want %s -> %s", s.srcMAC, s.dstMAC, macRouterL, macHostL)
	}
}

// TestBalancedFlows sends a connection through each rule: the client's SYN and data reach
// the server rewritten as the topology says, the server's SYN-ACK reaches the client from
// the VIP (DSR: the server answers the client directly).
func TestBalancedFlows(t *testing.T) {
	for _, c := range lbCases {
		t.Run(c.name, func(t *testing.T) {
			tb := newLBBench(t)
			client := netip.AddrPortFrom(c.client(), clientPort)
			vip := netip.AddrPortFrom(c.vip(), c.vport())
			tb.left.sendRaw(tcpFrame(macHostL, macRouterL, client, vip, 64, flagSYN, 1000, nil))
			seen := c.wantServerSide(t, decodeTCP(t, "SYN at the server", tb.right.expect(t, "SYN at the server", isTCP).Data()), 64)
			if c.topo != balancer.DSR {
				server := netip.AddrPortFrom(c.server(), serverPort)
				tb.right.sendRaw(tcpFrame(macHostR, macRouterR, server, seen, 60, flagSYN|flagACK, 5000, nil))
				c.wantClientSide(t, decodeTCP(t, "SYN-ACK at the client", tb.left.expect(t, "SYN-ACK at the client", isTCP).Data()), 60)
			}
			data := []byte("GET / HTTP/1.0\r\n\r\n")
			tb.left.sendRaw(tcpFrame(macHostL, macRouterL, client, vip, 33, flagACK|flagPSH, 1001, data))
			s := decodeTCP(t, "data at the server", tb.right.expect(t, "data at the server", isTCP).Data())
			if got := c.wantServerSide(t, s, 33); got != seen {
				t.Errorf("the flow's second packet comes from %s, the first from %s", got, seen)
			}
			if !bytes.Equal(s.payload, data) {
				t.Errorf("payload %q, want %q", s.payload, data)
			}
		})
	}
}

// TestBalancedICMPErrors sends ICMP errors about half-NAT and full-NAT flows (DSR's
// answers do not pass the router): a fragmentation-needed (IPv4) or packet-too-big
// (IPv6) from a router behind the balancer reaches the client from the VIP, quoting the
// client's packet as the client sent it; one from the client's side reaches the server,
// quoting the server's packet as the server sent it.
func TestBalancedICMPErrors(t *testing.T) {
	for _, c := range lbCases {
		if c.topo == balancer.DSR {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			tb := newLBBench(t)
			client := netip.AddrPortFrom(c.client(), clientPort)
			vip := netip.AddrPortFrom(c.vip(), c.vport())
			server := netip.AddrPortFrom(c.server(), serverPort)
			tb.left.sendRaw(tcpFrame(macHostL, macRouterL, client, vip, 64, flagSYN, 1000, nil))
			atServer := tb.right.expect(t, "SYN at the server", isTCP).Data()
			seen := c.wantServerSide(t, decodeTCP(t, "SYN at the server", atServer), 64)
			tb.right.sendRaw(tcpFrame(macHostR, macRouterR, server, seen, 64, flagSYN|flagACK, 5000, nil))
			atClient := tb.left.expect(t, "SYN-ACK at the client", isTCP).Data()

			// From behind the balancer, about the packet the router sent the server.
			hop := pick(c.v6, hopR4, hopR6)
			tb.right.sendRaw(icmpTooBig(macHostR, macRouterR, hop, seen.Addr(), 1300, atServer[14:]))
			e := decodeError(t, "error at the client", tb.left.expect(t, "error at the client", isICMPError).Data())
			if e.src != c.vip() || e.dst != c.client() || e.ttl != 63 || e.mtu != 1300 {
				t.Errorf("error at the client %s -> %s TTL %d MTU %d, want %s -> %s TTL 63 MTU 1300", e.src, e.dst, e.ttl, e.mtu, c.vip(), c.client())
			}
			if e.qsrc != client || e.qdst != vip {
				t.Errorf("the client's error quotes %s -> %s, want %s -> %s", e.qsrc, e.qdst, client, vip)
			}

			// From the client's side, about the answer the router sent the client.
			hop = pick(c.v6, hopL4, hopL6)
			tb.left.sendRaw(icmpTooBig(macHostL, macRouterL, hop, c.vip(), 1280, atClient[14:]))
			e = decodeError(t, "error at the server", tb.right.expect(t, "error at the server", isICMPError).Data())
			if e.src != hop || e.dst != c.server() || e.ttl != 63 || e.mtu != 1280 {
				t.Errorf("error at the server %s -> %s TTL %d MTU %d, want %s -> %s TTL 63 MTU 1280", e.src, e.dst, e.ttl, e.mtu, hop, c.server())
			}
			if e.qsrc != server || e.qdst != seen {
				t.Errorf("the server's error quotes %s -> %s, want %s -> %s", e.qsrc, e.qdst, server, seen)
			}
		})
	}
}

// lbFixture is a router with lbRules that is not running, and the receive loops of its
// client port (left) and server port (right).
type lbFixture struct {
	r           *Router
	left, right *loop
	buf         []byte
}

func newLBFixture(tb testing.TB, right port.Port) *lbFixture {
	rl, _ := porttest.NewPair(macRouterL, macHostL, 1500)
	if right == nil {
		right, _ = porttest.NewPair(macRouterR, macHostR, 1500)
	}
	r := newLBRouter(tb, rl, right)
	return &lbFixture{r: r, left: r.newLoop(r.ports()[0]), right: r.newLoop(r.ports()[1]), buf: make([]byte, port.BufSize)}
}

// pass hands frame to loop l and returns the one frame it queued on port out (nil for
// none), valid until the next pass.
func (f *lbFixture) pass(l *loop, out int, frame []byte) []byte {
	clear(f.buf[:headroom])
	copy(f.buf[headroom:], frame)
	l.handle(f.buf[:headroom+len(frame)])
	var got []byte
	if len(l.out[out]) == 1 {
		got = l.out[out][0][headroom:]
	}
	for i := range l.out {
		l.out[i] = l.out[i][:0]
	}
	l.nused = 0
	return got
}

// open makes the case's flow: the client's SYN and (but for DSR) the server's SYN-ACK.
// It returns both as the router sent them.
func (f *lbFixture) open(tb testing.TB, c lbCase) (atServer, atClient []byte) {
	client := netip.AddrPortFrom(c.client(), clientPort)
	atServer = bytes.Clone(f.pass(f.left, 1, tcpFrame(macHostL, macRouterL, client, netip.AddrPortFrom(c.vip(), c.vport()), 64, flagSYN, 1000, nil)))
	if atServer == nil {
		tb.Fatal("SYN not forwarded")
	}
	if c.topo == balancer.DSR {
		return atServer, nil
	}
	dst := tcpSource(atServer)
	atClient = bytes.Clone(f.pass(f.right, 0, tcpFrame(macHostR, macRouterR, netip.AddrPortFrom(c.server(), serverPort), dst, 64, flagSYN|flagACK, 5000, nil)))
	if atClient == nil {
		tb.Fatal("SYN-ACK not forwarded")
	}
	return atServer, atClient
}

// tcpSource is the source address and port of a frame of a TCP segment.
func tcpSource(frame []byte) netip.AddrPort {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		return netip.AddrPort{}
	}
	src, _ := netip.AddrFromSlice(p.NetworkLayer().NetworkFlow().Src().Raw())
	return netip.AddrPortFrom(src, uint16(tcp.SrcPort))
}

// TestBalancedFlowsAllocateNothing checks that an established flow's packets, in both
// directions (DSR: the one direction the router sees), are rewritten correctly and
// without an allocation.
func TestBalancedFlowsAllocateNothing(t *testing.T) {
	for _, c := range lbCases {
		t.Run(c.name, func(t *testing.T) {
			f := newLBFixture(t, nil)
			atServer, _ := f.open(t, c)
			seen := c.wantServerSide(t, decodeTCP(t, "SYN", atServer), 64)
			client := netip.AddrPortFrom(c.client(), clientPort)
			toServer := tcpFrame(macHostL, macRouterL, client, netip.AddrPortFrom(c.vip(), c.vport()), 64, flagACK, 1001, []byte("data"))
			toClient := tcpFrame(macHostR, macRouterR, netip.AddrPortFrom(c.server(), serverPort), seen, 64, flagACK, 5001, []byte("answer"))
			if got := c.wantServerSide(t, decodeTCP(t, "to the server", f.pass(f.left, 1, toServer)), 64); got != seen {
				t.Errorf("source %s, first %s", got, seen)
			}
			if c.topo != balancer.DSR {
				c.wantClientSide(t, decodeTCP(t, "to the client", f.pass(f.right, 0, toClient)), 64)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if f.pass(f.left, 1, toServer) == nil {
					t.Fatal("client's packet not forwarded")
				}
				if c.topo != balancer.DSR && f.pass(f.right, 0, toClient) == nil {
					t.Fatal("server's packet not forwarded")
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per established packet pair", allocs)
			}
		})
	}
}

// TestBalancedICMPErrorsAllocateNothing translates ICMP errors about a flow in both
// directions, without an allocation.
func TestBalancedICMPErrorsAllocateNothing(t *testing.T) {
	for _, c := range lbCases {
		if c.topo == balancer.DSR {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			f := newLBFixture(t, nil)
			atServer, atClient := f.open(t, c)
			seen := decodeTCP(t, "SYN", atServer).src
			fromBehind := icmpTooBig(macHostR, macRouterR, pick(c.v6, hopR4, hopR6), seen.Addr(), 1300, atServer[14:])
			fromClient := icmpTooBig(macHostL, macRouterL, pick(c.v6, hopL4, hopL6), c.vip(), 1280, atClient[14:])
			if e := decodeError(t, "to the client", f.pass(f.right, 0, fromBehind)); e.dst != c.client() || e.qsrc.Addr() != c.client() {
				t.Errorf("error to %s quoting %s, want the client", e.dst, e.qsrc)
			}
			if e := decodeError(t, "to the server", f.pass(f.left, 1, fromClient)); e.dst != c.server() || e.qdst != seen {
				t.Errorf("error to %s quoting %s, want the server and %s", e.dst, e.qdst, seen)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if f.pass(f.right, 0, fromBehind) == nil || f.pass(f.left, 1, fromClient) == nil {
					t.Fatal("error not translated")
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per translated error pair", allocs)
			}
		})
	}
}

// BenchmarkBalancedEstablished forwards a client's packet of an established flow.
func BenchmarkBalancedEstablished(b *testing.B) {
	for _, c := range lbCases {
		if c.v6 {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			f := newLBFixture(b, nil)
			f.open(b, c)
			frame := tcpFrame(macHostL, macRouterL, netip.AddrPortFrom(c.client(), clientPort), netip.AddrPortFrom(c.vip(), c.vport()), 64, flagACK, 1001, make([]byte, 18))
			l := f.left
			b.ReportAllocs()
			for b.Loop() {
				copy(f.buf[headroom:], frame)
				l.handle(f.buf[:headroom+len(frame)])
				l.out[1] = l.out[1][:0]
			}
		})
	}
}

// BenchmarkBalancedNewFlow forwards the SYNs of new flows: the rule's match, the pick,
// the connection table's insert and the rewrite. The flows are removed, outside the
// timing, every flowsPerRound.
func BenchmarkBalancedNewFlow(b *testing.B) {
	const flowsPerRound = 1 << 14
	for _, c := range lbCases {
		if c.v6 || c.topo == balancer.DSR {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			f := newLBFixture(b, nil)
			frame := tcpFrame(macHostL, macRouterL, netip.AddrPortFrom(c.client(), clientPort), netip.AddrPortFrom(c.vip(), c.vport()), 64, flagSYN, 1000, make([]byte, 18))
			l := f.left
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if i%flowsPerRound == 0 && i > 0 {
					b.StopTimer()
					f.r.ct.DeleteIf(func(conntrack.Flow) bool { return true })
					b.StartTimer()
				}
				copy(f.buf[headroom:], frame)
				tcp := header.TCP(header.IPv4(f.buf[headroom+ethLen:]).Payload())
				tcp.SetSourcePortWithChecksumUpdate(uint16(1024 + i%flowsPerRound))
				l.handle(f.buf[:headroom+len(frame)])
				if len(l.out[1]) != 1 {
					b.Fatal("SYN not forwarded")
				}
				l.out[1] = l.out[1][:0]
			}
		})
	}
}

// TestSourceLimit: a client prefix past its new-flow allowance has its SYNs shed and
// counted, its established flow goes on, and another prefix still opens flows.
func TestSourceLimit(t *testing.T) {
	f := newLBFixture(t, nil)
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	lim, err := srclimit.New(srclimit.Config{Rate: 1, Burst: 3, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	f.r.srcLimit.Store(lim)
	c := lbCases[0] // half-NAT, IPv4
	vip := netip.AddrPortFrom(c.vip(), c.vport())
	syn := func(client netip.AddrPort) []byte {
		return f.pass(f.left, 1, tcpFrame(macHostL, macRouterL, client, vip, 64, flagSYN, 1000, nil))
	}
	passed := 0
	for i := range 10 {
		if syn(netip.AddrPortFrom(hostL4, uint16(41000+i))) != nil {
			passed++
		}
	}
	if passed != 3 || f.left.bc.drops[DropLBSourceLimit] != 7 {
		t.Errorf("%d SYNs of 10 passed, %d shed; want 3 and 7", passed, f.left.bc.drops[DropLBSourceLimit])
	}
	// The first flow is established: its packets are not new flows.
	ack := tcpFrame(macHostL, macRouterL, netip.AddrPortFrom(hostL4, 41000), vip, 64, flagACK, 1001, []byte("data"))
	if f.pass(f.left, 1, ack) == nil {
		t.Error("a packet of an existing flow was shed")
	}
	// Another prefix (here: the other family) is not limited by this one's flood.
	c6 := lbCases[1]
	if f.pass(f.left, 1, tcpFrame(macHostL, macRouterL, netip.AddrPortFrom(hostL6, 41000),
		netip.AddrPortFrom(c6.vip(), c6.vport()), 64, flagSYN, 1000, nil)) == nil {
		t.Error("another prefix's SYN was shed")
	}
	// A second later the prefix has one more.
	at = at.Add(time.Second)
	if syn(netip.AddrPortFrom(hostL4, 42000)) == nil || syn(netip.AddrPortFrom(hostL4, 42001)) != nil {
		t.Error("after a second: want one more SYN through, then none")
	}
}

// TestNewFlowBudget: a batch makes at most its budget of new flows; the rest are shed and
// counted, an established flow's packets are not, and the next batch has a new budget.
func TestNewFlowBudget(t *testing.T) {
	f := newLBFixture(t, nil)
	f.r.newFlowBudget.Store(3)
	c := lbCases[0]
	vip := netip.AddrPortFrom(c.vip(), c.vport())
	syn := func(port uint16) []byte {
		return f.pass(f.left, 1, tcpFrame(macHostL, macRouterL, netip.AddrPortFrom(hostL4, port), vip, 64, flagSYN, 1000, nil))
	}
	passed := 0
	for i := range 10 {
		if syn(uint16(43000+i)) != nil {
			passed++
		}
	}
	if passed != 3 || f.left.bc.drops[DropLBNewFlowBudget] != 7 {
		t.Errorf("%d of 10 SYNs made flows, %d shed; want 3 and 7", passed, f.left.bc.drops[DropLBNewFlowBudget])
	}
	ack := tcpFrame(macHostL, macRouterL, netip.AddrPortFrom(hostL4, 43000), vip, 64, flagACK, 1001, []byte("x"))
	if f.pass(f.left, 1, ack) == nil {
		t.Error("an established flow's packet was shed")
	}
	f.left.newFlows = 0 // the next batch
	if syn(44000) == nil {
		t.Error("the next batch has no budget")
	}
}

// TestOverloadedServer: a rule whose one server is at max_conns refuses a new flow with a
// RST, counted as lb-overloaded (not lb-no-server); the server's existing flows go on,
// and once a flow ends below the lower threshold the next SYN gets through.
func TestOverloadedServer(t *testing.T) {
	f := newLBFixture(t, nil)
	rules := lbRules()
	rules[0].Servers[0].MaxConns = 2 // IPVS's default lower threshold: below 2
	if err := f.r.lb.Set(rules); err != nil {
		t.Fatal(err)
	}
	c := lbCases[0] // half-NAT, IPv4
	vip := netip.AddrPortFrom(c.vip(), c.vport())
	syn := func(port uint16, out int) []byte {
		return f.pass(f.left, out, tcpFrame(macHostL, macRouterL, netip.AddrPortFrom(hostL4, port), vip, 64, flagSYN, 1000, nil))
	}
	for _, p := range []uint16{45000, 45001} {
		if syn(p, 1) == nil {
			t.Fatalf("SYN from port %d not forwarded", p)
		}
	}
	rst := syn(45002, 0)
	if rst == nil {
		t.Fatal("a SYN to a rule whose server is overloaded got no answer")
	}
	if tcp, ok := gopacket.NewPacket(rst, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP); !ok || !tcp.RST {
		t.Fatal("a SYN to a rule whose server is overloaded got no RST")
	}
	if d := f.left.bc.drops; d[DropLBOverloaded] != 1 || d[DropLBNoServer] != 0 {
		t.Errorf("drops lb-overloaded %d, lb-no-server %d; want 1 and 0", d[DropLBOverloaded], d[DropLBNoServer])
	}
	ack := tcpFrame(macHostL, macRouterL, netip.AddrPortFrom(hostL4, 45000), vip, 64, flagACK, 1001, []byte("x"))
	if f.pass(f.left, 1, ack) == nil {
		t.Error("an existing flow of the overloaded server was refused")
	}
	if !f.r.ct.Delete(conntrack.MakeTuple(hostL4, c.vip(), 45001, c.vport(), header.ProtocolTCP)) {
		t.Fatal("no flow to delete")
	}
	if syn(45003, 1) == nil {
		t.Error("below the lower threshold: SYN not forwarded")
	}
}
