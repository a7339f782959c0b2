package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"ulb/balancer/health"
)

// issueLines returns "LINE: msg" for each issue of a *Error, failing the test for any
// other error.
func issueLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	out := make([]string, len(ce.Issues))
	for i, is := range ce.Issues {
		out[i] = fmt.Sprintf("%d: %s", is.Line, is.Msg)
	}
	return out
}

func TestLoadFull(t *testing.T) {
	cfg, err := Load("testdata/full.toml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	want := &Config{
		File:          "testdata/full.toml",
		Hostname:      "lb1",
		ControlSocket: "/run/ulb/lb1.sock",
		LogLevel:      slog.LevelDebug,
		LogLevelSet:   true,
		Ports: []Port{
			{Name: "outside", Device: "eth1", Kind: KindAFPacket,
				Addresses: []netip.Prefix{p("198.51.100.10/24"), p("2001:db8:1::10/64")},
				RcvBuf:    4194304, SndBuf: 1048576, Batch: 64, Redirects: true},
			{Name: "inside", Device: "eth2", Kind: KindAFPacket,
				Addresses: []netip.Prefix{p("203.0.113.10/24"), p("203.0.113.11/24")}, MTU: 9000, KernelRX: true, Redirects: true},
			{Name: "mgmt", Device: "ulb0", Kind: KindTUN,
				Addresses: []netip.Prefix{p("192.0.2.1/30")}, MTU: DefaultTUNMTU},
		},
		Routes: []Route{
			{To: p("0.0.0.0/0"), Via: a("198.51.100.1"), Port: "outside"},
			{To: p("::/0"), Via: a("2001:db8:1::1"), Port: "outside"},
			{To: p("192.0.2.128/25"), Port: "mgmt", Pinned: true},
			{To: p("198.18.0.0/15"), Via: a("203.0.113.1"), Port: "inside", Pinned: true},
			{To: p("2001:db8:99::/48"), Via: a("fe80::1"), Port: "outside", Pinned: true},
		},
		HealthChecks: []HealthCheck{
			{Name: "web-tcp", Test: "tcp", Interval: 5 * time.Second, Timeout: 2 * time.Second, Count: 3, Rise: health.DefaultRise},
			{Name: "web-http", Test: "http", Interval: 10 * time.Second, Timeout: 3 * time.Second, Count: 2, Rise: 4, Port: 8080,
				Path: "/healthz", Host: "www.example.com", ExpectStatus: 204},
			{Name: "dns-udp", Test: "udp", Interval: health.DefaultInterval, Timeout: health.DefaultTimeout,
				Count: health.DefaultCount, Rise: health.DefaultRise, Send: "ping", Expect: "pong"},
			{Name: "gw-ping", Test: "ping", Interval: time.Second, Timeout: 500 * time.Millisecond,
				Count: health.DefaultCount, Rise: health.DefaultRise},
			{Name: "load", Test: "agent", Interval: health.DefaultInterval, Timeout: health.DefaultTimeout,
				Count: health.DefaultCount, Rise: health.DefaultRise, AgentPort: 7000},
			{Name: "custom", Test: "script", Interval: health.DefaultInterval, Timeout: health.DefaultTimeout,
				Count: health.DefaultCount, Rise: health.DefaultRise, Port: 443, Command: []string{"testdata/check.sh", "--quiet"}},
		},
		ServerGroups: []ServerGroup{
			{Name: "web", HealthCheck: "web-tcp", Servers: []Server{
				{Addr: a("203.0.113.200"), Port: 80, Weight: 1, Enabled: true},
				{Addr: a("203.0.113.210"), Port: 8080, Weight: 3, MaxConns: 1000, Enabled: true},
				{Addr: a("203.0.113.220"), Weight: 1},
			}},
			{Name: "web6", HealthCheck: "web-http", Servers: []Server{
				{Addr: a("2001:db8:2::200"), Port: 80, Weight: 1, Enabled: true},
				{Addr: a("2001:db8:2::210"), Weight: 1, Enabled: true},
			}},
			{Name: "dns", HealthCheck: "dns-udp", Servers: []Server{{Addr: a("203.0.113.53"), Weight: 0, Enabled: true}}},
		},
		Rules: []Rule{
			{Name: "web", VIP: a("198.51.100.100"), PortLo: 80, PortHi: 80, Protocol: TCP, Algorithm: WeightedRoundRobin,
				Topology: HalfNAT, PMask: 24, PersistKey: PersistSrc, PersistTimeout: DefaultPersistTimeout, ConnDrain: 30 * time.Second,
				ServerGroup: "web", SorryServer: netip.MustParseAddrPort("203.0.113.99:8080"), Enabled: true},
			{Name: "web-full", VIP: a("198.51.100.100"), PortLo: 8000, PortHi: 8099, Protocol: TCP, Algorithm: Maglev,
				Topology: FullNAT, ProxySource: []netip.Addr{a("203.0.113.50"), a("203.0.113.51"), a("203.0.113.52"), a("203.0.113.60")},
				PMask: 32, PersistKey: PersistSrc, PersistTimeout: time.Minute, ServerGroup: "web"},
			{Name: "web6", VIP: a("2001:db8:1::100"), PortLo: 443, PortHi: 443, Protocol: TCP, Algorithm: HashIPPort,
				Topology: HalfNAT, PMask: -1, PersistKey: PersistSrc, ServerGroup: "web6", SorryServer: netip.AddrPortFrom(a("2001:db8:2::99"), 0),
				KeepFlowsOnDown: true, Enabled: true},
			{Name: "dns", VIP: a("192.0.2.53"), PortLo: 53, PortHi: 53, Protocol: UDP, Algorithm: RoundRobin,
				Topology: DSR, PMask: -1, PersistKey: PersistSrc, ServerGroup: "dns", Enabled: true},
		},
		Conntrack: Conntrack{Capacity: 2000000, Timeouts: ConntrackTimeouts{Established: time.Hour, UDP: 30 * time.Second}},
		Defence: Defence{SYNCookies: SYNCookiesOff, SYNCookieThreshold: DefaultCookieThreshold, NewFlowRing: true,
			SYNCookieWScale: DefaultCookieScale},
		VRRP: []VRRP{
			{Name: "vip", Port: "outside", VRID: 1, Version: 3, Priority: 200, Interval: 100 * time.Millisecond,
				Preempt: true, PreemptDelay: 30 * time.Second, Accept: true,
				Addresses:   []netip.Prefix{p("198.51.100.100/24"), p("198.51.100.101/24")},
				TrackPorts:  []TrackPort{{Port: "inside"}, {Port: "mgmt", Weight: 20}},
				TrackPings:  []TrackPing{{Address: a("198.51.100.1"), Interval: 500 * time.Millisecond, Count: 5, Weight: 50}, {Address: a("192.0.2.2"), Interval: time.Second, Count: 3}},
				TrackGroups: []TrackGroup{{ServerGroup: "web"}, {ServerGroup: "dns", Weight: 10}}, SyncGroup: "pair", Checksum: ChecksumNoPseudoHeader, GARPCount: 3, GARPRefresh: time.Minute, Enabled: true},
			{Name: "gw", Port: "inside", VRID: 1, Version: 2, Priority: 100, Interval: 2 * time.Second,
				Addresses: []netip.Prefix{p("203.0.113.254/24")}, SyncGroup: "pair", Enabled: true},
			{Name: "vip6", Port: "outside", VRID: 1, Version: 3, Priority: 100, Interval: time.Second, Preempt: true,
				Addresses: []netip.Prefix{p("fe80::1:1/64"), p("2001:db8:1::100/64")}, GARPCount: DefaultGARPCount, Enabled: true},
		},
		AutoNAT: []AutoNAT{{From: []netip.Prefix{p("203.0.113.0/24")}, Out: "outside"}},
		NAT: []StaticNAT{
			{Public: netip.AddrPortFrom(a("198.51.100.50"), 0), Private: netip.AddrPortFrom(a("203.0.113.201"), 0), Out: "outside"},
			{Public: netip.MustParseAddrPort("198.51.100.51:2222"), Private: netip.MustParseAddrPort("203.0.113.201:22"), Protocol: TCP, Out: "outside"},
		},
	}
	// The compiled pattern is checked apart: DeepEqual would compare its program.
	if re := cfg.HealthChecks[1].ExpectBody; re == nil || re.String() != "^ok( [0-9]+)?$" || !re.MatchString("ok 12") || re.MatchString("nok") {
		t.Errorf("expect_body = %v", re)
	} else {
		cfg.HealthChecks[1].ExpectBody = nil
		defer func() { cfg.HealthChecks[1].ExpectBody = re }()
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", cfg, want)
	}
	if got := cfg.Port("inside"); got == nil || got.Device != "eth2" {
		t.Errorf("Port(inside) = %+v", got)
	}
	if got := cfg.Port("nope"); got != nil {
		t.Errorf("Port(nope) = %+v, want nil", got)
	}
	if got, want := cfg.Ports[1].Connected(), []netip.Prefix{p("203.0.113.0/24")}; !reflect.DeepEqual(got, want) {
		t.Errorf("Connected() = %v, want %v", got, want)
	}
	if g := cfg.ServerGroup("dns"); g == nil || len(g.Servers) != 1 || cfg.ServerGroup("nope") != nil {
		t.Errorf("ServerGroup(dns) = %+v", g)
	}
	r := cfg.Rule("web-full")
	if r == nil || cfg.Rule("nope") != nil {
		t.Fatalf("Rule(web-full) = %+v", r)
	}
	if r.Ports() != "8000-8099" || cfg.Rule("web").Ports() != "80" {
		t.Errorf("Ports() = %q, %q", r.Ports(), cfg.Rule("web").Ports())
	}
	// Port ranges keep the offset: 8042 reaches server port 8080+42, or stays 8042.
	if got := r.ServerPort(8080, 8042); got != 8122 {
		t.Errorf("ServerPort(8080, 8042) = %d, want 8122", got)
	}
	if got := r.ServerPort(0, 8042); got != 8042 {
		t.Errorf("ServerPort(0, 8042) = %d, want 8042", got)
	}
	if TCP.Number() != 6 || UDP.Number() != 17 {
		t.Errorf("protocol numbers %d %d", TCP.Number(), UDP.Number())
	}
	if v := cfg.VRRPInstance("vip6"); v == nil || !v.IPv6() || v.Owner() || cfg.VRRPInstance("gw").IPv6() || cfg.VRRPInstance("nope") != nil {
		t.Errorf("VRRPInstance(vip6) = %+v", v)
	}
	s := cfg.ServerGroups[0].Servers
	if s[0].Endpoint() != "203.0.113.200:80" || s[2].Endpoint() != "203.0.113.220" ||
		cfg.ServerGroups[1].Servers[0].Endpoint() != "[2001:db8:2::200]:80" {
		t.Errorf("Endpoint() = %q %q %q", s[0].Endpoint(), s[2].Endpoint(), cfg.ServerGroups[1].Servers[0].Endpoint())
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("min.toml", []byte("[[port]]\nname = \"a\"\ndevice = \"eth1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ControlSocket != DefaultControlSocket || cfg.LogLevel != slog.LevelInfo || cfg.LogLevelSet ||
		cfg.Hostname != "" || cfg.Ports[0].Kind != KindAFPacket || cfg.Ports[0].MTU != 0 || cfg.HostPort {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = Parse("hp.toml", []byte("host_port = true\n[[port]]\nname = \"a\"\ndevice = \"eth1\"\n"))
	if err != nil || !cfg.HostPort {
		t.Errorf("host_port = true: %v, %v", cfg, err)
	}
}

func TestLoadSyntaxError(t *testing.T) {
	_, err := Load("testdata/syntax.toml")
	got := issueLines(t, err)
	if len(got) != 1 || !strings.HasPrefix(got[0], "5: syntax error: ") {
		t.Errorf("issues = %q, want one syntax error at line 5", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Issues: []Issue{{File: "f.toml", Line: 3, Msg: "bad"}, {File: "f.toml", Msg: "worse"}}}
	if got, want := e.Error(), "f.toml:3: bad\nf.toml: worse"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// ports is a valid pair of ports that route cases build on (lines 1 to 9).
const ports = `[[port]]
name = "outside"
device = "eth1"
address = ["198.51.100.10/24", "2001:db8:1::10/64"]

[[port]]
name = "inside"
device = "eth2"
address = ["203.0.113.10/24"]
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string
	}{
		{"no ports", `hostname = "lb1"`,
			[]string{"0: no [[port]] defined: ulbd needs at least one port"}},
		{"top-level keys", `hostname = "-lb1"
control_socket = "run/ulbd.sock"
log_level = "loud"
` + ports,
			[]string{
				`1: hostname "-lb1": a label may not begin or end with '-'`,
				`2: control_socket "run/ulbd.sock" must be an absolute path`,
				`3: log_level "loud": want debug, info, warn or error`,
			}},
		{"top-level types", `hostname = 1
control_socket = "/` + strings.Repeat("x", 120) + `"
log_level = ["info"]
host_port = "yes"
` + ports,
			[]string{
				`1: hostname must be a string, not integer 1`,
				`2: control_socket is 121 bytes long; a unix socket path holds at most 107`,
				`3: log_level must be a string, not array`,
				`4: host_port must be true or false, not string "yes"`,
			}},
		{"unknown keys", `bogus = 1
[extra]
x = 1

[[port]]
name = "a"
device = "eth1"
adress = ["198.51.100.10/24"]

[[port]]
name = "b"
device = "eth2"
adress = ["203.0.113.10/24"]
Name = "c"

[[widget]]
`,
			[]string{
				`1: unknown key "bogus"`,
				`2: unknown section [extra]`,
				`8: unknown key "adress" in [[port]]`,
				`13: unknown key "adress" in [[port]]`,
				`14: unknown key "Name" in [[port]]`,
				`16: unknown section [[widget]]`,
			}},
		{"section shape", `port = "eth1"
[route]
to = "0.0.0.0/0"
`,
			[]string{
				`1: port must be an array of tables: write each one under a [[port]] header`,
				`2: route must be an array of tables: write each one under a [[route]] header`,
			}},
		{"port names and devices", `[[port]]
name = "a"
device = "eth1"

[[port]]
name = "a"
device = "eth1"

[[port]]
device = "eth3"

[[port]]
name = "bad name"
device = "a/b"

[[port]]
name = "d"
device = "averyveryverylongname"

[[port]]
name = "e"
`,
			[]string{
				`6: duplicate port name "a" (first defined at line 2)`,
				`7: port "a": device "eth1" is already used by port "a"`,
				`9: [[port]] needs a name`,
				`13: port name "bad name": character ' ' is not allowed (letters, digits, '-', '_', '.')`,
				`14: port "bad name": device "a/b": may not contain '/', ':' or white space`,
				`18: port "d": device "averyveryverylongname": must be 1 to 15 characters`,
				`20: port "e" needs a device`,
			}},
		{"port kinds and numbers", `[[port]]
name = "a"
device = "eth1"
kind = "tap"
mtu = "big"
rcvbuf = 100
batch = 0
sndbuf = 2147483648

[[port]]
name = "t"
device = "ulb0"
kind = "tun"
rcvbuf = 65536
batch = 8
address = ["2001:db8::1/64"]
mtu = 1000
kernel_rx = true

[[port]]
name = "u"
device = "eth3"
mtu = 65536
kernel_rx = "yes"
`,
			[]string{
				`4: port "a": unknown kind "tap": want afpacket or tun`,
				`5: port "a": mtu must be an integer, not string "big"`,
				`6: port "a": rcvbuf 100 out of range 4096..1073741824`,
				`7: port "a": batch 0 out of range 1..1024`,
				`8: port "a": sndbuf 2147483648 out of range 4096..1073741824`,
				`14: port "t": rcvbuf applies only to kind afpacket`,
				`15: port "t": batch applies only to kind afpacket`,
				`17: port "t": mtu 1000 out of range 1280..65535`,
				`18: port "t": kernel_rx applies only to kind afpacket`,
				`23: port "u": mtu 65536 out of range 68..65535`,
				`24: port "u": kernel_rx must be true or false, not string "yes"`,
			}},
		{"addresses", `[[port]]
name = "a"
device = "eth1"
address = [
  "198.51.100.0/24",
  "198.51.100.255/24",
  "2001:db8::/64",
  "198.51.100.7",
  "2001:db8::7",
  "nonsense",
  5,
  "::ffff:198.51.100.9/120",
  "224.0.0.1/24",
  "198.51.100.10/24",
  "198.51.100.10/25",
  "192.0.2.0/31",
  "192.0.2.9/32",
]
`,
			[]string{
				`5: port "a": address "198.51.100.0/24" is the network address of 198.51.100.0/24: give the router's own address, e.g. 198.51.100.1/24`,
				`6: port "a": address "198.51.100.255/24" is the broadcast address of 198.51.100.0/24`,
				`7: port "a": address "2001:db8::/64" is the subnet-router anycast address of 2001:db8::/64: give the router's own address, e.g. 2001:db8::1/64`,
				`8: port "a": address "198.51.100.7" needs the prefix length of its network, e.g. "198.51.100.7/24"`,
				`9: port "a": address "2001:db8::7" needs the prefix length of its network, e.g. "2001:db8::7/64"`,
				`10: port "a": address "nonsense" is not an address with a prefix length (like 198.51.100.10/24 or 2001:db8::10/64)`,
				`11: port "a": address[6] must be a string, not integer 5`,
				`12: port "a": address "::ffff:198.51.100.9/120" is an IPv4-mapped IPv6 address: write the IPv4 address`,
				`13: port "a": address "224.0.0.1/24" cannot be a router's address (unspecified, multicast or loopback)`,
				`15: port "a": duplicate address 198.51.100.10`,
			}},
		{"address not a list", `[[port]]
name = "a"
device = "eth1"
address = 1
`,
			[]string{`4: port "a": address must be a list of strings, not integer 1`}},
		{"overlap across ports", `[[port]]
name = "a"
device = "eth1"
address = ["198.51.100.10/24", "2001:db8:1::10/64"]

[[port]]
name = "b"
device = "eth2"
address = [
  "203.0.113.10/24",
  "198.51.100.130/25",
  "2001:db8:1:0:1::1/80",
]

[[port]]
name = "c"
device = "eth3"
address = "198.51.100.10/24"
`,
			[]string{
				`11: port "b": address 198.51.100.130/25 overlaps 198.51.100.10/24 of port "a" (line 4): ports must be on different networks`,
				`12: port "b": address 2001:db8:1:0:1::1/80 overlaps 2001:db8:1::10/64 of port "a" (line 4): ports must be on different networks`,
				`18: port "c": address 198.51.100.10/24 overlaps 198.51.100.10/24 of port "a" (line 4): ports must be on different networks`,
			}},
		{"routes", ports + `
[[route]]
to = "198.51.100.1/24"
via = "2001:db8:1::1"

[[route]]
to = "0.0.0.0/0"
via = "192.0.2.1"

[[route]]
to = "0.0.0.0/0"
via = "198.51.100.1"

[[route]]
to = "192.0.2.0/24"
via = "203.0.113.1"
port = "nope"

[[route]]
to = "198.18.0.0/15"

[[route]]
via = "198.51.100.1"

[[route]]
to = "198.18.0.0"
via = "198.51.100.10"

[[route]]
to = "2001:db8:5::/48"
via = "2001:db8:1::1"
port = "inside"

[[route]]
to = "nonsense"
via = "198.51.100.1/24"
port = 3

[[route]]
to = "203.0.113.0/24"
via = "fe80::1%eth1"
`,
			[]string{
				`12: route #1: to "198.51.100.1/24" has host bits set: did you mean "198.51.100.0/24"?`,
				`13: route to 198.51.100.0/24: via 2001:db8:1::1 is IPv6 but the destination is IPv4`,
				`17: route to 0.0.0.0/0: via 192.0.2.1 is not on a connected network of any port; add port = "NAME" to reach it through a given port`,
				`20: duplicate route to 0.0.0.0/0 (first at line 16)`,
				`26: route to 192.0.2.0/24: unknown port "nope" (ports: "outside", "inside")`,
				`28: route to 198.18.0.0/15 needs via (a next hop), port (an egress port) or both`,
				`31: [[route]] needs to = a destination prefix`,
				`35: route #7: to "198.18.0.0" needs a prefix length, e.g. "198.18.0.0/32" for this host alone`,
				`36: route #7: via 198.51.100.10 is the router's own address on port "outside"`,
				`41: route to 2001:db8:5::/48: via 2001:db8:1::1 is on the network of port "outside", not of port "inside"`,
				`44: route #9: to "nonsense" is not a prefix (like 0.0.0.0/0 or 2001:db8::/32)`,
				`45: route #9: via "198.51.100.1/24" must be an address without a prefix length`,
				`46: route #9: port must be a string, not integer 3`,
				`50: route to 203.0.113.0/24: via "fe80::1%eth1": give the port with port = "NAME" instead of a zone`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.toml", []byte(tt.toml))
			if err == nil {
				t.Fatalf("Parse accepted the file: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			got := issueLines(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("issues:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "t.toml:") {
					t.Errorf("error line %q does not start with the file name", line)
				}
			}
		})
	}
}
