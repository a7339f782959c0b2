package balancer

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ulb/conntrack"
)

// IP protocol numbers a rule can balance.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// Topology says how the router forwards a balanced flow: the connection table's
// topologies, of which a rule has one of HalfNAT, FullNAT, DSR and Tunnel.
type Topology = conntrack.Topology

// Topologies.
const (
	// HalfNAT rewrites the destination to the server and keeps the client's address;
	// the server's replies come back through the router and are rewritten to the VIP.
	HalfNAT = conntrack.HalfNAT
	// FullNAT also rewrites the source to a proxy_source address and port.
	FullNAT = conntrack.FullNAT
	// DSR (direct server return) changes only the destination MAC; the server owns the
	// VIP and answers the client directly.
	DSR = conntrack.DSR
	// Tunnel encapsulates the client's packet unchanged in IP-in-IP to the server, which
	// may sit on any routed network, owns the VIP and answers the client directly.
	Tunnel = conntrack.Tunnel
)

// ParseTopology returns the Topology named s ("half-nat", "full-nat", "dsr", "tunnel"); "" is
// HalfNAT.
func ParseTopology(s string) (Topology, error) {
	switch s {
	case "", "half-nat":
		return HalfNAT, nil
	case "full-nat":
		return FullNAT, nil
	case "dsr":
		return DSR, nil
	case "tunnel":
		return Tunnel, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrTopology, s)
}

// Scheduling algorithms, as written in the configuration.
const (
	RoundRobin         = "roundrobin"
	WeightedRoundRobin = "weighted-roundrobin"
	LeastConn          = "leastconn"
	WeightedLeastConn  = "weighted-leastconn"
	HashIP             = "hash-ip"
	HashIPPort         = "hash-ip-port"
	HashIPVIP          = "hash-ip-vip"
	Maglev             = "maglev"
)

// Algorithms lists every scheduling algorithm name, in the order of the documentation.
var Algorithms = []string{RoundRobin, WeightedRoundRobin, LeastConn, WeightedLeastConn,
	HashIP, HashIPPort, HashIPVIP, Maglev}

type algo uint8

const (
	algoRR algo = iota
	algoWRR
	algoLC
	algoWLC
	algoHashIP
	algoHashIPPort
	algoHashIPVIP
	algoMaglev
)

func parseAlgo(s string) (algo, bool) {
	if s == "" {
		return algoRR, true
	}
	for i, n := range Algorithms {
		if n == s {
			return algo(i), true
		}
	}
	return 0, false
}

// NoPersistence is the PMask of a rule without persistence.
const NoPersistence = -1

// PersistKey says what a rule's persistence entries are keyed on, after BalanceNG's
// sessionid: which flows are one session that must reach one server.
type PersistKey uint8

// Persistence keys.
const (
	// PersistSrc keys on the client's address masked to PMask (ILB's pmask, IPVS's
	// persistence with a netmask; BalanceNG's sessionid src): every flow of a client
	// prefix reaches one server.
	PersistSrc PersistKey = iota
	// PersistSrcPort keys on the client's prefix and source port (sessionid src+port):
	// the flows of one client socket reach one server, also after an idle UDP flow
	// expired; clients behind one NAT address are told apart by their ports.
	PersistSrcPort
	// PersistDstPort keys on the VIP and the destination port (sessionid dst+port): every
	// client's flows to one port of the rule's range reach one server. UDP only (Set
	// refuses it on TCP, see validate); PMask is NoPersistence, the client not being
	// part of the key.
	PersistDstPort
)

// PersistKeys lists the keys' names as the configuration writes them, by value.
var PersistKeys = []string{"src", "src+port", "dst+port"}

func (k PersistKey) String() string {
	if int(k) < len(PersistKeys) {
		return PersistKeys[k]
	}
	return fmt.Sprintf("persistkey(%d)", uint8(k))
}

