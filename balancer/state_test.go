package balancer

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestDrainAndDisable(t *testing.T) {
	rc := rule("web", RoundRobin, servers(1, 1, 1))
	rc.ConnDrain = 30 * time.Second
	b, clk := setup(t, rc)
	r := mustRule(t, b, "web")
	type flow struct {
		c netip.Addr
		p Pick
	}
	var flows []flow
	for i := range 9 {
		c := clientN(i, false)
		flows = append(flows, flow{c, mustPick(t, r, c, 1000, 80)})
	}
	if err := b.DrainServer("web", srv4(1), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.DisableServer("web", srv4(2), 80); err != nil {
		t.Fatal(err)
	}
	r = mustRule(t, b, "web")
	got := countPicks(t, b, r, 30, true)
	if got[srv4(1)] != 0 || got[srv4(2)] != 0 || got[srv4(3)] != 30 {
		t.Errorf("after drain and disable: %v, want every new flow on .3", got)
	}
	refs := func() map[netip.Addr]Reason {
		m := map[netip.Addr]Reason{}
		for _, ref := range b.Drained() {
			if ref.Rule != r.ID() || ref.RuleName != "web" {
				t.Errorf("ref %+v of the wrong rule", ref)
			}
			m[ref.Addr] = ref.Reason
		}
		return m
	}
	// The disabled server's flows go at once; the draining one's after ConnDrain.
	if got := refs(); len(got) != 1 || got[srv4(2)] != ReasonDisabled {
		t.Errorf("Drained right away = %v, want only .2 disabled", got)
	}
	clk.Advance(29 * time.Second)
	if got := refs(); got[srv4(1)] != 0 {
		t.Errorf("Drained before conn_drain lists the draining server")
	}
	clk.Advance(time.Second)
	if got := refs(); got[srv4(1)] != ReasonDrained || got[srv4(2)] != ReasonDisabled {
		t.Errorf("Drained after conn_drain = %v", got)
	}
	// The router removes the flows: their servers are no longer listed.
	for _, f := range flows {
		if f.p.Addr != srv4(3) {
			b.FlowEnded(r.ID(), f.p.Server, f.c, 0, 0)
		}
	}
	if got := refs(); len(got) != 0 {
		t.Errorf("Drained after the flows ended = %v", got)
	}
	if err := b.EnableServer("web", srv4(1), 0); err != nil {
		t.Fatal(err)
	}
	if got := countPicks(t, b, mustRule(t, b, "web"), 20, true); got[srv4(1)] != 10 {
		t.Errorf("re-enabled server: %v", got)
	}
	if err := b.DrainServer("web", srv4(9), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("DrainServer of an unknown server = %v", err)
	}
	if err := b.DrainServer("nogroup", srv4(1), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("DrainServer in an unknown group = %v", err)
	}
	if err := b.DrainServer("web", srv4(1), 81); !errors.Is(err, ErrNotFound) {
		t.Errorf("DrainServer of an unknown port = %v", err)
	}

	// conn_drain 0: draining flows are never forced out.
	rc.ConnDrain = 0
	b, clk = setup(t, rc)
	r = mustRule(t, b, "web")
	mustPick(t, r, clientN(1, false), 1000, 80)
	if err := b.DrainServer("web", srv4(1), 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(24 * time.Hour)
	if d := b.Drained(); len(d) != 0 {
		t.Errorf("conn_drain 0 reported %v", d)
	}
}

// TestSharedGroup checks that rules sharing a server group count a server's flows
// together for max_conns, keep their own counters and states, and that the admin verbs
// select by rule or by group.
func TestSharedGroup(t *testing.T) {
	srv := servers(1, 1)
	srv[0].MaxConns = 2
	a := rule("http", RoundRobin, srv)
	a.Group = "web"
	s := rule("https", RoundRobin, srv)
	s.Group, s.PortLo, s.PortHi = "web", 443, 443
	b, _ := setup(t, a, s)
	ra, rs := mustRule(t, b, "http"), mustRule(t, b, "https")
	pa := mustPick(t, ra, clientN(1, false), 1, 80)
	ps := mustPick(t, rs, clientN(1, false), 1, 443)
	if pa.Addr != srv4(1) || ps.Addr != srv4(1) || pa.Server == ps.Server {
		t.Fatalf("picks %+v %+v: want .1 twice, with an ID per rule", pa, ps)
	}
	// .1 has 2 flows now (max_conns 2): both rules send the next flows elsewhere.
	for _, r := range []*Rule{ra, rs, ra} {
		lo, _ := r.Ports()
		if p := mustPick(t, r, clientN(2, false), 2, lo); p.Addr != srv4(2) {
			t.Errorf("%s: max_conns of the shared server not honoured", r.Name())
		}
	}
	sv := b.Servers()
	if len(sv) != 4 || sv[0].Rule != "http" || sv[2].Rule != "https" || sv[0].Group != "web" ||
		sv[0].ConnsNow != 1 || sv[0].ServerConns != 2 || sv[1].ConnsNow != 2 || sv[3].ConnsNow != 1 {
		t.Errorf("Servers = %+v", sv)
	}
	if st := b.Stats(); st.Servers[0].ConnsTotal != 1 || st.Servers[2].ConnsTotal != 1 {
		t.Errorf("per-rule server counters %+v", st.Servers)
	}
	// By rule name: only that rule's view of the server changes.
	if err := b.DisableServer("https", srv4(2), 0); err != nil {
		t.Fatal(err)
	}
	if p := mustPick(t, mustRule(t, b, "http"), clientN(3, false), 3, 80); p.Addr != srv4(2) {
		t.Errorf("disabling .2 in https changed http")
	}
	if _, ok := mustRule(t, b, "https").Pick(clientN(3, false), 3, 443); ok {
		t.Errorf("https picked with .1 full and .2 disabled")
	}
	// By group name, or by no name: every rule of the group.
	if err := b.DrainServer("web", srv4(2), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustRule(t, b, "http").Pick(clientN(3, false), 3, 80); ok {
		t.Errorf("http picked with .1 full and .2 draining through the group")
	}
	if err := b.EnableServer("", srv4(2), 80); err != nil {
		t.Fatal(err)
	}
	for _, info := range b.Servers() {
		if info.State != Enabled {
			t.Errorf("after EnableServer of every rule: %+v", info)
		}
	}
}

// TestReloadKeepsState checks IDs, counters and states across Set.
func TestReloadKeepsState(t *testing.T) {
	rc := rule("web", RoundRobin, servers(1, 1, 1))
	other := rule("other", RoundRobin, servers(1))
	other.PortLo, other.PortHi = 81, 81
	b, clk := setup(t, rc, other)
	r := mustRule(t, b, "web")
	var picks []Pick
	for i := range 6 {
		picks = append(picks, mustPick(t, r, clientN(i, false), 1, 80))
	}
	snap := r.b.Snapshot()
	snap.Account(r.ID(), picks[0].Server, false, 100)
	snap.Account(r.ID(), picks[0].Server, true, 1000)
	if err := b.DrainServer("web", srv4(2), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.DisableRule("other"); err != nil {
		t.Fatal(err)
	}
	before := b.Stats()

	// Reload: a server added, the weights changed, the rule "other" kept as is.
	rc2 := rc
	rc2.Servers = append(servers(2, 2, 2), ServerConfig{Addr: srv4(4), Port: 80, Weight: 1})
	if err := b.Set([]RuleConfig{rc2, other}); err != nil {
		t.Fatal(err)
	}
	r2 := mustRule(t, b, "web")
	if r2.ID() != r.ID() {
		t.Errorf("rule ID changed across reload: %d -> %d", r.ID(), r2.ID())
	}
	after := b.Stats()
	if after.Rules[0].Counters != before.Rules[0].Counters {
		t.Errorf("rule counters changed: %+v -> %+v", before.Rules[0].Counters, after.Rules[0].Counters)
	}
	for i := range 3 {
		if after.Servers[i].ID != before.Servers[i].ID || after.Servers[i].Counters != before.Servers[i].Counters {
			t.Errorf("server %d changed: %+v -> %+v", i, before.Servers[i], after.Servers[i])
		}
	}
	if st := b.Servers()[1].State; st != Draining {
		t.Errorf("drained server is %v after reload", st)
	}
	if b.Rules()[1].Enabled {
		t.Errorf("disabled rule enabled by a reload that did not change it")
	}
	if got := countPicks(t, b, r2, 60, true); got[srv4(2)] != 0 || got[srv4(4)] != 20 {
		t.Errorf("after reload: %v, want nothing on the draining .2, 20 on the new .4", got)
	}
	// A reload that changes the configured state wins over the run-time one.
	other2 := other
	other2.Enabled = false
	rc3 := rc2
	rc3.Servers = slices.Clone(rc2.Servers)
	rc3.Servers[0].Disabled = true
	if err := b.Set([]RuleConfig{rc3, other2}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set([]RuleConfig{rc2, other}); err != nil { // Disabled true -> false, Enabled false -> true
		t.Fatal(err)
	}
	if st := b.Servers()[0].State; st != Enabled || !b.Rules()[1].Enabled {
		t.Errorf("configured state changes not applied: %v, %v", st, b.Rules()[1].Enabled)
	}

	// Remove server .1 and rule "other": their flows drain as the rule's conn_drain says
	// (ILB's conn-drain): with none they go on until they end; with one, Drained reports
	// them once it has passed since the removal; and they still end well.
	removedRefs := func() []ServerRef {
		var removed []ServerRef
		for _, ref := range b.Drained() {
			if ref.Reason == ReasonRemoved {
				removed = append(removed, ref)
			}
		}
		return removed
	}
	rc4 := rc2
	rc4.Servers = rc2.Servers[1:]
	if err := b.Set([]RuleConfig{rc4}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if removed := removedRefs(); len(removed) != 0 {
		t.Errorf("Drained an hour after removing .1 without conn_drain = %+v, want nothing", removed)
	}
	drain := rc2
	drain.ConnDrain = 30 * time.Second
	if err := b.Set([]RuleConfig{drain}); err != nil { // .1 again, now with a conn_drain
		t.Fatal(err)
	}
	rc6 := drain
	rc6.Servers = drain.Servers[1:]
	if err := b.Set([]RuleConfig{rc6}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(29 * time.Second)
	if removed := removedRefs(); len(removed) != 0 {
		t.Errorf("Drained 29 s into a 30 s conn_drain = %+v, want nothing", removed)
	}
	clk.Advance(time.Second)
	removed := removedRefs()
	if len(removed) != 1 || removed[0].Addr != srv4(1) || removed[0].Server != picks[0].Server {
		t.Errorf("Drained once the conn_drain of removed .1 passed = %+v", removed)
	}
	for i, p := range picks {
		b.FlowEnded(r.ID(), p.Server, clientN(i, false), 0, 0)
	}
	if d := b.Drained(); len(d) != 0 {
		t.Errorf("Drained after every flow ended = %+v", d)
	}
	st := b.Stats()
	if st.Rules[0].ConnsNow != 0 {
		t.Errorf("rule conns now = %d after every flow ended", st.Rules[0].ConnsNow)
	}
	// Ending flows again (a caller bug) never goes below zero.
	b.FlowEnded(r.ID(), picks[1].Server, clientN(1, false), 0, 0)
	if st := b.Stats(); st.Rules[0].ConnsNow != 0 || st.Servers[0].ConnsNow != 0 {
		t.Errorf("conns went negative: %+v", st)
	}
	// Unknown IDs are ignored.
	b.FlowEnded(9999, 9999, clientN(1, false), 0, 0)
	b.Snapshot().Account(9999, 9999, true, 1)
	b.Snapshot().CountDrop(9999, 0)

	// A server re-added after removal starts from its configuration (enabled).
	if err := b.DrainServer("web", srv4(3), 0); err != nil {
		t.Fatal(err)
	}
	rc5 := rc2
	rc5.Servers = []ServerConfig{rc2.Servers[0]}
	if err := b.Set([]RuleConfig{rc5}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set([]RuleConfig{rc2}); err != nil {
		t.Fatal(err)
	}
	if sv := b.Servers(); sv[2].State != Enabled {
		t.Errorf("re-added server state %v", sv[2].State)
	}
}

func TestAccountAndStats(t *testing.T) {
	b, clk := setup(t, rule("web", RoundRobin, servers(1, 1)))
	r := mustRule(t, b, "web")
	p := mustPick(t, r, clientN(1, false), 1, 80)
	s := b.Snapshot()
	for range 3 {
		s.Account(r.ID(), p.Server, false, 60)
	}
	s.Account(r.ID(), p.Server, true, 1500)
	s.CountDrop(r.ID(), p.Server)
	s.CountDrop(r.ID(), 0)
	clk.Advance(time.Second)
	st := b.Stats()
	want := Counters{ConnsNow: 1, ConnsTotal: 1, PacketsIn: 3, BytesIn: 180, PacketsOut: 1, BytesOut: 1500, Drops: 2}
	if st.Rules[0].Counters != want {
		t.Errorf("rule counters %+v, want %+v", st.Rules[0].Counters, want)
	}
	want.Drops = 1
	if st.Servers[0].Counters != want || st.Servers[0].Addr != srv4(1) || st.Servers[0].Group != "web" {
		t.Errorf("server %+v, want counters %+v", st.Servers[0], want)
	}
	if st.Servers[1].Counters != (Counters{}) {
		t.Errorf("idle server counters %+v", st.Servers[1].Counters)
	}
	if !st.Time.Equal(clk.Now()) {
		t.Errorf("Stats time %v, want the clock's %v", st.Time, clk.Now())
	}
	ri := b.Rules()
	if len(ri) != 1 || ri[0].Config.Name != "web" || ri[0].ID != r.ID() || !ri[0].Enabled {
		t.Errorf("Rules = %+v", ri)
	}
	// The listing is a copy.
	ri[0].Config.Servers[0].Weight = 99
	if mustRule(t, b, "web").Config().Servers[0].Weight != 1 {
		t.Errorf("Rules shares its server slice with the snapshot")
	}
}
