package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ulb/nat"
	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
)

// Errors of TCPConnect and UDPExchange.
var (
	ErrRefused         = errors.New("connection refused (RST)")
	ErrPortUnreachable = errors.New("port unreachable")
	ErrProbeTimeout    = errors.New("no answer")
)

// Local ports the router's own probes use.
const (
	probePortLo = 40000
	probePortHi = 59999
)

// probeKey identifies the answers a probe waits for: from remote to the router's local
// port.
type probeKey struct {
	remote netip.AddrPort
	local  uint16
	proto  uint8
}

// probeAnswer is what the receive path hands to a waiting probe.
type probeAnswer struct {
	flags       uint8 // TCP: the answer's flags
	seq, ack    uint32
	unreachable bool // an ICMP error about the probe
	n           int  // UDP: payload bytes copied
}

type probeWait struct {
	done chan probeAnswer
	buf  []byte // UDP: where the answer's payload goes
}

// prober keeps the probes in flight (health checks: crafted TCP handshakes and UDP
// exchanges from the router's own addresses, no kernel socket involved).
type prober struct {
	next    atomic.Uint32
	mu      sync.Mutex
	waiting map[probeKey]*probeWait
}

func (p *prober) register(remote netip.AddrPort, proto uint8, buf []byte) (probeKey, *probeWait) {
	w := &probeWait{done: make(chan probeAnswer, 1), buf: buf}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiting == nil {
		p.waiting = map[probeKey]*probeWait{}
	}
	for {
		local := uint16(probePortLo + p.next.Add(1)%(probePortHi-probePortLo+1))
		k := probeKey{remote: remote, local: local, proto: proto}
		if _, busy := p.waiting[k]; !busy {
			p.waiting[k] = w
			return k, w
		}
	}
}

func (p *prober) unregister(k probeKey) {
	p.mu.Lock()
	delete(p.waiting, k)
	p.mu.Unlock()
}

// answer hands a received answer to its probe, copying payload for UDP; false when no
// probe waits for it.
func (p *prober) answer(k probeKey, a probeAnswer, payload []byte) bool {
	p.mu.Lock()
	w, ok := p.waiting[k]
	if ok && payload != nil {
		a.n = copy(w.buf, payload)
	}
	p.mu.Unlock()
	if ok {
		select {
		case w.done <- a:
		default:
		}
	}
	return ok
}

