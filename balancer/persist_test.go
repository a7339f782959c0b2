package balancer

import (
	"net/netip"
	"testing"
	"time"
)

func persistRule(algo string, pmask int, n int) RuleConfig {
	w := make([]int, n)
	for i := range w {
		w[i] = 1
	}
	rc := rule("web", algo, servers(w...))
	rc.PMask = pmask
	rc.PersistTimeout = time.Minute
	return rc
}

func TestPersistencePrefix(t *testing.T) {
	b, _ := setup(t, persistRule(RoundRobin, 24, 4))
	r := mustRule(t, b, "web")
	// Clients i and 256+i are in different /24s (see clientN).
	bySlash24 := map[netip.Addr]netip.Addr{}
	for i := range 3 * 256 {
		c := clientN(i, false)
		p := mustPick(t, r, c, uint16(1000+i), 80)
		net := netip.PrefixFrom(c, 24).Masked().Addr()
		if s, ok := bySlash24[net]; ok && s != p.Addr {
			t.Fatalf("client %v went to %v, its /24 to %v", c, p.Addr, s)
		}
		bySlash24[net] = p.Addr
	}
	// Three prefixes, round-robin: three different servers.
	seen := map[netip.Addr]bool{}
	for _, s := range bySlash24 {
		seen[s] = true
	}
	if len(seen) != 3 {
		t.Errorf("three /24s on %d servers, want 3: %v", len(seen), bySlash24)
	}
	ps := b.Persist()
	if len(ps) != 3 || ps[0].Client != netip.MustParsePrefix("192.0.2.0/24") || ps[0].Flows != 256 ||
		ps[0].Rule != "web" || !ps[0].Expires.IsZero() || ps[0].Addr != bySlash24[clientN(0, false)] {
		t.Errorf("Persist = %+v", ps)
	}

	// pmask 0: one server for everybody.
	b, _ = setup(t, persistRule(RoundRobin, 0, 4))
	if got := countPicks(t, b, mustRule(t, b, "web"), 100, true); len(got) != 1 {
		t.Errorf("pmask 0 spread clients over %v", got)
	}

	// IPv6 /64.
	b, _ = setup(t, v6rule(persistRule(RoundRobin, 64, 4)))
	r = mustRule(t, b, "web")
	a1 := netip.MustParseAddr("2001:db8:c:1::1")
	a2 := netip.MustParseAddr("2001:db8:c:1:ffff::2")
	other := netip.MustParseAddr("2001:db8:c:2::1")
	p1, p2, p3 := mustPick(t, r, a1, 1, 80), mustPick(t, r, a2, 2, 80), mustPick(t, r, other, 3, 80)
	if p1.Addr != p2.Addr || p3.Addr == p1.Addr {
		t.Errorf("IPv6 /64 persistence: %v %v %v", p1.Addr, p2.Addr, p3.Addr)
	}
	if ps := b.Persist(); len(ps) != 2 || ps[0].Client != netip.MustParsePrefix("2001:db8:c:1::/64") {
		t.Errorf("Persist = %+v", ps)
	}
}

func TestPersistenceTimeout(t *testing.T) {
	b, clk := setup(t, persistRule(RoundRobin, 32, 4))
	r := mustRule(t, b, "web")
	a, bb, c := clientN(1, false), clientN(2, false), clientN(3, false)
	pa := mustPick(t, r, a, 1, 80) // server 1
	pb := mustPick(t, r, bb, 1, 80)
	pc := mustPick(t, r, c, 1, 80) // servers 2, 3; the next new prefix gets 4
	b.FlowEnded(r.ID(), pa.Server, a, 0, 0)

	// Within the timeout of its last flow's end, a returns to its server.
	clk.Advance(59 * time.Second)
	p := mustPick(t, r, a, 2, 80)
	if p.Addr != pa.Addr {
		t.Fatalf("within persist_timeout: %v, want %v", p.Addr, pa.Addr)
	}
	b.FlowEnded(r.ID(), p.Server, a, 0, 0)
	if ps := b.Persist(); ps[0].Flows != 0 || !ps[0].Expires.Equal(clk.Now().Add(time.Minute)) {
		t.Errorf("entry after the flow ended: %+v", ps[0])
	}
	// Past it the entry is gone: a is scheduled afresh (round-robin: server 4).
	clk.Advance(61 * time.Second)
	if p := mustPick(t, r, a, 3, 80); p.Addr != srv4(4) {
		t.Errorf("after persist_timeout: %v, want the scheduler's next, %v", p.Addr, srv4(4))
	}
	// b's flow never ended: its entry lives on however long.
	clk.Advance(time.Hour)
	if p := mustPick(t, r, bb, 4, 80); p.Addr != pb.Addr {
		t.Errorf("entry with a live flow expired: %v, want %v", p.Addr, pb.Addr)
	}
	// Expire sweeps the entries without flows whose timeout passed: c's, once it ends.
	b.FlowEnded(r.ID(), pc.Server, c, 0, 0)
	clk.Advance(2 * time.Minute)
	swept := 0
	for range persistShards {
		swept += b.Expire()
	}
	if swept != 1 {
		t.Errorf("Expire swept %d entries, want 1 (c)", swept)
	}
	n := 0
	b.persist.each(func(persistKey, persistVal) { n++ })
	if n != 2 {
		t.Errorf("%d entries left, want 2 (a and b, with flows)", n)
	}
}

