package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// Addresses of the crossover link in the tests (the own port's are ours4, higher4, ...).
var (
	xOurs4   = netip.MustParseAddr("203.0.113.2")
	xHigher4 = netip.MustParseAddr("203.0.113.3")
	xLower4  = netip.MustParseAddr("203.0.113.1")
)

// linkRecorder is a LinkOutput that keeps what it sends on each link.
type linkRecorder struct {
	recorder
	extra map[int][]Advert
}

func (r *linkRecorder) SendLink(i int, b []byte) {
	r.mu.Lock()
	if r.extra == nil {
		r.extra = map[int][]Advert{}
	}
	r.extra[i] = append(r.extra[i], append(Advert(nil), b...))
	r.mu.Unlock()
}

// newLinked makes a priority-100 backup with one extra link (xOurs4).
func newLinked(t *testing.T, mod func(*Config)) (*Instance, *linkRecorder) {
	t.Helper()
	cfg := baseConfig()
	cfg.Links = []Link{{Name: "xover", Primary: xOurs4}}
	if mod != nil {
		mod(&cfg)
	}
	rec := &linkRecorder{}
	cfg.Out = rec
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in, rec
}

func TestLinksNeedLinkOutput(t *testing.T) {
	cfg := baseConfig()
	cfg.Links = []Link{{Name: "xover", Primary: xOurs4}}
	cfg.Out = &recorder{}
	if _, err := New(cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("an Output without SendLink: err %v, want ErrConfig", err)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:203.0.113.2")} {
		cfg.Links = []Link{{Name: "xover", Primary: bad}}
		cfg.Out = &linkRecorder{}
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("link primary %v: err %v, want ErrConfig", bad, err)
		}
	}
	cfg6 := cfg
	cfg6.Primary = netip.MustParseAddr("fe80::2")
	cfg6.Addresses = []netip.Addr{netip.MustParseAddr("2001:db8::100")}
	cfg6.Links = []Link{{Name: "xover", Primary: netip.MustParseAddr("2001:db8:9::2")}}
	if _, err := New(cfg6); !errors.Is(err, ErrConfig) {
		t.Errorf("IPv6 link primary not link-local: err %v, want ErrConfig", err)
	}
}

// A master sends each advert on every link, from that link's address, with a checksum
// that is right for that source (RFC 9568 §5.1.1.1, §5.2.8).
func TestLinksMasterSendsOnEveryLink(t *testing.T) {
	in, rec := newLinked(t, func(c *Config) { c.Priority = 200 })
	in.Start(t0)
	in.Tick(t0.Add(4 * time.Second)) // master down: master, one advert
	in.Tick(t0.Add(5 * time.Second)) // and one more
	if in.State() != Master {
		t.Fatalf("state %v, want Master", in.State())
	}
	main, _ := rec.take()
	xs := rec.extra[0]
	if len(main) != 2 || len(xs) != 2 {
		t.Fatalf("sent %d on the own port, %d on the crossover; want 2 and 2", len(main), len(xs))
	}
	for i := range xs {
		if ok, _ := xs[i].IsChecksumValid(xOurs4, GroupIPv4); !ok {
			t.Errorf("crossover advert %d: checksum not valid for source %v", i, xOurs4)
		}
		if ok, _ := main[i].IsChecksumValid(ours4, GroupIPv4); !ok {
			t.Errorf("own-port advert %d: checksum not valid for source %v", i, ours4)
		}
		if xs[i].VRID() != 1 || xs[i].Priority() != 200 || xs[i].Address(0, false) != vip4 {
			t.Errorf("crossover advert %d: VRID %d prio %d address %v, want the own port's", i,
				xs[i].VRID(), xs[i].Priority(), xs[i].Address(0, false))
		}
	}
	inf := in.Info()
	if len(inf.Links) != 2 || inf.Links[1].Name != "xover" || inf.Links[0].AdvertsSent != 2 || inf.Links[1].AdvertsSent != 2 {
		t.Fatalf("per-link sent counters %+v, want 2 and 2", inf.Links)
	}
	// Shutdown says goodbye on every link.
	in.Shutdown(t0.Add(6 * time.Second))
	main, _ = rec.take()
	if got := prios(rec.extra[0][2:]); !slices.Equal(got, []uint8{0}) || !slices.Equal(prios(main), []uint8{0}) {
		t.Fatalf("shutdown sent %v / %v, want a priority-0 advert on both links", prios(main), got)
	}
}

// A backup's Master_Down_Timer is reset by the master's adverts on any link: it stays
// backup while any link carries them, and takes over Master_Down_Interval after the
// last one on all links (RFC 9568 §6.4.2).
func TestLinksAdvertOnAnyLinkResetsTimer(t *testing.T) {
	in, _ := newLinked(t, nil)
	in.Start(t0)
	mdi := 3*time.Second + 156*time.Second/256 // priority 100, interval 1s
	now := t0
	// 20 s of adverts, alternating: own port at even seconds, crossover only at odd
	// ones, and the last 10 s on the crossover alone.
	for i := range 20 {
		now = t0.Add(time.Duration(i) * time.Second)
		link, src := 1, xHigher4
		if i%2 == 0 && i < 10 {
			link, src = 0, higher4
		}
		in.ReceiveOn(now, link, src, GroupIPv4, 255, peerAdvert(t, in, src, 200, time.Second))
		in.Tick(now)
		if in.State() != Backup {
			t.Fatalf("at %v: %v, want Backup (adverts still come by link %d)", now.Sub(t0), in.State(), link)
		}
	}
	inf := in.Info()
	if inf.Links[0].AdvertsReceived != 5 || inf.Links[1].AdvertsReceived != 15 {
		t.Fatalf("received per link %d/%d, want 5/15", inf.Links[0].AdvertsReceived, inf.Links[1].AdvertsReceived)
	}
	if !inf.Links[1].LastAdvert.Equal(now) || inf.Links[1].LastFrom != xHigher4 || !inf.Links[0].LastAdvert.Equal(t0.Add(8*time.Second)) {
		t.Fatalf("last adverts %+v", inf.Links)
	}
	if got := in.NextTimeout(); !got.Equal(now.Add(mdi)) {
		t.Fatalf("Master_Down_Timer at %v, want last advert + %v", got.Sub(t0), mdi)
	}
	// Both links silent: master after Master_Down_Interval, not before.
	in.Tick(now.Add(mdi - time.Millisecond))
	if in.State() != Backup {
		t.Fatalf("master before Master_Down_Interval")
	}
	in.Tick(now.Add(mdi))
	if in.State() != Master {
		t.Fatalf("all links silent for Master_Down_Interval: %v, want Master", in.State())
	}
}

