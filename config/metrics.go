package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Metrics is where ulbd serves its Prometheus metrics ([metrics]).
//
//	[metrics]
//	listen = "127.0.0.1:9469"   # ADDR:PORT of a plain TCP listener; /metrics is served there
//	web_user = "admin"          # the web status page's credential (both or neither):
//	web_password_file = "/etc/ulb/web.password"
//
// The same listener serves the web status page at / (its JSON at /api/status, its live
// events at /events). Without web_user and web_password_file the page is read-only: it
// shows the rules, servers and VRRP instances but has no buttons, and its actions are
// refused. With them, the page's offline, online and drain buttons work after the
// operator logs in with HTTP Basic authentication as web_user and the password, the
// first line of web_password_file (an absolute path, or relative to the file's
// directory; it must be a regular file that only its owner may read or write, as
// "chmod 600" leaves it). Both are read when ulbd starts; a change takes effect at
// the next start.
//
// The listener is an ordinary socket of the kernel of ulbd's network namespace, not a
// flow of the router: it serves on an address that kernel owns, the loopback or a
// management NIC that ulbd does not take over ("0.0.0.0:PORT" or "[::]:PORT": every
// such address). The addresses of ulbd's own ports, its VIPs and its VRRP addresses are
// answered by the router and the kernel holds none of them, so a listener cannot serve
// there: the file is refused when listen names one. With host_port = true, a listener
// on the host port's kernel end (169.254.200.2) or on every address is also reached
// through the router's own addresses, as a management login is.
type Metrics struct {
	// Listen is the address and TCP port of the metrics listener; invalid: no [metrics],
	// no listener.
	Listen netip.AddrPort
	// WebUser and WebPasswordFile are the web status page's credential; empty: the page
	// is read-only. WebPasswordFile is an absolute path.
	WebUser         string
	WebPasswordFile string
}

type rawMetrics struct {
	Listen          value `toml:"listen"`
	WebUser         value `toml:"web_user"`
	WebPasswordFile value `toml:"web_password_file"`
}

// ReadWebPassword reads the web status page's password: the first line of path, which
// must be a regular file that only its owner may read or write (mode 0600 or 0400) and
// whose first line is not empty.
func ReadWebPassword(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o: a password file must be readable by its owner only (chmod 600 it)", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	pw := strings.TrimSuffix(string(line), "\r")
	if pw == "" {
		return "", fmt.Errorf("%s: the first line, the password, is empty", path)
	}
	return pw, nil
}

func (d *decoder) metrics(p toml.Primitive, ports []Port, rules []Rule, vrrps []VRRP) Metrics {
	var m Metrics
	if !d.md.IsDefined("metrics") {
		return m
	}
	is := d.is
	var raw rawMetrics
	if err := d.md.PrimitiveDecode(p, &raw); err != nil {
		d.failed["metrics"] = true
		is.at("metrics", "metrics must be a table: write its keys under a [metrics] header")
		return m
	}
	s, ok := is.str(raw.Listen, "metrics.listen", "metrics listen")
	if !ok {
		if !raw.Listen.set {
			is.at("metrics", `[metrics] needs listen: the ADDR:PORT to serve /metrics on, e.g. "127.0.0.1:9469"`)
		}
		return m
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		is.at("metrics.listen", `metrics listen %q: want ADDR:PORT, e.g. "127.0.0.1:9469" or "[::1]:9469"`, s)
		return m
	}
	a := ap.Addr()
	switch {
	case ap.Port() == 0:
		is.at("metrics.listen", "metrics listen %s: port 0; give the TCP port to serve on", s)
	case a.Zone() != "" && !a.IsLinkLocalUnicast():
		is.at("metrics.listen", "metrics listen %s: a zone is only for a link-local address", s)
	case a.IsMulticast():
		is.at("metrics.listen", "metrics listen %s: a multicast address; give a unicast one", s)
	default:
		if what := routerAddress(a.WithZone(""), ports, rules, vrrps); what != "" {
			is.at("metrics.listen", "metrics listen %s: %s, which the router answers itself; the kernel holds no "+
				"address there, so a listener cannot serve on it: listen on the loopback or on a management "+
				"NIC ulbd does not own (with host_port = true, 169.254.200.2 is reached through the router's addresses)",
				s, what)
		}
	}
	m.Listen = ap
	d.webCredential(&m, raw)
	return m
}

// webCredential reads web_user and web_password_file: both or neither.
func (d *decoder) webCredential(m *Metrics, raw rawMetrics) {
	is := d.is
	user, uok := is.str(raw.WebUser, "metrics.web_user", "metrics web_user")
	file, fok := is.str(raw.WebPasswordFile, "metrics.web_password_file", "metrics web_password_file")
	switch {
	case raw.WebUser.set && !raw.WebPasswordFile.set:
		is.at("metrics.web_user", "metrics web_user needs web_password_file too: the file holding the web page's password")
		return
	case raw.WebPasswordFile.set && !raw.WebUser.set:
		is.at("metrics.web_password_file", "metrics web_password_file needs web_user too: the user name the web page asks for")
		return
	case !uok || !fok:
		return
	}
	// RFC 7617 section 2: the user-id of Basic authentication cannot contain a colon
	// (the first colon separates it from the password), nor control characters.
	if user == "" || strings.ContainsFunc(user, func(r rune) bool { return r == ':' || r < 0x20 || r == 0x7f }) {
		is.at("metrics.web_user", "metrics web_user %q: want a non-empty name without a colon or control characters", user)
		return
	}
	if file == "" {
		is.at("metrics.web_password_file", "metrics web_password_file is empty: give the path of the password file")
		return
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(is.file), file)
		if abs, err := filepath.Abs(file); err == nil {
			file = abs
		}
	}
	if _, err := ReadWebPassword(file); err != nil {
		is.at("metrics.web_password_file", "metrics web_password_file: %v", err)
		return
	}
	m.WebUser, m.WebPasswordFile = user, file
}

// routerAddress says which of the router's own addresses a is ("" when none): a port's
// address, a rule's VIP or a VRRP instance's virtual address.
func routerAddress(a netip.Addr, ports []Port, rules []Rule, vrrps []VRRP) string {
	for _, p := range ports {
		for _, pa := range p.Addresses {
			if pa.Addr() == a {
				return "an address of port " + p.Name
			}
		}
	}
	for _, r := range rules {
		if r.VIP == a {
			return "the VIP of rule " + r.Name
		}
	}
	for _, v := range vrrps {
		for _, va := range v.Addresses {
			if va.Addr() == a {
				return "an address of vrrp instance " + v.Name
			}
		}
	}
	return ""
}
