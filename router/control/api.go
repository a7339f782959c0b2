package control

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

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

	VerbShowRule        = "show-rule"        // args ShowRuleArgs, data []RuleInfo
	VerbShowServerGroup = "show-servergroup" // args ShowServerGroupArgs, data []ServerGroupInfo
	VerbShowServer      = "show-server"      // args ShowServerArgs, data []ServerInfo
	VerbShowConn        = "show-conn"        // args ShowConnArgs, data ConnList
	VerbShowPersist     = "show-persist"     // args ShowPersistArgs, data PersistList
	VerbEnableServer    = "enable-server"    // args ServerArgs, data []ServerInfo (the servers changed)
	VerbDisableServer   = "disable-server"   // args ServerArgs, data []ServerInfo (the servers changed)
	VerbDrainServer     = "drain-server"     // args ServerArgs, data []ServerInfo (the servers changed)
	VerbEnableRule      = "enable-rule"      // args RuleArgs, data RuleInfo (the rule changed)
	VerbDisableRule     = "disable-rule"     // args RuleArgs, data RuleInfo (the rule changed)
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

// ShowStatsArgs selects what show-stats reports besides the router's counters. With
// neither field, StatsInfo.Rules lists every rule and Servers is empty. With Rule, Rules
// holds that rule and Servers its servers. With Server (an address or address:port,
// see ParseServerRef), Servers holds that server in every rule that uses it, or in Rule
// alone when Rule is given too. A name or server that matches nothing is an error.
type ShowStatsArgs struct {
	Rule   string `json:"rule,omitempty"`
	Server string `json:"server,omitempty"`
}

// PortInfo describes one router port.
type PortInfo struct {
	Name      string   `json:"name"`
	Device    string   `json:"device"`
	Kind      string   `json:"kind"` // afpacket | tun
	MAC       string   `json:"mac"`
	MTU       int      `json:"mtu"`
	Addresses []string `json:"addresses"` // the router's own addresses, CIDR notation
	Up        bool     `json:"up"`
	// KernelRX is, for an afpacket port, "dropped" when the kernel's own stack does not
	// receive the port's frames (ulbd drops them at ingress) and "passed" when it does.
	KernelRX string `json:"kernel_rx,omitempty"`
	// DirectedBroadcast says the port forwards directed broadcasts to its networks;
	// Redirects that it sends ICMP redirects ([[port]] directed_broadcast, redirects).
	DirectedBroadcast bool `json:"directed_broadcast"`
	Redirects         bool `json:"redirects"`
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
	// With [defence] new_flow_ring, NewFlowRing is set, RxNewFlow counts the SYNs read
	// through the port's new-flow ring and RxShedNewFlow those the kernel shed because
	// that ring was full (part of RxDrops).
	NewFlowRing   bool   `json:"new_flow_ring,omitempty"`
	RxNewFlow     uint64 `json:"rx_new_flow,omitempty"`
	RxShedNewFlow uint64 `json:"rx_shed_new_flow,omitempty"`
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
	// Rules and Servers are the load balancer's counters selected by ShowStatsArgs.
	Rules   []RuleStats   `json:"rules,omitempty"`
	Servers []ServerStats `json:"servers,omitempty"`
	// Sync are connection sync's counters, when it is on.
	Sync *SyncInfo `json:"sync,omitempty"`
	// Conntrack describes the connection table.
	Conntrack *ConntrackInfo `json:"conntrack,omitempty"`
	// Reassembly counts the fragments addressed to the router and what became of them.
	Reassembly *ReassemblyInfo `json:"reassembly,omitempty"`
	// SYNProxy counts the SYN proxy's cookies, when it is on ([defence] syn_cookies).
	SYNProxy *SYNProxyInfo `json:"syn_proxy,omitempty"`
	// NAT counts the flows autonat and the static mappings opened, when any did.
	NAT *NATInfo `json:"nat,omitempty"`
}

// NATInfo counts the translated flows opened, by kind (the pool's exhaustion is the
// nat-no-port drop).
type NATInfo struct {
	AutoNAT uint64 `json:"autonat"`
	SNAT    uint64 `json:"snat"`
	DNAT    uint64 `json:"dnat"`
}

