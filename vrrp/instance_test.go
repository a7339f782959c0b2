package vrrp

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewRejects(t *testing.T) {
	bad := map[string]func(*Config){
		"version 4":        func(c *Config) { c.Version = 4 },
		"VRID 0":           func(c *Config) { c.VRID = 0 },
		"priority 0":       func(c *Config) { c.Priority = 0 },
		"no output":        func(c *Config) { c.Out = nil },
		"no address":       func(c *Config) { c.Addresses = nil },
		"no primary":       func(c *Config) { c.Primary = netip.Addr{} },
		"v3 interval 5ms":  func(c *Config) { c.Interval = 5 * time.Millisecond },
		"v2 interval 1.5s": func(c *Config) { c.Version, c.Interval = 2, 1500*time.Millisecond },
		"v2 IPv6": func(c *Config) {
			c.Version, c.Primary, c.Addresses = 2, netip.MustParseAddr("fe80::1"), addrs("2001:db8::1")
		},
		"IPv6 global source": func(c *Config) { c.Primary, c.Addresses = netip.MustParseAddr("2001:db8::2"), addrs("2001:db8::1") },
		"mixed families":     func(c *Config) { c.Addresses = addrs("192.0.2.1", "2001:db8::1") },
		"duplicate address":  func(c *Config) { c.Addresses = addrs("192.0.2.1", "192.0.2.1") },
		"mcast family":       func(c *Config) { c.Mcast = GroupIPv6 },
		"negative delay":     func(c *Config) { c.PreemptDelay = -time.Second },
	}
	for name, mod := range bad {
		cfg := baseConfig()
		cfg.Out = &recorder{}
		mod(&cfg)
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestTimerMath checks Skew_Time and Master_Down_Interval: version 3 scales the skew
// by the interval, version 2 counts it in seconds.
func TestTimerMath(t *testing.T) {
	tests := []struct {
		version uint8
		prio    uint8
		iv      time.Duration
		down    time.Duration // 3 * interval + skew
	}{
		{3, 100, time.Second, 3*time.Second + 609375*time.Microsecond},                  // 156/256 s
		{3, 200, 100 * time.Millisecond, 300*time.Millisecond + 21875*time.Microsecond}, // 56*10cs/256
		{3, 100, 3 * time.Second, 9*time.Second + 1828125*time.Microsecond},             // 156*3 s/256
		{3, 254, 10 * time.Millisecond, 30*time.Millisecond + 78125*time.Nanosecond},
		{2, 100, time.Second, 3*time.Second + 609375*time.Microsecond},
		{2, 100, 3 * time.Second, 9*time.Second + 609375*time.Microsecond}, // not scaled
		{2, 1, time.Second, 3*time.Second + 996093750*time.Nanosecond},
	}
	for _, tt := range tests {
		in, _ := newInst(t, func(c *Config) { c.Version, c.Priority, c.Interval = tt.version, tt.prio, tt.iv })
		in.Start(t0)
		if got := in.NextTimeout().Sub(t0); got != tt.down {
			t.Errorf("v%d prio %d interval %v: Master_Down_Interval %v, want %v", tt.version, tt.prio, tt.iv, got, tt.down)
		}
	}
}

// TestLearnInterval: a version 3 backup takes the master's interval; version 2 drops
// an advert whose interval differs.
func TestLearnInterval(t *testing.T) {
	in, _ := newInst(t, nil)
	in.Start(t0)
	now := t0.Add(time.Second)
	in.Receive(now, higher4, 255, peerAdvert(t, in, higher4, 150, 2*time.Second))
	want := now.Add(6*time.Second + 156*2*time.Second/256)
	if got := in.NextTimeout(); !got.Equal(want) {
		t.Errorf("v3: down timer %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	if inf := in.Info(); inf.MasterAdverInterval != 2*time.Second || inf.Master != higher4 || inf.MasterPriority != 150 {
		t.Errorf("info %+v", inf)
	}

	in2, _ := newInst(t, func(c *Config) { c.Version = 2 })
	in2.Start(t0)
	before := in2.NextTimeout()
	in2.Receive(now, higher4, 255, peerAdvert(t, in2, higher4, 150, 2*time.Second))
	if in2.Counters().Drops[DropInterval] != 1 || !in2.NextTimeout().Equal(before) {
		t.Errorf("v2 interval mismatch not dropped: %+v", in2.Counters())
	}
	in2.Receive(now, higher4, 255, peerAdvert(t, in2, higher4, 150, time.Second))
	if in2.Counters().AdvertsReceived != 1 || in2.NextTimeout().Equal(before) {
		t.Errorf("v2 matching advert not accepted: %+v", in2.Counters())
	}
}

// TestStateTable walks the rows of RFC 9568 section 6.4 (and RFC 3768's, where they
// are the same) one by one.
func TestStateTable(t *testing.T) {
	const iv = time.Second
	toBackup := func(in *Instance, now time.Time) { in.Start(now) }
	toMaster := func(in *Instance, now time.Time) { in.Start(now); in.Tick(in.NextTimeout()) }
	type row struct {
		name    string
		setup   func(*Config)
		reach   func(*Instance, time.Time)
		event   func(t *testing.T, in *Instance, now time.Time)
		sent    []uint8    // priorities of the adverts the event sends
		trans   [][2]State // transitions the event makes
		state   State
		timeout time.Duration // NextTimeout - now, -1 for the zero time
	}
	recv := func(src netip.Addr, prio uint8) func(*testing.T, *Instance, time.Time) {
		return func(t *testing.T, in *Instance, now time.Time) {
			in.Receive(now, src, 255, peerAdvert(t, in, src, prio, iv))
		}
	}
	mdi := func(prio int) time.Duration { return 3*iv + time.Duration(256-prio)*iv/256 }
	skew := func(prio int) time.Duration { return time.Duration(256-prio) * iv / 256 }
	rows := []row{
		{name: "init: startup, owner", setup: func(c *Config) { c.Priority = 255 },
			event: func(_ *testing.T, in *Instance, now time.Time) { in.Start(now) },
			sent:  []uint8{255}, trans: [][2]State{{Initialize, Master}}, state: Master, timeout: iv},
		{name: "init: startup, not owner",
			event: func(_ *testing.T, in *Instance, now time.Time) { in.Start(now) },
			trans: [][2]State{{Initialize, Backup}}, state: Backup, timeout: mdi(100)},
		{name: "backup: shutdown", reach: toBackup,
			event: func(_ *testing.T, in *Instance, now time.Time) { in.Shutdown(now) },
			trans: [][2]State{{Backup, Initialize}}, state: Initialize, timeout: -1},
		{name: "backup: master down timer fires", reach: toBackup,
			event: func(_ *testing.T, in *Instance, now time.Time) { in.Tick(in.NextTimeout()) },
			sent:  []uint8{100}, trans: [][2]State{{Backup, Master}}, state: Master, timeout: mdi(100) - time.Second + iv},
		{name: "backup: priority 0", reach: toBackup, event: recv(higher4, 0),
			state: Backup, timeout: skew(100)},
		{name: "backup: higher priority", reach: toBackup, event: recv(lower4, 150),
			state: Backup, timeout: mdi(100)},
		{name: "backup: equal priority, lower address", reach: toBackup, event: recv(lower4, 100),
			state: Backup, timeout: mdi(100)},
		{name: "backup: lower priority, no preempt", setup: func(c *Config) { c.Preempt = false },
			reach: toBackup, event: recv(higher4, 50), state: Backup, timeout: mdi(100)},
		{name: "backup: lower priority, preempt: discarded", reach: toBackup, event: recv(higher4, 50),
			state: Backup, timeout: mdi(100) - time.Second},
		{name: "master: shutdown", reach: toMaster,
			event: func(_ *testing.T, in *Instance, now time.Time) { in.Shutdown(now) },
			sent:  []uint8{0}, trans: [][2]State{{Master, Initialize}}, state: Initialize, timeout: -1},
		{name: "master: adver timer fires", reach: toMaster,
			event: func(_ *testing.T, in *Instance, now time.Time) { in.Tick(now) },
			sent:  []uint8{100}, state: Master, timeout: iv},
		{name: "master: priority 0", reach: toMaster, event: recv(higher4, 0),
			sent: []uint8{100}, state: Master, timeout: iv},
		{name: "master: higher priority", reach: toMaster, event: recv(lower4, 150),
			trans: [][2]State{{Master, Backup}}, state: Backup, timeout: mdi(100)},
		{name: "master: equal priority, higher address", reach: toMaster, event: recv(higher4, 100),
			trans: [][2]State{{Master, Backup}}, state: Backup, timeout: mdi(100)},
		{name: "master: equal priority, lower address", reach: toMaster, event: recv(lower4, 100),
			sent: []uint8{100}, state: Master, timeout: iv},
		{name: "master: lower priority", reach: toMaster, event: recv(higher4, 50),
			sent: []uint8{100}, state: Master, timeout: iv},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			in, rec := newInst(t, r.setup)
			now := t0
			if r.reach != nil {
				r.reach(in, t0)
				now = t0.Add(time.Second) // the event comes one second into Backup
				if in.State() == Master {
					now = in.NextTimeout() // or when the Adver_Timer is due
				}
			}
			rec.take()
			r.event(t, in, now)
			sent, trans := rec.take()
			if !slices.Equal(prios(sent), r.sent) {
				t.Errorf("sent priorities %v, want %v", prios(sent), r.sent)
			}
			if !slices.Equal(trans, r.trans) {
				t.Errorf("transitions %v, want %v", trans, r.trans)
			}
			if in.State() != r.state {
				t.Errorf("state %v, want %v", in.State(), r.state)
			}
			next := in.NextTimeout()
			switch {
			case r.timeout < 0 && !next.IsZero():
				t.Errorf("timer %v, want none", next)
			case r.timeout >= 0 && !next.Equal(now.Add(r.timeout)):
				t.Errorf("timer now+%v, want now+%v", next.Sub(now), r.timeout)
			}
			for _, a := range sent {
				if !a.IsValid(false) || a.VRID() != 1 || a.Interval() != iv {
					t.Errorf("bad advert % x", []byte(a))
				}
				if ok, _ := a.IsChecksumValid(ours4, GroupIPv4); !ok {
					t.Errorf("bad checksum % x", []byte(a))
				}
			}
		})
	}
}

// TestReceiveChecks sends adverts that fail several checks at once: the first in RFC
// order is the one counted.
func TestReceiveChecks(t *testing.T) {
	type tc struct {
		name  string
		setup func(*Config)
		ttl   uint8
		src   netip.Addr // default higher4
		mod   func(t *testing.T, in *Instance, p []byte) []byte
		want  DropReason
		ok    bool // accepted
	}
	fix := func(in *Instance, p []byte) []byte {
		Advert(p).SetChecksum(in.cfg.Checksum, higher4, in.dst)
		return p
	}
	breakSum := func(p []byte) []byte { p[6] ^= 0xff; return p }
	cases := []tc{
		{name: "ttl first", ttl: 254, mod: func(_ *testing.T, _ *Instance, p []byte) []byte { p[0] = 0x21; return breakSum(p) }, want: DropTTL},
		{name: "version before checksum", mod: func(_ *testing.T, _ *Instance, p []byte) []byte { p[0] = 0x21; return breakSum(p) }, want: DropVersion},
		{name: "empty", mod: func(_ *testing.T, _ *Instance, p []byte) []byte { return p[:0] }, want: DropVersion},
		{name: "short header", mod: func(_ *testing.T, _ *Instance, p []byte) []byte { return p[:7] }, want: DropLength},
		{name: "type", mod: func(_ *testing.T, _ *Instance, p []byte) []byte { p[0] = 0x32; return breakSum(p) }, want: DropType},
		{name: "truncated", mod: func(_ *testing.T, _ *Instance, p []byte) []byte { return p[:len(p)-1] }, want: DropLength},
		{name: "trailing bytes", mod: func(_ *testing.T, in *Instance, p []byte) []byte { return append(p, 0, 0, 0, 0) }, want: DropLength},
		{name: "count zero", mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[3] = 0; return fix(in, p[:8]) }, want: DropCount},
		{name: "checksum before VRID", mod: func(_ *testing.T, _ *Instance, p []byte) []byte { p[1] = 9; return p }, want: DropChecksum},
		{name: "VRID", mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[1] = 9; return fix(in, p) }, want: DropVRID},
		{name: "owner", setup: func(c *Config) { c.Priority = 255 }, want: DropOwner},
		{name: "own advert looped back", src: ours4, want: DropSelf},
		{name: "v3 interval zero", mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[4], p[5] = 0, 0; return fix(in, p) }, want: DropInterval},
		{name: "v3 address list differs: accepted", mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[11] = 99; return fix(in, p) }, ok: true},
		{name: "v3 no pseudo-header: accepted", mod: func(_ *testing.T, in *Instance, p []byte) []byte {
			Advert(p).SetChecksum(NoPseudoHeader, higher4, in.dst)
			return p
		}, ok: true},
		{name: "v2 auth type", setup: func(c *Config) { c.Version = 2 }, mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[4] = 1; return fix(in, p) }, want: DropAuthType},
		{name: "v2 auth before interval", setup: func(c *Config) { c.Version = 2 }, mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[4], p[5] = 1, 2; return fix(in, p) }, want: DropAuthType},
		{name: "v2 interval", setup: func(c *Config) { c.Version = 2 }, mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[5] = 2; return fix(in, p) }, want: DropInterval},
		{name: "v2 address list", setup: func(c *Config) { c.Version = 2 }, mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[11] = 99; return fix(in, p) }, want: DropAddressList},
		{name: "v2 address list from the owner: accepted", setup: func(c *Config) { c.Version = 2 }, mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[2] = 255; p[11] = 99; return fix(in, p) }, ok: true},
		{name: "v2 checksum covers auth data", setup: func(c *Config) { c.Version = 2 }, mod: func(_ *testing.T, in *Instance, p []byte) []byte { p[len(p)-1] = 1; return p }, want: DropChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, _ := newInst(t, c.setup)
			in.Start(t0)
			src := c.src
			if !src.IsValid() {
				src = higher4
			}
			p := peerAdvert(t, in, src, 100, time.Second)
			if c.mod != nil {
				p = c.mod(t, in, p)
			}
			ttl := c.ttl
			if ttl == 0 {
				ttl = 255
			}
			in.Receive(t0.Add(time.Second), src, ttl, p)
			cn := in.Counters()
			if c.ok {
				if cn.AdvertsReceived != 1 || cn.Drops.Total() != 0 {
					t.Fatalf("not accepted: %+v", cn)
				}
				return
			}
			if cn.Drops[c.want] != 1 || cn.Drops.Total() != 1 || cn.AdvertsReceived != 0 {
				t.Fatalf("drops %v, want one %v", cn.Drops, c.want)
			}
		})
	}
	// Counters of the accepted variants.
	in, _ := newInst(t, nil)
	in.Start(t0)
	p := peerAdvert(t, in, higher4, 100, time.Second)
	p[11] = 99
	Advert(p).SetChecksum(NoPseudoHeader, higher4, GroupIPv4)
	in.Receive(t0, higher4, 255, p)
	if cn := in.Counters(); cn.AddressListMismatch != 1 || cn.ChecksumNoPseudoHeader != 1 {
		t.Errorf("counters %+v", cn)
	}
	// Not running.
	in, _ = newInst(t, nil)
	in.Receive(t0, higher4, 255, peerAdvert(t, in, higher4, 100, time.Second))
	if in.Counters().Drops[DropNotRunning] != 1 {
		t.Errorf("initialize accepted an advert")
	}
}

func TestDropLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	in, _ := newInst(t, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(&buf, nil)) })
	in.Start(t0)
	for i := range 100 {
		in.Receive(t0.Add(time.Duration(i)*time.Second), higher4, 1, peerAdvert(t, in, higher4, 100, time.Second))
	}
	if n := strings.Count(buf.String(), "reason=ttl"); n != 2 { // at 0 s and 60 s
		t.Errorf("%d log lines for 100 drops in 100 s:\n%s", n, buf.String())
	}
	if in.Counters().Drops[DropTTL] != 100 {
		t.Errorf("drops %v", in.Counters().Drops)
	}
}

// TestPreempt: a higher-priority backup takes over from a lower master only with
// preempt; the delay holds it off as keepalived's preempt_delay does.
func TestPreempt(t *testing.T) {
	run := func(preempt bool, delay time.Duration) (*Instance, time.Time) {
		in, _ := newInst(t, func(c *Config) { c.Priority, c.Preempt, c.PreemptDelay = 200, preempt, delay })
		in.Start(t0)
		var took time.Time
		for ms := 0; ms <= 40000; ms += 10 {
			now := t0.Add(time.Duration(ms) * time.Millisecond)
			if ms%1000 == 500 { // the lower master advertises every second
				in.Receive(now, higher4, 255, peerAdvert(t, in, higher4, 100, time.Second))
			}
			if d := in.NextTimeout(); !d.IsZero() && !d.After(now) {
				in.Tick(now)
			}
			if took.IsZero() && in.State() == Master {
				took = now
			}
		}
		return in, took
	}
	if _, took := run(false, 0); !took.IsZero() {
		t.Errorf("no preempt: took over at %v", took.Sub(t0))
	}
	mdi := 3*time.Second + 56*time.Second/256
	_, took := run(true, 0)
	// First lower advert at 0.5 s is ignored; the down timer from startup fires.
	if want := t0.Add(mdi); took.Sub(want) < 0 || took.Sub(want) > 10*time.Millisecond {
		t.Errorf("preempt: took over at %v, want %v", took.Sub(t0), mdi)
	}
	in, took := run(true, 10*time.Second)
	// The delay starts at the first lower advert (0.5 s) and ends at 10.5 s; the
	// advert at 10.5 s is the first ignored, so the timer set at 9.5 s fires.
	if want := t0.Add(9500*time.Millisecond + mdi); took.Sub(want) < 0 || took.Sub(want) > 10*time.Millisecond {
		t.Errorf("preempt_delay 10s: took over at %v, want %v", took.Sub(t0), want.Sub(t0))
	}
	if in.Counters().Drops[DropLowerPriority] == 0 {
		t.Error("lower-priority adverts not counted")
	}

	// A higher-priority advert stops the delay; the next lower master starts it again.
	in, _ = newInst(t, func(c *Config) { c.Priority, c.PreemptDelay = 200, 5*time.Second })
	in.Start(t0)
	in.Receive(t0.Add(time.Second), higher4, 255, peerAdvert(t, in, higher4, 100, time.Second))
	in.Receive(t0.Add(7*time.Second), higher4, 255, peerAdvert(t, in, higher4, 250, time.Second))
	in.Receive(t0.Add(8*time.Second), higher4, 255, peerAdvert(t, in, higher4, 100, time.Second))
	in.Receive(t0.Add(9*time.Second), higher4, 255, peerAdvert(t, in, higher4, 100, time.Second))
	if in.Counters().Drops[DropLowerPriority] != 0 {
		t.Errorf("delay did not restart: %v", in.Counters().Drops)
	}
}

