package examples

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"ulb/bench/netns"
	"ulb/internal/testenv"
	"ulb/router/control"
	"ulb/router/header"
)

const rfcSocket = "/run/ulb/ulbt-opts.sock"

var (
	rfcClient4  = netip.MustParseAddr("192.0.2.2")
	rfcRouterL4 = netip.MustParseAddr("192.0.2.1")
	rfcRouterR4 = netip.MustParseAddr("198.51.100.1")
	rfcServer4  = netip.MustParseAddr("198.51.100.2")
	rfcClient6  = netip.MustParseAddr("2001:db8:1::2")
	rfcRouterL6 = netip.MustParseAddr("2001:db8:1::1")
	rfcServer6  = netip.MustParseAddr("2001:db8:2::2")
)

// rfcTap is a packet socket on a namespace's interface: it sends crafted frames and
// hands the test every frame the interface sees.
type rfcTap struct {
	c   *packet.Conn
	mac net.HardwareAddr
	rx  chan []byte
}

func openTap(t *testing.T, ns, dev string) *rfcTap {
	t.Helper()
	tp := &rfcTap{rx: make(chan []byte, 1024)}
	err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		tp.mac = ifi.HardwareAddr
		tp.c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatalf("packet socket on %s in %s: %v", dev, ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := tp.c.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 12 && bytes.Equal(buf[6:12], tp.mac) {
				continue // sent from here: the socket sees outgoing frames too
			}
			select {
			case tp.rx <- bytes.Clone(buf[:n]):
			default:
			}
		}
	}()
	t.Cleanup(func() {
		tp.c.Close()
		<-done
	})
	return tp
}

func (tp *rfcTap) drain() {
	for {
		select {
		case <-tp.rx:
		default:
			return
		}
	}
}

// next returns the first frame matching match within d, or nil.
func (tp *rfcTap) next(d time.Duration, match func(gopacket.Packet) bool) gopacket.Packet {
	deadline := time.After(d)
	for {
		select {
		case f := <-tp.rx:
			if p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default); match(p) {
				return p
			}
		case <-deadline:
			return nil
		}
	}
}

// rfcCase is one crafted packet from the client and what must come of it.
type rfcCase struct {
	name  string
	frame func(c *rfcCtx) []byte
	// at is where the outcome shows: "server" (the packet forwarded), "client" (an
	// answer from the router), or "" (nothing, anywhere).
	at    string
	match func(gopacket.Packet) bool
	check func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet)
	drop  string // the drop reason that must grow by one, if any
}

type rfcCtx struct {
	routerMAC, clientMAC net.HardwareAddr
	clientLL, routerLL   netip.Addr
}

