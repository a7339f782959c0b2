package nat

import (
	"encoding/binary"
	"net/netip"

	"ulb/router/header"
)

// Rewrite says what Apply changes in a packet. A zero Addr or a zero port keeps the
// packet's value. Addresses must be of the packet's family (an IPv4-mapped IPv6 address
// counts as IPv4 for an IPv4 packet).
//
// For ICMP echo requests and replies the identifier stands in for both ports: the new
// identifier is SrcPort, or DstPort when SrcPort is 0; when both are set they must be
// equal (a conntrack tuple of an echo flow carries the identifier in both).
type Rewrite struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// IsZero reports whether r changes nothing.
func (r Rewrite) IsZero() bool {
	return !r.Src.IsValid() && !r.Dst.IsValid() && r.SrcPort == 0 && r.DstPort == 0
}

// Reversed swaps source and destination: the rewrite that makes a packet quoted in an
// ICMP error look as it was sent, when r is the rewrite of the error's own direction.
func (r Rewrite) Reversed() Rewrite {
	return Rewrite{Src: r.Dst, Dst: r.Src, SrcPort: r.DstPort, DstPort: r.SrcPort}
}

// Kinds of transport header a rewrite can touch.
const (
	kindTCP uint8 = iota + 1
	kindUDP
	kindEcho // ICMPv4 or ICMPv6 echo request / reply
)

// layout is where a packet's rewritable fields are. It is computed once per call and
// lives on the stack.
type layout struct {
	v4   bool
	kind uint8
	l3   []byte // the IP header (v4) or the fixed IPv6 header
	l4   []byte // the transport header onward, up to the end of the packet or quote
	csum int    // offset of the transport checksum field in l4, -1 when a quote cuts it
}

// parseIP finds the transport header of an IPv4 or IPv6 packet. A quoted packet (the
// invoking packet inside an ICMP error) may be cut short anywhere after its IP header
// and its first 8 transport bytes; a complete one must hold its whole transport header.
// Fragments other than the first, unknown protocols, ICMP messages other than echo
// request / reply, and IPv6 packets whose routing header still has segments left (their
// pseudo-header destination is not the destination field) are refused.
func parseIP(ip []byte, quoted bool) (lay layout, ok bool) {
	if len(ip) == 0 {
		return lay, false
	}
	var proto uint8
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < header.IPv4MinimumSize {
			return lay, false
		}
		v := header.IPv4(ip)
		hl := v.HeaderLength()
		tl := int(v.TotalLength())
		end := tl
		if quoted {
			end = min(tl, len(ip))
			if hl < header.IPv4MinimumSize || hl > end {
				return lay, false
			}
		} else if !v.IsValid() {
			return lay, false
		}
		if v.FragmentOffset() != 0 {
			return lay, false
		}
		lay.v4 = true
		lay.l3 = ip[:hl]
		lay.l4 = ip[hl:end]
		proto = v.Protocol()
	case 6:
		if len(ip) < header.IPv6MinimumSize {
			return lay, false
		}
		v := header.IPv6(ip)
		end := header.IPv6MinimumSize + int(v.PayloadLength())
		if quoted {
			end = min(end, len(ip))
		} else if !v.IsValid() {
			return lay, false
		}
		var off int
		proto, off, ok = transport6(ip[:end])
		if !ok {
			return lay, false
		}
		lay.l3 = ip[:header.IPv6MinimumSize]
		lay.l4 = ip[off:end]
	default:
		return lay, false
	}
	return lay, lay.setKind(proto, quoted)
}

// setKind classifies the transport header and checks it is long enough.
func (lay *layout) setKind(proto uint8, quoted bool) bool {
	l4 := lay.l4
	switch {
	case proto == header.ProtocolTCP:
		lay.kind = kindTCP
		lay.csum = 16
		if quoted {
			if len(l4) < 8 {
				return false
			}
			if len(l4) < 18 {
				lay.csum = -1
			}
			return true
		}
		return header.TCP(l4).IsValid()
	case proto == header.ProtocolUDP:
		lay.kind = kindUDP
		lay.csum = 6
		return len(l4) >= header.UDPMinimumSize
	case proto == header.ProtocolICMPv4 && lay.v4:
		lay.kind = kindEcho
		lay.csum = 2
		return len(l4) >= header.ICMPv4MinimumSize &&
			(l4[0] == header.ICMPv4Echo || l4[0] == header.ICMPv4EchoReply)
	case proto == header.ProtocolICMPv6 && !lay.v4:
		lay.kind = kindEcho
		lay.csum = 2
		return len(l4) >= header.ICMPv6MinimumSize &&
			(l4[0] == header.ICMPv6EchoRequest || l4[0] == header.ICMPv6EchoReply)
	}
	return false
}

