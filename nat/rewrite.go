package nat

import (
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
		var segmentsLeft bool
		proto, off, segmentsLeft, ok = v[:end].UpperLayer()
		if !ok || segmentsLeft {
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

// rewrite applies r to a packet whose layout was checked with fits through the header
// views' setters: addresses with the IPv4 header checksum, ports or identifier, and the
// transport checksum when the packet (or quote) holds it, as a checksum or, partial, as
// the pseudo-header's sum.
func (lay *layout) rewrite(r Rewrite, partial bool) {
	// The changes of both addresses update the transport checksum once.
	var d header.SumDelta
	if lay.v4 {
		ip := header.IPv4(lay.l3)
		if r.Src.IsValid() {
			d = ip.SetSourceAddrWithChecksumUpdate(r.Src.Unmap())
		}
		if r.Dst.IsValid() {
			d = d.Add(ip.SetDestinationAddrWithChecksumUpdate(r.Dst.Unmap()))
		}
	} else {
		ip := header.IPv6(lay.l3)
		if r.Src.IsValid() {
			d = ip.SetSourceAddrWithDelta(r.Src)
		}
		if r.Dst.IsValid() {
			d = d.Add(ip.SetDestinationAddrWithDelta(r.Dst))
		}
	}
	if r.Src.IsValid() || r.Dst.IsValid() {
		lay.updatePseudoHeader(d, partial)
	}
	lay.setPorts(r, !partial && lay.csum >= 0)
}

// updatePseudoHeader updates the transport checksum field, when the packet holds it, for
// the change d of the pseudo-header's sum. ICMPv4 has no pseudo-header.
func (lay *layout) updatePseudoHeader(d header.SumDelta, partial bool) {
	if lay.csum < 0 {
		return
	}
	switch {
	case lay.kind == kindTCP && partial:
		header.TCP(lay.l4).UpdatePartialChecksumPseudoHeader(d)
	case lay.kind == kindTCP:
		header.TCP(lay.l4).UpdateChecksumPseudoHeader(d)
	case lay.kind == kindUDP && partial:
		header.UDP(lay.l4).UpdatePartialChecksumPseudoHeader(d)
	case lay.kind == kindUDP:
		header.UDP(lay.l4).UpdateChecksumPseudoHeader(d)
	case lay.kind == kindEcho && !lay.v4 && partial:
		header.ICMPv6(lay.l4).UpdatePartialChecksumPseudoHeader(d)
	case lay.kind == kindEcho && !lay.v4:
		header.ICMPv6(lay.l4).UpdateChecksumPseudoHeader(d)
	}
}

// setPorts writes the rewrite's ports (or echo identifier), updating the transport
// checksum when sum says the field holds a complete checksum (a CHECKSUM_PARTIAL field
// ignores the ports: the final sum covers them).
func (lay *layout) setPorts(r Rewrite, sum bool) {
	switch lay.kind {
	case kindEcho:
		id := r.SrcPort
		if id == 0 {
			id = r.DstPort
		}
		switch {
		case id == 0:
		case lay.v4 && sum:
			header.ICMPv4(lay.l4).SetIdentWithChecksumUpdate(id)
		case lay.v4:
			header.ICMPv4(lay.l4).SetIdent(id)
		case sum:
			header.ICMPv6(lay.l4).SetIdentWithChecksumUpdate(id)
		default:
			header.ICMPv6(lay.l4).SetIdent(id)
		}
	case kindTCP:
		t := header.TCP(lay.l4)
		if r.SrcPort != 0 {
			if sum {
				t.SetSourcePortWithChecksumUpdate(r.SrcPort)
			} else {
				t.SetSourcePort(r.SrcPort)
			}
		}
		if r.DstPort != 0 {
			if sum {
				t.SetDestinationPortWithChecksumUpdate(r.DstPort)
			} else {
				t.SetDestinationPort(r.DstPort)
			}
		}
	case kindUDP:
		u := header.UDP(lay.l4)
		if r.SrcPort != 0 {
			if sum {
				u.SetSourcePortWithChecksumUpdate(r.SrcPort)
			} else {
				u.SetSourcePort(r.SrcPort)
			}
		}
		if r.DstPort != 0 {
			if sum {
				u.SetDestinationPortWithChecksumUpdate(r.DstPort)
			} else {
				u.SetDestinationPort(r.DstPort)
			}
		}
	}
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
	if lay.v4 {
		ip := header.IPv4(lay.l3)
		e.Src, e.Dst = ip.SourceAddr(), ip.DestinationAddr()
	} else {
		ip := header.IPv6(lay.l3)
		e.Src, e.Dst = ip.SourceAddr(), ip.DestinationAddr()
	}
	switch lay.kind {
	case kindTCP:
		e.Proto = header.ProtocolTCP
		t := header.TCP(lay.l4)
		e.SrcPort, e.DstPort = t.SourcePort(), t.DestinationPort()
	case kindUDP:
		e.Proto = header.ProtocolUDP
		u := header.UDP(lay.l4)
		e.SrcPort, e.DstPort = u.SourcePort(), u.DestinationPort()
	case kindEcho:
		// The identifier is at the same offset in ICMPv4 and ICMPv6.
		e.Proto = header.ProtocolICMPv4
		if !lay.v4 {
			e.Proto = header.ProtocolICMPv6
		}
		id := header.ICMPv4(lay.l4).Ident()
		e.SrcPort, e.DstPort = id, id
	}
	return e, true
}