// TestOwner: priority 255 is master at once, drops adverts, keeps 255 whatever the
// tracking says, and its adverts make a backup yield.
func TestOwner(t *testing.T) {
	in, rec := newInst(t, func(c *Config) { c.Priority = 255; c.Addresses = []netip.Addr{ours4} })
	in.Start(t0)
	if in.State() != Master || !in.AcceptMode() || !in.Owner() {
		t.Fatalf("owner: state %v accept %v", in.State(), in.AcceptMode())
	}
	in.Receive(t0, higher4, 255, peerAdvert(t, in, higher4, 255, time.Second))
	if in.Counters().Drops[DropOwner] != 1 || in.State() != Master {
		t.Errorf("owner took an advert: %+v", in.Counters())
	}
	in.SetPriorityAdjust(-50)
	if in.Priority() != 255 {
		t.Errorf("owner priority %d", in.Priority())
	}
	if sent, _ := rec.take(); !slices.Equal(prios(sent), []uint8{255}) {
		t.Errorf("sent %v", prios(sent))
	}
	other, _ := newInst(t, func(c *Config) { c.Priority = 254; c.Addresses = []netip.Addr{ours4} })
	if other.AcceptMode() {
		t.Error("accept mode without Accept or ownership")
	}
}

// TestTieBreakIPv6 compares link-local primary addresses.
func TestTieBreakIPv6(t *testing.T) {
	mine := netip.MustParseAddr("fe80::5")
	in, _ := newInst(t, func(c *Config) { c.Primary, c.Addresses = mine, addrs("2001:db8::100") })
	in.Start(t0)
	in.Tick(in.NextTimeout())
	if in.State() != Master || in.VirtualMAC()[4] != 2 || in.Destination() != GroupIPv6 {
		t.Fatalf("state %v vmac %v", in.State(), in.VirtualMAC())
	}
	now := t0.Add(5 * time.Second)
	lowerLL := netip.MustParseAddr("fe80::4").WithZone("eth0")
	in.Receive(now, lowerLL, 255, peerAdvert(t, in, lowerLL.WithZone(""), 100, time.Second))
	if in.State() != Master {
		t.Fatal("lost to a lower address")
	}
	higherLL := netip.MustParseAddr("fe80::6")
	in.Receive(now, higherLL, 255, peerAdvert(t, in, higherLL, 100, time.Second))
	if in.State() != Backup || in.Info().Master != higherLL {
		t.Fatalf("kept master against a higher address: %v", in.State())
	}
}

