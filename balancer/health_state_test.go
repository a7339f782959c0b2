package balancer

import (
	"errors"
	"net/netip"
	"testing"
)

// TestHealthDownNoNewFlows checks every algorithm: a server that is down gets no new
// flows, gets them again when up, and a rule whose servers are all down picks nothing.
func TestHealthDownNoNewFlows(t *testing.T) {
	for _, algo := range Algorithms {
		t.Run(algo, func(t *testing.T) {
			b, _ := setup(t, rule("web", algo, servers(1, 2, 3)))
			r := mustRule(t, b, "web")
			if r.Healthy() != 3 || r.AllDown() {
				t.Fatalf("fresh rule: Healthy %d AllDown %v", r.Healthy(), r.AllDown())
			}
			if err := b.SetHealth("web", srv4(2), 80, false); err != nil {
				t.Fatal(err)
			}
			r = mustRule(t, b, "web")
			got := countPicks(t, b, r, 600, true)
			if got[srv4(2)] != 0 || got[srv4(1)] == 0 || got[srv4(3)] == 0 {
				t.Errorf(".2 down: picks %v", got)
			}
			if r.Healthy() != 2 || r.AllDown() {
				t.Errorf(".2 down: Healthy %d AllDown %v", r.Healthy(), r.AllDown())
			}
			if err := b.SetHealth("web", srv4(2), 80, true); err != nil {
				t.Fatal(err)
			}
			got = countPicks(t, b, mustRule(t, b, "web"), 600, true)
			if got[srv4(2)] == 0 {
				t.Errorf(".2 up again: picks %v", got)
			}
			for i := 1; i <= 3; i++ {
				if err := b.SetHealth("web", srv4(i), 0, false); err != nil {
					t.Fatal(err)
				}
			}
			r = mustRule(t, b, "web")
			if _, ok := r.Pick(clientN(1, false), 1, 80); ok {
				t.Errorf("picked with every server down")
			}
			if r.Healthy() != 0 || !r.AllDown() {
				t.Errorf("all down: Healthy %d AllDown %v", r.Healthy(), r.AllDown())
			}
		})
	}
}

// TestHealthAndAdminCombine checks usable = enabled && healthy: enabling a down server
// does not bring it back, bringing a disabled one up does not either.
func TestHealthAndAdminCombine(t *testing.T) {
	b, _ := setup(t, rule("web", RoundRobin, servers(1, 1)))
	if err := b.SetHealth("web", srv4(1), 80, false); err != nil {
		t.Fatal(err)
	}
	if err := b.EnableServer("web", srv4(1), 80); err != nil {
		t.Fatal(err)
	}
	if got := countPicks(t, b, mustRule(t, b, "web"), 20, true); got[srv4(1)] != 0 {
		t.Errorf("enabled but down .1 got flows: %v", got)
	}
	if err := b.DisableServer("web", srv4(1), 80); err != nil {
		t.Fatal(err)
	}
	if err := b.SetHealth("web", srv4(1), 80, true); err != nil {
		t.Fatal(err)
	}
	if got := countPicks(t, b, mustRule(t, b, "web"), 20, true); got[srv4(1)] != 0 {
		t.Errorf("up but disabled .1 got flows: %v", got)
	}
	if err := b.EnableServer("web", srv4(1), 80); err != nil {
		t.Fatal(err)
	}
	if got := countPicks(t, b, mustRule(t, b, "web"), 20, true); got[srv4(1)] != 10 {
		t.Errorf("enabled and up .1: %v, want 10 of 20", got)
	}
}

// TestHealthSharedGroup checks that health is per server of a group: every rule using
// the group sees it.
func TestHealthSharedGroup(t *testing.T) {
	a := rule("http", RoundRobin, servers(1, 1))
	a.Group = "web"
	s := rule("https", RoundRobin, servers(1, 1))
	s.Group, s.PortLo, s.PortHi = "web", 443, 443
	b, _ := setup(t, a, s)
	if err := b.SetHealth("web", srv4(1), 80, false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"http", "https"} {
		if got := countPicks(t, b, mustRule(t, b, name), 10, true); got[srv4(1)] != 0 {
			t.Errorf("%s: down .1 got flows %v", name, got)
		}
	}
	if err := b.SetHealth("http", srv4(1), 80, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetHealth by rule name of a grouped server: %v, want ErrNotFound", err)
	}
}

