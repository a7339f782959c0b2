package config

import (
	"strings"
	"testing"
)

func TestPortBroadcastRedirectOptions(t *testing.T) {
	cfg, err := Parse("opts.toml", []byte(`[[port]]
name = "a"
device = "eth1"
address = ["192.0.2.1/24"]

[[port]]
name = "b"
device = "eth2"
address = ["198.51.100.1/24"]
directed_broadcast = true
redirects = false

[[port]]
name = "t"
device = "ulb0"
kind = "tun"
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b, tun := cfg.Port("a"), cfg.Port("b"), cfg.Port("t")
	// RFC 2644: directed broadcasts are not forwarded unless configured; redirects are
	// on by default on Ethernet ports (RFC 1812 §5.2.7.2 MUST be able to, RFC 4861
	// §8.2 SHOULD), and never on a tun port.
	if a.DirectedBroadcast || !a.Redirects {
		t.Errorf("defaults: directed_broadcast %v redirects %v, want false true", a.DirectedBroadcast, a.Redirects)
	}
	if !b.DirectedBroadcast || b.Redirects {
		t.Errorf("set: directed_broadcast %v redirects %v, want true false", b.DirectedBroadcast, b.Redirects)
	}
	if tun.DirectedBroadcast || tun.Redirects {
		t.Errorf("tun: directed_broadcast %v redirects %v, want false false", tun.DirectedBroadcast, tun.Redirects)
	}
}

func TestPortBroadcastRedirectOptionErrors(t *testing.T) {
	_, err := Parse("bad.toml", []byte(`[[port]]
name = "a"
device = "eth1"
directed_broadcast = "yes"
redirects = 1

[[port]]
name = "t"
device = "ulb0"
kind = "tun"
directed_broadcast = true
redirects = false
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`bad.toml:4: port "a": directed_broadcast must be true or false, not string "yes"`,
		`bad.toml:5: port "a": redirects must be true or false, not integer 1`,
		`bad.toml:11: port "t": directed_broadcast applies only to kind afpacket`,
		`bad.toml:12: port "t": redirects applies only to kind afpacket`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
