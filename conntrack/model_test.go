package conntrack

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// TestAgainstModel drives the table and a plain map model with the same random operations
// over a small universe of tuples (so that tuples collide, clusters form in the index and
// entries are shifted back on delete) and compares every answer.
func TestAgainstModel(t *testing.T) {
	for _, shards := range []int{1, 4} {
		tb, clk, _ := newTable(t, Config{Capacity: 100000, Shards: shards, SweepCalls: 1,
			Timeouts: Timeouts{UDP: 10 * time.Second}})
		for i := range tb.shards { // start tiny so that the index grows and wraps
			tb.shards[i].index = make([]entry, 16)
		}
		const universe = 400
		tuple := func(i int) Tuple {
			return MakeTuple(netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 7)}),
				netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 3)}), uint16(i), uint16(i%5), ProtoUDP)
		}
		type mflow struct {
			orig, reply Tuple
			lastSeen    int64
		}
		flows := map[Tuple]*mflow{} // by orig
		byTuple := map[Tuple]*mflow{}
		rng := rand.New(rand.NewPCG(uint64(shards), 42))
		for op := range 60000 {
			switch r := rng.IntN(100); {
			case r < 45:
				a, b := rng.IntN(universe), rng.IntN(universe)
				f := Flow{Orig: tuple(a)}
				if b%10 != 0 && a != b {
					f.Reply = tuple(b)
				}
				err := tb.Insert(f)
				_, taken := byTuple[f.Orig]
				if !f.Reply.IsZero() {
					_, t2 := byTuple[f.Reply]
					taken = taken || t2
				}
				if taken != errors.Is(err, ErrExists) || (!taken && err != nil) {
					t.Fatalf("op %d: Insert %v/%v: %v, model taken=%v", op, f.Orig, f.Reply, err, taken)
				}
				if err == nil {
					m := &mflow{f.Orig, f.Reply, clk.ns.Load()}
					flows[f.Orig] = m
					byTuple[f.Orig] = m
					if !f.Reply.IsZero() {
						byTuple[f.Reply] = m
					}
				}
			case r < 80:
				tu := tuple(rng.IntN(universe))
				f, dir, ok := tb.Lookup(tu, 0, 1)
				m, mok := byTuple[tu]
				if ok != mok || (ok && (f.Orig != m.orig || f.Reply != m.reply || (dir == Reply) != (tu == m.reply))) {
					t.Fatalf("op %d: Lookup %v: %+v %v %v, model %+v %v", op, tu, f, dir, ok, m, mok)
				}
				if ok {
					m.lastSeen = clk.ns.Load()
				}
			case r < 92:
				tu := tuple(rng.IntN(universe))
				ok := tb.Delete(tu)
				m, mok := byTuple[tu]
				if ok != mok {
					t.Fatalf("op %d: Delete %v: %v, model %v", op, tu, ok, mok)
				}
				if ok {
					delete(flows, m.orig)
					delete(byTuple, m.orig)
					delete(byTuple, m.reply)
				}
			default:
				clk.Advance(time.Duration(rng.IntN(4)) * time.Second)
				tb.Expire()
				now := clk.ns.Load()
				for o, m := range flows {
					if now-m.lastSeen >= int64(10*time.Second) {
						delete(flows, o)
						delete(byTuple, m.orig)
						delete(byTuple, m.reply)
					}
				}
			}
			if tb.Len() != len(flows) {
				t.Fatalf("op %d: Len %d, model %d", op, tb.Len(), len(flows))
			}
		}
		seen := 0
		tb.Range(func(f Flow) bool {
			if m := flows[f.Orig]; m == nil || m.reply != f.Reply {
				t.Fatalf("Range: unknown flow %v", f.Orig)
			}
			seen++
			return true
		})
		if seen != len(flows) {
			t.Fatalf("Range saw %d, model %d", seen, len(flows))
		}
		var n int
		for i := range tb.shards {
			n += tb.shards[i].n
			if len(tb.shards[i].index) == 16 && shards == 1 {
				t.Errorf("index never grew")
			}
		}
		if want := len(byTuple); n != want {
			t.Fatalf("index holds %d entries, model %d tuples", n, want)
		}
	}
}
