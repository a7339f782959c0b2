package node

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"ulb/config"
)

func parsePorts(t *testing.T, ports string) *config.Config {
	t.Helper()
	c, err := config.Parse("lb.toml", []byte("hostname = \"lb\"\ncontrol_socket = \"/run/ulb/ports-test.sock\"\n"+ports))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPlanPorts: a reload's port plan keeps a port whose device and open options stay
// (its addresses and options changed in place), removes those no longer named, refuses
// a TUN port's new MTU (the device is made with it) with a message that says restart,
// and refuses a new port whose device does not exist before anything is opened.
func TestPlanPorts(t *testing.T) {
	running := parsePorts(t, `
[[port]]
name = "a"
device = "a0"
address = ["192.0.2.1/24"]

[[port]]
name = "b"
device = "b0"
address = ["198.51.100.1/24"]

[[port]]
name = "t"
device = "t0"
kind = "tun"
address = ["203.0.113.1/24"]
`)
	rl := &reloader{log: slog.New(slog.DiscardHandler), started: running, ports: running.Ports}

	pp, err := rl.planPorts(parsePorts(t, `
[[port]]
name = "a"
device = "a0"
address = ["192.0.2.1/24", "2001:db8:1::1/64"]
redirects = false

[[port]]
name = "t"
device = "t0"
kind = "tun"
address = ["203.0.113.1/24"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pp.changed, []string{"a"}) || !slices.Equal(pp.removed, []string{"b"}) || len(pp.added) != 0 || len(pp.opened) != 0 {
		t.Errorf("plan: changed %v removed %v added %v opened %d", pp.changed, pp.removed, pp.added, len(pp.opened))
	}
	if !pp.kept["a"] || !pp.kept["t"] || pp.kept["b"] || len(pp.set) != 2 || pp.set[0].Port != nil || len(pp.set[0].Addresses) != 2 || pp.set[0].Redirects {
		t.Errorf("plan set %+v kept %v", pp.set, pp.kept)
	}

	_, err = rl.planPorts(parsePorts(t, `
[[port]]
name = "t"
device = "t0"
kind = "tun"
mtu = 1400
address = ["203.0.113.1/24"]
`))
	if err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("a tun port's new mtu: %v, want a refusal that says restart", err)
	}

	_, err = rl.planPorts(parsePorts(t, `
[[port]]
name = "a"
device = "ulb-no-such0"
address = ["192.0.2.1/24"]
`))
	if err == nil || !strings.Contains(err.Error(), "ulb-no-such0 does not exist") {
		t.Errorf("a changed device that does not exist: %v", err)
	}
}
