// Package config reads ulbd's TOML configuration into a validated Config, refusing a
// bad file as a whole with every problem listed as "FILE:LINE: what is wrong".
//
// Each section of the file has its own file here (port.go, route.go, ...): a raw type
// whose fields are values, a decode function that turns it into the public type, and
// checks that need other sections. A new section adds a field to rawFile, its file,
// and a call in Parse.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultControlSocket is the control socket path when control_socket is not given.
const DefaultControlSocket = "/run/ulb/ulbd.sock"

// maxSocketPath is the longest path a unix socket address holds (sun_path less its NUL).
const maxSocketPath = 107

// Config is one node's validated configuration.
type Config struct {
	// File is the name the configuration was read from (used in messages).
	File string
	// Hostname names the node in logs and VRRP; empty when not configured.
	Hostname string
	// ControlSocket is the unix socket ulbadm talks to.
	ControlSocket string
	// LogLevel is the configured log level (Info when not configured).
	LogLevel slog.Level
	// LogLevelSet reports whether log_level was given, so a command-line flag can tell
	// a default from a choice.
	LogLevelSet bool
	// Ports are the NICs and TUN devices ulbd owns, in file order.
	Ports []Port
	// Routes are the static routes, in file order.
	Routes []Route
	// ServerGroups are the named sets of servers, in file order.
	ServerGroups []ServerGroup
	// HealthChecks are the named health checks, in file order.
	HealthChecks []HealthCheck
	// Rules are the load-balancing rules, in file order.
	Rules []Rule
	// Conntrack tunes the connection table.
	Conntrack Conntrack
	// VRRP are the virtual routers, in file order.
	VRRP []VRRP
	// Sync is connection sync with peer nodes ([sync]); Sync.Enabled is false without it.
	Sync Sync
	// Dataplane gives the port loops' threads priority and CPUs ([dataplane]).
	Dataplane Dataplane
	// Defence protects the balancer against floods of new flows ([defence]).
	Defence Defence
	// Metrics is where /metrics is served ([metrics]); Metrics.Listen is invalid without it.
	Metrics Metrics
	// HostPort asks for the host port (a TUN to the kernel of ulbd's namespace, for a
	// management login to the router's addresses) even without HTTP health checks,
	// which always have one.
	HostPort bool
	// AutoNAT masquerades inside networks' connections ([[autonat]]), in file order.
	AutoNAT []AutoNAT
	// NAT are the static 1:1 mappings and port forwards ([[nat]]), in file order.
	NAT []StaticNAT
	// Warnings are things the file allows but that are likely not meant (e.g. a virtual
	// address on no connected network of its port), ordered by line; ulbd logs them.
	Warnings []Issue
}

// Port returns the port with the given name, or nil.
func (c *Config) Port(name string) *Port {
	return findPort(c.Ports, name)
}

// rawFile is the top level of the file as decoded by BurntSushi/toml. Sections are kept
// as primitives and decoded one by one, so that a section of the wrong shape is one
// issue and the others are still checked.
type rawFile struct {
	Hostname      value          `toml:"hostname"`
	ControlSocket value          `toml:"control_socket"`
	LogLevel      value          `toml:"log_level"`
	HostPort      value          `toml:"host_port"`
	Port          toml.Primitive `toml:"port"`
	Route         toml.Primitive `toml:"route"`
	ServerGroup   toml.Primitive `toml:"servergroup"`
	Rule          toml.Primitive `toml:"rule"`
	HealthCheck   toml.Primitive `toml:"healthcheck"`
	Conntrack     toml.Primitive `toml:"conntrack"`
	VRRP          toml.Primitive `toml:"vrrp"`
	Sync          toml.Primitive `toml:"sync"`
	Dataplane     toml.Primitive `toml:"dataplane"`
	Defence       toml.Primitive `toml:"defence"`
	Metrics       toml.Primitive `toml:"metrics"`
	AutoNAT       toml.Primitive `toml:"autonat"`
	NAT           toml.Primitive `toml:"nat"`
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates a configuration; name is the file name used in messages.
// A refused configuration returns a *Error listing every issue.
func Parse(name string, data []byte) (*Config, error) {
	var raw rawFile
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Issues: []Issue{{File: name, Line: pe.Position.Line, Msg: "syntax error: " + pe.Message}}}
		}
		return nil, &Error{Issues: []Issue{{File: name, Msg: err.Error()}}}
	}
	is := &issues{file: name, ix: newPosIndex(string(data))}
	d := &decoder{md: &md, is: is, failed: make(map[string]bool), groupNames: make(map[string]bool)}
	cfg := &Config{File: name}

	d.topLevel(&raw, cfg)
	cfg.Ports = d.ports(raw.Port)
	cfg.Routes = d.routes(raw.Route, cfg.Ports)
	checkNames := make(map[string]bool)
	cfg.HealthChecks = d.healthChecks(raw.HealthCheck, checkNames)
	groups, gpos := d.serverGroups(raw.ServerGroup, cfg.HealthChecks, checkNames, cfg.Ports)
	cfg.ServerGroups = groups
	cfg.Rules = d.rules(raw.Rule, cfg.Ports, cfg.Routes, groups, gpos)
	cfg.Conntrack = d.conntrack(raw.Conntrack)
	cfg.VRRP = d.vrrps(raw.VRRP, cfg.Ports, cfg.Routes, groups, gpos)
	cfg.Sync = d.sync(raw.Sync, cfg.Ports, cfg.VRRP)
	cfg.Dataplane = d.dataplane(raw.Dataplane)
	cfg.Defence = d.defence(raw.Defence)
	cfg.Metrics = d.metrics(raw.Metrics, cfg.Ports, cfg.Rules, cfg.VRRP)
	cfg.AutoNAT = d.autoNATs(raw.AutoNAT, cfg.Ports, cfg.Rules)
	cfg.NAT = d.staticNATs(raw.NAT, cfg.Ports, cfg.Rules, cfg.AutoNAT)
	d.unknownKeys()

	if err := is.err(); err != nil {
		return nil, err
	}
	cfg.Warnings = is.sortedWarnings()
	return cfg, nil
}

