package router

// Fragments: their way through balanced flows, reassembly of those addressed to the
// router, and fragmentation of IPv6 packets the router originates.
//
// A router forwards fragments in transit as they are; only their destination reassembles
// them (RFC 791 section 3.2, RFC 8200 sections 4 and 4.5). Through a balanced flow the
// first fragment, which carries the ports, is balanced as any packet: its flow's rewrite
// is applied to it (the transport checksum it holds covers the whole datagram, and its
// incremental update stays right) and recorded in fragFlows under (source, destination,
// protocol, identification). The other fragments carry no ports: they follow the record,
// their IP addresses rewritten alone (nat.ApplyAddrs). A non-first fragment that arrives
// before its first one finds no record and is routed as if no flow existed: to a VIP
// (the router's own address) it waits in the reassembly, and when the first fragment
// opens the flow, releaseEarly takes it out and sends it after it; to a client (a reply
// overtaking its first fragment, rare on the servers' side) it goes on unchanged and the
// client cannot reassemble the datagram. The choice over reassembling every datagram on
// the balancer: no buffering on the forwarding path in the common case, no
// re-fragmenting of IPv6 (which a router may not do), and the fragments keep their sizes.
// Full-NAT keeps the client's identification: two clients behind one proxy source that
// pick the same identification at once for the same server can make that server's
// reassembly mix their fragments, as with any NAT that does not reassemble.

import (
	"net/netip"
	"sync"
	"time"

	"ulb/nat"
	"ulb/router/header"
	"ulb/router/port"
	"ulb/router/reassembly"
)

// fragFlowEntries bounds the fragments' flow table; fragFlowTimeout is how long a record
// of a first fragment is followed (RFC 8200 section 4.5's reassembly time: a fragment
// later than that would not be reassembled anyway).
const (
	fragFlowEntries = 4096
	fragFlowTimeout = reassembly.DefaultTimeout
)

// fragKey identifies a fragmented datagram (RFC 791: source, destination, protocol,
// identification; RFC 8200: source, destination, identification). It is pointer-free.
type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

func makeFragKey(p *pkt) fragKey {
	k := fragKey{id: p.fragID, proto: p.fragProto, v6: p.v6}
	k.src, k.dst = p.src.As16(), p.dst.As16()
	return k
}

// fragFlow is what the first fragment of a datagram of a balanced flow did: the
// addresses written, the address the packet travelled to, and the flow's counters.
type fragFlow struct {
	src, dst     netip.Addr // the rewrite's addresses (invalid: unchanged)
	to           netip.Addr
	rule, server uint32
	reply        bool
	// tunnel: the fragments go encapsulated (the tunnel topology), from tunnelSrc.
	tunnel    bool
	tunnelSrc netip.Addr
	expires   int64 // unix nanoseconds
	seq       uint64
}

// fragFlows is a small bounded table of fragFlow: a ring of its keys in the order they
// were entered overwrites the oldest record when the table is full.
type fragFlows struct {
	mu   sync.Mutex
	m    map[fragKey]fragFlow
	ring [fragFlowEntries]struct {
		key fragKey
		seq uint64
	}
	seq uint64
}

func newFragFlows() *fragFlows {
	return &fragFlows{m: make(map[fragKey]fragFlow, fragFlowEntries)}
}

func (t *fragFlows) put(k fragKey, f fragFlow, now time.Time) {
	t.mu.Lock()
	t.seq++
	slot := &t.ring[t.seq%fragFlowEntries]
	if old, ok := t.m[slot.key]; ok && old.seq == slot.seq {
		delete(t.m, slot.key)
	}
	slot.key, slot.seq = k, t.seq
	f.seq, f.expires = t.seq, now.Add(fragFlowTimeout).UnixNano()
	t.m[k] = f
	t.mu.Unlock()
}

func (t *fragFlows) get(k fragKey, now time.Time) (fragFlow, bool) {
	t.mu.Lock()
	f, ok := t.m[k]
	t.mu.Unlock()
	if !ok || now.UnixNano() >= f.expires {
		return fragFlow{}, false
	}
	return f, true
}

// readL4Fragment reads the ports of the transport header at the start of a first
// fragment: the UDP length covers the whole datagram, not the fragment, so only the
// ports are checked to be there.
func readL4Fragment(proto uint8, b []byte) (l4, bool) {
	if proto == header.ProtocolUDP {
		if len(b) < header.UDPMinimumSize {
			return l4{proto: proto}, false
		}
		u := header.UDP(b)
		return l4{proto: proto, sport: u.SourcePort(), dport: u.DestinationPort()}, true
	}
	return readL4(proto, b)
}

