package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Protocol is a rule's transport protocol.
type Protocol string

// Protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Number is the IP protocol number (6 or 17).
func (p Protocol) Number() uint8 {
	if p == UDP {
		return 17
	}
	return 6
}

// PersistKey is what a rule's persistence keys on (BalanceNG's sessionid).
type PersistKey string

// Persistence keys.
const (
	// PersistSrc keys on the client's prefix (pmask): the default.
	PersistSrc PersistKey = "src"
	// PersistSrcPort keys on the client's prefix and source port: one client socket is
	// one session (a UDP client keeps its server across flows that expired).
	PersistSrcPort PersistKey = "src+port"
	// PersistDstPort keys on the VIP and destination port: every client of one port of
	// the rule is one session on one server. UDP rules only, without pmask.
	PersistDstPort PersistKey = "dst+port"
)

// Algorithm is a rule's scheduling algorithm.
type Algorithm string

// Algorithms, as the design lists them.
const (
	RoundRobin         Algorithm = "roundrobin"
	WeightedRoundRobin Algorithm = "weighted-roundrobin"
	LeastConn          Algorithm = "leastconn"
	WeightedLeastConn  Algorithm = "weighted-leastconn"
	HashIP             Algorithm = "hash-ip"
	HashIPPort         Algorithm = "hash-ip-port"
	HashIPVIP          Algorithm = "hash-ip-vip"
	Maglev             Algorithm = "maglev"
)

// Algorithms lists every algorithm.
var Algorithms = []Algorithm{RoundRobin, WeightedRoundRobin, LeastConn, WeightedLeastConn, HashIP, HashIPPort, HashIPVIP, Maglev}

// Topology is how a rule's packets reach the servers and come back.
type Topology string

// Topologies.
const (
	// HalfNAT rewrites the destination to the server and keeps the client's address; the
	// servers route their replies through the router.
	HalfNAT Topology = "half-nat"
	// FullNAT also rewrites the source to a proxy_source address and port, so the
	// servers answer the router wherever they are (one-arm).
	FullNAT Topology = "full-nat"
	// DSR (direct server return) changes only the destination MAC: the servers are on a
	// connected network, own the VIP on a loopback and answer the client directly.
	DSR Topology = "dsr"
	// Tunnel encapsulates the client's packet unchanged in IPv4-in-IPv4 (RFC 2003) or
	// IPv6-in-IPv6 (RFC 2473) to the server, which may sit on any routed network,
	// decapsulates, owns the VIP on a loopback and answers the client directly.
	Tunnel Topology = "tunnel"
)

// Limits and defaults of the rule keys.
const (
	// DefaultPersistTimeout is persist_timeout when pmask is given without it: IPVS's
	// default (ipvsadm -p); ILB's is 60s.
	DefaultPersistTimeout = 300 * time.Second
	MaxPersistTimeout     = 7 * 24 * time.Hour
	MaxConnDrain          = 7 * 24 * time.Hour
	// MaxProxySources bounds the addresses proxy_source expands to.
	MaxProxySources = 1024
)