func TestHealthErrors(t *testing.T) {
	b, _ := setup(t, rule("web", RoundRobin, servers(1)))
	if err := b.SetHealth("web", srv4(9), 80, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown server: %v", err)
	}
	if err := b.SetHealth("nope", srv4(1), 80, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown group: %v", err)
	}
	if err := b.SetLoad("web", srv4(1), 80, 101); !errors.Is(err, ErrLoad) {
		t.Errorf("load 101: %v", err)
	}
	if err := b.SetLoad("web", srv4(1), 80, -1); !errors.Is(err, ErrLoad) {
		t.Errorf("load -1: %v", err)
	}
	if err := b.SetLoad("web", srv4(2), 80, 5); !errors.Is(err, ErrNotFound) {
		t.Errorf("load of an unknown server: %v", err)
	}
}

// TestLoadShiftsSplit checks that agent loads 20 and 80 on two servers of weight 1 turn
// an even split into 80:20. Weighted round-robin is exact (800 of 1000); the others are
// within ±3 points of 80 % over 20000 flows; leastconn ignores weights and stays even.
func TestLoadShiftsSplit(t *testing.T) {
	const n = 20000
	for _, algo := range []string{WeightedRoundRobin, Maglev, HashIP, HashIPPort, HashIPVIP} {
		t.Run(algo, func(t *testing.T) {
			b, _ := setup(t, rule("web", algo, servers(1, 1)))
			if err := b.SetLoad("web", srv4(1), 80, 20); err != nil {
				t.Fatal(err)
			}
			if err := b.SetLoad("web", srv4(2), 80, 80); err != nil {
				t.Fatal(err)
			}
			r := mustRule(t, b, "web")
			if algo == WeightedRoundRobin {
				if got := countPicks(t, b, r, 1000, true); got[srv4(1)] != 800 || got[srv4(2)] != 200 {
					t.Errorf("wrr with loads 20/80: %v, want 800/200", got)
				}
				return
			}
			got := countPicks(t, b, r, n, true)
			if share := float64(got[srv4(1)]) / n; share < 0.77 || share > 0.83 {
				t.Errorf("loads 20/80: share of .1 = %.3f (%v), want 0.80 ± 0.03", share, got)
			}
		})
	}
	// Weighted leastconn: open flows pile up 4:1.
	b, _ := setup(t, rule("web", WeightedLeastConn, servers(1, 1)))
	_ = b.SetLoad("web", srv4(1), 80, 20)
	_ = b.SetLoad("web", srv4(2), 80, 80)
	if got := countPicks(t, b, mustRule(t, b, "web"), 1000, false); got[srv4(1)] != 800 {
		t.Errorf("wlc with loads 20/80, flows kept: %v, want 800/200", got)
	}
}

func TestLoadWeights(t *testing.T) {
	b, _ := setup(t, rule("web", Maglev, servers(1, 1, 3)))
	eff := func() []int {
		var out []int
		for _, s := range b.Servers() {
			out = append(out, s.EffectiveWeight)
		}
		return out
	}
	if got := eff(); got[0] != 1 || got[1] != 1 || got[2] != 3 {
		t.Errorf("no loads: effective weights %v, want the configured 1 1 3", got)
	}
	_ = b.SetLoad("web", srv4(1), 80, 20)
	_ = b.SetLoad("web", srv4(2), 80, 80)
	if got := eff(); got[0] != 4 || got[1] != 1 || got[2] != 15 {
		t.Errorf("loads 20/80/none: effective weights %v, want 4 1 15", got)
	}
	t1 := mustRule(t, b, "web").maglev
	// The same load again publishes nothing.
	s := b.Snapshot()
	_ = b.SetLoad("web", srv4(1), 80, 20)
	if b.Snapshot() != s {
		t.Errorf("an unchanged load published a new snapshot")
	}
	// An agent on .3 reporting load 0 publishes a snapshot with the same effective
	// weights: the Maglev table is reused, not rebuilt.
	_ = b.SetLoad("web", srv4(3), 80, 0)
	if b.Snapshot() == s {
		t.Errorf("a new load published no snapshot")
	}
	if t2 := mustRule(t, b, "web").maglev; &t2[0] != &t1[0] {
		t.Errorf("Maglev table rebuilt although effective weights did not change")
	}
	// Loads 60/90/50 give the same proportions (40:10:50·3 = 4:1:15).
	_ = b.SetLoad("web", srv4(1), 80, 60)
	_ = b.SetLoad("web", srv4(2), 80, 90)
	_ = b.SetLoad("web", srv4(3), 80, 50)
	if got := eff(); got[0] != 4 || got[1] != 1 || got[2] != 15 {
		t.Errorf("loads 60/90/50: effective weights %v, want 4 1 15", got)
	}
	// Load 100 takes no new flows.
	_ = b.SetLoad("web", srv4(3), 80, 100)
	if got := countPicks(t, b, mustRule(t, b, "web"), 1000, true); got[srv4(3)] != 0 {
		t.Errorf("load 100 got flows: %v", got)
	}
	info := b.Servers()[2]
	if info.Load != 100 || info.EffectiveWeight != 0 || info.Weight != 3 || info.Health != HealthUnknown {
		t.Errorf("ServerInfo of .3 at load 100: %+v", info)
	}
}

