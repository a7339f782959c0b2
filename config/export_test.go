package config

import (
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseOnly are the fields of Config that describe the file read rather than the
// configuration, and that an export therefore does not reproduce: File (the name
// given to Parse) and Warnings (they carry the lines of the file read). Config has no
// other parse-only field: positions stay inside the parser (posIndex).
var parseOnly = []string{".File", ".Warnings"}

// sameConfig reports the paths where two configurations differ, but for parseOnly.
func sameConfig(t *testing.T, want, got *Config) {
	t.Helper()
	w, g := *want, *got
	w.File, g.File = "", ""
	w.Warnings, g.Warnings = nil, nil
	if reflect.DeepEqual(&w, &g) {
		return
	}
	var diffs []string
	diffValues(reflect.ValueOf(w), reflect.ValueOf(g), "Config", &diffs)
	if len(diffs) == 0 {
		diffs = []string{"(DeepEqual differs, but no field does)"}
	}
	t.Errorf("re-parsed export differs from the configuration:\n  %s", strings.Join(diffs, "\n  "))
}

func warningMsgs(c *Config) []string {
	var out []string
	for _, w := range c.Warnings {
		out = append(out, w.Msg)
	}
	slices.Sort(out)
	return out
}

// diffValues lists the leaf paths where a and b differ.
func diffValues(a, b reflect.Value, path string, out *[]string) {
	switch {
	case a.Kind() == reflect.Struct && isConfigType(a.Type()):
		for i := 0; i < a.NumField(); i++ {
			diffValues(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name, out)
		}
	case a.Kind() == reflect.Slice && isConfigType(a.Type().Elem()) && a.Len() == b.Len():
		for i := 0; i < a.Len(); i++ {
			diffValues(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case !reflect.DeepEqual(a.Interface(), b.Interface()):
		*out = append(*out, fmt.Sprintf("%s: %v != %v", path, a.Interface(), b.Interface()))
	}
}

// isConfigType reports whether t is a struct type of this package, which the walkers
// descend into (netip.Prefix and the like are values).
func isConfigType(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() == reflect.TypeOf(Config{}).PkgPath()
}

// roundTrip exports c, parses the export as the file name, and checks that this gives
// c back and that exporting it again gives the same bytes. When c was parsed from a
// file (parsed), the export must also warn about the same things (at lines of its own);
// a configuration changed by hand keeps the warnings of the file it came from.
func roundTrip(t *testing.T, name string, c *Config, parsed bool) []byte {
	t.Helper()
	out, err := Marshal(c)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	c2, err := Parse(name, out)
	if err != nil {
		t.Fatalf("the export does not parse:\n%v\n--- export:\n%s", err, numbered(out))
	}
	sameConfig(t, c, c2)
	if w, g := warningMsgs(c), warningMsgs(c2); parsed && !reflect.DeepEqual(w, g) {
		t.Errorf("re-parsed export warns %q, want %q", g, w)
	}
	out2, err := Marshal(c2)
	if err != nil {
		t.Fatalf("Marshal of the re-parsed export: %v", err)
	}
	if !bytes.Equal(out, out2) {
		t.Errorf("Marshal is not stable:\n--- first:\n%s\n--- second:\n%s", out, out2)
	}
	if t.Failed() {
		t.Logf("export:\n%s", numbered(out))
	}
	return out
}

func numbered(data []byte) string {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i := range lines {
		lines[i] = fmt.Sprintf("%3d  %s", i+1, lines[i])
	}
	return strings.Join(lines, "\n")
}

// loadAbs loads a file by its absolute name, so that a script check's relative
// command is resolved to an absolute path as Marshal writes it (see
// TestMarshalScriptCommand for a relative name).
func loadAbs(t *testing.T, name string) (*Config, string) {
	t.Helper()
	abs, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(abs)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return c, abs
}

func TestMarshalFull(t *testing.T) {
	c, name := loadAbs(t, "testdata/full.toml")
	roundTrip(t, name, c, true)
}

// TestMarshalExamples round-trips every ulbd configuration of the examples (the TOML
// files with a [[port]]; the others are bench files).
func TestMarshalExamples(t *testing.T) {
	isULBD := regexp.MustCompile(`(?m)^\s*\[\[port\]\]`)
	var files []string
	err := filepath.WalkDir("../examples", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".toml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && isULBD.Match(data) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d ulbd configurations under ../examples (%v): the walk is wrong", len(files), files)
	}
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, "../examples/"), func(t *testing.T) {
			abs, err := filepath.Abs(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(abs)
			if err != nil {
				// Every example is a configuration users copy: it must load.
				t.Fatalf("not a valid configuration: %v", err)
			}
			roundTrip(t, abs, c, true)
		})
	}
}