// balanceFragment runs a TCP or UDP fragment through the balancer: a first fragment as
// any packet (recording what its flow did), another one by that record. It reports false
// when the fragment is none of the balancer's business.
func (l *loop) balanceFragment(p *pkt, l4b []byte) bool {
	if p.fragProto != header.ProtocolTCP && p.fragProto != header.ProtocolUDP {
		return false
	}
	if p.fragFirst {
		t, ok := readL4Fragment(p.fragProto, l4b)
		if !ok {
			return false
		}
		// The headers as they came, to rebuild the fragments that overtook this one.
		var saved [ethLen + maxEarlyHeader]byte
		hl := firstHeaderLen(p)
		keep := hl > 0 && hl <= maxEarlyHeader
		if keep {
			copy(saved[:], p.buf[headroom:headroom+ethLen+hl])
		}
		if !l.balance(p, t) {
			return false
		}
		if keep {
			l.releaseEarly(p, saved[:ethLen+hl])
		}
		return true
	}
	f, ok := l.r.frags.get(makeFragKey(p), l.r.now())
	if !ok {
		return false
	}
	rw := rewrite{nat: nat.Rewrite{Src: f.src, Dst: f.dst}, addrsOnly: true,
		snap: l.r.lb.Snapshot(), rule: f.rule, server: f.server, reply: f.reply, tunnel: f.tunnel, tunnelSrc: f.tunnelSrc}
	if nh, ok := l.flowHop(f.to); ok {
		l.forward(p, nh, f.to, &rw)
	}
	return true
}

// maxEarlyHeader bounds the headers of a first fragment kept to rebuild the fragments
// that overtook it (an IPv4 header with options, an IPv6 one with a few extension
// headers and the fragment header).
const maxEarlyHeader = 128

// firstHeaderLen is the length of the first fragment p's headers in front of its
// fragmentable part: the IPv4 header, or the IPv6 headers through the fragment header.
func firstHeaderLen(p *pkt) int {
	if !p.v6 {
		return header.IPv4(p.ip).HeaderLength()
	}
	at, _, ok := header.IPv6(p.ip).FragmentHeader()
	if !ok {
		return 0
	}
	return at + header.IPv6FragmentSize
}

// releaseEarly forwards the fragments of p's datagram that arrived before p, its first
// fragment, once p opened the flow: as they came to the router's own address (the VIP),
// they wait in the reassembly (reassemble4, reassemble6), are taken out of it, rebuilt
// from saved (p's Ethernet and IP headers as they came: non-first fragments carry the
// same, RFC 791 section 3.2 but for the options not copied, RFC 8200 section 4.5) and
// follow the flow's record as the others do.
func (l *loop) releaseEarly(p *pkt, saved []byte) {
	f, ok := l.r.frags.get(makeFragKey(p), l.r.now())
	if !ok {
		return // the first fragment was refused: the others time out in the reassembly
	}
	var k reassembly.Key
	if p.v6 {
		k = reassembly.KeyIPv6(p.src, p.dst, p.fragID)
	} else {
		k = reassembly.KeyIPv4(p.src, p.dst, uint16(p.fragID), p.fragProto)
	}
	l.early = l.early[:0]
	l.r.reasm.Take(k, func(off int, more bool, data []byte) {
		if b := l.rebuildFragment(p, saved, off, more, data); b != nil {
			l.early = append(l.early, b)
		}
	})
	if len(l.early) == 0 {
		return
	}
	nh, ok := l.flowHop(f.to)
	for _, b := range l.early {
		if !ok {
			l.bc.drop(DropNoRoute)
			continue
		}
		q := pkt{buf: b, ip: b[headroom+ethLen:], v6: p.v6, src: p.src, dst: p.dst,
			frag: true, fragProto: p.fragProto, fragID: p.fragID}
		rw := rewrite{nat: nat.Rewrite{Src: f.src, Dst: f.dst}, addrsOnly: true,
			snap: l.r.lb.Snapshot(), rule: f.rule, server: f.server, reply: f.reply, tunnel: f.tunnel, tunnelSrc: f.tunnelSrc}
		l.forward(&q, nh, f.to, &rw)
	}
	clear(l.early)
	l.early = l.early[:0]
}

