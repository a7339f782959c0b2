package balancer

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a manual clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	vip4 = netip.MustParseAddr("198.51.100.100")
	vip6 = netip.MustParseAddr("2001:db8:1::100")
)

// srv4 is the test server 203.0.113.i.
func srv4(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }

// clientN is the i-th test client: IPv4 from the three documentation /24s (768
// addresses, then they repeat), IPv6 from 2001:db8:c::/48.
func clientN(i int, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
	}
	nets := [3][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}
	n := nets[(i/256)%3]
	return netip.AddrFrom4([4]byte{n[0], n[1], n[2], byte(i)})
}

// v6rule turns a test rule into an IPv6 one with servers 2001:db8:5::i.
func v6rule(rc RuleConfig) RuleConfig {
	rc.VIP = vip6
	for i := range rc.Servers {
		a := rc.Servers[i].Addr.As4()
		rc.Servers[i].Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 5, 15: a[3]})
	}
	return rc
}

// servers returns servers 203.0.113.1.. with the given weights, port 80.
func servers(weights ...int) []ServerConfig {
	s := make([]ServerConfig, len(weights))
	for i, w := range weights {
		s[i] = ServerConfig{Addr: srv4(i + 1), Port: 80, Weight: w}
	}
	return s
}

func rule(name, algo string, srv []ServerConfig) RuleConfig {
	return RuleConfig{Name: name, VIP: vip4, PortLo: 80, PortHi: 80, Proto: ProtoTCP,
		Algorithm: algo, PMask: NoPersistence, Servers: srv, Enabled: true}
}

// setup returns a balancer with the rules set, on a manual clock.
func setup(t testing.TB, rules ...RuleConfig) (*Balancer, *clock) {
	t.Helper()
	c := newClock()
	b := New(Config{Now: c.Now})
	if err := b.Set(rules); err != nil {
		t.Fatalf("Set: %v", err)
	}
	return b, c
}

func mustRule(t testing.TB, b *Balancer, name string) *Rule {
	t.Helper()
	r, ok := b.Snapshot().RuleByName(name)
	if !ok {
		t.Fatalf("no rule %q", name)
	}
	return r
}

func mustPick(t testing.TB, r *Rule, client netip.Addr, cport, dport uint16) Pick {
	t.Helper()
	p, ok := r.Pick(client, cport, dport)
	if !ok {
		t.Fatalf("Pick(%v:%d -> %d) found no server", client, cport, dport)
	}
	return p
}

// countPicks picks n flows from distinct clients and ports (ending each one at once
// when end is true) and counts the flows per server address.
func countPicks(t testing.TB, b *Balancer, r *Rule, n int, end bool) map[netip.Addr]int {
	t.Helper()
	got := map[netip.Addr]int{}
	for i := range n {
		c := clientN(i, r.VIP().Is6())
		p := mustPick(t, r, c, uint16(1024+i%60000), 80)
		got[p.Addr]++
		if end {
			b.FlowEnded(r.ID(), p.Server, c, 0, 0)
		}
	}
	return got
}
