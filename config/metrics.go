package config

import (
	"net/netip"

	"github.com/BurntSushi/toml"
)

// Metrics is where ulbd serves its Prometheus metrics ([metrics]).
//
//	[metrics]
//	listen = "127.0.0.1:9469"   # ADDR:PORT of a plain TCP listener; /metrics is served there
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
}

type rawMetrics struct {
	Listen value `toml:"listen"`
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
	return m
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