// rebuildFragment writes, in a scratch buffer, the fragment at offset off of the
// datagram whose first fragment's headers are saved; nil (counted) when there is no
// buffer or room.
func (l *loop) rebuildFragment(p *pkt, saved []byte, off int, more bool, data []byte) []byte {
	b := l.newScratch()
	if b == nil || headroom+len(saved)+len(data) > len(b) {
		l.bc.drop(DropFragment)
		return nil
	}
	fr := b[headroom:]
	if p.v6 {
		n := copy(fr, saved)
		n += copy(fr[n:], data)
		ip := header.IPv6(fr[ethLen:n])
		at := len(saved) - ethLen - header.IPv6FragmentSize
		header.EncodeIPv6Fragment(ip[at:], ip[at], off, more, p.fragID)
		ip.SetPayloadLength(uint16(len(ip) - header.IPv6MinimumSize))
		return b[:headroom+n]
	}
	// RFC 791 section 3.2: a fragment other than the first carries the options whose
	// copied flag is set.
	n := copy(fr, saved[:ethLen+header.IPv4MinimumSize])
	n += copiedOptions(fr[n:], saved[ethLen+header.IPv4MinimumSize:])
	hl := n - ethLen
	n += copy(fr[n:], data)
	ip := header.IPv4(fr[ethLen:n])
	ip[0] = 0x40 | byte(hl/4)
	ip.SetTotalLength(uint16(len(ip)))
	setFragment(ip, more, off)
	ip.SetChecksum(0)
	ip.SetChecksum(ip.CalculateChecksum())
	return b[:headroom+n]
}

// recordFragment notes what the first fragment p of a balanced datagram does, for its
// other fragments.
func (l *loop) recordFragment(p *pkt, rw *rewrite, to netip.Addr) {
	l.r.frags.put(makeFragKey(p), fragFlow{src: rw.nat.Src, dst: rw.nat.Dst, to: to,
		rule: rw.rule, server: rw.server, reply: rw.reply, tunnel: rw.tunnel, tunnelSrc: rw.tunnelSrc}, l.r.now())
}

// reasmBuffer returns the loop's buffer for a reassembled packet, made on first use.
// A packet queued from it (an echo reply) is written before the buffer is reused.
func (l *loop) reasmBuffer() []byte {
	if l.reasmBusy {
		for _, ep := range l.r.ports() {
			l.flushPort(ep)
		}
		l.reasmBusy = false
	}
	if l.reasm == nil {
		l.reasm = make([]byte, headroom+ethLen+reassembly.MaxDatagram)
	}
	return l.reasm
}

// reassemble4 hands an IPv4 fragment addressed to the router to the reassembler (RFC 1122
// section 3.3.2, RFC 1812 section 4.2.2.8 for packets to the router itself). It returns
// the reassembled frame and its IP packet when this fragment completed the datagram,
// else nil (held, or dropped and counted).
func (l *loop) reassemble4(buf []byte, ip header.IPv4) ([]byte, header.IPv4) {
	out := l.reasmBuffer()
	res := l.r.reasm.AddIPv4(l.r.now(), ip, l.in.idx, out[headroom+ethLen:])
	if res.Status == reassembly.Held {
		return nil, nil
	}
	if res.Status != reassembly.Done {
		// No ICMP error exists for these in IPv4: a silent, counted drop.
		l.bc.drop(DropReassembly)
		return nil, nil
	}
	return l.reassembled(buf, out, res.Len), header.IPv4(out[headroom+ethLen : headroom+ethLen+res.Len])
}

// reassemble6 is reassemble4 for IPv6 (RFC 8200 section 4.5); the fragment header is
// not atomic.
func (l *loop) reassemble6(buf []byte, ip header.IPv6) ([]byte, header.IPv6) {
	out := l.reasmBuffer()
	res := l.r.reasm.AddIPv6(l.r.now(), ip, l.in.idx, out[headroom+ethLen:])
	switch res.Status {
	case reassembly.Held:
		return nil, nil
	case reassembly.Done:
		return l.reassembled(buf, out, res.Len), header.IPv6(out[headroom+ethLen : headroom+ethLen+res.Len])
	case reassembly.BadLength, reassembly.TooBig:
		// RFC 8200 section 4.5: parameter problem, code 0 (erroneous header field),
		// pointing at the Payload Length (a length not a multiple of 8 with M set) or at
		// the Fragment Offset (a reassembled payload over 65535 bytes).
		l.icmp6Error(ip, header.ICMPv6ParamProblem, 0, res.Pointer)
	case reassembly.IncompleteChain:
		// RFC 8200 section 4.5 (RFC 7112): parameter problem, code 3 (incomplete
		// header chain), pointer 0.
		l.icmp6Error(ip, header.ICMPv6ParamProblem, 3, 0)
	}
	// Overlaps (RFC 5722) and the rest: silently discarded, counted.
	l.bc.drop(DropReassembly)
	return nil, nil
}

