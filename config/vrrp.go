package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Limits and defaults of the [[vrrp]] keys.
const (
	DefaultVRRPVersion  = 3
	DefaultVRRPPriority = 100
	// OwnerPriority is the priority of the address owner: the router whose own
	// addresses the virtual addresses are (RFC 9568 §1.6). It becomes master at once.
	OwnerPriority       = 255
	DefaultVRRPInterval = time.Second
	// v3 carries Max Adver Interval in centiseconds in 12 bits: 10ms..40.95s.
	MinVRRPv3Interval = 10 * time.Millisecond
	MaxVRRPv3Interval = 4095 * 10 * time.Millisecond
	// v2 carries Adver Int in whole seconds in 8 bits: 1s..255s.
	MinVRRPv2Interval = time.Second
	MaxVRRPv2Interval = 255 * time.Second
	// MaxPreemptDelay is keepalived's bound on preempt_delay.
	MaxPreemptDelay = 1000 * time.Second
	// DefaultGARPCount is keepalived's vrrp_garp_master_repeat default: gratuitous ARPs
	// (unsolicited NAs) sent for each address on becoming master.
	DefaultGARPCount = 5
	MaxGARPCount     = 255
	// garp_refresh is 0 (keepalived's vrrp_garp_master_refresh default: no refresh) or
	// MinGARPRefresh..MaxGARPRefresh.
	MinGARPRefresh = time.Second
	MaxGARPRefresh = 24 * time.Hour
	// MaxTrackWeight bounds a tracking weight: a priority decrease that keeps a priority
	// of 1..254 meaningful (keepalived's weights are -254..254).
	MaxTrackWeight = 254
	// track_ping defaults and bounds.
	DefaultPingInterval = time.Second
	MinPingInterval     = 10 * time.Millisecond
	MaxPingInterval     = time.Hour
	DefaultPingCount    = 3
	MaxPingCount        = 100
	// An advert carries at most 255 addresses (an 8-bit count); an IPv6 advert must fit
	// the IPv6 minimum MTU of 1280 bytes (40 + 8 + 16n).
	MaxVRRPAddresses4 = 255
	MaxVRRPAddresses6 = 77
)

// VRRPChecksum chooses how a VRRPv3 IPv4 advert's checksum is computed when sent
// (receivers accept both).
type VRRPChecksum string

// Checksum modes.
const (
	// ChecksumDefault (checksum not configured) leaves the choice to the vrrp package,
	// whose default is what keepalived sends.
	ChecksumDefault VRRPChecksum = ""
	// ChecksumPseudoHeader includes the IPv4 pseudo-header, as RFC 9568 §5.2.8 says.
	ChecksumPseudoHeader VRRPChecksum = "pseudo-header"
	// ChecksumNoPseudoHeader covers the VRRP message only, like VRRPv2 and many RFC
	// 5798 implementations.
	ChecksumNoPseudoHeader VRRPChecksum = "no-pseudo-header"
)

// VRRP is one virtual router ([[vrrp]]): the node backs up Addresses on Port with the
// peers that share VRID.
type VRRP struct {
	// Name ties the instance to logs, ulbadm show-router and events.
	Name string
	// Port is the port the instance runs on (kind afpacket: VRRP needs Ethernet).
	Port string
	// AdvertPorts are extra links the instance sends its adverts on and hears its peers
	// on (VRRP over redundant links: e.g. a crossover cable between the two nodes, so
	// that a backup that cannot hear the master on Port does not take over while another
	// link still carries its adverts). Each is another afpacket port; the adverts there
	// come from its own address (IPv4: its first one; IPv6: its link-local one) and
	// MAC. They carry adverts only: no virtual MAC, no virtual address there.
	AdvertPorts []string
	VRID        uint8
	// Version is 3 (RFC 9568, the default) or 2 (RFC 3768, IPv4 only).
	Version int
	// Priority is 1..255; OwnerPriority means the addresses are the port's own.
	Priority int
	// Interval is the advertisement interval: a multiple of 10ms in 10ms..40.95s for v3,
	// whole seconds in 1s..255s for v2.
	Interval time.Duration
	// Preempt lets a higher-priority backup take over from a lower-priority master
	// (default true). PreemptDelay, as in keepalived, is how long after ulbd starts
	// (the instance leaves Initialize) the instance waits before preempting.
	Preempt      bool
	PreemptDelay time.Duration
	// Accept is RFC 9568's Accept_Mode: as master, accept packets addressed to the
	// virtual addresses (beyond those the rules balance) although it does not own them.
	Accept bool
	// Addresses are the virtual addresses, all of one family, each with the prefix
	// length of its network: as configured, or for a plain address the prefix of the
	// port's connected network that holds it (fe80::/64 for a link-local address), else
	// the full length (/32, /128). Addr() is the virtual address. For IPv6, RFC 9568
	// wants the first to be link-local; keepalived does not insist, nor does ulb.
	Addresses []netip.Prefix
	// TrackPorts are ports whose link state the instance follows (keepalived's
	// track_interface). The instance's own port is always followed: its link down is FAULT.
	TrackPorts []TrackPort
	// TrackPings are addresses (gateways) the router pings from its own address.
	TrackPings []TrackPing
	// TrackGroups are server groups whose health the instance follows.
	TrackGroups []TrackGroup
	// SyncGroup names the group of instances that change state together; "" for none.
	SyncGroup string
	// Checksum is the checksum mode of sent v3 IPv4 adverts (ChecksumDefault unless
	// configured; configurable only for v3 IPv4).
	Checksum VRRPChecksum
	// GARPCount is how many gratuitous ARPs (unsolicited NAs) are sent for each address
	// on becoming master (DefaultGARPCount unless configured; 0 sends none).
	GARPCount int
	// GARPRefresh, when not 0, repeats them every GARPRefresh while master.
	GARPRefresh time.Duration
	// Enabled is false for an instance that is configured but does not run (vrrpadm
	// disable-router): it sends and answers nothing and owns none of its addresses;
	// true when not configured.
	Enabled bool
}

