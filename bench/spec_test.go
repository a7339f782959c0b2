package bench

import (
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"ulb/bench/traffic"
)

const goodSpec = `name = "t1"

[[host]]
name = "c"
offloads = false

[[host.route]]
to = "default"
via = "192.0.2.1"

[[host.route]]
to = "2001:db8:2::/64"
via = "2001:db8:1::1"
dev = "eth0"

[[host]]
name = "r"
router = true

[[host]]
name = "s"
sysctls = { "net.ipv4.ip_forward" = 1, "net/ipv6/conf/all/forwarding" = "0", "net.ipv4.conf.all.rp_filter" = false }
setup = [["nft", "-f", "dnat.nft"], ["true"]]

[[link]]
a = "c:eth0"
b = "r:left"
mtu = 9000
a_address = ["192.0.2.2/24", "2001:db8:1::2/64"]

[[segment]]
name = "lan"
[[segment.member]]
port = "r:right"
[[segment.member]]
port = "s:eth0"
address = ["198.51.100.2/24"]

[[process]]
name = "ulbd"
host = "r"
run = ["ulbd", "-c", "r.toml"]
ready = { socket = "/run/ulb/r.sock", timeout = "20s" }

[[process]]
host = "s"
serve = { tcp = [":80"], udp = [":53"], http = [":8080"], sink = ["[::]:9000"] }

[[check]]
type = "ping"
from = "c"
to = "2001:db8:2::2"
count = 2
expect = "failure"

[[check]]
type = "transfer"
from = "c"
to = "198.51.100.2:9000"
bytes = "64MiB"
timeout = "1m"

[[check]]
type = "conns"
host = "c"
to = "198.51.100.2:80"
count = 10
expect_names = ["s"]

[[check]]
name = "ulbadm answers"
type = "exec"
from = "r"
run = ["ulbadm", "show-port"]
expect_output = "left"
`