// TestMarshalText pins the layout of an export: sections in file order, a table per
// item, defaults left out, the value formats of the file.
func TestMarshalText(t *testing.T) {
	in := `
log_level = "WARNING"
host_port = true

[defence]
syn_cookies = "auto"

[[rule]]
name = "web"
vip = "198.51.100.100"
port = 8000
pmask = "/24"
proxy_source = ["203.0.113.52", "203.0.113.50-203.0.113.51", "203.0.113.60"]
topology = "full-nat"
servergroup = "web"
sorry_server = "203.0.113.99"
keep_flows_on_down = true

[[servergroup]]
name = "web"
server = ["203.0.113.200:80", { address = "203.0.113.210", weight = 1, enabled = false }]

[[port]]
name = "outside"
device = "eth1"
address = "198.51.100.10/24"

[[port]]
name = "inside"
device = "eth2"
address = ["203.0.113.10/24"]
redirects = false

[[vrrp]]
name = "vip"
port = "outside"
vrid = 7
address = "198.51.100.100"
track_port = [{ port = "inside" }, { port = "outside", weight = 10 }]
track_ping = [{ address = "198.51.100.1", count = 3, interval = "1500ms" }]
`
	want := `log_level = "warn"
host_port = true

[[port]]
name = "outside"
device = "eth1"
kind = "afpacket"
address = ["198.51.100.10/24"]

[[port]]
name = "inside"
device = "eth2"
kind = "afpacket"
address = ["203.0.113.10/24"]
redirects = false

[[servergroup]]
name = "web"
server = [
  { address = "203.0.113.200", port = 80 },
  { address = "203.0.113.210", enabled = false },
]

[[rule]]
name = "web"
vip = "198.51.100.100"
port = "8000"
protocol = "tcp"
algorithm = "roundrobin"
topology = "full-nat"
proxy_source = ["203.0.113.52", "203.0.113.50-203.0.113.51", "203.0.113.60"]
pmask = 24
servergroup = "web"
sorry_server = "203.0.113.99"
keep_flows_on_down = true

[[vrrp]]
name = "vip"
port = "outside"
vrid = 7
address = ["198.51.100.100/24"]
track_port = ["inside", { port = "outside", weight = 10 }]
track_ping = [{ address = "198.51.100.1", interval = "1.5s" }]

[defence]
syn_cookies = "auto"
`
	c, err := Parse("in.toml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 {
		t.Fatalf("warnings %v, want one (keep_flows_on_down without a healthcheck)", c.Warnings)
	}
	got := roundTrip(t, "in.toml", c, true)
	if string(got) != want {
		t.Errorf("export:\n%s\nwant:\n%s", got, want)
	}
}

// TestMarshalStrings checks that strings with quotes, backslashes, control characters
// and non-ASCII letters survive, and that a string TOML cannot hold is refused.
func TestMarshalStrings(t *testing.T) {
	c, name := loadAbs(t, "testdata/full.toml")
	udp := c.HealthCheck("dns-udp")
	udp.Send = "q\"u\\o\tte\x01\x1f\x7f\n\r\b\f é ☃"
	udp.Expect = `'''"""`
	roundTrip(t, name, c, false)

	udp.Send = "\xff"
	if _, err := Marshal(c); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("Marshal of a string that is not UTF-8: %v, want an error saying so", err)
	}
}