// Rule sends the flows to a VIP's ports to the servers of a group.
type Rule struct {
	Name string
	VIP  netip.Addr
	// PortLo..PortHi is the rule's destination port range (PortLo == PortHi for one port).
	PortLo, PortHi uint16
	Protocol       Protocol
	Algorithm      Algorithm
	Topology       Topology
	// ProxySource are the full-NAT source addresses, ranges expanded, in file order
	// (nil unless Topology is FullNAT), of the VIP's family. Like a VIP, an address on a
	// connected network of a port is answered for there (ARP / NDP); any other must be
	// routed to the router by the servers' network. Rules may share addresses: each
	// address's ports come from one pool.
	ProxySource []netip.Addr
	// TunnelSource is the outer source address of a tunnel rule's encapsulated packets:
	// one of the router's own port addresses, of the VIP's family. Invalid (the
	// default): the address of the port the packet leaves by.
	TunnelSource netip.Addr
	// PMask is the client prefix length persistence keys on (0-32 for IPv4, 0-128 for
	// IPv6), or -1 for no persistence.
	PMask int
	// PersistKey is what persistence keys on (PersistSrc when not configured); with
	// PersistDstPort, PMask is -1 and the rule persists all the same.
	PersistKey PersistKey
	// PersistTimeout is how long a persistence entry outlives the last flow that used it
	// (DefaultPersistTimeout when not configured; 0 without persistence).
	PersistTimeout time.Duration
	// ConnDrain bounds how long the flows of a draining or removed server are kept. 0 (the
	// default, as in ILB) keeps them until they end: a TCP close or their idle timeout.
	ConnDrain   time.Duration
	ServerGroup string
	// SorryServer is where new flows go while every server of the rule is down
	// (invalid when not configured): an address of the VIP's family, and a port (0:
	// the client's destination port; with a port range, the same offset above it as
	// for servers). Half-NAT and full-NAT rules only.
	SorryServer netip.AddrPort
	// KeepFlowsOnDown keeps the flows of a server that a health check takes down; by
	// default (false) they are ended with a TCP RST towards the client.
	KeepFlowsOnDown bool
	// Enabled is the rule's initial state (true when not configured); ulbadm
	// enable-rule / disable-rule change it while ulbd runs.
	Enabled bool
}

// Ports formats the rule's port range as "80" or "8000-8099".
func (r *Rule) Ports() string { return formatPort(r.PortLo, r.PortHi) }

// ServerPort returns the server port that a client's destination port dport of the rule
// maps to for a server configured with port (0 = keep dport): the same offset in the
// range.
func (r *Rule) ServerPort(serverPort, dport uint16) uint16 {
	if serverPort == 0 {
		return dport
	}
	return serverPort + (dport - r.PortLo)
}

// Rule returns the rule with the given name, or nil.
func (c *Config) Rule(name string) *Rule {
	for i := range c.Rules {
		if c.Rules[i].Name == name {
			return &c.Rules[i]
		}
	}
	return nil
}

type rawRule struct {
	Name            value `toml:"name"`
	VIP             value `toml:"vip"`
	Port            value `toml:"port"`
	Protocol        value `toml:"protocol"`
	Algorithm       value `toml:"algorithm"`
	Topology        value `toml:"topology"`
	ProxySource     value `toml:"proxy_source"`
	TunnelSource    value `toml:"tunnel_source"`
	PMask           value `toml:"pmask"`
	PersistTimeout  value `toml:"persist_timeout"`
	PersistKey      value `toml:"persist_key"`
	ConnDrain       value `toml:"conn_drain"`
	ServerGroup     value `toml:"servergroup"`
	Enabled         value `toml:"enabled"`
	SorryServer     value `toml:"sorry_server"`
	KeepFlowsOnDown value `toml:"keep_flows_on_down"`
}

// ruleSeen remembers a decoded rule's keys for the checks between rules.
type ruleSeen struct {
	rule     Rule
	portPath string
}

