package node

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"ulb/balancer"
	"ulb/balancer/health"
	"ulb/conntrack"
	"ulb/router/control"
	"ulb/vrrp"
)

// fakeStatus is a Status with canned counters.
type fakeStatus struct{ si control.StatsInfo }

func (f fakeStatus) Ports() []control.PortInfo       { return nil }
func (f fakeStatus) Routes() []control.RouteInfo     { return nil }
func (f fakeStatus) Neighbours() []control.NeighInfo { return nil }
func (f fakeStatus) Stats() control.StatsInfo        { return f.si }

type fakeVRRP []vrrp.Info

func (f fakeVRRP) VRRPInfo() []vrrp.Info  { return f }
func (f fakeVRRP) VRRPPort(string) string { return "outside" }

type fakeHealth []health.Result

func (f fakeHealth) Results() []health.Result { return f }
func (f fakeHealth) Checks() []health.Check   { return nil }

// The collector turns every source into families that the registry accepts (names,
// help, label sets consistent) and that the text format round-trips, with the values
// the sources hold.
func TestMetricsCollector(t *testing.T) {
	b := balancer.New(balancer.Config{})
	server := netip.MustParseAddr("203.0.113.201")
	if err := b.Set([]balancer.RuleConfig{{Name: "web", VIP: netip.MustParseAddr("198.51.100.100"), PortLo: 80, PortHi: 80,
		Proto: balancer.ProtoTCP, PMask: balancer.NoPersistence, Enabled: true, Group: "web",
		Servers: []balancer.ServerConfig{{Addr: server, Port: 80, Weight: 3},
			{Addr: netip.MustParseAddr("203.0.113.202"), Port: 80, Weight: 1, MaxConns: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.DisableServer("web", server, 80); err != nil {
		t.Fatal(err)
	}
	// The one enabled server takes a flow: at its max_conns 1, overloaded.
	if r, ok := b.Snapshot().RuleByName("web"); !ok {
		t.Fatal("no rule")
	} else if p, ok := r.Pick(netip.MustParseAddr("192.0.2.7"), 40000, 80); !ok || p.Addr != netip.MustParseAddr("203.0.113.202") {
		t.Fatalf("Pick %+v %v", p, ok)
	}
	s := Sources{
		Status: fakeStatus{control.StatsInfo{Uptime: int64(90 * time.Second),
			Ports:     []control.PortStats{{Name: "outside", PortCounters: control.PortCounters{RxPackets: 10, RxBytes: 1000, TxPackets: 7, TxBytes: 700, RxDrops: 2, TxErrors: 1}}},
			Drops:     map[string]uint64{"bad-checksum": 4, "no-route": 5},
			Forwarded: 6, Local: 3,
			SYNProxy: &control.SYNProxyInfo{Mode: "auto", Active: true, CookiesSent: 8, CookiesValid: 7},
			Sync:     &control.SyncInfo{Sending: true, SentMessages: 11, ReceivedRecords: 12, FromStranger: 1},
		}},
		Balancer:  b,
		Conntrack: conntrack.New(conntrack.Config{Capacity: 4096}),
		VRRP: fakeVRRP{{Name: "vip", State: vrrp.Master, Priority: 200, BasePriority: 150,
			Counters: vrrp.Counters{Transitions: 2, AdvertsSent: 30}}},
		Health: fakeHealth{{Target: health.Target{Group: "web", Addr: server, Port: 80}, Check: "web-tcp", Test: "tcp",
			State: health.Down, LastResult: "fail: timeout", RTT: 1500 * time.Microsecond, Fails: 3, Load: -1,
			Last: time.Unix(1700000000, 0)}},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(s))
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}

	srv := httptest.NewServer(MetricsHandler(s, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	t.Logf("%s", body)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ulb_uptime_seconds", nil, 90},
		{"ulb_port_receive_packets_total", map[string]string{"port": "outside"}, 10},
		{"ulb_port_transmit_bytes_total", map[string]string{"port": "outside"}, 700},
		{"ulb_port_receive_drops_total", map[string]string{"port": "outside"}, 2},
		{"ulb_drops_total", map[string]string{"reason": "no-route"}, 5},
		{"ulb_forwarded_packets_total", nil, 6},
		{"ulb_synproxy_active", nil, 1},
		{"ulb_synproxy_cookies_total", map[string]string{"result": "valid"}, 7},
		{"ulb_sync_messages_total", map[string]string{"direction": "sent"}, 11},
		{"ulb_sync_dropped_messages_total", map[string]string{"reason": "from_stranger"}, 1},
		{"ulb_conntrack_capacity", nil, 4096},
		{"ulb_conntrack_evicted_total", map[string]string{"class": "idle"}, 0},
		{"ulb_rule_enabled", map[string]string{"rule": "web"}, 1},
		{"ulb_server_weight", map[string]string{"rule": "web", "server": "203.0.113.201:80"}, 3},
		{"ulb_server_admin_state", map[string]string{"server": "203.0.113.201:80", "state": "disabled"}, 1},
		{"ulb_server_admin_state", map[string]string{"server": "203.0.113.201:80", "state": "enabled"}, 0},
		{"ulb_server_overloaded", map[string]string{"server": "203.0.113.202:80"}, 1},
		{"ulb_server_overloaded", map[string]string{"server": "203.0.113.201:80"}, 0},
		{"ulb_server_max_conns", map[string]string{"server": "203.0.113.202:80"}, 1},
		{"ulb_server_min_conns", map[string]string{"server": "203.0.113.202:80"}, 1},
		{"ulb_server_max_conns", map[string]string{"server": "203.0.113.201:80"}, 0},
		{"ulb_vrrp_state", map[string]string{"instance": "vip", "state": "master"}, 1},
		{"ulb_vrrp_state", map[string]string{"instance": "vip", "state": "backup"}, 0},
		{"ulb_vrrp_priority", map[string]string{"instance": "vip"}, 200},
		{"ulb_vrrp_configured_priority", map[string]string{"instance": "vip"}, 150},
		{"ulb_vrrp_transitions_total", map[string]string{"instance": "vip"}, 2},
		{"ulb_healthcheck_state", map[string]string{"check": "web-tcp", "state": "down"}, 1},
		{"ulb_healthcheck_last_success", map[string]string{"check": "web-tcp"}, 0},
		{"ulb_healthcheck_rtt_seconds", map[string]string{"check": "web-tcp"}, 0.0015},
		{"ulb_healthcheck_consecutive_failures", map[string]string{"check": "web-tcp"}, 3},
		{"ulb_healthcheck_last_check_timestamp_seconds", map[string]string{"check": "web-tcp"}, 1700000000},
	} {
		f := fams[tc.name]
		var got *float64
		if f != nil {
		next:
			for _, m := range f.GetMetric() {
				for k, v := range tc.labels {
					found := false
					for _, l := range m.GetLabel() {
						found = found || l.GetName() == k && l.GetValue() == v
					}
					if !found {
						continue next
					}
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				got = &v
				break
			}
		}
		if got == nil || *got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if _, ok := fams["ulb_healthcheck_agent_load"]; ok {
		t.Error("ulb_healthcheck_agent_load without an agent's load")
	}
}
