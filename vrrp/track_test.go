package vrrp

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	gw := netip.MustParseAddr("198.51.100.1")
	gw2 := netip.MustParseAddr("198.51.100.2")
	tr, err := NewTracker(TrackerConfig{
		Ports:  []TrackPort{{Name: "outside"}, {Name: "inside", Weight: 30}},
		Pings:  []TrackPing{{Address: gw, Count: 3, Weight: 50}, {Address: gw2, Count: 2}},
		Groups: []TrackGroup{{Name: "web", Weight: 20}, {Name: "db"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, fault bool, delta int) {
		t.Helper()
		f, d := tr.Result()
		if f != fault || d != delta {
			t.Errorf("%s: fault %v delta %d, want %v %d", step, f, d, fault, delta)
		}
	}
	check("start", false, 0)
	if !tr.SetPort("inside", false) {
		t.Error("inside down: no change reported")
	}
	check("inside down", false, -30)
	if tr.SetPort("inside", false) {
		t.Error("repeated state reported as a change")
	}
	if tr.SetPort("nonexistent", false) {
		t.Error("unknown port changed the result")
	}
	tr.SetPort("outside", false)
	check("outside down", true, -30)
	tr.SetPort("outside", true)
	tr.SetPort("inside", true)
	check("ports up", false, 0)

	// Three consecutive failures make the gateway down; one reply brings it back.
	for i, want := range []bool{false, false, true} {
		if changed := tr.PingResult(gw, false); changed != want {
			t.Errorf("failure %d: changed %v", i+1, changed)
		}
	}
	check("gateway down", false, -50)
	tr.PingResult(gw, false) // more failures change nothing
	check("gateway still down", false, -50)
	if !tr.PingResult(gw, true) {
		t.Error("reply: no change")
	}
	check("gateway back", false, 0)
	tr.PingResult(gw, false)
	tr.PingResult(gw, false)
	tr.PingResult(gw, true)
	tr.PingResult(gw, false)
	check("failures not consecutive", false, 0)
	tr.PingResult(gw2, false)
	tr.PingResult(gw2, false)
	check("weightless ping down", true, 0)
	tr.PingResult(gw2, true)

	tr.SetGroup("web", false)
	check("web unhealthy", false, -20)
	tr.SetGroup("db", false)
	check("db unhealthy", true, -20)
	tr.SetGroup("db", true)
	tr.SetGroup("web", true)
	check("all healthy", false, 0)

	// Apply hands the result to an instance.
	in, _ := newInst(t, func(c *Config) { c.Priority = 200 })
	in.Start(t0)
	tr.SetPort("inside", false)
	tr.Apply(in)
	if in.Priority() != 170 || in.State() != Backup {
		t.Errorf("applied: priority %d state %v", in.Priority(), in.State())
	}
	tr.SetPort("outside", false)
	tr.Apply(in)
	if in.State() != Fault {
		t.Errorf("applied fault: state %v", in.State())
	}
	tr.SetPort("outside", true)
	tr.SetPort("inside", true)
	tr.Apply(in)
	in.Tick(t0.Add(time.Second))
	if in.Priority() != 200 || in.State() != Backup {
		t.Errorf("cleared: priority %d state %v", in.Priority(), in.State())
	}
}

func TestTrackerRejects(t *testing.T) {
	for name, cfg := range map[string]TrackerConfig{
		"negative weight": {Ports: []TrackPort{{Name: "p", Weight: -1}}},
		"weight 255":      {Groups: []TrackGroup{{Name: "g", Weight: 255}}},
		"ping count 0":    {Pings: []TrackPing{{Address: vip4}}},
		"ping weight":     {Pings: []TrackPing{{Address: vip4, Count: 1, Weight: 300}}},
	} {
		if _, err := NewTracker(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMux(t *testing.T) {
	var m Mux
	a, _ := newInst(t, nil)
	b, _ := newInst(t, func(c *Config) { c.VRID = 2 })
	a6, _ := newInst(t, func(c *Config) { c.Primary, c.Addresses = netip.MustParseAddr("fe80::2"), addrs("2001:db8::1") })
	for _, in := range []*Instance{a, b, a6} {
		if err := m.Add(in); err != nil {
			t.Fatal(err)
		}
		in.Start(t0)
	}
	dup, _ := newInst(t, nil)
	if err := m.Add(dup); !errors.Is(err, ErrConfig) {
		t.Errorf("duplicate VRID: %v", err)
	}
	if len(m.Instances()) != 3 {
		t.Errorf("instances %d", len(m.Instances()))
	}
	now := t0.Add(time.Second)
	m.Receive(now, higher4, GroupIPv4, 255, peerAdvert(t, b, higher4, 150, time.Second))
	ll := netip.MustParseAddr("fe80::9")
	m.Receive(now, ll, GroupIPv6, 255, peerAdvert(t, a6, ll, 150, time.Second))
	if a.Counters().AdvertsReceived != 0 || b.Counters().AdvertsReceived != 1 || a6.Counters().AdvertsReceived != 1 {
		t.Errorf("dispatch: a %d b %d a6 %d", a.Counters().AdvertsReceived, b.Counters().AdvertsReceived, a6.Counters().AdvertsReceived)
	}
	// Unclaimed adverts are counted by their first failing check.
	other, _ := newInst(t, func(c *Config) { c.VRID = 7 })
	p := peerAdvert(t, other, higher4, 100, time.Second)
	m.Receive(now, higher4, GroupIPv4, 255, p)
	m.Receive(now, higher4, GroupIPv4, 64, p)
	bad := append([]byte(nil), p...)
	bad[7] ^= 1
	m.Receive(now, higher4, GroupIPv4, 255, bad)
	m.Receive(now, higher4, GroupIPv4, 255, nil)
	m.Receive(now, higher4, GroupIPv4, 255, p[:5])
	d := m.Drops()
	if d[DropVRID] != 1 || d[DropTTL] != 1 || d[DropChecksum] != 1 || d[DropVersion] != 1 || d[DropLength] != 1 || d.Total() != 5 {
		t.Errorf("mux drops %v", d)
	}
	m.Remove(b)
	m.Receive(now, higher4, GroupIPv4, 255, peerAdvert(t, b, higher4, 150, time.Second))
	if b.Counters().AdvertsReceived != 1 || m.Drops()[DropVRID] != 2 {
		t.Error("removed instance still receives")
	}
}

func TestNames(t *testing.T) {
	for r := DropReason(0); r < NumDropReasons; r++ {
		if r.String() == "" || r.String() == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
	}
	if NumDropReasons.String() != "unknown" || State(9).String() != "UNKNOWN" {
		t.Error("out-of-range names")
	}
	for s, want := range map[State]string{Initialize: "INIT", Backup: "BACKUP", Master: "MASTER", Fault: "FAULT"} {
		if s.String() != want {
			t.Errorf("%d: %s", s, s.String())
		}
	}
	if PseudoHeader.String() != "pseudo-header" || NoPseudoHeader.String() != "no-pseudo-header" {
		t.Error("checksum mode names")
	}
}