func (d *decoder) rules(p toml.Primitive, ports []Port, routes []Route, groups []ServerGroup, gpos map[string]groupPos) []Rule {
	is := d.is
	var raws []rawRule
	if !d.tables(p, "rule", &raws) {
		return nil
	}
	names := make(map[string]string)
	var seen []ruleSeen
	out := make([]Rule, 0, len(raws))
	var paths []string // of the accepted rules
	for i, r := range raws {
		path := indexPath("rule", i)
		rl := Rule{Protocol: TCP, Algorithm: RoundRobin, Topology: HalfNAT, PMask: -1, PersistKey: PersistSrc, Enabled: true}
		ok := true
		label := fmt.Sprintf("rule #%d", i+1)

		if s, good := is.str(r.Name, path+".name", label+": name"); good {
			kp := path + ".name"
			if err := checkName(s); err != nil {
				is.at(kp, "rule name %q: %v", s, err)
				ok = false
			} else if first, dup := names[s]; dup {
				is.at(kp, "duplicate rule name %q (first defined at line %d)", s, is.ix.line(first))
				ok = false
			} else {
				names[s] = kp
			}
			rl.Name = s
			label = fmt.Sprintf("rule %q", s)
		} else {
			if !r.Name.set {
				is.at(path, "[[rule]] needs a name")
			}
			ok = false
		}

		if s, good := is.str(r.VIP, path+".vip", label+": vip"); good {
			a, err := parseVIP(s, ports)
			if err != nil {
				is.at(path+".vip", "%s: %v", label, err)
				ok = false
			}
			rl.VIP = a
		} else {
			if !r.VIP.set {
				is.at(path, "%s needs a vip", label)
			}
			ok = false
		}

		if lo, hi, good := d.portRange(r.Port, path+".port", label); good {
			rl.PortLo, rl.PortHi = lo, hi
		} else {
			if !r.Port.set {
				is.at(path, "%s needs a port (\"80\" or a range \"8000-8099\")", label)
			}
			ok = false
		}

		if s, good := is.str(r.Protocol, path+".protocol", label+": protocol"); good {
			switch pr := Protocol(strings.ToLower(s)); pr {
			case TCP, UDP:
				rl.Protocol = pr
			default:
				is.at(path+".protocol", "%s: unknown protocol %q: want tcp or udp", label, s)
				ok = false
			}
		} else if r.Protocol.set {
			ok = false
		}

		if s, good := is.str(r.Algorithm, path+".algorithm", label+": algorithm"); good {
			if a := Algorithm(s); contains(Algorithms, a) {
				rl.Algorithm = a
			} else {
				names := make([]string, len(Algorithms))
				for j, a := range Algorithms {
					names[j] = string(a)
				}
				is.at(path+".algorithm", "%s: unknown algorithm %q: want one of %s", label, s, strings.Join(names, ", "))
				ok = false
			}
		} else if r.Algorithm.set {
			ok = false
		}

		if s, good := is.str(r.Topology, path+".topology", label+": topology"); good {
			switch t := Topology(s); t {
			case HalfNAT, FullNAT, DSR, Tunnel:
				rl.Topology = t
			default:
				is.at(path+".topology", "%s: unknown topology %q: want half-nat, full-nat, dsr or tunnel", label, s)
				ok = false
			}
		} else if r.Topology.set {
			ok = false
		}

		switch {
		case r.ProxySource.set && rl.Topology != FullNAT:
			is.at(path+".proxy_source", "%s: proxy_source applies only to topology full-nat, not %s", label, rl.Topology)
			ok = false
		case rl.Topology == FullNAT && !r.ProxySource.set:
			is.at(path, "%s: topology full-nat needs proxy_source: the addresses (or ranges like \"203.0.113.50-203.0.113.59\") the servers see as the source", label)
			ok = false
		case r.ProxySource.set:
			list, good := d.proxySources(r.ProxySource, path+".proxy_source", label, rl.VIP)
			rl.ProxySource = list
			ok = ok && good
		}

		ok = d.tunnelSource(r.TunnelSource, &rl, path+".tunnel_source", label, ports) && ok

		if r.PMask.set {
			if n, good := d.pmask(r.PMask, path+".pmask", label, rl.VIP); good {
				rl.PMask = n
				rl.PersistTimeout = DefaultPersistTimeout
			} else {
				ok = false
			}
		}
		ok = d.persistKey(r, &rl, path, label) && ok
		if dur, good := is.duration(r.PersistTimeout, path+".persist_timeout", label+": persist_timeout", time.Second, MaxPersistTimeout); good {
			if !r.PMask.set && !r.PersistKey.set {
				is.at(path+".persist_timeout", "%s: persist_timeout needs pmask (the client prefix length that persistence keys on) or persist_key", label)
				ok = false
			}
			rl.PersistTimeout = dur
		} else if r.PersistTimeout.set {
			ok = false
		}
		if dur, good := is.duration(r.ConnDrain, path+".conn_drain", label+": conn_drain", 0, MaxConnDrain); good {
			rl.ConnDrain = dur
		} else if r.ConnDrain.set {
			ok = false
		}
		if b, good := is.boolean(r.Enabled, path+".enabled", label+": enabled"); good {
			rl.Enabled = b
		} else if r.Enabled.set {
			ok = false
		}

		ok = d.sorryServer(r.SorryServer, &rl, path+".sorry_server", label, ports) && ok
		if b, good := is.boolean(r.KeepFlowsOnDown, path+".keep_flows_on_down", label+": keep_flows_on_down"); good {
			rl.KeepFlowsOnDown = b
		} else if r.KeepFlowsOnDown.set {
			ok = false
		}

		if s, good := is.str(r.ServerGroup, path+".servergroup", label+": servergroup"); good {
			rl.ServerGroup = s
			g := findGroup(groups, s)
			switch {
			case g == nil && d.failed["servergroup"]:
				ok = false
			case g == nil && !d.groupNames[s]:
				is.at(path+".servergroup", "%s: unknown servergroup %q (servergroups: %s)", label, s, groupNames(groups))
				ok = false
			case g == nil:
				ok = false // the group itself was refused
			case rl.VIP.IsValid() && rl.PortLo != 0:
				ok = d.checkRuleServers(&rl, g, gpos[s], path, label, ports, routes) && ok
			}
			if g != nil && g.HealthCheck == "" && r.KeepFlowsOnDown.set {
				is.warnAt(path+".keep_flows_on_down", "%s: keep_flows_on_down has no effect: servergroup %q has no healthcheck", label, s)
			}
		} else {
			if !r.ServerGroup.set {
				is.at(path, "%s needs a servergroup", label)
			}
			ok = false
		}

		if rl.VIP.IsValid() && rl.PortLo != 0 {
			for _, o := range seen {
				if o.rule.VIP == rl.VIP && o.rule.Protocol == rl.Protocol && rl.PortLo <= o.rule.PortHi && o.rule.PortLo <= rl.PortHi {
					is.at(path+".port", "%s: %s %s port %s overlaps rule %q (line %d), port %s",
						label, rl.VIP, rl.Protocol, rl.Ports(), o.rule.Name, is.ix.line(o.portPath), o.rule.Ports())
					ok = false
					break
				}
			}
			seen = append(seen, ruleSeen{rule: rl, portPath: path + ".port"})
		}
		if ok {
			out = append(out, rl)
			paths = append(paths, path)
		}
	}
	d.crossRuleChecks(out, paths, gpos, groups)
	return out
}