// TestFastTakeover: a master's priority-0 advert on shutdown makes the backup master
// after Skew_Time, not Master_Down_Interval.
func TestFastTakeover(t *testing.T) {
	l := &lan{now: t0}
	a := baseConfig()
	a.Priority, a.Primary = 200, higher4
	b := baseConfig()
	ma := l.add(t, "a", a)
	mb := l.add(t, "b", b)
	ma.Start(t0)
	mb.Start(t0)
	l.run(t0.Add(10*time.Second), time.Millisecond)
	if got := l.masters(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("masters %v", got)
	}
	stop := l.now
	ma.Shutdown(stop)
	skew := 156 * time.Second / 256
	l.run(stop.Add(skew+5*time.Millisecond), time.Millisecond)
	if got := l.masters(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after shutdown: masters %v (%v)", got, l.log)
	}
	took := mb.Counters().LastTransition.Sub(stop)
	if took < skew || took > skew+3*time.Millisecond {
		t.Errorf("takeover in %v, want Skew_Time %v", took, skew)
	}
}

// TestSplitBrain: with the link cut both become master; when it heals they settle on
// the higher priority within one advert round, and the loser yields.
func TestSplitBrain(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pa, pb     uint8
		wantMaster string
	}{
		{"priority", 150, 100, "a"},
		{"priority reversed", 100, 150, "b"},
		{"equal priority, address", 100, 100, "a"}, // a has the higher address
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &lan{now: t0, cut: true}
			a := baseConfig()
			a.Priority, a.Primary = tc.pa, higher4
			b := baseConfig()
			b.Priority = tc.pb
			ma := l.add(t, "a", a)
			mb := l.add(t, "b", b)
			ma.Start(t0)
			mb.Start(t0)
			l.run(t0.Add(5*time.Second), time.Millisecond)
			if got := l.masters(); len(got) != 2 {
				t.Fatalf("cut link: masters %v", got)
			}
			l.cut = false
			heal := l.now
			l.run(heal.Add(1100*time.Millisecond), time.Millisecond)
			if got := l.masters(); !slices.Equal(got, []string{tc.wantMaster}) {
				t.Fatalf("healed: masters %v, log %v", got, l.log)
			}
			loser := mb
			if tc.wantMaster == "b" {
				loser = ma
			}
			if d := loser.Counters().LastTransition.Sub(heal); d > time.Second+5*time.Millisecond {
				t.Errorf("settled %v after the heal", d)
			}
			l.run(l.now.Add(10*time.Second), 10*time.Millisecond)
			if got := l.masters(); !slices.Equal(got, []string{tc.wantMaster}) {
				t.Fatalf("later: masters %v", got)
			}
		})
	}
}

