package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"ulb/cmd/ulbadm/internal/fakeulbd"
	"ulb/router/control"
)

func run(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(context.Background(), args, &o, &e, func(k string) string { return env[k] })
	return o.String(), e.String(), code
}

func TestTables(t *testing.T) {
	sock := fakeulbd.Start(t)
	env := map[string]string{SocketEnv: sock}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"show-port"}, `
NAME     DEVICE  KIND      MAC                MTU   STATE  ADDRESSES
outside  eth1    afpacket  02:00:00:00:00:01  1500  up     198.51.100.10/24,2001:db8:1::10/64
inside   eth2    afpacket  02:00:00:00:00:02  9000  up     203.0.113.10/24
`},
		{[]string{"show-port", "inside"}, `
NAME    DEVICE  KIND      MAC                MTU   STATE  ADDRESSES
inside  eth2    afpacket  02:00:00:00:00:02  9000  up     203.0.113.10/24
`},
		{[]string{"show-route"}, `
PREFIX           VIA           PORT     KIND
0.0.0.0/0        198.51.100.1  outside  static
198.51.100.0/24  -             outside  connected
203.0.113.10/32  -             inside   local
`},
		{[]string{"show-neigh", "inside"}, `
PORT    ADDRESS        MAC  STATE       AGE
inside  203.0.113.200  -    incomplete  0s
`},
		{[]string{"show-stats"}, `
PORT     RX-PKTS  RX-BYTES  TX-PKTS  TX-BYTES  RX-DROPS  TX-ERRORS
outside  1000     1250000   1000     1250000   0         0
inside   1000     1250000   1000     1250000   0         0

FORWARDED  LOCAL  ICMP-SENT  DROPS
2000       5      4          10

DROP-REASON   PACKETS
no-route      6
ttl-exceeded  4

FLOWS  CAPACITY  INSERTED  EXPIRED  EVICTED-UNASSURED  EVICTED-CLOSING  EVICTED-IDLE  REFUSED
3      1024      3         0        0                  0                0             0

RULE  CONNS  TOTAL  PKTS-IN  BYTES-IN  PKTS-OUT  BYTES-OUT  DROPS
web   2      13     500      250000    400       1000000    1
web6  1      11     500      250000    400       1000000    1
`},
		{[]string{"show-stats", "1ms", "3"}, `
      RX-PPS       TX-PPS  RX-MBIT/S  TX-MBIT/S    DROPS/S
        2000         2000      20.00      20.00         10
        2000         2000      20.00      20.00         10
        2000         2000      20.00      20.00         10
`},
	}
	for _, tt := range tests {
		out, errOut, code := run(t, env, tt.args...)
		if want := strings.TrimPrefix(tt.want, "\n"); out != want || errOut != "" || code != ExitOK {
			t.Errorf("ulbadm %v: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", tt.args, code, errOut, out, want)
		}
	}
}

func TestStatsHeaderRepeats(t *testing.T) {
	out, _, code := run(t, map[string]string{SocketEnv: fakeulbd.Start(t)}, "show-stats", "0.001", "45")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != ExitOK || len(lines) != 48 {
		t.Fatalf("exit %d, %d lines:\n%s", code, len(lines), out)
	}
	for i, l := range lines {
		if isHeader := strings.Contains(l, "RX-PPS"); isHeader != (i%21 == 0) {
			t.Errorf("line %d header=%v: %q", i, isHeader, l)
		}
	}
}

func TestStatsStopsOnCancel(t *testing.T) {
	sock := fakeulbd.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var o, e bytes.Buffer
	code := Run(ctx, []string{"-s", sock, "show-stats", "20ms"}, &o, &e, func(string) string { return "" })
	if code != ExitOK || e.Len() != 0 || strings.Count(o.String(), "\n") < 2 {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, e.String(), o.String())
	}
}

