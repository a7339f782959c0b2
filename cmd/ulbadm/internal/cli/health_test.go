package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"ulb/cmd/ulbadm/internal/fakeulbd"
	"ulb/router/control"
)

func TestHealthTables(t *testing.T) {
	env := map[string]string{SocketEnv: fakeulbd.Start(t)}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"show-hc-result"}, `
RULES  GROUP  SERVER            CHECK    TEST   STATE  FAILS  RTT    LOAD  LAST      NEXT      LAST-RESULT
web    web    203.0.113.200:80  web-tcp  tcp    up     0      350µs  -     03:04:05  03:04:10  ok
web    web    203.0.113.210:80  web-tcp  tcp    down   3      -      -     03:04:06  03:04:11  fail: connection refused
web6   web6   2001:db8:2::200   load     agent  up     0      1.2ms  20    03:04:07  03:04:12  ok
`},
		{[]string{"show-hc-result", "-r", "web", "203.0.113.210"}, `
RULES  GROUP  SERVER            CHECK    TEST  STATE  FAILS  RTT  LOAD  LAST      NEXT      LAST-RESULT
web    web    203.0.113.210:80  web-tcp  tcp   down   3      -    -     03:04:06  03:04:11  fail: connection refused
`},
		{[]string{"show-hc-result", "-g", "web6"}, `
RULES  GROUP  SERVER           CHECK  TEST   STATE  FAILS  RTT    LOAD  LAST      NEXT      LAST-RESULT
web6   web6   2001:db8:2::200  load   agent  up     0      1.2ms  20    03:04:07  03:04:12  ok
`},
		{[]string{"show-healthcheck"}, `
NAME      TEST    INTERVAL  TIMEOUT  COUNT  RISE  PORT  GROUPS  SETTINGS
web-tcp   tcp     5s        2s       3      2     -     web     -
load      agent   5s        2s       3      2     -     web6    agent_port=7777
web-http  http    10s       500ms    2      4     8080  -       path=/healthz host=www.example.com status=200 body="^ok( [0-9]+)?$"
dns       udp     1s        500ms    3      2     -     -       send=ping expect="pong 1"
custom    script  1m        5s       1      1     -     -       command=[/usr/local/bin/check --quiet]
`},
		{[]string{"show-healthcheck", "dns"}, `
NAME  TEST  INTERVAL  TIMEOUT  COUNT  RISE  PORT  GROUPS  SETTINGS
dns   udp   1s        500ms    3      2     -     -       send=ping expect="pong 1"
`},
	}
	for _, tt := range tests {
		out, errOut, code := run(t, env, tt.args...)
		if want := strings.TrimPrefix(tt.want, "\n"); out != want || errOut != "" || code != ExitOK {
			t.Errorf("ulbadm %v: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", tt.args, code, errOut, out, want)
		}
	}
}