// TrackPort is one tracked port: link down puts the instance in FAULT, or with a
// Weight lowers its priority by Weight.
type TrackPort struct {
	Port   string
	Weight int // 0: FAULT; 1..MaxTrackWeight: priority decrease
}

// TrackGroup is one tracked server group: while it is failing (every one of its servers
// disabled: until health checks exist, issue 5, that is the servers' administrative
// state) the instance is in FAULT, or with a Weight its priority is lower by Weight.
type TrackGroup struct {
	ServerGroup string
	Weight      int // 0: FAULT; 1..MaxTrackWeight: priority decrease
}

// TrackPing is one pinged address: Count consecutive pings without a reply within
// Interval put the instance in FAULT, or with a Weight lower its priority by Weight,
// until a reply comes again.
type TrackPing struct {
	Address  netip.Addr
	Interval time.Duration
	Count    int
	Weight   int // 0: FAULT; 1..MaxTrackWeight: priority decrease
}

// IPv6 reports whether the instance's addresses are IPv6 (its adverts go to ff02::12
// from the port's link-local address; else to 224.0.0.18 from its first IPv4 address).
func (v *VRRP) IPv6() bool { return len(v.Addresses) > 0 && v.Addresses[0].Addr().Is6() }

// Owner reports whether the instance is the address owner (priority 255).
func (v *VRRP) Owner() bool { return v.Priority == OwnerPriority }

// VRRPInstance returns the [[vrrp]] instance with the given name, or nil.
func (c *Config) VRRPInstance(name string) *VRRP {
	for i := range c.VRRP {
		if c.VRRP[i].Name == name {
			return &c.VRRP[i]
		}
	}
	return nil
}

type rawVRRP struct {
	Name         value `toml:"name"`
	Port         value `toml:"port"`
	AdvertPorts  value `toml:"advert_ports"`
	VRID         value `toml:"vrid"`
	Version      value `toml:"version"`
	Priority     value `toml:"priority"`
	Interval     value `toml:"interval"`
	Preempt      value `toml:"preempt"`
	PreemptDelay value `toml:"preempt_delay"`
	Accept       value `toml:"accept"`
	Address      value `toml:"address"`
	TrackPort    value `toml:"track_port"`
	TrackPing    value `toml:"track_ping"`
	TrackGroup   value `toml:"track_group"`
	SyncGroup    value `toml:"sync_group"`
	Checksum     value `toml:"checksum"`
	GARPCount    value `toml:"garp_count"`
	GARPRefresh  value `toml:"garp_refresh"`
	Enabled      value `toml:"enabled"`
}

// Keys of the inline tables of track_port, track_ping and track_group.
var (
	trackPortKeys  = []string{"port", "weight"}
	trackPingKeys  = []string{"address", "interval", "count", "weight"}
	trackGroupKeys = []string{"servergroup", "weight"}
)

// vaddrKey identifies a virtual address: a link-local one within its port.
type vaddrKey struct {
	addr netip.Addr
	port string
}

// vrrpKey identifies a virtual router on a link: peers share a VRID per family.
type vrrpKey struct {
	port string
	vrid uint8
	ipv6 bool
}