func TestJSON(t *testing.T) {
	sock := fakeulbd.Start(t)
	out, errOut, code := run(t, nil, "-s", sock, "-o", "json", "show-port")
	var ports []control.PortInfo
	if code != ExitOK || errOut != "" || json.Unmarshal([]byte(out), &ports) != nil || !reflect.DeepEqual(ports, fakeulbd.Ports) {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	if !strings.HasPrefix(out, "[\n  {\n    \"name\": \"outside\",\n") {
		t.Errorf("not indented:\n%s", out)
	}
	out, _, code = run(t, nil, "-s", sock, "-o", "json", "show-stats", "1ms", "2")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != ExitOK || len(lines) != 2 {
		t.Fatalf("show-stats json: exit %d:\n%s", code, out)
	}
	var prev control.StatsInfo
	for i, l := range lines {
		var s control.StatsInfo
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("line %d = %s (%v)", i, l, err)
		}
		want := fakeulbd.Stats(i + 1)
		if s.Uptime != want.Uptime || !reflect.DeepEqual(s.Ports, want.Ports) || !reflect.DeepEqual(s.Drops, want.Drops) ||
			s.Forwarded != want.Forwarded || len(s.Rules) != 2 {
			t.Errorf("line %d = %s, want the data plane's %+v", i, l, want)
		}
		// A second of the balancer's traffic between the lines.
		if i > 0 && (s.Rules[0].PacketsIn-prev.Rules[0].PacketsIn != 500 || s.Rules[1].ConnsTotal-prev.Rules[1].ConnsTotal != 10) {
			t.Errorf("line %d: rules %+v after %+v", i, s.Rules, prev.Rules)
		}
		prev = s
	}
}

func TestSocketChoice(t *testing.T) {
	sock := fakeulbd.Start(t)
	missing := filepath.Join(t.TempDir(), "none.sock")
	// -s wins over the environment.
	if _, errOut, code := run(t, map[string]string{SocketEnv: missing}, "-s", sock, "show-route"); code != ExitOK {
		t.Errorf("-s over ULB_SOCKET: exit %d, %s", code, errOut)
	}
	_, errOut, code := run(t, map[string]string{SocketEnv: missing}, "show-route")
	if want := "ulbadm: cannot reach ulbd at " + missing + ": is it running?\n"; code != ExitError || errOut != want {
		t.Errorf("unreachable: exit %d, stderr %q, want %q", code, errOut, want)
	}
}

