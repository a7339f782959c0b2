package vrrp

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// recorder is an Output that keeps what it is given.
type recorder struct {
	mu    sync.Mutex
	sent  []Advert
	trans [][2]State
	// then, when set, runs after each transition is recorded.
	then func(from, to State)
}

func (r *recorder) Send(b []byte) {
	r.mu.Lock()
	r.sent = append(r.sent, append(Advert(nil), b...))
	r.mu.Unlock()
}

func (r *recorder) OnTransition(from, to State) {
	r.mu.Lock()
	r.trans = append(r.trans, [2]State{from, to})
	then := r.then
	r.mu.Unlock()
	if then != nil {
		then(from, to)
	}
}

// take returns and forgets what was recorded.
func (r *recorder) take() (sent []Advert, trans [][2]State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sent, trans = r.sent, r.trans
	r.sent, r.trans = nil, nil
	return sent, trans
}

// prios lists the priorities of adverts.
func prios(as []Advert) []uint8 {
	var out []uint8
	for _, a := range as {
		out = append(out, a.Priority())
	}
	return out
}

var (
	ours4   = netip.MustParseAddr("192.0.2.2")
	higher4 = netip.MustParseAddr("192.0.2.3")
	lower4  = netip.MustParseAddr("192.0.2.1")
	vip4    = netip.MustParseAddr("192.0.2.100")
)

// baseConfig is a version 3 IPv4 instance of priority 100, interval 1 s, preempting.
func baseConfig() Config {
	return Config{Name: "vi", VRID: 1, Version: 3, Priority: 100, Interval: time.Second,
		Preempt: true, Primary: ours4, Addresses: []netip.Addr{vip4}}
}

func newInst(t testing.TB, mod func(*Config)) (*Instance, *recorder) {
	t.Helper()
	cfg := baseConfig()
	if mod != nil {
		mod(&cfg)
	}
	rec := &recorder{}
	cfg.Out = rec
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in, rec
}

// peerAdvert builds an advert a peer of in would send.
func peerAdvert(t testing.TB, in *Instance, src netip.Addr, prio uint8, iv time.Duration) []byte {
	t.Helper()
	buf := make([]byte, MaxAdvertSize)
	n := BuildAdvert(buf, AdvertFields{Version: in.cfg.Version, VRID: in.cfg.VRID, Priority: prio,
		Interval: iv, Addresses: in.cfg.Addresses, Src: src, Dst: in.dst})
	if n == 0 {
		t.Fatal("cannot build the peer's advert")
	}
	return buf[:n]
}

// lan connects instances as if on one link: what one sends the others receive (from
// its primary address, TTL 255) at the next step, unless the link is cut.
type lan struct {
	nodes []*lanNode
	queue []lanFrame
	cut   bool
	now   time.Time
	log   []string
}

type lanNode struct {
	lan  *lan
	in   *Instance
	name string
}

type lanFrame struct {
	from *lanNode
	b    []byte
}

func (n *lanNode) Send(b []byte) {
	n.lan.queue = append(n.lan.queue, lanFrame{n, append([]byte(nil), b...)})
}

func (n *lanNode) OnTransition(from, to State) {
	n.lan.log = append(n.lan.log, fmt.Sprintf("%v %s %v->%v", n.lan.now.Sub(t0), n.name, from, to))
}

// add creates an instance on the link.
func (l *lan) add(t testing.TB, name string, cfg Config) *Instance {
	t.Helper()
	n := &lanNode{lan: l, name: name}
	cfg.Out = n
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.in = in
	l.nodes = append(l.nodes, n)
	return in
}

// run advances the clock to until in steps, delivering frames and firing timers.
func (l *lan) run(until time.Time, step time.Duration) {
	for !l.now.After(until) {
		q := l.queue
		l.queue = nil
		for _, f := range q {
			if l.cut {
				continue
			}
			for _, n := range l.nodes {
				if n != f.from && n.in.ipv6 == f.from.in.ipv6 {
					n.in.ReceiveTo(l.now, f.from.in.cfg.Primary, f.from.in.dst, 255, f.b)
				}
			}
		}
		for _, n := range l.nodes {
			if d := n.in.NextTimeout(); !d.IsZero() && !d.After(l.now) {
				n.in.Tick(l.now)
			}
		}
		l.now = l.now.Add(step)
	}
}

// masters returns the names of the nodes in Master.
func (l *lan) masters() []string {
	var out []string
	for _, n := range l.nodes {
		if n.in.State() == Master {
			out = append(out, n.name)
		}
	}
	return out
}