// checkRuleServers checks a rule against its group's servers: one address family, no
// port translation under DSR or tunnel, DSR servers on a connected network, tunnel
// servers on a connected network or a route, server ports that fit the range, no server
// at the VIP.
func (d *decoder) checkRuleServers(rl *Rule, g *ServerGroup, gp groupPos, path, label string, ports []Port, routes []Route) bool {
	is := d.is
	ok := true
	span := rl.PortHi - rl.PortLo
	for _, s := range g.Servers {
		where := fmt.Sprintf("server %s of servergroup %q (line %d)", s.Endpoint(), g.Name, is.ix.line(gp.servers[s.Addr]))
		switch {
		case s.Addr.Is4() != rl.VIP.Is4():
			is.at(path+".servergroup", "%s: the VIP %s is %s but %s is %s", label, rl.VIP, family(rl.VIP), where, family(s.Addr))
			ok = false
		case s.Addr == rl.VIP:
			is.at(path+".servergroup", "%s: %s is the rule's VIP", label, where)
			ok = false
		case (rl.Topology == DSR || rl.Topology == Tunnel) && s.Port != 0 && s.Port != rl.PortLo:
			is.at(path+".servergroup", "%s: topology %s cannot translate ports, but %s has port %d and the rule port %s",
				label, rl.Topology, where, s.Port, rl.Ports())
			ok = false
		case rl.Topology == Tunnel && connectedPort(ports, s.Addr) == nil && !routed(routes, s.Addr):
			is.at(path+".servergroup", "%s: topology tunnel sends to the server's own address, but no connected network of a port nor a [[route]] reaches %s",
				label, where)
			ok = false
		case rl.Topology == DSR && connectedPort(ports, s.Addr) == nil:
			is.at(path+".servergroup", "%s: topology dsr reaches servers by MAC address, but %s is not on a connected network of any port",
				label, where)
			ok = false
		case s.Port != 0 && int(s.Port)+int(span) > 65535:
			is.at(path+".servergroup", "%s: port range %s maps onto ports %d-%d of %s, past 65535",
				label, rl.Ports(), s.Port, int(s.Port)+int(span), where)
			ok = false
		}
	}
	return ok
}