// TestRFCConformance sends crafted packets through and to a real ulbd: IPv4 options
// processed in transit and checked everywhere (RFC 791 §3.1, RFC 1812 §4.3.3.5,
// §5.3.13), source routes dropped (RFC 7126 §4.3, §4.4), routing headers with
// segments left for the router refused (RFC 8200 §4.4, RFC 5095 §3), unknown protocols
// answered (RFC 1122 §3.2.2.1, RFC 4443 §3.4), a link-local source that would leave its
// link answered on that link (RFC 4443 §3.1), class E sources dropped (RFC 1812 §5.3.7).
func TestRFCConformance(t *testing.T) {
	testenv.NeedTool(t, "ping")
	b := upBench(t, "testdata/rfc/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var ports []control.PortInfo
	ulbadm(t, rfcSocket, &ports, "show-port", "left")
	routerMAC, err := net.ParseMAC(ports[0].MAC)
	if err != nil {
		t.Fatal(err)
	}
	client := openTap(t, b.Namespace("cli"), "eth0")
	server := openTap(t, b.Namespace("srv"), "eth0")
	c := &rfcCtx{routerMAC: routerMAC, clientMAC: client.mac,
		routerLL: header.LinkLocalFromMAC(header.MAC(routerMAC))}
	out, err := b.Exec(ctx, "cli", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() {
			c.clientLL = p.Addr()
		}
	}
	if !c.clientLL.IsValid() {
		t.Fatalf("the client has no link-local address: %s", out)
	}
	// Both hosts resolved and the paths warm before the crafted packets.
	for _, to := range []string{"198.51.100.2", "2001:db8:2::2", "192.0.2.1", "2001:db8:1::1"} {
		if out, err := b.Exec(ctx, "cli", "ping", "-n", "-c", "1", "-W", "2", to); err != nil {
			t.Fatalf("ping %s: %v\n%s", to, err, out)
		}
	}

	for _, tc := range rfcCases() {
		t.Run(tc.name, func(t *testing.T) {
			before := stats(t, rfcSocket)
			client.drain()
			server.drain()
			sent := tc.frame(c)
			if err := client.c.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := client.c.WriteTo(sent, &packet.Addr{HardwareAddr: routerMAC}); err != nil {
				t.Fatal(err)
			}
			switch tc.at {
			case "server", "client":
				tap := server
				if tc.at == "client" {
					tap = client
				}
				got := tap.next(3*time.Second, tc.match)
				if got == nil {
					t.Fatalf("nothing matching arrived at the %s", tc.at)
				}
				tc.check(t, c, sent, got)
			default:
				if p := server.next(500*time.Millisecond, tc.match); p != nil {
					t.Errorf("reached the server: %v", p)
				}
				if p := client.next(100*time.Millisecond, tc.match); p != nil {
					t.Errorf("answered: %v", p)
				}
			}
			if tc.drop != "" {
				deadline := time.Now().Add(2 * time.Second)
				for {
					after := stats(t, rfcSocket)
					if got := after.Drops[tc.drop] - before.Drops[tc.drop]; got == 1 || time.Now().After(deadline) {
						if got != 1 {
							t.Errorf("drops[%s] grew by %d, want 1", tc.drop, got)
						}
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}

	// ping -R: the client's kernel records its address when it sends and when it
	// receives, the server's kernel when it receives and when it replies, ulbd when it
	// forwards (its egress port's address) and when it answers an echo itself.
	t.Run("ping record route", func(t *testing.T) {
		for _, tc := range []struct {
			to   string
			want []string
		}{
			{"198.51.100.2", []string{"192.0.2.2", "198.51.100.1", "198.51.100.2", "198.51.100.2", "192.0.2.1", "192.0.2.2"}},
			{"192.0.2.1", []string{"192.0.2.2", "192.0.2.1", "192.0.2.2"}},
		} {
			out, _ := b.Exec(ctx, "cli", "ping", "-n", "-R", "-c", "1", "-W", "2", tc.to)
			if got := recordedRoute(string(out)); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("ping -R %s recorded %v, want %v:\n%s", tc.to, got, tc.want, out)
			}
		}
	})
}

// recordedRoute returns the addresses ping -R prints after "RR:", up to a blank line.
func recordedRoute(out string) []string {
	i := strings.Index(out, "RR:")
	if i < 0 {
		return nil
	}
	var rr []string
	for _, line := range strings.Split(out[i+len("RR:"):], "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			break
		}
		rr = append(rr, f[0])
	}
	return rr
}

// Crafting.

func rfcEth(c *rfcCtx, typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: c.clientMAC, DstMAC: c.routerMAC, EthernetType: typ}
}

func rfcSerialize(ls ...gopacket.SerializableLayer) []byte {
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return bytes.Clone(sb.Bytes())
}

// rfcOptions puts opts (padded to a multiple of 4) into the IPv4 header of frame and
// fixes its lengths and header checksum.
func rfcOptions(frame, opts []byte) []byte {
	frame = frame[:14+header.IPv4(frame[14:]).TotalLength()]
	n := (len(opts) + 3) &^ 3
	out := append(bytes.Clone(frame[:34]), opts...)
	out = append(out, make([]byte, n-len(opts))...)
	out = append(out, frame[34:]...)
	ip := header.IPv4(out[14:])
	ip[0] = 0x40 | byte((20+n)/4)
	ip.SetTotalLength(uint16(len(out) - 14))
	ip.SetChecksum(ip.CalculateChecksum())
	return out
}

func rfcUDP4(c *rfcCtx, src, dst netip.Addr, opts []byte) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	u := &layers.UDP{SrcPort: 40000, DstPort: 9}
	u.SetNetworkLayerForChecksum(ip)
	return rfcOptions(rfcSerialize(rfcEth(c, layers.EthernetTypeIPv4), ip, u, gopacket.Payload("rfc test")), opts)
}

func rfcEcho4(c *rfcCtx, dst netip.Addr, opts []byte) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: rfcClient4.AsSlice(), DstIP: dst.AsSlice()}
	return rfcOptions(rfcSerialize(rfcEth(c, layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x5151, Seq: 1}, gopacket.Payload("rfc test")), opts)
}