// TCPConnect checks that dst accepts TCP connections with a handshake the router crafts
// from its own address: SYN, then SYN-ACK answered by a RST. It returns the round-trip
// time, ErrRefused on a RST, ErrPortUnreachable on an ICMP error, or ErrProbeTimeout.
func (r *Router) TCPConnect(ctx context.Context, dst netip.AddrPort) (time.Duration, error) {
	rp, nh, src, err := r.probeRoute(dst.Addr())
	if err != nil {
		return 0, err
	}
	k, w := r.probe.register(dst, header.ProtocolTCP, nil)
	defer r.probe.unregister(k)
	seq := rand.Uint32()
	buf := make([]byte, headroom+ethLen+header.IPv6MinimumSize+header.TCPMinimumSize+4)
	mss := uint16(rp.mtu - 40)
	if dst.Addr().Is6() {
		mss = uint16(rp.mtu - 60)
	}
	frame := buildTCP(buf, src, dst.Addr(), k.local, dst.Port(), seq, 0, header.TCPFlagSYN, mss)
	start := time.Now()
	r.sendOutside(rp, nh, dst.Addr(), frame)
	select {
	case a := <-w.done:
		rtt := time.Since(start)
		switch {
		case a.unreachable:
			return 0, fmt.Errorf("tcp %s: %w", dst, ErrPortUnreachable)
		case a.flags&header.TCPFlagRST != 0:
			return 0, fmt.Errorf("tcp %s: %w", dst, ErrRefused)
		case a.flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN|header.TCPFlagACK && a.ack == seq+1:
			// Close the half-open connection at once.
			rst := buildTCP(make([]byte, len(buf)), src, dst.Addr(), k.local, dst.Port(), a.ack, 0, header.TCPFlagRST, 0)
			r.sendOutside(rp, nh, dst.Addr(), rst)
			return rtt, nil
		default:
			return 0, fmt.Errorf("tcp %s: unexpected answer (flags %#x)", dst, a.flags)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("tcp %s: %w", dst, ErrProbeTimeout)
	}
}

// UDPExchange sends req to dst from the router's own address and waits for a datagram
// back, copied into resp. It returns the answer's length and the round-trip time,
// ErrPortUnreachable on an ICMP port unreachable, or ErrProbeTimeout.
func (r *Router) UDPExchange(ctx context.Context, dst netip.AddrPort, req, resp []byte) (int, time.Duration, error) {
	rp, nh, src, err := r.probeRoute(dst.Addr())
	if err != nil {
		return 0, 0, err
	}
	if len(req) > rp.mtu-header.IPv6MinimumSize-header.UDPMinimumSize {
		return 0, 0, fmt.Errorf("udp %s: request of %d bytes is larger than the path allows", dst, len(req))
	}
	k, w := r.probe.register(dst, header.ProtocolUDP, resp)
	defer r.probe.unregister(k)
	buf := buildUDP(src, dst.Addr(), k.local, dst.Port(), req)
	start := time.Now()
	r.sendOutside(rp, nh, dst.Addr(), buf)
	select {
	case a := <-w.done:
		if a.unreachable {
			return 0, 0, fmt.Errorf("udp %s: %w", dst, ErrPortUnreachable)
		}
		return a.n, time.Since(start), nil
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("udp %s: %w", dst, ErrProbeTimeout)
	}
}

// probeRoute finds the port, next hop and source address for a probe to dst.
func (r *Router) probeRoute(dst netip.Addr) (*routerPort, fib.NextHop, netip.Addr, error) {
	rp, nh, ok := r.routeBack(dst)
	if !ok {
		return nil, nh, netip.Addr{}, fmt.Errorf("probe %s: no route", dst)
	}
	src := rp.src4
	if dst.Is6() {
		src = rp.src6
	}
	if !src.IsValid() {
		return nil, nh, netip.Addr{}, fmt.Errorf("probe %s: port %s has no address of that family", dst, rp.cfg.Name)
	}
	return rp, nh, src, nil
}

// writeIP writes at buf[headroom:] an Ethernet header's EtherType and an IP header of
// the family of src for a packet of n bytes.
func writeIP(buf []byte, src, dst netip.Addr, proto uint8, n int) {
	ipb := buf[headroom+ethLen:]
	if src.Is4() {
		header.EncodeIPv4(ipb, header.IPv4Fields{TotalLength: uint16(n), TTL: header.DefaultTTL, Protocol: proto, Src: src, Dst: dst})
		header.Ethernet(buf[headroom:]).SetEtherType(header.EtherTypeIPv4)
		return
	}
	header.EncodeIPv6(ipb, header.IPv6Fields{PayloadLength: uint16(n - header.IPv6MinimumSize), NextHeader: proto,
		HopLimit: header.DefaultTTL, Src: src, Dst: dst})
	header.Ethernet(buf[headroom:]).SetEtherType(header.EtherTypeIPv6)
}

// buildUDP returns a new buffer with a UDP datagram from src:sport to dst:dport carrying
// payload at headroom, its virtio-net header clear, for sendOutside.
func buildUDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	hl := header.IPv4MinimumSize
	if dst.Is6() {
		hl = header.IPv6MinimumSize
	}
	n := hl + header.UDPMinimumSize + len(payload)
	buf := make([]byte, headroom+ethLen+n)
	port.Hdr(buf, headroom).Clear()
	writeIP(buf, src, dst, header.ProtocolUDP, n)
	u := buf[headroom+ethLen+hl:]
	header.EncodeUDP(u, sport, dport, uint16(len(u)))
	copy(u[header.UDPMinimumSize:], payload)
	header.SetTransportChecksum(header.ProtocolUDP, src, dst, u)
	return buf
}

