package router

import (
	"net/netip"

	"ulb/router/header"
	"ulb/router/port"
)

// fragment4 splits an IPv4 packet (DF clear, TTL already decremented) that is larger
// than ep's MTU into fragments (RFC 791 §3.2), each in a scratch buffer, and sends them
// towards to through gw (see emit).
func (l *loop) fragment4(buf []byte, ep *routerPort, gw, to netip.Addr) {
	completeChecksum(buf)
	ip := header.IPv4(buf[headroom+ethLen:])
	hl := ip.HeaderLength()
	data := ip[hl:]
	// Options that are copied into every fragment (the copied flag, RFC 791).
	var opts [40]byte
	nopts := copiedOptions(opts[:], ip[header.IPv4MinimumSize:hl])
	baseOff := int(ip.FragmentOffset()) // in bytes
	lastMF := ip.MoreFragments()
	for off := 0; off < len(data); {
		fhl := header.IPv4MinimumSize + nopts
		if off == 0 {
			fhl = hl
		}
		room := (ep.state().mtu - fhl) &^ 7
		if room <= 0 {
			l.bc.drop(DropFragment)
			return
		}
		n := min(room, len(data)-off)
		b := l.newScratch()
		if b == nil {
			l.bc.drop(DropFragment)
			return
		}
		f := b[headroom : headroom+ethLen+fhl+n]
		copy(f, buf[headroom:headroom+ethLen+header.IPv4MinimumSize])
		fip := header.IPv4(f[ethLen:])
		if off == 0 {
			copy(fip[header.IPv4MinimumSize:], ip[header.IPv4MinimumSize:hl])
		} else {
			copy(fip[header.IPv4MinimumSize:], opts[:nopts])
		}
		copy(fip[fhl:], data[off:off+n])
		fip[0] = 0x40 | byte(fhl/4)
		fip.SetTotalLength(uint16(fhl + n))
		more := off+n < len(data) || lastMF
		setFragment(fip, more, baseOff+off)
		fip.SetChecksum(fip.CalculateChecksum())
		l.bc.forwarded++
		l.emit(ep, gw, to, b[:headroom+len(f)])
		off += n
	}
}

// copiedOptions writes to dst the IPv4 options whose copied flag is set, padded to a
// multiple of 4 bytes, and returns their length.
func copiedOptions(dst, opts []byte) int {
	n := 0
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == 0 { // end of options
			break
		}
		if t == 1 { // no-operation
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break
		}
		ln := int(opts[i+1])
		if t&0x80 != 0 {
			n += copy(dst[n:], opts[i:i+ln])
		}
		i += ln
	}
	for n%4 != 0 {
		dst[n] = 0
		n++
	}
	return n
}

// setFragment writes the IPv4 flags and fragment offset field of a fragment: DF clear,
// MF as given, the offset in bytes (a multiple of 8).
func setFragment(ip header.IPv4, more bool, offset int) {
	v := uint16(offset / 8)
	if more {
		v |= 0x2000
	}
	ip[6], ip[7] = byte(v>>8), byte(v)
}

// gsoSegmentLen is the size of the largest IP packet a GSO frame becomes on the wire.
func gsoSegmentLen(ip []byte, vh port.VnetHdr) int {
	var hl int
	var l4 []byte
	if len(ip) > 0 && ip[0]>>4 == 4 {
		v4 := header.IPv4(ip)
		hl = v4.HeaderLength()
		l4 = v4.Payload()
	} else {
		v6 := header.IPv6(ip)
		proto, off, ok := v6.TransportProtocol()
		if !ok {
			return len(ip)
		}
		hl = off
		l4 = ip[off:]
		if proto != header.ProtocolTCP && proto != header.ProtocolUDP {
			return len(ip)
		}
	}
	switch vh.GSOType() &^ port.VnetGSOECN {
	case port.VnetGSOTCPv4, port.VnetGSOTCPv6:
		t := header.TCP(l4)
		if !t.IsValid() {
			return len(ip)
		}
		hl += t.DataOffset()
	case port.VnetGSOUDPL4:
		hl += 8
	}
	return hl + int(vh.GSOSize())
}

