// Package fib is the router's forwarding table: longest-prefix match over IPv4 and IPv6
// routes in an immutable, allocation-free multibit trie built by a Builder.
//
// The control plane fills a Builder, calls Build and publishes the resulting *Table with
// atomic.Pointer; the data plane calls (*Table).Lookup per packet. A Table never changes
// after Build, so any number of goroutines may read it.
//
// Address families are kept apart: an IPv4 address is looked up among IPv4 prefixes only,
// and every IPv6 address, IPv4-mapped ones (::ffff:a.b.c.d) included, among IPv6 prefixes
// only. A mapped address is never unmapped: an IPv6 packet to ::ffff:192.0.2.1 does not
// follow an IPv4 route. Zones are ignored.
package fib

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Kind says where a route comes from.
type Kind uint8

// Route kinds.
const (
	Static    Kind = iota // configured with a gateway or an outgoing port
	Connected             // the network of one of the router's own addresses
	Local                 // one of the router's own addresses (/32 or /128)
)

func (k Kind) String() string {
	switch k {
	case Static:
		return "static"
	case Connected:
		return "connected"
	case Local:
		return "local"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// NextHop is the result of a lookup: where a packet to a destination goes.
type NextHop struct {
	// Port is the router's index of the outgoing port.
	Port int
	// Gateway is the neighbour to send to; the invalid (zero) Addr means the destination
	// is directly connected and is its own next hop (see Via).
	Gateway netip.Addr
	// Prefix is the matched route's prefix, always masked. Builder.Insert sets it.
	Prefix netip.Prefix
	Kind   Kind
}

// Via returns the address whose link-layer address a packet to dst must be sent to: the
// gateway, or dst itself on a directly connected route.
func (h NextHop) Via(dst netip.Addr) netip.Addr {
	if h.Gateway.IsValid() {
		return h.Gateway
	}
	return dst
}

// Errors returned by Builder.Insert.
var (
	ErrInvalidPrefix = errors.New("fib: invalid prefix")
	ErrGatewayFamily = errors.New("fib: gateway and prefix are of different address families")
)

// Builder collects routes for a Table. The zero value is an empty builder ready to use.
// A Builder is not safe for concurrent use; the Tables it builds are.
type Builder struct {
	routes map[netip.Prefix]NextHop
}

// Insert adds the route to p, normalized with Masked. Inserting a prefix that is already
// present replaces its next hop: the last insert wins. It fails on an invalid prefix and
// when a valid gateway is of the other address family than the prefix (an IPv4-mapped
// gateway counts as IPv6).
func (b *Builder) Insert(p netip.Prefix, h NextHop) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: %v", ErrInvalidPrefix, p)
	}
	p = p.Masked()
	if h.Gateway.IsValid() {
		h.Gateway = h.Gateway.WithZone("")
		if h.Gateway.Is4() != p.Addr().Is4() {
			return fmt.Errorf("%w: %v via %v", ErrGatewayFamily, p, h.Gateway)
		}
	}
	h.Prefix = p
	if b.routes == nil {
		b.routes = make(map[netip.Prefix]NextHop)
	}
	b.routes[p] = h
	return nil
}

// Delete removes the route to p (normalized with Masked) and reports whether it was there.
func (b *Builder) Delete(p netip.Prefix) bool {
	if !p.IsValid() {
		return false
	}
	p = p.Masked()
	_, ok := b.routes[p]
	delete(b.routes, p)
	return ok
}

// Len is the number of routes in the builder.
func (b *Builder) Len() int { return len(b.routes) }

// Build returns an immutable Table holding the builder's current routes. The builder stays
// usable: later inserts and deletes do not affect tables already built. Building costs
// time linear in the number of routes.
func (b *Builder) Build() *Table {
	routes := make([]NextHop, 0, len(b.routes))
	for _, h := range b.routes {
		routes = append(routes, h)
	}
	slices.SortFunc(routes, func(x, y NextHop) int { return comparePrefix(x.Prefix, y.Prefix) })
	t := &Table{routes: routes}
	var v4, v6 []int32
	for i, h := range routes {
		if h.Prefix.Addr().Is4() {
			v4 = append(v4, int32(i))
		} else {
			v6 = append(v6, int32(i))
		}
	}
	t.v4.build(routes, v4)
	t.v6.build(routes, v6)
	return t
}

// comparePrefix orders IPv4 before IPv6, then by address, then shorter first.
func comparePrefix(x, y netip.Prefix) int {
	if c := x.Addr().Compare(y.Addr()); c != 0 {
		return c
	}
	return x.Bits() - y.Bits()
}

// Table is an immutable routing table. The nil *Table is empty.
type Table struct {
	routes []NextHop // sorted by comparePrefix; trie values index into it
	v4, v6 trie
}

// Builder returns a new Builder holding the table's routes, to derive a changed table.
func (t *Table) Builder() *Builder {
	b := &Builder{routes: make(map[netip.Prefix]NextHop, t.Len())}
	if t != nil {
		for _, h := range t.routes {
			b.routes[h.Prefix] = h
		}
	}
	return b
}

// Len is the number of routes in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.routes)
}

// Routes returns a copy of the table's routes, IPv4 first, each family ordered by
// address and then by prefix length.
func (t *Table) Routes() []NextHop {
	if t == nil {
		return nil
	}
	return slices.Clone(t.routes)
}

// Lookup returns the next hop of the longest prefix that contains a, and false when no
// route matches (or a is invalid). It does not allocate.
func (t *Table) Lookup(a netip.Addr) (NextHop, bool) {
	if t == nil || !a.IsValid() {
		return NextHop{}, false
	}
	var i int32
	if a.Is4() {
		b := a.As4()
		i = t.v4.lookup(b[:])
	} else {
		b := a.As16()
		i = t.v6.lookup(b[:])
	}
	if i < 0 {
		return NextHop{}, false
	}
	return t.routes[i], true
}
