package router

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"ulb/router/control"
	"ulb/router/fib"
	"ulb/router/port"
)

// Ports describes the router's ports for show-port.
func (r *Router) Ports() []control.PortInfo {
	out := make([]control.PortInfo, 0, len(r.ports))
	for _, rp := range r.ports {
		pi := control.PortInfo{
			Name:         rp.cfg.Name,
			Device:       rp.cfg.Device,
			Kind:         rp.cfg.Kind,
			MAC:          rp.mac.String(),
			MTU:          rp.mtu,
			Up:           true,
			PortCounters: portCounters(rp.p),
		}
		if pi.Device == "" {
			pi.Device = rp.p.Name()
		}
		if ap, ok := rp.p.(*port.AFPacket); ok {
			pi.KernelRX = "passed"
			if dropped, _ := ap.KernelRXDropped(); dropped {
				pi.KernelRX = "dropped"
			}
		}
		for _, a := range rp.addrs {
			pi.Addresses = append(pi.Addresses, a.String())
		}
		out = append(out, pi)
	}
	return out
}

// portCounters reads a port's own frame counters.
func portCounters(p port.Port) control.PortCounters {
	switch p := p.(type) {
	case *port.AFPacket:
		s := p.Stats()
		return control.PortCounters{RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxPackets: s.TxPackets,
			TxBytes: s.TxBytes, RxDrops: s.RxTruncated + s.RxKernelDrops, TxErrors: s.TxErrors}
	case *port.TUN:
		s := p.Stats()
		return control.PortCounters{RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxPackets: s.TxPackets,
			TxBytes: s.TxBytes, RxDrops: s.RxDropped, TxErrors: s.TxErrors + s.TxDropped}
	}
	return control.PortCounters{}
}

var kindNames = map[fib.Kind]string{fib.Connected: "connected", fib.Static: "static", fib.Local: "local"}

// Routes lists the forwarding table for show-route.
func (r *Router) Routes() []control.RouteInfo {
	var out []control.RouteInfo
	for _, nh := range r.fib.Load().Routes() {
		ri := control.RouteInfo{
			Prefix: nh.Prefix.String(),
			Port:   r.ports[nh.Port].cfg.Name,
			Kind:   kindNames[nh.Kind],
		}
		if nh.Gateway.IsValid() {
			ri.Via = nh.Gateway.String()
		}
		out = append(out, ri)
	}
	return out
}

// Neighbours lists the neighbour caches of all ports, or of the named one.
func (r *Router) Neighbours(portName string) []control.NeighInfo {
	var out []control.NeighInfo
	for _, rp := range r.ports {
		if rp.neigh == nil || (portName != "" && rp.cfg.Name != portName) {
			continue
		}
		for _, e := range rp.neigh.Entries() {
			ni := control.NeighInfo{
				Port:    rp.cfg.Name,
				Address: e.Address.String(),
				State:   strings.ToLower(e.State),
				Age:     int64(e.Age / time.Second),
			}
			if !e.MAC.IsZero() {
				ni.MAC = e.MAC.String()
			}
			out = append(out, ni)
		}
	}
	slices.SortFunc(out, func(a, b control.NeighInfo) int {
		if c := strings.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		return netip.MustParseAddr(a.Address).Compare(netip.MustParseAddr(b.Address))
	})
	return out
}

// HasPort reports whether a port of that name exists.
func (r *Router) HasPort(name string) bool {
	for _, rp := range r.ports {
		if rp.cfg.Name == name {
			return true
		}
	}
	return false
}

// Stats sums the router's counters for show-stats. start is when the router started.
func (r *Router) Stats(start time.Time) control.StatsInfo {
	si := control.StatsInfo{Uptime: int64(time.Since(start)), Drops: map[string]uint64{}, Sync: r.SyncInfo()}
	for _, rp := range r.ports {
		c := &rp.counters
		si.Ports = append(si.Ports, control.PortStats{Name: rp.cfg.Name, PortCounters: portCounters(rp.p)})
		si.Forwarded += c.Forwarded.Load()
		si.Local += c.Local.Load()
		si.ICMPSent += c.ICMPErrors.Load()
		for i := range c.Drops {
			if n := c.Drops[i].Load(); n != 0 {
				si.Drops[DropReason(i).String()] += n
			}
		}
		if rp.neigh != nil {
			st := rp.neigh.Stats()
			for reason, n := range st.Drops {
				if n != 0 {
					si.Drops["neigh-"+reason] += n
				}
			}
			if st.QueueDrops != 0 {
				si.Drops["neigh-queue-full"] += st.QueueDrops
			}
			if st.Unreachable != 0 {
				si.Drops["neigh-unreachable"] += st.Unreachable
			}
		}
	}
	return si
}
