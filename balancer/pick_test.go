package balancer

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRoundRobinEven(t *testing.T) {
	b, _ := setup(t, rule("web", RoundRobin, servers(1, 5, 1)))
	r := mustRule(t, b, "web")
	// Weights do not matter to roundrobin; the order is the configuration's.
	var seq []string
	for i := range 6 {
		p := mustPick(t, r, clientN(i, false), 1000, 80)
		seq = append(seq, p.Addr.String())
	}
	want := "203.0.113.1 203.0.113.2 203.0.113.3 203.0.113.1 203.0.113.2 203.0.113.3"
	if got := strings.Join(seq, " "); got != want {
		t.Errorf("sequence %s, want %s", got, want)
	}
	got := countPicks(t, b, r, 300, true)
	for i := 1; i <= 3; i++ {
		if got[srv4(i)] != 100 {
			t.Errorf("roundrobin over 300 flows: %v, want 100 each", got)
		}
	}
}

// TestWeightedRoundRobinSmooth checks nginx's smooth weighted round-robin: exact shares
// in every period of sum(weights) picks, and no burst to the heaviest server.
func TestWeightedRoundRobinSmooth(t *testing.T) {
	b, _ := setup(t, rule("web", WeightedRoundRobin, servers(5, 1, 1)))
	r := mustRule(t, b, "web")
	var seq []string
	for i := range 7 {
		p := mustPick(t, r, clientN(i, false), 1000, 80)
		seq = append(seq, fmt.Sprint(p.Addr.As4()[3]))
	}
	// nginx's documented sequence for weights 5, 1, 1: a a b a c a a.
	if got, want := strings.Join(seq, ""), "1121311"; got != want {
		t.Errorf("weights 5,1,1: sequence %s, want %s", got, want)
	}

	b, _ = setup(t, rule("web", WeightedRoundRobin, servers(1, 2, 3)))
	r = mustRule(t, b, "web")
	const periods = 1000
	run, last, maxRun := 0, netip.Addr{}, 0
	for p := range periods {
		count := map[netip.Addr]int{}
		for i := range 6 {
			pk := mustPick(t, r, clientN(p*6+i, false), 1000, 80)
			count[pk.Addr]++
			if pk.Addr == last {
				run++
			} else {
				run, last = 1, pk.Addr
			}
			maxRun = max(maxRun, run)
			b.FlowEnded(r.ID(), pk.Server, clientN(i, false), 0, 0)
		}
		for i := 1; i <= 3; i++ {
			if count[srv4(i)] != i {
				t.Fatalf("period %d: %v, want 1:2:3 exactly", p, count)
			}
		}
	}
	// The heaviest server (3 of 6) is never chosen more than twice in a row.
	if maxRun > 2 {
		t.Errorf("weights 1:2:3: a run of %d picks of one server", maxRun)
	}
}

// TestWeightedShares checks that every weighted algorithm gives weights 1:2:3 their
// share: exactly for weighted-roundrobin, within 5 % (relative) for the hashes and Maglev
// over 60,000 clients.
func TestWeightedShares(t *testing.T) {
	const n = 60000
	for _, algo := range []string{WeightedRoundRobin, HashIP, HashIPPort, HashIPVIP, Maglev} {
		t.Run(algo, func(t *testing.T) {
			b, _ := setup(t, v6rule(rule("web", algo, servers(1, 2, 3))))
			r := mustRule(t, b, "web")
			got := countPicks(t, b, r, n, true)
			for i := 1; i <= 3; i++ {
				a := r.members[i-1].addr
				want := float64(n) * float64(i) / 6
				if dev := math.Abs(float64(got[a])-want) / want; dev > 0.05 {
					t.Errorf("server %d (weight %d): %d flows, want %.0f ±5%%", i, i, got[a], want)
				}
			}
		})
	}
}

