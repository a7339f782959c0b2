package nat

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	proxyA = netip.MustParseAddr("203.0.113.50")
	proxyB = netip.MustParseAddr("203.0.113.51")
	proxyC = netip.MustParseAddr("203.0.113.52")
	proxy6 = netip.MustParseAddr("2001:db8::50")
)

func TestNewPortPool(t *testing.T) {
	p, err := NewPortPool(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := p.Range(); lo != 1024 || hi != 65535 {
		t.Fatalf("default range %d-%d", lo, hi)
	}
	for _, r := range [][2]uint16{{0, 10}, {10, 9}} {
		if _, err := NewPortPool(r[0], r[1]); !errors.Is(err, ErrPortRange) {
			t.Errorf("range %v: %v, want ErrPortRange", r, err)
		}
	}
	if err := p.Add(netip.Addr{}); !errors.Is(err, ErrProxyAddress) {
		t.Errorf("Add(invalid) = %v", err)
	}
	if _, ok := p.Get(proxyA); ok {
		t.Error("Get on an address never added")
	}
	if p.Put(proxyA, 2000) {
		t.Error("Put on an address never added")
	}
}

// TestPortPoolExhaust hands out every port of ranges that do and do not end on a word
// boundary, checks none twice and that the pool then refuses, and reuses freed ports.
func TestPortPoolExhaust(t *testing.T) {
	for _, r := range [][2]uint16{{1, 1}, {100, 163}, {100, 164}, {1000, 1300}, {65000, 65535}, {1024, 65535}} {
		p, err := NewPortPool(r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Add(proxyA); err != nil {
			t.Fatal(err)
		}
		size := int(r[1]-r[0]) + 1
		seen := map[uint16]bool{}
		for i := 0; i < size; i++ {
			port, ok := p.Get(proxyA)
			if !ok {
				t.Fatalf("%v: Get %d of %d refused", r, i, size)
			}
			if port < r[0] || port > r[1] || seen[port] {
				t.Fatalf("%v: port %d out of range or handed out twice", r, port)
			}
			seen[port] = true
		}
		if _, ok := p.Get(proxyA); ok {
			t.Fatalf("%v: Get on a full pool", r)
		}
		if p.InUse(proxyA) != size {
			t.Fatalf("%v: InUse %d, want %d", r, p.InUse(proxyA), size)
		}
		// Free two ports; they come back, and nothing else.
		a, b := r[0]+uint16(size/3), r[1]
		if !p.Put(proxyA, a) || (a != b && !p.Put(proxyA, b)) {
			t.Fatalf("%v: Put refused", r)
		}
		if p.Put(proxyA, a) {
			t.Fatalf("%v: second Put of %d accepted", r, a)
		}
		got := map[uint16]bool{}
		for range 2 {
			port, ok := p.Get(proxyA)
			if ok {
				got[port] = true
			}
		}
		if !got[a] || !got[b] || len(got) != len(map[uint16]bool{a: true, b: true}) {
			t.Fatalf("%v: got %v back, want %d and %d", r, got, a, b)
		}
		if r[0] > 1 && p.Put(proxyA, r[0]-1) || r[1] < 65535 && p.Put(proxyA, r[1]+1) {
			t.Fatalf("%v: Put out of range accepted", r)
		}
	}
}

// TestPortPoolReuseLate checks that a freed port is handed out again only after the
// rest of the range.
func TestPortPoolReuseLate(t *testing.T) {
	p, _ := NewPortPool(2000, 2099)
	p.Add(proxyA)
	first, _ := p.Get(proxyA)
	p.Put(proxyA, first)
	for i := 0; i < 99; i++ {
		port, _ := p.Get(proxyA)
		if port == first {
			t.Fatalf("port %d reused after %d other ports", first, i)
		}
		p.Put(proxyA, port)
	}
	if port, _ := p.Get(proxyA); port != first {
		t.Fatalf("after a full turn got %d, want %d", port, first)
	}
}

func TestPortPoolTakeAndReAdd(t *testing.T) {
	p, _ := NewPortPool(3000, 3002)
	p.Add(proxyA)
	if !p.Take(proxyA, 3000) || p.Take(proxyA, 3000) || p.Take(proxyA, 2999) {
		t.Fatal("Take")
	}
	p.Add(proxyA, proxyB) // again: keeps what is in use
	for i := 0; i < 2; i++ {
		if port, ok := p.Get(proxyA); !ok || port == 3000 {
			t.Fatalf("Get = %d %v", port, ok)
		}
	}
	if _, ok := p.Get(proxyA); ok {
		t.Fatal("Get on a full address after re-Add")
	}
	if _, ok := p.Get(proxyB); !ok {
		t.Fatal("Get on an added address")
	}
}

func TestPools(t *testing.T) {
	p, _ := NewPortPool(5000, 5009)
	for _, c := range []struct {
		addrs []netip.Addr
		err   error
	}{
		{nil, ErrNoProxy},
		{[]netip.Addr{proxyA, proxy6}, ErrMixedFamily},
		{[]netip.Addr{proxyA, proxyB, proxyA}, ErrDuplicate},
		{[]netip.Addr{proxyA, {}}, ErrProxyAddress},
	} {
		if _, err := NewPools(p, c.addrs); !errors.Is(err, c.err) {
			t.Errorf("NewPools(%v) = %v, want %v", c.addrs, err, c.err)
		}
	}
	ps, err := NewPools(p, []netip.Addr{proxyA, proxyB, proxyC})
	if err != nil {
		t.Fatal(err)
	}
	// Round-robin: three Gets use three addresses.
	used := map[netip.Addr]int{}
	for i := 0; i < 30; i++ {
		a, port, ok := ps.Get()
		if !ok || port < 5000 || port > 5009 {
			t.Fatalf("Get %d = %v %d %v", i, a, port, ok)
		}
		used[a]++
	}
	if used[proxyA] != 10 || used[proxyB] != 10 || used[proxyC] != 10 {
		t.Fatalf("round-robin spread %v", used)
	}
	if _, _, ok := ps.Get(); ok {
		t.Fatal("Get on full pools")
	}
	// Free ports of B only: both Get and GetFor find them.
	ps.Put(proxyB, 5003)
	ps.Put(proxyB, 5004)
	if a, port, ok := ps.Get(); !ok || a != proxyB || (port != 5003 && port != 5004) {
		t.Fatalf("Get = %v %d %v, want a port of %v", a, port, ok, proxyB)
	}
	if a, _, ok := ps.GetFor(netip.MustParseAddr("198.51.100.1")); !ok || a != proxyB {
		t.Fatalf("GetFor = %v %v, want %v", a, ok, proxyB)
	}
	if len(ps.Addrs()) != 3 {
		t.Fatal("Addrs")
	}
}

// TestPoolsGetFor checks that a client sticks to one proxy address and that clients
// spread over all of them.
func TestPoolsGetFor(t *testing.T) {
	p, _ := NewPortPool(0, 0)
	ps, _ := NewPools(p, []netip.Addr{proxyA, proxyB, proxyC})
	rng := rand.New(rand.NewPCG(1, 2))
	spread := map[netip.Addr]int{}
	for i := 0; i < 300; i++ {
		c := randAddr(rng, true)
		a1, _, _ := ps.GetFor(c)
		a2, _, _ := ps.GetFor(c)
		if a1 != a2 {
			t.Fatalf("client %v got %v then %v", c, a1, a2)
		}
		spread[a1]++
	}
	for _, a := range ps.Addrs() {
		if spread[a] < 50 {
			t.Fatalf("spread over proxies %v", spread)
		}
	}
}

// TestPortPoolConcurrent runs Gets and Puts from several goroutines over a small range
// and checks that no port is ever held twice at once.
func TestPortPoolConcurrent(t *testing.T) {
	p, _ := NewPortPool(10000, 10255)
	ps, _ := NewPools(p, []netip.Addr{proxyA, proxyB})
	var held [2][256]atomic.Int32
	idx := func(a netip.Addr) int {
		if a == proxyA {
			return 0
		}
		return 1
	}
	var wg sync.WaitGroup
	var dup atomic.Int32
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed))
			type lease struct {
				a    netip.Addr
				port uint16
			}
			var mine []lease
			for i := 0; i < 20000; i++ {
				if len(mine) > 0 && (rng.IntN(2) == 0 || len(mine) > 80) {
					k := rng.IntN(len(mine))
					l := mine[k]
					mine[k] = mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					held[idx(l.a)][l.port-10000].Add(-1)
					if !ps.Put(l.a, l.port) {
						dup.Add(1)
					}
					continue
				}
				a, port, ok := ps.Get()
				if !ok {
					continue
				}
				if held[idx(a)][port-10000].Add(1) != 1 {
					dup.Add(1)
				}
				mine = append(mine, lease{a, port})
			}
			for _, l := range mine {
				held[idx(l.a)][l.port-10000].Add(-1)
				ps.Put(l.a, l.port)
			}
		}(uint64(g))
	}
	wg.Wait()
	if dup.Load() != 0 {
		t.Fatalf("%d ports held twice or refused on Put", dup.Load())
	}
	if p.InUse(proxyA) != 0 || p.InUse(proxyB) != 0 {
		t.Fatalf("in use after all Puts: %d %d", p.InUse(proxyA), p.InUse(proxyB))
	}
}