// transport6 walks the extension headers of the IPv6 packet b (cut at the end of its
// payload or quote) and returns the upper-layer protocol and its offset. It refuses what
// parseIP documents, ESP, headers running past b and chains longer than
// header.IPv6MaxExtensionHeaders.
func transport6(b []byte) (proto uint8, off int, ok bool) {
	proto = b[6]
	off = header.IPv6MinimumSize
	for n := 0; ; n++ {
		switch proto {
		case header.ProtocolTCP, header.ProtocolUDP, header.ProtocolICMPv6:
			return proto, off, true
		case header.ProtocolHopByHop, header.ProtocolDstOpts, header.ProtocolRouting,
			header.ProtocolFragment, header.ProtocolAH:
		default:
			return proto, off, false
		}
		if n == header.IPv6MaxExtensionHeaders || (proto == header.ProtocolHopByHop && n > 0) ||
			off+8 > len(b) {
			return proto, off, false
		}
		var l int
		switch proto {
		case header.ProtocolFragment:
			if binary.BigEndian.Uint16(b[off+2:])&^7 != 0 {
				return proto, off, false // not the first fragment
			}
			l = 8
		case header.ProtocolAH:
			l = (int(b[off+1]) + 2) * 4
		case header.ProtocolRouting:
			if b[off+3] != 0 {
				return proto, off, false // segments left: the pseudo-header uses the final hop
			}
			l = (int(b[off+1]) + 1) * 8
		default:
			l = (int(b[off+1]) + 1) * 8
		}
		if off+l > len(b) {
			return proto, off, false
		}
		proto = b[off]
		off += l
	}
}

// fits reports whether the rewrite can be applied to a packet of the layout's kind and
// family.
func (lay *layout) fits(r Rewrite) bool {
	if !fitsFamily(r.Src, lay.v4) || !fitsFamily(r.Dst, lay.v4) {
		return false
	}
	if lay.kind == kindEcho && r.SrcPort != 0 && r.DstPort != 0 && r.SrcPort != r.DstPort {
		return false
	}
	return true
}

func fitsFamily(a netip.Addr, v4 bool) bool {
	if !a.IsValid() {
		return true
	}
	if v4 {
		return a.Is4() || a.Is4In6()
	}
	return a.Is6() && !a.Is4In6()
}

// addrOffsets returns the offsets of the source and destination addresses in the IP
// header and their length.
func (lay *layout) addrOffsets() (src, dst, n int) {
	if lay.v4 {
		return 12, 16, 4
	}
	return 8, 24, 16
}

// setAddrs writes the rewrite's addresses into the IP header, updates the IPv4 header
// checksum, and returns the change of the pseudo-header's sum as a ones'-complement
// delta (sum(new) - sum(old)).
func (lay *layout) setAddrs(r Rewrite) uint16 {
	if !r.Src.IsValid() && !r.Dst.IsValid() {
		return 0
	}
	if lay.v4 {
		// Two 32-bit words: no need for a general sum.
		var d uint16
		if r.Src.IsValid() {
			d = delta32(lay.l3[12:16], r.Src.Unmap().As4())
		}
		if r.Dst.IsValid() {
			d = header.ChecksumCombine(d, delta32(lay.l3[16:20], r.Dst.Unmap().As4()))
		}
		v := header.IPv4(lay.l3)
		v.SetChecksum(^header.ChecksumCombine(^v.Checksum(), d))
		return d
	}
	span := lay.l3[8:40]
	before := header.Checksum(span, 0)
	if r.Src.IsValid() {
		a := r.Src.As16()
		copy(span[:16], a[:])
	}
	if r.Dst.IsValid() {
		a := r.Dst.As16()
		copy(span[16:], a[:])
	}
	return header.ChecksumCombine(^before, header.Checksum(span, 0))
}

// delta32 writes the IPv4 address a over b and returns the change of b's sum.
func delta32(b []byte, a [4]byte) uint16 {
	o := binary.BigEndian.Uint32(b)
	n := binary.BigEndian.Uint32(a[:])
	copy(b, a[:])
	d := header.ChecksumCombine(^uint16(o>>16), ^uint16(o))
	return header.ChecksumCombine(d, header.ChecksumCombine(uint16(n>>16), uint16(n)))
}

