package config

import (
	"reflect"
	"strings"
	"testing"
)

const dataplanePort = `
[[port]]
name = "outside"
device = "eth1"
address = "198.51.100.10/24"
`

func TestDataplane(t *testing.T) {
	cfg, err := Parse("dp.toml", []byte(dataplanePort+"\n[dataplane]\nnice = -10\ncpus = [1, 0]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Dataplane{Nice: -10, CPUs: []int{1, 0}}); !reflect.DeepEqual(cfg.Dataplane, want) {
		t.Errorf("dataplane %+v, want %+v", cfg.Dataplane, want)
	}
	cfg, err = Parse("dp.toml", []byte(dataplanePort))
	if err != nil || !reflect.DeepEqual(cfg.Dataplane, Dataplane{}) {
		t.Errorf("no [dataplane]: %+v, %v", cfg.Dataplane, err)
	}
}

func TestDataplaneErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"nice = -21", "dp.toml:8: dataplane nice -21 out of range -20..19"},
		{"nice = 20", "dp.toml:8: dataplane nice 20 out of range -20..19"},
		{`nice = "high"`, `dp.toml:8: dataplane nice must be an integer, not string "high"`},
		{"cpus = 1", "dp.toml:8: dataplane cpus must be a list of CPU numbers, not integer 1"},
		{"cpus = [0, -1]", "dp.toml:8: dataplane cpus[1]: CPU -1 out of range 0..1023"},
		{"cpus = [2, 2]", "dp.toml:8: dataplane cpus[1]: CPU 2 is listed twice"},
		{`cpus = ["a"]`, `dp.toml:8: dataplane cpus[0] must be an integer, not string "a"`},
		{"priority = 1", `dp.toml:8: unknown key "priority" in [dataplane]`},
	} {
		_, err := Parse("dp.toml", []byte(dataplanePort+"\n[dataplane]\n"+tc.body+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.body, err, tc.want)
		}
	}
}

func TestDefence(t *testing.T) {
	cfg, err := Parse("df.toml", []byte(dataplanePort+"\n[defence]\nsource_rate = 200\nsource_burst = 50\nsource_prefix4 = 32\nsource_prefix6 = 56\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Defence{SYNCookies: SYNCookiesOff, SYNCookieThreshold: 10000, SYNCookieWScale: 7, NewFlowRing: true, SourceRate: 200, SourceBurst: 50, SourcePrefix4: 32,
		SourcePrefix6: 56}); cfg.Defence != want {
		t.Errorf("defence %+v, want %+v", cfg.Defence, want)
	}
	for _, tc := range []struct{ body, want string }{
		{"source_rate = -1", "df.toml:8: defence source_rate -1 out of range 0..10000000"},
		{"source_rate = 1\nsource_burst = 0", "df.toml:9: defence source_burst 0 out of range 1..10000000"},
		{"source_rate = 1\nsource_prefix4 = 33", "df.toml:9: defence source_prefix4 33 out of range 1..32"},
		{"source_rate = 1\nsource_prefix6 = 0", "df.toml:9: defence source_prefix6 0 out of range 1..128"},
		{`source_rate = "fast"`, `df.toml:8: defence source_rate must be an integer, not string "fast"`},
		{"syn_flood = true", `df.toml:8: unknown key "syn_flood" in [defence]`},
		{`syn_cookies = "sometimes"`, `df.toml:8: defence syn_cookies "sometimes": want "off", "auto" or "always"`},
		{"syn_cookie_threshold = 0", "df.toml:8: defence syn_cookie_threshold 0 out of range 1..10000000"},
		{"syn_cookie_wscale = 15", "df.toml:8: defence syn_cookie_wscale 15 out of range 0..14"},
		{"new_flow_ring = 1", "df.toml:8: defence new_flow_ring must be true or false, not integer 1"},
	} {
		_, err := Parse("df.toml", []byte(dataplanePort+"\n[defence]\n"+tc.body+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.body, err, tc.want)
		}
	}
	cfg, err = Parse("df.toml", []byte(dataplanePort+"\n[defence]\nsyn_cookies = \"auto\"\nsyn_cookie_wscale = 9\nsyn_cookie_threshold = 500\n"))
	if err != nil || cfg.Defence.SYNCookies != SYNCookiesAuto || cfg.Defence.SYNCookieWScale != 9 || cfg.Defence.SYNCookieThreshold != 500 {
		t.Errorf("syn_cookies: %+v, %v", cfg.Defence, err)
	}
	cfg, err = Parse("df.toml", []byte(dataplanePort+"\n[defence]\nnew_flow_ring = false\n"))
	if err != nil || cfg.Defence.NewFlowRing {
		t.Errorf("new_flow_ring = false: %+v, %v", cfg.Defence, err)
	}
	cfg, err = Parse("df.toml", []byte(dataplanePort+"\n[defence]\nsource_burst = 5\n"))
	if err != nil || len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Msg, "no limit applies") {
		t.Errorf("burst without rate: %v, warnings %v", err, cfg.Warnings)
	}
}