func rfcRaw4(c *rfcCtx, dst netip.Addr, proto uint8) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocol(proto), SrcIP: rfcClient4.AsSlice(), DstIP: dst.AsSlice()}
	return rfcOptions(rfcSerialize(rfcEth(c, layers.EthernetTypeIPv4), ip, gopacket.Payload("0123456789abcdef")), nil)
}

// rfcIPv6 is an IPv6 frame from src to dst: next header nh, then ext, then an ICMPv6
// echo request whose checksum covers final (or an opaque payload when echo is false).
func rfcIPv6(c *rfcCtx, src, dst, final netip.Addr, nh uint8, ext []byte, echo bool) []byte {
	body := []byte("0123456789abcdef")
	if echo {
		body = make([]byte, 8+8)
		body[0] = header.ICMPv6EchoRequest
		binary.BigEndian.PutUint16(body[4:], 0x5151)
		copy(body[8:], "rfc test")
		header.SetTransportChecksum(header.ProtocolICMPv6, src, final, body)
	}
	f := make([]byte, 14+40+len(ext)+len(body))
	e := header.Ethernet(f)
	e.SetDestination(header.MAC(c.routerMAC))
	e.SetSource(header.MAC(c.clientMAC))
	e.SetEtherType(header.EtherTypeIPv6)
	header.EncodeIPv6(f[14:], header.IPv6Fields{PayloadLength: uint16(len(ext) + len(body)), NextHeader: nh, HopLimit: 64, Src: src, Dst: dst})
	copy(f[54:], ext)
	copy(f[54+len(ext):], body)
	return f
}

// Matching.

func udpFrom(src netip.Addr) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		return ok && p.Layer(layers.LayerTypeUDP) != nil && netip.AddrFrom4([4]byte(ip.SrcIP.To4())) == src
	}
}

func icmp4From(src netip.Addr, typ, code uint8) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		ic, ok2 := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ok2 && netip.AddrFrom4([4]byte(ip.SrcIP.To4())) == src && ic.TypeCode.Type() == typ && ic.TypeCode.Code() == code
	}
}

func icmp6From(src netip.Addr, typ, code uint8) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		ic, ok2 := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		return ok && ok2 && netip.AddrFrom16([16]byte(ip.SrcIP)) == src && ic.TypeCode.Type() == typ && ic.TypeCode.Code() == code
	}
}

// anyOf matches what any of ms matches.
func anyOf(ms ...func(gopacket.Packet) bool) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		for _, m := range ms {
			if m(p) {
				return true
			}
		}
		return false
	}
}

// Checking.

// options4 returns the IPv4 header of a received frame after checking its checksum.
func options4(t *testing.T, p gopacket.Packet) header.IPv4 {
	t.Helper()
	ip := header.IPv4(p.Data()[14:])
	if !ip.IsValid() || !ip.IsChecksumValid() {
		t.Fatalf("bad IPv4 header: % x", p.Data()[14:])
	}
	if _, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ok {
		t.Fatalf("gopacket does not decode it: %v", p.ErrorLayer())
	}
	return ip
}

