package control

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestParseServerRef(t *testing.T) {
	a := netip.MustParseAddr
	good := []struct {
		in   string
		addr netip.Addr
		port uint16
	}{
		{"203.0.113.200", a("203.0.113.200"), 0},
		{"203.0.113.200:80", a("203.0.113.200"), 80},
		{"2001:db8::200", a("2001:db8::200"), 0},
		{"[2001:db8::200]", a("2001:db8::200"), 0},
		{"[2001:db8::200]:8080", a("2001:db8::200"), 8080},
		{"[::ffff:203.0.113.7]:80", a("203.0.113.7"), 80},
	}
	for _, tt := range good {
		addr, port, err := ParseServerRef(tt.in)
		if err != nil || addr != tt.addr || port != tt.port {
			t.Errorf("ParseServerRef(%q) = %v, %d, %v; want %v, %d", tt.in, addr, port, err, tt.addr, tt.port)
		}
	}
	for _, in := range []string{"", "web", "203.0.113.200:0", "203.0.113.200:70000", "2001:db8::200:80:x", "fe80::1%eth0", "203.0.113.0/24"} {
		if _, _, err := ParseServerRef(in); err == nil {
			t.Errorf("ParseServerRef(%q) accepted", in)
		}
	}
}

func TestMatchServer(t *testing.T) {
	a := netip.MustParseAddr("203.0.113.200")
	b := netip.MustParseAddr("203.0.113.201")
	for _, tt := range []struct {
		refPort, port uint16
		addr          netip.Addr
		want          bool
	}{
		{0, 80, a, true}, {0, 0, a, true}, {80, 80, a, true},
		{80, 81, a, false}, {80, 0, a, false}, {0, 80, b, false},
	} {
		if got := MatchServer(a, tt.refPort, tt.addr, tt.port); got != tt.want {
			t.Errorf("MatchServer(%v, %d, %v, %d) = %v", a, tt.refPort, tt.addr, tt.port, got)
		}
	}
}

func TestEndpoint(t *testing.T) {
	for _, tt := range []struct {
		s    ServerInfo
		want string
	}{
		{ServerInfo{Address: "203.0.113.200"}, "203.0.113.200"},
		{ServerInfo{Address: "203.0.113.200", Port: 80}, "203.0.113.200:80"},
		{ServerInfo{Address: "2001:db8::200", Port: 80}, "[2001:db8::200]:80"},
	} {
		if got := tt.s.Endpoint(); got != tt.want {
			t.Errorf("Endpoint(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
	m := GroupMember{Address: "2001:db8::1"}
	st := ServerStats{Address: "203.0.113.9", Port: 53}
	if m.Endpoint() != "2001:db8::1" || st.Endpoint() != "203.0.113.9:53" {
		t.Errorf("Endpoint = %q, %q", m.Endpoint(), st.Endpoint())
	}
}

func TestLBCountersJSON(t *testing.T) {
	var c LBCounters
	c.Add(LBCounters{ConnsActive: 1, ConnsTotal: 2, PacketsIn: 3, BytesIn: 4, PacketsOut: 5, BytesOut: 6, Drops: 7})
	c.Add(LBCounters{ConnsActive: 10, ConnsTotal: 20, PacketsIn: 30, BytesIn: 40, PacketsOut: 50, BytesOut: 60, Drops: 70})
	want := LBCounters{ConnsActive: 11, ConnsTotal: 22, PacketsIn: 33, BytesIn: 44, PacketsOut: 55, BytesOut: 66, Drops: 77}
	if c != want {
		t.Errorf("Add: %+v, want %+v", c, want)
	}
	in := StatsInfo{Uptime: 5, Drops: map[string]uint64{},
		Rules:   []RuleStats{{Name: "web", LBCounters: c}},
		Servers: []ServerStats{{Rule: "web", Group: "g", Address: "203.0.113.200", Port: 80, LBCounters: want}}}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out StatsInfo
	if err := json.Unmarshal(raw, &out); err != nil || !reflect.DeepEqual(in, out) {
		t.Errorf("round trip: %v\n%s\n%+v", err, raw, out)
	}
	var flat map[string]any
	json.Unmarshal(raw, &flat)
	r := flat["rules"].([]any)[0].(map[string]any)
	if r["name"] != "web" || r["conns_active"] != float64(11) {
		t.Errorf("rule counters are not flat in JSON: %s", raw)
	}
}

func TestHealthJSON(t *testing.T) {
	last := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	in := []HCResult{
		{Group: "web", Rules: []string{"web"}, Address: "2001:db8::200", Port: 80, Check: "web-tcp", Test: "tcp",
			State: HealthDown, LastResult: "fail: connection refused", Fails: 3, Load: -1, Last: last, Next: last.Add(5 * time.Second)},
		{Group: "web", Rules: []string{}, Address: "203.0.113.200", Check: "load", Test: "agent", State: HealthUnknown, Load: 0},
	}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out []HCResult
	if err := json.Unmarshal(raw, &out); err != nil || !reflect.DeepEqual(in, out) {
		t.Errorf("round trip: %v\n%s\n%+v", err, raw, out)
	}
	var flat []map[string]any
	json.Unmarshal(raw, &flat)
	if _, has := flat[1]["last"]; has || flat[1]["load"] != float64(0) || flat[0]["load"] != float64(-1) || flat[1]["last_result"] != nil {
		t.Errorf("a result without a check has times, a result, or lost its load: %s", raw)
	}
	if in[0].Endpoint() != "[2001:db8::200]:80" || in[1].Endpoint() != "203.0.113.200" {
		t.Errorf("Endpoint = %q, %q", in[0].Endpoint(), in[1].Endpoint())
	}

	hc := HealthCheckInfo{Name: "dns", Test: "udp", Interval: 5000, Timeout: 2000, Count: 3, Rise: 2,
		Groups: []string{"dns"}, Send: "ping"}
	raw, _ = json.Marshal(hc)
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, k := range []string{"path", "host", "expect_status", "expect_body", "agent_port", "command", "port", "expect"} {
		if _, has := m[k]; has {
			t.Errorf("udp check carries %q: %s", k, raw)
		}
	}
	if m["interval_ms"] != float64(5000) || m["send"] != "ping" {
		t.Errorf("HealthCheckInfo JSON: %s", raw)
	}

	ev := Event{Kind: EventHealth, Name: "web/203.0.113.200:80", From: HealthUp, To: HealthDown}
	if !(WatchArgs{Kind: EventHealth}).Match(ev) || (WatchArgs{Kind: EventVRRP}).Match(ev) {
		t.Error("watch filter on kind health")
	}
	si := ServerInfo{Health: HealthDown, Load: -1, EffectiveWeight: 0}
	raw, _ = json.Marshal(si)
	json.Unmarshal(raw, &m)
	if m["health"] != "down" || m["load"] != float64(-1) || m["effective_weight"] != float64(0) {
		t.Errorf("ServerInfo JSON: %s", raw)
	}
}