// segmentGSO cuts the GSO frame at buf[headroom:] into the loop's segment buffers, with
// room for over more bytes in each, and returns how many; a frame it cannot cut is a
// counted drop.
func (l *loop) segmentGSO(buf []byte, over int) (int, bool) {
	frame := buf[headroom:]
	vh := port.Hdr(buf, headroom)
	n, maxLen, err := port.GSOSegments(frame, vh)
	if err != nil || !l.gso.fit(n, maxLen+over) {
		// Not TCP (UDP GSO has no software segmentation here), or absurd segment counts.
		l.bc.drop(DropFragment)
		return 0, false
	}
	g := &l.gso
	if n, err = port.SegmentTCP(frame, vh, g.frames[:n], g.sizes[:n]); err != nil {
		l.bc.drop(DropFragment)
		return 0, false
	}
	return n, true
}

// segment4 cuts an IPv4 TCP GSO frame (DF clear, TTL already decremented) whose segments
// are larger than ep's MTU into those segments, as the sender's NIC would have (see
// port.SegmentTCP), and sends each towards to through gw, fragmented when it does not
// fit. The segments live in the loop's GSO buffers and the fragments in its scratch
// buffers, both reused before the batch ends: what this frame queued on ep is written
// here, at once.
func (l *loop) segment4(buf []byte, ep *routerPort, gw, to netip.Addr) {
	n, ok := l.segmentGSO(buf, 0)
	if !ok {
		return
	}
	g := &l.gso
	mark := l.nused
	for i := range n {
		seg := g.bufs[i][:headroom+g.sizes[i]]
		port.Hdr(seg, headroom).Clear() // SegmentTCP completed every checksum
		ipLen := g.sizes[i] - ethLen
		if ipLen <= ep.state().mtu {
			l.bc.forwarded++
			l.emit(ep, gw, to, seg)
			continue
		}
		if len(l.scratch)-l.nused < fragments(ipLen, ep.state().mtu) {
			l.flushPort(ep)
			l.nused = mark
		}
		l.fragment4(seg, ep, gw, to)
	}
	l.flushPort(ep)
	l.nused = mark
}

// fragments is at most how many fragments fragment4 makes of an IPv4 packet of n bytes
// for an MTU.
func fragments(n, mtu int) int {
	room := (mtu - header.IPv4MaximumHeaderSize) &^ 7
	if room <= 0 {
		return 1
	}
	return (n + room - 1) / room
}

// maxGSOBytes bounds the GSO buffers of a loop: a 64 KiB frame cut into segments of a
// few hundred bytes fits.
const maxGSOBytes = 8 * port.BufSize

// gsoBuffers hold the segments of a GSO frame that a loop cuts in software. They are
// made the first time a frame needs them and grown to the largest seen, so that the
// steady state allocates nothing.
type gsoBuffers struct {
	slab   []byte
	bufs   [][]byte // segment i at bufs[i][headroom:], its virtio-net header before it
	frames [][]byte // bufs[i][headroom:], as port.SegmentTCP takes them
	sizes  []int
}

// fit makes room for n segments of up to maxLen bytes; false when that is more than
// maxGSOBytes.
func (g *gsoBuffers) fit(n, maxLen int) bool {
	per := headroom + maxLen
	if n <= 0 || n*per > maxGSOBytes {
		return false
	}
	if len(g.slab) < n*per {
		g.slab = make([]byte, n*per)
	}
	if len(g.bufs) < n {
		g.bufs = make([][]byte, n)
		g.frames = make([][]byte, n)
		g.sizes = make([]int, n)
	}
	for i := range n {
		g.bufs[i] = g.slab[i*per : (i+1)*per : (i+1)*per]
		g.frames[i] = g.bufs[i][headroom:]
	}
	return true
}
