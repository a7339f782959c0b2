package balancer

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
)

// serverInfo returns the ServerInfo of the rule's server at addr.
func serverInfo(t *testing.T, b *Balancer, addr netip.Addr) ServerInfo {
	t.Helper()
	for _, s := range b.Servers() {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("no server %v", addr)
	return ServerInfo{}
}

type flow struct {
	client netip.Addr
	pick   Pick
}

// TestThresholdHysteresis walks a server with max_conns 4 and min_conns 2 over the edges
// under every algorithm: it takes flows up to 4, then none at 4, 3 and 2 (the other
// server takes them), and new ones again from 1 on, up to 4.
func TestThresholdHysteresis(t *testing.T) {
	for _, algo := range Algorithms {
		t.Run(algo, func(t *testing.T) {
			srv := servers(1, 1)
			srv[0].MaxConns, srv[0].MinConns = 4, 2
			b, _ := setup(t, rule("web", algo, srv))
			r := mustRule(t, b, "web")
			next := 0
			var onA []flow
			pick := func(n int) (toA int) {
				for range n {
					c := clientN(next, false)
					p := mustPick(t, r, c, uint16(1024+next), 80)
					next++
					if p.Addr == srv4(1) {
						toA++
						onA = append(onA, flow{c, p})
					}
				}
				return toA
			}
			end := func() {
				f := onA[len(onA)-1]
				onA = onA[:len(onA)-1]
				b.FlowEnded(r.ID(), f.pick.Server, f.client, 0, 0)
			}
			if got := pick(200); got != 4 {
				t.Fatalf("server with max_conns 4 took %d of 200 long flows", got)
			}
			if s := serverInfo(t, b, srv4(1)); !s.Overloaded || s.ServerConns != 4 || s.MaxConns != 4 || s.MinConns != 2 {
				t.Fatalf("at max_conns: %+v, want overloaded, 4 conns, thresholds 4/2", s)
			}
			for _, left := range []int{3, 2} {
				end()
				if got := pick(50); got != 0 {
					t.Fatalf("at %d flows (min_conns 2, not yet below): took %d new flows", left, got)
				}
				if !serverInfo(t, b, srv4(1)).Overloaded {
					t.Fatalf("at %d flows: no longer overloaded", left)
				}
			}
			end() // 1 flow: below min_conns
			if s := serverInfo(t, b, srv4(1)); s.Overloaded || s.ServerConns != 1 {
				t.Fatalf("below min_conns: %+v, want not overloaded, 1 conn", s)
			}
			if got := pick(200); got != 3 {
				t.Fatalf("below min_conns: took %d of 200 long flows, want 3 (back to max_conns 4)", got)
			}
			if !serverInfo(t, b, srv4(1)).Overloaded {
				t.Fatal("back at max_conns: not overloaded")
			}
		})
	}
}

// TestThresholdDefaultLow checks IPVS's lower threshold when only the upper one is set:
// the overload clears when conns*4 < max_conns*3, and min_conns == max_conns is a
// plain cap.
func TestThresholdDefaultLow(t *testing.T) {
	for _, tc := range []struct{ max, min, low int }{
		{1, 0, 1}, {2, 0, 2}, {3, 0, 3}, {4, 0, 3}, {8, 0, 6}, {10, 0, 8}, {100, 0, 75},
		{10, 10, 10}, {10, 1, 1},
	} {
		srv := servers(1, 1)
		srv[0].MaxConns, srv[0].MinConns = tc.max, tc.min
		b, _ := setup(t, rule("web", LeastConn, srv))
		s := serverInfo(t, b, srv4(1))
		if s.MinConns != tc.low {
			t.Errorf("max %d min %d: lower threshold %d, want %d", tc.max, tc.min, s.MinConns, tc.low)
		}
		// The IPVS rule itself, for every count: overloaded stays while !(n*4 < u*3).
		if tc.min == 0 {
			for n := 0; n <= tc.max; n++ {
				if (n*4 < tc.max*3) != (n < s.MinConns) {
					t.Errorf("max %d: count %d: IPVS clears %v, we clear %v", tc.max, n, n*4 < tc.max*3, n < s.MinConns)
				}
			}
		}
	}
}

// TestThresholdNoneEligible: when every server is overloaded the refusal says so (the
// router counts it as lb-overloaded), while a rule whose servers are all disabled is
// refused without it.
func TestThresholdNoneEligible(t *testing.T) {
	srv := servers(1, 1)
	srv[0].MaxConns, srv[1].MaxConns = 1, 2
	b, _ := setup(t, rule("web", Maglev, srv))
	r := mustRule(t, b, "web")
	for i := range 3 {
		mustPick(t, r, clientN(i, false), 1, 80)
	}
	p, ok := r.Pick(clientN(9, false), 1, 80)
	if ok || !p.Overloaded {
		t.Fatalf("every server at max_conns: Pick %+v %v, want refused as overloaded", p, ok)
	}
	for _, a := range []netip.Addr{srv4(1), srv4(2)} {
		if err := b.DisableServer("web", a, 0); err != nil {
			t.Fatal(err)
		}
	}
	p, ok = mustRule(t, b, "web").Pick(clientN(9, false), 1, 80)
	if ok || p.Overloaded {
		t.Fatalf("every server disabled: Pick %+v %v, want refused, not overloaded", p, ok)
	}
}

// TestThresholdPersistence: a client whose persistence entry points at an overloaded
// server goes elsewhere (and its entry follows), as it does for a server at max_conns.
func TestThresholdPersistence(t *testing.T) {
	srv := servers(1, 1)
	srv[0].MaxConns, srv[0].MinConns = 2, 1
	rc := rule("web", RoundRobin, srv)
	rc.PMask = 32
	b, _ := setup(t, rc)
	r := mustRule(t, b, "web")
	c := clientN(1, false)
	first := mustPick(t, r, c, 1, 80)
	if first.Addr != srv4(1) {
		t.Fatalf("first pick %v", first.Addr)
	}
	second := mustPick(t, r, c, 2, 80) // persistence: .1 again, now at max_conns 2
	if second.Addr != srv4(1) || !serverInfo(t, b, srv4(1)).Overloaded {
		t.Fatalf("second pick %v, overloaded %v", second.Addr, serverInfo(t, b, srv4(1)).Overloaded)
	}
	b.FlowEnded(r.ID(), second.Server, c, 0, 0) // 1 flow: not below min_conns 1
	if p := mustPick(t, r, c, 3, 80); p.Addr != srv4(2) {
		t.Fatalf("client of an overloaded server's entry went to %v", p.Addr)
	}
}

// TestThresholdReload: raising max_conns clears the overload at once (IPVS's
// __ip_vs_update_dest), lowering it under the count sets it, and a shared group's
// server is overloaded for every rule.
func TestThresholdReload(t *testing.T) {
	srv := servers(1, 1)
	srv[0].MaxConns = 4
	r1, r2 := rule("a", RoundRobin, srv), rule("b", RoundRobin, srv)
	r1.Group, r2.Group = "g", "g"
	r2.PortLo, r2.PortHi = 81, 81
	b, _ := setup(t, r1, r2)
	for i := 0; serverInfo(t, b, srv4(1)).ServerConns < 4; i++ {
		mustPick(t, mustRule(t, b, "a"), clientN(i, false), 1, 80)
	}
	for _, s := range b.Servers() {
		if s.Addr == srv4(1) && !s.Overloaded {
			t.Fatalf("rule %s: shared server at max_conns not overloaded", s.Rule)
		}
	}
	for i := range 20 {
		if p := mustPick(t, mustRule(t, b, "b"), clientN(i, false), 1, 81); p.Addr == srv4(1) {
			t.Fatal("rule b sent a flow to the shared overloaded server")
		}
	}
	srv[0].MaxConns = 5
	r1.Servers, r2.Servers = srv, srv
	if err := b.Set([]RuleConfig{r1, r2}); err != nil {
		t.Fatal(err)
	}
	if serverInfo(t, b, srv4(1)).Overloaded {
		t.Fatal("raised max_conns: still overloaded")
	}
	srv = append([]ServerConfig(nil), srv...)
	srv[0].MaxConns = 3
	r1.Servers, r2.Servers = srv, srv
	if err := b.Set([]RuleConfig{r1, r2}); err != nil {
		t.Fatal(err)
	}
	if s := serverInfo(t, b, srv4(1)); !s.Overloaded || s.MinConns != 3 {
		t.Fatalf("max_conns lowered under the count: %+v", s)
	}
}

func TestThresholdValidate(t *testing.T) {
	for _, tc := range []struct{ max, min int }{{0, 1}, {4, 5}, {4, -1}} {
		srv := servers(1)
		srv[0].MaxConns, srv[0].MinConns = tc.max, tc.min
		b := New(Config{})
		if err := b.Set([]RuleConfig{rule("web", RoundRobin, srv)}); !errors.Is(err, ErrServer) {
			t.Errorf("max_conns %d min_conns %d: %v, want ErrServer", tc.max, tc.min, err)
		}
	}
}

// TestThresholdConcurrent picks and ends flows from several goroutines on a server with
// thresholds: the count never passes max_conns, and once every flow ended the server is
// no longer overloaded.
func TestThresholdConcurrent(t *testing.T) {
	srv := servers(1, 1)
	srv[0].MaxConns, srv[0].MinConns = 8, 3
	b, _ := setup(t, rule("web", LeastConn, srv))
	r := mustRule(t, b, "web")
	var wg sync.WaitGroup
	var mu sync.Mutex
	over := false
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []flow
			for i := range 2000 {
				c := clientN(g*2000+i, false)
				p, ok := r.Pick(c, uint16(i), 80)
				if ok {
					mine = append(mine, flow{c, p})
				}
				if r.members[0].srv.conns.Load() > 8 {
					mu.Lock()
					over = true
					mu.Unlock()
				}
				if len(mine) > 5 {
					f := mine[0]
					mine = mine[1:]
					b.FlowEnded(r.ID(), f.pick.Server, f.client, 0, 0)
				}
			}
			for _, f := range mine {
				b.FlowEnded(r.ID(), f.pick.Server, f.client, 0, 0)
			}
		}()
	}
	wg.Wait()
	if over {
		t.Error("the server passed max_conns")
	}
	if s := serverInfo(t, b, srv4(1)); s.Overloaded || s.ServerConns != 0 {
		t.Errorf("after every flow ended: %+v", s)
	}
}