// SYNProxyInfo are the SYN proxy's counters.
type SYNProxyInfo struct {
	// Mode is "always" or "auto"; Active says the cookies answer SYNs now, Activations
	// counts auto's switching on.
	Mode           string `json:"mode"`
	Active         bool   `json:"active"`
	Activations    uint64 `json:"activations"`
	CookiesSent    uint64 `json:"cookies_sent"`    // SYN-ACKs with a cookie
	CookiesValid   uint64 `json:"cookies_valid"`   // ACKs whose cookie made a flow
	CookiesInvalid uint64 `json:"cookies_invalid"` // ACKs to a VIP with neither a flow nor a valid cookie
	Established    uint64 `json:"established"`     // server handshakes completed
	ServerRefused  uint64 `json:"server_refused"`  // server handshakes refused (RST)
}

// ConntrackInfo describes the connection table: occupancy, and what a full table did.
type ConntrackInfo struct {
	Flows    int    `json:"flows"`
	Capacity int    `json:"capacity"`
	Inserted uint64 `json:"inserted"`
	Expired  uint64 `json:"expired"`
	// Evicted counts the flows evicted to make room, by class: "unassured" (no answer
	// seen), "closing" (TCP closing), "idle" (UDP or ICMP with answers).
	Evicted map[string]uint64 `json:"evicted"`
	// Refused counts the flows not entered because every flow was established.
	Refused uint64 `json:"refused"`
}

// ReassemblyInfo are the counters of the reassembly of fragments addressed to the router
// (router/reassembly.Stats).
type ReassemblyInfo struct {
	Fragments   uint64 `json:"fragments"`
	Reassembled uint64 `json:"reassembled"`
	Timeouts    uint64 `json:"timeouts"`
	Overlaps    uint64 `json:"overlaps"`
	Duplicates  uint64 `json:"duplicates"`
	Discarded   uint64 `json:"discarded"`
	OverLimit   uint64 `json:"over_limit"`
	Malformed   uint64 `json:"malformed"`
	Evicted     uint64 `json:"evicted"`
	InProgress  int    `json:"in_progress"`
	Bytes       int    `json:"bytes"`
}