// crossRuleChecks refuses addresses that play two parts: a VIP or proxy source that
// is also a server, or a proxy source that is a VIP. Rules may share proxy sources: the
// router hands out each address's ports from one pool.
func (d *decoder) crossRuleChecks(rules []Rule, paths []string, gpos map[string]groupPos, groups []ServerGroup) {
	is := d.is
	servers := make(map[netip.Addr]string) // address → path of a server entry with it
	for _, g := range groups {
		for a, p := range gpos[g.Name].servers {
			servers[a] = p
		}
	}
	for i, rl := range rules {
		path := paths[i]
		if p, bad := servers[rl.VIP]; bad {
			is.at(path+".vip", "rule %q: VIP %s is also a server (line %d)", rl.Name, rl.VIP, is.ix.line(p))
		}
		if ss := rl.SorryServer.Addr(); rl.SorryServer.IsValid() {
			for _, o := range rules {
				if o.VIP == ss {
					is.at(path+".sorry_server", "rule %q: sorry_server %s is the VIP of rule %q", rl.Name, ss, o.Name)
				}
				if slices.Contains(o.ProxySource, ss) {
					is.at(path+".sorry_server", "rule %q: sorry_server %s is a proxy_source of rule %q", rl.Name, ss, o.Name)
				}
			}
		}
		for _, a := range rl.ProxySource {
			if p, bad := servers[a]; bad {
				is.at(path+".proxy_source", "rule %q: proxy_source %s is also a server (line %d)", rl.Name, a, is.ix.line(p))
			}
			for _, o := range rules {
				if o.VIP == a {
					is.at(path+".proxy_source", "rule %q: proxy_source %s is the VIP of rule %q", rl.Name, a, o.Name)
				}
			}
		}
	}
}

// tunnelSource decodes tunnel_source: one of the router's own port addresses, of the
// VIP's family, on a tunnel rule (rl's VIP and topology are decoded already). The
// servers' ICMP errors about the tunnel come back to it (RFC 2003 section 4), so it
// must be an address the router answers for.
func (d *decoder) tunnelSource(v value, rl *Rule, path, label string, ports []Port) bool {
	is := d.is
	s, good := is.str(v, path, label+": tunnel_source")
	if !good {
		return !v.set
	}
	if rl.Topology != Tunnel {
		is.at(path, "%s: tunnel_source applies only to topology tunnel, not %s", label, rl.Topology)
		return false
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || a.Zone() != "" || a.Is4In6():
		is.at(path, "%s: tunnel_source %q is not an IP address", label, s)
		return false
	case rl.VIP.IsValid() && a.Is4() != rl.VIP.Is4():
		is.at(path, "%s: tunnel_source %s is %s but the VIP %s is %s", label, a, family(a), rl.VIP, family(rl.VIP))
		return false
	case ownerOf(ports, a) == "":
		is.at(path, "%s: tunnel_source %s is none of the router's port addresses (the tunnel's ICMP errors come back to it)", label, a)
		return false
	}
	rl.TunnelSource = a
	return true
}

