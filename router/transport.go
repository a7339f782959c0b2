package router

// Local delivery of TCP and UDP to the router's own addresses (probe answers, sync
// messages, the host port, resets and port unreachables for the rest), and the wire of
// the probe client.

import (
	"fmt"
	"net/netip"

	"ulb/balancer/health/probe"
	"ulb/nat"
	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
)

// Prober is the health checks' client on the router's own addresses (pings, TCP
// handshakes and UDP exchanges the router crafts); it also serves VRRP's track_ping.
func (r *Router) Prober() *probe.Client { return r.probes }

// probeWire is the router's side of the probe client.
type probeWire struct{ r *Router }

var _ probe.Wire = probeWire{}

func (w probeWire) Source(dst netip.Addr) (netip.Addr, int, error) {
	rp, _, src, err := w.r.probeRoute(dst)
	if err != nil {
		return src, 0, err
	}
	return src, rp.state().mtu, nil
}

func (w probeWire) Send(ip []byte) {
	var dst netip.Addr
	if header.IPv4(ip).IsValid() {
		dst = header.IPv4(ip).DestinationAddr()
	} else if header.IPv6(ip).IsValid() {
		dst = header.IPv6(ip).DestinationAddr()
	}
	rp, nh, ok := w.r.routeBack(dst)
	if !ok {
		return
	}
	buf := make([]byte, headroom+ethLen+len(ip))
	port.Hdr(buf, headroom).Clear()
	copy(buf[headroom+ethLen:], ip)
	setEtherType(buf, dst)
	w.r.sendOutside(rp, nh, dst, buf)
}

// probeRoute finds the port, next hop and source address for a probe to dst.
func (r *Router) probeRoute(dst netip.Addr) (*routerPort, fib.NextHop, netip.Addr, error) {
	rp, nh, ok := r.routeBack(dst)
	if !ok {
		return nil, nh, netip.Addr{}, fmt.Errorf("probe %s: no route", dst)
	}
	src := rp.state().src4
	if dst.Is6() {
		src = rp.state().src6
	}
	if !src.IsValid() {
		return nil, nh, netip.Addr{}, fmt.Errorf("probe %s: port %s has no address of that family", dst, rp.cfg.Name)
	}
	return rp, nh, src, nil
}

// setEtherType sets the EtherType of the frame at buf[headroom:] for an IP packet of
// dst's family.
func setEtherType(buf []byte, dst netip.Addr) {
	et := header.EtherTypeIPv6
	if dst.Is4() {
		et = header.EtherTypeIPv4
	}
	header.Ethernet(buf[headroom:]).SetEtherType(et)
}

// buildUDP returns a new buffer with a UDP datagram from src:sport to dst:dport carrying
// payload at headroom, its virtio-net header clear, for sendOutside.
func buildUDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	buf := make([]byte, headroom+ethLen+header.IPv6MinimumSize+header.UDPMinimumSize+len(payload))
	port.Hdr(buf, headroom).Clear()
	n := header.BuildUDPDatagram(buf[headroom+ethLen:], src, dst, sport, dport, payload)
	setEtherType(buf, dst)
	return buf[:headroom+ethLen+n]
}

// buildTCP writes a TCP segment without payload into buf at headroom and returns buf
// cut at the frame's end.
func buildTCP(buf []byte, src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags uint8) []byte {
	port.Hdr(buf, headroom).Clear()
	n := header.BuildTCPSegment(buf[headroom+ethLen:], src, dst, header.TCPFields{SrcPort: sport, DstPort: dport,
		Seq: seq, Ack: ack, Flags: flags, Window: 65535}, 0)
	setEtherType(buf, dst)
	return buf[:headroom+ethLen+n]
}

// localTCP takes a TCP segment addressed to the router: the answer to one of its
// probes, or else a segment for a closed port, answered with a RST (RFC 9293 §3.10.7.1).
func (l *loop) localTCP(buf []byte, ip []byte, src, dst netip.Addr, t header.TCP, payload int) {
	if l.r.probes.TCPAnswer(netip.AddrPortFrom(src, t.SourcePort()), t.DestinationPort(), t.Flags(), t.Seq(), t.Ack()) {
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
	// Nor to a segment that came as a link-layer broadcast or multicast (RFC 1122
	// §4.2.3.10 asks as much of broadcast and multicast SYNs).
	if t.Flags()&header.TCPFlagRST != 0 || src.IsMulticast() || l.l2mcast || !l.r.icmp.allow(l.r.now()) {
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
	l.route(buildTCP(b, dst, src, t.DestinationPort(), t.SourcePort(), seq, ack, flags), src)
}

// localUDP takes a UDP datagram addressed to the router: the answer to one of its probes,
// or else one for a closed port (ICMP port unreachable).
func (l *loop) localUDP(buf []byte, ip []byte, src, dst netip.Addr, u header.UDP) bool {
	if s := l.r.Sync(); s != nil && u.DestinationPort() == s.Port() {
		s.Receive(src, u.Payload())
		return true
	}
	if l.r.probes.UDPAnswer(netip.AddrPortFrom(src, u.SourcePort()), u.DestinationPort(), u.Payload()) {
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
	return l.r.probes.Unreachable(e.Proto, netip.AddrPortFrom(e.Dst, e.DstPort), e.SrcPort)
}
