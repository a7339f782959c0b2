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
	for i, l := range lines {
		var s control.StatsInfo
		if err := json.Unmarshal([]byte(l), &s); err != nil || !reflect.DeepEqual(s, fakeulbd.Stats(i+1)) {
			t.Errorf("line %d = %s (%v)", i, l, err)
		}
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
		{[]string{"show-port", "nope"}, ExitError, `ulbadm: show-port: no port named "nope"`, false},
		{[]string{"show-neigh", "nope"}, ExitError, `ulbadm: show-neigh: no port named "nope"`, false},
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
		for _, v := range verbs {
			if !strings.Contains(out, "\n  "+v.name) {
				t.Errorf("%v: usage lacks %s", args, v.name)
			}
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
