package fib

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// The trie has a stride of 8 bits: a node at depth d consumes byte d of the address.
// A node stores the prefixes that end inside its byte (in-node length 0..8, as in the
// Allotment Routing Table: prefix p of in-node length l has index 1<<l + p>>(8-l), so the
// indexes form a complete binary tree of 511 slots) and up to 256 children, one per value
// of its byte. Both sets are bitmaps whose values are packed in order, found by popcount:
// a node is 128 bytes whatever its fill. A child subtree holding a single route is stored
// as a leaf (the prefix itself) instead of a chain of nodes.
//
// A route of length L lives at depth (L-1)/8 (depth 0 for L = 0), with in-node length
// L - 8*depth.
type trie struct {
	nodes     []node  // nodes[0] is the root; empty when the family has no route
	pfxRoutes []int32 // per node, from pfxBase: route indexes in prefix-index order
	kidRefs   []int32 // per node, from kidBase: child node index, or ^leaf index
	leaves    []leaf
}

type node struct {
	pfx     [8]uint64 // bit i set: prefix index i (1..511) holds a route
	kid     [4]uint64 // bit o set: byte value o has a child
	pfxRank [8]uint16 // set bits of pfx in the words before each word
	kidRank [4]uint16 // set bits of kid in the words before each word
	pfxBase int32
	kidBase int32
}

// leaf is a route that is alone in its subtree: the masked prefix as a 128-bit value and
// mask (IPv4 in the top 32 bits of hi).
type leaf struct {
	hi, lo   uint64
	mhi, mlo uint64
	route    int32
}

// ancestors[o] has the bits of the 9 prefix indexes that contain byte value o: the
// in-node prefixes of length 8, 7, ... 0 on its path.
var ancestors = func() (a [256][8]uint64) {
	for o := range 256 {
		for i := 256 + o; i > 0; i >>= 1 {
			a[o][i>>6] |= 1 << (i & 63)
		}
	}
	return a
}()

// addrBits packs an address of 4 or 16 bytes as a 128-bit value, IPv4 in the top bits.
func addrBits(b []byte) (hi, lo uint64) {
	if len(b) == 4 {
		return uint64(binary.BigEndian.Uint32(b)) << 32, 0
	}
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func maskBits(n int) (hi, lo uint64) {
	switch {
	case n == 0:
		return 0, 0
	case n <= 64:
		return ^uint64(0) << (64 - n), 0
	default:
		return ^uint64(0), ^uint64(0) << (128 - n)
	}
}

func prefixBytes(p netip.Prefix) []byte {
	if p.Addr().Is4() {
		b := p.Addr().As4()
		return b[:]
	}
	b := p.Addr().As16()
	return b[:]
}

// build fills the trie with the routes idx (indexes into routes, sorted by address).
func (t *trie) build(routes []NextHop, idx []int32) {
	if len(idx) == 0 {
		return
	}
	t.buildNode(routes, idx, 0)
}

type slotRoute struct {
	slot  int
	route int32
}

func (t *trie) buildNode(routes []NextHop, idx []int32, depth int) int32 {
	ni := int32(len(t.nodes))
	t.nodes = append(t.nodes, node{})
	var n node

	// Routes ending in this node's byte; the rest, still sorted by address, go to children.
	var here []slotRoute
	deeper := make([]int32, 0, len(idx))
	for _, r := range idx {
		p := routes[r].Prefix
		l := p.Bits() - 8*depth
		if l > 8 {
			deeper = append(deeper, r)
			continue
		}
		o := int(prefixBytes(p)[depth])
		slot := 1<<l + o>>(8-l)
		here = append(here, slotRoute{slot, r})
	}
	// Slots are distinct (prefixes are), so an insertion sort by slot is enough and cheap.
	for i := 1; i < len(here); i++ {
		for j := i; j > 0 && here[j].slot < here[j-1].slot; j-- {
			here[j], here[j-1] = here[j-1], here[j]
		}
	}
	n.pfxBase = int32(len(t.pfxRoutes))
	for _, h := range here {
		n.pfx[h.slot>>6] |= 1 << (h.slot & 63)
		t.pfxRoutes = append(t.pfxRoutes, h.route)
	}

	// Children: runs of equal byte d among the deeper routes.
	var refs []int32
	for i := 0; i < len(deeper); {
		o := prefixBytes(routes[deeper[i]].Prefix)[depth]
		j := i + 1
		for j < len(deeper) && prefixBytes(routes[deeper[j]].Prefix)[depth] == o {
			j++
		}
		n.kid[o>>6] |= 1 << (o & 63)
		if j-i == 1 {
			r := deeper[i]
			p := routes[r].Prefix
			hi, lo := addrBits(prefixBytes(p))
			mhi, mlo := maskBits(p.Bits())
			refs = append(refs, ^int32(len(t.leaves)))
			t.leaves = append(t.leaves, leaf{hi: hi, lo: lo, mhi: mhi, mlo: mlo, route: r})
		} else {
			refs = append(refs, t.buildNode(routes, deeper[i:j], depth+1))
		}
		i = j
	}
	n.kidBase = int32(len(t.kidRefs))
	t.kidRefs = append(t.kidRefs, refs...)

	var c uint16
	for w := range n.pfx {
		n.pfxRank[w] = c
		c += uint16(bits.OnesCount64(n.pfx[w]))
	}
	c = 0
	for w := range n.kid {
		n.kidRank[w] = c
		c += uint16(bits.OnesCount64(n.kid[w]))
	}
	t.nodes[ni] = n
	return ni
}

// match returns the position, among the node's packed prefixes, of the longest prefix
// in the node that contains byte value o, or -1.
func (n *node) match(o byte) int32 {
	anc := &ancestors[o]
	// The ancestors of slot 256+o sit in word 4+o/64 (length 8), word 2+o/128 (length 7),
	// word 1 (length 6) and word 0 (lengths 0..5); a higher set bit is a longer prefix.
	w := 4 + int(o>>6)
	m := n.pfx[w] & anc[w]
	if m == 0 {
		w = 2 + int(o>>7)
		m = n.pfx[w] & anc[w]
		if m == 0 {
			w = 1
			m = n.pfx[1] & anc[1]
			if m == 0 {
				w = 0
				m = n.pfx[0] & anc[0]
				if m == 0 {
					return -1
				}
			}
		}
	}
	top := 63 - bits.LeadingZeros64(m)
	below := n.pfx[w] & (1<<top - 1)
	return int32(n.pfxRank[w]) + int32(bits.OnesCount64(below))
}

// lookup returns the route index of the longest match for the address bytes b, or -1.
func (t *trie) lookup(b []byte) int32 {
	if len(t.nodes) == 0 {
		return -1
	}
	best := int32(-1)
	ni := int32(0)
	for d := range b {
		n := &t.nodes[ni]
		o := b[d]
		if r := n.match(o); r >= 0 {
			best = t.pfxRoutes[n.pfxBase+r]
		}
		w, bit := o>>6, uint64(1)<<(o&63)
		if n.kid[w]&bit == 0 {
			break
		}
		k := int32(n.kidRank[w]) + int32(bits.OnesCount64(n.kid[w]&(bit-1)))
		ref := t.kidRefs[n.kidBase+k]
		if ref < 0 {
			lf := &t.leaves[^ref]
			hi, lo := addrBits(b)
			if hi&lf.mhi == lf.hi && lo&lf.mlo == lf.lo {
				best = lf.route
			}
			break
		}
		ni = ref
	}
	return best
}