// sorryServer decodes sorry_server: "ADDRESS", "ADDRESS:PORT" or "[IPV6]:PORT", of the
// VIP's family, on a half-NAT or full-NAT rule (rl's VIP, ports and topology are
// decoded already).
func (d *decoder) sorryServer(v value, rl *Rule, path, label string, ports []Port) bool {
	is := d.is
	s, good := is.str(v, path, label+": sorry_server")
	if !good {
		return !v.set
	}
	if rl.Topology == DSR || rl.Topology == Tunnel {
		is.at(path, "%s: sorry_server applies only to topology half-nat or full-nat, not %s", label, rl.Topology)
		return false
	}
	srv, good := d.serverString(s, path, label+": sorry_server")
	if !good {
		return false
	}
	a := srv.Addr
	switch {
	case ownerOf(ports, a) != "":
		is.at(path, "%s: sorry_server %s is the router's own address on port %q", label, a, ownerOf(ports, a))
		return false
	case rl.VIP.IsValid() && a.Is4() != rl.VIP.Is4():
		is.at(path, "%s: sorry_server %s is %s but the VIP %s is %s", label, a, family(a), rl.VIP, family(rl.VIP))
		return false
	case a == rl.VIP:
		is.at(path, "%s: sorry_server %s is the rule's VIP", label, a)
		return false
	case slices.Contains(rl.ProxySource, a):
		is.at(path, "%s: sorry_server %s is one of the rule's proxy_source addresses", label, a)
		return false
	case srv.Port != 0 && rl.PortLo != 0 && int(srv.Port)+int(rl.PortHi-rl.PortLo) > 65535:
		is.at(path, "%s: port range %s maps onto ports %d-%d of sorry_server %s, past 65535",
			label, rl.Ports(), srv.Port, int(srv.Port)+int(rl.PortHi-rl.PortLo), s)
		return false
	}
	rl.SorryServer = netip.AddrPortFrom(a, srv.Port)
	return true
}

// portRange parses "80", 80 or "8000-8099".
func (d *decoder) portRange(v value, path, label string) (lo, hi uint16, ok bool) {
	if !v.set {
		return 0, 0, false
	}
	var s string
	switch x := v.v.(type) {
	case int64:
		s = strconv.FormatInt(x, 10)
	case string:
		s = x
	default:
		d.is.at(path, "%s: port must be a string like \"80\" or \"8000-8099\", not %s", label, tomlType(v.v))
		return 0, 0, false
	}
	bad := func(format string, a ...any) (uint16, uint16, bool) {
		d.is.at(path, "%s: port %q: %s", label, s, fmt.Sprintf(format, a...))
		return 0, 0, false
	}
	a, b, isRange := strings.Cut(s, "-")
	l, err1 := strconv.Atoi(strings.TrimSpace(a))
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	switch {
	case err1 != nil || err2 != nil:
		return bad("want a port like \"80\" or a range like \"8000-8099\"")
	case l < 1 || l > 65535 || h < 1 || h > 65535:
		return bad("ports are 1..65535")
	case l > h:
		return bad("the range's first port is above its last")
	}
	return uint16(l), uint16(h), true
}

