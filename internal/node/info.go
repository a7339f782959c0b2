package node

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"ulb/router"
	"ulb/router/control"
	"ulb/router/fib"
	"ulb/router/port"
)

// portInfos describes the router's ports for show-port.
func portInfos(r *router.Router) []control.PortInfo {
	ports := r.Ports()
	out := make([]control.PortInfo, 0, len(ports))
	for _, ps := range ports {
		pi := control.PortInfo{
			Name:         ps.Name,
			Device:       ps.Device,
			Kind:         ps.Kind,
			MAC:          ps.MAC.String(),
			MTU:          ps.MTU,
			Up:           true,
			PortCounters: portCounters(ps.Port),
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
			TxBytes: s.TxBytes, RxDrops: s.RxTruncated + s.RxKernelDrops, TxErrors: s.TxErrors}
	case *port.TUN:
		s := p.Stats()
		return control.PortCounters{RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxPackets: s.TxPackets,
			TxBytes: s.TxBytes, RxDrops: s.RxDropped, TxErrors: s.TxErrors + s.TxDropped}
	}
	return control.PortCounters{}
}

var kindNames = map[fib.Kind]string{fib.Connected: "connected", fib.Static: "static", fib.Local: "local"}

// routeInfos lists the forwarding table for show-route.
func routeInfos(r *router.Router) []control.RouteInfo {
	ports := r.Ports()
	var out []control.RouteInfo
	for _, nh := range r.FIB().Routes() {
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

// neighInfos lists the neighbour caches of all ports, or of the named one.
func neighInfos(r *router.Router, portName string) []control.NeighInfo {
	var out []control.NeighInfo
	for _, ps := range r.Ports() {
		if ps.Neighbours == nil || (portName != "" && ps.Name != portName) {
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

// hasPort reports whether the router has a port of that name.
func hasPort(r *router.Router, name string) bool {
	return slices.ContainsFunc(r.Ports(), func(ps router.PortStatus) bool { return ps.Name == name })
}

// stats sums the router's counters for show-stats. start is when the router started.
func stats(r *router.Router, start time.Time) control.StatsInfo {
	si := control.StatsInfo{Uptime: int64(time.Since(start)), Drops: map[string]uint64{}, Sync: syncInfo(r)}
	if rs := r.ReassemblyStats(); rs.Fragments != 0 || rs.Timeouts != 0 {
		si.Reassembly = &control.ReassemblyInfo{Fragments: rs.Fragments, Reassembled: rs.Reassembled,
			Timeouts: rs.Timeouts, Overlaps: rs.Overlaps, Duplicates: rs.Duplicates, Discarded: rs.Discarded,
			OverLimit: rs.OverLimit, Malformed: rs.Malformed, Evicted: rs.Evicted, InProgress: rs.InProgress, Bytes: rs.Bytes}
	}
	for _, ps := range r.Ports() {
		c := ps.Counters
		si.Ports = append(si.Ports, control.PortStats{Name: ps.Name, PortCounters: portCounters(ps.Port)})
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
