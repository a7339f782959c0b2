package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const metricsBase = `
[[port]]
name = "outside"
device = "eth1"
address = ["198.51.100.10/24", "2001:db8:1::10/64"]

[[servergroup]]
name = "web"
server = ["198.51.100.200:80"]

[[rule]]
name = "web"
vip = "198.51.100.100"
port = "80"
servergroup = "web"

[[vrrp]]
name = "vip"
port = "outside"
vrid = 1
address = ["198.51.100.101/24"]
`

func TestMetrics(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`listen = "127.0.0.1:9469"`, "127.0.0.1:9469"},
		{`listen = "[::1]:9469"`, "[::1]:9469"},
		{`listen = "0.0.0.0:9100"`, "0.0.0.0:9100"},
		{`listen = "192.0.2.5:9100"`, "192.0.2.5:9100"}, // a management NIC's address
		{`listen = "169.254.200.2:9100"`, "169.254.200.2:9100"},
	} {
		cfg, err := Parse("m.toml", []byte(metricsBase+"\n[metrics]\n"+tc.body+"\n"))
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if want := netip.MustParseAddrPort(tc.want); cfg.Metrics.Listen != want {
			t.Errorf("%s: listen %v, want %v", tc.body, cfg.Metrics.Listen, want)
		}
	}
	cfg, err := Parse("m.toml", []byte(metricsBase))
	if err != nil || cfg.Metrics.Listen.IsValid() {
		t.Errorf("no [metrics]: %+v, %v", cfg.Metrics, err)
	}
}

func TestMetricsErrors(t *testing.T) {
	why := "which the router answers itself; the kernel holds no address there, so a listener cannot serve on it"
	for _, tc := range []struct{ body, want string }{
		{`listen = "127.0.0.1"`, `m.toml:24: metrics listen "127.0.0.1": want ADDR:PORT`},
		{`listen = "localhost:9100"`, `m.toml:24: metrics listen "localhost:9100": want ADDR:PORT`},
		{`listen = "127.0.0.1:0"`, "m.toml:24: metrics listen 127.0.0.1:0: port 0"},
		{`listen = "127.0.0.1:65536"`, `m.toml:24: metrics listen "127.0.0.1:65536": want ADDR:PORT`},
		{`listen = "[ff02::1]:9100"`, "m.toml:24: metrics listen [ff02::1]:9100: a multicast address"},
		{`listen = 9100`, "m.toml:24: metrics listen must be a string, not integer 9100"},
		{`listen = "198.51.100.10:9100"`, "m.toml:24: metrics listen 198.51.100.10:9100: an address of port outside, " + why},
		{`listen = "[2001:db8:1::10]:9100"`, "m.toml:24: metrics listen [2001:db8:1::10]:9100: an address of port outside, " + why},
		{`listen = "198.51.100.100:9100"`, "m.toml:24: metrics listen 198.51.100.100:9100: the VIP of rule web, " + why},
		{`listen = "198.51.100.101:9100"`, "m.toml:24: metrics listen 198.51.100.101:9100: an address of vrrp instance vip, " + why},
		{`path = "/m"`, "m.toml:24: unknown key \"path\" in [metrics]"},
		{`path = "/m"`, "m.toml:23: [metrics] needs listen"},
	} {
		_, err := Parse("m.toml", []byte(metricsBase+"\n[metrics]\n"+tc.body+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.body, err, tc.want)
		}
	}
	_, err := Parse("m.toml", []byte("metrics = 1\n"+metricsBase))
	if want := "m.toml:1: metrics must be a table"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("metrics = 1: %v, want %q", err, want)
	}
}

// webPasswordFile returns the absolute path of testdata/web.password, made readable by
// its owner only (git does not keep that mode), as the parser wants a password file.
func webPasswordFile() string {
	p, _ := filepath.Abs("testdata/web.password")
	os.Chmod(p, 0o600)
	return p
}

func TestMetricsWebCredential(t *testing.T) {
	pw := webPasswordFile()
	m := metricsBase + "\n[metrics]\nlisten = \"127.0.0.1:9469\"\n"
	cfg, err := Parse("m.toml", []byte(m+"web_user = \"admin\"\nweb_password_file = \""+pw+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.WebUser != "admin" || cfg.Metrics.WebPasswordFile != pw {
		t.Errorf("credential %q %q", cfg.Metrics.WebUser, cfg.Metrics.WebPasswordFile)
	}
	if got, err := ReadWebPassword(pw); err != nil || got != "not-a-secret-test-password" {
		t.Errorf("ReadWebPassword = %q, %v", got, err)
	}
	// A relative path is the file's directory's.
	abs, _ := filepath.Abs("m.toml")
	cfg, err = Parse(abs, []byte(m+"web_user = \"admin\"\nweb_password_file = \"testdata/web.password\"\n"))
	if err != nil || cfg.Metrics.WebPasswordFile != pw {
		t.Errorf("relative password file: %q, %v", cfg.Metrics.WebPasswordFile, err)
	}

	dir := t.TempDir()
	open := filepath.Join(dir, "open.password")
	os.WriteFile(open, []byte("x\n"), 0o644)
	empty := filepath.Join(dir, "empty.password")
	os.WriteFile(empty, []byte("\nsecond line\n"), 0o600)
	for _, tc := range []struct{ body, want string }{
		{`web_user = "admin"`, "m.toml:25: metrics web_user needs web_password_file too"},
		{`web_password_file = "` + pw + `"`, "m.toml:25: metrics web_password_file needs web_user too"},
		{"web_user = \"a:b\"\nweb_password_file = \"" + pw + "\"", `m.toml:25: metrics web_user "a:b": want a non-empty name without a colon`},
		{"web_user = \"\"\nweb_password_file = \"" + pw + "\"", `m.toml:25: metrics web_user "": want a non-empty name`},
		{"web_user = 1\nweb_password_file = \"" + pw + "\"", "m.toml:25: metrics web_user must be a string, not integer 1"},
		{"web_user = \"admin\"\nweb_password_file = \"" + dir + "/none\"", "m.toml:26: metrics web_password_file: stat " + dir + "/none: no such file or directory"},
		{"web_user = \"admin\"\nweb_password_file = \"" + dir + "\"", "m.toml:26: metrics web_password_file: " + dir + " is not a regular file"},
		{"web_user = \"admin\"\nweb_password_file = \"" + open + "\"", "m.toml:26: metrics web_password_file: " + open + " has mode 0644: a password file must be readable by its owner only (chmod 600 it)"},
		{"web_user = \"admin\"\nweb_password_file = \"" + empty + "\"", "m.toml:26: metrics web_password_file: " + empty + ": the first line, the password, is empty"},
		{"web_user = \"admin\"\nweb_password_file = \"\"", "m.toml:26: metrics web_password_file is empty"},
	} {
		_, err := Parse("m.toml", []byte(m+tc.body+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.body, err, tc.want)
		}
	}
}
