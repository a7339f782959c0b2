package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// AutoNAT masquerades the connections that hosts of the inside networks From open
// towards the outside through port Out ([[autonat]]): their source becomes Address, or
// Out's own address of their family, and a port of the router's.
//
// It is a section of its own rather than a flag on a port because the inside networks
// are not always a port's connected ones (servers behind a routed hop, a port's network
// shared with hosts that must not be masqueraded), and one outside port may serve
// several inside networks, with an address of its own.
type AutoNAT struct {
	// From are the inside networks (no host bits set), of one family when Address is
	// set.
	From []netip.Prefix
	// Out is the outside port's name.
	Out string
	// Address is the translated source; invalid for Out's own address. Another address
	// must lie on a connected network of Out (the router answers ARP and NDP for it).
	Address netip.Addr
}

// StaticNAT is a static mapping ([[nat]]): a 1:1 mapping of Public to Private (ports
// zero, Protocol empty: inbound connections to Public go to Private, Private's own
// connections leaving by Out get Public as their source), or a port forward (ports and
// Protocol set: inbound connections to Public's port go to Private's).
type StaticNAT struct {
	Public, Private netip.AddrPort
	Protocol        Protocol // "" for a 1:1 mapping
	// Out is the port Public lives on: as configured, or else the port whose connected
	// network holds it.
	Out string
}

type rawAutoNAT struct {
	From    value `toml:"from"`
	Out     value `toml:"out"`
	Address value `toml:"address"`
}

type rawStaticNAT struct {
	Public   value `toml:"public"`
	Private  value `toml:"private"`
	Protocol value `toml:"protocol"`
	Out      value `toml:"out"`
}

// autoNATs decodes the [[autonat]] sections.
func (d *decoder) autoNATs(p toml.Primitive, ports []Port, rules []Rule) []AutoNAT {
	is := d.is
	var raws []rawAutoNAT
	if !d.tables(p, "autonat", &raws) {
		return nil
	}
	var out []AutoNAT
	for i, r := range raws {
		path := indexPath("autonat", i)
		label := fmt.Sprintf("autonat #%d", i+1)
		a := AutoNAT{}
		ok := true
		var port *Port
		if s, good := is.str(r.Out, path+".out", label+": out"); good {
			if port = findPort(ports, s); port == nil {
				is.at(path+".out", "%s: unknown port %q (ports: %s)", label, s, portNames(ports))
				ok = false
			}
			a.Out = s
			label = fmt.Sprintf("autonat through %q", s)
		} else {
			if !r.Out.set {
				is.at(path, "%s needs out = the outside port's name", label)
			}
			ok = false
		}
		list, paths := is.strList(r.From, path+".from", label+": from")
		if !r.From.set {
			is.at(path, "%s needs from = the inside networks whose connections it masquerades", label)
			ok = false
		}
		for j, s := range list {
			pfx, err := parseNATPrefix(s)
			if err != nil {
				is.at(paths[j], "%s: %v", label, err)
				ok = false
				continue
			}
			if port != nil {
				for _, n := range port.Connected() {
					if n.Overlaps(pfx) {
						is.at(paths[j], "%s: from %s overlaps %s, a network of the outside port %q itself", label, pfx, n, port.Name)
						ok = false
					}
				}
			}
			a.From = append(a.From, pfx)
		}
		if s, good := is.str(r.Address, path+".address", label+": address"); good {
			addr, err := netip.ParseAddr(s)
			switch {
			case err != nil || addr.Zone() != "" || addr.Is4In6():
				is.at(path+".address", "%s: address %q is not an IP address (without a prefix length)", label, s)
				ok = false
			case addr.IsUnspecified() || addr.IsMulticast() || addr.IsLoopback() || addr.IsLinkLocalUnicast():
				is.at(path+".address", "%s: address %s cannot be a source (unspecified, multicast, loopback or link-local)", label, addr)
				ok = false
			default:
				for _, f := range a.From {
					if f.Addr().Is4() != addr.Is4() {
						is.at(path+".address", "%s: address %s is %s but from %s is %s", label, addr, family(addr), f, family(f.Addr()))
						ok = false
					}
				}
				if port != nil && ownerOf(ports, addr) != port.Name && !onNetworkOf(port, addr) {
					is.at(path+".address", "%s: address %s is on no network of port %q (the router answers ARP and NDP for it there)", label, addr, port.Name)
					ok = false
				}
				if r := ruleUsing(rules, addr); r != "" {
					is.at(path+".address", "%s: address %s is %s", label, addr, r)
					ok = false
				}
			}
			a.Address = addr
		} else if r.Address.set {
			ok = false
		}
		for _, o := range out {
			if o.Out != a.Out {
				continue
			}
			for _, x := range o.From {
				for _, y := range a.From {
					if x.Overlaps(y) {
						is.at(path+".from", "%s: from %s overlaps %s of an earlier autonat through the same port", label, y, x)
						ok = false
					}
				}
			}
		}
		if ok {
			out = append(out, a)
		}
	}
	return out
}

