package router

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/ip4defrag"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
	"ulb/router/port"
)

// A GSO frame (a TCP segment of many MSS, as a local sender's kernel hands it to the
// router) whose segments do not fit the egress MTU is treated by RFC 1812 on every path:
// fragmentation needed when DF is set; with DF clear, cut into its segments and each
// fragmented (as Linux's ip_finish_output_gso does).

const gsoMSS = 1448 // segments of 1488 bytes, over the right link's 1400

// gsoBuf returns a buffer holding, at port.Headroom, the frame of a TCPv4 GSO segment
// from src to dst carrying payload, with its virtio-net header (NEEDS_CSUM, TCPv4,
// gso_size gsoMSS) in front.
func gsoBuf(srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, df bool, payload []byte) []byte {
	var flags layers.IPv4Flag
	if df {
		flags = layers.IPv4DontFragment
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 500, Flags: flags, Protocol: layers.IPProtocolTCP,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 7000, Ack: 1,
		ACK: true, PSH: true, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	frame := serialize(eth(srcMAC, dstMAC, layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload))
	// CHECKSUM_PARTIAL: the field holds the pseudo-header's sum (without the length, as
	// Linux leaves it for TSO).
	ps := pseudoHeader(src.Addr(), dst.Addr(), header.ProtocolTCP, 0)
	binary.BigEndian.PutUint16(frame[14+20+16:], ^csumRecomputed(ps, []byte{0, 0}, 0))
	buf := make([]byte, port.Headroom+len(frame))
	copy(buf[port.Headroom:], frame)
	h := port.Hdr(buf, port.Headroom)
	h.SetFlags(port.VnetHdrFNeedsCsum)
	h.SetGSOType(port.VnetGSOTCPv4)
	h.SetHdrLen(14 + 20 + 20)
	h.SetGSOSize(gsoMSS)
	h.SetCsumStart(14 + 20)
	h.SetCsumOffset(16)
	return buf
}

func gsoPayload() []byte {
	b := make([]byte, 2*gsoMSS+1104) // two segments fragmented, a last one that fits
	for i := range b {
		b[i] = byte(i*13 + i/256)
	}
	return b
}

// reassemble reads the frames of the segments of payload at h, checks each frame (at
// most the link's MTU, DF clear, TTL decremented, addresses, IPv4 checksum against a full
// recomputation), reassembles the fragments with gopacket's defragmenter, checks each
// segment's TCP checksum against a full recomputation and puts the segments' payloads
// together. It returns the payload and the number of fragments seen.
func reassemble(t *testing.T, h *peer, src, dst netip.AddrPort, mtu int, want int) ([]byte, int) {
	t.Helper()
	defrag := ip4defrag.NewIPv4Defragmenter()
	got := make([]byte, want)
	filled, frags := 0, 0
	for filled < want {
		p := h.expect(t, "segment or fragment", func(p gopacket.Packet) bool {
			ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			return ok && ip.Protocol == layers.IPProtocolTCP
		})
		frame := p.Data()
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if int(ip.Length) > mtu || len(frame) > 14+mtu {
			t.Fatalf("an IPv4 packet of %d bytes on a link of MTU %d", ip.Length, mtu)
		}
		if got, want := binary.BigEndian.Uint16(frame[14+10:]), csumRecomputed(nil, frame[14:14+20], 10); got != want {
			t.Errorf("IPv4 header checksum %#04x, recomputed %#04x", got, want)
		}
		if ip.Flags&layers.IPv4DontFragment != 0 || ip.TTL != 63 {
			t.Errorf("flags %v TTL %d, want DF clear and TTL 63", ip.Flags, ip.TTL)
		}
		if s, d := netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4())); s != src.Addr() || d != dst.Addr() {
			t.Errorf("%s -> %s, want %s -> %s", s, d, src.Addr(), dst.Addr())
		}
		if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			frags++
		}
		whole, err := defrag.DefragIPv4(ip)
		if err != nil {
			t.Fatal(err)
		}
		if whole == nil {
			continue // more fragments to come
		}
		seg := whole.Payload
		ps := pseudoHeader(src.Addr(), dst.Addr(), header.ProtocolTCP, len(seg))
		if got, want := binary.BigEndian.Uint16(seg[16:]), csumRecomputed(ps, seg, 16); got != want {
			t.Errorf("TCP checksum of a segment %#04x, recomputed %#04x", got, want)
		}
		tcp, ok := gopacket.NewPacket(seg, layers.LayerTypeTCP, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			t.Fatal("a reassembled segment is not TCP")
		}
		if s, d := uint16(tcp.SrcPort), uint16(tcp.DstPort); s != src.Port() || d != dst.Port() {
			t.Errorf("ports %d -> %d, want %d -> %d", s, d, src.Port(), dst.Port())
		}
		off := int(tcp.Seq - 7000)
		if off < 0 || off+len(tcp.Payload) > want || len(tcp.Payload) > gsoMSS {
			t.Fatalf("a segment of %d bytes at %d", len(tcp.Payload), off)
		}
		filled += copy(got[off:], tcp.Payload)
	}
	return got, frags
}

