package format

import (
	"bytes"
	"strings"
	"testing"

	"ulb/router/control"
)

func TestEmptyLBTables(t *testing.T) {
	var b bytes.Buffer
	if err := Rules(&b, nil); err != nil {
		t.Fatal(err)
	}
	check(t, &b, "NAME  STATE  PROTO  VIP  PORTS  ALGORITHM  TOPOLOGY  PERSIST  DRAIN  SERVERGROUP  SERVERS  CONNS\n")
	b.Reset()
	if err := Conns(&b, control.ConnList{Total: 3}); err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
RULE  PROTO  CLIENT  VIP  PROXY  SERVER  STATE  AGE  IDLE  PACKETS  BYTES
(0 of 3 flows shown)
`)
	b.Reset()
	if err := ServerGroups(&b, []control.ServerGroupInfo{{Name: "empty"}}); err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
GROUP  ADDRESS  PORT  WEIGHT  MAX/MIN-CONNS  RULES
empty  -        -     -       -              -
`)
}

// TestServersOverloaded: an enabled server at its threshold shows overloaded, with its
// thresholds; a draining one shows draining.
func TestServersOverloaded(t *testing.T) {
	var b bytes.Buffer
	err := Servers(&b, []control.ServerInfo{
		{Rule: "r", Group: "g", Address: "203.0.113.1", Port: 80, Weight: 1, EffectiveWeight: 1, MaxConns: 4, MinConns: 2,
			Overloaded: true, State: control.ServerEnabled, Health: "up", Load: -1, ConnsActive: 4, ConnsTotal: 9},
		{Rule: "r", Group: "g", Address: "203.0.113.2", Port: 80, Weight: 1, EffectiveWeight: 1, MaxConns: 4, MinConns: 3,
			Overloaded: true, State: control.ServerDraining, Draining: 5, Health: "up", Load: -1, ConnsActive: 4, ConnsTotal: 4},
		{Rule: "r", Group: "g", Address: "203.0.113.3", Port: 80, Weight: 1, EffectiveWeight: 1,
			State: control.ServerEnabled, Health: "up", Load: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
RULE  GROUP  SERVER          WEIGHT  MAX/MIN-CONNS  STATE         HEALTH  LOAD  CONNS  TOTAL
r     g      203.0.113.1:80  1       4/2            overloaded    up      -     4      9
r     g      203.0.113.2:80  1       4/3            draining(5s)  up      -     4      4
r     g      203.0.113.3:80  1       -              enabled       up      -     0      0
`)
}

func TestRulesPersistence(t *testing.T) {
	var b bytes.Buffer
	err := Rules(&b, []control.RuleInfo{
		{Name: "all", VIP: "192.0.2.1", Ports: "1-65535", Protocol: "udp", Algorithm: "hash-ip", Topology: "dsr",
			PMask: 0, PersistTimeout: 60, ServerGroup: "g", Servers: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	// pmask 0 is persistence on every client (one server for all), not "none".
	check(t, &b, `
NAME  STATE     PROTO  VIP        PORTS    ALGORITHM  TOPOLOGY  PERSIST  DRAIN  SERVERGROUP  SERVERS  CONNS
all   disabled  udp    192.0.2.1  1-65535  hash-ip    dsr       /0,60s   -      g            3        0
`)
}

// TestPersistKeys: show-rule and show-persist say what a rule's persistence keys on.
func TestPersistKeys(t *testing.T) {
	var b bytes.Buffer
	rules := []control.RuleInfo{
		{Name: "sp", VIP: "192.0.2.1", Ports: "53", Protocol: "udp", Algorithm: "roundrobin", Topology: "half-nat",
			PMask: 32, PersistKey: "src+port", PersistTimeout: 300, ServerGroup: "g", Servers: 2},
		{Name: "dp", VIP: "192.0.2.1", Ports: "5060-5063", Protocol: "udp", Algorithm: "roundrobin", Topology: "half-nat",
			PMask: -1, PersistKey: "dst+port", PersistTimeout: 60, ServerGroup: "g", Servers: 2},
		{Name: "none", VIP: "192.0.2.1", Ports: "80", Protocol: "tcp", Algorithm: "roundrobin", Topology: "half-nat",
			PMask: -1, PersistKey: "src", ServerGroup: "g", Servers: 2},
	}
	if err := Rules(&b, rules); err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
NAME  STATE     PROTO  VIP        PORTS      ALGORITHM   TOPOLOGY  PERSIST        DRAIN  SERVERGROUP  SERVERS  CONNS
sp    disabled  udp    192.0.2.1  53         roundrobin  half-nat  /32+port,300s  -      g            2        0
dp    disabled  udp    192.0.2.1  5060-5063  roundrobin  half-nat  dst+port,60s   -      g            2        0
none  disabled  tcp    192.0.2.1  80         roundrobin  half-nat  -              -      g            2        0
`)
	b.Reset()
	if err := RulesFull(&b, rules[:2]); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "/32 and the client's port (src+port) for 300s") ||
		!strings.Contains(out, "per destination port (dst+port) for 60s") {
		t.Errorf("show-rule -f:\n%s", out)
	}
	b.Reset()
	err := Persist(&b, control.PersistList{Total: 2, Entries: []control.PersistInfo{
		{Rule: "sp", Client: "198.51.100.2/32", Key: "src+port", Port: 40000, Server: "203.0.113.201", Conns: 1},
		{Rule: "dp", Client: "192.0.2.1/32", Key: "dst+port", Port: 5061, Server: "203.0.113.202", Expires: 40},
	}})
	if err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
RULE  CLIENT                      SERVER         CONNS  EXPIRES
sp    198.51.100.2/32 port 40000  203.0.113.201  1      -
dp    to 192.0.2.1 port 5061      203.0.113.202  0      40s
`)
}

func TestComputeLBRates(t *testing.T) {
	snap := func(up int64, c control.LBCounters) *control.StatsInfo {
		return &control.StatsInfo{Uptime: up * 1e9, Rules: []control.RuleStats{{Name: "a", LBCounters: c}, {Name: "b"}}}
	}
	first := snap(10, control.LBCounters{ConnsActive: 7, ConnsTotal: 100, PacketsIn: 1000, BytesIn: 1_250_000,
		PacketsOut: 500, BytesOut: 2_500_000, Drops: 10})
	second := snap(12, control.LBCounters{ConnsActive: 4, ConnsTotal: 120, PacketsIn: 3000, BytesIn: 3_750_000,
		PacketsOut: 900, BytesOut: 5_000_000, Drops: 14})
	sel := func(s *control.StatsInfo) control.LBCounters { return Selected(s, false) }
	tests := []struct {
		name      string
		prev, cur *control.StatsInfo
		want      LBRates
	}{
		{"since start", nil, first, LBRates{Conns: 7, NewPS: 10, InPPS: 100, OutPPS: 50, InMbps: 1, OutMbps: 2, DropsPS: 1}},
		{"interval", first, second, LBRates{Conns: 4, NewPS: 10, InPPS: 1000, OutPPS: 200, InMbps: 10, OutMbps: 10, DropsPS: 2}},
		{"restarted", second, snap(2, control.LBCounters{ConnsActive: 1, ConnsTotal: 2}), LBRates{Conns: 1, NewPS: 1}},
		{"zero uptime", nil, snap(0, control.LBCounters{ConnsActive: 2, ConnsTotal: 5}), LBRates{Conns: 2}},
	}
	for _, tt := range tests {
		if got := ComputeLBRates(tt.prev, tt.cur, sel); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestSelected(t *testing.T) {
	s := &control.StatsInfo{
		Rules:   []control.RuleStats{{LBCounters: control.LBCounters{PacketsIn: 1}}, {LBCounters: control.LBCounters{PacketsIn: 2}}},
		Servers: []control.ServerStats{{LBCounters: control.LBCounters{PacketsIn: 10}}, {LBCounters: control.LBCounters{PacketsIn: 20}}},
	}
	if r, v := Selected(s, false), Selected(s, true); r.PacketsIn != 3 || v.PacketsIn != 30 {
		t.Errorf("Selected: rules %d, servers %d", r.PacketsIn, v.PacketsIn)
	}
}

func TestLBRateWriterRepeatsHeader(t *testing.T) {
	var b bytes.Buffer
	rw := NewLBRateWriter(&b)
	for i := range HeaderEvery + 1 {
		if err := rw.Write(LBRates{Conns: uint64(i), OutMbps: 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != HeaderEvery+3 || !strings.Contains(lines[0], "NEW/S") || lines[HeaderEvery+1] != lines[0] {
		t.Fatalf("%d lines:\n%s", len(lines), &b)
	}
	if want := "         2          0            0            0       0.00       0.50          0"; lines[3] != want {
		t.Errorf("line 3 = %q, want %q", lines[3], want)
	}
}
