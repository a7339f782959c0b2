package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseVRRPErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string
	}{
		{"keys", ports + `
[[vrrp]]
name = "a b"
port = "nope"
vrid = 0
version = 4
priority = 256
interval = "5ms"
preempt = "yes"
preempt_delay = "2000s"
accept = 1
address = []
checksum = "sometimes"
garp_count = -1
garp_refresh = "10ms"
sync_group = "x y"
colour = "red"

[[vrrp]]
port = "outside"
address = "198.51.100.100"

[[vrrp]]
name = "b"
`,
			[]string{
				`12: vrrp name "a b": character ' ' is not allowed (letters, digits, '-', '_', '.')`,
				`13: vrrp "a b": unknown port "nope" (ports: "outside", "inside")`,
				`14: vrrp "a b": vrid 0 out of range 1..255`,
				`15: vrrp "a b": version 4: want 3 (RFC 9568) or 2 (RFC 3768)`,
				`16: vrrp "a b": priority 256 out of range 1..255 (255: the address owner)`,
				`17: vrrp "a b": interval (VRRPv3) 5ms out of range 10ms..40.95s`,
				`18: vrrp "a b": preempt must be true or false, not string "yes"`,
				`19: vrrp "a b": preempt_delay 2000s out of range 0s..16m40s`,
				`20: vrrp "a b": accept must be true or false, not integer 1`,
				`21: vrrp "a b": address is empty; a virtual router needs at least one address`,
				`22: vrrp "a b": unknown checksum "sometimes": want "pseudo-header" or "no-pseudo-header"`,
				`23: vrrp "a b": garp_count -1 out of range 0..255`,
				`24: vrrp "a b": garp_refresh 10ms: want 0s (no refresh) or 1s..24h`,
				`25: vrrp "a b": sync_group name "x y": character ' ' is not allowed (letters, digits, '-', '_', '.')`,
				`26: unknown key "colour" in [[vrrp]]`,
				`28: [[vrrp]] needs a name`,
				`28: vrrp #2 needs a vrid (1..255, shared with its peers)`,
				`32: vrrp "b" needs a port`,
				`32: vrrp "b" needs a vrid (1..255, shared with its peers)`,
				`32: vrrp "b" needs address: the virtual addresses, like ["198.51.100.100/24"]`,
			}},
		{"versions and intervals", ports + `
[[vrrp]]
name = "v2"
port = "outside"
vrid = 1
version = 2
interval = "1500ms"
address = ["198.51.100.100"]

[[vrrp]]
name = "v2-6"
port = "outside"
vrid = 2
version = 2
address = ["2001:db8:1::100"]
checksum = "pseudo-header"

[[vrrp]]
name = "v3"
port = "outside"
vrid = 3
interval = "15ms"
address = ["198.51.100.103"]

[[vrrp]]
name = "v3-long"
port = "outside"
vrid = 4
interval = "41s"
address = ["198.51.100.104"]

[[vrrp]]
name = "v2-long"
port = "outside"
vrid = 5
version = 2
interval = "256s"
preempt = false
preempt_delay = "10s"
address = ["198.51.100.105"]
checksum = "no-pseudo-header"
`,
			[]string{
				`16: vrrp "v2": interval 1.5s: VRRPv2 counts whole seconds`,
				`24: vrrp "v2-6": VRRPv2 is IPv4 only: IPv6 addresses need version = 3`,
				`25: vrrp "v2-6": checksum applies only to VRRPv3 over IPv4 (v2 never includes a pseudo-header, IPv6 always does)`,
				`31: vrrp "v3": interval 15ms: VRRPv3 counts centiseconds (10ms steps)`,
				`38: vrrp "v3-long": interval (VRRPv3) 41s out of range 10ms..40.95s`,
				`46: vrrp "v2-long": interval (VRRPv2) 256s out of range 1s..4m15s`,
				`48: vrrp "v2-long": preempt_delay has no effect with preempt = false`,
				`50: vrrp "v2-long": checksum applies only to VRRPv3 over IPv4 (v2 never includes a pseudo-header, IPv6 always does)`,
			}},
		{"addresses", ports + `
[[port]]
name = "tun"
device = "ulb0"
kind = "tun"
address = ["192.0.2.1/30"]

[[route]]
to = "0.0.0.0/0"
via = "198.51.100.1"

[[servergroup]]
name = "web"
server = ["203.0.113.200"]

[[vrrp]]
name = "mixed"
port = "outside"
vrid = 1
address = ["198.51.100.100", "2001:db8:1::100", "198.51.100.100/24", "198.51.100.0/24", "224.0.0.18", "nonsense", 7]

[[vrrp]]
name = "places"
port = "outside"
vrid = 2
address = ["198.51.100.10", "203.0.113.10", "203.0.113.100", "198.51.100.1", "203.0.113.200", "198.51.100.100"]

[[vrrp]]
name = "owner"
port = "inside"
vrid = 1
priority = 255
address = ["203.0.113.10/24", "203.0.113.20"]

[[vrrp]]
name = "on-tun"
port = "tun"
vrid = 1
address = ["192.0.2.2"]

[[vrrp]]
name = "dup-vrid"
port = "outside"
vrid = 1
address = ["198.51.100.120"]

[[vrrp]]
name = "big-vrid"
port = "outside"
vrid = 257
address = ["198.51.100.121"]

[[vrrp]]
name = "v6-ok"
port = "outside"
vrid = 1
address = ["fe80::1", "2001:db8:1::100"]
`,
			[]string{
				`29: vrrp "mixed": address[6] must be a string, not integer 7`,
				`29: vrrp "mixed": address 2001:db8:1::100 is IPv6 but 198.51.100.100 is IPv4: an instance has one family (define one per family)`,
				`29: vrrp "mixed": duplicate address 198.51.100.100`,
				`29: vrrp "mixed": address "198.51.100.0/24" is the network address of 198.51.100.0/24`,
				`29: vrrp "mixed": address "224.0.0.18" cannot be a virtual address (unspecified, multicast or loopback)`,
				`29: vrrp "mixed": address "nonsense" is not an address or a prefix (like 198.51.100.100 or 198.51.100.100/24)`,
				`35: vrrp "places": address 198.51.100.10 is the router's own address on port "outside": only the address owner (priority 255) may have it`,
				`35: vrrp "places": address 203.0.113.10 is the router's own address on port "inside", not on port "outside"`,
				`35: vrrp "places": address 203.0.113.100 is on the network of port "inside", not of port "outside"`,
				`35: vrrp "places": address 198.51.100.1 is the next hop of the route to 0.0.0.0/0: the router would route to itself`,
				`35: vrrp "places": address 203.0.113.200 is also a server (line 23)`,
				`35: vrrp "places": address 198.51.100.100 is also a virtual address at line 29`,
				`42: vrrp "owner": priority 255 is the address owner's, but 203.0.113.20 is not an address of port "inside"`,
				`46: vrrp "on-tun": port "tun" is kind tun: VRRP needs an Ethernet port (kind afpacket)`,
				`53: vrrp "dup-vrid": vrid 1 is already used for IPv4 on port "outside" at line 28`,
				`59: vrrp "big-vrid": vrid 257 out of range 1..255`,
			}},
		{"tracking", ports + `
[[route]]
to = "192.0.2.0/24"
via = "203.0.113.1"

[[servergroup]]
name = "web"
server = ["203.0.113.200"]

[[servergroup]]
name = "bad"
server = []

[[vrrp]]
name = "t"
port = "outside"
vrid = 1
address = ["198.51.100.100"]
track_port = ["inside", "inside", "nope", { port = "outside", weight = -20 }, { port = "outside", weight = 255 }, { weight = 5 }, { port = "inside", wieght = 5 }, 7]
track_ping = [
  { address = "198.51.100.1" },
  { address = "198.51.100.1", count = 2 },
  { address = "192.0.2.7", interval = "1ms", count = 0, weight = 300 },
  { address = "203.0.114.1" },
  { address = "198.51.100.10" },
  { address = "fe80::1" },
  { address = "2001:db8:1::1/64" },
  { adress = "198.51.100.2" },
  "198.51.100.3",
]
track_group = ["web", "web", "nope", "bad", 3, { servergroup = "web", weight = 0 }, { weight = 3 }, { servergroup = "web", group = "x" }]

[[vrrp]]
name = "u"
port = "inside"
vrid = 1
address = "203.0.113.100"
track_port = 5
track_ping = [{ address = "2001:db8:5::1" }]
sync_group = "alone"
`,
			[]string{
				`21: servergroup "bad": server is empty; a group needs at least one server`,
				`28: vrrp "t": track_port lists port "inside" twice`,
				`28: vrrp "t": track_port: unknown port "nope" (ports: "outside", "inside")`,
				`28: vrrp "t": track_port weight -20: the weight is the priority decrease, write 20`,
				`28: vrrp "t": track_port weight 255 out of range 1..254 (leave weight out to go to FAULT instead)`,
				`28: vrrp "t": track_port entry needs a port`,
				`28: unknown key "wieght" in track_port (keys: port, weight)`,
				`28: vrrp "t": track_port lists port "inside" twice`,
				`28: vrrp "t": track_port[7] must be a port name or { port = "NAME", weight = N }, not integer 7`,
				`31: vrrp "t": track_ping lists 198.51.100.1 twice`,
				`32: vrrp "t": track_ping interval 1ms out of range 10ms..1h`,
				`32: vrrp "t": track_ping count 0 out of range 1..100`,
				`32: vrrp "t": track_ping weight 300 out of range 1..254 (leave weight out to go to FAULT instead)`,
				`33: vrrp "t": track_ping address 203.0.114.1: is not on a connected network and no route leads to it`,
				`34: vrrp "t": track_ping address 198.51.100.10: is the router's own address on port "outside"`,
				`35: vrrp "t": track_ping address fe80::1: is link-local: give a global address (the router pings from the port the route leaves by)`,
				`36: vrrp "t": track_ping address "2001:db8:1::1/64": must be an address without a prefix length`,
				`37: unknown key "adress" in track_ping (keys: address, interval, count, weight)`,
				`37: vrrp "t": track_ping entry needs an address`,
				`38: vrrp "t": track_ping[8] must be a table like { address = "198.51.100.1", interval = "1s", count = 3 }, not string "198.51.100.3"`,
				`40: vrrp "t": track_group lists "web" twice`,
				`40: vrrp "t": track_group: unknown servergroup "nope" (servergroups: "web")`,
				`40: vrrp "t": track_group[4] must be a servergroup name or { servergroup = "NAME", weight = N }, not integer 3`,
				`40: vrrp "t": track_group weight 0 out of range 1..254 (leave weight out to go to FAULT instead)`,
				`40: vrrp "t": track_group entry needs a servergroup`,
				`40: unknown key "group" in track_group (keys: servergroup, weight)`,
				`40: vrrp "t": track_group lists "web" twice`,
				`47: vrrp "u": track_port must be a list like ["inside"] or [{ port = "inside", weight = 20 }], not integer 5`,
				`48: vrrp "u": track_ping address 2001:db8:5::1: is not on a connected network and no route leads to it`,
			}},
		{"link-local", ports + `
[[route]]
to = "2001:db8:99::/48"
via = "fe80::1"
port = "outside"

[[vrrp]]
name = "ll-out"
port = "outside"
vrid = 1
address = ["fe80::1"]

[[vrrp]]
name = "ll-in"
port = "inside"
vrid = 1
address = ["fe80::1"]

[[vrrp]]
name = "ll-in2"
port = "inside"
vrid = 2
address = ["fe80::1"]
`,
			[]string{
				`20: vrrp "ll-out": address fe80::1 is the next hop of the route to 2001:db8:99::/48: the router would route to itself`,
				`32: vrrp "ll-in2": address fe80::1 is also a virtual address at line 26`,
			}},
		{"ports and sizes", `[[port]]
name = "v6only"
device = "eth1"
address = ["2001:db8:1::10/64"]

[[vrrp]]
name = "v4"
port = "v6only"
vrid = 1
address = ["198.51.100.100/24"]

[[vrrp]]
name = "many"
port = "v6only"
vrid = 2
address = [` + strings.Repeat(`"fe80::1:1", `, 1) + many6(78) + `]

[[vrrp]]
name = "owner6"
port = "v6only"
vrid = 3
priority = 255
address = ["fe80::1", "2001:db8:1::10", "2001:db8:1::11"]
`,
			[]string{
				`8: vrrp "v4": port "v6only" has no IPv4 address to send adverts from`,
				`16: vrrp "many" has 79 addresses; an advert carries at most 77 IPv6 addresses`,
				`23: vrrp "owner6": priority 255 is the address owner's, but 2001:db8:1::11 is not an address of port "v6only"`,
			}},
		{"advert_ports", `[[port]]
name = "lan"
device = "eth1"
address = ["198.51.100.10/24", "2001:db8:1::10/64"]

[[port]]
name = "xover"
device = "eth2"
address = ["203.0.113.1/30"]

[[port]]
name = "v6x"
device = "eth3"
address = ["2001:db8:9::1/64"]

[[port]]
name = "tun0"
device = "tun0"
kind = "tun"
address = ["192.0.2.1/30"]

[[vrrp]]
name = "a"
port = "lan"
vrid = 1
address = ["198.51.100.100"]
advert_ports = ["xover", "nope", "lan", "tun0", "xover", 7, "v6x"]

[[vrrp]]
name = "b"
port = "xover"
vrid = 1
address = ["203.0.113.2"]

[[vrrp]]
name = "c"
port = "lan"
vrid = 2
address = ["198.51.100.102"]
advert_ports = { port = "xover" }
`,
			[]string{
				`27: vrrp "a": advert_ports[5] must be a string, not integer 7`,
				`27: vrrp "a": advert_ports: unknown port "nope" (ports: "lan", "xover", "v6x", "tun0")`,
				`27: vrrp "a": advert_ports: "lan" is the instance's own port (advert_ports lists the extra links)`,
				`27: vrrp "a": advert_ports: port "tun0" is kind tun: VRRP adverts need an Ethernet port (kind afpacket)`,
				`27: vrrp "a": advert_ports lists port "xover" twice`,
				`27: vrrp "a": advert port "v6x" has no IPv4 address to send adverts from`,
				`32: vrrp "b": vrid 1 is already used for IPv4 on port "xover" at line 27`,
				`40: vrrp "c": advert_ports must be a list of strings, not table`,
			}},
	}
	for _, tt := range tests {
		_, err := Parse("f.toml", []byte(tt.toml))
		if got := issueLines(t, err); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, strings.Join(quoteAll(got), "\n     "), strings.Join(quoteAll(tt.want), "\n     "))
		}
	}
}

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = "`" + s + "`,"
	}
	return out
}