func (d *decoder) vrrps(p toml.Primitive, ports []Port, routes []Route, groups []ServerGroup, gpos map[string]groupPos) []VRRP {
	is := d.is
	var raws []rawVRRP
	if !d.tables(p, "vrrp", &raws) {
		return nil
	}
	d.owned = append(d.owned, "vrrp.track_port", "vrrp.track_ping", "vrrp.track_group")
	names := make(map[string]string)    // name → path of its name key
	keys := make(map[vrrpKey]string)    // → path of the vrid key
	vaddrs := make(map[vaddrKey]string) // virtual address → path of its entry
	servers := make(map[netip.Addr]string)
	for _, g := range groups {
		for a, sp := range gpos[g.Name].servers {
			servers[a] = sp
		}
	}
	var out []VRRP
	var syncPaths []string // of the accepted instances' sync_group keys
	for i, r := range raws {
		path := indexPath("vrrp", i)
		v := VRRP{Version: DefaultVRRPVersion, Priority: DefaultVRRPPriority, Interval: DefaultVRRPInterval,
			Preempt: true, GARPCount: DefaultGARPCount, Enabled: true}
		ok := true
		label := fmt.Sprintf("vrrp #%d", i+1)

		if s, good := is.str(r.Name, path+".name", label+": name"); good {
			kp := path + ".name"
			if err := checkName(s); err != nil {
				is.at(kp, "vrrp name %q: %v", s, err)
				ok = false
			} else if first, dup := names[s]; dup {
				is.at(kp, "duplicate vrrp name %q (first defined at line %d)", s, is.ix.line(first))
				ok = false
			} else {
				names[s] = kp
			}
			v.Name = s
			label = fmt.Sprintf("vrrp %q", s)
		} else {
			if !r.Name.set {
				is.at(path, "[[vrrp]] needs a name")
			}
			ok = false
		}

		var port *Port
		if s, good := is.str(r.Port, path+".port", label+": port"); good {
			v.Port = s
			port = findPort(ports, s)
			switch {
			case port == nil:
				is.at(path+".port", "%s: unknown port %q (ports: %s)", label, s, portNames(ports))
				ok = false
			case port.Kind != KindAFPacket:
				is.at(path+".port", "%s: port %q is kind %s: VRRP needs an Ethernet port (kind afpacket)", label, s, port.Kind)
				ok, port = false, nil
			}
		} else {
			if !r.Port.set {
				is.at(path, "%s needs a port", label)
			}
			ok = false
		}

		advertPaths, good := d.advertPorts(r.AdvertPorts, path+".advert_ports", label, &v, ports)
		ok = ok && good

		if n, good := is.integer(r.VRID, path+".vrid", label+": vrid"); good {
			if n < 1 || n > 255 {
				is.at(path+".vrid", "%s: vrid %d out of range 1..255", label, n)
				ok = false
			} else {
				v.VRID = uint8(n)
			}
		} else {
			if !r.VRID.set {
				is.at(path, "%s needs a vrid (1..255, shared with its peers)", label)
			}
			ok = false
		}

		if n, good := is.integer(r.Version, path+".version", label+": version"); good {
			if n != 2 && n != 3 {
				is.at(path+".version", "%s: version %d: want 3 (RFC 9568) or 2 (RFC 3768)", label, n)
				ok = false
			} else {
				v.Version = int(n)
			}
		} else if r.Version.set {
			ok = false
		}

		if n, good := is.integer(r.Priority, path+".priority", label+": priority"); good {
			if n < 1 || n > OwnerPriority {
				is.at(path+".priority", "%s: priority %d out of range 1..255 (255: the address owner)", label, n)
				ok = false
			} else {
				v.Priority = int(n)
			}
		} else if r.Priority.set {
			ok = false
		}

		if !d.vrrpInterval(r.Interval, path+".interval", label, &v) {
			ok = false
		}

		if b, good := is.boolean(r.Preempt, path+".preempt", label+": preempt"); good {
			v.Preempt = b
		} else if r.Preempt.set {
			ok = false
		}
		if b, good := is.boolean(r.Enabled, path+".enabled", label+": enabled"); good {
			v.Enabled = b
		} else if r.Enabled.set {
			ok = false
		}
		if dur, good := is.duration(r.PreemptDelay, path+".preempt_delay", label+": preempt_delay", 0, MaxPreemptDelay); good {
			if !v.Preempt && dur > 0 {
				is.at(path+".preempt_delay", "%s: preempt_delay has no effect with preempt = false", label)
				ok = false
			}
			v.PreemptDelay = dur
		} else if r.PreemptDelay.set {
			ok = false
		}
		if b, good := is.boolean(r.Accept, path+".accept", label+": accept"); good {
			v.Accept = b
		} else if r.Accept.set {
			ok = false
		}

		addrPaths, good := d.vrrpAddresses(r.Address, path+".address", label, &v, port, ports, routes, servers)
		ok = ok && good
		for j, a := range v.Addresses {
			k := vaddrKey{addr: a.Addr()}
			if a.Addr().IsLinkLocalUnicast() {
				k.port = v.Port
			}
			if first, dup := vaddrs[k]; dup {
				is.at(addrPaths[j], "%s: address %s is also a virtual address at line %d", label, a.Addr(), is.ix.line(first))
				ok = false
			} else {
				vaddrs[k] = addrPaths[j]
			}
		}
		if port != nil && len(v.Addresses) > 0 && !v.IPv6() && !hasIPv4(port.Addresses) {
			is.at(path+".port", "%s: port %q has no IPv4 address to send adverts from", label, port.Name)
			ok = false
		}

		if v.VRID != 0 && port != nil && len(v.Addresses) > 0 {
			// One instance per VRID and family on a port, whether the port is an
			// instance's own or one of its advert ports: the port's adverts of a VRID
			// go to one instance.
			on := append([]string{port.Name}, v.AdvertPorts...)
			at := append([]string{path + ".vrid"}, advertPaths...)
			for j, pn := range on {
				k := vrrpKey{port: pn, vrid: v.VRID, ipv6: v.IPv6()}
				if first, dup := keys[k]; dup {
					is.at(at[j], "%s: vrid %d is already used for %s on port %q at line %d",
						label, v.VRID, family(v.Addresses[0].Addr()), pn, is.ix.line(first))
					ok = false
				} else {
					keys[k] = at[j]
				}
			}
			if !v.IPv6() {
				for j, pn := range v.AdvertPorts {
					if ap := findPort(ports, pn); ap != nil && !hasIPv4(ap.Addresses) {
						is.at(advertPaths[j], "%s: advert port %q has no IPv4 address to send adverts from", label, pn)
						ok = false
					}
				}
			}
		}

		if s, good := is.str(r.Checksum, path+".checksum", label+": checksum"); good {
			switch c := VRRPChecksum(s); {
			case c != ChecksumPseudoHeader && c != ChecksumNoPseudoHeader:
				is.at(path+".checksum", "%s: unknown checksum %q: want %q or %q", label, s, ChecksumPseudoHeader, ChecksumNoPseudoHeader)
				ok = false
			case v.Version != 3 || v.IPv6():
				is.at(path+".checksum", "%s: checksum applies only to VRRPv3 over IPv4 (v2 never includes a pseudo-header, IPv6 always does)", label)
				ok = false
			default:
				v.Checksum = c
			}
		} else if r.Checksum.set {
			ok = false
		}

		if n, good := is.integer(r.GARPCount, path+".garp_count", label+": garp_count"); good {
			if n < 0 || n > MaxGARPCount {
				is.at(path+".garp_count", "%s: garp_count %d out of range 0..%d", label, n, MaxGARPCount)
				ok = false
			} else {
				v.GARPCount = int(n)
			}
		} else if r.GARPCount.set {
			ok = false
		}
		if dur, good := is.duration(r.GARPRefresh, path+".garp_refresh", label+": garp_refresh", 0, MaxGARPRefresh); good {
			if dur != 0 && dur < MinGARPRefresh {
				is.at(path+".garp_refresh", "%s: garp_refresh %s: want 0s (no refresh) or %s..%s",
					label, dur, fmtDuration(MinGARPRefresh), fmtDuration(MaxGARPRefresh))
				ok = false
			}
			v.GARPRefresh = dur
		} else if r.GARPRefresh.set {
			ok = false
		}

		ok = d.trackPorts(r.TrackPort, path+".track_port", label, &v, ports) && ok
		ok = d.trackPings(r.TrackPing, path+".track_ping", label, &v, ports, routes) && ok
		ok = d.trackGroups(r.TrackGroup, path+".track_group", label, &v, groups) && ok

		if s, good := is.str(r.SyncGroup, path+".sync_group", label+": sync_group"); good {
			if err := checkName(s); err != nil {
				is.at(path+".sync_group", "%s: sync_group name %q: %v", label, s, err)
				ok = false
			}
			v.SyncGroup = s
		} else if r.SyncGroup.set {
			ok = false
		}

		if ok {
			out = append(out, v)
			syncPaths = append(syncPaths, path+".sync_group")
		}
	}
	// keepalived warns about a sync group of one instance: it changes nothing.
	counts := make(map[string]int)
	for _, v := range out {
		counts[v.SyncGroup]++
	}
	for j, v := range out {
		if v.SyncGroup != "" && counts[v.SyncGroup] == 1 {
			is.warnAt(syncPaths[j], "vrrp %q: sync_group %q has no other member: it has no effect", v.Name, v.SyncGroup)
		}
	}
	return out
}