// paramProblem4 checks an ICMP parameter problem: its pointer and its quote of sent.
func paramProblem4(ptr uint8) func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
	return func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
		ip := options4(t, got)
		icmp := header.ICMPv4(ip.Payload())
		if p := uint8(icmp.Rest() >> 24); p != ptr {
			t.Errorf("pointer %d, want %d", p, ptr)
		}
		if !bytes.Equal(icmp.Payload(), sent[14:]) {
			t.Errorf("quote % x, want % x", icmp.Payload(), sent[14:])
		}
		if ip.DestinationAddr() != rfcClient4 {
			t.Errorf("error to %s", ip.DestinationAddr())
		}
	}
}

func icmp6Check(ptr uint32) func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
	return func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
		v6 := header.IPv6(got.Data()[14:])
		icmp := header.ICMPv6(v6.Payload())
		if !header.IsTransportChecksumValid(header.ProtocolICMPv6, v6.SourceAddr(), v6.DestinationAddr(), v6.Payload()) {
			t.Error("bad ICMPv6 checksum")
		}
		if icmp.Rest() != ptr {
			t.Errorf("pointer %d, want %d", icmp.Rest(), ptr)
		}
		if !bytes.Equal(icmp.Payload(), sent[14:]) {
			t.Errorf("quote % x, want % x", icmp.Payload(), sent[14:])
		}
	}
}

func rh0(next, left uint8, addrs ...netip.Addr) []byte {
	h := []byte{next, byte(2 * len(addrs)), 0, left, 0, 0, 0, 0}
	for _, a := range addrs {
		h = append(h, a.AsSlice()...)
	}
	return h
}