func TestErrors(t *testing.T) {
	sock := fakeulbd.Start(t)
	env := map[string]string{SocketEnv: sock}
	tests := []struct {
		args     []string
		code     int
		stderr   string // first line
		hasUsage bool
	}{
		{nil, ExitUsage, "ulbadm: no verb", true},
		{[]string{"frob-port"}, ExitUsage, `ulbadm: unknown verb "frob-port"`, true},
		{[]string{"-x", "show-port"}, ExitUsage, "ulbadm: flag provided but not defined: -x", true},
		{[]string{"-o", "yaml", "show-port"}, ExitUsage, `ulbadm: -o "yaml": the only output format is json`, true},
		{[]string{"show-route", "extra"}, ExitUsage, `ulbadm: show-route: unexpected argument "extra"`, true},
		{[]string{"show-port", "-v"}, ExitUsage, "ulbadm: show-port: flag provided but not defined: -v", true},
		{[]string{"show-stats", "fast"}, ExitUsage, `ulbadm: show-stats: bad interval "fast": want seconds or a duration like 500ms`, true},
		{[]string{"show-stats", "0"}, ExitUsage, `ulbadm: show-stats: interval "0" is not positive`, true},
		{[]string{"show-stats", "1", "-3"}, ExitUsage, `ulbadm: show-stats: bad count "-3": want a positive integer`, true},
		{[]string{"show-port", "nope"}, ExitError, `ulbadm: show-port: no port "nope"`, false},
		{[]string{"show-neigh", "nope"}, ExitError, `ulbadm: show-neigh: no port "nope"`, false},
	}
	for _, tt := range tests {
		out, errOut, code := run(t, env, tt.args...)
		first, rest, _ := strings.Cut(errOut, "\n")
		if code != tt.code || first != tt.stderr || out != "" || strings.Contains(rest, "usage: ulbadm") != tt.hasUsage {
			t.Errorf("ulbadm %q: exit %d (want %d), stdout %q, stderr:\n%s", tt.args, code, tt.code, out, errOut)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}} {
		out, errOut, code := run(t, nil, args...)
		if code != ExitOK || errOut != "" || !strings.HasPrefix(out, "usage: ulbadm [-s SOCKET] [-o json] VERB") {
			t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
		// Every verb has one line, of at most 80 columns.
		for _, v := range verbs {
			var lines []string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 0 && f[0] == v.name {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.HasSuffix(lines[0], "  "+v.short) || len(lines[0]) > 80 {
				t.Errorf("%v: the usage's lines for %s: %q, want one, with %q, within 80 columns", args, v.name, lines, v.short)
			}
		}
	}
	// help VERB: the verb's usage line and its details.
	for _, v := range verbs {
		out, errOut, code := run(t, nil, "help", v.name)
		want := strings.TrimSpace("usage: ulbadm [-s SOCKET] [-o json] "+v.name+" "+v.synopsis) + "\n\n"
		if code != ExitOK || errOut != "" || !strings.HasPrefix(out, want) || len(strings.Fields(out)) < len(strings.Fields(want+v.help)) {
			t.Errorf("help %s: exit %d, stderr %q, stdout:\n%s", v.name, code, errOut, out)
		}
	}
	for _, args := range [][]string{{"help", "nope"}, {"help", "show-port", "show-route"}} {
		if _, errOut, code := run(t, nil, args...); code != ExitUsage || !strings.Contains(errOut, "usage: ulbadm") {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, errOut)
		}
	}
}

func TestParseInterval(t *testing.T) {
	for in, want := range map[string]time.Duration{"1": time.Second, "0.5": 500 * time.Millisecond, "250ms": 250 * time.Millisecond, "2m": 2 * time.Minute} {
		if got, err := parseInterval(in); err != nil || got != want {
			t.Errorf("parseInterval(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "0s", "x", "1e300", "NaN"} {
		if _, err := parseInterval(in); err == nil {
			t.Errorf("parseInterval(%q) accepted", in)
		}
	}
}

func TestLBTables(t *testing.T) {
	sock := fakeulbd.Start(t)
	env := map[string]string{SocketEnv: sock}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"show-rule"}, `
NAME  STATE    PROTO  VIP              PORTS      ALGORITHM            TOPOLOGY  PERSIST   DRAIN  SERVERGROUP  SERVERS  CONNS
web   enabled  tcp    198.51.100.100   80         weighted-roundrobin  half-nat  /24,300s  30s    web          2        2
web6  enabled  tcp    2001:db8:1::100  8000-8099  maglev               full-nat  -         -      web6         1        1
`},
		{[]string{"show-rule", "-f", "web6"}, `
RULE:          web6
STATE:         enabled
VIP:           2001:db8:1::100
PORTS:         8000-8099
PROTOCOL:      tcp
ALGORITHM:     maglev
TOPOLOGY:      full-nat
PROXY-SOURCE:  2001:db8:2::50,2001:db8:2::51
PERSISTENCE:   none
CONN-DRAIN:    until the flows end
SERVERGROUP:   web6 (1 servers)
CONNS:         1
`},
		{[]string{"show-servergroup"}, `
GROUP  ADDRESS          PORT  WEIGHT  MAX/MIN-CONNS  RULES
web    203.0.113.200    80    1       -              web
web    203.0.113.210    80    3       1000/750       web
web6   2001:db8:2::200  -     1       -              web6
`},
		{[]string{"show-servergroup", "web6"}, `
GROUP  ADDRESS          PORT  WEIGHT  MAX/MIN-CONNS  RULES
web6   2001:db8:2::200  -     1       -              web6
`},
		{[]string{"show-server"}, `
RULE  GROUP  SERVER            WEIGHT  MAX/MIN-CONNS  STATE    HEALTH  LOAD  CONNS  TOTAL
web   web    203.0.113.200:80  1       -              enabled  up      -     2      3
web   web    203.0.113.210:80  3       1000/750       enabled  down    -     0      0
web6  web6   2001:db8:2::200   1/4     -              enabled  up      20    1      1
`},
		{[]string{"show-conn"}, `
RULE  PROTO  CLIENT                 VIP                     PROXY                  SERVER                  STATE        AGE   IDLE  PACKETS  BYTES
web   tcp    192.0.2.7:40001        198.51.100.100:80       -                      203.0.113.200:80        ESTABLISHED  12s   1s    40       9000
web   tcp    192.0.2.8:40002        198.51.100.100:80       -                      203.0.113.200:80        TIME_WAIT    30s   20s   12       1500
web6  tcp    [2001:db8:9::7]:50000  [2001:db8:1::100]:8042  [2001:db8:2::50]:1024  [2001:db8:2::200]:8042  ESTABLISHED  100s  5s    1000     1000000
`},
		// In rule, client and VIP order.
		{[]string{"show-conn", "-r", "web", "-s", "203.0.113.200", "1"}, `
RULE  PROTO  CLIENT           VIP                PROXY  SERVER            STATE        AGE  IDLE  PACKETS  BYTES
web   tcp    192.0.2.7:40001  198.51.100.100:80  -      203.0.113.200:80  ESTABLISHED  12s  1s    40       9000
(1 of 2 flows shown)
`},
		{[]string{"show-conn", "-s", "203.0.113.210"}, `
RULE  PROTO  CLIENT  VIP  PROXY  SERVER  STATE  AGE  IDLE  PACKETS  BYTES
`},
		{[]string{"show-persist", "-r", "web"}, `
RULE  CLIENT           SERVER            CONNS  EXPIRES
web   192.0.2.0/24     203.0.113.200:80  2      -
web   198.51.100.0/24  203.0.113.200:80  0      42s
`},
		{[]string{"show-persist", "1"}, `
RULE  CLIENT        SERVER            CONNS  EXPIRES
web   192.0.2.0/24  203.0.113.200:80  2      -
(1 of 2 entries shown)
`},
		{[]string{"show-stats", "-r", "web6"}, `
PORT     RX-PKTS  RX-BYTES  TX-PKTS  TX-BYTES  RX-DROPS  TX-ERRORS
outside  1000     1250000   1000     1250000   0         0
inside   1000     1250000   1000     1250000   0         0

FORWARDED  LOCAL  ICMP-SENT  DROPS
2000       5      4          10

DROP-REASON   PACKETS
no-route      6
ttl-exceeded  4

FLOWS  CAPACITY  INSERTED  EXPIRED  EVICTED-UNASSURED  EVICTED-CLOSING  EVICTED-IDLE  REFUSED
3      1024      3         0        0                  0                0             0

RULE  CONNS  TOTAL  PKTS-IN  BYTES-IN  PKTS-OUT  BYTES-OUT  DROPS
web6  1      11     500      250000    400       1000000    1

RULE  SERVER           CONNS  TOTAL  PKTS-IN  BYTES-IN  PKTS-OUT  BYTES-OUT  DROPS
web6  2001:db8:2::200  1      11     500      250000    400       1000000    0
`},
		// One line per interval: the rule's flows now and its rates (the first line's since
		// ulbd started: the fake's 3 flows before its ticks count).
		{[]string{"show-stats", "-r", "web", "1ms", "3"}, `
     CONNS      NEW/S       IN-PPS      OUT-PPS  IN-MBIT/S OUT-MBIT/S    DROPS/S
         2         12          500          400       2.00       8.00          1
         2         10          500          400       2.00       8.00          1
         2         10          500          400       2.00       8.00          1
`},
		// A server's rates sum its entries in every rule that uses it.
		{[]string{"show-stats", "-s", "203.0.113.210:80", "1ms", "2"}, `
     CONNS      NEW/S       IN-PPS      OUT-PPS  IN-MBIT/S OUT-MBIT/S    DROPS/S
         0          1          250          200       1.00       4.00          0
         0          1          250          200       1.00       4.00          0
`},
	}
	for _, tt := range tests {
		out, errOut, code := run(t, env, tt.args...)
		if want := strings.TrimPrefix(tt.want, "\n"); out != want || errOut != "" || code != ExitOK {
			t.Errorf("ulbadm %v: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", tt.args, code, errOut, out, want)
		}
	}
}