// advertPorts decodes advert_ports: a port name or a list of them, each another
// afpacket port than the instance's own, listed once. It returns the path of each
// accepted entry.
func (d *decoder) advertPorts(raw value, path, label string, v *VRRP, ports []Port) ([]string, bool) {
	is := d.is
	list, paths := is.strList(raw, path, label+": advert_ports")
	ok := !raw.set || len(list) > 0 || isEmptyList(raw)
	var accepted []string
	for j, name := range list {
		p := findPort(ports, name)
		switch {
		case p == nil:
			is.at(paths[j], "%s: advert_ports: unknown port %q (ports: %s)", label, name, portNames(ports))
		case p.Kind != KindAFPacket:
			is.at(paths[j], "%s: advert_ports: port %q is kind %s: VRRP adverts need an Ethernet port (kind afpacket)", label, name, p.Kind)
		case name == v.Port:
			is.at(paths[j], "%s: advert_ports: %q is the instance's own port (advert_ports lists the extra links)", label, name)
		case slices.Contains(v.AdvertPorts, name):
			is.at(paths[j], "%s: advert_ports lists port %q twice", label, name)
		default:
			v.AdvertPorts = append(v.AdvertPorts, name)
			accepted = append(accepted, paths[j])
			continue
		}
		ok = false
	}
	if len(list) != len(v.AdvertPorts) {
		ok = false
	}
	return accepted, ok
}

