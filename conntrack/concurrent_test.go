package conntrack

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ulb/router/header"
)

// TestConcurrent runs inserts (some racing for the same tuples), lookups in both directions,
// deletes, expiry, eviction, Range and DeleteIf at once, then checks that the counters, the
// callbacks and the index agree. Run with -race.
func TestConcurrent(t *testing.T) {
	var callbacks atomic.Int64
	clk := newClock()
	tb := New(Config{Capacity: 3000, Shards: 8, Now: clk.Now, SweepCalls: 2,
		Timeouts: Timeouts{UDP: 3 * time.Second, SynRecv: 2 * time.Second},
		OnExpire: func(Flow) { callbacks.Add(1) }})
	const workers, perWorker = 6, 2500
	var wg sync.WaitGroup
	var inserted atomic.Int64
	stop := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Workers pair up on the same client address so that inserts race for tuples.
			c := netip.AddrFrom4([4]byte{192, 0, 2, byte(w / 2)})
			s := netip.AddrFrom4([4]byte{203, 0, 113, byte(w / 2)})
			for i := range perWorker {
				proto := ProtoTCP
				if i%3 == 0 {
					proto = ProtoUDP
				}
				f := Flow{Orig: MakeTuple(c, vip, uint16(i), 80, proto), Reply: MakeTuple(s, c, 80, uint16(i), proto)}
				f.Account(Original, header.TCPFlagSYN, 60)
				err := tb.Insert(f)
				switch {
				case err == nil:
					inserted.Add(1)
				case errors.Is(err, ErrExists), errors.Is(err, ErrFull):
				default:
					t.Errorf("Insert: %v", err)
					return
				}
				tb.Lookup(f.Reply, header.TCPFlagSYN|header.TCPFlagACK, 60)
				tb.Lookup(f.Orig, header.TCPFlagACK, 52)
				tb.Get(f.Reply)
				if i%7 == 0 {
					tb.Delete(f.Reply)
				}
				if i%11 == 0 {
					tb.Lookup(f.Orig, header.TCPFlagRST, 40)
				}
			}
		}()
	}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			clk.Advance(500 * time.Millisecond)
			tb.Expire()
		}
	}()
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tb.Range(func(f Flow) bool { return f.Orig.Proto != 0 })
			tb.DeleteIf(func(f Flow) bool { return f.Orig.SrcPort%13 == 0 })
			tb.Stats()
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()

	st := tb.Stats()
	gone := st.Expired + st.Evicted + st.Deleted
	if int64(st.Inserted) != inserted.Load() {
		t.Errorf("Inserted %d, workers counted %d", st.Inserted, inserted.Load())
	}
	if int64(st.Inserted)-int64(gone) != int64(st.Len) {
		t.Errorf("inserted %d - gone %d != Len %d", st.Inserted, gone, st.Len)
	}
	if int64(gone) != callbacks.Load() {
		t.Errorf("gone %d, OnExpire called %d times", gone, callbacks.Load())
	}
	var sum int64
	for _, n := range st.States {
		sum += n
	}
	if sum != int64(st.Len) {
		t.Errorf("state counts sum to %d, Len %d", sum, st.Len)
	}
	if st.Len > 3000 {
		t.Errorf("Len %d over capacity", st.Len)
	}
	flows, entries := 0, 0
	tb.Range(func(f Flow) bool {
		flows++
		entries += 2
		if g, d, ok := tb.Get(f.Reply); !ok || d != Reply || g.Orig != f.Orig {
			t.Errorf("flow %v not found by its reply", f.Orig)
		}
		if g, d, ok := tb.Get(f.Orig); !ok || d != Original || g.Reply != f.Reply {
			t.Errorf("flow %v not found by its orig", f.Orig)
		}
		return true
	})
	n := 0
	for i := range tb.shards {
		n += tb.shards[i].n
	}
	if flows != st.Len || n != entries {
		t.Errorf("Range %d flows, Len %d; index %d entries, want %d", flows, st.Len, n, entries)
	}
	t.Logf("inserted %d expired %d evicted %d deleted %d exists %d refused %d left %d",
		st.Inserted, st.Expired, st.Evicted, st.Deleted, st.Exists, st.Refused, st.Len)
}
