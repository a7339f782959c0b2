package router

import (
	"net/netip"
	"time"

	"ulb/router/fib"
	"ulb/router/header"
)

// IP options and extension headers, and the errors about them.
//
// IPv4 options. Every received packet with options has them checked first, whether the
// router forwards it or is its destination (RFC 1812 sections 4.2.2.1 and 5.2.2): a
// malformed option gets ICMP Parameter Problem, code 0, pointing at the offending octet
// (RFC 1812 section 4.3.3.5), and the packet is dropped as ipv4-options. Record Route
// and Timestamp are processed in transit (RFC 791 section 3.1, RFC 1812 sections
// 5.3.13.5 and 5.3.13.6) with the egress port's address, and in the echo replies the
// router sends (RFC 1122 section 3.2.2.6, RFC 1812 section 4.3.3.6); options the router
// does not know pass unchanged (RFC 1812 section 5.3.13.1).
//
// Source routes. A packet with a Loose or Strict Source Route option is dropped and
// counted as source-route, whether its route is finished or not and whether it is
// addressed to the router or passes through: the default RFC 7126 sections 4.3 and
// 4.4 (BCP 186) recommend for both options, which supersedes RFC 1812 section
// 5.3.13.4's support of source routing. The drop is silent, as BCP 186 asks nothing
// more (and an error would make the router a reflector): a packet whose route is not
// finished is never answered as if the router were its destination, since the router
// is then only a hop of the route (RFC 1812 sections 4.2.2.1 and 5.3.13.4), nor is the
// route followed.
//
// IPv6 routing headers. The router implements no routing type: a packet addressed to
// it whose routing header has Segments Left above 0 gets Parameter Problem, code 0,
// pointing at the Routing Type (RFC 8200 section 4.4; RFC 5095 section 3 for type 0),
// and is dropped as ipv6-routing-header; with Segments Left 0 the header is ignored and
// the packet processed. Routing headers of packets in transit are not the router's to
// examine (RFC 8200 section 4).

// options4 checks the options of a received IPv4 packet that has some, and reports
// whether the packet goes on (else it was dropped, and answered when malformed).
func (l *loop) options4(ip header.IPv4) bool {
	set, bad := ip.CheckOptions()
	if bad != 0 {
		// RFC 1812 section 4.3.3.5: the pointer in the high octet of the second word.
		l.icmp4Error(ip, header.ICMPv4ParamProblem, 0, uint32(bad)<<24)
		l.bc.drop(DropIPv4Options)
		return false
	}
	if set.SourceRoute != 0 {
		// RFC 7126 sections 4.3 and 4.4: dropped by default.
		l.bc.drop(DropSourceRoute)
		return false
	}
	return true
}

// transitOptions4 processes the Record Route and Timestamp options of an IPv4 packet the
// router forwards out of ep, which options4 let through: the address recorded is the
// egress port's, "as known in the environment into which this datagram is being
// forwarded" (RFC 791 section 3.1, RFC 1812 section 5.3.13.5).
func (l *loop) transitOptions4(ip header.IPv4, ep *routerPort) {
	a := ep.state().src4
	if !a.IsValid() {
		a = l.in.state().src4
	}
	l.stampOptions4(ip, a)
}

// stampOptions4 records a in the Record Route option of ip and stamps its Timestamp
// option as the module of address a (or, for prespecified addresses, as the one of the
// router's addresses that is next in the list), updating the header checksum.
func (l *loop) stampOptions4(ip header.IPv4, a netip.Addr) {
	set, bad := ip.CheckOptions()
	if bad != 0 || !a.IsValid() {
		return
	}
	if set.RecordRoute != 0 {
		ip.RecordRouteWithChecksumUpdate(set.RecordRoute, a)
	}
	if set.Timestamp != 0 {
		if pre, ok := ip.TimestampPrespecified(set.Timestamp); ok {
			// RFC 791: a module stamps only when the next address is its own.
			if nh, found := l.r.fib.Load().Lookup(pre); !found || nh.Kind != fib.Local {
				return
			}
			a = pre
		}
		ip.TimestampWithChecksumUpdate(set.Timestamp, a, timestamp(l.r.now()))
	}
}

// timestamp is t in milliseconds since midnight UT, the Timestamp option's value (RFC
// 791 section 3.1).
func timestamp(t time.Time) uint32 {
	t = t.UTC()
	h, m, s := t.Clock()
	return uint32(((h*60+m)*60+s)*1000 + t.Nanosecond()/1e6)
}

// routingHeader6 answers a packet whose routing header has Segments Left above 0, when
// it is addressed to the router: the router implements no routing type, so RFC 8200
// section 4.4 (RFC 5095 section 3 for type 0) wants Parameter Problem, code 0, pointing
// at the Routing Type, and the packet discarded. It reports whether it dropped the
// packet; packets in transit go on untouched.
func (l *loop) routingHeader6(ip header.IPv6, dst netip.Addr) bool {
	if !dst.IsMulticast() {
		if nh, ok := l.r.fib.Load().Lookup(dst); !ok || nh.Kind != fib.Local {
			return false
		}
	}
	c := ip.Chain()
	l.icmp6Error(ip, header.ICMPv6ParamProblem, header.ICMPv6ErroneousHeader, uint32(header.RoutingTypeField(c.Routing)))
	l.bc.drop(DropIPv6Routing)
	return true
}

// unknownProtocol answers a packet addressed to the router whose protocol it does not
// handle: ICMP protocol unreachable (RFC 1122 section 3.2.2.1, RFC 1812 section
// 4.3.3.1), or for IPv6 Parameter Problem, code 1, pointing at
// the Next Header field that names the protocol (RFC 8200 section 4, RFC 4443 section
// 3.4). VRRP is the router's (its advertisements come to a multicast group: one sent
// to a unicast address is dropped silently), and an IPv6 packet with no next header
// (59) or a fragment header is dropped silently too: the router does not reassemble.
func (l *loop) unknownProtocol(ip []byte, proto uint8) {
	l.bc.drop(DropLocalUnhandled)
	if proto == header.ProtocolVRRP {
		return
	}
	if v4 := header.IPv4(ip); v4.IsValid() {
		l.icmp4Error(v4, header.ICMPv4DstUnreachable, header.ICMPv4ProtoUnreachable, 0)
		return
	}
	v6 := header.IPv6(ip)
	if proto == header.ProtocolNoNext {
		return
	}
	c := v6.Chain()
	if c.Fragment {
		return
	}
	l.icmp6Error(v6, header.ICMPv6ParamProblem, header.ICMPv6UnrecognizedNextHeader, uint32(c.NextHeaderField))
}
