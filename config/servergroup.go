package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Limits of the servergroup keys.
const (
	DefaultWeight = 1
	MaxWeight     = 65535       // like IPVS
	MaxMaxConns   = 100_000_000 // above any conntrack capacity
	MaxServers    = 4096        // servers in one group
)

// ServerGroup is a named set of servers that rules balance over.
type ServerGroup struct {
	Name string
	// HealthCheck names the [[healthcheck]] that tests the group's servers; empty for
	// none (the servers are always up for the balancer).
	HealthCheck string
	Servers     []Server
}

// Server is one member of a server group. Its identity across reloads is the group's
// name, Addr and Port.
type Server struct {
	Addr netip.Addr
	// Port is the server's port: 0 means the client's destination port (for a port-range
	// rule, each port of the range maps to itself); otherwise a port-range rule maps its
	// lowest port to Port and the others to the same offset above it.
	Port uint16
	// Weight is the server's share for the weighted algorithms (DefaultWeight when not
	// configured); 0 takes no new flows under any algorithm.
	Weight int
	// MaxConns caps the server's active flows (over every rule using the group); 0 is no
	// limit. A server that reaches it is overloaded: it takes no new flows until its
	// flows fall below MinConns (Loadbalancer.org's Maximum / Minimum Connections, IPVS's
	// u-threshold / l-threshold); its flows go on.
	MaxConns int
	// MinConns is the lower threshold, 1..MaxConns (MaxConns itself: a plain cap without
	// hysteresis); 0, the default, is IPVS's: below three quarters of MaxConns.
	MinConns int
	// Enabled is the server's initial state (true when not configured); ulbadm
	// enable-server / disable-server change it while ulbd runs.
	Enabled bool
}

// Endpoint returns "addr:port", with brackets for IPv6, or the address alone when Port
// is 0 — the form ulbadm takes to name a server.
func (s Server) Endpoint() string {
	if s.Port == 0 {
		return s.Addr.String()
	}
	return netip.AddrPortFrom(s.Addr, s.Port).String()
}

// ServerGroup returns the server group with the given name, or nil.
func (c *Config) ServerGroup(name string) *ServerGroup {
	for i := range c.ServerGroups {
		if c.ServerGroups[i].Name == name {
			return &c.ServerGroups[i]
		}
	}
	return nil
}

type rawServerGroup struct {
	Name        value `toml:"name"`
	Server      value `toml:"server"`
	HealthCheck value `toml:"healthcheck"`
}

// serverKeys are the keys of one server entry.
var serverKeys = []string{"address", "port", "weight", "max_conns", "min_conns", "enabled"}

// groupPos remembers where a group was defined, for messages of the rules that use it.
type groupPos struct {
	path    string                // its name key
	servers map[netip.Addr]string // server address → path of its entry
}

// serverGroups decodes the [[servergroup]] sections; checks are the accepted health
// checks and checkNames every health check name given (also of refused ones).
func (d *decoder) serverGroups(p toml.Primitive, checks []HealthCheck, checkNames map[string]bool, ports []Port) ([]ServerGroup, map[string]groupPos) {
	is := d.is
	pos := make(map[string]groupPos)
	var raws []rawServerGroup
	if !d.tables(p, "servergroup", &raws) {
		return nil, pos
	}
	d.owned = append(d.owned, "servergroup.server")
	groups := make([]ServerGroup, 0, len(raws))
	for i, r := range raws {
		path := indexPath("servergroup", i)
		g := ServerGroup{}
		label := fmt.Sprintf("servergroup #%d", i+1)
		ok := true
		if s, good := is.str(r.Name, path+".name", label+": name"); good {
			kp := path + ".name"
			d.groupNames[s] = true
			if err := checkName(s); err != nil {
				is.at(kp, "servergroup name %q: %v", s, err)
				ok = false
			} else if first, dup := pos[s]; dup {
				is.at(kp, "duplicate servergroup name %q (first defined at line %d)", s, is.ix.line(first.path))
				ok = false
			}
			g.Name = s
			label = fmt.Sprintf("servergroup %q", s)
		} else {
			if !r.Name.set {
				is.at(path, "[[servergroup]] needs a name")
			}
			ok = false
		}

		if s, good := is.str(r.HealthCheck, path+".healthcheck", label+": healthcheck"); good {
			g.HealthCheck = s
			switch {
			case slices.ContainsFunc(checks, func(h HealthCheck) bool { return h.Name == s }):
			case checkNames[s] || d.failed["healthcheck"]:
				ok = false // the check itself was refused
			default:
				is.at(path+".healthcheck", "%s: unknown healthcheck %q (healthchecks: %s)", label, s, checkList(checks))
				ok = false
			}
		} else if r.HealthCheck.set {
			ok = false
		}

		gp := groupPos{path: path + ".name", servers: make(map[netip.Addr]string)}
		g.Servers = d.servers(r.Server, path, label, ports, gp)
		if len(g.Servers) == 0 && r.Server.set {
			ok = false
		}
		if !r.Server.set {
			is.at(path, "%s needs at least one server: server = [{ address = \"203.0.113.200\", port = 80 }]", label)
			ok = false
		}
		if ok {
			pos[g.Name] = gp
			groups = append(groups, g)
		}
	}
	return groups, pos
}

