package wizard

import (
	"net/netip"
	"strconv"
	"strings"

	"ulb/config"
)

// algorithm is the rules' scheduler: weights are asked for, and Loadbalancer.org's
// default is weighted least connection.
const algorithm = config.WeightedLeastConn

// Priorities of the pair's nodes (the examples' ha-half-nat values).
const (
	masterPriority = 200
	backupPriority = 100
)

// answers are what the questions collected; a zero value is a question not answered.
type answers struct {
	pair, backup bool
	hostname     string
	peer         netip.Addr
	vrid         int
	twoArm       bool
	topology     string
	devices      []string   // per port, in portNames order
	addrs        [][]string // per port
	gateways     []netip.Addr
	gatewaySet   bool
	name         string
	vip          netip.Addr
	port         string
	protocol     string
	proxies      []string
	floatGW      netip.Addr
	servers      []server
	check        string
	checkPort    int
}

type server struct {
	addr      netip.Addr
	port      int
	weight    int
	weightSet bool
}

// portNames are the [[port]] names: one port for one-arm, outside and inside for two-arm.
func (a *answers) portNames() []string {
	if a.twoArm {
		return []string{"outside", "inside"}
	}
	return []string{"lan"}
}

// prefixes returns port i's answered addresses that parse.
func (a *answers) prefixes(i int) []netip.Prefix {
	var out []netip.Prefix
	if i < 0 || i >= len(a.addrs) {
		return nil
	}
	for _, s := range a.addrs[i] {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// onPort tells whether x is on a network of port i.
func (a *answers) onPort(i int, x netip.Addr) bool {
	for _, p := range a.prefixes(i) {
		if p.Masked().Contains(x) {
			return true
		}
	}
	return false
}

// networks lists port i's networks.
func (a *answers) networks(i int) string {
	var s []string
	for _, p := range a.prefixes(i) {
		s = append(s, p.Masked().String())
	}
	return strings.Join(s, ", ")
}

// ownAddr returns port i's first address of a family.
func (a *answers) ownAddr(i int, v4 bool) netip.Addr {
	for _, p := range a.prefixes(i) {
		if p.Addr().Is4() == v4 {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// firstPort is the virtual server's (first) port, 80 before it is answered.
func (a *answers) firstPort() int {
	lo, _, _ := strings.Cut(a.port, "-")
	if n, err := strconv.Atoi(strings.TrimSpace(lo)); err == nil {
		return n
	}
	return 80
}

// doc is a TOML document built line by line; answered marks the lines of keys (the
// others are comments, blank lines and section headers).
type doc struct {
	lines []string
	keys  []bool
}

func (d *doc) add(s string, key bool) {
	d.lines = append(d.lines, s)
	d.keys = append(d.keys, key)
}

func (d *doc) comment(s string) { d.add("# "+s, false) }
func (d *doc) section(h string) { d.add("", false); d.add(h, false) }
func (d *doc) kv(k, v string)   { d.add(k+" = "+v, true) }
func (d *doc) str(k, v string)  { d.kv(k, quote(v)) }
func (d *doc) num(k string, n int) {
	d.kv(k, strconv.Itoa(n))
}
func (d *doc) strs(k string, v []string) {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = quote(s)
	}
	d.kv(k, "["+strings.Join(q, ", ")+"]")
}

// answered tells whether the 1-based line holds a key.
func (d *doc) answered(line int) bool { return line >= 1 && line <= len(d.keys) && d.keys[line-1] }

func (d *doc) bytes() []byte { return []byte(strings.Join(d.lines, "\n") + "\n") }

// quote returns s as a TOML basic string (TOML 1.0, "String"): a quotation mark and
// a backslash are escaped; checkLine refused control characters.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func addrStrings(list ...netip.Addr) []string {
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.String()
	}
	return out
}

// render writes the configuration answered so far: a key appears once its question
// is answered, a section once its first key is.
func (a *answers) render() *doc {
	d := &doc{}
	d.comment("ulbd configuration written by ulbadm wizard.")
	d.comment("Check it with ulbd -check -c FILE; README.md, \"A configuration\", lists every key.")
	if a.hostname != "" {
		d.str("hostname", a.hostname)
	}
	names := a.portNames()
	for i, dev := range a.devices {
		d.section("[[port]]")
		d.str("name", names[i])
		d.str("device", dev)
		if i < len(a.addrs) {
			d.strs("address", a.addrs[i])
		}
	}
	for _, g := range a.gateways {
		d.section("[[route]]")
		if g.Is4() {
			d.str("to", "0.0.0.0/0")
		} else {
			d.str("to", "::/0")
		}
		d.str("via", g.String())
	}
	a.renderVRRP(d, names)
	if a.check != "" && a.check != "none" {
		d.section("[[healthcheck]]")
		d.str("name", a.check)
		d.str("test", a.check)
		if a.checkPort != 0 {
			d.num("port", a.checkPort)
		}
	}
	if len(a.servers) > 0 {
		d.section("[[servergroup]]")
		d.str("name", a.name)
		if a.check != "" && a.check != "none" {
			d.str("healthcheck", a.check)
		}
		d.add("server = [", true)
		for _, s := range a.servers {
			e := "address = " + quote(s.addr.String())
			if s.port != 0 {
				e += ", port = " + strconv.Itoa(s.port)
			}
			if s.weightSet {
				e += ", weight = " + strconv.Itoa(s.weight)
			}
			d.add("  { "+e+" },", true)
		}
		d.add("]", true)
	}
	if a.name != "" {
		d.section("[[rule]]")
		d.str("name", a.name)
		if a.vip.IsValid() {
			d.str("vip", a.vip.String())
		}
		if a.port != "" {
			d.str("port", a.port)
		}
		if a.protocol != "" {
			d.str("protocol", a.protocol)
		}
		d.str("algorithm", string(algorithm))
		d.str("topology", a.topology)
		if len(a.proxies) > 0 {
			d.strs("proxy_source", a.proxies)
		}
		if len(a.servers) > 0 {
			d.str("servergroup", a.name)
		}
	}
	if a.peer.IsValid() {
		d.section("[sync]")
		d.comment("connection sync: the VIP's master sends its flows to the other node")
		d.strs("peer", []string{a.peer.String()})
		if a.vip.IsValid() {
			d.str("vrrp", "vip")
		}
	}
	return d
}

// renderVRRP writes a pair's virtual routers: "vip" holds the VIP on the (outside)
// port; with two arms a second one on the inside port holds the servers' floating
// gateway (half-nat) or the full-NAT source addresses, and both are in one sync group,
// so that one node is master of both (VRRP itself has no such groups; keepalived's
// vrrp_sync_group is the model). One-arm full-NAT source addresses float in "vip"
// itself.
func (a *answers) renderVRRP(d *doc, names []string) {
	if !a.pair || !a.vip.IsValid() {
		return
	}
	prio := masterPriority
	if a.backup {
		prio = backupPriority
	}
	var second []string
	name2 := ""
	switch {
	case a.twoArm && a.floatGW.IsValid():
		second, name2 = addrStrings(a.floatGW), "gw"
	case a.twoArm && len(a.proxies) > 0:
		second, name2 = a.proxies, "src"
	}
	vips := addrStrings(a.vip)
	if !a.twoArm {
		vips = append(vips, a.proxies...)
	}
	instance := func(name, port string, addrs []string) {
		d.section("[[vrrp]]")
		d.str("name", name)
		d.str("port", port)
		d.num("vrid", a.vrid)
		d.num("priority", prio)
		d.strs("address", addrs)
		if name2 != "" {
			d.str("sync_group", "pair")
		}
	}
	instance("vip", names[0], vips)
	if name2 != "" {
		instance(name2, names[1], second)
	}
}
