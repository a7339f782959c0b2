package node

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"ulb/config"
	"ulb/router"
	"ulb/router/control"
)

// natConfig hands the router what config parsed: a 1:1 mapping without a protocol
// number, a port forward with TCP's.
func TestNATConfig(t *testing.T) {
	cfg := &config.Config{
		AutoNAT: []config.AutoNAT{{From: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Out: "outside"}},
		NAT: []config.StaticNAT{
			{Public: netip.MustParseAddrPort("198.51.100.50:0"), Private: netip.MustParseAddrPort("203.0.113.201:0"), Out: "outside"},
			{Public: netip.MustParseAddrPort("198.51.100.51:2222"), Private: netip.MustParseAddrPort("203.0.113.201:22"), Protocol: config.UDP, Out: "outside"},
		},
	}
	nc := natConfig(cfg)
	want := router.NATConfig{
		AutoNAT: []router.AutoNAT{{From: cfg.AutoNAT[0].From, Out: "outside"}},
		Static: []router.StaticNAT{
			{Public: netip.MustParseAddr("198.51.100.50"), Private: netip.MustParseAddr("203.0.113.201"), Out: "outside"},
			{Public: netip.MustParseAddr("198.51.100.51"), Private: netip.MustParseAddr("203.0.113.201"), PublicPort: 2222, PrivatePort: 22, Proto: 17, Out: "outside"},
		},
	}
	if len(nc.Static) != 2 || nc.Static[0] != want.Static[0] || nc.Static[1] != want.Static[1] ||
		len(nc.AutoNAT) != 1 || nc.AutoNAT[0].Out != "outside" || nc.AutoNAT[0].From[0] != want.AutoNAT[0].From[0] {
		t.Errorf("natConfig = %+v, want %+v", nc, want)
	}
}

// The NAT counters become ulb_nat_flows_total{type}, present once a translation happened.
func TestNATMetrics(t *testing.T) {
	gather := func(si control.StatsInfo) map[string]float64 {
		reg := prometheus.NewRegistry()
		reg.MustRegister(newMetricsCollector(Sources{Status: fakeStatus{si}}))
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != "ulb_nat_flows_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "type" {
						got[l.GetValue()] = m.GetCounter().GetValue()
					}
				}
			}
		}
		return got
	}
	got := gather(control.StatsInfo{NAT: &control.NATInfo{AutoNAT: 5, SNAT: 2, DNAT: 3}})
	if len(got) != 3 || got["autonat"] != 5 || got["snat"] != 2 || got["dnat"] != 3 {
		t.Errorf("ulb_nat_flows_total = %v, want autonat 5, snat 2, dnat 3", got)
	}
	if got := gather(control.StatsInfo{}); len(got) != 0 {
		t.Errorf("without NAT: %v", got)
	}
}
