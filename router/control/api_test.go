package control

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
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
