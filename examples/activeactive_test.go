package examples

import (
	"context"
	"testing"
	"time"

	"ulb/bench"
	"ulb/router/control"
)

// TestActiveActive: in the LVS + keepalived active-active lab (examples/active-active)
// each node is master of one VIP and of its gateway, and each VIP's flows pass through
// their own node both ways, the servers' answers routed back by source; the other node
// sees none of them.
func TestActiveActive(t *testing.T) {
	const lb1, lb2 = "/run/ulb/aa-lb1.sock", "/run/ulb/aa-lb2.sock"
	b := upBench(t, "active-active/bench.toml")
	for _, w := range []struct{ socket, instance, state string }{
		{lb1, "vip-a", control.RouterMaster}, {lb1, "gw-a", control.RouterMaster},
		{lb1, "vip-b", control.RouterBackup}, {lb1, "gw-b", control.RouterBackup},
		{lb2, "vip-b", control.RouterMaster}, {lb2, "gw-b", control.RouterMaster},
		{lb2, "vip-a", control.RouterBackup}, {lb2, "gw-a", control.RouterBackup},
	} {
		waitState(t, w.socket, w.instance, w.state, 10*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, vip := range []string{"198.51.100.100:80", "198.51.100.101:80"} {
		if r := b.Check(ctx, bench.Check{Type: bench.CheckConns, From: "client", To: vip, Count: 20,
			ExpectNames: []string{"s1", "s2"}}); !r.Pass {
			t.Errorf("%s: %s", vip, r)
		}
	}
	rule := func(socket, name string) control.LBCounters {
		var s control.StatsInfo
		ulbadm(t, socket, &s, "show-stats", "-r", name)
		if len(s.Rules) != 1 {
			t.Fatalf("show-stats -r %s: %+v", name, s.Rules)
		}
		return s.Rules[0].LBCounters
	}
	for _, c := range []struct {
		socket, rule string
		carries      bool
	}{{lb1, "a", true}, {lb2, "b", true}, {lb1, "b", false}, {lb2, "a", false}} {
		got := rule(c.socket, c.rule)
		if c.carries && (got.PacketsIn == 0 || got.PacketsOut == 0) {
			t.Errorf("rule %s on its own node: %+v, want packets both ways", c.rule, got)
		}
		if !c.carries && (got.PacketsIn != 0 || got.PacketsOut != 0) {
			t.Errorf("rule %s on the other node: %+v, want none", c.rule, got)
		}
	}
}
