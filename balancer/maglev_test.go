package balancer

import (
	"net/netip"
	"testing"
)

// paperMaglev is the paper's Populate pseudocode (Maglev, NSDI 2016, Pseudocode 1)
// written literally: an explicit permutation table and next[] counters, unweighted.
func paperMaglev(offset, skip []uint64, m int) []int {
	n := len(offset)
	permutation := make([][]uint32, n)
	for i := range n {
		permutation[i] = make([]uint32, m)
		for j := range m {
			permutation[i][j] = uint32((offset[i] + uint64(j)*skip[i]) % uint64(m))
		}
	}
	next := make([]int, n)
	entry := make([]int, m)
	for j := range entry {
		entry[j] = -1
	}
	filled := 0
	for {
		for i := range n {
			c := permutation[i][next[i]]
			for entry[c] >= 0 {
				next[i]++
				c = permutation[i][next[i]]
			}
			entry[c] = i
			next[i]++
			filled++
			if filled == m {
				return entry
			}
		}
	}
}

func paramsOf(addrs []netip.Addr, m int) (offset, skip []uint64) {
	for _, a := range addrs {
		o, s := maglevParams(a, 80, uint64(m))
		offset = append(offset, o)
		skip = append(skip, s)
	}
	return offset, skip
}

func ones(n int) []int64 {
	w := make([]int64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// TestMaglevSmallExample is the construction worked by hand for M = 7 and three
// servers with (offset, skip) = (3, 4), (0, 2), (3, 1): preference lists 3 0 4 1 5 2 6,
// 0 2 4 6 1 3 5 and 3 4 5 6 0 1 2.
func TestMaglevSmallExample(t *testing.T) {
	got := buildMaglev([]uint64{3, 0, 3}, []uint64{4, 2, 1}, ones(3), 7)
	want := []uint32{1, 0, 1, 0, 2, 2, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("table %v, want %v", got, want)
		}
	}
	ref := paperMaglev([]uint64{3, 0, 3}, []uint64{4, 2, 1}, 7)
	for i := range ref {
		if int(got[i]) != ref[i] {
			t.Fatalf("table %v, reference %v", got, ref)
		}
	}
}

func TestMaglevMatchesPaper(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 10, 33} {
		var addrs []netip.Addr
		for i := range n {
			addrs = append(addrs, srv4(i+1))
		}
		for _, m := range []int{251, MaglevSize} {
			offset, skip := paramsOf(addrs, m)
			got := buildMaglev(offset, skip, ones(n), m)
			want := paperMaglev(offset, skip, m)
			for i := range want {
				if int(got[i]) != want[i] {
					t.Fatalf("n=%d m=%d: entry %d is %d, the paper's algorithm gives %d", n, m, i, got[i], want[i])
				}
			}
		}
	}
}

func shares(table []uint32, n int) []int {
	s := make([]int, n)
	for _, e := range table {
		s[e]++
	}
	return s
}

// TestMaglevBalanceAndDisruption checks the table's balance (every server within 1 % of
// M/N) and that removing one of N servers moves about 1/N of the entries: the removed
// server's own, plus a small fraction of the others'.
func TestMaglevBalanceAndDisruption(t *testing.T) {
	for _, n := range []int{5, 10, 20} {
		var addrs []netip.Addr
		for i := range n {
			addrs = append(addrs, srv4(i+1))
		}
		offset, skip := paramsOf(addrs, MaglevSize)
		before := buildMaglev(offset, skip, ones(n), MaglevSize)
		for i, s := range shares(before, n) {
			if want := float64(MaglevSize) / float64(n); float64(s) < want*0.99 || float64(s) > want*1.01 {
				t.Errorf("n=%d: server %d has %d entries, want %.0f ±1%%", n, i, s, want)
			}
		}
		for removed := range n {
			var o2, s2 []uint64
			var idx []uint32 // new index -> old index
			for i := range n {
				if i != removed {
					o2, s2 = append(o2, offset[i]), append(s2, skip[i])
					idx = append(idx, uint32(i))
				}
			}
			after := buildMaglev(o2, s2, ones(n-1), MaglevSize)
			moved, collateral := 0, 0
			for e := range after {
				if idx[after[e]] != before[e] {
					moved++
					if before[e] != uint32(removed) {
						collateral++
					}
				}
			}
			frac := float64(moved) / MaglevSize
			if removed == 0 {
				t.Logf("n=%d: removing one server moves %.4f of entries (1/N = %.4f), %.4f between the others",
					n, frac, 1/float64(n), float64(collateral)/MaglevSize)
			}
			if frac < 1/float64(n)*0.98 || frac > 1.25/float64(n) {
				t.Errorf("n=%d remove %d: %.4f of entries moved, want about 1/N = %.4f", n, removed, frac, 1/float64(n))
			}
			if c := float64(collateral) / MaglevSize; c > 0.25/float64(n) {
				t.Errorf("n=%d remove %d: %.4f of entries moved between remaining servers", n, removed, c)
			}
		}
	}
}

