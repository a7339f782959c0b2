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
