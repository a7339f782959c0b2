package router

import (
	"net/netip"
	"testing"

	"ulb/router/port"
)

// FuzzHandle feeds arbitrary frames to the classifier of a router whose neighbours are
// known: whatever the frame, it is dropped with a reason, delivered or forwarded, and
// nothing panics. vnet is the frame's virtio-net header, as a port would have read it.
func FuzzHandle(f *testing.F) {
	f.Add(udp4(hostL4, hostR4, 64, 0, []byte("seed")), []byte{})
	f.Add(udp4(hostL4, hostR4, 1, 0, []byte("ttl")), []byte{})
	f.Add(udp4(hostL4, routerL4, 64, 0, []byte("local")), []byte{})
	f.Add(udp6(hostL6, hostR6, 64, []byte("seed")), []byte{})
	f.Add(udp6(hostL6, routerL6, 64, []byte("local")), []byte{})
	f.Add(udp6(hostL6, hostR6, 1, make([]byte, 1400)), []byte{})
	l4, _ := loopFixture(f, false)
	l6, _ := loopFixture(f, true)
	buf := make([]byte, port.BufSize)
	f.Add(udp4(hostL4, hostR4, 64, 0, make([]byte, 2000)), []byte{1, 1, 54, 0, 200, 5, 34, 0, 16, 0})
	f.Add(udp4(hostL4, routerL4, 64, 0, []byte("local")), []byte{1, 0, 0, 0, 0, 0, 34, 0, 6, 0})
	// Fragments: to the router (reassembly) and in transit, both families, first and
	// other fragments.
	for _, ip := range [][]byte{echoPacket(hostL4, routerL4, 1, 600), echoPacket(hostL6, routerL6, 1, 1400),
		udpPacket(netip.AddrPortFrom(hostL6, 1), netip.AddrPortFrom(hostR6, 2), make([]byte, 3000)),
		udpPacket(netip.AddrPortFrom(hostL4, 1), netip.AddrPortFrom(hostR4, 2), make([]byte, 3000))} {
		for _, fr := range fragmentIP(ip, 1232, 7) {
			f.Add(framed(macHostL, macRouterL, fr), []byte{})
		}
	}
	f.Fuzz(func(t *testing.T, frame, vnet []byte) {
		if len(frame) > port.MaxFrame {
			return
		}
		for _, l := range []*loop{l4, l6} {
			clear(buf[:headroom])
			copy(buf[headroom-port.VnetHdrLen:headroom], vnet)
			n := copy(buf[headroom:], frame)
			l.handle(buf[:headroom+n])
			for i := range l.out {
				l.out[i] = l.out[i][:0]
			}
			l.nused = 0
			l.bc = batchCounters{}
		}
	})
}