func TestPersistenceServerGone(t *testing.T) {
	b, _ := setup(t, persistRule(RoundRobin, 24, 3))
	r := mustRule(t, b, "web")
	c := clientN(1, false)
	p := mustPick(t, r, c, 1, 80)
	if err := b.DrainServer("web", p.Addr, 0); err != nil {
		t.Fatal(err)
	}
	r = mustRule(t, b, "web")
	p2 := mustPick(t, r, c, 2, 80)
	if p2.Addr == p.Addr {
		t.Fatalf("persistence sent a new flow to a draining server")
	}
	// The entry now names the new server, and counts both flows.
	if p3 := mustPick(t, r, clientN(2, false), 3, 80); p3.Addr != p2.Addr {
		t.Errorf("the /24 moved to %v, then %v", p2.Addr, p3.Addr)
	}
	if ps := b.Persist(); len(ps) != 1 || ps[0].Flows != 3 || ps[0].Addr != p2.Addr {
		t.Errorf("Persist = %+v", ps)
	}
	// max_conns reached: the flow goes elsewhere.
	rc := persistRule(RoundRobin, 24, 2)
	rc.Servers[0].MaxConns = 1
	b, _ = setup(t, rc)
	r = mustRule(t, b, "web")
	if p := mustPick(t, r, clientN(1, false), 1, 80); p.Addr != srv4(1) {
		t.Fatalf("first flow on %v", p.Addr)
	}
	if p := mustPick(t, r, clientN(1, false), 2, 80); p.Addr != srv4(2) {
		t.Errorf("persistence passed max_conns: %v", p.Addr)
	}
}

func TestPersistenceReload(t *testing.T) {
	rc := persistRule(RoundRobin, 24, 3)
	b, _ := setup(t, rc)
	mustPick(t, mustRule(t, b, "web"), clientN(1, false), 1, 80)
	if err := b.Set([]RuleConfig{rc}); err != nil {
		t.Fatal(err)
	}
	if len(b.Persist()) != 1 {
		t.Errorf("an unchanged reload dropped persistence")
	}
	rc.PMask = 16
	if err := b.Set([]RuleConfig{rc}); err != nil {
		t.Fatal(err)
	}
	if ps := b.Persist(); len(ps) != 0 {
		t.Errorf("pmask change kept %+v", ps)
	}
	mustPick(t, mustRule(t, b, "web"), clientN(1, false), 1, 80)
	o := rule("other", RoundRobin, servers(1))
	o.PortLo, o.PortHi = 81, 81
	if err := b.Set([]RuleConfig{o}); err != nil {
		t.Fatal(err)
	}
	n := 0
	b.persist.each(func(persistKey, persistVal) { n++ })
	if n != 0 {
		t.Errorf("removing the rule kept %d entries", n)
	}
}

func TestPersistenceCapacity(t *testing.T) {
	clk := newClock()
	b := New(Config{Now: clk.Now, PersistCapacity: 2})
	if err := b.Set([]RuleConfig{persistRule(RoundRobin, 32, 3)}); err != nil {
		t.Fatal(err)
	}
	r := mustRule(t, b, "web")
	var picks []Pick
	for i := range 3 {
		picks = append(picks, mustPick(t, r, clientN(i, false), 1, 80))
	}
	if st := b.Stats(); st.PersistEntries != 2 || st.PersistRefused != 1 {
		t.Errorf("entries %d refused %d, want 2 and 1", st.PersistEntries, st.PersistRefused)
	}
	for i, p := range picks {
		b.FlowEnded(r.ID(), p.Server, clientN(i, false), 0, 0)
	}
	clk.Advance(2 * time.Minute)
	for range persistShards {
		b.Expire()
	}
	if st := b.Stats(); st.PersistEntries != 0 {
		t.Errorf("entries %d after the sweep", st.PersistEntries)
	}
	// Room again: a new prefix gets an entry.
	mustPick(t, r, clientN(9, false), 1, 80)
	if st := b.Stats(); st.PersistEntries != 1 {
		t.Errorf("entries %d, want 1", st.PersistEntries)
	}
}
