package arpd

import (
	"net/netip"
	"slices"

	"ulb/router/header"
)

// addrSet is an immutable snapshot of the addresses the port owns, published with an
// atomic pointer so that receive paths read it without a lock.
type addrSet struct {
	prefixes  []netip.Prefix            // own addresses with their on-link prefixes, link-local included
	own       map[netip.Addr]header.MAC // every address answered for → the MAC to answer with
	virtual   map[netip.Addr]header.MAC // the virtual subset of own, as given to AddVirtual
	linkLocal netip.Addr                // fe80::/64 address derived from the port MAC
	groups    []header.MAC              // Ethernet multicast groups to join
}

// linkLocalPrefixLen is the prefix length of the derived link-local address.
const linkLocalPrefixLen = 64

var (
	allNodes   = netip.MustParseAddr("ff02::1")
	allRouters = netip.MustParseAddr("ff02::2")
)

func newAddrSet(mac header.MAC, configured []netip.Prefix, virtual map[netip.Addr]header.MAC) *addrSet {
	s := &addrSet{
		own:       make(map[netip.Addr]header.MAC),
		virtual:   make(map[netip.Addr]header.MAC, len(virtual)),
		linkLocal: header.LinkLocalFromMAC(mac),
	}
	add := func(p netip.Prefix) {
		a := normalize(p.Addr())
		p = netip.PrefixFrom(a, p.Bits())
		if !p.IsValid() || !usableUnicast(a) || slices.Contains(s.prefixes, p) {
			return
		}
		s.prefixes = append(s.prefixes, p)
		s.own[a] = mac
	}
	for _, p := range configured {
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		add(p)
	}
	add(netip.PrefixFrom(s.linkLocal, linkLocalPrefixLen))
	for a, m := range virtual {
		s.own[a] = m
		s.virtual[a] = m
	}
	s.groups = []header.MAC{header.IPv6MulticastMAC(allNodes), header.IPv6MulticastMAC(allRouters)}
	for a := range s.own {
		if a.Is6() {
			if g := header.SolicitedNodeMAC(a); !slices.Contains(s.groups, g) {
				s.groups = append(s.groups, g)
			}
		}
	}
	return s
}

// usableUnicast reports whether a can be a neighbour's or our own unicast address.
func usableUnicast(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return false
	}
	if a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	return true
}

// normalize turns an IPv4-mapped IPv6 address into IPv4 and drops an IPv6 zone, so that
// the same neighbour always has the same key.
func normalize(a netip.Addr) netip.Addr {
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	return a
}

// onLink reports whether a is a unicast address on one of the port's networks (for IPv6,
// any link-local address is), and not the network's IPv4 broadcast address.
func (s *addrSet) onLink(a netip.Addr) bool {
	if !usableUnicast(a) {
		return false
	}
	if a.Is6() && a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(a) {
			if a.Is4() && p.Bits() < 31 && a == broadcastOf(p) {
				return false
			}
			return true
		}
	}
	return false
}

// isBroadcast reports whether a is the limited broadcast address or the directed
// broadcast address of one of the port's IPv4 networks.
func (s *addrSet) isBroadcast(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	if a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for _, p := range s.prefixes {
		if p.Addr().Is4() && p.Bits() < 31 && a == broadcastOf(p) {
			return true
		}
	}
	return false
}

func broadcastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// source picks our address to send a solicitation for target from: an own address on
// the target's network, else the first own address of the family (the link-local one
// for IPv6). It reports false when the port has no address of that family; for IPv4 the
// caller then sends an ARP probe from 0.0.0.0.
func (s *addrSet) source(target netip.Addr) (netip.Addr, bool) {
	if target.Is6() && target.IsLinkLocalUnicast() {
		return s.linkLocal, true
	}
	var first netip.Addr
	for _, p := range s.prefixes {
		if p.Addr().Is4() != target.Is4() {
			continue
		}
		if p.Contains(target) {
			return p.Addr(), true
		}
		if !first.IsValid() && p.Addr() != s.linkLocal {
			first = p.Addr()
		}
	}
	if target.Is6() {
		return s.linkLocal, true
	}
	return first, first.IsValid()
}

// ipv4MulticastMAC maps an IPv4 multicast group to 01:00:5e plus its low 23 bits
// (RFC 1112 §6.4).
func ipv4MulticastMAC(a netip.Addr) header.MAC {
	b := a.As4()
	return header.MAC{0x01, 0x00, 0x5e, b[1] & 0x7f, b[2], b[3]}
}