func TestParseGood(t *testing.T) {
	s, err := Parse([]byte(goodSpec), "dir/good.toml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "t1" || len(s.Hosts) != 3 || len(s.Links) != 1 || len(s.Segments) != 1 || len(s.Processes) != 2 || len(s.Checks) != 4 {
		t.Fatalf("counts wrong: %+v", s)
	}
	if s.Dir != "dir" {
		t.Errorf("Dir = %q", s.Dir)
	}
	c := s.Host("c")
	if c.Offloads == nil || *c.Offloads || len(c.Routes) != 2 || c.Routes[1].Dev != "eth0" {
		t.Errorf("host c = %+v", c)
	}
	if st := s.Host("s").Setup; len(st) != 2 || strings.Join(st[0], " ") != "nft -f dnat.nft" || st[1][0] != "true" {
		t.Errorf("host s setup = %q", st)
	}
	if !s.Host("r").Router || s.Host("nope") != nil {
		t.Error("Host lookup wrong")
	}
	if got := s.Links[0].MTU; got != 9000 {
		t.Errorf("mtu = %d", got)
	}
	if m := s.Segments[0].Members; len(m) != 2 || m[1].Port != "s:eth0" || m[1].Address[0] != "198.51.100.2/24" {
		t.Errorf("segment members = %+v", m)
	}
	p := s.Processes[0]
	if p.Ready.Socket != "/run/ulb/r.sock" || p.Ready.Timeout != 20*time.Second {
		t.Errorf("ready = %+v", p.Ready)
	}
	if s.Processes[1].Name != "s-1" || s.Processes[1].Serve.Sink[0] != "[::]:9000" {
		t.Errorf("serve process = %+v", s.Processes[1])
	}
	ck := s.Checks
	if !ck[0].ExpectFailure() || ck[0].Count != 2 || ck[0].Name != "ping c->2001:db8:2::2" {
		t.Errorf("check 0 = %+v", ck[0])
	}
	if ck[1].Bytes != 64<<20 || ck[1].Timeout != time.Minute {
		t.Errorf("check 1 = %+v", ck[1])
	}
	if ck[2].From != "c" {
		t.Errorf("host alias: from = %q", ck[2].From)
	}
	if ck[3].Name != "ulbadm answers" {
		t.Errorf("check 3 name = %q", ck[3].Name)
	}
	want := []string{"t1-c", "t1-r", "t1-s", "t1-lan"}
	if got := s.Namespaces(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Namespaces = %v, want %v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	base := "name = \"t\"\n[[host]]\nname = \"a\"\n[[host]]\nname = \"b\"\n"
	// fo: two processes, one with a control socket, and a failover check at line 15.
	fo := base + "[[process]]\nname = \"lb1\"\nhost = \"a\"\nrun = [\"ulbd\"]\nready = { socket = \"/x.sock\" }\n" +
		"[[process]]\nname = \"lb2\"\nhost = \"b\"\nrun = [\"ulbd\"]\n" +
		"[[check]]\ntype = \"failover\"\nfrom = \"a\"\nto = \"192.0.2.1:80\"\n"
	cases := []struct {
		name, text string
		want       []string // substrings, each must appear
	}{
		{"syntax", "name = \n", []string{"x.toml:1:"}},
		{"unknown key", base + "colour = \"red\"\n", []string{"x.toml:6: unknown key \"host.colour\""}},
		{"bad bench name", "name = \"a b\"\n", []string{"x.toml:1: name \"a b\""}},
		{"long namespace", "name = \"verylongname\"\n[[host]]\nname = \"host5\"\n", []string{"x.toml:2:", "longer than 15"}},
		{"duplicate host", base + "[[host]]\nname = \"a\"\n", []string{"x.toml:6: host name \"a\" is used twice"}},
		{"link to unknown host", base + "[[link]]\na = \"a:eth0\"\nb = \"z:eth0\"\n", []string{"x.toml:6: interface \"z:eth0\": no host \"z\""}},
		{"bad device", base + "[[link]]\na = \"a:this-name-is-too-long\"\nb = \"b:eth0\"\n", []string{"bad device name"}},
		{"no colon", base + "[[link]]\na = \"a\"\nb = \"b:eth0\"\n", []string{"want HOST:IFACE"}},
		{"interface twice", base + "[[link]]\na = \"a:eth0\"\nb = \"b:eth0\"\n[[link]]\na = \"a:eth0\"\nb = \"b:eth1\"\n", []string{"x.toml:9: interface \"a:eth0\" is used twice"}},
		{"bad address", base + "[[link]]\na = \"a:eth0\"\nb = \"b:eth0\"\na_address = [\"192.0.2.1\"]\n", []string{"want ADDRESS/PREFIXLEN"}},
		{"router with address", "name = \"t\"\n[[host]]\nname = \"a\"\nrouter = true\n[[host]]\nname = \"b\"\n[[link]]\na = \"a:eth0\"\nb = \"b:eth0\"\na_address = [\"192.0.2.1/24\"]\n", []string{"x.toml:7:", "is a router"}},
		{"bad mtu", base + "[[link]]\na = \"a:eth0\"\nb = \"b:eth0\"\nmtu = 10\n", []string{"mtu 10 out of range"}},
		{"route family", base[:len(base)-len("[[host]]\nname = \"b\"\n")] + "[[host.route]]\nto = \"2001:db8::/32\"\nvia = \"192.0.2.1\"\n[[host]]\nname = \"b\"\n", []string{"x.toml:2:", "different families"}},
		{"route dev", base + "[[host.route]]\nto = \"default\"\nvia = \"192.0.2.1\"\ndev = \"eth9\"\n", []string{"x.toml:4:", "dev \"eth9\""}},
		{"sysctl outside net", base + "sysctls = { \"kernel.panic\" = 1 }\n", []string{"only net.* keys"}},
		{"sysctl value", base + "sysctls = { \"net.ipv4.ip_forward\" = 1.5 }\n", []string{"value must be"}},
		{"process both", base + "[[process]]\nhost = \"a\"\nrun = [\"x\"]\nserve = { tcp = [\":80\"] }\n", []string{"x.toml:6:", "not both"}},
		{"process neither", base + "[[process]]\nhost = \"a\"\n", []string{"needs run or serve"}},
		{"process host", base + "[[process]]\nhost = \"q\"\nrun = [\"x\"]\n", []string{"no host \"q\""}},
		{"serve addr", base + "[[process]]\nhost = \"a\"\nserve = { tcp = [\"80\"] }\n", []string{"listen address \"80\""}},
		{"two ready", base + "[[process]]\nhost = \"a\"\nrun = [\"x\"]\nready = { file = \"/x\", delay = \"1s\" }\n", []string{"ready takes one of"}},
		{"long delay", base + "[[process]]\nhost = \"a\"\nrun = [\"x\"]\nready = { delay = \"5m\" }\n", []string{"ready delay 5m0s out of range"}},
		{"check type", base + "[[check]]\ntype = \"smoke\"\nfrom = \"a\"\n", []string{"x.toml:6:", "type \"smoke\""}},
		{"check from", base + "[[check]]\ntype = \"ping\"\nfrom = \"q\"\nto = \"192.0.2.1\"\n", []string{"no host \"q\""}},
		{"ping to", base + "[[check]]\ntype = \"ping\"\nfrom = \"a\"\nto = \"192.0.2.1:80\"\n", []string{"want an address"}},
		{"tcp to", base + "[[check]]\ntype = \"tcp\"\nfrom = \"a\"\nto = \"192.0.2.1\"\n", []string{"want ADDRESS:PORT"}},
		{"transfer bytes", base + "[[check]]\ntype = \"transfer\"\nfrom = \"a\"\nto = \"192.0.2.1:9\"\n", []string{"bytes > 0"}},
		{"bad size", base + "[[check]]\ntype = \"transfer\"\nfrom = \"a\"\nto = \"192.0.2.1:9\"\nbytes = \"lots\"\n", []string{"bad size"}},
		{"conns count", base + "[[check]]\ntype = \"conns\"\nfrom = \"a\"\nto = \"192.0.2.1:9\"\n", []string{"count > 0"}},
		{"expect", base + "[[check]]\ntype = \"exec\"\nfrom = \"a\"\nrun = [\"true\"]\nexpect = \"maybe\"\n", []string{"expect \"maybe\""}},
		{"exec run", base + "[[check]]\ntype = \"exec\"\nfrom = \"a\"\n", []string{"exec needs run"}},
		{"loopback address", base + "loopback = [\"198.51.100.100\"]\n", []string{"x.toml:4:", "loopback address \"198.51.100.100\""}},
		{"expect_peer type", base + "[[check]]\ntype = \"tcp\"\nfrom = \"a\"\nto = \"192.0.2.1:80\"\nexpect_peer = \"192.0.2.2\"\n", []string{"expect_peer is for http checks"}},
		{"expect_peer value", base + "[[check]]\ntype = \"http\"\nfrom = \"a\"\nto = \"192.0.2.1:80\"\nexpect_peer = \"near\"\n", []string{"want an address or a prefix"}},
		{"empty setup command", base + "setup = [[\"true\"], []]\n", []string{"x.toml:4:", "host \"b\": setup command 2 is empty"}},
		{"blank setup program", base + "setup = [[\" \", \"x\"]]\n", []string{"x.toml:4:", "setup command 1 is empty"}},
		{"setup not a list of commands", base + "setup = [\"nft\"]\n", []string{"x.toml:"}},
		{"segment empty", base + "[[segment]]\nname = \"lan\"\n", []string{"x.toml:6: segment \"lan\" has no member"}},
		{"failover stop", fo, []string{"x.toml:15:", "failover needs stop"}},
		{"failover stop unknown", fo + "stop = \"zz\"\n", []string{"x.toml:15:", "stop \"zz\": no such process"}},
		{"failover signal", fo + "stop = \"lb1\"\nsignal = \"HUP\"\n", []string{"x.toml:15:", "signal \"HUP\": want KILL or TERM"}},
		{"failover stop_after", fo + "stop = \"lb1\"\nduration = \"1s\"\n", []string{"x.toml:15:", "stop_after 2s", "less than the duration 1s"}},
		{"failover duration", fo + "stop = \"lb1\"\nduration = \"6m\"\n", []string{"x.toml:15:", "duration 6m0s out of range"}},
		{"failover timeout", fo + "stop = \"lb1\"\ntimeout = \"5s\"\n", []string{"x.toml:15:", "timeout 5s must exceed the duration 10s"}},
		{"failover max_gap", fo + "stop = \"lb1\"\nmax_gap = \"-1s\"\n", []string{"x.toml:15:", "negative max_gap"}},
		{"failover vrrp alone", fo + "stop = \"lb1\"\nvrrp = \"vip\"\n", []string{"x.toml:15:", "vrrp and nodes go together"}},
		{"failover node socket", fo + "stop = \"lb1\"\nvrrp = \"vip\"\nnodes = [\"lb1\", \"lb2\"]\n", []string{"x.toml:15:", "node \"lb2\": its process has no ready.socket"}},
		{"failover node unknown", fo + "stop = \"lb1\"\nvrrp = \"vip\"\nnodes = [\"lb1\", \"lb3\"]\n", []string{"x.toml:15:", "node \"lb3\": no such process"}},
		{"failover stop not a node", fo + "stop = \"lb2\"\nvrrp = \"vip\"\nnodes = [\"lb1\"]\n", []string{"x.toml:15:", "stop \"lb2\" is not one of the nodes", "at least one to take over"}},
		{"failover keys elsewhere", base + "[[check]]\ntype = \"tcp\"\nfrom = \"a\"\nto = \"192.0.2.1:80\"\nstop = \"x\"\n", []string{"x.toml:6:", "are for failover checks"}},
		{"segment name clash", base + "[[segment]]\nname = \"a\"\nmember = [{ port = \"b:eth0\" }]\n", []string{"used twice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "x.toml")
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.text)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// The flagship bench's failover check parses as written.
func TestParseFailover(t *testing.T) {
	s, err := Load("../examples/ha-half-nat/bench.toml")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(s.Checks, func(c Check) bool { return c.Type == CheckFailover })
	if i < 0 {
		t.Fatal("examples/ha-half-nat has no failover check")
	}
	c := s.Checks[i]
	if c.Stop != "lb1" || c.Signal != "KILL" || c.VRRP != "vip" || strings.Join(c.Nodes, " ") != "lb1 lb2" ||
		c.StopAfter != 2*time.Second || c.Duration != 8*time.Second || c.MaxGap != 4*time.Second || c.From != "client" {
		t.Errorf("failover check = %+v", c)
	}
}

// Every problem is reported, not only the first.
func TestParseReportsAll(t *testing.T) {
	text := "name = \"t\"\n[[host]]\nname = \"a\"\n[[check]]\ntype = \"ping\"\nfrom = \"q\"\nto = \"x\"\n"
	_, err := Parse([]byte(text), "x.toml")
	var se *SpecError
	if !errors.As(err, &se) || len(se.Problems) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{"0": 0, "123": 123, "64KiB": 64 << 10, "64MiB": 64 << 20, "1GiB": 1 << 30,
		"10kB": 10000, "10MB": 10e6, "2GB": 2e9, "7B": 7, " 3 MiB ": 3 << 20}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "12XB", "99999999999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

// The shipped examples load.
func TestExamplesLoad(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "examples")
	files, err := filepath.Glob(filepath.Join(root, "*", "bench.toml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !filepath.IsAbs(s.Dir) || len(s.Checks) == 0 {
			t.Errorf("%s: Dir %q, %d checks", f, s.Dir, len(s.Checks))
		}
	}
}

func TestResultString(t *testing.T) {
	rs := []Result{{Name: "a", Pass: true, Detail: "ok"}, {Name: "b", Pass: false, Detail: "refused"}, {Name: "c", Pass: true}}
	want := []string{"PASS a (ok)", "FAIL b: refused", "PASS c"}
	for i, r := range rs {
		if r.String() != want[i] {
			t.Errorf("%q, want %q", r.String(), want[i])
		}
	}
	if got := Summary(rs); got != "checks: 2 passed, 1 failed" {
		t.Errorf("Summary = %q", got)
	}
	if !Failed(rs) || Failed(rs[:1]) {
		t.Error("Failed wrong")
	}
}

func TestJudge(t *testing.T) {
	sum := strings.Repeat("a", 64)
	cases := []struct {
		c    Check
		rep  ClientReport
		pass bool
	}{
		{Check{Type: CheckTCP, ExpectName: "s"}, ClientReport{OK: true, Name: "s"}, true},
		{Check{Type: CheckTCP, ExpectName: "s"}, ClientReport{OK: true, Name: "t"}, false},
		{Check{Type: CheckUDP}, ClientReport{OK: false, Error: "timeout"}, false},
		{Check{Type: CheckHTTP, ExpectName: "s"}, ClientReport{OK: true, HTTP: &trafficHTTP{Status: 200, Body: "s"}}, true},
		{Check{Type: CheckHTTP}, ClientReport{OK: true, HTTP: &trafficHTTP{Status: 503}}, false},
		{Check{Type: CheckHTTP, ExpectStatus: 503}, ClientReport{OK: true, HTTP: &trafficHTTP{Status: 503}}, true},
		{Check{Type: CheckHTTP}, ClientReport{OK: true}, false},
		{Check{Type: CheckTransfer, Bytes: 10}, ClientReport{OK: true, Transfer: &trafficTransfer{Bytes: 10, SinkBytes: 10, SHA256: sum, SinkSHA256: sum}}, true},
		{Check{Type: CheckTransfer, Bytes: 10}, ClientReport{OK: true, Transfer: &trafficTransfer{Bytes: 10, SinkBytes: 9, SHA256: sum, SinkSHA256: sum}}, false},
		{Check{Type: CheckTransfer, Bytes: 10}, ClientReport{OK: true, Transfer: &trafficTransfer{Bytes: 10, SinkBytes: 10, SHA256: sum, SinkSHA256: "b"}}, false},
		{Check{Type: CheckConns, Count: 3}, ClientReport{OK: true, Conns: &trafficConns{OK: 3, Names: map[string]int{"x": 3}}}, true},
		{Check{Type: CheckConns, Count: 3}, ClientReport{OK: true, Conns: &trafficConns{OK: 2, Failed: 1}}, false},
		{Check{Type: CheckConns, Count: 3, ExpectNames: []string{"x"}}, ClientReport{OK: true, Conns: &trafficConns{OK: 3, Names: map[string]int{"x": 2, "y": 1}}}, false},
	}
	for i, tc := range cases {
		_, err := judge(tc.c, tc.rep)
		if (err == nil) != tc.pass {
			t.Errorf("case %d: err = %v, want pass=%v", i, err, tc.pass)
		}
	}
}

type (
	trafficHTTP     = traffic.HTTPResult
	trafficTransfer = traffic.TransferResult
	trafficConns    = traffic.ConnsResult
)

func TestRename(t *testing.T) {
	s, err := Parse([]byte(goodSpec), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Rename("ulbt-1234"); err != nil {
		t.Fatal(err)
	}
	if s.Namespace("lan") != "ulbt-1234-lan" {
		t.Errorf("Namespace = %q", s.Namespace("lan"))
	}
	if err := s.Rename("ulbt-toolong"); err == nil || !strings.Contains(err.Error(), "longer than 15") {
		t.Errorf("Rename to a long name: %v", err)
	}
	if s.Name != "ulbt-1234" {
		t.Errorf("failed Rename changed the name to %q", s.Name)
	}
}