// SyncInfo describes connection sync with peer nodes.
type SyncInfo struct {
	Peers   []string `json:"peers"`
	Port    uint16   `json:"port"`
	VRRP    string   `json:"vrrp,omitempty"` // the instance whose master sends
	Sending bool     `json:"sending"`        // this node sends its flows now
	// Messages and records sent to the peers and received from them.
	SentMessages     uint64 `json:"sent_messages"`
	SentRecords      uint64 `json:"sent_records"`
	ReceivedMessages uint64 `json:"received_messages"`
	ReceivedRecords  uint64 `json:"received_records"`
	// What became of the records received: new flows entered, flows of this node's
	// refreshed, records for no rule or server here, flows the table refused.
	Adopted   uint64 `json:"adopted"`
	Refreshed uint64 `json:"refreshed"`
	Unknown   uint64 `json:"unknown"`
	Refused   uint64 `json:"refused"`
	// Messages dropped: malformed, from an address that is no peer, or over the queues.
	Malformed    uint64 `json:"malformed"`
	FromStranger uint64 `json:"from_stranger"`
	Overflow     uint64 `json:"overflow"`
	// NoRoute counts messages not sent to a peer for want of a route or an address.
	NoRoute uint64 `json:"no_route"`
	// Requests counts the peers' requests for this node's flows (a peer that started).
	Requests uint64 `json:"requests"`
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
		t.NewFlowRing = t.NewFlowRing || p.NewFlowRing
		t.RxNewFlow += p.RxNewFlow
		t.RxShedNewFlow += p.RxShedNewFlow
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

// LBCounters are the load balancer's counters of a rule or of a server within a rule.
// In is the client-to-server direction, Out the server-to-client one (nothing under DSR,
// whose replies bypass the router). All but ConnsActive only grow while ulbd runs.
type LBCounters struct {
	ConnsActive uint64 `json:"conns_active"` // flows in the connection table now
	ConnsTotal  uint64 `json:"conns_total"`  // flows ever created
	PacketsIn   uint64 `json:"packets_in"`
	BytesIn     uint64 `json:"bytes_in"`
	PacketsOut  uint64 `json:"packets_out"`
	BytesOut    uint64 `json:"bytes_out"`
	// Drops counts the packets dropped for the rule: no server available, connection
	// table or proxy ports full, and the like.
	Drops uint64 `json:"drops"`
}

// Add adds o's counters to c.
func (c *LBCounters) Add(o LBCounters) {
	c.ConnsActive += o.ConnsActive
	c.ConnsTotal += o.ConnsTotal
	c.PacketsIn += o.PacketsIn
	c.BytesIn += o.BytesIn
	c.PacketsOut += o.PacketsOut
	c.BytesOut += o.BytesOut
	c.Drops += o.Drops
}

// RuleStats are one rule's counters in StatsInfo.
type RuleStats struct {
	Name string `json:"name"`
	LBCounters
}

// ServerStats are one server's counters within one rule in StatsInfo.
type ServerStats struct {
	Rule    string `json:"rule"`
	Group   string `json:"group"`
	Address string `json:"address"`
	Port    uint16 `json:"port,omitempty"` // 0: the client's destination port
	LBCounters
}

// ShowRuleArgs selects the rules show-rule lists: one by name, or all when Name is empty.
type ShowRuleArgs struct {
	Name string `json:"name,omitempty"`
}

// RuleInfo describes one load-balancing rule and its state.
type RuleInfo struct {
	Name        string   `json:"name"`
	Enabled     bool     `json:"enabled"`
	VIP         string   `json:"vip"`
	Ports       string   `json:"ports"`    // "80" or "8000-8099"
	Protocol    string   `json:"protocol"` // tcp | udp
	Algorithm   string   `json:"algorithm"`
	Topology    string   `json:"topology"`               // half-nat | full-nat | dsr | tunnel
	ProxySource []string `json:"proxy_source,omitempty"` // full-nat source addresses
	// TunnelSource is a tunnel rule's configured outer source address ("": the egress
	// port's own).
	TunnelSource string `json:"tunnel_source,omitempty"`
	// PMask is the client prefix length of persistence, -1 for none.
	PMask int `json:"pmask"`
	// PersistKey is what persistence keys on: "src" (the client prefix), "src+port" (the
	// prefix and the client's port) or "dst+port" (the VIP's port: PMask is -1, and the
	// rule persists all the same).
	PersistKey     string `json:"persist_key"`
	PersistTimeout int64  `json:"persist_timeout"` // seconds; 0 without persistence
	ConnDrain      int64  `json:"conn_drain"`      // seconds; 0: until the flows end
	ServerGroup    string `json:"servergroup"`
	Servers        int    `json:"servers"`      // servers in the group
	ConnsActive    uint64 `json:"conns_active"` // flows of the rule now
}

// ShowServerGroupArgs selects the groups show-servergroup lists: one by name, or all
// when Name is empty.
type ShowServerGroupArgs struct {
	Name string `json:"name,omitempty"`
}

// ServerGroupInfo describes one server group as configured.
type ServerGroupInfo struct {
	Name    string        `json:"name"`
	Servers []GroupMember `json:"servers"`
	Rules   []string      `json:"rules"` // the rules that use the group
}

// GroupMember is one server of a group as configured.
type GroupMember struct {
	Address  string `json:"address"`
	Port     uint16 `json:"port,omitempty"` // 0: the client's destination port
	Weight   int    `json:"weight"`
	MaxConns int    `json:"max_conns"` // 0: no limit
	// MinConns is the lower threshold in effect: min_conns, or three quarters of
	// MaxConns when min_conns is not set (0 without MaxConns).
	MinConns int `json:"min_conns"`
}

// ShowServerArgs selects the servers show-server lists: those of one rule, or of every
// rule when Rule is empty.
type ShowServerArgs struct {
	Rule string `json:"rule,omitempty"`
}

// Server states.
const (
	ServerEnabled  = "enabled"
	ServerDisabled = "disabled" // takes no new flows
	ServerDraining = "draining" // takes no new flows; its flows are removed after conn_drain
)

// ServerInfo describes one server within one rule and its state.
type ServerInfo struct {
	Rule     string `json:"rule"`
	Group    string `json:"group"`
	Address  string `json:"address"`
	Port     uint16 `json:"port,omitempty"` // 0: the client's destination port
	Weight   int    `json:"weight"`
	MaxConns int    `json:"max_conns"` // 0: no limit
	// MinConns is the lower threshold in effect (see GroupMember). Overloaded is set
	// from the flow that brought the server to MaxConns until its flows fall below
	// MinConns: meanwhile it takes no new flows (its flows go on).
	MinConns   int    `json:"min_conns"`
	Overloaded bool   `json:"overloaded"`
	State      string `json:"state"` // ServerEnabled, ServerDisabled or ServerDraining
	// Draining is the seconds since drain-server, while State is ServerDraining.
	Draining int64 `json:"draining,omitempty"`
	// Health is HealthUp, HealthDown or HealthUnknown (no check yet, or none
	// configured: the server takes flows). Load is the agent check's last load figure
	// (0-100), -1 when no agent reported one. EffectiveWeight is the weight the
	// schedulers use after health and load.
	Health          string `json:"health"`
	Load            int    `json:"load"`
	EffectiveWeight int    `json:"effective_weight"`
	ConnsActive     uint64 `json:"conns_active"`
	ConnsTotal      uint64 `json:"conns_total"`
}

// Endpoint formats the server as ulbadm names it: "address" when Port is 0, else
// "address:port" ("[address]:port" for IPv6).
func (s *ServerInfo) Endpoint() string { return endpoint(s.Address, s.Port) }

// Endpoint formats the server like ServerInfo.Endpoint.
func (s *ServerStats) Endpoint() string { return endpoint(s.Address, s.Port) }

// Endpoint formats the member like ServerInfo.Endpoint.
func (m *GroupMember) Endpoint() string { return endpoint(m.Address, m.Port) }

func endpoint(addr string, port uint16) string {
	if port == 0 {
		return addr
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		return netip.AddrPortFrom(a, port).String()
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

// Server health, in ServerInfo.Health, HCResult.State and EventHealth events.
const (
	HealthUnknown = "unknown"
	HealthUp      = "up"
	HealthDown    = "down"
)

// Verbs of health checks.
const (
	VerbShowHCResult    = "show-hc-result"   // args ShowHCResultArgs, data []HCResult
	VerbShowHealthCheck = "show-healthcheck" // args ShowHealthCheckArgs, data []HealthCheckInfo
)

// ShowHCResultArgs selects the results show-hc-result lists, like ilbadm
// show-hc-result: those of the servers of one rule's group or of one group (at most
// one of Rule and Group), narrowed to one server (an address or address:port, see
// ParseServerRef) when Server is given. A rule, group or server that matches nothing
// is an error; a rule or group without a health check has no results.
type ShowHCResultArgs struct {
	Rule   string `json:"rule,omitempty"`
	Group  string `json:"group,omitempty"`
	Server string `json:"server,omitempty"`
}

// HCResult is the state of one server of a group as its group's health check sees it.
type HCResult struct {
	Group   string   `json:"group"`
	Rules   []string `json:"rules"` // the rules that use the group
	Address string   `json:"address"`
	Port    uint16   `json:"port,omitempty"` // 0: the client's destination port
	Check   string   `json:"check"`
	Test    string   `json:"test"`  // ping | tcp | udp | http | agent | script
	State   string   `json:"state"` // HealthUp, HealthDown or HealthUnknown
	// LastResult is "ok" or "fail: REASON"; empty before the first check ends.
	LastResult string `json:"last_result,omitempty"`
	// RTT is the round-trip time of the last successful check, in microseconds (0:
	// none measured).
	RTT int64 `json:"rtt_us"`
	// Fails and Successes are the consecutive failures and successes so far.
	Fails     int `json:"fails"`
	Successes int `json:"successes"`
	// Load is an agent check's last load figure (0-100), -1 when none (or not an agent
	// check).
	Load int `json:"load"`
	// Last is when the last check ended (zero: none yet); Next when the next one starts.
	Last time.Time `json:"last,omitzero"`
	Next time.Time `json:"next,omitzero"`
}

// Endpoint formats the server like ServerInfo.Endpoint.
func (r *HCResult) Endpoint() string { return endpoint(r.Address, r.Port) }

// ShowHealthCheckArgs selects the checks show-healthcheck lists: one by name, or all
// when Name is empty (an unknown name is an error).
type ShowHealthCheckArgs struct {
	Name string `json:"name,omitempty"`
}

// HealthCheckInfo describes one configured health check, defaults filled in. Only the
// fields of its Test are set. Durations are in milliseconds.
type HealthCheckInfo struct {
	Name     string `json:"name"`
	Test     string `json:"test"` // ping | tcp | udp | http | agent | script
	Interval int64  `json:"interval_ms"`
	Timeout  int64  `json:"timeout_ms"`
	Count    int    `json:"count"`          // consecutive failures that take a server down
	Rise     int    `json:"rise"`           // consecutive successes that bring it back
	Port     uint16 `json:"port,omitempty"` // 0: each server's port
	// Groups are the server groups the check tests.
	Groups []string `json:"groups"`

	// udp: the datagram sent and what the reply must contain ("": any reply).
	Send   string `json:"send,omitempty"`
	Expect string `json:"expect,omitempty"`
	// http: the path, the Host header ("": the server's address), the expected status
	// and the pattern the body must match ("": any body).
	Path         string `json:"path,omitempty"`
	Host         string `json:"host,omitempty"`
	ExpectStatus int    `json:"expect_status,omitempty"`
	ExpectBody   string `json:"expect_body,omitempty"`
	// agent: the agent's UDP port.
	AgentPort uint16 `json:"agent_port,omitempty"`
	// script: the program and its first arguments.
	Command []string `json:"command,omitempty"`
}

// ServerArgs name the server(s) that enable-server, disable-server and drain-server
// change. Server is an address or address:port (ParseServerRef); without a port it
// names the server of that address whatever its port. Rule or Group (at most one)
// narrows the change to one rule or to the rules of one group; with neither, the server
// changes in every group that has it. Matching nothing is an error.
type ServerArgs struct {
	Rule   string `json:"rule,omitempty"`
	Group  string `json:"group,omitempty"`
	Server string `json:"server"`
}

// RuleArgs name the rule that enable-rule and disable-rule change.
type RuleArgs struct {
	Name string `json:"name"`
}

// Limits of show-conn and show-persist.
const (
	DefaultListLimit = 1000   // entries returned when Limit is 0
	MaxListLimit     = 100000 // entries returned at most, whatever Limit says
)

// ShowConnArgs selects the flows show-conn lists, like ilbadm show-nat: those of one
// rule and/or one server (address or address:port), at most Limit of them (0 means
// DefaultListLimit; the server caps it at MaxListLimit).
type ShowConnArgs struct {
	Rule   string `json:"rule,omitempty"`
	Server string `json:"server,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// ConnList answers show-conn: Total flows matched, of which Conns lists at most the limit.
type ConnList struct {
	Total int        `json:"total"`
	Conns []ConnInfo `json:"conns"`
}

// ConnInfo is one flow of the connection table. Addresses are "ip:port" ("[ip]:port"
// for IPv6; ICMP echo flows carry the echo identifier as the port).
type ConnInfo struct {
	Rule string `json:"rule"`
	// Type is set for the flows of no rule: masquerade and host-port for the host
	// port's, autonat, snat and dnat for the NAT's.
	Type     string `json:"type,omitempty"`
	Protocol string `json:"protocol"` // tcp | udp | icmp | icmpv6
	Client   string `json:"client"`
	VIP      string `json:"vip"`
	Proxy    string `json:"proxy,omitempty"` // full-nat source the server sees; empty otherwise
	Server   string `json:"server"`
	State    string `json:"state"` // TCP state (e.g. ESTABLISHED, TIME_WAIT) or UDP / ICMP
	Age      int64  `json:"age"`   // seconds since the flow began
	Idle     int64  `json:"idle"`  // seconds since its last packet
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
}

// ShowPersistArgs selects the persistence entries show-persist lists, like ilbadm
// show-persist: those of one rule, at most Limit (as in ShowConnArgs).
type ShowPersistArgs struct {
	Rule  string `json:"rule,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// PersistList answers show-persist: Total entries matched, of which Entries lists at
// most the limit.
type PersistList struct {
	Total   int           `json:"total"`
	Entries []PersistInfo `json:"entries"`
}

// PersistInfo is one persistence entry: a client prefix stuck to a server.
type PersistInfo struct {
	Rule string `json:"rule"`
	// Client is the client prefix, e.g. 198.51.100.0/24. Key is the rule's persist_key;
	// Port is the client's port for "src+port", the destination port for "dst+port"
	// (Client is then the VIP), 0 for "src".
	Client string `json:"client"`
	Key    string `json:"key"`
	Port   uint16 `json:"port,omitempty"`
	Server string `json:"server"` // address or address:port, as ServerInfo.Endpoint
	Conns  uint64 `json:"conns"`  // flows using the entry now
	// Expires is the seconds until the entry expires; it counts down only while Conns
	// is 0.
	Expires int64 `json:"expires"`
}

// ParseServerRef parses the server selector of ulbadm and of ServerArgs, ShowConnArgs
// and ShowStatsArgs: "203.0.113.200", "203.0.113.200:80", "2001:db8::200" or
// "[2001:db8::200]:80". port is 0 when none is given.
func ParseServerRef(s string) (addr netip.Addr, port uint16, err error) {
	if ap, perr := netip.ParseAddrPort(s); perr == nil {
		if ap.Port() == 0 {
			return netip.Addr{}, 0, fmt.Errorf("server %q: port 0 is not a port", s)
		}
		return ap.Addr().Unmap(), ap.Port(), nil
	}
	a, perr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if perr != nil || a.Zone() != "" {
		return netip.Addr{}, 0, fmt.Errorf("server %q is not an address or address:port (like 203.0.113.200:80 or [2001:db8::200]:80)", s)
	}
	return a.Unmap(), 0, nil
}

// MatchServer reports whether the server at addr and port (0: any port) is the one ref
// names: the same address, and the same port when ref gives one.
func MatchServer(refAddr netip.Addr, refPort uint16, addr netip.Addr, port uint16) bool {
	return refAddr == addr.Unmap() && (refPort == 0 || refPort == port)
}

// Run-time changes of the configuration in ilbadm's verbs: each is validated as the file
// is, applied like a reload, and saved as the run-time state (see VerbImportConfig);
// data ReloadInfo.
const (
	VerbCreateServerGroup = "create-servergroup" // args ServerGroupChange
	VerbDeleteServerGroup = "delete-servergroup" // args ServerGroupChange (Name only)
	VerbAddServer         = "add-server"         // args ServerGroupChange
	VerbRemoveServer      = "remove-server"      // args ServerGroupChange
	VerbCreateRule        = "create-rule"        // args RuleChange
	VerbDeleteRule        = "delete-rule"        // args RuleChange (Name only)
	// Health checks, as rules: TOML is one [[healthcheck]] table.
	VerbCreateHealthCheck = "create-healthcheck" // args RuleChange
	VerbDeleteHealthCheck = "delete-healthcheck" // args RuleChange (Name only)
	// VRRP instances, as vrrpadm has them: TOML is one [[vrrp]] table.
	VerbCreateRouter  = "create-router"  // args RuleChange
	VerbModifyRouter  = "modify-router"  // args RouterChange
	VerbDeleteRouter  = "delete-router"  // args RuleChange (Name only)
	VerbEnableRouter  = "enable-router"  // args RuleChange (Name only)
	VerbDisableRouter = "disable-router" // args RuleChange (Name only)
)

// RouterChange changes a VRRP instance (vrrpadm modify-router): the fields set.
type RouterChange struct {
	Name     string `json:"name"`
	Priority int    `json:"priority,omitempty"`    // 1-255; 0: unchanged
	Interval int64  `json:"interval_ms,omitempty"` // 0: unchanged
	Preempt  *bool  `json:"preempt,omitempty"`
	Accept   *bool  `json:"accept,omitempty"`
}

// RuleChange creates a rule from TOML, one [[rule]] table as the file has it (ulbadm
// builds it from ilbadm's options), or names the rule to delete.
type RuleChange struct {
	Name string `json:"name"`
	TOML string `json:"toml,omitempty"`
}

// ServerGroupChange names a server group and the servers to create it with, add to it or
// remove from it ("ADDRESS" or "ADDRESS:PORT", as ParseServerRef reads them). Force
// removes servers that still carry flows (their flows are then removed).
type ServerGroupChange struct {
	Name    string   `json:"name"`
	Servers []string `json:"servers,omitempty"`
	Force   bool     `json:"force,omitempty"`
	// MaxConns and MinConns are the connection thresholds of the servers given
	// (create-servergroup, add-server); 0: none / the default lower threshold.
	MaxConns int `json:"max_conns,omitempty"`
	MinConns int `json:"min_conns,omitempty"`
}

// VerbReload re-reads ulbd's configuration file and applies it, as SIGHUP does: no
// args, data ReloadInfo. A file that fails validation changes nothing; the error lists
// its issues as FILE:LINE: message.
const VerbReload = "reload"

// VerbExportConfig returns the configuration in effect (the file as ulbd last loaded
// it) as TOML that ulbd -check accepts: no args, data ExportInfo.
const VerbExportConfig = "export-config"

// ExportInfo is an exported configuration.
type ExportInfo struct {
	File string `json:"file"` // where it was loaded from
	TOML string `json:"toml"`
}

// ReloadInfo is what a reload installed.
type ReloadInfo struct {
	File         string `json:"file"`
	Routes       int    `json:"routes"`
	Rules        int    `json:"rules"`
	HealthChecks int    `json:"health_checks"`
	Ports        int    `json:"ports"`
	// PortsAdded, PortsRemoved and PortsChanged name the ports the reload opened (new
	// ones, and those whose device changed), closed, and changed in place (addresses,
	// MTU, redirects, directed_broadcast).
	PortsAdded   []string `json:"ports_added,omitempty"`
	PortsRemoved []string `json:"ports_removed,omitempty"`
	PortsChanged []string `json:"ports_changed,omitempty"`
	// Restart lists the changed parts of the file that take effect only when ulbd
	// restarts (e.g. "[dataplane]", "host_port").
	Restart []string `json:"restart,omitempty"`
	// Warnings are the file's warnings (FILE:LINE: message).
	Warnings []string `json:"warnings,omitempty"`
	// State is the run-time state file the change was saved to (import-config).
	State string `json:"state,omitempty"`
}

// VerbImportConfig applies a configuration like a reload and saves it as ulbd's run-time
// state, beside its file, which it starts from next time: args ImportArgs, data
// ReloadInfo. One that fails validation changes nothing; the error lists its issues as
// NAME:LINE: message.
const VerbImportConfig = "import-config"

// ImportArgs carry a configuration file's text and its name.
type ImportArgs struct {
	Name string `json:"name"`
	TOML string `json:"toml"`
}

// Verbs of VRRP and of the event stream.
const (
	VerbShowRouter = "show-router" // args ShowRouterArgs, data []RouterInfo
	// VerbWatch is a stream (see Server.HandleStream): args WatchArgs; the response
	// carries no data, then each Event comes as one JSON line until the client closes
	// the connection.
	VerbWatch = "watch"
)

// ShowRouterArgs selects the VRRP instances show-router lists: one by name, or all when
// Name is empty.
type ShowRouterArgs struct {
	Name string `json:"name,omitempty"`
}

// VRRP instance states, in RouterInfo.State and in EventVRRP events.
const (
	RouterInit   = "init"
	RouterBackup = "backup"
	RouterMaster = "master"
	RouterFault  = "fault"
	// RouterDisabled is an instance configured but not running (disable-router).
	RouterDisabled = "disabled"
)

// Address families of RouterInfo.Family.
const (
	FamilyIPv4 = "IPv4"
	FamilyIPv6 = "IPv6"
)

// RouterInfo describes one VRRP instance (virtual router) and its state. Durations
// are in milliseconds.
type RouterInfo struct {
	Name    string `json:"name"`
	VRID    int    `json:"vrid"`
	Port    string `json:"port"`
	Family  string `json:"family"`  // FamilyIPv4 or FamilyIPv6
	Version int    `json:"version"` // 3 or 2
	// Priority is the configured priority (255: the address owner); EffectivePriority
	// is what the adverts carry now, after tracking's decreases.
	Priority          int `json:"priority"`
	EffectivePriority int `json:"effective_priority"`
	// AdverInterval is the configured advertisement interval; MasterAdverInterval is the
	// one in use to time the master: learnt from the master's adverts by a v3 backup,
	// else AdverInterval.
	AdverInterval       int64  `json:"adver_interval_ms"`
	MasterAdverInterval int64  `json:"master_adver_interval_ms"`
	Preempt             bool   `json:"preempt"`
	PreemptDelay        int64  `json:"preempt_delay_ms"`
	Accept              bool   `json:"accept"` // Accept_Mode
	State               string `json:"state"`  // RouterInit, RouterBackup, RouterMaster or RouterFault
	// Fault says why the instance is in RouterFault (e.g. "port inside down").
	Fault string `json:"fault,omitempty"`
	VMAC  string `json:"vmac"` // 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID)
	// Master is the current master's address: the router's own when State is
	// RouterMaster, the one last heard from as a backup, empty when unknown.
	// MasterPriority is the priority it advertised.
	Master         string       `json:"master,omitempty"`
	MasterPriority int          `json:"master_priority,omitempty"`
	Addresses      []string     `json:"addresses"` // the virtual addresses, CIDR notation
	SyncGroup      string       `json:"sync_group,omitempty"`
	Counters       VRRPCounters `json:"counters"`
	// Links are the links the instance advertises on when it has extra ones
	// (advert_ports): its own port first, then those; empty when Port is its only one.
	Links []RouterLink `json:"links,omitempty"`
}

// RouterLink is one link a VRRP instance advertises on, with its advert counters.
type RouterLink struct {
	Port string `json:"port"`
	// Source is the instance's address on this link: its adverts' source there.
	Source          string `json:"source,omitempty"`
	AdvertsSent     uint64 `json:"adverts_sent"`
	AdvertsReceived uint64 `json:"adverts_received"`
	Drops           uint64 `json:"drops"`
	// LastAdvert is when the last accepted advert came by this link (from the master
	// when the instance is backup), LastFrom its source; zero and empty before any.
	LastAdvert time.Time `json:"last_advert,omitzero"`
	LastFrom   string    `json:"last_from,omitempty"`
}

// Owner reports whether the instance is the address owner (priority 255).
func (r *RouterInfo) Owner() bool { return r.Priority == 255 }

// VRRPCounters are one VRRP instance's counters since ulbd started.
type VRRPCounters struct {
	AdvertsSent     uint64 `json:"adverts_sent"`
	AdvertsReceived uint64 `json:"adverts_received"`
	// Drops counts the adverts dropped, by reason (e.g. "bad-ttl", "bad-checksum",
	// "vrid-mismatch", "interval-mismatch").
	Drops        map[string]uint64 `json:"drops,omitempty"`
	Transitions  uint64            `json:"transitions"`   // state changes
	BecameMaster uint64            `json:"became_master"` // transitions to RouterMaster
	// LastTransition is when the state last changed; zero before any change.
	LastTransition time.Time `json:"last_transition,omitzero"`
}

// Event kinds.
const (
	// EventVRRP: a VRRP instance (Name) changed state From → To, for Reason; Master and
	// Priority are the master's address after the change (when known) and the
	// instance's effective priority.
	EventVRRP = "vrrp"
	// EventHealth: a server (Name is "GROUP/ENDPOINT", the endpoint as
	// ServerInfo.Endpoint) changed health From → To (HealthUp, HealthDown or
	// HealthUnknown); Reason is the check's last result (e.g. "fail: connection refused").
	EventHealth = "health"
	// EventServer: an operator changed a server's administrative state (Name is
	// "GROUP/ENDPOINT" as for EventHealth) From → To (ServerEnabled, ServerDisabled or
	// ServerDraining); Reason names the verb and who asked (e.g. "disable-server from
	// the web page, user admin").
	EventServer = "server"
	// EventLost: the subscriber read too slowly and Missed events were dropped before
	// this one; it has no Seq.
	EventLost = "lost"
)

// Event is one line of the watch stream.
type Event struct {
	// Seq numbers the events ulbd published, from 1 without gaps (a gap means events
	// a WatchArgs filter left out, or an EventLost).
	Seq      uint64    `json:"seq,omitempty"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Name     string    `json:"name,omitempty"` // the object the event is about
	From     string    `json:"from,omitempty"`
	To       string    `json:"to,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Master   string    `json:"master,omitempty"`
	Priority int       `json:"priority,omitempty"`
	Missed   uint64    `json:"missed,omitempty"`
}

// WatchArgs filter the watch stream: only events of Kind and about Name, when given.
// EventLost events always pass.
type WatchArgs struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
}

// Match reports whether ev passes the filter.
func (a WatchArgs) Match(ev Event) bool {
	return ev.Kind == EventLost || (a.Kind == "" || ev.Kind == a.Kind) && (a.Name == "" || ev.Name == a.Name)
}
