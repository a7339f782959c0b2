package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"ulb/balancer/health"
)

func TestHealthCheckAccessors(t *testing.T) {
	cfg, err := Load("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.HealthCheck("dns-udp"); h == nil || h.Test != health.TestUDP || cfg.HealthCheck("nope") != nil {
		t.Errorf("HealthCheck(dns-udp) = %+v", h)
	}

	// Check() gives the engine what the file said; the engine accepts every check.
	udp := cfg.HealthCheck("dns-udp").Check()
	if string(udp.Send) != "ping" || string(udp.Expect) != "pong" || udp.Interval != health.DefaultInterval || udp.Name != "dns-udp" {
		t.Errorf("dns-udp Check() = %+v", udp)
	}
	web := cfg.HealthCheck("web-http").Check()
	if web.Path != "/healthz" || web.Host != "www.example.com" || web.ExpectStatus != 204 || web.Port != 8080 ||
		web.ExpectBody == nil || !web.ExpectBody.MatchString("ok") || web.Count != 2 || web.Rise != 4 {
		t.Errorf("web-http Check() = %+v", web)
	}
	if c := cfg.HealthCheck("web-tcp").Check(); c.Send != nil || c.Expect != nil {
		t.Errorf("tcp Check() has udp fields: %+v", c)
	}
	script := cfg.HealthCheck("custom")
	sc := script.Check()
	sc.Command[0] = "changed"
	if script.Command[0] != "testdata/check.sh" {
		t.Errorf("Check() shares the command slice: %q", script.Command)
	}
	checks := map[string]health.Check{}
	for i := range cfg.HealthChecks {
		checks[cfg.HealthChecks[i].Name] = cfg.HealthChecks[i].Check()
	}
	e := health.New(health.Config{})
	if err := e.Set(checks, nil); err != nil {
		t.Fatalf("engine refuses the checks: %v", err)
	}
	for _, c := range e.Checks() {
		want := checks[c.Name]
		if c.Interval != want.Interval || c.Timeout != want.Timeout || c.Count != want.Count || c.Rise != want.Rise ||
			c.AgentPort != want.AgentPort || c.ExpectStatus != want.ExpectStatus || c.Path != want.Path {
			t.Errorf("engine changed check %q: %+v, config said %+v", c.Name, c, want)
		}
	}
}

