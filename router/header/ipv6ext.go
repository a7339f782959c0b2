package header

// IPv6Chain describes the extension-header chain of an IPv6 packet, for the errors a
// node sends about a packet addressed to it (RFC 8200 section 4, RFC 4443 section 3.4).
// Offsets count from the start of the IPv6 header.
type IPv6Chain struct {
	// NextHeaderField is the offset of the Next Header field that names the upper-layer
	// protocol: 6 in the fixed header, else the first octet of the last extension header.
	NextHeaderField int
	// Routing is the offset of the first routing header whose Segments Left is not 0,
	// 0 when there is none.
	Routing int
	// Fragment reports whether the chain holds a fragment header.
	Fragment bool
}

// ICMPv6 parameter problem codes (RFC 4443 section 3.4).
const (
	ICMPv6ErroneousHeader        uint8 = 0
	ICMPv6UnrecognizedNextHeader uint8 = 1
)

// Routing header fields (RFC 8200 section 4.4): next header, header extension length,
// routing type, segments left.
const (
	ipv6RoutingType         = 2
	ipv6RoutingSegmentsLeft = 3
)

// RoutingTypeField is the offset of the Routing Type field of the routing header at
// off, the octet a Parameter Problem about an unrecognised routing type points at.
func RoutingTypeField(off int) int { return off + ipv6RoutingType }

// Chain walks the extension headers of a packet for which UpperLayer reported ok, the
// same way, and describes the chain.
func (b IPv6) Chain() IPv6Chain {
	c := IPv6Chain{NextHeaderField: ipv6NextHeader}
	w := b.walk()
	for IsExtensionHeader(w.proto) {
		at, typ := w.off, w.proto
		if !w.next() {
			break
		}
		if typ == ProtocolFragment {
			c.Fragment = true
		}
		if typ == ProtocolRouting && c.Routing == 0 && b[at+ipv6RoutingSegmentsLeft] != 0 {
			c.Routing = at
		}
		c.NextHeaderField = at
	}
	return c
}