// TestHashConsistency checks what each hash keys on.
func TestHashConsistency(t *testing.T) {
	rules := []RuleConfig{
		rule("ip", HashIP, servers(1, 1, 1, 1, 1)),
		rule("ipport", HashIPPort, servers(1, 1, 1, 1, 1)),
		rule("ipvip", HashIPVIP, servers(1, 1, 1, 1, 1)),
		rule("maglev", Maglev, servers(1, 1, 1, 1, 1)),
	}
	other := rule("ipvip2", HashIPVIP, servers(1, 1, 1, 1, 1))
	other.VIP = netip.MustParseAddr("198.51.100.101")
	rules[1].PortLo, rules[1].PortHi = 81, 81
	rules[2].PortLo, rules[2].PortHi = 82, 82
	rules[3].PortLo, rules[3].PortHi = 83, 83
	b, _ := setup(t, append(rules, other)...)
	byPort := func(name string, c netip.Addr, cport uint16) netip.Addr {
		r := mustRule(t, b, name)
		lo, _ := r.Ports()
		p := mustPick(t, r, c, cport, lo)
		b.FlowEnded(r.ID(), p.Server, c, 0, 0)
		return p.Addr
	}
	portMatters := map[string]int{}
	vipMatters := 0
	for i := range 200 {
		c := clientN(i, false)
		for _, name := range []string{"ip", "ipport", "ipvip", "maglev"} {
			first := byPort(name, c, 1000)
			if again := byPort(name, c, 1000); again != first {
				t.Fatalf("%s: same flow went to %v then %v", name, first, again)
			}
			if byPort(name, c, 2000) != first {
				portMatters[name]++
			}
		}
		if byPort("ipvip", c, 1) != byPort("ipvip2", c, 1) {
			vipMatters++
		}
	}
	if portMatters["ip"] != 0 || portMatters["ipvip"] != 0 {
		t.Errorf("the client port changed hash-ip or hash-ip-vip: %v", portMatters)
	}
	// With 5 servers a different key lands elsewhere 4 times in 5.
	if portMatters["ipport"] < 120 || portMatters["maglev"] < 120 {
		t.Errorf("the client port did not spread hash-ip-port or maglev: %v of 200", portMatters)
	}
	if vipMatters < 120 {
		t.Errorf("hash-ip-vip: the VIP changed the server for only %d of 200 clients", vipMatters)
	}
	// Two balancers (another node, or a restart) agree.
	b2, _ := setup(t, append(rules, other)...)
	for i := range 100 {
		c := clientN(i, false)
		for _, name := range []string{"ip", "ipport", "ipvip", "maglev"} {
			p1 := mustPick(t, mustRule(t, b, name), c, 5555, 83)
			p2 := mustPick(t, mustRule(t, b2, name), c, 5555, 83)
			if p1.Addr != p2.Addr {
				t.Fatalf("%s: two balancers disagree on %v: %v, %v", name, c, p1.Addr, p2.Addr)
			}
		}
	}
}

// TestLeastConn opens long-lived flows and checks that new flows fill the emptiest
// servers.
func TestLeastConn(t *testing.T) {
	b, _ := setup(t, rule("web", LeastConn, servers(1, 5, 1)))
	r := mustRule(t, b, "web")
	type flow struct {
		c netip.Addr
		p Pick
	}
	var flows []flow
	for i := range 30 {
		c := clientN(i, false)
		flows = append(flows, flow{c, mustPick(t, r, c, 1000, 80)})
	}
	conns := func() map[netip.Addr]int64 {
		m := map[netip.Addr]int64{}
		for _, s := range b.Servers() {
			m[s.Addr] = s.ConnsNow
		}
		return m
	}
	for i := 1; i <= 3; i++ {
		if c := conns()[srv4(i)]; c != 10 {
			t.Fatalf("leastconn (weights ignored): %v, want 10 each", conns())
		}
	}
	// Five flows of server 2 end: the next five new flows go to server 2.
	ended := 0
	for _, f := range flows {
		if f.p.Addr == srv4(2) && ended < 5 {
			b.FlowEnded(r.ID(), f.p.Server, f.c, 0, 0)
			ended++
		}
	}
	for i := range 5 {
		if p := mustPick(t, r, clientN(100+i, false), 1000, 80); p.Addr != srv4(2) {
			t.Fatalf("new flow %d went to %v with conns %v, want the emptiest", i, p.Addr, conns())
		}
	}

	// weighted-leastconn: long-lived flows settle at the weights' proportions.
	b, _ = setup(t, rule("web", WeightedLeastConn, servers(1, 2, 3)))
	r = mustRule(t, b, "web")
	countPicks(t, b, r, 600, false)
	for i := 1; i <= 3; i++ {
		if c := conns()[srv4(i)]; c < int64(100*i-1) || c > int64(100*i+1) {
			t.Errorf("weighted-leastconn after 600 long flows: %v, want 100:200:300", conns())
		}
	}
}

