package conntrack

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"ulb/router/header"
)

// benchFlow returns the i-th of many distinct half-NAT TCP flows (clients spread over
// 192.0.2.0/24 and 2^16 ports, four servers).
func benchFlow(i int) Flow {
	c := netip.AddrFrom4([4]byte{192, 0, 2, byte(i >> 16)})
	s := netip.AddrFrom4([4]byte{203, 0, 113, byte(i & 3)})
	port := uint16(i)
	f := Flow{Orig: MakeTuple(c, vip, port, 80, ProtoTCP), Reply: MakeTuple(s, c, 8080, port, ProtoTCP)}
	f.Account(Original, header.TCPFlagSYN, 60)
	f.Account(Original, header.TCPFlagACK, 52)
	return f
}

func fill(tb testing.TB, n int) *Table {
	clk := newClock()
	t := New(Config{Capacity: n + n/8 + 4096, Now: clk.Now})
	for i := range n {
		if err := t.Insert(benchFlow(i)); err != nil {
			tb.Fatalf("fill %d: %v", i, err)
		}
	}
	return t
}

func TestZeroAllocs(t *testing.T) {
	tb := fill(t, 5000)
	f := benchFlow(1234)
	miss := benchFlow(999999)
	cases := map[string]func(){
		"Lookup orig":  func() { tb.Lookup(f.Orig, header.TCPFlagACK, 100) },
		"Lookup reply": func() { tb.Lookup(f.Reply, header.TCPFlagACK, 100) },
		"Lookup miss":  func() { tb.Lookup(miss.Orig, header.TCPFlagSYN, 60) },
		"Get":          func() { tb.Get(f.Reply) },
		"Insert+Delete": func() {
			if err := tb.Insert(miss); err != nil {
				t.Fatal(err)
			}
			tb.Delete(miss.Reply)
		},
		"Expire": func() { tb.Expire() },
	}
	for name, fn := range cases {
		if a := testing.AllocsPerRun(1000, fn); a != 0 {
			t.Errorf("%s: %v allocs per call", name, a)
		}
	}
	// Expiry that removes flows does not allocate either (OnExpire aside).
	clk := newClock()
	et := New(Config{Capacity: 100, Shards: 1, Now: clk.Now, OnExpire: func(Flow) {}})
	u := halfNAT(1, ProtoUDP)
	if a := testing.AllocsPerRun(200, func() {
		if err := et.Insert(u); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		if et.Expire() != 1 {
			t.Fatal("not expired")
		}
	}); a != 0 {
		t.Errorf("Insert+Expire: %v allocs", a)
	}
}

var sizes = []int{1_000, 100_000, 1_000_000}

var tables = map[int]*Table{}

func sized(b *testing.B, n int) *Table {
	if t, ok := tables[n]; ok {
		return t
	}
	t := fill(b, n)
	tables[n] = t
	return t
}

// BenchmarkLookup looks up existing flows in random order, alternating directions.
func BenchmarkLookup(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			t := sized(b, n)
			order := make([]Tuple, 1<<16)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range order {
				f := benchFlow(rng.IntN(n))
				order[i] = f.Tuple(Direction(i & 1))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, _, ok := t.Lookup(order[i&(len(order)-1)], header.TCPFlagACK, 100); !ok {
					b.Fatal("miss")
				}
			}
		})
	}
}

// BenchmarkLookupParallel runs lookups from GOMAXPROCS goroutines on the 1M table.
func BenchmarkLookupParallel(b *testing.B) {
	const n = 1_000_000
	t := sized(b, n)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 3))
		for i := 0; pb.Next(); i++ {
			f := benchFlow(rng.IntN(n))
			if _, _, ok := t.Lookup(f.Tuple(Direction(i&1)), header.TCPFlagACK, 100); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkInsert inserts new flows into a table of the given size; every 1024 inserts the
// timer stops while they are deleted again, so the table stays at its size.
func BenchmarkInsert(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			t := fill(b, n)
			const batch = 1024
			var pending [batch]Tuple
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f := benchFlow(n + i%(1<<22))
				if err := t.Insert(f); err != nil {
					b.Fatal(err)
				}
				pending[i%batch] = f.Orig
				if i%batch == batch-1 || i == b.N-1 {
					b.StopTimer()
					for _, tu := range pending[:i%batch+1] {
						t.Delete(tu)
					}
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkChurn inserts a new flow and deletes it again per iteration: the cost of one
// connection's Insert plus its removal.
func BenchmarkChurn(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			t := fill(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				f := benchFlow(n + i%(1<<22))
				if err := t.Insert(f); err != nil {
					b.Fatal(err)
				}
				t.Delete(f.Orig)
			}
		})
	}
}

// BenchmarkMillionFlows reports the heap bytes per flow of a table holding 1M flows, and the
// cost of a garbage collection with it alive: the longest stop-the-world pause and the wall
// time of a forced cycle (and, for scale, that of a cycle before the table exists). A map[Tuple]*Flow of the same flows is measured for comparison.
func BenchmarkMillionFlows(b *testing.B) {
	const n = 1_000_000
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	gcCost := func() (pause, cycle, cpu time.Duration) {
		var before, after debug.GCStats
		debug.ReadGCStats(&before)
		metrics.Read(gcCPU)
		cpu0 := gcCPU[0].Value.Float64()
		const rounds = 5
		start := time.Now()
		for range rounds {
			runtime.GC()
		}
		cycle = time.Since(start) / rounds
		metrics.Read(gcCPU)
		cpu = time.Duration((gcCPU[0].Value.Float64() - cpu0) / rounds * 1e9)
		debug.ReadGCStats(&after)
		// Pause lists the most recent cycles first: take those of the forced rounds.
		for _, p := range after.Pause[:min(len(after.Pause), int(after.NumGC-before.NumGC))] {
			pause = max(pause, p)
		}
		return pause, cycle, cpu
	}
	for range b.N {
		h0 := heap()
		_, empty, _ := gcCost()
		b.ReportMetric(float64(empty.Nanoseconds()), "gc-cycle-empty-ns")
		t := fill(b, n)
		h1 := heap()
		pause, cycle, cpu := gcCost()
		b.ReportMetric(float64(cpu.Nanoseconds()), "gc-cpu-ns")
		b.ReportMetric(float64(h1-h0)/n, "bytes/flow")
		b.ReportMetric(float64(pause.Nanoseconds()), "gc-pause-ns")
		b.ReportMetric(float64(cycle.Nanoseconds()), "gc-cycle-ns")
		runtime.KeepAlive(t)
		t = nil

		m := make(map[Tuple]*Flow, 2*n)
		for i := range n {
			f := benchFlow(i)
			p := &f
			m[f.Orig], m[f.Reply] = p, p
		}
		h2 := heap()
		_, mcycle, mcpu := gcCost()
		b.ReportMetric(float64(mcpu.Nanoseconds()), "map-gc-cpu-ns")
		b.ReportMetric(float64(h2-h0)/n, "map-bytes/flow")
		b.ReportMetric(float64(mcycle.Nanoseconds()), "map-gc-cycle-ns")
		runtime.KeepAlive(m)
	}
}