// reassembled makes the frame of a packet reassembled into out: the last fragment's
// Ethernet header, no offload.
func (l *loop) reassembled(buf, out []byte, n int) []byte {
	copy(out[headroom:headroom+ethLen], buf[headroom:headroom+ethLen])
	port.Hdr(out, headroom).Clear()
	l.reasmBusy = true
	return out[:headroom+ethLen+n]
}

// reassemblyTimedOut sends ICMP time exceeded, code 1 (fragment reassembly time
// exceeded), about the first fragment of a datagram that timed out to its source, from
// the port it came in on (RFC 792, RFC 1122 section 3.3.2, RFC 8200 section 4.5). It runs
// in Run's timer, outside the receive loops.
func (r *Router) reassemblyTimedOut(first []byte, in int) {
	if in < 0 || in >= len(r.ports()) {
		return
	}
	typ, code := header.ICMPv6TimeExceeded, header.ICMPv6ReassemblyTimeout
	if len(first) > 0 && first[0]>>4 == 4 {
		typ, code = header.ICMPv4TimeExceeded, header.ICMPv4ReassemblyTimeout
	}
	src, dst, ok := errorAddrs(r.ports()[in], first, typ, code)
	if !ok || !r.icmp.allow(r.now()) {
		return
	}
	rp, nh, ok := r.routeBack(dst)
	if !ok {
		return
	}
	buf := make([]byte, headroom+ethLen+header.ICMPv6MaxErrorSize)
	r.ports()[in].counters.ICMPErrors.Add(1)
	r.sendOutside(rp, nh, dst, writeICMPError(buf, src, dst, first, typ, code, 0))
}

// ReassemblyStats returns the counters of the reassembly of fragments addressed to the
// router.
func (r *Router) ReassemblyStats() reassembly.Stats { return r.reasm.Stats() }

// fragment6 sends an IPv6 packet the router originates that is larger than ep's MTU as
// fragments (RFC 8200 section 4.5: only a packet's source fragments it), each in a
// scratch buffer. The packet has no extension headers (the router's own replies).
func (l *loop) fragment6(buf []byte, ep *routerPort, gw, to netip.Addr) {
	l.fragment6MTU(buf, ep, ep.state().mtu, gw, to)
}

// fragment6MTU is fragment6 for a path MTU of mtu (at most ep's).
func (l *loop) fragment6MTU(buf []byte, ep *routerPort, mtu int, gw, to netip.Addr) {
	ip := header.IPv6(buf[headroom+ethLen:])
	if !ip.IsValid() || header.IsExtensionHeader(ip.NextHeader()) {
		l.bc.drop(DropFragment)
		return
	}
	data := ip.Payload()
	room := (mtu - header.IPv6MinimumSize - header.IPv6FragmentSize) &^ 7
	if room <= 0 {
		l.bc.drop(DropFragment)
		return
	}
	if (len(data)+room-1)/room > len(l.scratch)-l.nused {
		l.bc.drop(DropFragment)
		return
	}
	id := l.r.fragID.Add(1)
	for off := 0; off < len(data); off += room {
		n := min(room, len(data)-off)
		b := l.newScratch()
		const hl = header.IPv6MinimumSize + header.IPv6FragmentSize
		f := b[headroom : headroom+ethLen+hl+n]
		copy(f, buf[headroom:headroom+ethLen+header.IPv6MinimumSize])
		fip := header.IPv6(f[ethLen:])
		fip.SetNextHeader(header.ProtocolFragment)
		fip.SetPayloadLength(uint16(header.IPv6FragmentSize + n))
		header.EncodeIPv6Fragment(fip[header.IPv6MinimumSize:], ip.NextHeader(), off, off+n < len(data), id)
		copy(fip[hl:], data[off:off+n])
		l.emit(ep, gw, to, b[:headroom+len(f)])
	}
}