// isEmptyList reports whether a value is an empty TOML array.
func isEmptyList(v value) bool {
	x, isList := v.v.([]any)
	return isList && len(x) == 0
}

// vrrpInterval checks interval against the version's range and resolution.
func (d *decoder) vrrpInterval(raw value, path, label string, v *VRRP) bool {
	if !raw.set {
		return true
	}
	min, max := MinVRRPv3Interval, MaxVRRPv3Interval
	if v.Version == 2 {
		min, max = MinVRRPv2Interval, MaxVRRPv2Interval
	}
	what := fmt.Sprintf("%s: interval (VRRPv%d)", label, v.Version)
	dur, ok := d.is.duration(raw, path, what, min, max)
	if !ok {
		return false
	}
	switch {
	case v.Version == 2 && dur%time.Second != 0:
		d.is.at(path, "%s: interval %s: VRRPv2 counts whole seconds", label, dur)
		return false
	case dur%(10*time.Millisecond) != 0:
		d.is.at(path, "%s: interval %s: VRRPv3 counts centiseconds (10ms steps)", label, dur)
		return false
	}
	v.Interval = dur
	return true
}

// vrrpAddresses decodes the virtual addresses and returns the path of each one kept.
func (d *decoder) vrrpAddresses(raw value, path, label string, v *VRRP, port *Port, ports []Port, routes []Route,
	servers map[netip.Addr]string) ([]string, bool) {
	is := d.is
	if !raw.set {
		is.at(parentPath(path), "%s needs address: the virtual addresses, like [\"198.51.100.100/24\"]", label)
		return nil, false
	}
	list, paths := is.strList(raw, path, label+": address")
	want := 1
	if arr, isList := raw.v.([]any); isList {
		want = len(arr)
		if want == 0 {
			is.at(path, "%s: address is empty; a virtual router needs at least one address", label)
		}
	}
	ok := want > 0 && len(list) == want
	var kept []string
	for j, s := range list {
		a, err := parseVirtualAddress(s, port)
		if err != nil {
			is.at(paths[j], "%s: %v", label, err)
			ok = false
			continue
		}
		addr := a.Addr()
		if len(v.Addresses) > 0 && addr.Is4() != v.Addresses[0].Addr().Is4() {
			is.at(paths[j], "%s: address %s is %s but %s is %s: an instance has one family (define one per family)",
				label, addr, family(addr), v.Addresses[0].Addr(), family(v.Addresses[0].Addr()))
			ok = false
			continue
		}
		if slicesIndexAddr(v.Addresses, addr) >= 0 {
			is.at(paths[j], "%s: duplicate address %s", label, addr)
			ok = false
			continue
		}
		if sp, bad := servers[addr]; bad {
			is.at(paths[j], "%s: address %s is also a server (line %d)", label, addr, is.ix.line(sp))
			ok = false
			continue
		}
		// A link-local address is one per link: only a route through this port conflicts.
		if k := slices.IndexFunc(routes, func(r Route) bool {
			return r.Via == addr && (!addr.IsLinkLocalUnicast() || r.Port == v.Port)
		}); k >= 0 {
			is.at(paths[j], "%s: address %s is the next hop of the route to %s: the router would route to itself",
				label, addr, routes[k].To)
			ok = false
			continue
		}
		if !d.vrrpAddressPlace(a, paths[j], label, v, port, ports) {
			ok = false
			continue
		}
		v.Addresses = append(v.Addresses, a)
		kept = append(kept, paths[j])
	}
	if len(v.Addresses) > 0 && v.IPv6() && v.Version == 2 {
		is.at(path, "%s: VRRPv2 is IPv4 only: IPv6 addresses need version = 3", label)
		ok = false
	}
	max := MaxVRRPAddresses4
	if v.IPv6() {
		max = MaxVRRPAddresses6
	}
	if len(v.Addresses) > max {
		is.at(path, "%s has %d addresses; an advert carries at most %d %s addresses", label, len(v.Addresses), max, family(v.Addresses[0].Addr()))
		ok = false
	}
	if ok && port != nil && v.Owner() {
		for j, a := range v.Addresses {
			if !a.Addr().IsLinkLocalUnicast() && slicesIndexAddr(port.Addresses, a.Addr()) < 0 {
				is.at(kept[j], "%s: priority 255 is the address owner's, but %s is not an address of port %q", label, a.Addr(), port.Name)
				ok = false
			}
		}
	}
	return kept, ok
}