// many6 returns n distinct IPv6 addresses of 2001:db8:1::/64 as TOML strings.
func many6(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `"2001:db8:1::%x", `, 0x100+i)
	}
	return b.String()
}

func TestVRRPWarnings(t *testing.T) {
	cfg, err := Parse("w.toml", []byte(ports+`
[[vrrp]]
name = "far"
port = "outside"
vrid = 1
address = ["192.0.2.100", "198.51.100.100"]
sync_group = "alone"

[[vrrp]]
name = "six"
port = "outside"
vrid = 1
address = ["2001:db8:9::100/64"]
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`w.toml:15: vrrp "far": address 192.0.2.100 is not on a connected network of port "outside": neighbours reach it only through a route or gratuitous ARP`,
		`w.toml:16: vrrp "far": sync_group "alone" has no other member: it has no effect`,
		`w.toml:22: vrrp "six": address 2001:db8:9::100 is not on a connected network of port "outside": neighbours reach it only through a route or gratuitous ARP`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	if a := cfg.VRRP[0].Addresses; a[0].Bits() != 32 || a[1].Bits() != 24 {
		t.Errorf("plain addresses: %v, want /32 off the connected networks and /24 on outside's", a)
	}
}

// TestDesignExample parses the [[vrrp]] section of DESIGN.md's configuration contract
// with its ports.
func TestDesignExample(t *testing.T) {
	cfg, err := Parse("design.toml", []byte(`
[[port]]
name = "outside"
device = "eth1"
kind = "afpacket"
address = ["198.51.100.10/24", "2001:db8:1::10/64"]

[[port]]
name = "inside"
device = "eth2"
address = ["203.0.113.10/24"]

[[vrrp]]
name = "vip"
port = "outside"
vrid = 1
version = 3                     # 3 (default) | 2
priority = 200                  # 1..255, default 100; 255 = address owner
interval = "1s"                 # v3: 10ms steps; v2: whole seconds
preempt = true
preempt_delay = "0s"
accept = false
address = ["198.51.100.100/24"]
track_port = ["outside", "inside"]
track_ping = [{ address = "198.51.100.1", interval = "1s", count = 3, weight = 50 }]
sync_group = "pair"             # instances in a group change state together
`))
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.VRRP[0]
	if v.Priority != 200 || len(v.TrackPorts) != 2 || v.TrackPings[0].Weight != 50 || v.SyncGroup != "pair" || len(cfg.Warnings) != 1 {
		t.Errorf("vrrp = %+v, warnings %v (want the lone sync group's)", v, cfg.Warnings)
	}
}

func TestParseAdvertPorts(t *testing.T) {
	c, err := Parse("f.toml", []byte(ports+`
[[port]]
name = "xover"
device = "eth3"
address = ["192.0.2.1/30"]

[[vrrp]]
name = "v4"
port = "outside"
vrid = 1
address = ["198.51.100.100"]
advert_ports = ["xover", "inside"]

[[vrrp]]
name = "v6"
port = "outside"
vrid = 1
address = ["2001:db8:1::100"]
advert_ports = "xover"
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.VRRPInstance("v4").AdvertPorts; !reflect.DeepEqual(got, []string{"xover", "inside"}) {
		t.Errorf("v4 advert ports %q", got)
	}
	if got := c.VRRPInstance("v6").AdvertPorts; !reflect.DeepEqual(got, []string{"xover"}) {
		t.Errorf("v6 advert ports %q", got)
	}
}