// buildTCP writes a TCP segment without payload (with an MSS option when mss is not 0)
// into buf at headroom and returns buf cut at the frame's end.
func buildTCP(buf []byte, src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags uint8, mss uint16) []byte {
	port.Hdr(buf, headroom).Clear()
	hl := header.IPv4MinimumSize
	if src.Is6() {
		hl = header.IPv6MinimumSize
	}
	tl := header.TCPMinimumSize
	if mss != 0 {
		tl += 4
	}
	n := hl + tl
	writeIP(buf, src, dst, header.ProtocolTCP, n)
	t := buf[headroom+ethLen+hl : headroom+ethLen+n]
	header.EncodeTCP(t, header.TCPFields{SrcPort: sport, DstPort: dport, Seq: seq, Ack: ack, DataOffset: uint8(tl),
		Flags: flags, Window: 65535})
	if mss != 0 {
		t[20], t[21], t[22], t[23] = 2, 4, byte(mss>>8), byte(mss)
	}
	header.SetTransportChecksum(header.ProtocolTCP, src, dst, t)
	return buf[:headroom+ethLen+n]
}

// localTCP takes a TCP segment addressed to the router: the answer to one of its
// probes, or else a segment for a closed port, answered with a RST (RFC 9293 §3.10.7.1).
func (l *loop) localTCP(buf []byte, ip []byte, src, dst netip.Addr, t header.TCP, payload int) {
	k := probeKey{remote: netip.AddrPortFrom(src, t.SourcePort()), local: t.DestinationPort(), proto: header.ProtocolTCP}
	if l.r.probe.answer(k, probeAnswer{flags: t.Flags(), seq: t.Seq(), ack: t.Ack()}, nil) {
		return
	}
	if t.Flags()&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN {
		p := pkt{buf: buf, ip: ip, v6: src.Is6(), src: src, dst: dst}
		if l.toHostPort(&p, l4{proto: header.ProtocolTCP, sport: t.SourcePort(), dport: t.DestinationPort(), flags: t.Flags()}) {
			return
		}
	}
	l.bc.drop(DropLocalUnhandled)
	l.tcpReset(src, dst, t, payload)
}

// tcpReset answers the TCP segment t from src to dst with a RST from dst, within the
// ICMP rate limit.
func (l *loop) tcpReset(src, dst netip.Addr, t header.TCP, payload int) {
	if t.Flags()&header.TCPFlagRST != 0 || src.IsMulticast() || !l.r.icmp.allow(l.r.now()) {
		return
	}
	b := l.newScratch()
	if b == nil {
		return
	}
	var seq, ack uint32
	flags := header.TCPFlagRST
	if t.Flags()&header.TCPFlagACK != 0 {
		seq = t.Ack()
	} else {
		ack = t.Seq() + uint32(payload)
		if t.Flags()&header.TCPFlagSYN != 0 {
			ack++
		}
		if t.Flags()&header.TCPFlagFIN != 0 {
			ack++
		}
		flags |= header.TCPFlagACK
	}
	l.route(buildTCP(b, dst, src, t.DestinationPort(), t.SourcePort(), seq, ack, flags, 0), src)
}

// localUDP takes a UDP datagram addressed to the router: the answer to one of its probes,
// or else one for a closed port (ICMP port unreachable).
func (l *loop) localUDP(buf []byte, ip []byte, src, dst netip.Addr, u header.UDP) bool {
	if s := l.r.sync; s != nil && u.DestinationPort() == s.Port() {
		s.Receive(src, u.Payload())
		return true
	}
	k := probeKey{remote: netip.AddrPortFrom(src, u.SourcePort()), local: u.DestinationPort(), proto: header.ProtocolUDP}
	if l.r.probe.answer(k, probeAnswer{}, u.Payload()) {
		return true
	}
	p := pkt{buf: buf, ip: ip, v6: src.Is6(), src: src, dst: dst}
	return l.toHostPort(&p, l4{proto: header.ProtocolUDP, sport: u.SourcePort(), dport: u.DestinationPort()})
}

// probeError hands an ICMP destination-unreachable about one of the router's probes to
// it; it reports whether it was about one.
func (l *loop) probeError(ip []byte) bool {
	inner, ok := nat.ErrorInner(ip)
	if !ok {
		return false
	}
	e, ok := nat.Parse(inner)
	if !ok || (e.Proto != header.ProtocolTCP && e.Proto != header.ProtocolUDP) {
		return false
	}
	k := probeKey{remote: netip.AddrPortFrom(e.Dst, e.DstPort), local: e.SrcPort, proto: e.Proto}
	return l.r.probe.answer(k, probeAnswer{unreachable: true}, nil)
}
