package router

import (
	"ulb/router/fib"
	"ulb/router/header"
)

// fragment4 splits an IPv4 packet (DF clear, TTL already decremented) that is larger
// than ep's MTU into fragments (RFC 791 §3.2), each in a scratch buffer, and sends them.
func (l *loop) fragment4(buf []byte, ep *routerPort, nh fib.NextHop) {
	completeChecksum(buf)
	ip := header.IPv4(buf[headroom+ethLen:])
	hl := ip.HeaderLength()
	data := ip[hl:]
	// Options that are copied into every fragment (the copied flag, RFC 791).
	var opts [40]byte
	nopts := copiedOptions(opts[:], ip[header.IPv4MinimumSize:hl])
	baseOff := int(ip.FragmentOffset()) // in bytes
	lastMF := ip.MoreFragments()
	dst := ip.DestinationAddr()
	for off := 0; off < len(data); {
		fhl := header.IPv4MinimumSize + nopts
		if off == 0 {
			fhl = hl
		}
		room := (ep.mtu - fhl) &^ 7
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
		l.emit(ep, nh.Gateway, dst, b[:headroom+len(f)])
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
