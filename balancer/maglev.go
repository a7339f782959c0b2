package balancer

import (
	"fmt"
	"strings"
)

// MaglevSize is the size of a Maglev lookup table: a prime, and much larger than any
// server count (the paper asks for M ≫ 100·N), so shares differ by well under 1 %.
const MaglevSize = 65537

// maglevProbe bounds how many table entries Pick tries past a full server before it
// walks the server list.
const maglevProbe = 32

// buildMaglev fills a lookup table of size m as in Maglev (Eisenbud et al., NSDI 2016,
// section 3.4): server i's preference list is offset[i], offset[i]+skip[i], ... mod m,
// and the servers take turns claiming their next unclaimed preferred entry until the
// table is full. With weights, each turn gives server i weight[i] of credit and it claims
// one entry per max(weight) of credit it holds: the heaviest server claims one entry a
// turn, the others in proportion, so that the table ends with every share within an
// entry or two of its weight's, whatever the weights (claiming weight[i]/gcd entries a
// turn, as Cilium does, leaves the last turn's cut unfair by up to the largest weight:
// 54 % against 46 % for weights 30000:30001). Equal weights give the paper's table. Every
// weight must be > 0 and m must be prime.
func buildMaglev(offset, skip []uint64, weight []int64, m int) []uint32 {
	const empty = ^uint32(0)
	n := len(offset)
	table := make([]uint32, m)
	for i := range table {
		table[i] = empty
	}
	wmax := int64(0)
	for _, w := range weight {
		wmax = max(wmax, w)
	}
	pos := make([]uint64, n) // the next preference of server i, as a table index
	copy(pos, offset)
	credit := make([]int64, n)
	mm := uint64(m)
	filled := 0
	for {
		for i := range n {
			credit[i] += weight[i]
			for ; credit[i] >= wmax; credit[i] -= wmax {
				c := pos[i]
				for table[c] != empty {
					c = (c + skip[i]) % mm
				}
				table[c] = uint32(i)
				pos[i] = (c + skip[i]) % mm
				filled++
				if filled == m {
					return table
				}
			}
		}
	}
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// maglevTable returns the table for a rule's eligible servers, reusing one built for the
// same servers and weights by the previous snapshot (prev) or by this one (next).
func maglevTable(el []*member, prev, next map[string][]uint32) []uint32 {
	var sb strings.Builder
	for _, m := range el {
		fmt.Fprintf(&sb, "%v/%d/%d,", m.addr, m.port, m.weight)
	}
	key := sb.String()
	if t := next[key]; t != nil {
		return t
	}
	t := prev[key]
	if t == nil {
		offset := make([]uint64, len(el))
		skip := make([]uint64, len(el))
		weight := make([]int64, len(el))
		for i, m := range el {
			offset[i], skip[i] = maglevParams(m.addr, m.port, MaglevSize)
			weight[i] = m.weight
		}
		t = buildMaglev(offset, skip, weight, MaglevSize)
	}
	next[key] = t
	return t
}