// TestFault: tracking failure takes a master to Fault with priority 0; the backup
// takes over at once; clearing it brings the node back as backup, and preemption
// makes it master again.
func TestFault(t *testing.T) {
	l := &lan{now: t0}
	a := baseConfig()
	a.Priority, a.Primary = 200, higher4
	ma := l.add(t, "a", a)
	mb := l.add(t, "b", baseConfig())
	ma.Start(t0)
	mb.Start(t0)
	l.run(t0.Add(5*time.Second), time.Millisecond)
	ma.SetFault(true)
	if ma.State() != Fault || ma.Counters().PriorityZeroSent != 1 || !ma.NextTimeout().IsZero() {
		t.Fatalf("fault: %v %+v", ma.State(), ma.Counters())
	}
	l.run(l.now.Add(time.Second), time.Millisecond)
	if got := l.masters(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("masters %v", got)
	}
	ma.SetFault(true) // repeated: nothing changes
	ma.SetFault(false)
	if ma.State() != Fault || ma.NextTimeout().After(l.now) || ma.NextTimeout().IsZero() {
		t.Fatalf("cleared: %v next %v", ma.State(), ma.NextTimeout())
	}
	l.run(l.now.Add(10*time.Millisecond), time.Millisecond)
	if ma.State() != Backup {
		t.Fatalf("cleared fault: %v", ma.State())
	}
	l.run(l.now.Add(5*time.Second), time.Millisecond)
	if got := l.masters(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after recovery: masters %v", got)
	}
	// Fault before Start.
	in, rec := newInst(t, nil)
	in.SetFault(true)
	in.Start(t0)
	if _, tr := rec.take(); !slices.Equal(tr, [][2]State{{Initialize, Fault}}) {
		t.Errorf("transitions %v", tr)
	}
	in.Receive(t0, higher4, 255, peerAdvert(t, in, higher4, 100, time.Second))
	if in.Counters().Drops[DropNotRunning] != 1 {
		t.Error("advert accepted in Fault")
	}
}