// vrrpAddressPlace checks a virtual address against the ports: the router's own
// addresses belong only to the owner of its port, an address on another port's network
// is a mistake, and one on no connected network of the port is allowed (keepalived
// allows it: neighbours learn it from gratuitous ARPs, or route to it) with a warning.
func (d *decoder) vrrpAddressPlace(a netip.Prefix, path, label string, v *VRRP, port *Port, ports []Port) bool {
	is := d.is
	addr := a.Addr()
	if owner := ownerOf(ports, addr); owner != "" {
		switch {
		case port != nil && owner != port.Name:
			is.at(path, "%s: address %s is the router's own address on port %q, not on port %q", label, addr, owner, port.Name)
			return false
		case !v.Owner():
			is.at(path, "%s: address %s is the router's own address on port %q: only the address owner (priority 255) may have it",
				label, addr, owner)
			return false
		}
		return true
	}
	if port == nil || addr.IsLinkLocalUnicast() {
		return true
	}
	if on := connectedPort(ports, addr); on != nil && on.Name != port.Name {
		is.at(path, "%s: address %s is on the network of port %q, not of port %q", label, addr, on.Name, port.Name)
		return false
	}
	if connectedPort([]Port{*port}, addr) == nil {
		is.warnAt(path, "%s: address %s is not on a connected network of port %q: neighbours reach it only through a route or gratuitous ARP",
			label, addr, port.Name)
	}
	return true
}

// parseVirtualAddress parses a virtual address: a prefix (198.51.100.100/24) or a plain
// address, which takes the prefix of port's connected network holding it.
func parseVirtualAddress(s string, port *Port) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("address %q is not an address or a prefix (like 198.51.100.100 or 198.51.100.100/24)", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Errorf("address %q is not an address or a prefix (like 198.51.100.100 or 198.51.100.100/24)", s)
		}
		bits := a.BitLen()
		switch {
		case a.Is6() && a.IsLinkLocalUnicast():
			bits = 64
		case port != nil:
			for _, n := range port.Connected() {
				if n.Contains(a) {
					bits = n.Bits()
				}
			}
		}
		p = netip.PrefixFrom(a, bits)
	}
	a := p.Addr()
	switch {
	case a.Zone() != "":
		return p, fmt.Errorf("address %q must not have a zone: the instance's port is the link", s)
	case a.Is4In6():
		return p, fmt.Errorf("address %q is an IPv4-mapped IPv6 address: write the IPv4 address", s)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return p, fmt.Errorf("address %q cannot be a virtual address (unspecified, multicast or loopback)", s)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return p, fmt.Errorf("address %q is the limited broadcast address", s)
	case a.Is4() && a.IsLinkLocalUnicast():
		return p, fmt.Errorf("address %q is an IPv4 link-local address", s)
	}
	// /31, /32, /127 and /128 have no network or broadcast address to avoid.
	if p.Bits() < a.BitLen()-1 {
		switch {
		case a == p.Masked().Addr():
			return p, fmt.Errorf("address %q is the network address of %s", s, p.Masked())
		case a.Is4() && a == lastAddr(p):
			return p, fmt.Errorf("address %q is the broadcast address of %s", s, p.Masked())
		}
	}
	return p, nil
}

