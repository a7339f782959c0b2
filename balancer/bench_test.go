package balancer

import (
	"fmt"
	"testing"
)

// benchRules makes one rule per algorithm over n servers (weights 1..4 in turn) plus a
// persistent one.
func benchRules(n int) []RuleConfig {
	w := make([]int, n)
	for i := range w {
		w[i] = 1 + i%4
	}
	var rules []RuleConfig
	for i, algo := range Algorithms {
		rc := rule(algo, algo, servers(w...))
		rc.PortLo, rc.PortHi = uint16(1000+i), uint16(1000+i)
		rules = append(rules, rc)
	}
	p := persistRule(RoundRobin, 24, n)
	p.Name, p.PortLo, p.PortHi = "persist-rr", 2000, 2000
	return append(rules, p)
}

// BenchmarkPick measures Pick then FlowEnded (a flow's whole life in the balancer) per
// algorithm, over 10 and 100 servers, from 256 clients in turn.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 100} {
		bal, _ := setup(b, benchRules(n)...)
		for _, r := range bal.Snapshot().Rules() {
			b.Run(fmt.Sprintf("%s/servers=%d", r.Name(), n), func(b *testing.B) {
				lo, _ := r.Ports()
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					c := clientN(i&255, false)
					p, ok := r.Pick(c, uint16(i), lo)
					if !ok {
						b.Fatal("no pick")
					}
					bal.FlowEnded(r.ID(), p.Server, c, 0, 0)
				}
			})
		}
	}
}

// BenchmarkPickParallel is Pick+FlowEnded from every CPU at once on one rule.
func BenchmarkPickParallel(b *testing.B) {
	bal, _ := setup(b, benchRules(10)...)
	for _, name := range []string{RoundRobin, WeightedRoundRobin, LeastConn, Maglev, "persist-rr"} {
		r := mustRule(b, bal, name)
		b.Run(name, func(b *testing.B) {
			lo, _ := r.Ports()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					c := clientN(i&255, false)
					p, ok := r.Pick(c, uint16(i), lo)
					if !ok {
						b.Fatal("no pick")
					}
					bal.FlowEnded(r.ID(), p.Server, c, 0, 0)
					i++
				}
			})
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	bal, _ := setup(b, benchRules(10)...)
	s := bal.Snapshot()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := s.Match(ProtoTCP, vip4, uint16(1000+i%len(Algorithms))); !ok {
			b.Fatal("no match")
		}
	}
}

func BenchmarkAccount(b *testing.B) {
	bal, _ := setup(b, benchRules(10)...)
	s := bal.Snapshot()
	r := mustRule(b, bal, RoundRobin)
	p := mustPick(b, r, clientN(1, false), 1, 1000)
	b.ReportAllocs()
	for b.Loop() {
		s.Account(r.ID(), p.Server, false, 1500)
	}
}

// BenchmarkSetMaglev is the control-plane cost of building a Maglev table (a reload or a
// server state change) for 100 servers.
func BenchmarkSetMaglev(b *testing.B) {
	rc := rule("m", Maglev, servers(make100()...))
	bal := New(Config{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rc.Servers[0].Weight = 1 + i%2 // a different table every time
		if err := bal.Set([]RuleConfig{rc}); err != nil {
			b.Fatal(err)
		}
	}
}

func make100() []int {
	w := make([]int, 100)
	for i := range w {
		w[i] = 1
	}
	return w
}
