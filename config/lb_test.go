package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// groups are valid server groups that rule cases build on (lines 10 to 21, after ports).
const groups = `
[[servergroup]]
name = "web"
server = [{ address = "203.0.113.200", port = 80 }, { address = "203.0.113.210" }]

[[servergroup]]
name = "web6"
server = ["[2001:db8:1::200]:80"]

[[servergroup]]
name = "far"
server = ["192.0.2.200"]
`

func TestParseLBErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string
	}{
		{"servergroups", ports + `
[[servergroup]]
name = "a"
server = [
  { address = "203.0.113.200", port = 0 },
  { address = "203.0.113.201", port = 70000, weight = -1, max_conns = "many" },
  { address = "203.0.113.202", weight = 65536, enabled = "yes" },
  { adress = "203.0.113.203" },
  { address = "203.0.113.10" },
  { address = "203.0.113.0/24" },
  { address = "224.0.0.1" },
  "203.0.113.205:80",
  "203.0.113.205:80",
  "nonsense",
  7,
]

[[servergroup]]
name = "a"
server = "203.0.113.1"

[[servergroup]]
server = []

[[servergroup]]
name = "empty"
`,
			[]string{
				`14: servergroup "a": server port 0 out of range 1..65535 (leave it out to use the client's destination port)`,
				`15: servergroup "a": server port 70000 out of range 1..65535 (leave it out to use the client's destination port)`,
				`15: servergroup "a": weight -1 out of range 0..65535`,
				`15: servergroup "a": max_conns must be an integer, not string "many"`,
				`16: servergroup "a": weight 65536 out of range 0..65535`,
				`16: servergroup "a": enabled must be true or false, not string "yes"`,
				`17: unknown key "adress" in a server (keys: address, port, weight, max_conns, min_conns, enabled)`,
				`17: servergroup "a": a server needs an address`,
				`18: servergroup "a": server 203.0.113.10 is the router's own address on port "inside"`,
				`19: servergroup "a": server address "203.0.113.0/24": must be an address without a prefix length`,
				`20: servergroup "a": server address "224.0.0.1": cannot be a server (unspecified, multicast, loopback or link-local)`,
				`22: servergroup "a": duplicate server 203.0.113.205:80 (first at line 21)`,
				`23: servergroup "a": server "nonsense" is not an address or address:port (like "203.0.113.200:80" or "[2001:db8::200]:80")`,
				`24: servergroup "a": server[10] must be a table like { address = "203.0.113.200", port = 80 }, not integer 7`,
				`28: duplicate servergroup name "a" (first defined at line 12)`,
				`29: servergroup "a": server must be a list of servers like [{ address = "203.0.113.200", port = 80 }], not string "203.0.113.1"`,
				`31: [[servergroup]] needs a name`,
				`32: servergroup #3: server is empty; a group needs at least one server`,
				`34: servergroup "empty" needs at least one server: server = [{ address = "203.0.113.200", port = 80 }]`,
			}},
		{"rule keys", ports + groups + `
[[rule]]
name = "a b"
vip = "198.51.100.10"
port = "0"
protocol = "sctp"
algorithm = "random"
topology = "nat"
pmask = 33
persist_timeout = "forever"
conn_drain = "-1s"
servergroup = "nope"
enabled = 1

[[rule]]
vip = "198.51.100.0"
port = "90-80"
proxy_source = ["203.0.113.50"]
persist_timeout = "10s"

[[rule]]
name = "c"
vip = "224.0.0.1/32"
port = 65536
servergroup = 5

[[rule]]
name = "d"
vip = "2001:db8:1::100"
port = "x"
pmask = "/129"
`,
			[]string{
				`24: rule name "a b": character ' ' is not allowed (letters, digits, '-', '_', '.')`,
				`25: rule "a b": vip 198.51.100.10 is the router's own address on port "outside": give the VIP an address of its own`,
				`26: rule "a b": port "0": ports are 1..65535`,
				`27: rule "a b": unknown protocol "sctp": want tcp or udp`,
				`28: rule "a b": unknown algorithm "random": want one of roundrobin, weighted-roundrobin, leastconn, weighted-leastconn, hash-ip, hash-ip-port, hash-ip-vip, maglev`,
				`29: rule "a b": unknown topology "nat": want half-nat, full-nat, dsr or tunnel`,
				`30: rule "a b": pmask 33 out of range 0..32`,
				`31: rule "a b": persist_timeout "forever" is not a duration (like "90s", "15m" or "1h30m")`,
				`32: rule "a b": conn_drain -1s out of range 0s..168h`,
				`33: rule "a b": unknown servergroup "nope" (servergroups: "web", "web6", "far")`,
				`34: rule "a b": enabled must be true or false, not integer 1`,
				`36: [[rule]] needs a name`,
				`36: rule #2 needs a servergroup`,
				`37: rule #2: vip 198.51.100.0 is the network address of 198.51.100.0/24 (port "outside")`,
				`38: rule #2: port "90-80": the range's first port is above its last`,
				`39: rule #2: proxy_source applies only to topology full-nat, not half-nat`,
				`40: rule #2: persist_timeout needs pmask (the client prefix length that persistence keys on) or persist_key`,
				`44: rule "c": vip "224.0.0.1/32" must be an address without a prefix length`,
				`45: rule "c": port "65536": ports are 1..65535`,
				`46: rule "c": servergroup must be a string, not integer 5`,
				`48: rule "d" needs a servergroup`,
				`51: rule "d": port "x": want a port like "80" or a range like "8000-8099"`,
				`52: rule "d": pmask 129 out of range 0..128`,
			}},
		{"rule checks", ports + groups + `
[[servergroup]]
name = "mapped"
server = [{ address = "203.0.113.220", port = 65500 }, { address = "198.51.100.100" }]

[[rule]]
name = "v6-to-v4"
vip = "2001:db8:1::100"
port = "80"
servergroup = "web"

[[rule]]
name = "dsr-far"
vip = "198.51.100.101"
port = "80"
topology = "dsr"
servergroup = "far"

[[rule]]
name = "dsr-translate"
vip = "198.51.100.102"
port = "8080"
topology = "dsr"
servergroup = "web"

[[rule]]
name = "full-no-proxy"
vip = "198.51.100.103"
port = "80"
topology = "full-nat"
servergroup = "web"

[[rule]]
name = "full-bad-proxy"
vip = "198.51.100.104"
port = "80"
topology = "full-nat"
proxy_source = ["2001:db8:1::50", "203.0.113.60-203.0.113.50", "203.0.113.70-203.0.113.72", "203.0.113.71", "203.0.113.0/24", "198.51.100.104"]
servergroup = "web"

[[rule]]
name = "range"
vip = "198.51.100.105"
port = "100-200"
servergroup = "mapped"

[[rule]]
name = "first"
vip = "198.51.100.106"
port = "8000-8099"
servergroup = "web"

[[rule]]
name = "overlap"
vip = "198.51.100.106"
port = "8099-8100"
servergroup = "web"

[[rule]]
name = "other-proto"
vip = "198.51.100.106"
port = "8050"
protocol = "udp"
servergroup = "web"

[[rule]]
name = "vip-is-server"
vip = "203.0.113.200"
port = "80"
servergroup = "far"

[[rule]]
name = "empty-proxy"
vip = "198.51.100.107"
port = "80"
topology = "full-nat"
proxy_source = []
servergroup = "web"
`,
			[]string{
				`31: rule "v6-to-v4": the VIP 2001:db8:1::100 is IPv6 but server 203.0.113.200:80 of servergroup "web" (line 13) is IPv4`,
				`31: rule "v6-to-v4": the VIP 2001:db8:1::100 is IPv6 but server 203.0.113.210 of servergroup "web" (line 13) is IPv4`,
				`38: rule "dsr-far": topology dsr reaches servers by MAC address, but server 192.0.2.200 of servergroup "far" (line 21) is not on a connected network of any port`,
				`45: rule "dsr-translate": topology dsr cannot translate ports, but server 203.0.113.200:80 of servergroup "web" (line 13) has port 80 and the rule port 8080`,
				`47: rule "full-no-proxy": topology full-nat needs proxy_source: the addresses (or ranges like "203.0.113.50-203.0.113.59") the servers see as the source`,
				`59: rule "full-bad-proxy": proxy_source 2001:db8:1::50 is IPv6 but the VIP 198.51.100.104 is IPv4`,
				`59: rule "full-bad-proxy": proxy_source "203.0.113.60-203.0.113.50": the range's first address is above its last`,
				`59: rule "full-bad-proxy": proxy_source 203.0.113.71 is listed twice`,
				`59: rule "full-bad-proxy": proxy_source "203.0.113.0/24": write a prefix as a range of addresses, like 203.0.113.50-203.0.113.59`,
				`59: rule "full-bad-proxy": proxy_source 198.51.100.104 is the rule's VIP`,
				`66: rule "range": port range 100-200 maps onto ports 65500-65600 of server 203.0.113.220:65500 of servergroup "mapped" (line 25), past 65535`,
				`77: rule "overlap": 198.51.100.106 tcp port 8099-8100 overlaps rule "first" (line 71), port 8000-8099`,
				`89: rule "vip-is-server": VIP 203.0.113.200 is also a server (line 13)`,
				`98: rule "empty-proxy": proxy_source is empty`,
			}},
		{"conntrack and more", ports + `
[conntrack]
capacity = 0
bogus = 1

[conntrack.timeout]
established = "0s"
udp = "8d"
tcp = "1m"
icmp = 5

[[servergroup]]
name = "bad"
server = ["nonsense"]

[[servergroup]]
name = "sg"
[[servergroup.server]]
address = "203.0.113.200"
weight = 2

[[servergroup]]
name = "sg2"
[[servergroup.server]]
address = "203.0.113.201"
Weight = 2

[[rule]]
name = "uses-bad"
vip = "198.51.100.100"
port = "80"
servergroup = "bad"
colour = "red"

[[rule]]
name = "proxy-is-server"
vip = "198.51.100.101"
port = "80"
topology = "full-nat"
proxy_source = "203.0.113.199-203.0.113.200"
servergroup = "sg"

[[rule]]
name = "proxy-is-vip"
vip = "198.51.100.102"
port = "80"
topology = "full-nat"
proxy_source = ["198.51.100.101"]
servergroup = "sg"

[[rule]]
name = "shared-proxy"
vip = "198.51.100.103"
port = "80"
topology = "full-nat"
proxy_source = ["203.0.113.198", "203.0.113.199"]
servergroup = "sg"
`,
			[]string{
				`12: conntrack capacity 0 out of range 1..100000000`,
				`13: unknown key "bogus" in [conntrack]`,
				`16: conntrack timeout established 0s out of range 1s..168h`,
				`17: conntrack timeout udp "8d" is not a duration (like "90s", "15m" or "1h30m")`,
				`18: unknown key "tcp" in [conntrack.timeout] (keys: established, syn_sent, syn_recv, fin_wait, time_wait, close, close_wait, last_ack, udp, icmp)`,
				`19: conntrack timeout icmp must be a duration string like "60s", not integer 5`,
				`23: servergroup "bad": server "nonsense" is not an address or address:port (like "203.0.113.200:80" or "[2001:db8::200]:80")`,
				`35: unknown key "Weight" in a server (keys: address, port, weight, max_conns, min_conns, enabled)`,
				`42: unknown key "colour" in [[rule]]`,
				`49: rule "proxy-is-server": proxy_source 203.0.113.200 is also a server (line 27)`,
				`57: rule "proxy-is-vip": proxy_source 198.51.100.101 is the VIP of rule "proxy-is-server"`,
			}},
		{"odd types", ports + `
[[servergroup]]
name = ["x"]
server = [[1, 2], { address = 5, port = "80", weight = 1.5, max_conns = true, enabled = [] }]
healthcheck = 3

[[rule]]
name = "r"
vip = 1
port = 1.5
protocol = []
algorithm = {}
topology = 2
proxy_source = [["a"]]
pmask = 1.0
persist_timeout = 5
conn_drain = []
servergroup = {}
enabled = "yes"

[conntrack]
timeout = "5s"
capacity = "big"
`,
			[]string{
				`12: servergroup #1: name must be a string, not array`,
				`13: servergroup #1: server[0] must be a table like { address = "203.0.113.200", port = 80 }, not array`,
				`13: servergroup #1: server address must be a string, not integer 5`,
				`13: servergroup #1: server port must be an integer, not string "80"`,
				`13: servergroup #1: weight must be an integer, not float 1.5`,
				`13: servergroup #1: max_conns must be an integer, not boolean true`,
				`13: servergroup #1: enabled must be true or false, not array`,
				`14: servergroup #1: healthcheck must be a string, not integer 3`,
				`18: rule "r": vip must be a string, not integer 1`,
				`19: rule "r": port must be a string like "80" or "8000-8099", not float 1.5`,
				`20: rule "r": protocol must be a string, not array`,
				`21: rule "r": algorithm must be a string, not table`,
				`22: rule "r": topology must be a string, not integer 2`,
				`23: rule "r": proxy_source applies only to topology full-nat, not half-nat`,
				`24: rule "r": pmask must be a prefix length (like 24), not float 1`,
				`25: rule "r": persist_timeout must be a duration string like "60s", not integer 5`,
				`26: rule "r": conn_drain must be a duration string like "60s", not array`,
				`27: rule "r": servergroup must be a string, not table`,
				`28: rule "r": enabled must be true or false, not string "yes"`,
				`31: conntrack timeout must be a table, not string "5s"`,
				`32: conntrack capacity must be an integer, not string "big"`,
			}},
		{"persist_key", ports + groups + `
[[rule]]
name = "tcp-dst"
vip = "198.51.100.100"
port = "80"
persist_key = "dst+port"
servergroup = "web"

[[rule]]
name = "dst-pmask"
vip = "198.51.100.100"
port = "5060-5063"
protocol = "udp"
persist_key = "dst+port"
pmask = 24
servergroup = "web"

[[rule]]
name = "bad"
vip = "198.51.100.100"
port = "53"
protocol = "udp"
persist_key = "dst"
servergroup = "web"

[[rule]]
name = "num"
vip = "198.51.100.101"
port = "53"
protocol = "udp"
persist_key = 5
servergroup = "web"
`,
			[]string{
				`27: rule "tcp-dst": persist_key "dst+port" is for protocol udp: a TCP connection is a session of its own, and keying on the destination would send every client of a port to one server (use "src" or "src+port")`,
				`36: rule "dst-pmask": pmask with persist_key "dst+port": that key is the VIP's port, not the client's address`,
				`44: rule "bad": unknown persist_key "dst": want src, src+port or dst+port`,
				`52: rule "num": persist_key must be a string, not integer 5`,
			}},
		{"thresholds", ports + `
[[servergroup]]
name = "t"
server = [
  { address = "203.0.113.200", min_conns = 5 },
  { address = "203.0.113.201", max_conns = 10, min_conns = 11 },
  { address = "203.0.113.202", max_conns = 10, min_conns = -1 },
  { address = "203.0.113.203", max_conns = 10, min_conns = "few" },
  { address = "203.0.113.204", max_conns = 10, min_conns = 10 },
  { address = "203.0.113.205", max_conns = 10, min_conns = 0 },
]
`,
			[]string{
				`14: servergroup "t": min_conns 5 needs max_conns (the count at which the server stops taking new flows; min_conns is where it starts again)`,
				`15: servergroup "t": min_conns 11 is above max_conns 10: an overloaded server takes new flows again below min_conns, so it must be at most max_conns`,
				`16: servergroup "t": min_conns -1 out of range 0..100000000`,
				`17: servergroup "t": min_conns must be an integer, not string "few"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.toml", []byte(tt.toml))
			if err == nil {
				t.Fatalf("Parse accepted the file: %+v", cfg)
			}
			got := issueLines(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("issues:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

// TestParsePersistKey: persist_key turns persistence on (src and src+port on the whole
// client address when pmask is not given), dst+port persists without pmask, and every
// form survives Marshal.
func TestParsePersistKey(t *testing.T) {
	c, err := Parse("t.toml", []byte(ports+groups+`
[[rule]]
name = "plain"
vip = "198.51.100.100"
port = "80"
servergroup = "web"

[[rule]]
name = "sp"
vip = "198.51.100.100"
port = "53"
protocol = "udp"
persist_key = "src+port"
servergroup = "web"

[[rule]]
name = "sp24"
vip = "198.51.100.100"
port = "54"
protocol = "udp"
pmask = 24
persist_key = "SRC+PORT"
persist_timeout = "20s"
servergroup = "web"

[[rule]]
name = "dp"
vip = "198.51.100.100"
port = "5060-5063"
protocol = "udp"
persist_key = "dst+port"
persist_timeout = "90s"
servergroup = "web"

[[rule]]
name = "sp6"
vip = "2001:db8:1::100"
port = "53"
protocol = "udp"
persist_key = "src"
servergroup = "web6"
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rule    string
		key     PersistKey
		pmask   int
		timeout time.Duration
	}{
		{"plain", PersistSrc, -1, 0},
		{"sp", PersistSrcPort, 32, DefaultPersistTimeout},
		{"sp24", PersistSrcPort, 24, 20 * time.Second},
		{"dp", PersistDstPort, -1, 90 * time.Second},
		{"sp6", PersistSrc, 128, DefaultPersistTimeout},
	} {
		r := c.Rule(tc.rule)
		if r.PersistKey != tc.key || r.PMask != tc.pmask || r.PersistTimeout != tc.timeout {
			t.Errorf("rule %s: key %q pmask %d timeout %v; want %q %d %v", tc.rule, r.PersistKey, r.PMask, r.PersistTimeout, tc.key, tc.pmask, tc.timeout)
		}
	}
	out := roundTrip(t, "t.toml", c, true)
	for _, want := range []string{`persist_key = "src+port"`, `persist_key = "dst+port"`, `persist_timeout = "1m30s"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("export lacks %s:\n%s", want, out)
		}
	}
}
