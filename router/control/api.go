package control

import "encoding/json"

// Request is one call on the control socket, one JSON object per line.
type Request struct {
	Verb string          `json:"verb"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response answers one Request, one JSON object per line: Data when OK, else Error.
type Response struct {
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error string          `json:"error,omitempty"`
}

// Verbs ulbd answers. Each names its argument type (nil args are allowed where every
// field is optional) and the type of its data.
const (
	VerbShowPort  = "show-port"  // args ShowPortArgs, data []PortInfo
	VerbShowRoute = "show-route" // no args, data []RouteInfo
	VerbShowNeigh = "show-neigh" // args ShowNeighArgs, data []NeighInfo
	VerbShowStats = "show-stats" // args ShowStatsArgs, data StatsInfo
)

// ShowPortArgs selects the ports show-port lists: one by name, or all when Name is empty.
type ShowPortArgs struct {
	Name string `json:"name,omitempty"`
}

// ShowNeighArgs selects the neighbour entries show-neigh lists: those of one port, or all
// when Port is empty.
type ShowNeighArgs struct {
	Port string `json:"port,omitempty"`
}

// ShowStatsArgs selects what show-stats reports. It has no field yet: rule and server
// selectors (ulbadm show-stats -r RULE / -s SERVER) will be added here.
type ShowStatsArgs struct{}

// PortInfo describes one router port.
type PortInfo struct {
	Name      string   `json:"name"`
	Device    string   `json:"device"`
	Kind      string   `json:"kind"` // afpacket | tun
	MAC       string   `json:"mac"`
	MTU       int      `json:"mtu"`
	Addresses []string `json:"addresses"` // the router's own addresses, CIDR notation
	Up        bool     `json:"up"`
	PortCounters
}

// PortCounters are a port's frame counters since ulbd started.
type PortCounters struct {
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxDrops   uint64 `json:"rx_drops"`  // frames the port lost before the router saw them
	TxErrors  uint64 `json:"tx_errors"` // frames the port failed to send
}

// RouteInfo is one route of the forwarding table.
type RouteInfo struct {
	Prefix string `json:"prefix"`
	Via    string `json:"via,omitempty"` // gateway; empty when directly connected
	Port   string `json:"port"`
	Kind   string `json:"kind"` // connected | static | local
}

// NeighInfo is one entry of the neighbour (ARP / NDP) cache.
type NeighInfo struct {
	Port    string `json:"port"`
	Address string `json:"address"`
	MAC     string `json:"mac,omitempty"` // empty while unresolved
	State   string `json:"state"`         // e.g. incomplete | reachable | stale | failed
	Age     int64  `json:"age"`           // seconds since the entry was last confirmed
}

// PortStats are one port's counters in StatsInfo.
type PortStats struct {
	Name string `json:"name"`
	PortCounters
}

// StatsInfo is a snapshot of the router's counters. Counters only grow while ulbd runs;
// a client computes rates from two snapshots and their Uptime difference.
type StatsInfo struct {
	// Uptime is nanoseconds since ulbd started, read from a monotonic clock when the
	// counters were read; only differences between snapshots are meaningful for rates.
	Uptime int64       `json:"uptime_ns"`
	Ports  []PortStats `json:"ports"`
	// Drops counts the packets the router dropped, by reason (e.g. "bad-checksum",
	// "no-route", "ttl-exceeded").
	Drops     map[string]uint64 `json:"drops"`
	Forwarded uint64            `json:"forwarded"` // packets routed to another port
	Local     uint64            `json:"local"`     // packets delivered to the router itself
	ICMPSent  uint64            `json:"icmp_sent"` // ICMP errors and echo replies sent
}

// Totals sums the counters of all ports.
func (s *StatsInfo) Totals() PortCounters {
	var t PortCounters
	for _, p := range s.Ports {
		t.RxPackets += p.RxPackets
		t.RxBytes += p.RxBytes
		t.TxPackets += p.TxPackets
		t.TxBytes += p.TxBytes
		t.RxDrops += p.RxDrops
		t.TxErrors += p.TxErrors
	}
	return t
}

// TotalDrops is the sum of all drop reasons and of the ports' receive drops.
func (s *StatsInfo) TotalDrops() uint64 {
	var n uint64
	for _, v := range s.Drops {
		n += v
	}
	return n + s.Totals().RxDrops
}