// TestPriorityAdjust: a master whose tracking lowers its priority under the backup's
// announces it at once, and the preempting backup takes over.
func TestPriorityAdjust(t *testing.T) {
	l := &lan{now: t0}
	a := baseConfig()
	a.Priority, a.Primary = 200, higher4
	ma := l.add(t, "a", a)
	b := baseConfig()
	b.Priority = 150
	mb := l.add(t, "b", b)
	ma.Start(t0)
	mb.Start(t0)
	l.run(t0.Add(5*time.Second), time.Millisecond)
	sentBefore := ma.Counters().AdvertsSent
	ma.SetPriorityAdjust(-100)
	if ma.Priority() != 100 || ma.Counters().AdvertsSent != sentBefore+1 {
		t.Fatalf("priority %d, sent %d", ma.Priority(), ma.Counters().AdvertsSent-sentBefore)
	}
	l.run(l.now.Add(5*time.Second), time.Millisecond)
	if got := l.masters(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("masters %v", got)
	}
	ma.SetPriorityAdjust(-500)
	if ma.Priority() != 1 {
		t.Errorf("clamped priority %d", ma.Priority())
	}
	ma.SetPriorityAdjust(+500)
	if ma.Priority() != 254 {
		t.Errorf("clamped priority %d", ma.Priority())
	}
}