func TestServerAndRuleVerbs(t *testing.T) {
	sock := fakeulbd.Start(t)
	env := map[string]string{SocketEnv: sock}
	for _, args := range [][]string{
		{"disable-server", "203.0.113.200"},
		{"drain-server", "-g", "web", "203.0.113.210:80"},
		{"disable-rule", "web6"},
	} {
		if out, errOut, code := run(t, env, args...); code != ExitOK || out != "" || errOut != "" {
			t.Fatalf("ulbadm %v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	out, _, _ := run(t, env, "show-server", "web")
	want := `RULE  GROUP  SERVER            WEIGHT  MAX/MIN-CONNS  STATE         HEALTH  LOAD  CONNS  TOTAL
web   web    203.0.113.200:80  1       -              disabled      up      -     2      3
web   web    203.0.113.210:80  3       1000/750       draining(0s)  down    -     0      0
`
	if out != want {
		t.Errorf("show-server web after disable and drain:\n%s\nwant:\n%s", out, want)
	}
	if out, _, _ := run(t, env, "show-rule", "web6"); !strings.Contains(out, "web6  disabled") {
		t.Errorf("show-rule web6 after disable-rule:\n%s", out)
	}

	// -o json prints what changed.
	out, errOut, code := run(t, env, "-o", "json", "enable-server", "-r", "web", "203.0.113.200", "203.0.113.210")
	var changed []control.ServerInfo
	if code != ExitOK || errOut != "" || json.Unmarshal([]byte(out), &changed) != nil || len(changed) != 2 ||
		changed[0].State != control.ServerEnabled || changed[1].State != control.ServerEnabled || changed[1].Endpoint() != "203.0.113.210:80" {
		t.Errorf("enable-server -o json: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	out, errOut, code = run(t, env, "-o", "json", "enable-rule", "web6", "web")
	var rules []control.RuleInfo
	if code != ExitOK || errOut != "" || json.Unmarshal([]byte(out), &rules) != nil || len(rules) != 2 || !rules[0].Enabled || rules[0].Name != "web6" {
		t.Errorf("enable-rule -o json: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	if out, _, _ := run(t, env, "show-server"); strings.Contains(out, "disabled") || strings.Contains(out, "draining") {
		t.Errorf("show-server after enable-server:\n%s", out)
	}
}

func TestLBErrors(t *testing.T) {
	sock := fakeulbd.Start(t)
	env := map[string]string{SocketEnv: sock}
	tests := []struct {
		args     []string
		code     int
		stderr   string // first line
		hasUsage bool
	}{
		{[]string{"enable-server"}, ExitUsage, "ulbadm: enable-server: missing operand", true},
		{[]string{"drain-server", "-r", "web", "-g", "web", "203.0.113.200"}, ExitUsage, "ulbadm: drain-server: give -r RULE or -g GROUP, not both", true},
		{[]string{"disable-server", "web"}, ExitUsage, `ulbadm: disable-server: server "web" is not an address or address:port (like 203.0.113.200:80 or [2001:db8::200]:80)`, true},
		{[]string{"disable-server", "203.0.113.200:0"}, ExitUsage, `ulbadm: disable-server: server "203.0.113.200:0": port 0 is not a port`, true},
		{[]string{"enable-rule"}, ExitUsage, "ulbadm: enable-rule: missing operand", true},
		{[]string{"add-server", "-e", "203.0.113.9", "-l", "max-conns=many", "web"}, ExitUsage, `ulbadm: add-server: -l "max-conns=many": want max-conns=N[,min-conns=M]`, true},
		{[]string{"add-server", "-e", "203.0.113.9", "-l", "min-conns=3", "web"}, ExitUsage, "ulbadm: add-server: -l min-conns needs max-conns", true},
		{[]string{"create-servergroup", "-l", "maxconns=3", "g"}, ExitUsage, `ulbadm: create-servergroup: -l "maxconns=3": want max-conns=N[,min-conns=M]`, true},
		{[]string{"remove-server", "-s", "server=203.0.113.9", "-l", "max-conns=3", "web"}, ExitUsage, "ulbadm: remove-server: flag provided but not defined: -l", true},
		{[]string{"show-rule", "a", "b"}, ExitUsage, `ulbadm: show-rule: unexpected argument "b"`, true},
		{[]string{"show-conn", "0"}, ExitUsage, `ulbadm: show-conn: bad count "0": want a positive integer`, true},
		{[]string{"show-conn", "-s", "x"}, ExitUsage, `ulbadm: show-conn: server "x" is not an address or address:port (like 203.0.113.200:80 or [2001:db8::200]:80)`, true},
		{[]string{"show-persist", "-x"}, ExitUsage, "ulbadm: show-persist: flag provided but not defined: -x", true},
		{[]string{"show-stats", "-s", "nope"}, ExitUsage, `ulbadm: show-stats: server "nope" is not an address or address:port (like 203.0.113.200:80 or [2001:db8::200]:80)`, true},
		{[]string{"show-stats", "-r", "nope"}, ExitError, `ulbadm: show-stats: no rule "nope"`, false},
		{[]string{"show-stats", "-s", "192.0.2.1", "1"}, ExitError, `ulbadm: show-stats: no server 192.0.2.1`, false},
		{[]string{"show-rule", "nope"}, ExitError, `ulbadm: show-rule: no rule "nope"`, false},
		{[]string{"show-server", "nope"}, ExitError, `ulbadm: show-server: no rule "nope"`, false},
		{[]string{"show-servergroup", "nope"}, ExitError, `ulbadm: show-servergroup: no server group "nope" used by a rule`, false},
		{[]string{"enable-server", "-g", "nope", "203.0.113.200"}, ExitError, `ulbadm: enable-server: no server group "nope" used by a rule`, false},
		{[]string{"disable-server", "203.0.113.200", "192.0.2.99"}, ExitError, `ulbadm: disable-server: no server 192.0.2.99`, false},
		{[]string{"disable-rule", "web", "nope"}, ExitError, `ulbadm: disable-rule: no rule "nope"`, false},
		{[]string{"reload", "now"}, ExitUsage, `ulbadm: reload: unexpected argument "now"`, true},
		{[]string{"reload"}, ExitError, `ulbadm: reload: this ulbd cannot reload`, false}, // the fake has no file
		{[]string{"import-config"}, ExitUsage, `ulbadm: import-config: missing operand`, true},
		{[]string{"import-config", "/nonexistent/ulbd.toml"}, ExitError, `ulbadm: import-config: open /nonexistent/ulbd.toml: no such file or directory`, false},
		{[]string{"export-config", "x"}, ExitUsage, `ulbadm: export-config: unexpected argument "x"`, true},
		{[]string{"export-config"}, ExitError, `ulbadm: export-config: this ulbd has no configuration to export`, false},
	}
	for _, tt := range tests {
		out, errOut, code := run(t, env, tt.args...)
		first, rest, _ := strings.Cut(errOut, "\n")
		if code != tt.code || first != tt.stderr || out != "" || strings.Contains(rest, "usage: ulbadm") != tt.hasUsage {
			t.Errorf("ulbadm %q: exit %d (want %d), stdout %q, stderr:\n%s", tt.args, code, tt.code, out, errOut)
		}
	}
}

// TestRuleTOML: ilbadm's create-rule options become the [[rule]] table the file would
// hold; wrong ones are usage errors.
func TestRuleTOML(t *testing.T) {
	got, err := ruleTOML("web", true, true, "vip=198.51.100.100,port=80,protocol=TCP", "lbalg=roundrobin,type=HALF-NAT,pmask=24",
		"conn-drain=30,persist-timeout=60", "servergroup=web")
	want := `[[rule]]
name = "web"
vip = "198.51.100.100"
port = "80"
protocol = "tcp"
algorithm = "roundrobin"
topology = "half-nat"
pmask = "/24"
conn_drain = "30s"
persist_timeout = "60s"
servergroup = "web"
enabled = true
`
	if err != nil || got != want {
		t.Errorf("ruleTOML: %v\n%s\nwant\n%s", err, got, want)
	}
	got, err = ruleTOML("full", false, false, "vip=198.51.100.101,port=8000-8099", "type=NAT,proxy-src=203.0.113.50-203.0.113.52", "", "servergroup=web")
	if err != nil || !strings.Contains(got, `topology = "full-nat"`) || !strings.Contains(got, `proxy_source = ["203.0.113.50-203.0.113.52"]`) ||
		!strings.Contains(got, "enabled = false") || strings.Contains(got, "pmask") {
		t.Errorf("ruleTOML NAT: %v\n%s", err, got)
	}
	// persist-key: persistence without -p; dst+port has no client prefix.
	got, err = ruleTOML("sip", false, false, "vip=198.51.100.100,port=5060-5063,protocol=udp", "persist-key=DST+PORT", "", "servergroup=g")
	if err != nil || !strings.Contains(got, `persist_key = "dst+port"`) || strings.Contains(got, "pmask") {
		t.Errorf("ruleTOML dst+port: %v\n%s", err, got)
	}
	got, err = ruleTOML("dns", false, false, "vip=198.51.100.100,port=53,protocol=udp", "persist-key=src+port", "", "servergroup=g")
	if err != nil || !strings.Contains(got, `persist_key = "src+port"`) || !strings.Contains(got, `pmask = "/32"`) {
		t.Errorf("ruleTOML src+port: %v\n%s", err, got)
	}
	got, err = ruleTOML("tun", true, false, "vip=198.51.100.102,port=80", "type=TUNNEL,tunnel-src=198.51.100.10", "", "servergroup=web")
	if err != nil || !strings.Contains(got, `topology = "tunnel"`) || !strings.Contains(got, `tunnel_source = "198.51.100.10"`) {
		t.Errorf("ruleTOML TUNNEL: %v\n%s", err, got)
	}
	for _, tc := range []struct {
		in, m, tm, o, want string
		persist            bool
	}{
		{"port=80", "", "", "servergroup=g", "needs -i vip=", false},
		{"vip=192.0.2.1,port=80", "type=IPIP", "", "servergroup=g", "want DSR, NAT, HALF-NAT or TUNNEL", false},
		{"vip=192.0.2.1,port=80", "pmask=24", "", "servergroup=g", "pmask needs -p", false},
		{"vip=192.0.2.1,port=80", "", "nat-timeout=5", "servergroup=g", `-t "nat-timeout=5"`, false},
		{"vip=192.0.2.1,port=80", "", "conn-drain=x", "servergroup=g", "want seconds", false},
		{"vip=192.0.2.1,colour=red", "", "", "servergroup=g", `-i "colour=red"`, false},
	} {
		if _, err := ruleTOML("r", false, tc.persist, tc.in, tc.m, tc.tm, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ruleTOML(%q, %q, %q, %q): %v, want %q", tc.in, tc.m, tc.tm, tc.o, err, tc.want)
		}
	}
}

// TestHealthCheckTOML: ilbadm's -h options become a [[healthcheck]] table.
func TestHealthCheckTOML(t *testing.T) {
	got, err := healthCheckTOML("hc1", "hc-test=TCP,hc-timeout=2,hc-interval=5,hc-count=3")
	if want := "[[healthcheck]]\nname = \"hc1\"\ntest = \"tcp\"\ntimeout = \"2s\"\ninterval = \"5s\"\ncount = 3\n"; err != nil || got != want {
		t.Errorf("healthCheckTOML: %v\n%q\nwant\n%q", err, got, want)
	}
	if got, err := healthCheckTOML("s", "hc-test=/opt/check.sh"); err != nil || !strings.Contains(got, `command = ["/opt/check.sh"]`) {
		t.Errorf("script: %v %q", err, got)
	}
	for _, bad := range []string{"hc-timeout=2", "hc-test=TCP,hc-count=x", "hc-test=TCP,hc-port=80", "hc-test=TCP,hc-interval=0"} {
		if _, err := healthCheckTOML("x", bad); err == nil {
			t.Errorf("healthCheckTOML(%q) accepted", bad)
		}
	}
}
