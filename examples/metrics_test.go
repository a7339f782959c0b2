package examples

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"ulb/bench"
	"ulb/router/control"
)

// metricsAddr is [metrics] listen of testdata/metrics/lb1.toml, in ulbd's namespace.
const metricsAddr = "127.0.0.1:9469"

const metricsSocket = "/run/ulb/metr-lb1.sock"

// scrape fetches /metrics from inside ns the way Prometheus does (asking for the text
// format) and parses the body with Prometheus's own text parser.
func scrape(t *testing.T, ns string) map[string]*dto.MetricFamily {
	t.Helper()
	c, err := dialIn(ns, netip.Addr{}, metricsAddr)
	if err != nil {
		t.Fatalf("connect to %s in %s: %v", metricsAddr, ns, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: %s\r\nAccept: text/plain;version=0.0.4\r\nConnection: close\r\n\r\n", metricsAddr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	if testing.Verbose() {
		t.Logf("scrape of %s:\n%s", ns, body)
	}
	return fams
}

// metricValue is the value of the sample of family name whose labels include want
// (ok false when there is none).
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestMetrics scrapes a real ulbd's /metrics on its namespace's loopback: every family
// is there with the type Prometheus's conventions give it, and the values move with
// real TCP connections through the VIP (rule and server connections, bytes and
// packets, port counters, conntrack), the health checks' results and the VRRP
// instance's state show, and /metrics is not reachable through the router's own
// address (it is the kernel's listener, not the router's).
func TestMetrics(t *testing.T) {
	b := upBench(t, "testdata/metrics/bench.toml")
	lb := b.Spec().Namespace("lb1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Both servers up by their health check (the balancer's own view, ulb_server_health,
	// stays unknown until a check takes a server down: unknown takes flows), and the instance master (it has no peer).
	deadline := time.Now().Add(20 * time.Second)
	var before map[string]*dto.MetricFamily
	for {
		before = scrape(t, lb)
		up1, _ := metricValue(before, "ulb_healthcheck_state", map[string]string{"check": "web-tcp", "server": "203.0.113.201:80", "state": "up"})
		up2, _ := metricValue(before, "ulb_healthcheck_state", map[string]string{"check": "web-tcp", "server": "203.0.113.202:80", "state": "up"})
		master, _ := metricValue(before, "ulb_vrrp_state", map[string]string{"instance": "vip", "state": "master"})
		if up1 == 1 && up2 == 1 && master == 1 {
			break
		}
		if time.Now().After(deadline) {
			var hc []control.HCResult
			ulbadm(t, metricsSocket, &hc, "show-hc-result")
			t.Fatalf("servers up %v %v, vrrp master %v: want both up and master\nshow-hc-result %+v", up1, up2, master, hc)
		}
		time.Sleep(500 * time.Millisecond)
	}

	types := map[string]dto.MetricType{
		"ulb_uptime_seconds":                           dto.MetricType_GAUGE,
		"ulb_port_receive_packets_total":               dto.MetricType_COUNTER,
		"ulb_port_receive_bytes_total":                 dto.MetricType_COUNTER,
		"ulb_port_transmit_packets_total":              dto.MetricType_COUNTER,
		"ulb_port_transmit_bytes_total":                dto.MetricType_COUNTER,
		"ulb_port_receive_drops_total":                 dto.MetricType_COUNTER,
		"ulb_port_transmit_errors_total":               dto.MetricType_COUNTER,
		"ulb_forwarded_packets_total":                  dto.MetricType_COUNTER,
		"ulb_local_packets_total":                      dto.MetricType_COUNTER,
		"ulb_rule_enabled":                             dto.MetricType_GAUGE,
		"ulb_rule_connections_active":                  dto.MetricType_GAUGE,
		"ulb_rule_connections_total":                   dto.MetricType_COUNTER,
		"ulb_rule_packets_total":                       dto.MetricType_COUNTER,
		"ulb_rule_bytes_total":                         dto.MetricType_COUNTER,
		"ulb_server_connections_active":                dto.MetricType_GAUGE,
		"ulb_server_connections_total":                 dto.MetricType_COUNTER,
		"ulb_server_bytes_total":                       dto.MetricType_COUNTER,
		"ulb_server_weight":                            dto.MetricType_GAUGE,
		"ulb_server_health":                            dto.MetricType_GAUGE,
		"ulb_server_admin_state":                       dto.MetricType_GAUGE,
		"ulb_vrrp_state":                               dto.MetricType_GAUGE,
		"ulb_vrrp_priority":                            dto.MetricType_GAUGE,
		"ulb_vrrp_transitions_total":                   dto.MetricType_COUNTER,
		"ulb_vrrp_adverts_sent_total":                  dto.MetricType_COUNTER,
		"ulb_conntrack_flows":                          dto.MetricType_GAUGE,
		"ulb_conntrack_capacity":                       dto.MetricType_GAUGE,
		"ulb_conntrack_inserted_total":                 dto.MetricType_COUNTER,
		"ulb_conntrack_evicted_total":                  dto.MetricType_COUNTER,
		"ulb_healthcheck_state":                        dto.MetricType_GAUGE,
		"ulb_healthcheck_last_success":                 dto.MetricType_GAUGE,
		"ulb_healthcheck_rtt_seconds":                  dto.MetricType_GAUGE,
		"ulb_healthcheck_last_check_timestamp_seconds": dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		f := before[name]
		if f == nil {
			t.Errorf("no family %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %s, want %s", name, f.GetType(), typ)
		}
	}
	if v, _ := metricValue(before, "ulb_vrrp_priority", map[string]string{"instance": "vip"}); v != 150 {
		t.Errorf("ulb_vrrp_priority %v, want 150", v)
	}
	if v, ok := metricValue(before, "ulb_healthcheck_rtt_seconds", map[string]string{"check": "web-tcp", "server": "203.0.113.201:80"}); !ok || v <= 0 || v > 1 {
		t.Errorf("ulb_healthcheck_rtt_seconds %v (%v), want a round trip of a fraction of a second", v, ok)
	}
	if v, _ := metricValue(before, "ulb_conntrack_capacity", nil); v <= 0 {
		t.Errorf("ulb_conntrack_capacity %v", v)
	}

	const conns = 20
	r := b.Check(ctx, bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: conns, ExpectNames: []string{"s1", "s2"}})
	if !r.Pass {
		t.Fatalf("%s", r)
	}
	after := scrape(t, lb)
	grew := func(name string, labels map[string]string, atLeast float64) {
		t.Helper()
		v0, _ := metricValue(before, name, labels)
		v1, ok := metricValue(after, name, labels)
		if !ok || v1-v0 < atLeast {
			t.Errorf("%s%v went from %v to %v, want at least %v more", name, labels, v0, v1, atLeast)
		}
	}
	web := map[string]string{"rule": "web"}
	grew("ulb_rule_connections_total", web, conns)
	grew("ulb_rule_packets_total", map[string]string{"rule": "web", "direction": "in"}, 3*conns)
	grew("ulb_rule_packets_total", map[string]string{"rule": "web", "direction": "out"}, 2*conns)
	grew("ulb_rule_bytes_total", map[string]string{"rule": "web", "direction": "out"}, 40*conns)
	grew("ulb_server_connections_total", map[string]string{"rule": "web", "server": "203.0.113.201:80"}, 1)
	grew("ulb_server_connections_total", map[string]string{"rule": "web", "server": "203.0.113.202:80"}, 1)
	grew("ulb_port_receive_packets_total", map[string]string{"port": "outside"}, 3*conns)
	grew("ulb_port_transmit_bytes_total", map[string]string{"port": "inside"}, 40*conns)
	grew("ulb_forwarded_packets_total", nil, 5*conns)
	grew("ulb_conntrack_inserted_total", nil, conns)
	var total float64
	for _, s := range []string{"203.0.113.201:80", "203.0.113.202:80"} {
		v, _ := metricValue(after, "ulb_server_connections_total", map[string]string{"rule": "web", "server": s})
		total += v
	}
	if rt, _ := metricValue(after, "ulb_rule_connections_total", web); rt != total {
		t.Errorf("rule connections %v, servers' sum %v", rt, total)
	}

	// The router's own address does not lead to the listener: it is the kernel's.
	if c, err := dialIn(b.Spec().Namespace("client"), netip.Addr{}, "198.51.100.10:9469"); err == nil {
		c.Close()
		t.Errorf("/metrics reachable through the router's address 198.51.100.10")
	}
}