// persistKey decodes persist_key, BalanceNG's sessionid: "src" (the client prefix, as
// pmask alone), "src+port" (the client prefix and port) or "dst+port" (the VIP's port).
// A key without pmask turns persistence on: src and src+port on the whole client
// address; dst+port does not key on the client, so pmask is refused with it, and so is
// TCP, where it means nothing (see below).
func (d *decoder) persistKey(r rawRule, rl *Rule, path, label string) bool {
	is := d.is
	s, good := is.str(r.PersistKey, path+".persist_key", label+": persist_key")
	if !good {
		return !r.PersistKey.set
	}
	k := PersistKey(strings.ToLower(s))
	switch k {
	case PersistSrc, PersistSrcPort:
		if !r.PMask.set {
			rl.PMask = 32
			if rl.VIP.Is6() {
				rl.PMask = 128
			}
			rl.PersistTimeout = DefaultPersistTimeout
		}
	case PersistDstPort:
		// A TCP connection is a session by itself (its state lives on the server that
		// took its SYN) and every client connects to the same VIP:port, so keying on the
		// destination would pile all of a port's clients on one server and persist
		// nothing that needs it. UDP services that keep one state per port of a range
		// (a stream, a conference, a game per port) are where it means something.
		if rl.Protocol != UDP {
			is.at(path+".persist_key", `%s: persist_key "dst+port" is for protocol udp: a TCP connection is a session of its own, and keying on the destination would send every client of a port to one server (use "src" or "src+port")`, label)
			return false
		}
		if r.PMask.set {
			is.at(path+".pmask", `%s: pmask with persist_key "dst+port": that key is the VIP's port, not the client's address`, label)
			return false
		}
		rl.PersistTimeout = DefaultPersistTimeout
	default:
		is.at(path+".persist_key", "%s: unknown persist_key %q: want src, src+port or dst+port", label, s)
		return false
	}
	rl.PersistKey = k
	return true
}

// pmask parses the persistence prefix length: an integer or "/N".
func (d *decoder) pmask(v value, path, label string, vip netip.Addr) (int, bool) {
	var n int64
	switch x := v.v.(type) {
	case int64:
		n = x
	case string:
		var err error
		n, err = strconv.ParseInt(strings.TrimPrefix(x, "/"), 10, 32)
		if err != nil {
			d.is.at(path, "%s: pmask %q is not a prefix length (like 24 or \"/24\")", label, x)
			return 0, false
		}
	default:
		d.is.at(path, "%s: pmask must be a prefix length (like 24), not %s", label, tomlType(v.v))
		return 0, false
	}
	bits := int64(128)
	if !vip.IsValid() || vip.Is4() {
		bits = 32
	}
	if n < 0 || n > bits {
		d.is.at(path, "%s: pmask %d out of range 0..%d", label, n, bits)
		return 0, false
	}
	return int(n), true
}

// proxySources expands proxy_source: addresses and "FIRST-LAST" ranges.
func (d *decoder) proxySources(v value, path, label string, vip netip.Addr) ([]netip.Addr, bool) {
	is := d.is
	list, paths := is.strList(v, path, label+": proxy_source")
	want := 1 // elements given, to tell whether strList refused some
	if arr, isList := v.v.([]any); isList {
		want = len(arr)
		if want == 0 {
			is.at(path, "%s: proxy_source is empty", label)
		}
	}
	ok := want > 0 && len(list) == want
	var out []netip.Addr
	seen := make(map[netip.Addr]bool)
	for j, s := range list {
		first, last, err := parseAddrRange(s)
		if err != nil {
			is.at(paths[j], "%s: proxy_source %q: %v", label, s, err)
			ok = false
			continue
		}
		if vip.IsValid() && first.Is4() != vip.Is4() {
			is.at(paths[j], "%s: proxy_source %s is %s but the VIP %s is %s", label, s, family(first), vip, family(vip))
			ok = false
			continue
		}
		dupSaid := false
		for a := first; ; a = a.Next() {
			switch {
			case len(out) >= MaxProxySources:
				is.at(paths[j], "%s: proxy_source holds more than %d addresses", label, MaxProxySources)
				return nil, false
			case seen[a]:
				if !dupSaid {
					is.at(paths[j], "%s: proxy_source %s is listed twice", label, a)
				}
				ok, dupSaid = false, true
			case a == vip:
				is.at(paths[j], "%s: proxy_source %s is the rule's VIP", label, a)
				ok = false
			default:
				seen[a] = true
				out = append(out, a)
			}
			if a == last {
				break
			}
		}
	}
	return out, ok
}