// setPorts writes the rewrite's ports (or echo identifier) and returns the change of
// the transport header's sum as a ones'-complement delta.
func (lay *layout) setPorts(r Rewrite) uint16 {
	l4 := lay.l4
	if lay.kind == kindEcho {
		id := r.SrcPort
		if id == 0 {
			id = r.DstPort
		}
		if id == 0 {
			return 0
		}
		old := binary.BigEndian.Uint16(l4[4:])
		binary.BigEndian.PutUint16(l4[4:], id)
		return header.ChecksumCombine(^old, id)
	}
	if r.SrcPort == 0 && r.DstPort == 0 {
		return 0
	}
	var d uint16
	if r.SrcPort != 0 {
		d = header.ChecksumCombine(^binary.BigEndian.Uint16(l4[0:]), r.SrcPort)
		binary.BigEndian.PutUint16(l4[0:], r.SrcPort)
	}
	if r.DstPort != 0 {
		d = header.ChecksumCombine(d, header.ChecksumCombine(^binary.BigEndian.Uint16(l4[2:]), r.DstPort))
		binary.BigEndian.PutUint16(l4[2:], r.DstPort)
	}
	return d
}

// rewrite applies r to a packet whose layout was checked with fits: addresses, ports
// or identifier, the IPv4 header checksum and the transport checksum when the packet
// (or quote) holds it.
func (lay *layout) rewrite(r Rewrite, partial bool) {
	addrDelta := lay.setAddrs(r)
	portDelta := lay.setPorts(r)
	if lay.csum < 0 {
		return
	}
	pseudo := !(lay.kind == kindEcho && lay.v4) // ICMPv4 has no pseudo-header
	f := lay.l4[lay.csum : lay.csum+2]
	x := binary.BigEndian.Uint16(f)
	if partial {
		// The field holds the pseudo-header's sum; the ports are summed later.
		if pseudo {
			binary.BigEndian.PutUint16(f, header.ChecksumCombine(x, addrDelta))
		}
		return
	}
	if lay.kind == kindUDP && lay.v4 && x == 0 {
		return // no checksum
	}
	d := portDelta
	if pseudo {
		d = header.ChecksumCombine(d, addrDelta)
	}
	x = ^header.ChecksumCombine(^x, d)
	if lay.kind == kindUDP && x == 0 {
		x = 0xffff
	}
	binary.BigEndian.PutUint16(f, x)
}

// Apply rewrites the IPv4 or IPv6 packet ip (starting at its IP header, cut at its
// total length or not) in place as r says, and updates the IPv4 header checksum and the
// TCP, UDP, ICMPv4 or ICMPv6 checksum incrementally. partial says the frame carries
// CHECKSUM_PARTIAL (see the package documentation).
//
// It reports false and changes nothing when it cannot: a malformed IP header, a
// fragment other than the first, a transport header cut short, a protocol other than
// TCP, UDP and ICMP echo request / reply (ICMP errors go through TranslateICMPError), an
// address of the other family, or conflicting echo identifiers. A UDP-over-IPv4
// datagram without a checksum (0) keeps none.
func Apply(ip []byte, r Rewrite, partial bool) bool {
	lay, ok := parseIP(ip, false)
	if !ok || !lay.fits(r) {
		return false
	}
	lay.rewrite(r, partial)
	return true
}

// Endpoints are the addresses and ports of a packet, as Parse reads them. For ICMP echo
// request / reply both ports hold the identifier.
type Endpoints struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Parse reads the endpoints of a TCP, UDP or ICMP echo packet, complete or quoted in an
// ICMP error (see ErrorInner), with the same refusals as Apply. The router uses it to
// find the flow an ICMP error is about.
func Parse(ip []byte) (Endpoints, bool) {
	lay, ok := parseIP(ip, true)
	if !ok {
		return Endpoints{}, false
	}
	var e Endpoints
	so, do, n := lay.addrOffsets()
	if lay.v4 {
		e.Src = netip.AddrFrom4([4]byte(lay.l3[so : so+n]))
		e.Dst = netip.AddrFrom4([4]byte(lay.l3[do : do+n]))
	} else {
		e.Src = netip.AddrFrom16([16]byte(lay.l3[so : so+n]))
		e.Dst = netip.AddrFrom16([16]byte(lay.l3[do : do+n]))
	}
	switch lay.kind {
	case kindTCP:
		e.Proto = header.ProtocolTCP
	case kindUDP:
		e.Proto = header.ProtocolUDP
	case kindEcho:
		e.Proto = header.ProtocolICMPv4
		if !lay.v4 {
			e.Proto = header.ProtocolICMPv6
		}
		id := binary.BigEndian.Uint16(lay.l4[4:])
		e.SrcPort, e.DstPort = id, id
		return e, true
	}
	e.SrcPort = binary.BigEndian.Uint16(lay.l4[0:])
	e.DstPort = binary.BigEndian.Uint16(lay.l4[2:])
	return e, true
}