// TestMaglevWeights checks that weights give proportional table shares.
func TestMaglevWeights(t *testing.T) {
	addrs := []netip.Addr{srv4(1), srv4(2), srv4(3)}
	offset, skip := paramsOf(addrs, MaglevSize)
	w := []int64{10, 20, 30}
	s := shares(buildMaglev(offset, skip, w, MaglevSize), 3)
	for i := range s {
		want := float64(MaglevSize) * float64(w[i]) / 60
		if float64(s[i]) < want*0.99 || float64(s[i]) > want*1.01 {
			t.Errorf("weights 1:2:3: shares %v", s)
		}
	}
}

// TestMaglevWeightsExact checks that any weights, large and co-prime ones included (an
// agent's load figures give such), end within two entries of their share.
func TestMaglevWeightsExact(t *testing.T) {
	for _, w := range [][]int64{{30000, 30001}, {1, 1000, 7}, {997, 1009, 1013, 2}, {65536, 1}, {3, 3, 3, 3}} {
		var addrs []netip.Addr
		var sum int64
		for i := range w {
			addrs = append(addrs, srv4(i+1))
			sum += w[i]
		}
		offset, skip := paramsOf(addrs, MaglevSize)
		s := shares(buildMaglev(offset, skip, w, MaglevSize), len(w))
		for i := range s {
			want := float64(MaglevSize) * float64(w[i]) / float64(sum)
			if d := float64(s[i]) - want; d < -2 || d > 2 {
				t.Errorf("weights %v: shares %v; server %d has %d entries, want %.1f", w, s, i, s[i], want)
				break
			}
		}
	}
}

// TestMaglevRuleDisruption checks the same through the Balancer: disabling one of 10
// servers moves about a tenth of the flows, and only those of the disabled server.
func TestMaglevRuleDisruption(t *testing.T) {
	const n, flows = 10, 20000
	b, _ := setup(t, v6rule(rule("web", Maglev, servers(ones10()...))))
	r := mustRule(t, b, "web")
	before := make([]netip.Addr, flows)
	for i := range before {
		p := mustPick(t, r, clientN(i, true), uint16(i), 80)
		before[i] = p.Addr
		b.FlowEnded(r.ID(), p.Server, clientN(i, true), 0, 0)
	}
	gone := r.members[3].addr
	if err := b.DisableServer("web", gone, 0); err != nil {
		t.Fatal(err)
	}
	r = mustRule(t, b, "web")
	moved := 0
	for i := range before {
		p := mustPick(t, r, clientN(i, true), uint16(i), 80)
		if p.Addr == gone {
			t.Fatalf("a flow went to the disabled server")
		}
		if p.Addr != before[i] {
			moved++
		}
	}
	t.Logf("disabling 1 of %d servers moved %.4f of %d flows", n, float64(moved)/flows, flows)
	if frac := float64(moved) / flows; frac < 0.08 || frac > 0.125 {
		t.Errorf("disabling 1 of %d servers moved %.3f of flows, want about %.3f", n, frac, 1.0/n)
	}
}

func ones10() []int { return []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1} }
