package router

import (
	"net/netip"

	"ulb/arpd"
	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
)

// PortStatus is what the router knows of one of its ports, for the control plane's
// listings.
type PortStatus struct {
	Name, Device, Kind string
	MAC                header.MAC
	MTU                int            // the router's egress MTU on the port
	Addresses          []netip.Prefix // its own addresses, with the IPv6 link-local
	Port               port.Port
	Counters           *PortCounters    // the router's counters of frames received on it
	Neighbours         *arpd.Neighbours // nil on a layer-3 port
	// DirectedBroadcast and Redirects are the port's PortConfig options.
	DirectedBroadcast, Redirects bool
	// Removed marks the slot of a port a reload removed (SetPorts): it keeps its index
	// and counters, and has no addresses or routes any more.
	Removed bool
}

// Ports describes the router's ports by index (a NextHop's Port): those it started
// with in configuration order (the host port last), then those added by SetPorts;
// removed ones are marked Removed.
func (r *Router) Ports() []PortStatus {
	ports := r.ports()
	out := make([]PortStatus, len(ports))
	for i, rp := range ports {
		st := rp.state()
		out[i] = PortStatus{Name: rp.cfg.Name, Device: rp.cfg.Device, Kind: rp.cfg.Kind, MAC: rp.mac, MTU: st.mtu,
			Addresses: st.addrs, Port: rp.p, Counters: &rp.counters, Neighbours: rp.neigh,
			DirectedBroadcast: st.directedBroadcast, Redirects: st.redirects, Removed: st.removed}
	}
	return out
}

// FIB is the routing table in use; a NextHop's Port indexes Ports.
func (r *Router) FIB() *fib.Table { return r.fib.Load() }
