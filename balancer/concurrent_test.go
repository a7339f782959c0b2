package balancer

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentPick runs data-plane loops (Pick, Account, FlowEnded) against a control
// plane that drains, enables, reloads and lists at the same time (run with -race), then
// checks that every connection count returned to zero and max_conns always held.
func TestConcurrentPick(t *testing.T) {
	const maxConns = 5
	mk := func(weightLast int) []RuleConfig {
		var rules []RuleConfig
		for i, algo := range Algorithms {
			srv := servers(1, 2, 3, weightLast)
			srv[0].MaxConns = maxConns
			rc := rule(algo, algo, srv)
			rc.Group = "g"
			rc.PortLo, rc.PortHi = uint16(1000+i), uint16(1000+i)
			if i%2 == 0 {
				rc.PMask = 24
				rc.PersistTimeout = time.Second
			}
			rules = append(rules, rc)
		}
		return rules
	}
	b, clk := setup(t, mk(1)...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var picked, failed atomic.Int64
	var overMax atomic.Bool
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			type flow struct {
				rule, server uint32
				c            netip.Addr
			}
			var open []flow
			for i := 0; ctx.Err() == nil || len(open) > 0; i++ {
				if ctx.Err() != nil || len(open) >= 8 {
					f := open[0]
					open = open[1:]
					b.FlowEnded(f.rule, f.server, f.c, 0, 0)
					continue
				}
				s := b.Snapshot()
				port := uint16(1000 + i%len(Algorithms))
				r, ok := s.Match(ProtoTCP, vip4, port)
				if !ok {
					t.Errorf("no rule for port %d", port)
					return
				}
				c := clientN(w*1000+i%700, false)
				p, ok := r.Pick(c, uint16(i), port)
				if !ok {
					failed.Add(1)
					continue
				}
				picked.Add(1)
				s.Account(r.ID(), p.Server, false, 100)
				if p.Addr == srv4(1) && b.Snapshot().pairIDs[p.Server].srv.conns.Load() > maxConns {
					overMax.Store(true)
				}
				open = append(open, flow{r.ID(), p.Server, c})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			switch i % 6 {
			case 0:
				_ = b.DrainServer("g", srv4(2), 0)
			case 1:
				_ = b.EnableServer("g", srv4(2), 0)
			case 2:
				_ = b.Set(mk(1 + i%3))
			case 3:
				b.Stats()
				b.Servers()
				b.Rules()
			case 4:
				b.Drained()
				b.Persist()
				b.Expire()
			case 5:
				clk.Advance(100 * time.Millisecond)
				_ = b.DisableRule(LeastConn)
				_ = b.EnableRule(LeastConn)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	if picked.Load() == 0 {
		t.Fatalf("no flow picked")
	}
	if overMax.Load() {
		t.Errorf("a server passed max_conns")
	}
	st := b.Stats()
	var total uint64
	for _, r := range st.Rules {
		if r.ConnsNow != 0 {
			t.Errorf("rule %s: %d conns after every flow ended", r.Name, r.ConnsNow)
		}
		total += r.ConnsTotal
	}
	for _, s := range st.Servers {
		if s.ConnsNow != 0 {
			t.Errorf("server %v: %d conns after every flow ended", s.Addr, s.ConnsNow)
		}
	}
	for _, s := range b.Servers() {
		if s.ServerConns != 0 {
			t.Errorf("server %v: %d conns over all rules after every flow ended", s.Addr, s.ServerConns)
		}
	}
	if total != uint64(picked.Load()) {
		t.Errorf("rules counted %d connections, %d were picked", total, picked.Load())
	}
	if d := b.Drained(); len(d) != 0 {
		t.Errorf("Drained with no flows = %+v", d)
	}
	t.Logf("%d picks, %d without a server", picked.Load(), failed.Load())
}

func TestAllocs(t *testing.T) {
	var rules []RuleConfig
	for i, algo := range Algorithms {
		rc := rule(algo, algo, servers(1, 2, 3))
		rc.PortLo, rc.PortHi = uint16(1000+i), uint16(1000+i)
		rules = append(rules, rc)
	}
	p := persistRule(WeightedRoundRobin, 24, 3)
	p.Name, p.PortLo, p.PortHi = "persist", 2000, 2000
	rules = append(rules, p)
	sp := persistRule(Maglev, 32, 3)
	sp.Name, sp.PortLo, sp.PortHi, sp.Proto, sp.PersistKey = "src+port", 2001, 2001, ProtoUDP, PersistSrcPort
	dp := persistRule(RoundRobin, NoPersistence, 3)
	dp.Name, dp.PortLo, dp.PortHi, dp.Proto, dp.PersistKey = "dst+port", 2002, 2010, ProtoUDP, PersistDstPort
	rules = append(rules, sp, dp)
	b, _ := setup(t, rules...)
	s := b.Snapshot()
	c := clientN(7, false)
	for _, r := range s.Rules() {
		lo, _ := r.Ports()
		mustPick(t, r, c, 1, lo) // the persistence entry exists from here on
		n := testing.AllocsPerRun(1000, func() {
			p, ok := r.Pick(c, 1, lo)
			if !ok {
				t.Fatal("no pick")
			}
			s.Account(r.ID(), p.Server, true, 1500)
			b.FlowEnded(r.ID(), p.Server, c, 1, lo)
		})
		if n != 0 {
			t.Errorf("%s: Pick+Account+FlowEnded allocate %v times", r.Name(), n)
		}
	}
}
