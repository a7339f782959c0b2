package node

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"ulb/config"
	"ulb/router"
	"ulb/router/control"
	"ulb/router/fib"
	"ulb/router/port"
)

// routerStatus is a running router's Status.
type routerStatus struct {
	r     *router.Router
	start time.Time // when the router started
}

// Ports describes the router's ports for show-port.
func (rs routerStatus) Ports() []control.PortInfo {
	ports := rs.r.Ports()
	out := make([]control.PortInfo, 0, len(ports))
	for _, ps := range ports {
		if ps.Removed {
			continue // a port a reload removed: its slot stays in the router
		}
		pi := control.PortInfo{
			Name:         ps.Name,
			Device:       ps.Device,
			Kind:         ps.Kind,
			MAC:          ps.MAC.String(),
			MTU:          ps.MTU,
			Up:           true,
			PortCounters: portCounters(ps.Port),

			DirectedBroadcast: ps.DirectedBroadcast,
			Redirects:         ps.Redirects,
		}
		if pi.Device == "" {
			pi.Device = ps.Port.Name()
		}
		if ap, ok := ps.Port.(*port.AFPacket); ok {
			pi.KernelRX = "passed"
			if dropped, _ := ap.KernelRXDropped(); dropped {
				pi.KernelRX = "dropped"
			}
		}
		for _, a := range ps.Addresses {
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
			TxBytes: s.TxBytes, RxDrops: s.RxTruncated + s.RxKernelDrops + s.RxNewFlowDrops, TxErrors: s.TxErrors,
			NewFlowRing: p.SplitsNewFlows(), RxNewFlow: s.RxNewFlow, RxShedNewFlow: s.RxNewFlowDrops}
	case *port.TUN:
		s := p.Stats()
		return control.PortCounters{RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxPackets: s.TxPackets,
			TxBytes: s.TxBytes, RxDrops: s.RxDropped, TxErrors: s.TxErrors + s.TxDropped}
	}
	return control.PortCounters{}
}

var kindNames = map[fib.Kind]string{fib.Connected: "connected", fib.Static: "static", fib.Local: "local"}

// Routes lists the forwarding table for show-route.
func (rs routerStatus) Routes() []control.RouteInfo {
	ports := rs.r.Ports()
	var out []control.RouteInfo
	for _, nh := range rs.r.FIB().Routes() {
		ri := control.RouteInfo{
			Prefix: nh.Prefix.String(),
			Port:   ports[nh.Port].Name,
			Kind:   kindNames[nh.Kind],
		}
		if nh.Gateway.IsValid() {
			ri.Via = nh.Gateway.String()
		}
		out = append(out, ri)
	}
	return out
}

// Neighbours lists the neighbour caches of all ports.
func (rs routerStatus) Neighbours() []control.NeighInfo {
	var out []control.NeighInfo
	for _, ps := range rs.r.Ports() {
		if ps.Neighbours == nil || ps.Removed {
			continue
		}
		for _, e := range ps.Neighbours.Entries() {
			ni := control.NeighInfo{
				Port:    ps.Name,
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

// Stats sums the router's counters for show-stats.
func (rs routerStatus) Stats() control.StatsInfo {
	si := control.StatsInfo{Uptime: int64(time.Since(rs.start)), Drops: map[string]uint64{}, Sync: syncInfo(rs.r)}
	if ra := rs.r.ReassemblyStats(); ra.Fragments != 0 || ra.Timeouts != 0 {
		si.Reassembly = &control.ReassemblyInfo{Fragments: ra.Fragments, Reassembled: ra.Reassembled,
			Timeouts: ra.Timeouts, Overlaps: ra.Overlaps, Duplicates: ra.Duplicates, Discarded: ra.Discarded,
			OverLimit: ra.OverLimit, Malformed: ra.Malformed, Evicted: ra.Evicted, InProgress: ra.InProgress, Bytes: ra.Bytes}
	}
	if sp, on := rs.r.SYNProxyStats(); on {
		mode := config.SYNCookiesAlways
		if sp.Auto {
			mode = config.SYNCookiesAuto
		}
		si.SYNProxy = &control.SYNProxyInfo{Mode: mode, Active: sp.Active, Activations: sp.Activations,
			CookiesSent: sp.CookiesSent, CookiesValid: sp.CookiesValid,
			CookiesInvalid: sp.CookiesInvalid, Established: sp.Established, ServerRefused: sp.ServerRefused}
	}
	if n := rs.r.NATStats(); n != (router.NATStats{}) {
		si.NAT = &control.NATInfo{AutoNAT: n.AutoNAT, SNAT: n.SNAT, DNAT: n.DNAT}
	}
	for _, ps := range rs.r.Ports() {
		c := ps.Counters
		if !ps.Removed { // a removed port's counters stay in the totals
			si.Ports = append(si.Ports, control.PortStats{Name: ps.Name, PortCounters: portCounters(ps.Port)})
		}
		si.Forwarded += c.Forwarded.Load()
		si.Local += c.Local.Load()
		si.ICMPSent += c.ICMPErrors.Load()
		for i := range c.Drops {
			if n := c.Drops[i].Load(); n != 0 {
				si.Drops[router.DropReason(i).String()] += n
			}
		}
		if ps.Neighbours != nil {
			st := ps.Neighbours.Stats()
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

// syncInfo returns the counters of connection sync, or nil when it is off.
func syncInfo(r *router.Router) *control.SyncInfo {
	s := r.Sync()
	if s == nil {
		return nil
	}
	peers := make([]string, len(r.SyncPeers()))
	for i, p := range r.SyncPeers() {
		peers[i] = p.String()
	}
	st := s.Stats()
	return &control.SyncInfo{
		Peers: peers, Port: s.Port(), VRRP: r.SyncVRRP(), Sending: st.Sending,
		SentMessages: st.SentMessages, SentRecords: st.SentRecords,
		ReceivedMessages: st.ReceivedMessages, ReceivedRecords: st.ReceivedRecords,
		Adopted: st.Adopted, Refreshed: st.Refreshed, Unknown: st.Unknown,
		Refused: st.Refused, Malformed: st.Malformed, FromStranger: st.FromStranger,
		Overflow: st.Overflow, NoRoute: st.NoRoute, Requests: st.Requests,
	}
}