func TestHealthCheckDefaults(t *testing.T) {
	cfg, err := Parse("t.toml", []byte(ports+`
[[healthcheck]]
name = "h"
test = "http"

[[healthcheck]]
name = "a"
test = "agent"
interval = "3s"

[[servergroup]]
name = "g"
healthcheck = "h"
server = ["203.0.113.200:80"]

[[rule]]
name = "r"
vip = "198.51.100.100"
port = 80
topology = "full-nat"
proxy_source = "203.0.113.50"
servergroup = "g"
sorry_server = "203.0.113.99"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []HealthCheck{
		{Name: "h", Test: "http", Interval: health.DefaultInterval, Timeout: health.DefaultTimeout,
			Count: health.DefaultCount, Rise: health.DefaultRise, Path: "/", ExpectStatus: health.DefaultExpectStatus},
		{Name: "a", Test: "agent", Interval: 3 * time.Second, Timeout: health.DefaultTimeout,
			Count: health.DefaultCount, Rise: health.DefaultRise, AgentPort: health.DefaultAgentPort},
	}
	if !reflect.DeepEqual(cfg.HealthChecks, want) {
		t.Errorf("HealthChecks:\n got %+v\nwant %+v", cfg.HealthChecks, want)
	}
	r := cfg.Rule("r")
	if r.SorryServer != netip.AddrPortFrom(netip.MustParseAddr("203.0.113.99"), 0) || r.KeepFlowsOnDown {
		t.Errorf("rule: sorry %v keep %v", r.SorryServer, r.KeepFlowsOnDown)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if cfg.ServerGroup("g").HealthCheck != "h" {
		t.Errorf("group: %+v", cfg.ServerGroup("g"))
	}
}

func TestHealthCheckScriptPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "check")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("echo 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "ulbd.toml")
	for _, tt := range []struct {
		command string
		want    string // Command[0], or the error's end
		ok      bool
	}{
		{`["` + exe + `"]`, exe, true},
		{`["./check", "x"]`, exe, true},
		{`["sh", "-c", "echo 0"]`, "sh", true},
		{`["` + plain + `"]`, `healthcheck "s": command "` + plain + `" is not an executable program: permission denied`, false},
		{`["./none"]`, `is not an executable program: no such file or directory`, false},
		{`["no-such-program-ulbt"]`, `is not an executable program: executable file not found in $PATH`, false},
		{`["` + dir + `"]`, `is not an executable program: is a directory`, false},
	} {
		data := ports + "[[healthcheck]]\nname = \"s\"\ntest = \"script\"\ncommand = " + tt.command + "\n"
		cfg, err := Parse(file, []byte(data))
		if tt.ok {
			if err != nil || cfg.HealthChecks[0].Command[0] != tt.want {
				t.Errorf("command %s: %v, %+v", tt.command, err, cfg)
			}
			continue
		}
		got := issueLines(t, err)
		if len(got) != 1 || !strings.HasPrefix(got[0], "13: ") || !strings.HasSuffix(got[0], tt.want) {
			t.Errorf("command %s: issues %q, want one at line 13 ending %q", tt.command, got, tt.want)
		}
	}
}

func TestParseHealthCheckErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string
	}{
		{"keys and values", ports + `
[[healthcheck]]
name = "a b"
test = "tcp"

[[healthcheck]]
name = "t"
test = "smtp"

[[healthcheck]]
name = "t2"

[[healthcheck]]
test = "ping"

[[healthcheck]]
name = "dup"
test = "ping"

[[healthcheck]]
name = "dup"
test = "ping"

[[healthcheck]]
name = "timing"
test = "tcp"
interval = "1s"
timeout = "1s"
count = 0
rise = 101

[[healthcheck]]
name = "short"
test = "tcp"
interval = "1s"

[[healthcheck]]
name = "ranges"
test = "tcp"
interval = "2h"
timeout = "1ms"
port = 0

[[healthcheck]]
name = "strange"
test = "ping"
interval = "fast"
timeout = 5
count = "3"
colour = "red"
`,
			[]string{
				`12: healthcheck name "a b": character ' ' is not allowed (letters, digits, '-', '_', '.')`,
				`17: healthcheck "t": unknown test "smtp": want one of ping, tcp, udp, http, agent, script`,
				`19: healthcheck "t2" needs a test (ping, tcp, udp, http, agent, script)`,
				`22: [[healthcheck]] needs a name`,
				`30: duplicate healthcheck name "dup" (first defined at line 26)`,
				`37: healthcheck "timing": timeout 1s must be shorter than interval 1s`,
				`38: healthcheck "timing": count 0 out of range 1..100`,
				`39: healthcheck "timing": rise 101 out of range 1..100`,
				`44: healthcheck "short": interval 1s is not longer than the default timeout 2s: set a shorter timeout`,
				`49: healthcheck "ranges": interval 2h out of range 100ms..1h`,
				`50: healthcheck "ranges": timeout 1ms out of range 10ms..1h`,
				`51: healthcheck "ranges": port 0 out of range 1..65535`,
				`56: healthcheck "strange": interval "fast" is not a duration (like "90s", "15m" or "1h30m")`,
				`57: healthcheck "strange": timeout must be a duration string like "60s", not integer 5`,
				`58: healthcheck "strange": count must be an integer, not string "3"`,
				`59: unknown key "colour" in [[healthcheck]]`,
			}},
		{"keys of other tests", ports + `
[[healthcheck]]
name = "tcp"
test = "tcp"
path = "/"
send = "x"

[[healthcheck]]
name = "ping"
test = "ping"
port = 80

[[healthcheck]]
name = "agent"
test = "agent"
port = 80
expect_status = 200

[[healthcheck]]
name = "http"
test = "http"
command = ["/bin/sh"]
agent_port = 1
`,
			[]string{
				`14: healthcheck "tcp": path does not apply to test tcp (its keys: port)`,
				`15: healthcheck "tcp": send does not apply to test tcp (its keys: port)`,
				`20: healthcheck "ping": port does not apply to test ping (it has no keys of its own)`,
				`25: healthcheck "agent": port does not apply to test agent (its keys: agent_port)`,
				`26: healthcheck "agent": expect_status does not apply to test agent (its keys: agent_port)`,
				`31: healthcheck "http": command does not apply to test http (its keys: port, path, host, expect_status, expect_body)`,
				`32: healthcheck "http": agent_port does not apply to test http (its keys: port, path, host, expect_status, expect_body)`,
			}},
		{"test settings", ports + `
[[healthcheck]]
name = "u1"
test = "udp"

[[healthcheck]]
name = "u2"
test = "udp"
send = ""
expect = 5

[[healthcheck]]
name = "h"
test = "http"
path = "healthz"
host = "a b"
expect_status = 99
expect_body = "ok("

[[healthcheck]]
name = "h2"
test = "http"
path = 1
expect_body = "(?P<x"

[[healthcheck]]
name = "ag"
test = "agent"
agent_port = 65536

[[healthcheck]]
name = "s1"
test = "script"

[[healthcheck]]
name = "s2"
test = "script"
command = "/bin/sh"

[[healthcheck]]
name = "s3"
test = "script"
command = []

[[healthcheck]]
name = "s4"
test = "script"
command = ["/bin/sh", 4]
`,
			[]string{
				`11: healthcheck "u1": a udp check needs send, the datagram to send`,
				`18: healthcheck "u2": send must be 1 to 1024 bytes`,
				`19: healthcheck "u2": expect must be a string, not integer 5`,
				`24: healthcheck "h": path "healthz" must start with / and hold no white space`,
				`25: healthcheck "h": host "a b" must be a host name or address (with an optional :port)`,
				`26: healthcheck "h": expect_status 99 out of range 100..599`,
				"27: healthcheck \"h\": expect_body \"ok(\" is not a Go regular expression: error parsing regexp: missing closing ): `ok(`",
				`32: healthcheck "h2": path must be a string, not integer 1`,
				"33: healthcheck \"h2\": expect_body \"(?P<x\" is not a Go regular expression: error parsing regexp: invalid named capture: `(?P<x`",
				`38: healthcheck "ag": agent_port 65536 out of range 1..65535`,
				`40: healthcheck "s1": a script check needs command, like ["/usr/local/bin/check", "arg"]`,
				`47: healthcheck "s2": command must be a list of strings like ["/usr/local/bin/check", "arg"], not string "/bin/sh"`,
				`52: healthcheck "s3": command is empty: give the program and its first arguments`,
				`57: healthcheck "s4": command[1] must be a string, not integer 4`,
			}},
		{"groups", ports + `
[[healthcheck]]
name = "ok"
test = "tcp"

[[healthcheck]]
name = "bad"
test = "nope"

[[servergroup]]
name = "a"
healthcheck = "ok"
server = ["203.0.113.200"]

[[servergroup]]
name = "b"
healthcheck = "missing"
server = ["203.0.113.201"]

[[servergroup]]
name = "c"
healthcheck = "bad"
server = ["203.0.113.202"]

[[rule]]
name = "r"
vip = "198.51.100.100"
port = 80
servergroup = "c"
`,
			[]string{
				`17: healthcheck "bad": unknown test "nope": want one of ping, tcp, udp, http, agent, script`,
				`26: servergroup "b": unknown healthcheck "missing" (healthchecks: "ok")`,
			}},
		{"sorry server", ports + `
[[servergroup]]
name = "g4"
server = ["203.0.113.200"]

[[servergroup]]
name = "g6"
server = ["[2001:db8:1::200]:80"]

[[rule]]
name = "dsr"
vip = "198.51.100.100"
port = 80
topology = "dsr"
servergroup = "g4"
sorry_server = "203.0.113.99"

[[rule]]
name = "family"
vip = "198.51.100.101"
port = 80
servergroup = "g4"
sorry_server = "[2001:db8:1::99]:80"

[[rule]]
name = "own"
vip = "198.51.100.102"
port = 80
servergroup = "g4"
sorry_server = "203.0.113.10"

[[rule]]
name = "self"
vip = "198.51.100.103"
port = 80
servergroup = "g4"
sorry_server = "198.51.100.103:80"

[[rule]]
name = "syntax"
vip = "198.51.100.104"
port = 80
servergroup = "g4"
sorry_server = "sorry.example.com"

[[rule]]
name = "range"
vip = "198.51.100.105"
port = "8000-8099"
servergroup = "g4"
sorry_server = "203.0.113.99:65500"

[[rule]]
name = "proxy"
vip = "198.51.100.106"
port = 80
topology = "full-nat"
proxy_source = "203.0.113.50"
servergroup = "g4"
sorry_server = "203.0.113.50"

[[rule]]
name = "vip"
vip = "2001:db8:1::100"
port = 80
servergroup = "g6"
sorry_server = "[2001:db8:1::101]:80"

[[rule]]
name = "other-vip"
vip = "2001:db8:1::101"
port = 80
servergroup = "g6"

[[rule]]
name = "fn"
vip = "198.51.100.107"
port = 80
topology = "full-nat"
proxy_source = "203.0.113.51"
servergroup = "g4"

[[rule]]
name = "other-proxy"
vip = "198.51.100.108"
port = 80
servergroup = "g4"
sorry_server = "203.0.113.51:80"

[[rule]]
name = "zero"
vip = "198.51.100.109"
port = 80
servergroup = "g4"
sorry_server = 5
keep_flows_on_down = "yes"
`,
			[]string{
				`25: rule "dsr": sorry_server applies only to topology half-nat or full-nat, not dsr`,
				`32: rule "family": sorry_server 2001:db8:1::99 is IPv6 but the VIP 198.51.100.101 is IPv4`,
				`39: rule "own": sorry_server 203.0.113.10 is the router's own address on port "inside"`,
				`46: rule "self": sorry_server 198.51.100.103 is the rule's VIP`,
				`53: rule "syntax": sorry_server: server "sorry.example.com" is not an address or address:port (like "203.0.113.200:80" or "[2001:db8::200]:80")`,
				`60: rule "range": port range 8000-8099 maps onto ports 65500-65599 of sorry_server 203.0.113.99:65500, past 65535`,
				`69: rule "proxy": sorry_server 203.0.113.50 is one of the rule's proxy_source addresses`,
				`76: rule "vip": sorry_server 2001:db8:1::101 is the VIP of rule "other-vip"`,
				`97: rule "other-proxy": sorry_server 203.0.113.51 is a proxy_source of rule "fn"`,
				`104: rule "zero": sorry_server must be a string, not integer 5`,
				`105: rule "zero": keep_flows_on_down must be true or false, not string "yes"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.toml", []byte(tt.toml))
			if err == nil {
				t.Fatalf("Parse accepted the file: %+v", cfg)
			}
			got := issueLines(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("issues:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestKeepFlowsWithoutCheckWarns(t *testing.T) {
	cfg, err := Parse("t.toml", []byte(ports+`
[[servergroup]]
name = "g"
server = ["203.0.113.200"]

[[rule]]
name = "r"
vip = "198.51.100.100"
port = 80
servergroup = "g"
keep_flows_on_down = true
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].String() != `t.toml:20: rule "r": keep_flows_on_down has no effect: servergroup "g" has no healthcheck` {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if !cfg.Rule("r").KeepFlowsOnDown {
		t.Error("keep_flows_on_down not kept")
	}
}