// staticNATs decodes the [[nat]] sections.
func (d *decoder) staticNATs(p toml.Primitive, ports []Port, rules []Rule, auto []AutoNAT) []StaticNAT {
	is := d.is
	var raws []rawStaticNAT
	if !d.tables(p, "nat", &raws) {
		return nil
	}
	var out []StaticNAT
	type key struct {
		addr  netip.Addr
		proto Protocol
		port  uint16
	}
	publics := map[key]string{}         // → path of its public key
	oneToOne := map[netip.Addr]string{} // public address of a 1:1 mapping → path
	privates := map[netip.Addr]string{} // private address of a 1:1 mapping → path
	forwarded := map[netip.Addr]string{}
	for i, r := range raws {
		path := indexPath("nat", i)
		label := fmt.Sprintf("nat #%d", i+1)
		var s StaticNAT
		ok := true
		pubOK, privOK := false, false
		if v, good := is.str(r.Public, path+".public", label+": public"); good {
			ap, err := parseNATEndpoint(v, "public")
			if err != nil {
				is.at(path+".public", "%s: %v", label, err)
				ok = false
			} else if o := ownerOf(ports, ap.Addr()); o != "" {
				is.at(path+".public", "%s: public %s is the router's own address on port %q", label, ap.Addr(), o)
				ok = false
			} else if u := ruleUsing(rules, ap.Addr()); u != "" {
				is.at(path+".public", "%s: public %s is %s", label, ap.Addr(), u)
				ok = false
			} else {
				pubOK = true
				for _, a := range auto {
					if a.Address == ap.Addr() {
						is.at(path+".public", "%s: public %s is the address of the autonat through %q", label, ap.Addr(), a.Out)
						ok, pubOK = false, false
					}
				}
			}
			s.Public = ap
			label = "nat " + v
		} else {
			if !r.Public.set {
				is.at(path, "%s needs public = the public address (or address:port)", label)
			}
			ok = false
		}
		if v, good := is.str(r.Private, path+".private", label+": private"); good {
			ap, err := parseNATEndpoint(v, "private")
			switch {
			case err != nil:
				is.at(path+".private", "%s: %v", label, err)
				ok = false
			case ownerOf(ports, ap.Addr()) != "":
				is.at(path+".private", "%s: private %s is the router's own address", label, ap.Addr())
				ok = false
			case pubOK && ap.Addr().Is4() != s.Public.Addr().Is4():
				is.at(path+".private", "%s: private %s is %s but public %s is %s", label, ap.Addr(), family(ap.Addr()), s.Public.Addr(), family(s.Public.Addr()))
				ok = false
			case pubOK && (ap.Port() == 0) != (s.Public.Port() == 0):
				is.at(path+".private", "%s: give a port on both public and private (a port forward) or on neither (a 1:1 mapping)", label)
				ok = false
			default:
				privOK = true
			}
			s.Private = ap
		} else {
			if !r.Private.set {
				is.at(path, "%s needs private = the private address (or address:port)", label)
			}
			ok = false
		}
		if v, good := is.str(r.Protocol, path+".protocol", label+": protocol"); good {
			switch Protocol(strings.ToLower(v)) {
			case TCP, UDP:
				s.Protocol = Protocol(strings.ToLower(v))
				if privOK && s.Public.Port() == 0 {
					is.at(path+".protocol", "%s: protocol belongs to a port forward; a 1:1 mapping (no ports) translates TCP, UDP and ICMP echo", label)
					ok = false
				}
			default:
				is.at(path+".protocol", "%s: protocol %q: want tcp or udp", label, v)
				ok = false
			}
		} else if r.Protocol.set {
			ok = false
		} else if privOK && s.Public.Port() != 0 {
			is.at(path, "%s: a port forward needs protocol = \"tcp\" or \"udp\"", label)
			ok = false
		}
		if v, good := is.str(r.Out, path+".out", label+": out"); good {
			if findPort(ports, v) == nil {
				is.at(path+".out", "%s: unknown port %q (ports: %s)", label, v, portNames(ports))
				ok = false
			}
			s.Out = v
		} else if r.Out.set {
			ok = false
		} else if pubOK {
			for i := range ports {
				if onNetworkOf(&ports[i], s.Public.Addr()) {
					s.Out = ports[i].Name
				}
			}
			if s.Out == "" {
				is.at(path+".public", "%s: public %s is on no port's network: give out = the port it is reached through", label, s.Public.Addr())
				ok = false
			}
		}
		if pubOK && privOK {
			k := key{s.Public.Addr(), s.Protocol, s.Public.Port()}
			pp := path + ".public"
			if first, dup := publics[k]; dup {
				is.at(pp, "%s: mapped twice (first at line %d)", label, is.ix.line(first))
				ok = false
			} else if s.Protocol == "" {
				if first, dup := forwarded[s.Public.Addr()]; dup {
					is.at(pp, "%s: %s has port forwards (line %d): a 1:1 mapping would take their ports", label, s.Public.Addr(), is.ix.line(first))
					ok = false
				}
				if first, dup := privates[s.Private.Addr()]; dup {
					is.at(path+".private", "%s: %s is the private address of another 1:1 mapping (line %d)", label, s.Private.Addr(), is.ix.line(first))
					ok = false
				}
			} else if first, dup := oneToOne[s.Public.Addr()]; dup {
				is.at(pp, "%s: %s has a 1:1 mapping (line %d) that takes every port", label, s.Public.Addr(), is.ix.line(first))
				ok = false
			}
			if ok {
				publics[k] = pp
				if s.Protocol == "" {
					oneToOne[s.Public.Addr()] = pp
					privates[s.Private.Addr()] = path + ".private"
				} else if _, seen := forwarded[s.Public.Addr()]; !seen {
					forwarded[s.Public.Addr()] = pp
				}
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// parseNATPrefix parses an inside network: a prefix without host bits.
func parseNATPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("from %q is not a prefix (like 203.0.113.0/24)", s)
	}
	if p.Addr().Is4In6() {
		return p, fmt.Errorf("from %q is an IPv4-mapped IPv6 prefix: write the IPv4 prefix", s)
	}
	if p != p.Masked() {
		return p, fmt.Errorf("from %q has host bits set: did you mean %q?", s, p.Masked().String())
	}
	return p, nil
}

// parseNATEndpoint parses a mapping's address, "192.0.2.1", "192.0.2.1:22",
// "2001:db8::1" or "[2001:db8::1]:22".
func parseNATEndpoint(s, what string) (netip.AddrPort, error) {
	var ap netip.AddrPort
	if a, err := netip.ParseAddr(s); err == nil {
		ap = netip.AddrPortFrom(a, 0)
	} else if x, err := netip.ParseAddrPort(s); err == nil {
		if x.Port() == 0 {
			return x, fmt.Errorf("%s %q: port 0 cannot be mapped", what, s)
		}
		ap = x
	} else {
		return ap, fmt.Errorf("%s %q is neither an address nor address:port (IPv6: [address]:port)", what, s)
	}
	a := ap.Addr()
	switch {
	case a.Zone() != "":
		return ap, fmt.Errorf("%s %q must not have a zone", what, s)
	case a.Is4In6():
		return ap, fmt.Errorf("%s %q is an IPv4-mapped IPv6 address: write the IPv4 address", what, s)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast():
		return ap, fmt.Errorf("%s %q cannot be mapped (unspecified, multicast, loopback or link-local)", what, s)
	}
	return ap, nil
}

// onNetworkOf reports whether a lies on a connected network of the port.
func onNetworkOf(p *Port, a netip.Addr) bool {
	for _, n := range p.Connected() {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// ruleUsing names the rule whose VIP or proxy source a is, or "".
func ruleUsing(rules []Rule, a netip.Addr) string {
	for _, r := range rules {
		if r.VIP == a {
			return "the VIP of rule " + strconv.Quote(r.Name)
		}
		for _, p := range r.ProxySource {
			if p == a {
				return "a proxy source of rule " + strconv.Quote(r.Name)
			}
		}
	}
	return ""
}
