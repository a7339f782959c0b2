package vrrp

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// syncNode is one node of a two-arm pair: an instance outside (VRID 1) and one inside
// (VRID 2), in one sync group.
type syncNode struct {
	out, in *Instance
	group   *SyncGroup
}

func newSyncNode(t *testing.T, outside, inside *lan, name string, prio uint8, last byte) *syncNode {
	t.Helper()
	co := baseConfig()
	co.Name, co.Priority, co.Primary = name+"-out", prio, netip.AddrFrom4([4]byte{192, 0, 2, last})
	ci := baseConfig()
	ci.Name, ci.VRID, ci.Priority = name+"-in", 2, prio
	ci.Primary = netip.AddrFrom4([4]byte{203, 0, 113, last})
	ci.Addresses = addrs("203.0.113.1")
	n := &syncNode{out: outside.add(t, name, co), in: inside.add(t, name, ci)}
	g, err := NewSyncGroup("pair-"+name, n.out, n.in)
	if err != nil {
		t.Fatal(err)
	}
	n.group = g
	return n
}

// both steps two links on one clock.
func both(a, b *lan, until time.Time) {
	for !a.now.After(until) {
		step := a.now.Add(time.Millisecond)
		a.run(a.now, time.Millisecond)
		b.run(b.now, time.Millisecond)
		a.now, b.now = step, step
	}
}

func states(n *syncNode) [2]State { return [2]State{n.out.State(), n.in.State()} }

// TestSyncGroupPair is the Solaris tutorial's failure: one cable of the master is
// pulled. Without a sync group the VIP and the servers' gateway would end up on
// different nodes; with it both move, and come back together.
func TestSyncGroupPair(t *testing.T) {
	outside := &lan{now: t0}
	inside := &lan{now: t0}
	n1 := newSyncNode(t, outside, inside, "n1", 200, 11)
	n2 := newSyncNode(t, outside, inside, "n2", 100, 12)
	for _, n := range []*syncNode{n1, n2} {
		n.out.Start(t0)
		n.in.Start(t0)
	}
	both(outside, inside, t0.Add(6*time.Second))
	if states(n1) != [2]State{Master, Master} || states(n2) != [2]State{Backup, Backup} {
		t.Fatalf("startup: n1 %v n2 %v\n%v\n%v", states(n1), states(n2), outside.log, inside.log)
	}

	// Pull n1's outside cable: its outside instance sees the link down (Fault), and
	// the group takes the inside one along (priority 0 on the inside link).
	outside.cut = true
	pulled := outside.now
	n1.out.SetFault(true)
	if states(n1) != [2]State{Fault, Fault} {
		t.Fatalf("pulled: n1 %v", states(n1))
	}
	both(outside, inside, pulled.Add(5*time.Second))
	if states(n2) != [2]State{Master, Master} {
		t.Fatalf("pulled: n2 %v\n%v\n%v", states(n2), outside.log, inside.log)
	}
	// n2's inside instance got priority 0 at once but waited for the outside one
	// (whose adverts stopped with the cable): both moved at the outside timer.
	if d := n2.in.Counters().LastTransition.Sub(n2.out.Counters().LastTransition); d < 0 || d > time.Millisecond {
		t.Errorf("inside moved %v after outside", d)
	}
	if n1.in.Counters().PriorityZeroSent != 1 {
		t.Errorf("n1 inside sent %d priority-0 adverts", n1.in.Counters().PriorityZeroSent)
	}

	// Plug it back: n1 leaves Fault as backup, preempts, and takes both back.
	outside.cut = false
	n1.out.SetFault(false)
	both(outside, inside, outside.now.Add(6*time.Second))
	if states(n1) != [2]State{Master, Master} || states(n2) != [2]State{Backup, Backup} {
		t.Fatalf("plugged: n1 %v n2 %v\n%v\n%v", states(n1), states(n2), outside.log, inside.log)
	}

	// Kill n1 (no priority 0): n2 takes both after Master_Down_Interval.
	killed := outside.now
	outside.nodes = outside.nodes[1:] // n1 is gone from both links
	inside.nodes = inside.nodes[1:]
	both(outside, inside, killed.Add(5*time.Second))
	if states(n2) != [2]State{Master, Master} {
		t.Fatalf("killed: n2 %v", states(n2))
	}
	mdi := 3*time.Second + 156*time.Second/256
	if d := n2.in.Counters().LastTransition.Sub(killed); d > mdi+time.Second+5*time.Millisecond {
		t.Errorf("takeover %v after the kill", d)
	}
}

// TestSyncGroupRules checks the group's rules on one node, member by member.
func TestSyncGroupRules(t *testing.T) {
	ra, rb := &recorder{}, &recorder{}
	ca := baseConfig()
	ca.Out = ra
	cb := baseConfig()
	cb.VRID, cb.Out, cb.Priority = 2, rb, 150
	a, err := New(ca)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cb)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewSyncGroup("g", a, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSyncGroup("h", a); !errors.Is(err, ErrConfig) {
		t.Errorf("second group: %v", err)
	}
	if g.Name() != "g" || len(g.Members()) != 2 || a.Info().SyncGroup != "g" {
		t.Errorf("group %v %v", g.Name(), g.Members())
	}
	a.Start(t0)
	b.Start(t0)
	// b (priority 150) times out first but waits for a.
	b.Tick(b.NextTimeout())
	if b.State() != Backup {
		t.Fatalf("b went master alone")
	}
	a.Tick(a.NextTimeout())
	if a.State() != Master || b.State() != Master {
		t.Fatalf("a %v b %v", a.State(), b.State())
	}
	ra.take()
	rb.take()
	// a loses to a higher master: b follows, announcing priority 0.
	now := a.NextTimeout()
	a.Receive(now, higher4, 255, peerAdvert(t, a, higher4, 200, time.Second))
	if a.State() != Backup || b.State() != Backup {
		t.Fatalf("a %v b %v", a.State(), b.State())
	}
	if sent, tr := rb.take(); !slices.Equal(prios(sent), []uint8{0}) || !slices.Equal(tr, [][2]State{{Master, Backup}}) {
		t.Errorf("b sent %v transitions %v", prios(sent), tr)
	}
	if _, tr := ra.take(); !slices.Equal(tr, [][2]State{{Master, Backup}}) {
		t.Errorf("a transitions %v (no loop expected)", tr)
	}
	// b's tracking fails: both go to Fault; clearing it brings both back to Backup.
	b.SetFault(true)
	if a.State() != Fault || b.State() != Fault || !a.Info().Fault {
		t.Fatalf("a %v b %v", a.State(), b.State())
	}
	a.SetFault(false) // a's own tracking is fine: stays in Fault for b
	a.Tick(now.Add(time.Second))
	if a.State() != Fault {
		t.Fatalf("a left Fault while b fails")
	}
	b.SetFault(false)
	next := b.NextTimeout()
	if next.IsZero() {
		t.Fatal("b: no recovery tick")
	}
	b.Tick(now.Add(2 * time.Second))
	if a.State() != Backup || b.State() != Backup {
		t.Fatalf("recovered: a %v b %v", a.State(), b.State())
	}
	_, tra := ra.take()
	_, trb := rb.take()
	want := [][2]State{{Backup, Fault}, {Fault, Backup}}
	if !slices.Equal(tra, want) || !slices.Equal(trb, want) {
		t.Errorf("transitions a %v b %v", tra, trb)
	}
	// Joining after Start is refused.
	c, _ := newInst(t, nil)
	c.Start(t0)
	if _, err := NewSyncGroup("late", c); !errors.Is(err, ErrConfig) {
		t.Errorf("late join: %v", err)
	}
}