// Adverts on an extra link go through the receive checks of RFC 9568 §7.1, counted on
// that link; a failing one does not reset the timer.
func TestLinksExtraLinkValidated(t *testing.T) {
	in, _ := newLinked(t, nil)
	in.Start(t0)
	good := peerAdvert(t, in, xHigher4, 200, time.Second)
	in.ReceiveOn(t0, 1, xHigher4, GroupIPv4, 255, good)
	down := in.NextTimeout()
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1 // checksum
	cases := []struct {
		name string
		src  netip.Addr
		ttl  uint8
		b    []byte
		r    DropReason
	}{
		{"ttl 254", xHigher4, 254, good, DropTTL},
		{"bad checksum", xHigher4, 255, bad, DropChecksum},
		{"checksum of another source", higher4, 255, good, DropChecksum},
		{"our own advert", xOurs4, 255, peerAdvert(t, in, xOurs4, 100, time.Second), DropSelf},
		{"our own port's advert", ours4, 255, peerAdvert(t, in, ours4, 100, time.Second), DropSelf},
		{"short", xHigher4, 255, good[:6], DropLength},
	}
	for i, c := range cases {
		before := in.Counters().Drops[c.r]
		in.ReceiveOn(t0.Add(time.Duration(i+1)*100*time.Millisecond), 1, c.src, GroupIPv4, c.ttl, c.b)
		if got := in.Counters().Drops[c.r] - before; got != 1 {
			t.Errorf("%s: drops[%v] = %d, want 1", c.name, c.r, got)
		}
	}
	if got := in.NextTimeout(); !got.Equal(down) {
		t.Errorf("a dropped advert moved the Master_Down_Timer to %v", got.Sub(t0))
	}
	inf := in.Info()
	if inf.Links[1].Drops != uint64(len(cases)) || inf.Links[1].AdvertsReceived != 1 || inf.Links[0].Drops != 0 {
		t.Errorf("link counters %+v, want %d drops on the crossover", inf.Links, len(cases))
	}
}

// A master steps down on a higher-priority advert on any link (RFC 9568 §6.4.3); an
// equal priority is compared with its own address on the link the advert came by.
func TestLinksMasterStepsDownOnExtraLink(t *testing.T) {
	for _, c := range []struct {
		name string
		src  netip.Addr
		prio uint8
		want State
	}{
		{"higher priority", xLower4, 150, Backup},
		{"lower priority", xHigher4, 50, Master},
		{"equal priority, greater address on the link", xHigher4, 100, Backup},
		{"equal priority, smaller address on the link", xLower4, 100, Master},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, rec := newLinked(t, nil)
			in.Start(t0)
			now := t0.Add(4 * time.Second)
			in.Tick(now)
			if in.State() != Master {
				t.Fatal("not master")
			}
			rec.take()
			in.ReceiveOn(now, 1, c.src, GroupIPv4, 255, peerAdvert(t, in, c.src, c.prio, time.Second))
			if in.State() != c.want {
				t.Fatalf("%v from %v on the crossover: %v, want %v", c.prio, c.src, in.State(), c.want)
			}
		})
	}
}

// The Mux of an extra link's port hands adverts to the instance as that link's.
func TestMuxAddLink(t *testing.T) {
	in, _ := newLinked(t, nil)
	in.Start(t0)
	var own, x Mux
	if err := own.Add(in); err != nil {
		t.Fatal(err)
	}
	if err := x.AddLink(in, 1); err != nil {
		t.Fatal(err)
	}
	if err := x.AddLink(in, 2); err == nil {
		t.Fatal("AddLink of a link the instance does not have: no error")
	}
	x.Receive(t0, xHigher4, GroupIPv4, 255, peerAdvert(t, in, xHigher4, 200, time.Second))
	own.Receive(t0, higher4, GroupIPv4, 255, peerAdvert(t, in, higher4, 200, time.Second))
	own.Receive(t0, higher4, GroupIPv4, 255, peerAdvert(t, in, higher4, 200, time.Second))
	inf := in.Info()
	if got := fmt.Sprint(inf.Links[0].AdvertsReceived, inf.Links[1].AdvertsReceived); got != "2 1" {
		t.Fatalf("received per link %s, want 2 1", got)
	}
	x.Remove(in)
	x.Receive(t0, xHigher4, GroupIPv4, 255, peerAdvert(t, in, xHigher4, 200, time.Second))
	if d := x.Drops(); d[DropVRID] != 1 {
		t.Fatalf("after Remove: mux drops %v, want one vrid drop", d)
	}
}