// servers decodes a group's server list: an array of tables (inline or [[servergroup.server]])
// or of "ADDRESS[:PORT]" strings.
func (d *decoder) servers(v value, gpath, label string, ports []Port, gp groupPos) []Server {
	is := d.is
	if !v.set {
		return nil
	}
	path := gpath + ".server"
	var elems []any
	switch x := v.v.(type) {
	case []any:
		elems = x
	case []map[string]any:
		for _, m := range x {
			elems = append(elems, m)
		}
	default:
		is.at(path, "%s: server must be a list of servers like [{ address = \"203.0.113.200\", port = 80 }], not %s", label, tomlType(v.v))
		return nil
	}
	if len(elems) == 0 {
		is.at(path, "%s: server is empty; a group needs at least one server", label)
		return nil
	}
	if len(elems) > MaxServers {
		is.at(path, "%s has %d servers; at most %d are allowed", label, len(elems), MaxServers)
		return nil
	}
	type key struct {
		a netip.Addr
		p uint16
	}
	seen := make(map[key]string)
	var out []Server
	for j, e := range elems {
		ep := indexPath(path, j)
		var s Server
		ok := false
		switch x := e.(type) {
		case string:
			s, ok = d.serverString(x, ep, label)
		case map[string]any:
			s, ok = d.serverTable(x, ep, label)
		default:
			is.at(ep, "%s: server[%d] must be a table like { address = \"203.0.113.200\", port = 80 }, not %s", label, j, tomlType(e))
		}
		if !ok {
			continue
		}
		if s.Addr.IsValid() {
			if p := ownerOf(ports, s.Addr); p != "" {
				is.at(ep, "%s: server %s is the router's own address on port %q", label, s.Addr, p)
				continue
			}
		}
		k := key{s.Addr, s.Port}
		if first, dup := seen[k]; dup {
			is.at(ep, "%s: duplicate server %s (first at line %d)", label, s.Endpoint(), is.ix.line(first))
			continue
		}
		seen[k] = ep
		if _, there := gp.servers[s.Addr]; !there {
			gp.servers[s.Addr] = ep
		}
		out = append(out, s)
	}
	return out
}

// serverString parses the shorthand "ADDRESS", "ADDRESS:PORT" or "[IPV6]:PORT".
func (d *decoder) serverString(s, path, label string) (Server, bool) {
	srv := Server{Weight: DefaultWeight, Enabled: true}
	if ap, err := netip.ParseAddrPort(s); err == nil && strings.Contains(s, ":") {
		if err := checkServerAddr(ap.Addr()); err != nil {
			d.is.at(path, "%s: server %q: %v", label, s, err)
			return srv, false
		}
		if ap.Port() == 0 {
			d.is.at(path, "%s: server %q: port 0 is not a port; leave the port out to use the client's destination port", label, s)
			return srv, false
		}
		srv.Addr, srv.Port = ap.Addr(), ap.Port()
		return srv, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		d.is.at(path, "%s: server %q is not an address or address:port (like \"203.0.113.200:80\" or \"[2001:db8::200]:80\")", label, s)
		return srv, false
	}
	if err := checkServerAddr(a); err != nil {
		d.is.at(path, "%s: server %q: %v", label, s, err)
		return srv, false
	}
	srv.Addr = a
	return srv, true
}