func TestPortPoolAllocs(t *testing.T) {
	p, _ := NewPortPool(0, 0)
	ps, _ := NewPools(p, []netip.Addr{proxyA, proxyB})
	client := netip.MustParseAddr("198.51.100.9")
	a := testing.AllocsPerRun(1000, func() {
		x, port, _ := ps.Get()
		ps.Put(x, port)
		x, port, _ = ps.GetFor(client)
		ps.Put(x, port)
		port, _ = p.Get(proxyA)
		p.Put(proxyA, port)
	})
	if a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

func BenchmarkPortPool(b *testing.B) {
	p, _ := NewPortPool(0, 0)
	ps, _ := NewPools(p, []netip.Addr{proxyA, proxyB, proxyC})
	b.Run("GetPut", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a, port, _ := ps.Get()
			ps.Put(a, port)
		}
	})
	// A nearly full address: one free port in 64512, searched for from the cursor.
	b.Run("GetPutNearlyFull", func(b *testing.B) {
		q, _ := NewPortPool(0, 0)
		q.Add(proxyA)
		for {
			if _, ok := q.Get(proxyA); !ok {
				break
			}
		}
		q.Put(proxyA, 30000)
		b.ReportAllocs()
		for b.Loop() {
			port, _ := q.Get(proxyA)
			q.Put(proxyA, port)
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				a, port, _ := ps.Get()
				ps.Put(a, port)
			}
		})
	})
}