// trackPorts decodes track_port: port names, or { port = "x", weight = N } tables.
func (d *decoder) trackPorts(raw value, path, label string, v *VRRP, ports []Port) bool {
	is := d.is
	elems, ok := d.elements(raw, path, label, "track_port", `["inside"] or [{ port = "inside", weight = 20 }]`)
	for j, e := range elems {
		ep := indexPath(path, j)
		var tp TrackPort
		switch x := e.(type) {
		case string:
			tp.Port = x
		case map[string]any:
			is.unknownIn(x, trackPortKeys, ep, "track_port")
			if s, good := is.str(get(x, "port"), ep+".port", label+": track_port port"); good {
				tp.Port = s
			} else {
				if !get(x, "port").set {
					is.at(ep, "%s: track_port entry needs a port", label)
				}
				ok = false
				continue
			}
			w, good := d.weight(get(x, "weight"), ep+".weight", label+": track_port")
			if !good {
				ok = false
				continue
			}
			tp.Weight = w
			for k := range x {
				ok = ok && slices.Contains(trackPortKeys, k)
			}
		default:
			is.at(ep, "%s: track_port[%d] must be a port name or { port = \"NAME\", weight = N }, not %s", label, j, tomlType(e))
			ok = false
			continue
		}
		if findPort(ports, tp.Port) == nil {
			is.at(ep, "%s: track_port: unknown port %q (ports: %s)", label, tp.Port, portNames(ports))
			ok = false
			continue
		}
		if slices.ContainsFunc(v.TrackPorts, func(o TrackPort) bool { return o.Port == tp.Port }) {
			is.at(ep, "%s: track_port lists port %q twice", label, tp.Port)
			ok = false
			continue
		}
		v.TrackPorts = append(v.TrackPorts, tp)
	}
	return ok
}

// trackPings decodes track_ping: { address, interval, count, weight } tables.
func (d *decoder) trackPings(raw value, path, label string, v *VRRP, ports []Port, routes []Route) bool {
	is := d.is
	elems, ok := d.elements(raw, path, label, "track_ping", `[{ address = "198.51.100.1", interval = "1s", count = 3 }]`)
	for j, e := range elems {
		ep := indexPath(path, j)
		x, isTable := e.(map[string]any)
		if !isTable {
			is.at(ep, "%s: track_ping[%d] must be a table like { address = \"198.51.100.1\", interval = \"1s\", count = 3 }, not %s",
				label, j, tomlType(e))
			ok = false
			continue
		}
		is.unknownIn(x, trackPingKeys, ep, "track_ping")
		good := true
		for k := range x {
			good = good && slices.Contains(trackPingKeys, k)
		}
		tp := TrackPing{Interval: DefaultPingInterval, Count: DefaultPingCount}
		if s, g := is.str(get(x, "address"), ep+".address", label+": track_ping address"); g {
			a, err := parsePingAddr(s)
			if err != nil {
				is.at(ep+".address", "%s: track_ping address %q: %v", label, s, err)
				good = false
			} else if err := pingReachable(a, ports, routes); err != nil {
				is.at(ep+".address", "%s: track_ping address %s: %v", label, a, err)
				good = false
			}
			tp.Address = a
		} else {
			if !get(x, "address").set {
				is.at(ep, "%s: track_ping entry needs an address", label)
			}
			good = false
		}
		if dur, g := is.duration(get(x, "interval"), ep+".interval", label+": track_ping interval", MinPingInterval, MaxPingInterval); g {
			tp.Interval = dur
		} else if get(x, "interval").set {
			good = false
		}
		if n, g := is.integer(get(x, "count"), ep+".count", label+": track_ping count"); g {
			if n < 1 || n > MaxPingCount {
				is.at(ep+".count", "%s: track_ping count %d out of range 1..%d", label, n, MaxPingCount)
				good = false
			}
			tp.Count = int(n)
		} else if get(x, "count").set {
			good = false
		}
		w, g := d.weight(get(x, "weight"), ep+".weight", label+": track_ping")
		tp.Weight = w
		good = good && g
		if good && slices.ContainsFunc(v.TrackPings, func(o TrackPing) bool { return o.Address == tp.Address }) {
			is.at(ep, "%s: track_ping lists %s twice", label, tp.Address)
			good = false
		}
		if good {
			v.TrackPings = append(v.TrackPings, tp)
		}
		ok = ok && good
	}
	return ok
}

// parsePingAddr parses a track_ping address: a unicast address without a prefix length.
func parsePingAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil && strings.Contains(s, "/"):
		return a, fmt.Errorf("must be an address without a prefix length")
	case err != nil:
		return a, fmt.Errorf("is not an IP address")
	case a.Zone() != "" || a.Is4In6():
		return a, fmt.Errorf("write a plain IPv4 or IPv6 address")
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return a, fmt.Errorf("cannot be pinged (unspecified, multicast or loopback)")
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return a, fmt.Errorf("is the limited broadcast address")
	}
	return a, nil
}

