package node

import (
	"net/netip"
	"testing"

	"ulb/balancer"
	"ulb/config"
)

// TestRulesTunnel: a tunnel rule reaches the balancer with its topology and
// tunnel_source, and its servers keep the client's port.
func TestRulesTunnel(t *testing.T) {
	cfg, err := config.Parse("t.toml", []byte(`
[[port]]
name = "outside"
device = "eth1"
address = ["198.51.100.10/24"]

[[port]]
name = "inside"
device = "eth2"
address = ["192.0.2.10/24"]

[[route]]
to = "203.0.113.0/24"
via = "192.0.2.1"

[[servergroup]]
name = "web"
server = ["203.0.113.11", "203.0.113.12"]

[[rule]]
name = "web"
vip = "198.51.100.100"
port = "80"
topology = "tunnel"
tunnel_source = "192.0.2.10"
servergroup = "web"
`))
	if err != nil {
		t.Fatal(err)
	}
	rs := rules(cfg)
	if len(rs) != 1 {
		t.Fatalf("%d rules", len(rs))
	}
	r := rs[0]
	if r.Topology != balancer.Tunnel || r.TunnelSource != netip.MustParseAddr("192.0.2.10") || len(r.Servers) != 2 || r.Servers[0].Port != 0 {
		t.Errorf("rule %+v, want topology tunnel from 192.0.2.10 to two servers on the client's port", r)
	}
	if err := balancer.New(balancer.Config{}).Set(rs); err != nil {
		t.Errorf("the balancer refuses the rule: %v", err)
	}
}