// TestMarshalScriptCommand checks that a command Parse resolved against the file's
// directory is exported as an absolute path, so that the export, saved elsewhere, runs
// the same program.
func TestMarshalScriptCommand(t *testing.T) {
	c, err := Load("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "exported.toml")
	c2, err := Parse(elsewhere, out)
	if err != nil {
		t.Fatalf("the export, read from %s: %v", elsewhere, err)
	}
	want, _ := filepath.Abs("testdata/check.sh")
	if got := c2.HealthCheck("custom").Command; !reflect.DeepEqual(got, []string{want, "--quiet"}) {
		t.Errorf("command read back from the export = %q, want [%q \"--quiet\"]", got, want)
	}
	// Read from its own directory, the file's "./check.sh" stays a path (filepath.Join
	// makes it "check.sh", a name to look up in PATH) and is exported as an absolute one.
	t.Chdir("testdata")
	c3, err := Load("full.toml")
	if err != nil {
		t.Fatalf("full.toml read from its directory: %v", err)
	}
	if got := c3.HealthCheck("custom").Command[0]; got != "./check.sh" {
		t.Errorf("command read from the file's directory = %q, want \"./check.sh\"", got)
	}
	if out, _ := Marshal(c3); !strings.Contains(string(out), `command = [`+strconv.Quote(want)) {
		t.Errorf("export of a command in the working directory, want %s:\n%s", want, out)
	}
	c = c3
	// A program found in PATH stays a name.
	c.HealthCheck("custom").Command = []string{"sh", "-c", "exit 0"}
	if out, _ := Marshal(c); !strings.Contains(string(out), `command = ["sh", "-c", "exit 0"]`) {
		t.Errorf("export of a command in PATH:\n%s", out)
	}
}

// TestMarshalCoversEveryField is what fails when a field is added to Config, or to a
// struct type of this package inside it, without Marshal exporting it.
//
// It walks the types with reflect and lists every leaf field (a path like
// "Rules[].SorryServer"; slices of this package's structs are walked into). Each leaf
// must have a case in mutations below, which changes that field of a parsed
// testdata/full.toml to another valid value; the test checks that the field did
// change, and that Marshal then Parse gives the changed configuration back. A field
// Marshal forgets comes back as the parser's default, so its case fails: either
// full.toml has it at a non-default value (and TestMarshalFull fails too) or the
// case moves it away from the default. A new field without a case fails here with
// its path, and so does a case whose field no longer exists.
func TestMarshalCoversEveryField(t *testing.T) {
	var leaves []string
	leafPaths(reflect.TypeOf(Config{}), "", &leaves)
	cases := mutations()
	for _, p := range leaves {
		if _, ok := cases[p]; !ok {
			t.Errorf("Config%s has no case in mutations (export_test.go): make Marshal (export.go) write it, then add a case", p)
		}
	}
	for p, mutate := range cases {
		if !contains(leaves, p) {
			t.Errorf("mutations has a case for Config%s, which is not a field", p)
			continue
		}
		t.Run(strings.TrimPrefix(p, "."), func(t *testing.T) {
			base, name := loadAbs(t, "testdata/full.toml")
			c, _ := loadAbs(t, "testdata/full.toml")
			mutate(c)
			if reflect.DeepEqual(valuesAt(reflect.ValueOf(*base), p), valuesAt(reflect.ValueOf(*c), p)) {
				t.Fatalf("the case does not change Config%s", p)
			}
			roundTrip(t, name, c, false)
		})
	}
}

// leafPaths lists the paths of the fields below t that are values: fields whose type
// is not a struct of this package, nor a slice of or a pointer to one. The parseOnly
// fields are left out.
func leafPaths(t reflect.Type, prefix string, out *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		p := prefix + "." + f.Name
		ft := f.Type
		switch {
		case contains(parseOnly, p):
		case isConfigType(ft):
			leafPaths(ft, p, out)
		case (ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer) && isConfigType(ft.Elem()):
			leafPaths(ft.Elem(), p+"[]", out)
		default:
			*out = append(*out, p)
		}
	}
}

// valuesAt returns the values at a leaf path, one per element of the slices on it.
func valuesAt(v reflect.Value, path string) []any {
	if path == "" {
		return []any{v.Interface()}
	}
	name, rest, _ := strings.Cut(strings.TrimPrefix(path, "."), ".")
	if rest != "" {
		rest = "." + rest
	}
	elems := strings.HasSuffix(name, "[]")
	f := v.FieldByName(strings.TrimSuffix(name, "[]"))
	if !elems {
		return valuesAt(f, rest)
	}
	if f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return nil
		}
		return valuesAt(f.Elem(), rest)
	}
	var out []any
	for i := 0; i < f.Len(); i++ {
		out = append(out, valuesAt(f.Index(i), rest)...)
	}
	return out
}