// pingReachable checks that the router can ping a: not its own address, with an
// address of a's family to send from and a route (connected or static) to a.
func pingReachable(a netip.Addr, ports []Port, routes []Route) error {
	if p := ownerOf(ports, a); p != "" {
		return fmt.Errorf("is the router's own address on port %q", p)
	}
	if a.IsLinkLocalUnicast() {
		return fmt.Errorf("is link-local: give a global address (the router pings from the port the route leaves by)")
	}
	src := false
	for i := range ports {
		if a.Is4() && hasIPv4(ports[i].Addresses) || a.Is6() && hasIPv6(ports[i].Addresses) {
			src = true
		}
	}
	if !src {
		return fmt.Errorf("no port has an %s address to ping from", family(a))
	}
	if connectedPort(ports, a) != nil {
		return nil
	}
	for _, r := range routes {
		if r.To.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("is not on a connected network and no route leads to it")
}

// trackGroups decodes track_group: server group names, or { servergroup = "x",
// weight = N } tables.
func (d *decoder) trackGroups(raw value, path, label string, v *VRRP, groups []ServerGroup) bool {
	is := d.is
	elems, ok := d.elements(raw, path, label, "track_group", `["web"] or [{ servergroup = "web", weight = 20 }]`)
	for j, e := range elems {
		ep := indexPath(path, j)
		var tg TrackGroup
		switch x := e.(type) {
		case string:
			tg.ServerGroup = x
		case map[string]any:
			is.unknownIn(x, trackGroupKeys, ep, "track_group")
			for k := range x {
				ok = ok && slices.Contains(trackGroupKeys, k)
			}
			if s, good := is.str(get(x, "servergroup"), ep+".servergroup", label+": track_group servergroup"); good {
				tg.ServerGroup = s
			} else {
				if !get(x, "servergroup").set {
					is.at(ep, "%s: track_group entry needs a servergroup", label)
				}
				ok = false
				continue
			}
			w, good := d.weight(get(x, "weight"), ep+".weight", label+": track_group")
			if !good {
				ok = false
				continue
			}
			tg.Weight = w
		default:
			is.at(ep, "%s: track_group[%d] must be a servergroup name or { servergroup = \"NAME\", weight = N }, not %s",
				label, j, tomlType(e))
			ok = false
			continue
		}
		name := tg.ServerGroup
		switch {
		case findGroup(groups, name) == nil && (d.failed["servergroup"] || d.groupNames[name]):
			ok = false // the group itself was refused
		case findGroup(groups, name) == nil:
			is.at(ep, "%s: track_group: unknown servergroup %q (servergroups: %s)", label, name, groupNames(groups))
			ok = false
		case slices.ContainsFunc(v.TrackGroups, func(o TrackGroup) bool { return o.ServerGroup == name }):
			is.at(ep, "%s: track_group lists %q twice", label, name)
			ok = false
		default:
			v.TrackGroups = append(v.TrackGroups, tg)
		}
	}
	return ok
}

// elements returns the entries of a list value (a single entry is a list of one).
func (d *decoder) elements(raw value, path, label, key, example string) ([]any, bool) {
	if !raw.set {
		return nil, true
	}
	switch x := raw.v.(type) {
	case []any:
		return x, true
	case []map[string]any:
		out := make([]any, len(x))
		for i, m := range x {
			out[i] = m
		}
		return out, true
	case string, map[string]any:
		return []any{x}, true
	}
	d.is.at(path, "%s: %s must be a list like %s, not %s", label, key, example, tomlType(raw.v))
	return nil, false
}

// weight decodes a tracking weight: absent is 0 (FAULT), else 1..MaxTrackWeight.
func (d *decoder) weight(raw value, path, what string) (int, bool) {
	n, ok := d.is.integer(raw, path, what+" weight")
	if !ok {
		return 0, !raw.set
	}
	switch {
	case n < 0 && n >= -MaxTrackWeight:
		d.is.at(path, "%s weight %d: the weight is the priority decrease, write %d", what, n, -n)
		return 0, false
	case n < 1 || n > MaxTrackWeight:
		d.is.at(path, "%s weight %d out of range 1..%d (leave weight out to go to FAULT instead)", what, n, MaxTrackWeight)
		return 0, false
	}
	return int(n), true
}

func get(m map[string]any, k string) value {
	v, set := m[k]
	return value{v: v, set: set}
}

func hasIPv4(list []netip.Prefix) bool {
	for _, p := range list {
		if p.Addr().Is4() {
			return true
		}
	}
	return false
}