// TestGSOFragmentForwarded: on the forwarding path.
func TestGSOFragmentForwarded(t *testing.T) {
	tb := newTestBench(t)
	tb.left.sendRaw(udp4(hostL4, hostR4, 64, 0, nil)) // resolves hostR4 first
	tb.right.expect(t, "UDP", isUDPTo(hostR4))
	src, dst := netip.AddrPortFrom(hostL4, 40000), netip.AddrPortFrom(hostR4, 80)
	payload := gsoPayload()
	tb.left.p.Write([][]byte{gsoBuf(macHostL, macRouterL, src, dst, false, payload)}, port.Headroom)
	got, frags := reassemble(t, tb.right, src, dst, 1400, len(payload))
	if !bytes.Equal(got, payload) {
		t.Error("the reassembled payload differs")
	}
	if frags != 4 {
		t.Errorf("%d fragments, want 4 (two segments in two)", frags)
	}

	tb.left.p.Write([][]byte{gsoBuf(macHostL, macRouterL, src, dst, true, payload)}, port.Headroom)
	pkt := tb.left.expect(t, "fragmentation needed", isICMPv4(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded))
	if mtu := header.ICMPv4(header.IPv4(pkt.Data()[14:]).Payload()).MTU(); mtu != 1400 {
		t.Errorf("next-hop MTU %d, want 1400", mtu)
	}
}

// TestGSOFragmentBalanced: on a half-NAT flow, after the rewrite.
func TestGSOFragmentBalanced(t *testing.T) {
	c := lbCases[0]
	if c.topo != 0 || c.v6 {
		t.Fatal("lbCases[0] is not half-NAT over IPv4")
	}
	tb := newLBBench(t)
	client, vip := netip.AddrPortFrom(c.client(), clientPort), netip.AddrPortFrom(c.vip(), c.vport())
	server := netip.AddrPortFrom(c.server(), serverPort)
	tb.left.sendRaw(tcpFrame(macHostL, macRouterL, client, vip, 64, flagSYN, 6999, nil))
	tb.right.expect(t, "SYN at the server", isTCP)
	payload := gsoPayload()
	tb.left.p.Write([][]byte{gsoBuf(macHostL, macRouterL, client, vip, false, payload)}, port.Headroom)
	got, frags := reassemble(t, tb.right, client, server, 1400, len(payload))
	if !bytes.Equal(got, payload) {
		t.Error("the reassembled payload differs")
	}
	if frags != 4 {
		t.Errorf("%d fragments, want 4 (two segments in two)", frags)
	}

	tb.left.p.Write([][]byte{gsoBuf(macHostL, macRouterL, client, vip, true, payload)}, port.Headroom)
	e := decodeError(t, "fragmentation needed", tb.left.expect(t, "fragmentation needed", isICMPError).Data())
	if e.typ != layers.ICMPv4TypeDestinationUnreachable || e.code != layers.ICMPv4CodeFragmentationNeeded || e.mtu != 1400 {
		t.Errorf("ICMP %d/%d MTU %d, want fragmentation needed, MTU 1400", e.typ, e.code, e.mtu)
	}
	if e.src != routerL4 || e.dst != c.client() || e.qsrc != client || e.qdst != vip {
		t.Errorf("error %s -> %s quoting %s -> %s, want %s -> %s quoting the client's packet %s -> %s",
			e.src, e.dst, e.qsrc, e.qdst, routerL4, c.client(), client, vip)
	}
}

// discardPort is a port that takes every frame written to it and keeps nothing, so
// that a loop's allocations can be counted without the in-memory link's copies.
type discardPort struct {
	mac           net.HardwareAddr
	mtu           int
	frames, bytes int
	oversize      int
}

var _ port.Port = (*discardPort)(nil)

func (d *discardPort) Name() string                   { return "discard" }
func (d *discardPort) HardwareAddr() net.HardwareAddr { return d.mac }
func (d *discardPort) MTU() int                       { return d.mtu }
func (d *discardPort) Layer3() bool                   { return false }
func (d *discardPort) BatchSize() int                 { return 64 }
func (d *discardPort) Read([][]byte, []int, int) (int, error) {
	return 0, port.ErrClosed
}
func (d *discardPort) Close() error { return nil }
func (d *discardPort) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		d.frames++
		d.bytes += len(b) - offset
		if len(b)-offset > 14+d.mtu {
			d.oversize++
		}
	}
	return len(bufs), nil
}

// TestGSOFragmentAllocatesNothing cuts and fragments GSO frames again and again, on the
// forwarding path and on a balanced flow: after the first, nothing is allocated.
func TestGSOFragmentAllocatesNothing(t *testing.T) {
	payload := gsoPayload()
	check := func(t *testing.T, l *loop, d *discardPort, frame []byte) {
		t.Helper()
		buf := make([]byte, port.BufSize)
		allocs := testing.AllocsPerRun(100, func() {
			copy(buf, frame)
			l.handle(buf[:len(frame)])
		})
		if allocs != 0 {
			t.Errorf("%v allocations per GSO frame", allocs)
		}
		// 101 runs, each two segments in two fragments and one segment whole.
		if d.frames != 101*5 || d.oversize != 0 {
			t.Errorf("%d frames (%d oversize) written, want %d", d.frames, d.oversize, 101*5)
		}
	}
	t.Run("forwarded", func(t *testing.T) {
		d := &discardPort{mac: macRouterR, mtu: 1400}
		r := newLBRouter(t, newDiscardLeft(), d)
		frame := gsoBuf(macHostL, macRouterL, netip.AddrPortFrom(hostL4, 40000), netip.AddrPortFrom(hostR4, 80), false, payload)
		d.frames = 0 // the announcements of the rules' addresses
		check(t, r.newLoop(r.ports()[0]), d, frame)
	})
	t.Run("balanced", func(t *testing.T) {
		d := &discardPort{mac: macRouterR, mtu: 1400}
		f := newLBFixture(t, d)
		c := lbCases[0]
		f.open(t, c)
		frame := gsoBuf(macHostL, macRouterL, netip.AddrPortFrom(c.client(), clientPort), netip.AddrPortFrom(c.vip(), c.vport()), false, payload)
		d.frames = 0 // the announcements of the rules' addresses
		check(t, f.left, d, frame)
	})
}

func newDiscardLeft() port.Port { return &discardPort{mac: macRouterL, mtu: 1500} }