func rfcCases() []rfcCase {
	const (
		rr   = header.IPv4OptionRecordRoute
		ts   = header.IPv4OptionTimestamp
		lsrr = header.IPv4OptionLSRR
		ssrr = header.IPv4OptionSSRR
		nop  = header.IPv4OptionNOP
	)
	fromClient := udpFrom(rfcClient4)
	nothing := anyOf(fromClient, icmp4From(rfcRouterL4, header.ICMPv4EchoReply, 0),
		func(p gopacket.Packet) bool {
			ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			return ok && ic.TypeCode.Type() != header.ICMPv4Echo
		})
	return []rfcCase{
		{
			name:  "record route in transit",
			frame: func(c *rfcCtx) []byte { return rfcUDP4(c, rfcClient4, rfcServer4, []byte{nop, rr, 11, 4, 8: 0, 0, 0}) },
			at:    "server", match: fromClient,
			check: func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
				ip := options4(t, got)
				if want := []byte{nop, rr, 11, 8, 198, 51, 100, 1, 0, 0, 0, 0}; !bytes.Equal(ip[20:32], want) {
					t.Errorf("options % x, want % x", ip[20:32], want)
				}
			},
		},
		{
			name:  "timestamp with addresses in transit",
			frame: func(c *rfcCtx) []byte { return rfcUDP4(c, rfcClient4, rfcServer4, []byte{ts, 12, 5, 1, 11: 0}) },
			at:    "server", match: fromClient,
			check: func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
				ip := options4(t, got)
				o := ip[20:32]
				if o[2] != 13 || netip.AddrFrom4([4]byte(o[4:8])) != rfcRouterR4 || binary.BigEndian.Uint32(o[8:]) == 0 {
					t.Errorf("timestamp option % x: want pointer 13, %s and a time", o, rfcRouterR4)
				}
				if ms := binary.BigEndian.Uint32(o[8:]); ms >= 24*3600*1000 {
					t.Errorf("timestamp %d is not milliseconds since midnight", ms)
				}
			},
		},
		{
			name:  "malformed option length in transit",
			frame: func(c *rfcCtx) []byte { return rfcUDP4(c, rfcClient4, rfcServer4, []byte{nop, 0x88, 12, 0}) },
			at:    "client", match: icmp4From(rfcRouterL4, header.ICMPv4ParamProblem, 0),
			check: paramProblem4(22), drop: "ipv4-options",
		},
		{
			name:  "malformed record route pointer to the router",
			frame: func(c *rfcCtx) []byte { return rfcEcho4(c, rfcRouterL4, []byte{rr, 7, 2, 0, 0, 0, 0}) },
			at:    "client", match: icmp4From(rfcRouterL4, header.ICMPv4ParamProblem, 0),
			check: paramProblem4(22), drop: "ipv4-options",
		},
		{
			name:  "loose source route to the router",
			frame: func(c *rfcCtx) []byte { return rfcEcho4(c, rfcRouterL4, []byte{nop, lsrr, 7, 4, 198, 51, 100, 2}) },
			match: nothing, drop: "source-route",
		},
		{
			name: "strict source route in transit",
			frame: func(c *rfcCtx) []byte {
				return rfcUDP4(c, rfcClient4, rfcServer4, []byte{nop, ssrr, 7, 4, 198, 51, 100, 2})
			},
			match: nothing, drop: "source-route",
		},
		{
			name:  "class E source",
			frame: func(c *rfcCtx) []byte { return rfcUDP4(c, netip.MustParseAddr("240.0.2.2"), rfcServer4, nil) },
			match: anyOf(udpFrom(netip.MustParseAddr("240.0.2.2")), nothing), drop: "ipv4-source",
		},
		{
			name:  "protocol unreachable",
			frame: func(c *rfcCtx) []byte { return rfcRaw4(c, rfcRouterL4, 47) },
			at:    "client", match: icmp4From(rfcRouterL4, header.ICMPv4DstUnreachable, header.ICMPv4ProtoUnreachable),
			check: func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
				if q := header.ICMPv4(options4(t, got).Payload()).Payload(); !bytes.Equal(q, sent[14:]) {
					t.Errorf("quote % x, want % x", q, sent[14:])
				}
			},
		},
		{
			name: "routing header 0 with segments left to the router",
			frame: func(c *rfcCtx) []byte {
				return rfcIPv6(c, rfcClient6, rfcRouterL6, rfcServer6, header.ProtocolRouting, rh0(header.ProtocolICMPv6, 1, rfcServer6), true)
			},
			at: "client", match: icmp6From(rfcRouterL6, header.ICMPv6ParamProblem, 0),
			check: icmp6Check(42), drop: "ipv6-routing-header",
		},
		{
			name: "routing header 0 without segments left to the router",
			frame: func(c *rfcCtx) []byte {
				return rfcIPv6(c, rfcClient6, rfcRouterL6, rfcRouterL6, header.ProtocolRouting, rh0(header.ProtocolICMPv6, 0, rfcServer6), true)
			},
			at: "client", match: icmp6From(rfcRouterL6, header.ICMPv6EchoReply, 0),
			check: func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
				if e, ok := got.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); !ok || e.Identifier != 0x5151 {
					t.Errorf("echo reply %v", got)
				}
			},
		},
		{
			name: "unknown next header to the router",
			frame: func(c *rfcCtx) []byte {
				return rfcIPv6(c, rfcClient6, rfcRouterL6, rfcRouterL6, header.ProtocolDstOpts, []byte{47, 0, 1, 4, 0, 0, 0, 0}, false)
			},
			at: "client", match: icmp6From(rfcRouterL6, header.ICMPv6ParamProblem, 1),
			check: icmp6Check(40),
		},
		{
			name: "link-local source leaving its link",
			frame: func(c *rfcCtx) []byte {
				return rfcIPv6(c, c.clientLL, rfcServer6, rfcServer6, header.ProtocolICMPv6, nil, true)
			},
			at: "client",
			match: func(p gopacket.Packet) bool {
				ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
				return ok && ic.TypeCode.Type() == header.ICMPv6DstUnreachable && ic.TypeCode.Code() == header.ICMPv6BeyondScope
			},
			check: func(t *testing.T, c *rfcCtx, sent []byte, got gopacket.Packet) {
				v6 := header.IPv6(got.Data()[14:])
				if v6.SourceAddr() != c.routerLL || v6.DestinationAddr() != c.clientLL {
					t.Errorf("error %s -> %s, want %s -> %s", v6.SourceAddr(), v6.DestinationAddr(), c.routerLL, c.clientLL)
				}
				icmp6Check(0)(t, c, sent, got)
			},
			drop: "link-local",
		},
	}
}