// mutations are the cases of TestMarshalCoversEveryField: for each leaf field, a
// change of a parsed testdata/full.toml to another valid value (fixing up what refers
// to a renamed item). Where full.toml leaves a field at its default, the case moves it
// away from the default.
func mutations() map[string]func(c *Config) {
	a := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	check, _ := filepath.Abs("testdata/check.sh")
	webPassword := webPasswordFile()
	return map[string]func(c *Config){
		".Hostname":      func(c *Config) { c.Hostname = "lb2.example" },
		".ControlSocket": func(c *Config) { c.ControlSocket = "/run/ulb/other.sock" },
		".LogLevel":      func(c *Config) { c.LogLevel = slog.LevelError },
		".LogLevelSet":   func(c *Config) { c.LogLevel, c.LogLevelSet = slog.LevelInfo, false },
		".HostPort":      func(c *Config) { c.HostPort = true },

		".Ports[].Name": func(c *Config) {
			c.Port("mgmt").Name = "mgmt2"
			c.Routes[2].Port = "mgmt2"
			c.VRRP[0].TrackPorts[1].Port = "mgmt2"
		},
		".Ports[].Device": func(c *Config) { c.Port("mgmt").Device = "ulb1" },
		".Ports[].Kind":   func(c *Config) { c.Port("mgmt").Kind = KindAFPacket }, // mtu 1500 and no redirects stay
		".Ports[].Addresses": func(c *Config) {
			p := c.Port("outside")
			p.Addresses = append(p.Addresses, pfx("198.51.100.12/24"), pfx("2001:db8:7::1/48"))
		},
		".Ports[].MTU":               func(c *Config) { c.Port("outside").MTU = 1400 },
		".Ports[].RcvBuf":            func(c *Config) { c.Port("inside").RcvBuf = 8192 },
		".Ports[].SndBuf":            func(c *Config) { c.Port("inside").SndBuf = 8192 },
		".Ports[].Batch":             func(c *Config) { c.Port("inside").Batch = 32 },
		".Ports[].KernelRX":          func(c *Config) { c.Port("outside").KernelRX = true },
		".Ports[].DirectedBroadcast": func(c *Config) { c.Port("outside").DirectedBroadcast = true },
		".Ports[].Redirects":         func(c *Config) { c.Port("outside").Redirects = false },

		".Routes[].To":     func(c *Config) { c.Routes[2].To = pfx("192.0.2.64/26") },
		".Routes[].Via":    func(c *Config) { c.Routes[0].Via = a("198.51.100.2") },
		".Routes[].Port":   func(c *Config) { c.Routes[2].Port = "inside" },
		".Routes[].Pinned": func(c *Config) { c.Routes[0].Pinned = true },

		".HealthChecks[].Name":     func(c *Config) { c.HealthCheck("gw-ping").Name = "gw" },
		".HealthChecks[].Test":     func(c *Config) { c.HealthCheck("gw-ping").Test = "tcp" },
		".HealthChecks[].Interval": func(c *Config) { c.HealthCheck("load").Interval = 7 * time.Second },
		".HealthChecks[].Timeout":  func(c *Config) { c.HealthCheck("load").Timeout = 1500 * time.Millisecond },
		".HealthChecks[].Count":    func(c *Config) { c.HealthCheck("load").Count = 5 },
		".HealthChecks[].Rise":     func(c *Config) { c.HealthCheck("load").Rise = 3 },
		".HealthChecks[].Port":     func(c *Config) { c.HealthCheck("web-tcp").Port = 8081 },
		".HealthChecks[].Send":     func(c *Config) { c.HealthCheck("dns-udp").Send = "hello \"world\"\t\x01" },
		".HealthChecks[].Expect":   func(c *Config) { c.HealthCheck("dns-udp").Expect = "po\\ng\n" },
		".HealthChecks[].Path":     func(c *Config) { c.HealthCheck("web-http").Path = "/status?x=1" },
		".HealthChecks[].Host":     func(c *Config) { c.HealthCheck("web-http").Host = "[2001:db8::1]:8080" },
		".HealthChecks[].ExpectStatus": func(c *Config) {
			c.HealthCheck("web-http").ExpectStatus = 301
		},
		".HealthChecks[].ExpectBody": func(c *Config) {
			c.HealthCheck("web-http").ExpectBody = regexp.MustCompile(`a"b\\\d+\n`)
		},
		".HealthChecks[].AgentPort": func(c *Config) { c.HealthCheck("load").AgentPort = 7001 },
		".HealthChecks[].Command": func(c *Config) {
			c.HealthCheck("custom").Command = []string{check, "a b", `--x="y"`}
		},

		".ServerGroups[].Name": func(c *Config) {
			c.ServerGroup("dns").Name = "dns2"
			c.Rule("dns").ServerGroup = "dns2"
			c.VRRP[0].TrackGroups[1].ServerGroup = "dns2"
		},
		".ServerGroups[].HealthCheck":        func(c *Config) { c.ServerGroup("dns").HealthCheck = "gw-ping" },
		".ServerGroups[].Servers[].Addr":     func(c *Config) { c.ServerGroup("web").Servers[2].Addr = a("203.0.113.221") },
		".ServerGroups[].Servers[].Port":     func(c *Config) { c.ServerGroup("web").Servers[2].Port = 81 },
		".ServerGroups[].Servers[].Weight":   func(c *Config) { c.ServerGroup("web").Servers[2].Weight = 7 },
		".ServerGroups[].Servers[].MaxConns": func(c *Config) { c.ServerGroup("web").Servers[2].MaxConns = 5 },
		".ServerGroups[].Servers[].MinConns": func(c *Config) { c.ServerGroup("web").Servers[1].MinConns = 500 },
		".ServerGroups[].Servers[].Enabled":  func(c *Config) { c.ServerGroup("web").Servers[0].Enabled = false },
		".Rules[].Name":                      func(c *Config) { c.Rule("dns").Name = "dns53" },
		".Rules[].VIP":                       func(c *Config) { c.Rule("web6").VIP = a("2001:db8:1::101") },
		".Rules[].PortLo":                    func(c *Config) { c.Rule("web").PortLo = 70 },
		".Rules[].PortHi":                    func(c *Config) { c.Rule("web-full").PortHi = 8100 },
		".Rules[].Protocol":                  func(c *Config) { c.Rule("web6").Protocol = UDP },
		".Rules[].Algorithm":                 func(c *Config) { c.Rule("dns").Algorithm = LeastConn },
		".Rules[].Topology":                  func(c *Config) { c.Rule("dns").Topology = HalfNAT },
		".Rules[].PMask":                     func(c *Config) { c.Rule("web").PMask = 16 },
		".Rules[].PersistTimeout":            func(c *Config) { c.Rule("web").PersistTimeout = 90 * time.Minute },
		".Rules[].PersistKey":                func(c *Config) { c.Rule("web").PersistKey = PersistSrcPort },
		".Rules[].ConnDrain":                 func(c *Config) { c.Rule("web-full").ConnDrain = 45 * time.Second },
		".Rules[].ServerGroup":               func(c *Config) { c.Rule("web-full").ServerGroup = "dns" },
		".Rules[].KeepFlowsOnDown":           func(c *Config) { c.Rule("web").KeepFlowsOnDown = true },
		".Rules[].Enabled":                   func(c *Config) { c.Rule("web").Enabled = false },
		".Conntrack.Capacity":                func(c *Config) { c.Conntrack.Capacity = 5 },
		".Conntrack.Timeouts.Established":    func(c *Config) { c.Conntrack.Timeouts.Established = 2 * time.Hour },
		".Conntrack.Timeouts.SynSent":        func(c *Config) { c.Conntrack.Timeouts.SynSent = 61 * time.Second },
		".Conntrack.Timeouts.SynRecv":        func(c *Config) { c.Conntrack.Timeouts.SynRecv = 62 * time.Second },
		".Conntrack.Timeouts.FinWait":        func(c *Config) { c.Conntrack.Timeouts.FinWait = 63 * time.Second },
		".Conntrack.Timeouts.TimeWait":       func(c *Config) { c.Conntrack.Timeouts.TimeWait = 64 * time.Second },
		".Conntrack.Timeouts.Close":          func(c *Config) { c.Conntrack.Timeouts.Close = 65 * time.Second },
		".Conntrack.Timeouts.CloseWait":      func(c *Config) { c.Conntrack.Timeouts.CloseWait = 66 * time.Second },
		".Conntrack.Timeouts.LastAck":        func(c *Config) { c.Conntrack.Timeouts.LastAck = 67 * time.Second },
		".Conntrack.Timeouts.UDP":            func(c *Config) { c.Conntrack.Timeouts.UDP = 31 * time.Second },
		".Conntrack.Timeouts.ICMP":           func(c *Config) { c.Conntrack.Timeouts.ICMP = 7*24*time.Hour - time.Second },
		".Rules[].ProxySource": func(c *Config) {
			c.Rule("web-full").ProxySource = []netip.Addr{a("203.0.113.61"), a("203.0.113.62"), a("203.0.113.50"), a("203.0.113.54")}
		},
		".Rules[].TunnelSource": func(c *Config) {
			c.Rule("dns").Topology, c.Rule("dns").TunnelSource = Tunnel, a("198.51.100.10")
		},
		".Rules[].SorryServer": func(c *Config) {
			c.Rule("web6").SorryServer = netip.MustParseAddrPort("[2001:db8:2::98]:8443")
		},

		".VRRP[].Name": func(c *Config) { c.VRRPInstance("vip6").Name = "v6" },
		".VRRP[].Port": func(c *Config) {
			v := c.VRRPInstance("vip6")
			v.Port, v.Addresses = "inside", []netip.Prefix{pfx("fe80::1:1/64")}
		},
		".VRRP[].AdvertPorts":  func(c *Config) { c.VRRPInstance("vip6").AdvertPorts = []string{"inside"} },
		".VRRP[].VRID":         func(c *Config) { c.VRRPInstance("vip6").VRID = 2 },
		".VRRP[].Version":      func(c *Config) { c.VRRPInstance("gw").Version = 3 },
		".VRRP[].Priority":     func(c *Config) { c.VRRPInstance("gw").Priority = 50 },
		".VRRP[].Interval":     func(c *Config) { c.VRRPInstance("vip6").Interval = 250 * time.Millisecond },
		".VRRP[].Preempt":      func(c *Config) { c.VRRPInstance("vip6").Preempt = false },
		".VRRP[].Enabled":      func(c *Config) { c.VRRPInstance("vip6").Enabled = false },
		".VRRP[].PreemptDelay": func(c *Config) { c.VRRPInstance("vip6").PreemptDelay = 10 * time.Second },
		".VRRP[].Accept":       func(c *Config) { c.VRRPInstance("vip6").Accept = true },
		".VRRP[].Addresses": func(c *Config) {
			v := c.VRRPInstance("gw")
			v.Addresses = append(v.Addresses, pfx("203.0.113.253/24"), pfx("192.0.2.129/25"))
		},
		".VRRP[].TrackPorts[].Port":         func(c *Config) { c.VRRPInstance("vip").TrackPorts[0].Port = "outside" },
		".VRRP[].TrackPorts[].Weight":       func(c *Config) { c.VRRPInstance("vip").TrackPorts[0].Weight = 30 },
		".VRRP[].TrackPings[].Address":      func(c *Config) { c.VRRPInstance("vip").TrackPings[1].Address = a("192.0.2.130") },
		".VRRP[].TrackPings[].Interval":     func(c *Config) { c.VRRPInstance("vip").TrackPings[1].Interval = 2 * time.Second },
		".VRRP[].TrackPings[].Count":        func(c *Config) { c.VRRPInstance("vip").TrackPings[1].Count = 4 },
		".VRRP[].TrackPings[].Weight":       func(c *Config) { c.VRRPInstance("vip").TrackPings[1].Weight = 9 },
		".VRRP[].TrackGroups[].ServerGroup": func(c *Config) { c.VRRPInstance("vip").TrackGroups[0].ServerGroup = "web6" },
		".VRRP[].TrackGroups[].Weight":      func(c *Config) { c.VRRPInstance("vip").TrackGroups[0].Weight = 11 },
		".VRRP[].SyncGroup":                 func(c *Config) { c.VRRPInstance("vip6").SyncGroup = "solo" },
		".VRRP[].Checksum":                  func(c *Config) { c.VRRPInstance("vip").Checksum = ChecksumPseudoHeader },
		".VRRP[].GARPCount":                 func(c *Config) { c.VRRPInstance("vip6").GARPCount = 0 },
		".VRRP[].GARPRefresh":               func(c *Config) { c.VRRPInstance("vip6").GARPRefresh = time.Hour },

		".Sync.Enabled": func(c *Config) { c.Sync = Sync{Enabled: true, Port: DefaultSyncPort, Refresh: DefaultSyncRefresh} },
		".Sync.Peers": func(c *Config) {
			c.Sync = Sync{Enabled: true, Peers: []netip.Addr{a("198.51.100.11"), a("2001:db8:1::11")}, Port: DefaultSyncPort, Refresh: DefaultSyncRefresh}
		},
		".Sync.Port": func(c *Config) {
			c.Sync = Sync{Enabled: true, Peers: []netip.Addr{a("198.51.100.11")}, Port: 9000, Refresh: DefaultSyncRefresh}
		},
		".Sync.VRRP": func(c *Config) {
			c.Sync = Sync{Enabled: true, Peers: []netip.Addr{a("198.51.100.11")}, Port: DefaultSyncPort, VRRP: "vip", Refresh: DefaultSyncRefresh}
		},
		".Sync.Refresh": func(c *Config) {
			c.Sync = Sync{Enabled: true, Peers: []netip.Addr{a("198.51.100.11")}, Port: DefaultSyncPort, Refresh: 5 * time.Minute}
		},

		".Metrics.Listen": func(c *Config) { c.Metrics.Listen = netip.MustParseAddrPort("127.0.0.1:9469") },
		".Metrics.WebUser": func(c *Config) {
			c.Metrics.Listen, c.Metrics.WebUser, c.Metrics.WebPasswordFile = netip.MustParseAddrPort("127.0.0.1:9469"), "admin", webPassword
		},
		".Metrics.WebPasswordFile": func(c *Config) {
			c.Metrics.Listen, c.Metrics.WebUser, c.Metrics.WebPasswordFile = netip.MustParseAddrPort("127.0.0.1:9469"), "ops", webPassword
		},
		".Dataplane.Nice": func(c *Config) { c.Dataplane.Nice = -5 },
		".Dataplane.CPUs": func(c *Config) { c.Dataplane.CPUs = []int{1, 0, 3} },

		".AutoNAT[].From":    func(c *Config) { c.AutoNAT[0].From = []netip.Prefix{pfx("203.0.113.0/25")} },
		".AutoNAT[].Out":     func(c *Config) { c.AutoNAT[0].Out = "mgmt" },
		".AutoNAT[].Address": func(c *Config) { c.AutoNAT[0].Address = a("198.51.100.20") },
		".NAT[].Public":      func(c *Config) { c.NAT[0].Public = netip.MustParseAddrPort("198.51.100.52:0") },
		".NAT[].Private":     func(c *Config) { c.NAT[0].Private = netip.MustParseAddrPort("203.0.113.202:0") },
		".NAT[].Protocol":    func(c *Config) { c.NAT[1].Protocol = UDP },
		".NAT[].Out":         func(c *Config) { c.NAT[0].Out = "inside" },

		".Defence.SYNCookies":         func(c *Config) { c.Defence.SYNCookies = SYNCookiesAlways },
		".Defence.SYNCookieThreshold": func(c *Config) { c.Defence.SYNCookieThreshold = 500 },
		".Defence.SYNCookieWScale":    func(c *Config) { c.Defence.SYNCookieWScale = 0 },
		".Defence.NewFlowBudget":      func(c *Config) { c.Defence.NewFlowBudget = 16 },
		".Defence.NewFlowRing":        func(c *Config) { c.Defence.NewFlowRing = false },
		".Defence.SourceRate":         func(c *Config) { c.Defence.SourceRate = 200 },
		".Defence.SourceBurst":        func(c *Config) { c.Defence.SourceRate, c.Defence.SourceBurst = 200, 400 },
		".Defence.SourcePrefix4":      func(c *Config) { c.Defence.SourcePrefix4 = 16 },
		".Defence.SourcePrefix6":      func(c *Config) { c.Defence.SourcePrefix6 = 48 },
	}
}

// FuzzMarshal checks that every file Parse accepts exports to a file that Parse
// accepts as the same configuration, and exports again to the same bytes.
func FuzzMarshal(f *testing.F) {
	for _, name := range []string{"testdata/full.toml", "../examples/half-nat/lb1.toml", "../examples/router/r1.toml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("/nonexistent/f.toml", data)
		if err != nil {
			return
		}
		roundTrip(t, "/nonexistent/f.toml", c, true)
	})
}