func TestHealthJSON(t *testing.T) {
	env := map[string]string{SocketEnv: fakeulbd.Start(t)}
	out, errOut, code := run(t, env, "-o", "json", "show-hc-result", "-g", "web")
	var results []control.HCResult
	if code != ExitOK || errOut != "" || json.Unmarshal([]byte(out), &results) != nil || len(results) != 2 {
		t.Fatalf("show-hc-result -o json: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	wants := []control.HCResult{
		{Group: "web", Rules: []string{"web"}, Address: "203.0.113.200", Port: 80, Check: "web-tcp", Test: "tcp",
			State: control.HealthUp, LastResult: "ok", RTT: 350, Successes: 12, Load: -1,
			Last: fakeulbd.HCResults[0].Last, Next: fakeulbd.HCResults[0].Next},
		{Group: "web", Rules: []string{"web"}, Address: "203.0.113.210", Port: 80, Check: "web-tcp", Test: "tcp",
			State: control.HealthDown, LastResult: "fail: connection refused", Fails: 3, Load: -1,
			Last: fakeulbd.HCResults[1].Last, Next: fakeulbd.HCResults[1].Next},
	}
	for i := range results {
		want := wants[i]
		if !results[i].Last.Equal(want.Last) || !results[i].Next.Equal(want.Next) {
			t.Errorf("result %d times %v %v, want %v %v", i, results[i].Last, results[i].Next, want.Last, want.Next)
		}
		results[i].Last, results[i].Next = want.Last, want.Next
		if !reflect.DeepEqual(results[i], want) {
			t.Errorf("result %d = %+v, want %+v", i, results[i], want)
		}
	}
	out, _, code = run(t, env, "-o", "json", "show-healthcheck", "web-http")
	var checks []control.HealthCheckInfo
	webHTTP := []control.HealthCheckInfo{{Name: "web-http", Test: "http", Interval: 10000, Timeout: 500, Count: 2, Rise: 4,
		Port: 8080, Path: "/healthz", Host: "www.example.com", ExpectStatus: 200, ExpectBody: "^ok( [0-9]+)?$"}}
	if code != ExitOK || json.Unmarshal([]byte(out), &checks) != nil || !reflect.DeepEqual(checks, webHTTP) {
		t.Errorf("show-healthcheck -o json: exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, `"expect_body": "^ok( [0-9]+)?$"`) || strings.Contains(out, `"send"`) {
		t.Errorf("show-healthcheck -o json carries the wrong fields:\n%s", out)
	}
	out, _, _ = run(t, env, "-o", "json", "show-server", "web6")
	var servers []control.ServerInfo
	if json.Unmarshal([]byte(out), &servers) != nil || len(servers) != 1 || servers[0].Health != control.HealthUp ||
		servers[0].Load != 20 || servers[0].EffectiveWeight != 4 {
		t.Errorf("show-server -o json:\n%s", out)
	}
}

func TestHealthErrors(t *testing.T) {
	env := map[string]string{SocketEnv: fakeulbd.Start(t)}
	tests := []struct {
		args     []string
		code     int
		stderr   string // first line
		hasUsage bool
	}{
		{[]string{"show-hc-result", "-r", "web", "-g", "web"}, ExitUsage, "ulbadm: show-hc-result: give -r or -g, not both", true},
		{[]string{"show-hc-result", "web"}, ExitUsage, `ulbadm: show-hc-result: server "web" is not an address or address:port (like 203.0.113.200:80 or [2001:db8::200]:80)`, true},
		{[]string{"show-hc-result", "203.0.113.200", "x"}, ExitUsage, `ulbadm: show-hc-result: unexpected argument "x"`, true},
		{[]string{"show-hc-result", "-s", "x"}, ExitUsage, "ulbadm: show-hc-result: flag provided but not defined: -s", true},
		{[]string{"show-healthcheck", "a", "b"}, ExitUsage, `ulbadm: show-healthcheck: unexpected argument "b"`, true},
		{[]string{"show-hc-result", "-r", "nope"}, ExitError, `ulbadm: show-hc-result: no rule "nope"`, false},
		{[]string{"show-hc-result", "-g", "nope"}, ExitError, `ulbadm: show-hc-result: no server group "nope" with a health check`, false},
		{[]string{"show-hc-result", "-g", "web6", "203.0.113.200"}, ExitError, `ulbadm: show-hc-result: no checked server 203.0.113.200`, false},
		{[]string{"show-healthcheck", "nope"}, ExitError, `ulbadm: show-healthcheck: no health check "nope"`, false},
	}
	for _, tt := range tests {
		out, errOut, code := run(t, env, tt.args...)
		first, rest, _ := strings.Cut(errOut, "\n")
		if code != tt.code || first != tt.stderr || out != "" || strings.Contains(rest, "usage: ulbadm") != tt.hasUsage {
			t.Errorf("ulbadm %q: exit %d (want %d), stdout %q, stderr:\n%s", tt.args, code, tt.code, out, errOut)
		}
	}
}

// A health event prints as a line like a VRRP one, and -k health keeps only those.
func TestWatchHealth(t *testing.T) {
	fake := fakeulbd.Run(t)
	env := map[string]string{SocketEnv: fake.Path}
	type result struct {
		out, errOut string
		code        int
	}
	done := make(chan result, 1)
	go func() {
		out, errOut, code := run(t, env, "watch", "-k", control.EventHealth, "-n", "1")
		done <- result{out, errOut, code}
	}()
	fake.WaitWatchers(t, 1)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	fake.Events.Publish(control.Event{Time: at, Kind: control.EventVRRP, Name: "vip", From: "backup", To: "master"})
	fake.Events.Publish(control.Event{Time: at, Kind: control.EventHealth, Name: "web/203.0.113.210:80",
		From: control.HealthUp, To: control.HealthDown, Reason: "fail: connection refused"})
	select {
	case r := <-done:
		want := "2025-01-02T03:04:05.000Z health web/203.0.113.210:80: up -> down (fail: connection refused)\n"
		if r.code != ExitOK || r.errOut != "" || r.out != want {
			t.Errorf("watch -k health: exit %d, stderr %q, stdout %q, want %q", r.code, r.errOut, r.out, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not end after one event")
	}
}
