package format

import (
	"bytes"
	"testing"

	"ulb/router/control"
)

func TestHealthTablesEmptyFields(t *testing.T) {
	var b bytes.Buffer
	if err := HCResults(&b, nil); err != nil {
		t.Fatal(err)
	}
	check(t, &b, "RULES  GROUP  SERVER  CHECK  TEST  STATE  FAILS  RTT  LOAD  LAST  NEXT  LAST-RESULT\n")
	b.Reset()
	// Before its first check a server has no result, times, RTT or load.
	err := HCResults(&b, []control.HCResult{{Group: "g", Address: "2001:db8::1", Port: 53, Check: "c", Test: "udp",
		State: control.HealthUnknown, Load: -1}})
	if err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
RULES  GROUP  SERVER            CHECK  TEST  STATE    FAILS  RTT  LOAD  LAST  NEXT  LAST-RESULT
-      g      [2001:db8::1]:53  c      udp   unknown  0      -    -     -     -     -
`)
	b.Reset()
	if err := HealthChecks(&b, nil); err != nil {
		t.Fatal(err)
	}
	check(t, &b, "NAME  TEST  INTERVAL  TIMEOUT  COUNT  RISE  PORT  GROUPS  SETTINGS\n")
}

func TestSettings(t *testing.T) {
	for _, tt := range []struct {
		c    control.HealthCheckInfo
		want string
	}{
		{control.HealthCheckInfo{Test: "ping"}, "-"},
		{control.HealthCheckInfo{Test: "tcp", Port: 80}, "-"},
		{control.HealthCheckInfo{Test: "udp", Send: "\x00\x01"}, `send="\x00\x01"`},
		{control.HealthCheckInfo{Test: "udp", Send: "a=b", Expect: `say "hi"`}, `send="a=b" expect="say \"hi\""`},
		{control.HealthCheckInfo{Test: "http", Path: "/", ExpectStatus: 503}, "path=/ status=503"},
		{control.HealthCheckInfo{Test: "agent", AgentPort: 7777}, "agent_port=7777"},
		{control.HealthCheckInfo{Test: "script", Command: []string{"/bin/check", "two words", ""}}, `command=[/bin/check "two words" ""]`},
	} {
		if got := Settings(&tt.c); got != tt.want {
			t.Errorf("Settings(%+v) = %s, want %s", tt.c, got, tt.want)
		}
	}
	for ms, want := range map[int64]string{500: "500ms", 60000: "1m", 3600000: "1h", 90000: "1m30s"} {
		if got := interval(ms); got != want {
			t.Errorf("interval(%d) = %q, want %q", ms, got, want)
		}
	}
}