// parseAddrRange parses "A" or "A-B" (A <= B, one family).
func parseAddrRange(s string) (first, last netip.Addr, err error) {
	a, b, isRange := strings.Cut(s, "-")
	first, err = parseProxyAddr(strings.TrimSpace(a))
	if err != nil && !isRange {
		if _, perr := netip.ParsePrefix(s); perr == nil {
			return first, first, fmt.Errorf("write a prefix as a range of addresses, like 203.0.113.50-203.0.113.59")
		}
		return first, first, fmt.Errorf("is not an address or a range of addresses (like 203.0.113.50-203.0.113.59)")
	}
	if err != nil {
		return first, first, err
	}
	if !isRange {
		return first, first, nil
	}
	last, err = parseProxyAddr(strings.TrimSpace(b))
	switch {
	case err != nil:
		return first, last, err
	case first.Is4() != last.Is4():
		return first, last, fmt.Errorf("mixes IPv4 and IPv6")
	case last.Less(first):
		return first, last, fmt.Errorf("the range's first address is above its last")
	}
	return first, last, nil
}

func parseProxyAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%q is not an IP address (want an address or a range like 203.0.113.50-203.0.113.59)", s)
	}
	switch {
	case a.Zone() != "" || a.Is4In6():
		return a, fmt.Errorf("%s: write a plain IPv4 or IPv6 address", s)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast():
		return a, fmt.Errorf("%s cannot be a source address (unspecified, multicast, loopback or link-local)", s)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return a, fmt.Errorf("%s is the limited broadcast address", s)
	}
	return a, nil
}

// parseVIP parses a rule's VIP. A VIP on a connected network of a port is answered for
// by that port (ARP / NDP); any other VIP must be routed to the router by the network
// in front of it. A VIP cannot be one of the router's own port addresses.
func parseVIP(s string, ports []Port) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		return netip.Addr{}, fmt.Errorf("vip %q must be an address without a prefix length", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("vip %q is not an IP address", s)
	}
	switch {
	case a.Zone() != "":
		return a, fmt.Errorf("vip %q must not have a zone", s)
	case a.Is4In6():
		return a, fmt.Errorf("vip %q is an IPv4-mapped IPv6 address: write the IPv4 address", s)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast():
		return a, fmt.Errorf("vip %q cannot be a VIP (unspecified, multicast, loopback or link-local)", s)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return a, fmt.Errorf("vip %q is the limited broadcast address", s)
	}
	if p := ownerOf(ports, a); p != "" {
		return a, fmt.Errorf("vip %s is the router's own address on port %q: give the VIP an address of its own", a, p)
	}
	for i := range ports {
		for _, pfx := range ports[i].Addresses {
			n := pfx.Masked()
			if !n.Contains(a) || pfx.Bits() >= a.BitLen()-1 {
				continue
			}
			if a == n.Addr() {
				return a, fmt.Errorf("vip %s is the network address of %s (port %q)", a, n, ports[i].Name)
			}
			if a.Is4() && a == lastAddr(pfx) {
				return a, fmt.Errorf("vip %s is the broadcast address of %s (port %q)", a, n, ports[i].Name)
			}
		}
	}
	return a, nil
}

func findGroup(groups []ServerGroup, name string) *ServerGroup {
	for i := range groups {
		if groups[i].Name == name {
			return &groups[i]
		}
	}
	return nil
}

func groupNames(groups []ServerGroup) string {
	var names []string
	for _, g := range groups {
		names = append(names, strconv.Quote(g.Name))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func contains[T comparable](list []T, v T) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

// routed reports whether a route (a default one included) covers a.
func routed(routes []Route, a netip.Addr) bool {
	for _, r := range routes {
		if r.To.Contains(a) {
			return true
		}
	}
	return false
}