// TestHealthPersistence checks that a server going down loses its persistence entries
// and its clients go elsewhere.
func TestHealthPersistence(t *testing.T) {
	rc := rule("web", RoundRobin, servers(1, 1))
	rc.PMask = 32
	b, _ := setup(t, rc)
	r := mustRule(t, b, "web")
	on1 := map[netip.Addr]bool{}
	for i := range 10 {
		p := mustPick(t, r, clientN(i, false), 1000, 80)
		if p.Addr == srv4(1) {
			on1[clientN(i, false)] = true
		}
		b.FlowEnded(r.ID(), p.Server, clientN(i, false), 0, 0)
	}
	if len(on1) != 5 || len(b.Persist()) != 10 {
		t.Fatalf("setup: %d clients on .1, %d entries", len(on1), len(b.Persist()))
	}
	if err := b.SetHealth("web", srv4(1), 80, false); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Persist() {
		if e.Addr == srv4(1) {
			t.Errorf("entry of the down server kept: %+v", e)
		}
	}
	if n := len(b.Persist()); n != 5 {
		t.Errorf("%d entries after .1 went down, want the 5 of .2", n)
	}
	if st := b.Stats(); st.PersistEntries != 5 {
		t.Errorf("PersistEntries %d, want 5", st.PersistEntries)
	}
	r = mustRule(t, b, "web")
	for c := range on1 {
		if p := mustPick(t, r, c, 1001, 80); p.Addr != srv4(2) {
			t.Errorf("client %v of the down server went to %v", c, p.Addr)
		}
	}
}

// TestHealthDrained checks ReasonDown, and that an admin Disabled wins over it.
func TestHealthDrained(t *testing.T) {
	b, _ := setup(t, rule("web", RoundRobin, servers(1, 1, 1)))
	r := mustRule(t, b, "web")
	for i := range 3 {
		mustPick(t, r, clientN(i, false), 1000, 80)
	}
	if len(b.Drained()) != 0 {
		t.Fatalf("Drained with every server up: %v", b.Drained())
	}
	_ = b.SetHealth("web", srv4(1), 80, false)
	_ = b.SetHealth("web", srv4(2), 80, false)
	_ = b.DisableServer("web", srv4(2), 80)
	got := map[netip.Addr]Reason{}
	for _, ref := range b.Drained() {
		got[ref.Addr] = ref.Reason
	}
	if len(got) != 2 || got[srv4(1)] != ReasonDown || got[srv4(2)] != ReasonDisabled {
		t.Errorf("Drained = %v, want .1 down and .2 disabled", got)
	}
	if ReasonDown.String() != "down" {
		t.Errorf("ReasonDown.String() = %q", ReasonDown.String())
	}
}

// TestHealthInfoAndReload checks ServerInfo's Health and Load, that they survive a reload
// keeping the server, and that a server removed and configured again starts unknown.
func TestHealthInfoAndReload(t *testing.T) {
	rc := rule("web", RoundRobin, servers(1, 1))
	b, _ := setup(t, rc)
	if s := b.Servers()[0]; s.Health != HealthUnknown || s.Load != -1 {
		t.Errorf("fresh server: %+v", s)
	}
	_ = b.SetHealth("web", srv4(1), 80, false)
	_ = b.SetHealth("web", srv4(2), 80, true)
	_ = b.SetLoad("web", srv4(2), 80, 30)
	if err := b.Set([]RuleConfig{rc}); err != nil {
		t.Fatal(err)
	}
	s := b.Servers()
	if s[0].Health != HealthDown || s[1].Health != HealthUp || s[1].Load != 30 || s[0].Load != -1 {
		t.Errorf("after a reload keeping the servers: %+v", s)
	}
	if got := countPicks(t, b, mustRule(t, b, "web"), 10, true); got[srv4(1)] != 0 {
		t.Errorf("down server got flows after a reload: %v", got)
	}
	if err := b.Set([]RuleConfig{rule("web", RoundRobin, servers(1, 1)[1:])}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set([]RuleConfig{rc}); err != nil {
		t.Fatal(err)
	}
	if s := b.Servers()[0]; s.Health != HealthUnknown {
		t.Errorf("server configured again: %+v, want unknown", s)
	}
	if got := countPicks(t, b, mustRule(t, b, "web"), 10, true); got[srv4(1)] != 5 {
		t.Errorf("server configured again gets no flows: %v", got)
	}
}