func TestWeightZeroAndMaxConns(t *testing.T) {
	srv := servers(1, 0, 1)
	srv[2].MaxConns = 3
	for _, algo := range Algorithms {
		t.Run(algo, func(t *testing.T) {
			b, _ := setup(t, rule("web", algo, srv))
			r := mustRule(t, b, "web")
			got := countPicks(t, b, r, 50, false)
			if got[srv4(2)] != 0 {
				t.Errorf("weight 0 server got %d flows", got[srv4(2)])
			}
			if got[srv4(3)] != 3 || got[srv4(1)] != 47 {
				t.Errorf("max_conns 3: %v, want 47 on .1, 3 on .3", got)
			}
		})
	}
	// All servers full: no pick, a drop.
	full := servers(1, 1)
	full[0].MaxConns, full[1].MaxConns = 1, 1
	b, _ := setup(t, rule("web", LeastConn, full))
	r := mustRule(t, b, "web")
	p1 := mustPick(t, r, clientN(1, false), 1, 80)
	mustPick(t, r, clientN(2, false), 1, 80)
	if _, ok := r.Pick(clientN(3, false), 1, 80); ok {
		t.Fatalf("Pick succeeded with every server at max_conns")
	}
	if d := b.Stats().Rules[0].Drops; d != 1 {
		t.Errorf("rule drops = %d, want 1", d)
	}
	b.FlowEnded(r.ID(), p1.Server, clientN(1, false), 0, 0)
	if p := mustPick(t, r, clientN(3, false), 1, 80); p.Server != p1.Server {
		t.Errorf("the freed slot was not used")
	}
}

// TestAdopt: a synced flow is counted on the server at the given address and port, past
// max_conns, makes the client's persistence entry point there, and FlowEnded gives it
// back; an address that is no server of the rule is refused.
func TestAdopt(t *testing.T) {
	rc := rule("web", RoundRobin, servers(1, 1))
	rc.Servers[1].MaxConns = 1
	rc.PMask = 32
	rc.PersistTimeout = time.Minute
	b, _ := setup(t, rc)
	r := mustRule(t, b, "web")
	c := clientN(1, false)
	var picks []Pick
	for range 2 { // twice: past max_conns 1
		p, ok := r.Adopt(c, 1000, 80, srv4(2), 80)
		if !ok || p.Addr != srv4(2) || p.Port != 80 {
			t.Fatalf("Adopt: %+v %v", p, ok)
		}
		picks = append(picks, p)
	}
	conns := func() int64 {
		for _, s := range b.Servers() {
			if s.Addr == srv4(2) {
				return s.ServerConns
			}
		}
		return -1
	}
	if n := conns(); n != 2 {
		t.Fatalf("server conns %d after two adoptions, want 2", n)
	}
	if p := b.Persist(); len(p) != 1 || p[0].Addr != srv4(2) || p[0].Flows != 2 {
		t.Fatalf("persistence %+v, want the client on %v", p, srv4(2))
	}
	for _, p := range picks {
		b.FlowEnded(r.ID(), p.Server, c, 0, 0)
	}
	if n := conns(); n != 0 {
		t.Fatalf("server conns %d after FlowEnded, want 0", n)
	}
	if _, ok := r.Adopt(c, 1000, 80, srv4(9), 80); ok {
		t.Fatal("Adopt to an address that is no server succeeded")
	}
	if _, ok := r.Adopt(c, 1000, 80, srv4(1), 8080); ok {
		t.Fatal("Adopt to a server's address on another port succeeded")
	}
}
