package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Route is a static route.
type Route struct {
	// To is the destination network (no host bits set).
	To netip.Prefix
	// Via is the next hop; the zero Addr when the destination is reached directly
	// through Port (the usual case on a TUN port).
	Via netip.Addr
	// Port is the egress port's name: as configured, or else the port whose connected
	// network holds Via.
	Port string
	// Pinned reports whether Port was configured rather than found from Via.
	Pinned bool
}

type rawRoute struct {
	To   value `toml:"to"`
	Via  value `toml:"via"`
	Port value `toml:"port"`
}

func (d *decoder) routes(p toml.Primitive, ports []Port) []Route {
	is := d.is
	var raws []rawRoute
	if !d.tables(p, "route", &raws) {
		return nil
	}
	seen := make(map[netip.Prefix]string) // destination → path of its to key
	routes := make([]Route, 0, len(raws))
	for i, r := range raws {
		path := indexPath("route", i)
		var rt Route
		ok := true
		label := fmt.Sprintf("route #%d", i+1)
		viaOK, portOK := true, true // whether the next hop can be checked against the ports

		if s, good := is.str(r.To, path+".to", label+": to"); good {
			to, err := parseDestination(s)
			if err != nil {
				is.at(path+".to", "%s: %v", label, err)
				ok = false
			} else if first, dup := seen[to]; dup {
				is.at(path+".to", "duplicate route to %s (first at line %d)", to, is.ix.line(first))
				ok = false
			} else {
				seen[to] = path + ".to"
			}
			rt.To = to
			if to.IsValid() {
				label = "route to " + to.String()
			}
		} else {
			if !r.To.set {
				is.at(path, "[[route]] needs to = a destination prefix")
			}
			ok = false
		}

		if s, good := is.str(r.Via, path+".via", label+": via"); good {
			via, err := parseGateway(s)
			if err != nil {
				is.at(path+".via", "%s: %v", label, err)
				ok = false
			} else if rt.To.IsValid() && via.Is4() != rt.To.Addr().Is4() {
				is.at(path+".via", "%s: via %s is %s but the destination is %s",
					label, via, family(via), family(rt.To.Addr()))
				ok, viaOK = false, false
			}
			rt.Via = via
		} else if r.Via.set {
			ok = false
		}

		if s, good := is.str(r.Port, path+".port", label+": port"); good {
			if findPort(ports, s) == nil {
				is.at(path+".port", "%s: unknown port %q (ports: %s)", label, s, portNames(ports))
				ok, portOK = false, false
			}
			rt.Port, rt.Pinned = s, true
		} else if r.Port.set {
			ok, portOK = false, false
		}

		if !r.Via.set && !r.Port.set {
			is.at(path, "%s needs via (a next hop), port (an egress port) or both", label)
			ok = false
		}
		if rt.Via.IsValid() && viaOK && portOK && !d.resolveVia(&rt, path, label, ports) {
			ok = false
		}
		if ok {
			routes = append(routes, rt)
		}
	}
	return routes
}

// resolveVia checks that the next hop is a neighbour: on a connected network of the
// route's port, or of some port when the route names none (which then becomes the
// route's port). A pinned port accepts any next hop not on another port's network.
func (d *decoder) resolveVia(rt *Route, path, label string, ports []Port) bool {
	for i := range ports {
		for _, a := range ports[i].Addresses {
			if a.Addr() == rt.Via {
				d.is.at(path+".via", "%s: via %s is the router's own address on port %q", label, rt.Via, ports[i].Name)
				return false
			}
		}
	}
	owner := ""
	for i := range ports {
		for _, n := range ports[i].Connected() {
			if n.Contains(rt.Via) {
				owner = ports[i].Name
			}
		}
	}
	switch {
	case rt.Pinned && owner != "" && owner != rt.Port:
		d.is.at(path+".port", "%s: via %s is on the network of port %q, not of port %q", label, rt.Via, owner, rt.Port)
		return false
	case rt.Pinned:
		return true
	case owner == "":
		d.is.at(path+".via", "%s: via %s is not on a connected network of any port; add port = \"NAME\" to reach it through a given port",
			label, rt.Via)
		return false
	}
	rt.Port = owner
	return true
}

// parseDestination parses a route's destination: a prefix without host bits.
func parseDestination(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		if a, err := netip.ParseAddr(s); err == nil {
			return netip.Prefix{}, fmt.Errorf("to %q needs a prefix length, e.g. \"%s/%d\" for this host alone", s, a, a.BitLen())
		}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("to %q is not a prefix (like 0.0.0.0/0 or 2001:db8::/32)", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("to %q is an IPv4-mapped IPv6 prefix: write the IPv4 prefix", s)
	}
	if p != p.Masked() {
		return p.Masked(), fmt.Errorf("to %q has host bits set: did you mean %q?", s, p.Masked().String())
	}
	return p, nil
}

// parseGateway parses a next-hop address.
func parseGateway(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		return netip.Addr{}, fmt.Errorf("via %q must be an address without a prefix length", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("via %q is not an IP address", s)
	}
	switch {
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("via %q: give the port with port = \"NAME\" instead of a zone", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("via %q is an IPv4-mapped IPv6 address: write the IPv4 address", s)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return netip.Addr{}, fmt.Errorf("via %q cannot be a next hop (unspecified, multicast or loopback)", s)
	}
	return a, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func findPort(ports []Port, name string) *Port {
	for i := range ports {
		if ports[i].Name == name {
			return &ports[i]
		}
	}
	return nil
}

func portNames(ports []Port) string {
	var names []string
	for _, p := range ports {
		if p.Name != "" && !slices.Contains(names, fmt.Sprintf("%q", p.Name)) {
			names = append(names, fmt.Sprintf("%q", p.Name))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
