package router

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ulb/router/header"
	"ulb/router/port"
)

// pinger matches the echo replies addressed to the router with the requests it sent
// (VRRP's track_ping, ping health checks).
type pinger struct {
	ident   atomic.Uint32
	mu      sync.Mutex
	waiting map[uint16]chan struct{}
}

// ErrPingTimeout is returned by Ping when no reply came in time.
var ErrPingTimeout = errors.New("no echo reply")

// Ping sends one ICMP (ICMPv6) echo request to dst from the router's address on the
// port the route to dst leaves by, and waits for the reply until ctx ends. It returns
// the round-trip time.
func (r *Router) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	dst = dst.Unmap()
	rp, nh, ok := r.routeBack(dst)
	if !ok {
		return 0, fmt.Errorf("ping %s: no route", dst)
	}
	src := rp.src4
	if dst.Is6() {
		src = rp.src6
	}
	if !src.IsValid() {
		return 0, fmt.Errorf("ping %s: port %s has no address of that family", dst, rp.cfg.Name)
	}
	id := uint16(r.ping.ident.Add(1))
	done := make(chan struct{}, 1)
	r.ping.mu.Lock()
	if r.ping.waiting == nil {
		r.ping.waiting = map[uint16]chan struct{}{}
	}
	r.ping.waiting[id] = done
	r.ping.mu.Unlock()
	defer func() {
		r.ping.mu.Lock()
		delete(r.ping.waiting, id)
		r.ping.mu.Unlock()
	}()

	const payload = 16
	buf := make([]byte, headroom+ethLen+header.IPv6MinimumSize+header.ICMPv6MinimumSize+payload)
	port.Hdr(buf, headroom).Clear()
	ipb := buf[headroom+ethLen:]
	var n int
	if dst.Is4() {
		n = header.IPv4MinimumSize + header.ICMPv4MinimumSize + payload
		header.EncodeIPv4(ipb, header.IPv4Fields{TotalLength: uint16(n), TTL: header.DefaultTTL,
			Protocol: header.ProtocolICMPv4, Src: src, Dst: dst})
		icmp := header.ICMPv4(ipb[header.IPv4MinimumSize:n])
		icmp.SetType(header.ICMPv4Echo)
		binary.BigEndian.PutUint16(icmp[4:], id)
		binary.BigEndian.PutUint16(icmp[6:], 1)
		icmp.SetChecksum(icmp.CalculateChecksum())
		header.Ethernet(buf[headroom:]).SetEtherType(header.EtherTypeIPv4)
	} else {
		n = header.IPv6MinimumSize + header.ICMPv6MinimumSize + payload
		header.EncodeIPv6(ipb, header.IPv6Fields{PayloadLength: uint16(n - header.IPv6MinimumSize),
			NextHeader: header.ProtocolICMPv6, HopLimit: header.DefaultTTL, Src: src, Dst: dst})
		icmp := header.ICMPv6(ipb[header.IPv6MinimumSize:n])
		icmp.SetType(header.ICMPv6EchoRequest)
		binary.BigEndian.PutUint16(icmp[4:], id)
		binary.BigEndian.PutUint16(icmp[6:], 1)
		header.SetTransportChecksum(header.ProtocolICMPv6, src, dst, icmp)
		header.Ethernet(buf[headroom:]).SetEtherType(header.EtherTypeIPv6)
	}
	start := time.Now()
	r.sendOutside(rp, nh, dst, buf[:headroom+ethLen+n])
	select {
	case <-done:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("ping %s: %w", dst, ErrPingTimeout)
	}
}

// echoReply hands an echo reply addressed to the router to the Ping waiting for it; it
// reports whether one was.
func (r *Router) echoReply(ident uint16) bool {
	r.ping.mu.Lock()
	done, ok := r.ping.waiting[ident]
	r.ping.mu.Unlock()
	if ok {
		select {
		case done <- struct{}{}:
		default:
		}
	}
	return ok
}