// TestOutputMayCallBack: an Output that calls the instance does not deadlock.
func TestOutputMayCallBack(t *testing.T) {
	rec := &recorder{}
	cfg := baseConfig()
	cfg.Out = rec
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var seen []State
	rec.then = func(_, to State) {
		seen = append(seen, in.State())
		_ = in.Info()
		if to == Master {
			in.SetPriorityAdjust(10) // queues an advert from inside the callback
		}
	}
	in.Start(t0)
	in.Tick(in.NextTimeout())
	if !slices.Equal(seen, []State{Backup, Master}) {
		t.Errorf("seen %v", seen)
	}
	if sent, _ := rec.take(); !slices.Equal(prios(sent), []uint8{100, 110}) {
		t.Errorf("sent %v", prios(sent))
	}
}

// TestConcurrentReaders runs the state machine while other goroutines read it (for
// go test -race).
func TestConcurrentReaders(t *testing.T) {
	in, _ := newInst(t, nil)
	p := peerAdvert(t, in, higher4, 150, time.Second)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_ = in.Info()
					_ = in.NextTimeout()
				}
			}
		})
	}
	in.Start(t0)
	for i := range 2000 {
		now := t0.Add(time.Duration(i) * time.Second)
		if i%10 == 0 {
			in.Receive(now, higher4, 255, p)
		}
		in.Tick(now)
	}
	close(stop)
	wg.Wait()
}

// TestReceiveAllocs: handling an advert allocates nothing.
func TestReceiveAllocs(t *testing.T) {
	in, _ := newInst(t, nil)
	in.Start(t0)
	p := peerAdvert(t, in, higher4, 150, time.Second)
	bad := append([]byte(nil), p...)
	bad[6] ^= 1
	now := t0
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		in.Receive(now, higher4, 255, p)
		in.Receive(now, higher4, 255, bad)
		in.Tick(now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per advert", allocs)
	}
	m, _ := newInst(t, nil)
	m.cfg.Out = discard{}
	m.Start(t0)
	m.Tick(m.NextTimeout())
	allocs = testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		m.Tick(now) // sends
		m.Receive(now, lower4, 255, peerAdvert50)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per sent advert", allocs)
	}
}

var peerAdvert50 = func() []byte {
	buf := make([]byte, 16)
	BuildAdvert(buf, AdvertFields{Version: 3, VRID: 1, Priority: 50, Interval: time.Second,
		Addresses: []netip.Addr{vip4}, Src: lower4, Dst: GroupIPv4})
	return buf
}()

// discard is an Output that keeps nothing.
type discard struct{}

func (discard) Send([]byte)                 {}
func (discard) OnTransition(from, to State) {}
