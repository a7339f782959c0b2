package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// TestParseTunnel: a tunnel rule reaches servers on any network (no connected-network
// check as for DSR), keeps the client's port, and takes a tunnel_source of the router's
// own of the VIP's family.
func TestParseTunnel(t *testing.T) {
	good := ports + groups + `
[[rule]]
name = "tun"
vip = "198.51.100.100"
port = "80"
topology = "tunnel"
tunnel_source = "198.51.100.10"
servergroup = "far"

[[rule]]
name = "tun6"
vip = "2001:db8:1::100"
port = "80"
topology = "tunnel"
servergroup = "web6"

[[route]]
to = "192.0.2.0/24"
via = "203.0.113.1"
`
	cfg, err := Parse("t.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Rule("tun")
	if r.Topology != Tunnel || r.TunnelSource != netip.MustParseAddr("198.51.100.10") {
		t.Errorf("rule tun: topology %q tunnel_source %v", r.Topology, r.TunnelSource)
	}
	if r6 := cfg.Rule("tun6"); r6.Topology != Tunnel || r6.TunnelSource.IsValid() {
		t.Errorf("rule tun6: topology %q tunnel_source %v", r6.Topology, r6.TunnelSource)
	}

	bad := ports + groups + `
[[rule]]
name = "translate"
vip = "198.51.100.101"
port = "8080"
topology = "tunnel"
servergroup = "web"

[[rule]]
name = "not-tunnel"
vip = "198.51.100.102"
port = "80"
tunnel_source = "198.51.100.10"
servergroup = "far"

[[rule]]
name = "family"
vip = "198.51.100.103"
port = "80"
topology = "tunnel"
tunnel_source = "2001:db8:1::10"
servergroup = "far"

[[rule]]
name = "foreign"
vip = "198.51.100.104"
port = "80"
topology = "tunnel"
tunnel_source = "198.51.100.99"
servergroup = "far"

[[rule]]
name = "nowhere"
vip = "2001:db8:1::106"
port = "80"
topology = "tunnel"
servergroup = "lost6"

[[rule]]
name = "garbage"
vip = "198.51.100.105"
port = "80"
topology = "tunnel"
tunnel_source = "here"
sorry_server = "203.0.113.99"
servergroup = "far"

[[servergroup]]
name = "lost6"
server = ["2001:db8:99::1"]

[[route]]
to = "192.0.2.0/24"
via = "203.0.113.1"
`
	want := []string{
		`28: rule "translate": topology tunnel cannot translate ports, but server 203.0.113.200:80 of servergroup "web" (line 13) has port 80 and the rule port 8080`,
		`34: rule "not-tunnel": tunnel_source applies only to topology tunnel, not half-nat`,
		`42: rule "family": tunnel_source 2001:db8:1::10 is IPv6 but the VIP 198.51.100.103 is IPv4`,
		`50: rule "foreign": tunnel_source 198.51.100.99 is none of the router's port addresses (the tunnel's ICMP errors come back to it)`,
		`58: rule "nowhere": topology tunnel sends to the server's own address, but no connected network of a port nor a [[route]] reaches server 2001:db8:99::1 of servergroup "lost6" (line 71)`,
		`65: rule "garbage": tunnel_source "here" is not an IP address`,
		`66: rule "garbage": sorry_server applies only to topology half-nat or full-nat, not tunnel`,
	}
	_, err = Parse("t.toml", []byte(bad))
	if err == nil {
		t.Fatal("Parse accepted the file")
	}
	if got := issueLines(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("issues:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}
