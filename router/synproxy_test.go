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
	"ulb/balancer/synproxy"
)

// proxySeg builds a TCP segment with options, as a real stack sends it.
func proxySeg(srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, seq, ack uint32, syn, ackFlag bool, win uint16,
	opts []layers.TCPOption, payload []byte) []byte {
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: seq, Ack: ack,
		SYN: syn, ACK: ackFlag, Window: win, Options: opts}
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload))
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv6), ip, tcp, gopacket.Payload(payload))
}

func optMSS(v uint16) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: binary.BigEndian.AppendUint16(nil, v)}
}
func optWS(v byte) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{v}}
}
func optTS(val, ecr uint32) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10,
		OptionData: binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, val), ecr)}
}

var (
	optSACKOK = layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}
	optNOP    = layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1}
)

// seen is a TCP segment as gopacket decodes it, checksums checked.
type seen struct {
	tcpSeen
	tcp *layers.TCP
	// Options found.
	mss, ws   int // -1: none
	sack      bool
	ts        bool
	tsv, tsec uint32
}

func decodeSeg(t *testing.T, what string, frame []byte) seen {
	t.Helper()
	if frame == nil {
		t.Fatalf("%s: nothing sent", what)
	}
	s := seen{tcpSeen: decodeTCP(t, what, frame), mss: -1, ws: -1}
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	s.tcp = p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	for _, o := range s.tcp.Options {
		switch o.OptionType {
		case layers.TCPOptionKindMSS:
			s.mss = int(binary.BigEndian.Uint16(o.OptionData))
		case layers.TCPOptionKindWindowScale:
			s.ws = int(o.OptionData[0])
		case layers.TCPOptionKindSACKPermitted:
			s.sack = true
		case layers.TCPOptionKindTimestamps:
			s.ts, s.tsv, s.tsec = true, binary.BigEndian.Uint32(o.OptionData), binary.BigEndian.Uint32(o.OptionData[4:])
		}
	}
	return s
}

// passAll hands frame to loop l and returns what it queued on each port.
func (f *lbFixture) passAll(l *loop, frame []byte) [2][]byte {
	clear(f.buf[:headroom])
	copy(f.buf[headroom:], frame)
	l.handle(f.buf[:headroom+len(frame)])
	var out [2][]byte
	for i := range l.out {
		if i < 2 && len(l.out[i]) == 1 {
			out[i] = bytes.Clone(l.out[i][0][headroom:])
		}
		l.out[i] = l.out[i][:0]
	}
	l.nused = 0
	return out
}

