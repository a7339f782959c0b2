package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

const syncVRRP = `
[[vrrp]]
name = "vip"
port = "outside"
vrid = 1
address = ["198.51.100.100"]
`

func TestParseSync(t *testing.T) {
	cfg, err := Parse("s.toml", []byte(ports+syncVRRP+`
[sync]
peer = ["203.0.113.12", "2001:db8:1::12"]
port = 8849
vrrp = "vip"
refresh = "30s"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Sync{Enabled: true, Peers: []netip.Addr{netip.MustParseAddr("203.0.113.12"), netip.MustParseAddr("2001:db8:1::12")},
		Port: 8849, VRRP: "vip", Refresh: 30 * time.Second}
	if !reflect.DeepEqual(cfg.Sync, want) {
		t.Errorf("Sync %+v, want %+v", cfg.Sync, want)
	}
	cfg, err = Parse("s.toml", []byte(ports+"[sync]\npeer = \"203.0.113.12\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Sync; !s.Enabled || s.Port != DefaultSyncPort || s.Refresh != DefaultSyncRefresh || s.VRRP != "" {
		t.Errorf("defaults: %+v", s)
	}
	if cfg, err = Parse("s.toml", []byte(ports)); err != nil || cfg.Sync.Enabled {
		t.Errorf("no [sync]: %+v, %v", cfg.Sync, err)
	}
}

func TestParseSyncErrors(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{"[sync]\nport = 8848\n", []string{"10: [sync] needs peer"}},
		{`[sync]
peer = ["nope", "224.0.0.81", "203.0.113.10", "203.0.113.12", "203.0.113.12"]
port = 0
vrrp = "other"
refresh = "10ms"
colour = "red"
`, []string{
			`11: sync peer "nope": not an IP address`,
			`11: sync peer 224.0.0.81: want a unicast address of a peer on a connected network`,
			`11: sync peer 203.0.113.10 is one of this router's own addresses`,
			`11: sync peer 203.0.113.12 listed twice`,
			`12: sync port 0 out of range 1..65535`,
			`13: sync: no [[vrrp]] named "other"`,
			`14: sync refresh 10ms out of range 1s..1h`,
			`15: unknown key "colour" in [sync]`,
		}},
	} {
		_, err := Parse("s.toml", []byte(ports+tc.body))
		got := strings.Join(issueLines(t, err), "\n")
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q: issues\n%s\nlack %q", tc.body, got, w)
			}
		}
	}
	_, err := Parse("s.toml", []byte("sync = 5\n"+ports))
	if got := strings.Join(issueLines(t, err), "\n"); !strings.Contains(got, "1: sync must be a table") {
		t.Errorf("sync = 5: issues\n%s", got)
	}
}