// serverTable decodes { address, port, weight, max_conns, min_conns, enabled }.
func (d *decoder) serverTable(m map[string]any, path, label string) (Server, bool) {
	is := d.is
	srv := Server{Weight: DefaultWeight, Enabled: true}
	ok := true
	is.unknownIn(m, serverKeys, path, "a server")
	for k := range m {
		ok = ok && slices.Contains(serverKeys, k)
	}
	get := func(k string) value {
		v, set := m[k]
		return value{v: v, set: set}
	}
	if s, good := is.str(get("address"), path+".address", label+": server address"); good {
		a, err := parseServerAddr(s)
		if err != nil {
			is.at(path+".address", "%s: server address %q: %v", label, s, err)
			ok = false
		}
		srv.Addr = a
	} else {
		if !get("address").set {
			is.at(path, "%s: a server needs an address", label)
		}
		ok = false
	}
	if n, good := is.integer(get("port"), path+".port", label+": server port"); good {
		if n < 1 || n > 65535 {
			is.at(path+".port", "%s: server port %d out of range 1..65535 (leave it out to use the client's destination port)", label, n)
			ok = false
		}
		srv.Port = uint16(n)
	} else if get("port").set {
		ok = false
	}
	for _, t := range []struct {
		key      string
		dst      *int
		min, max int64
	}{
		{"weight", &srv.Weight, 0, MaxWeight},
		{"max_conns", &srv.MaxConns, 0, MaxMaxConns},
		{"min_conns", &srv.MinConns, 0, MaxMaxConns},
	} {
		n, good := is.integer(get(t.key), path+"."+t.key, label+": "+t.key)
		if !good {
			ok = ok && !get(t.key).set
			continue
		}
		if n < t.min || n > t.max {
			is.at(path+"."+t.key, "%s: %s %d out of range %d..%d", label, t.key, n, t.min, t.max)
			ok = false
			continue
		}
		*t.dst = int(n)
	}
	// min_conns is IPVS's l_threshold: below it an overloaded server takes new flows
	// again, so it means something only under max_conns (u_threshold), and past it a
	// server would never take flows again.
	if get("min_conns").set && srv.MinConns > 0 && ok {
		switch {
		case srv.MaxConns == 0:
			is.at(path+".min_conns", "%s: min_conns %d needs max_conns (the count at which the server stops taking new flows; min_conns is where it starts again)", label, srv.MinConns)
			ok = false
		case srv.MinConns > srv.MaxConns:
			is.at(path+".min_conns", "%s: min_conns %d is above max_conns %d: an overloaded server takes new flows again below min_conns, so it must be at most max_conns", label, srv.MinConns, srv.MaxConns)
			ok = false
		}
	}
	if b, good := is.boolean(get("enabled"), path+".enabled", label+": enabled"); good {
		srv.Enabled = b
	} else if get("enabled").set {
		ok = false
	}
	return srv, ok
}

// parseServerAddr parses a server's address.
func parseServerAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if strings.Contains(s, "/") {
			return a, fmt.Errorf("must be an address without a prefix length")
		}
		return a, fmt.Errorf("is not an IP address")
	}
	return a, checkServerAddr(a)
}

// checkServerAddr refuses addresses no server can have.
func checkServerAddr(a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return fmt.Errorf("must not have a zone")
	case a.Is4In6():
		return fmt.Errorf("is an IPv4-mapped IPv6 address: write the IPv4 address")
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast():
		return fmt.Errorf("cannot be a server (unspecified, multicast, loopback or link-local)")
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("is the limited broadcast address")
	}
	return nil
}

// ownerOf returns the name of the port that has a as one of the router's own addresses,
// or "".
func ownerOf(ports []Port, a netip.Addr) string {
	for i := range ports {
		if slicesIndexAddr(ports[i].Addresses, a) >= 0 {
			return ports[i].Name
		}
	}
	return ""
}

func connectedPort(ports []Port, a netip.Addr) *Port {
	for i := range ports {
		for _, n := range ports[i].Connected() {
			if n.Contains(a) {
				return &ports[i]
			}
		}
	}
	return nil
}

// formatPort prints a port range as "80" or "8000-8099".
func formatPort(lo, hi uint16) string {
	if lo == hi {
		return strconv.Itoa(int(lo))
	}
	return strconv.Itoa(int(lo)) + "-" + strconv.Itoa(int(hi))
}
