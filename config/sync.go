package config

import (
	"net/netip"
	"time"

	"github.com/BurntSushi/toml"
)

// Limits and defaults of the [sync] keys.
const (
	DefaultSyncPort    = 8848 // IPVS's sync port
	DefaultSyncRefresh = 60 * time.Second
	MinSyncRefresh     = time.Second
	MaxSyncRefresh     = time.Hour
	MaxSyncPeers       = 16
)

// Sync is connection sync between ulbd nodes: the node that forwards (the master of the
// VRRP instance named, or every node when none is) sends each new flow and the state
// changes of its flows to its peers, and takes theirs into its connection table, so that
// open connections survive a takeover, as with IPVS's sync daemon.
type Sync struct {
	// Enabled is true when the file has a [sync] section.
	Enabled bool
	// Peers are the other nodes' addresses, reached through the router's ports; messages
	// from any other address are dropped.
	Peers []netip.Addr
	// Port is the UDP port messages go to and come from.
	Port uint16
	// VRRP names the VRRP instance whose master sends; empty: always send.
	VRRP string
	// Refresh is how often the sender sends the flows it forwarded again, so that a peer
	// that started late learns them, and their idle copies there do not time out.
	Refresh time.Duration
}

type rawSync struct {
	Peer    value `toml:"peer"`
	Port    value `toml:"port"`
	VRRP    value `toml:"vrrp"`
	Refresh value `toml:"refresh"`
}

func (d *decoder) sync(p toml.Primitive, ports []Port, vrrps []VRRP) Sync {
	s := Sync{Port: DefaultSyncPort, Refresh: DefaultSyncRefresh}
	if !d.md.IsDefined("sync") {
		return Sync{}
	}
	is := d.is
	var raw rawSync
	if err := d.md.PrimitiveDecode(p, &raw); err != nil {
		d.failed["sync"] = true
		is.at("sync", "sync must be a table: write its keys under a [sync] header")
		return Sync{}
	}
	s.Enabled = true
	list, paths := is.strList(raw.Peer, "sync.peer", "sync peer")
	if !raw.Peer.set {
		is.at("sync", "[sync] needs peer: the other nodes' addresses")
	}
	if len(list) > MaxSyncPeers {
		is.at("sync.peer", "sync: %d peers, at most %d", len(list), MaxSyncPeers)
	}
	for i, str := range list {
		a, err := netip.ParseAddr(str)
		switch {
		case err != nil:
			is.at(paths[i], "sync peer %q: not an IP address", str)
		case a.Zone() != "" || !a.IsGlobalUnicast():
			is.at(paths[i], "sync peer %s: want a unicast address of a peer on a connected network", a)
		case ownAddress(ports, a):
			is.at(paths[i], "sync peer %s is one of this router's own addresses", a)
		default:
			for _, o := range s.Peers {
				if o == a {
					is.at(paths[i], "sync peer %s listed twice", a)
				}
			}
			s.Peers = append(s.Peers, a)
		}
	}
	if n, ok := is.integer(raw.Port, "sync.port", "sync port"); ok {
		if n < 1 || n > 65535 {
			is.at("sync.port", "sync port %d out of range 1..65535", n)
		}
		s.Port = uint16(n)
	}
	if name, ok := is.str(raw.VRRP, "sync.vrrp", "sync vrrp"); ok {
		found := false
		for _, v := range vrrps {
			found = found || v.Name == name
		}
		if !found {
			is.at("sync.vrrp", "sync: no [[vrrp]] named %q", name)
		}
		s.VRRP = name
	}
	if dur, ok := is.duration(raw.Refresh, "sync.refresh", "sync refresh", MinSyncRefresh, MaxSyncRefresh); ok {
		s.Refresh = dur
	}
	return s
}

// ownAddress tells whether a is one of the ports' addresses.
func ownAddress(ports []Port, a netip.Addr) bool {
	for _, p := range ports {
		for _, pa := range p.Addresses {
			if pa.Addr() == a {
				return true
			}
		}
	}
	return false
}
