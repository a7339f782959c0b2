package conntrack

import (
	"testing"
	"time"

	"ulb/router/header"
)

// A SYN-proxied flow's Adjust comes back from Lookup and Get in both directions, is
// replaced by SetAdjust, reaches OnExpire, and leaves the table with its flow; other
// flows carry none.
func TestAdjust(t *testing.T) {
	tb, clk, exp := newTable(t, Config{Capacity: 100, Shards: 4})
	f := halfNAT(40000, ProtoTCP)
	f.State = StateSynRecv
	f.Adjust = Adjust{Flags: AdjustPending | AdjustTimestamps, Seq: 0xdeadbeef, TS: 77}
	if err := tb.Insert(f); err != nil {
		t.Fatal(err)
	}
	plain := halfNAT(40001, ProtoTCP)
	plain.Account(Original, header.TCPFlagSYN, 0)
	if err := tb.Insert(plain); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := tb.Get(f.Orig); got.Adjust != f.Adjust {
		t.Errorf("Get: %+v, want %+v", got.Adjust, f.Adjust)
	}
	if got, dir, _ := tb.Lookup(f.Reply, header.TCPFlagSYN|header.TCPFlagACK, 60); dir != Reply || got.Adjust != f.Adjust {
		t.Errorf("Lookup of the reply: %v %+v", dir, got.Adjust)
	}
	if got, _, _ := tb.Get(plain.Orig); got.Adjust != (Adjust{}) {
		t.Errorf("a plain flow has %+v", got.Adjust)
	}
	on := Adjust{Flags: AdjustOn | AdjustTimestamps, Seq: 1000, TS: 5, WScale: -2}
	if !tb.SetAdjust(f.Reply, on) {
		t.Fatal("SetAdjust: flow not found")
	}
	if got, _, _ := tb.Lookup(f.Orig, header.TCPFlagACK, 60); got.Adjust != on {
		t.Errorf("after SetAdjust: %+v, want %+v", got.Adjust, on)
	}
	if !tb.SetAdjust(plain.Orig, on) || tb.adjusts.len() != 2 {
		t.Fatalf("SetAdjust on a plain flow: %d adjusts", tb.adjusts.len())
	}
	if tb.SetAdjust(halfNAT(1, ProtoTCP).Orig, on) {
		t.Error("SetAdjust of an unknown flow")
	}
	tb.Delete(plain.Orig)
	if n := tb.adjusts.len(); n != 1 {
		t.Errorf("%d adjusts after Delete, want 1", n)
	}
	clk.Advance(2 * time.Hour)
	for tb.Len() > 0 {
		tb.Expire()
	}
	if n := tb.adjusts.len(); n != 0 {
		t.Errorf("%d adjusts after expiry", n)
	}
	var seen bool
	for _, e := range exp.flows {
		if e.Orig == f.Orig && e.Adjust == on {
			seen = true
		}
	}
	if !seen {
		t.Errorf("OnExpire did not get the Adjust: %+v", exp.flows)
	}
}