// decoder carries what the section decoders share.
type decoder struct {
	md *toml.MetaData
	is *issues
	// failed holds the sections whose shape was wrong: their keys are not reported
	// again as unknown.
	failed map[string]bool
	// owned are index-free key paths ("servergroup.server") whose keys a decoder checks
	// itself: unknownKeys leaves the keys below them alone.
	owned []string
	// groupNames holds every servergroup name given, also of groups that were refused,
	// so a rule naming one is not told the group is unknown.
	groupNames map[string]bool
}

func (d *decoder) topLevel(raw *rawFile, cfg *Config) {
	is := d.is
	if h, ok := is.str(raw.Hostname, "hostname", "hostname"); ok {
		if err := checkHostname(h); err != nil {
			is.at("hostname", "hostname %q: %v", h, err)
		}
		cfg.Hostname = h
	}
	cfg.ControlSocket = DefaultControlSocket
	if s, ok := is.str(raw.ControlSocket, "control_socket", "control_socket"); ok {
		switch {
		case !filepath.IsAbs(s):
			is.at("control_socket", "control_socket %q must be an absolute path", s)
		case len(s) > maxSocketPath:
			is.at("control_socket", "control_socket is %d bytes long; a unix socket path holds at most %d", len(s), maxSocketPath)
		}
		cfg.ControlSocket = s
	}
	if b, ok := is.boolean(raw.HostPort, "host_port", "host_port"); ok {
		cfg.HostPort = b
	}
	cfg.LogLevel = slog.LevelInfo
	if s, ok := is.str(raw.LogLevel, "log_level", "log_level"); ok {
		l, err := ParseLogLevel(s)
		if err != nil {
			is.at("log_level", "%v", err)
		}
		cfg.LogLevel, cfg.LogLevelSet = l, err == nil
	}
}

// ParseLogLevel accepts debug, info, warn or error, in any case.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("log_level %q: want debug, info, warn or error", s)
}

// checkHostname accepts RFC 1123 host names.
func checkHostname(h string) error {
	if h == "" || len(h) > 253 {
		return errors.New("must be 1 to 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("each dot-separated label must be 1 to 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a label may not begin or end with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not allowed (letters, digits, '-' and '.')", c)
			}
		}
	}
	return nil
}

// tables decodes the array of tables named section into out; a section of another
// shape is reported once. It returns false when the section is absent or malformed.
func (d *decoder) tables(p toml.Primitive, section string, out any) bool {
	if !d.md.IsDefined(section) {
		return false
	}
	if err := d.md.PrimitiveDecode(p, out); err != nil {
		d.failed[section] = true
		d.is.at(section, "%s must be an array of tables: write each one under a [[%s]] header", section, section)
		return false
	}
	return true
}

// unknownKeys reports every key the decoders did not use (MetaData.Undecoded), at each
// place it occurs.
// Only the outermost unknown key is reported: an unknown table's keys are not listed.
func (d *decoder) unknownKeys() {
	undecoded := d.md.Undecoded()
	// BurntSushi/toml matches keys to fields regardless of case, so "Name" would
	// silently fill (or override) name. Every key of the format is lower case: a key
	// with an upper-case letter is unknown too.
	for _, k := range d.md.Keys() {
		if k.String() != strings.ToLower(k.String()) && !slices.ContainsFunc(undecoded, func(u toml.Key) bool {
			return u.String() == k.String()
		}) {
			undecoded = append(undecoded, k)
		}
	}
	unknown := make(map[string]bool, len(undecoded))
	for _, k := range undecoded {
		unknown[k.String()] = true
	}
	reported := make(map[string]bool)
	for _, k := range undecoded {
		key := k.String()
		if reported[key] || d.failed[k[0]] || d.isOwned(key) {
			continue
		}
		if len(k) > 1 && unknown[toml.Key(k[:len(k)-1]).String()] {
			continue // its table is unknown already
		}
		reported[key] = true
		where := ""
		if len(k) > 1 {
			where = fmt.Sprintf(" in %s", sectionName(toml.Key(k[:len(k)-1]).String()))
		}
		msg := fmt.Sprintf("unknown key %q%s", k[len(k)-1], where)
		if len(k) == 1 {
			switch d.md.Type(k...) {
			case "Hash":
				msg = fmt.Sprintf("unknown section [%s]", key)
			case "ArrayHash":
				msg = fmt.Sprintf("unknown section [[%s]]", key)
			}
		}
		occ := d.is.ix.occurrences(key)
		if len(occ) == 0 {
			d.is.atLine(0, "%s", msg)
			continue
		}
		for _, p := range occ {
			d.is.at(p, "%s", msg)
		}
	}
}

// isOwned reports whether key lies below a path a decoder checks itself.
func (d *decoder) isOwned(key string) bool {
	for _, o := range d.owned {
		if strings.HasPrefix(key, o+".") {
			return true
		}
	}
	return false
}

// sectionName formats a table path for messages: [[port]] for an array of tables,
// [name] for a table.
func sectionName(key string) string {
	if _, ok := sections[key]; ok {
		return "[[" + key + "]]"
	}
	return "[" + key + "]"
}

// sections lists the arrays of tables the file format knows, supported or not.
var sections = map[string]struct{}{
	"port": {}, "route": {}, "vrrp": {}, "healthcheck": {}, "servergroup": {}, "rule": {}, "servergroup.server": {},
	"autonat": {}, "nat": {},
}