// TestSYNProxy walks a SYN-proxied connection through half-NAT and full-NAT rules of
// both families: the cookie SYN-ACK, the server's handshake opened on the client's
// valid ACK, the server's SYN-ACK answered and the client's window opened, then data
// both ways with sequence numbers, timestamps and windows translated, every checksum
// checked by gopacket. A guessed ACK makes no flow; a DSR rule is not proxied.
func TestSYNProxy(t *testing.T) {
	for _, c := range lbCases {
		t.Run(c.name, func(t *testing.T) {
			f := newLBFixture(t, nil)
			f.r.cookies = synproxy.New([16]byte{7}, nil)
			f.r.proxy.mode.Store(proxyAlways)
			f.r.proxy.wscale.Store(7)
			client := netip.AddrPortFrom(c.client(), clientPort)
			vip := netip.AddrPortFrom(c.vip(), c.vport())
			syn := proxySeg(macHostL, macRouterL, client, vip, 1000, 0, true, false, 64240,
				[]layers.TCPOption{optMSS(1460), optSACKOK, optTS(111, 0), optNOP, optWS(8)}, nil)
			out := f.passAll(f.left, syn)
			if c.topo == balancer.DSR {
				if out[1] == nil || out[0] != nil {
					t.Fatal("DSR: the SYN was not forwarded as it is")
				}
				return
			}
			sa := decodeSeg(t, "SYN-ACK", out[0])
			if out[1] != nil || !sa.tcp.SYN || !sa.tcp.ACK || sa.tcp.Ack != 1001 || sa.tcp.Window != 0 || sa.src != vip || sa.dst != client ||
				sa.ws != 7 || !sa.sack || !sa.ts || sa.tsec != 111 || sa.mss != int(proxyMSS(c.v6)) {
				t.Fatalf("cookie SYN-ACK %+v (to the server: %v)", sa, out[1] != nil)
			}
			cookie, ourTS := sa.tcp.Seq, sa.tsv
			if f.r.ct.Len() != 0 {
				t.Fatal("a SYN made a flow")
			}

			// A guessed ACK: no flow, refused as before (a RST).
			guess := proxySeg(macHostL, macRouterL, netip.AddrPortFrom(c.client(), clientPort+1), vip, 1001, cookie+1, false, true, 502,
				[]layers.TCPOption{optNOP, optNOP, optTS(112, ourTS)}, nil)
			if out := f.passAll(f.left, guess); out[1] != nil || f.r.ct.Len() != 0 {
				t.Fatal("a guessed cookie opened a flow")
			}

			ack := proxySeg(macHostL, macRouterL, client, vip, 1001, cookie+1, false, true, 502,
				[]layers.TCPOption{optNOP, optNOP, optTS(112, ourTS)}, nil)
			out = f.passAll(f.left, ack)
			ss := decodeSeg(t, "SYN to the server", out[1])
			serverSide := c.wantServerSide(t, ss.tcpSeen, 65) // the router's own: TTL 64
			if !ss.tcp.SYN || ss.tcp.ACK || ss.tcp.Seq != 1000 || ss.mss != 1460 || ss.ws != 8 || !ss.sack || !ss.ts || ss.tsv != 112 ||
				ss.tcp.Window != 65535 {
				t.Fatalf("SYN to the server %+v", ss)
			}
			if f.r.ct.Len() != 1 {
				t.Fatalf("%d flows after the ACK", f.r.ct.Len())
			}
			// While the server's handshake is pending the client's segments wait.
			if out := f.passAll(f.left, ack); out[1] != nil {
				t.Error("a client segment passed before the server's handshake")
			}

			server := netip.AddrPortFrom(c.server(), serverPort)
			synack := proxySeg(macHostR, macRouterR, server, serverSide, 5000, 1001, true, true, 29200,
				[]layers.TCPOption{optMSS(1400), optSACKOK, optTS(777, 112), optNOP, optWS(9)}, nil)
			out = f.passAll(f.right, synack)
			sack := decodeSeg(t, "ACK to the server", out[1])
			if sack.src != serverSide || sack.dst != server || sack.tcp.SYN || !sack.tcp.ACK || sack.tcp.Seq != 1001 || sack.tcp.Ack != 5001 ||
				sack.tcp.Window != 502 || !sack.ts || sack.tsv != 112 || sack.tsec != 777 {
				t.Fatalf("ACK to the server %+v", sack)
			}
			wu := decodeSeg(t, "window update", out[0])
			if wu.src != vip || wu.dst != client || wu.tcp.SYN || !wu.tcp.ACK || wu.tcp.Seq != cookie+1 || wu.tcp.Ack != 1001 ||
				wu.tcp.Window != 29200>>7 || !wu.ts || wu.tsv != ourTS || wu.tsec != 112 {
				t.Fatalf("window update %+v", wu)
			}

			// Data both ways.
			req := proxySeg(macHostL, macRouterL, client, vip, 1001, cookie+1, false, true, 502,
				[]layers.TCPOption{optNOP, optNOP, optTS(113, ourTS)}, []byte("GET /"))
			got := decodeSeg(t, "request at the server", f.pass(f.left, 1, req))
			if got.tcp.Seq != 1001 || got.tcp.Ack != 5001 || got.tsv != 113 || got.tsec != 777 || string(got.payload) != "GET /" {
				t.Errorf("request at the server: seq %d ack %d ts %d/%d %q", got.tcp.Seq, got.tcp.Ack, got.tsv, got.tsec, got.payload)
			}
			resp := proxySeg(macHostR, macRouterR, server, serverSide, 5001, 1006, false, true, 1000,
				[]layers.TCPOption{optNOP, optNOP, optTS(778, 113)}, []byte("200 OK"))
			got = decodeSeg(t, "answer at the client", f.pass(f.right, 0, resp))
			if got.src != vip || got.tcp.Seq != cookie+1 || got.tcp.Ack != 1006 || got.tcp.Window != 1000<<2 ||
				got.tsv != ourTS+1 || got.tsec != 113 || string(got.payload) != "200 OK" {
				t.Errorf("answer at the client: seq %d (cookie %d) ack %d window %d ts %d/%d (ours %d) %q",
					got.tcp.Seq, cookie, got.tcp.Ack, got.tcp.Window, got.tsv, got.tsec, ourTS, got.payload)
			}
			// Translating costs no allocation.
			if n := testing.AllocsPerRun(200, func() {
				if f.pass(f.left, 1, req) == nil || f.pass(f.right, 0, resp) == nil {
					t.Fatal("not forwarded")
				}
			}); n != 0 {
				t.Errorf("%v allocations per proxied packet pair", n)
			}
			st, _ := f.r.SYNProxyStats()
			if st.CookiesSent != 1 || st.CookiesValid != 1 || st.CookiesInvalid != 1 || st.Established != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// A server that refuses the proxied connection: the client gets a RST in its own
// sequence space and the flow is gone.
func TestSYNProxyServerRefuses(t *testing.T) {
	c := lbCases[0]
	f := newLBFixture(t, nil)
	f.r.cookies = synproxy.New([16]byte{7}, nil)
	f.r.proxy.mode.Store(proxyAlways)
	client, vip := netip.AddrPortFrom(c.client(), clientPort), netip.AddrPortFrom(c.vip(), c.vport())
	sa := decodeSeg(t, "SYN-ACK", f.passAll(f.left, proxySeg(macHostL, macRouterL, client, vip, 1000, 0, true, false, 64240,
		[]layers.TCPOption{optMSS(1460)}, nil))[0])
	out := f.passAll(f.left, proxySeg(macHostL, macRouterL, client, vip, 1001, sa.tcp.Seq+1, false, true, 502, nil, nil))
	if sa.ts || out[1] == nil {
		t.Fatal("no SYN to the server")
	}
	rst := proxySeg(macHostR, macRouterR, netip.AddrPortFrom(c.server(), serverPort), client, 0, 1001, false, true, 0, nil, nil)
	// Set RST by hand: proxySeg has no flag for it.
	off := 14 + 20 + 13
	rst[off] |= 0x04
	fixTCPChecksum(t, rst)
	got := decodeSeg(t, "RST to the client", f.passAll(f.right, rst)[0])
	if !got.tcp.RST || got.src != vip || got.tcp.Seq != sa.tcp.Seq+1 {
		t.Errorf("RST to the client %+v", got)
	}
	if f.r.ct.Len() != 0 {
		t.Errorf("%d flows after the server refused", f.r.ct.Len())
	}
}

// fixTCPChecksum recomputes the TCP checksum of an IPv4 frame with gopacket.
func fixTCPChecksum(t *testing.T, frame []byte) {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	tcp.SetNetworkLayerForChecksum(ip)
	copy(frame, serialize(p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet), ip, tcp, gopacket.Payload(tcp.Payload)))
}

// With Auto the cookies answer SYNs only while they come faster than the threshold, and
// the ACKs of cookies sent then are still taken after it calms down.
func TestSYNProxyAuto(t *testing.T) {
	c := lbCases[0]
	f := newLBFixture(t, nil)
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	f.r.now = func() time.Time { return at }
	f.r.cookies = synproxy.New([16]byte{7}, f.r.now)
	f.r.proxy.mode.Store(proxyAuto)
	f.r.proxy.threshold.Store(5)
	vip := netip.AddrPortFrom(c.vip(), c.vport())
	port := uint16(20000)
	syn := func() [2][]byte {
		port++
		return f.passAll(f.left, proxySeg(macHostL, macRouterL, netip.AddrPortFrom(c.client(), port), vip, 1000, 0, true, false,
			64240, []layers.TCPOption{optMSS(1460)}, nil))
	}
	tick := func(d time.Duration) { at = at.Add(d); f.r.proxyTick(at) }
	tick(0)
	for range 3 {
		if out := syn(); out[1] == nil || out[0] != nil {
			t.Fatal("quiet: a SYN was not forwarded to the server")
		}
	}
	tick(time.Second)
	if st, _ := f.r.SYNProxyStats(); st.Active {
		t.Fatal("on at 3 SYNs/s, threshold 5")
	}
	for range 10 {
		syn()
	}
	tick(time.Second)
	st, _ := f.r.SYNProxyStats()
	if !st.Active || st.Activations != 1 {
		t.Fatalf("after 10 SYNs/s: %+v", st)
	}
	out := syn()
	if out[0] == nil || out[1] != nil {
		t.Fatal("on: the SYN was not answered with a cookie")
	}
	sa := decodeSeg(t, "SYN-ACK", out[0])
	client := netip.AddrPortFrom(c.client(), port)
	// Calm: off after proxyCalm below half the threshold.
	for range 10 {
		tick(time.Second)
	}
	if st, _ := f.r.SYNProxyStats(); !st.Active {
		t.Fatal("off before 10 calm seconds")
	}
	tick(time.Second)
	if st, _ := f.r.SYNProxyStats(); st.Active {
		t.Fatal("still on after 11 calm seconds")
	}
	// The cookie handed out while on still opens its flow.
	if out := f.passAll(f.left, proxySeg(macHostL, macRouterL, client, vip, 1001, sa.tcp.Seq+1, false, true, 502, nil, nil)); out[1] == nil {
		t.Error("the ACK of a cookie sent while on made no flow once off")
	}
	if out := syn(); out[1] == nil || out[0] != nil {
		t.Error("off: a SYN was not forwarded to the server")
	}
}

// A SYN from a source the router has no route back to gets no cookie (its SYN-ACK could
// not leave): dropped first, counted as no-route.
func TestSYNProxyUnroutableSource(t *testing.T) {
	c := lbCases[0]
	f := newLBFixture(t, nil)
	f.r.cookies = synproxy.New([16]byte{7}, nil)
	f.r.proxy.mode.Store(proxyAlways)
	spoofed := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.77"), 40000)
	out := f.passAll(f.left, proxySeg(macHostL, macRouterL, spoofed, netip.AddrPortFrom(c.vip(), c.vport()), 1000, 0, true, false,
		64240, []layers.TCPOption{optMSS(1460)}, nil))
	if out[0] != nil || out[1] != nil || f.left.bc.drops[DropNoRoute] != 1 {
		t.Errorf("sent %v, no-route drops %d", out, f.left.bc.drops[DropNoRoute])
	}
	if st, _ := f.r.SYNProxyStats(); st.CookiesSent != 0 {
		t.Errorf("%d cookies sent", st.CookiesSent)
	}
}

// TestSetDefence: SetDefence changes the defence of a running router (a reload): the
// cookies turned on answer the next SYN; turned off, SYNs open flows again and the ACK
// of a cookie sent before still opens its flow; a source limit set and removed applies
// and stops applying at once.
func TestSetDefence(t *testing.T) {
	c := lbCases[0]
	f := newLBFixture(t, nil)
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	f.r.now = func() time.Time { return at }
	vip := netip.AddrPortFrom(c.vip(), c.vport())
	port := uint16(30000)
	syn := func() ([2][]byte, netip.AddrPort) {
		port++
		client := netip.AddrPortFrom(c.client(), port)
		return f.passAll(f.left, proxySeg(macHostL, macRouterL, client, vip, 1000, 0, true, false,
			64240, []layers.TCPOption{optMSS(1460)}, nil)), client
	}
	if out, _ := syn(); out[1] == nil || out[0] != nil {
		t.Fatal("no defence: the SYN was not forwarded")
	}
	if err := f.r.SetDefence(SYNProxyConfig{Enabled: true, WScale: 7}, srclimit.Config{}, 0); err != nil {
		t.Fatal(err)
	}
	out, client := syn()
	if out[0] == nil || out[1] != nil {
		t.Fatal("cookies on: the SYN was not answered with a cookie")
	}
	sa := decodeSeg(t, "SYN-ACK", out[0])
	if err := f.r.SetDefence(SYNProxyConfig{}, srclimit.Config{}, 0); err != nil {
		t.Fatal(err)
	}
	if _, on := f.r.SYNProxyStats(); on {
		t.Error("cookies off: show-stats still has the SYN proxy")
	}
	if out := f.passAll(f.left, proxySeg(macHostL, macRouterL, client, vip, 1001, sa.tcp.Seq+1, false, true, 502, nil, nil)); out[1] == nil {
		t.Error("the ACK of a cookie sent before the proxy was turned off made no flow")
	}
	if out, _ := syn(); out[1] == nil || out[0] != nil {
		t.Fatal("cookies off: the SYN was not forwarded")
	}
	if err := f.r.SetDefence(SYNProxyConfig{}, srclimit.Config{Rate: 1, Burst: 1, Now: f.r.now}, 0); err != nil {
		t.Fatal(err)
	}
	syn() // the prefix's one
	if out, _ := syn(); out[0] != nil || out[1] != nil {
		t.Error("source limit on: a second SYN at once was not shed")
	}
	if err := f.r.SetDefence(SYNProxyConfig{}, srclimit.Config{}, 0); err != nil {
		t.Fatal(err)
	}
	if out, _ := syn(); out[1] == nil {
		t.Error("source limit off: the SYN was still shed")
	}
	if err := f.r.SetDefence(SYNProxyConfig{Enabled: true, WScale: 15}, srclimit.Config{}, 0); err == nil {
		t.Error("window scale 15 accepted")
	}
}