// ParsePersistKey returns the PersistKey named s; "" is PersistSrc.
func ParsePersistKey(s string) (PersistKey, error) {
	if s == "" {
		return PersistSrc, nil
	}
	for i, n := range PersistKeys {
		if n == s {
			return PersistKey(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want %s)", ErrPersistKey, s, strings.Join(PersistKeys, ", "))
}

// RuleConfig is one balancing rule as the router builds it from the configuration.
type RuleConfig struct {
	// Name identifies the rule in listings, admin verbs and across reloads.
	Name string
	// VIP is the virtual address; servers (and proxy sources) have its family.
	VIP netip.Addr
	// PortLo..PortHi is the destination port range (PortLo == PortHi for one port).
	PortLo, PortHi uint16
	// Proto is ProtoTCP or ProtoUDP.
	Proto uint8
	// Algorithm is one of Algorithms; "" means RoundRobin.
	Algorithm string
	Topology  Topology
	// ProxySource lists the full-NAT source addresses (required for FullNAT, else unused).
	ProxySource []netip.Addr
	// TunnelSource is the outer source address of a Tunnel rule's encapsulated packets;
	// invalid (the default): the router's own address on the egress port.
	TunnelSource netip.Addr
	// PMask is the persistence prefix length of the client's address (0-32 for IPv4,
	// 0-128 for IPv6), or NoPersistence (-1). PersistSrc and PersistSrcPort persist when
	// it is set; PersistDstPort always does, with PMask NoPersistence.
	PMask int
	// PersistKey is what persistence keys on (PersistSrc, the zero value: the client
	// prefix).
	PersistKey PersistKey
	// PersistTimeout is how long a persistence entry outlives its last use and its last flow.
	PersistTimeout time.Duration
	// ConnDrain is how long the flows of a draining server may go on before Drained reports
	// them for removal; 0 (or less) means they are never removed: they end on their own.
	ConnDrain time.Duration
	// Group is the server group's name. Rules naming the same group share its servers
	// (state, connection counts, max_conns) and must list the same servers. "" means the
	// servers belong to this rule alone, under the rule's name.
	Group   string
	Servers []ServerConfig
	// Enabled rules match traffic; a disabled rule matches nothing.
	Enabled bool
}

// ServerConfig is one back-end server of a rule or group.
type ServerConfig struct {
	Addr netip.Addr
	// Port is the server's port; 0 means the client's destination port. On a port-range
	// rule a non-zero Port is the server port for PortLo, and the rest follow at the
	// same offset.
	Port uint16
	// Weight is the server's share for the weighted algorithms and Maglev; 0 takes no new
	// flows (existing ones go on).
	Weight int
	// MaxConns limits the server's active flows (over every rule sharing it); 0 = no limit.
	// A server that reaches it is overloaded: it takes no new flows until its count
	// falls below MinConns (IPVS's u_threshold and l_threshold, hysteresis).
	MaxConns int
	// MinConns is the count below which an overloaded server takes new flows again
	// (1..MaxConns; MinConns == MaxConns is a plain cap without hysteresis). 0 means
	// IPVS's default, three quarters of MaxConns: overloaded until conns*4 < MaxConns*3.
	MinConns int
	// Disabled servers start disabled (the zero value is enabled).
	Disabled bool
}

// Errors of Set, wrapped with the rule's name and details; test them with errors.Is.
var (
	ErrName        = errors.New("rule name empty or duplicate")
	ErrVIP         = errors.New("invalid VIP")
	ErrPortRange   = errors.New("invalid port range")
	ErrProto       = errors.New("protocol must be tcp or udp")
	ErrAlgorithm   = errors.New("unknown algorithm")
	ErrTopology    = errors.New("unknown topology")
	ErrFamily      = errors.New("address family differs from the VIP's")
	ErrProxySource = errors.New("full-nat needs proxy source addresses")
	ErrDSRPort     = errors.New("dsr and tunnel cannot translate ports")
	ErrPMask       = errors.New("pmask out of range")
	ErrPersistKey  = errors.New("invalid persistence key")
	ErrServer      = errors.New("invalid server")
	ErrOverlap     = errors.New("VIP, protocol and ports overlap another rule")
	ErrGroup       = errors.New("rules sharing a server group list different servers")
	ErrTooMany     = errors.New("too many servers")
)

// MaxWeight is the largest server weight (as in IPVS's ipvsadm, 0-65535).
const MaxWeight = 65535

// maxServersPerRule bounds a rule's server list (Maglev table entries are uint32, but a
// table is only useful with far fewer servers than entries).
const maxServersPerRule = 4096

// persistent reports whether the rule has persistence.
func (rc *RuleConfig) persistent() bool {
	return rc.PMask != NoPersistence || rc.PersistKey == PersistDstPort
}

func (rc *RuleConfig) groupName() string {
	if rc.Group != "" {
		return rc.Group
	}
	return rc.Name
}

// validate checks one rule on its own.
func (rc *RuleConfig) validate() error {
	var errs []error
	add := func(err error, format string, a ...any) {
		errs = append(errs, fmt.Errorf("rule %q: %w: "+format, append([]any{rc.Name, err}, a...)...))
	}
	if rc.Name == "" {
		add(ErrName, "empty")
	}
	if !rc.VIP.IsValid() || rc.VIP.IsUnspecified() || rc.VIP.Zone() != "" || rc.VIP.Is4In6() {
		add(ErrVIP, "%v", rc.VIP)
	}
	if rc.PortLo == 0 || rc.PortLo > rc.PortHi {
		add(ErrPortRange, "%d-%d", rc.PortLo, rc.PortHi)
	}
	if rc.Proto != ProtoTCP && rc.Proto != ProtoUDP {
		add(ErrProto, "%d", rc.Proto)
	}
	if _, ok := parseAlgo(rc.Algorithm); !ok {
		add(ErrAlgorithm, "%q", rc.Algorithm)
	}
	if !rc.Topology.Balanced() {
		add(ErrTopology, "%v", rc.Topology)
	}
	if rc.Topology == FullNAT && len(rc.ProxySource) == 0 {
		add(ErrProxySource, "none given")
	}
	for _, p := range rc.ProxySource {
		if !p.IsValid() || p.Is4() != rc.VIP.Is4() || p.Is4In6() {
			add(ErrFamily, "proxy source %v", p)
		}
	}
	if a := rc.TunnelSource; a.IsValid() && (rc.Topology != Tunnel || a.Is4() != rc.VIP.Is4() || a.Is4In6()) {
		add(ErrFamily, "tunnel source %v (topology %v)", a, rc.Topology)
	}
	bits := 32
	if rc.VIP.Is6() {
		bits = 128
	}
	if rc.PMask != NoPersistence && (rc.PMask < 0 || rc.PMask > bits) {
		add(ErrPMask, "%d (0-%d or %d)", rc.PMask, bits, NoPersistence)
	}
	if rc.persistent() && rc.PersistTimeout < 0 {
		add(ErrPMask, "negative persist timeout %v", rc.PersistTimeout)
	}
	switch rc.PersistKey {
	case PersistSrc:
	case PersistSrcPort:
		if rc.PMask == NoPersistence {
			add(ErrPersistKey, "src+port needs a pmask (the client prefix the port goes with)")
		}
	case PersistDstPort:
		// A TCP connection is one session by itself: its state lives in the server that
		// answered its SYN, and every client connects to the same VIP:port, so keying on
		// the destination would only pile every client of a port on one server. UDP
		// services that keep one state per port of a range (a stream or a conference per
		// port) are where it means something.
		if rc.Proto != ProtoUDP {
			add(ErrPersistKey, "dst+port is for UDP: a TCP connection is a session of its own, and keying on the destination would send every client of a port to one server")
		}
		if rc.PMask != NoPersistence {
			add(ErrPersistKey, "dst+port does not key on the client: no pmask")
		}
	default:
		add(ErrPersistKey, "%v", rc.PersistKey)
	}
	if len(rc.Servers) > maxServersPerRule {
		add(ErrTooMany, "%d (at most %d)", len(rc.Servers), maxServersPerRule)
	}
	seen := make(map[netip.AddrPort]bool, len(rc.Servers))
	for _, s := range rc.Servers {
		ap := netip.AddrPortFrom(s.Addr, s.Port)
		switch {
		case !s.Addr.IsValid() || s.Addr.IsUnspecified() || s.Addr.IsMulticast() || s.Addr.Zone() != "" || s.Addr.Is4In6():
			add(ErrServer, "address %v", s.Addr)
		case s.Addr.Is4() != rc.VIP.Is4():
			add(ErrFamily, "server %v", s.Addr)
		case s.Weight < 0 || s.Weight > MaxWeight || s.MaxConns < 0:
			add(ErrServer, "%v: weight %d (0-%d) or max_conns %d", ap, s.Weight, MaxWeight, s.MaxConns)
		case s.MinConns < 0 || (s.MinConns > 0 && s.MaxConns == 0) || s.MinConns > s.MaxConns:
			add(ErrServer, "%v: min_conns %d needs max_conns and must not pass it (max_conns %d)", ap, s.MinConns, s.MaxConns)
		case seen[ap]:
			add(ErrServer, "%v listed twice", ap)
		case rc.Topology.Direct() && s.Port != 0 && s.Port != rc.PortLo:
			add(ErrDSRPort, "server %v, rule port %d", ap, rc.PortLo)
		case s.Port != 0 && int(s.Port)+int(rc.PortHi-rc.PortLo) > 65535:
			add(ErrPortRange, "server %v: range ends past 65535", ap)
		}
		seen[ap] = true
	}
	return errors.Join(errs...)
}

// validateAll checks every rule and what ties them together: unique names, no overlapping
// VIP:ports:protocol, and groups listing the same servers everywhere.
func validateAll(rules []RuleConfig) error {
	var errs []error
	names := make(map[string]bool, len(rules))
	groups := make(map[string]int, len(rules))
	for i := range rules {
		rc := &rules[i]
		if err := rc.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if names[rc.Name] {
			errs = append(errs, fmt.Errorf("rule %q: %w: duplicate", rc.Name, ErrName))
		}
		names[rc.Name] = true
		if j, ok := groups[rc.groupName()]; ok {
			if !sameServers(rules[j].Servers, rc.Servers) {
				errs = append(errs, fmt.Errorf("rule %q: %w: group %q (also in rule %q)", rc.Name, ErrGroup, rc.groupName(), rules[j].Name))
			}
		} else {
			groups[rc.groupName()] = i
		}
		for j := range i {
			o := &rules[j]
			if o.VIP == rc.VIP && o.Proto == rc.Proto && o.PortLo <= rc.PortHi && rc.PortLo <= o.PortHi {
				errs = append(errs, fmt.Errorf("rule %q: %w: %q", rc.Name, ErrOverlap, o.Name))
			}
		}
	}
	return errors.Join(errs...)
}

func sameServers(a, b []ServerConfig) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Rule is one rule of a Snapshot: immutable configuration plus its scheduler. Its methods
// are safe for concurrent use.
type Rule struct {
	b       *Balancer
	cfg     RuleConfig
	id      uint32
	st      *ruleState
	algo    algo
	enabled bool
	vip16   [16]byte
	bits    int // persistence prefix length over the 16-byte form, or -1
	// persistent rules look flows up in the persistence table (RuleConfig.persistent).
	persistent bool
	// members are every configured server, in configuration order.
	members []member
	// eligible are the members that take new flows: enabled, not down, effective weight > 0.
	eligible []*member
	byPair   map[uint32]int32 // pair ID (Pick.Server) -> index in members

	// Scheduler state.
	rr     atomic.Uint64 // round-robin position, also the leastconn tie-breaker
	wrrMu  sync.Mutex
	wrrCur []int64  // smooth weighted round-robin current weights, by eligible index
	cum    []int64  // cumulative weights of eligible, for the hash algorithms
	maglev []uint32 // Maglev lookup table: indices into eligible
}

// member is a server as one rule sees it.
type member struct {
	srv      *serverState
	pair     *pairState // this rule's state and counters of srv
	addr     netip.Addr
	port     uint16
	weight   int64
	maxConns int64 // 0: no limit
	lowConns int64 // an overloaded server takes new flows again below this count
	eligible bool  // the pair is enabled, not down, and its effective weight > 0
	down     bool  // health checks declared the server down
}

// ID is the rule's stable identifier: flows store it and give it back to FlowEnded and
// Account. It never changes while the rule's name stays, and is never reused.
func (r *Rule) ID() uint32 { return r.id }

// Name is the rule's name.
func (r *Rule) Name() string { return r.cfg.Name }

// VIP is the rule's virtual address.
func (r *Rule) VIP() netip.Addr { return r.cfg.VIP }

// Proto is the rule's IP protocol.
func (r *Rule) Proto() uint8 { return r.cfg.Proto }

// Ports is the rule's destination port range.
func (r *Rule) Ports() (lo, hi uint16) { return r.cfg.PortLo, r.cfg.PortHi }

// Topology is the rule's forwarding topology.
func (r *Rule) Topology() Topology { return r.cfg.Topology }

// TunnelSource is the outer source address of a Tunnel rule's packets (invalid: the
// egress port's own address).
func (r *Rule) TunnelSource() netip.Addr { return r.cfg.TunnelSource }

// ProxySource is the rule's full-NAT source address list; callers must not modify it.
func (r *Rule) ProxySource() []netip.Addr { return r.cfg.ProxySource }

// Enabled reports whether the rule was enabled when its snapshot was built.
func (r *Rule) Enabled() bool { return r.enabled }

// Config returns a copy of the rule's configuration (allocates: for the control plane).
func (r *Rule) Config() RuleConfig {
	c := r.cfg
	c.ProxySource = append([]netip.Addr(nil), c.ProxySource...)
	c.Servers = append([]ServerConfig(nil), c.Servers...)
	return c
}
