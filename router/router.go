package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ulb/arpd"
	"ulb/balancer"
	"ulb/balancer/health/probe"
	"ulb/balancer/srclimit"
	"ulb/balancer/synproxy"
	"ulb/conntrack"
	"ulb/nat"
	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
	"ulb/router/reassembly"
	"ulb/vrrp"
)

// PortConfig is one port the router owns.
type PortConfig struct {
	Name      string
	Device    string // the kernel interface behind the port, for display
	Kind      string // afpacket | tun, for display
	Port      port.Port
	Addresses []netip.Prefix // the router's own addresses on the port
	// MTU, when not zero, is the largest IP packet the router sends out of the port: it
	// may be set below the link's (a smaller path behind it), never above.
	MTU int
	// Host marks the host port (a TUN to the kernel of the router's namespace): its
	// address is HostPortRouter and what the kernel sends through it is masqueraded.
	Host bool
	// DirectedBroadcast forwards directed broadcasts to the port's IPv4 networks that
	// arrive on other ports, as link-layer broadcasts; off, they are dropped (RFC 2644,
	// RFC 1812 §5.3.5.2).
	DirectedBroadcast bool
	// Redirects sends ICMP redirects (RFC 1812 §5.2.7.2, RFC 4861 §8.2) to the port's
	// hosts whose packets leave by the port they came in by. Ethernet ports only.
	Redirects bool
}

// Route is a static route. Port pins the egress port by name; otherwise the gateway's
// connected prefix decides it.
type Route struct {
	To   netip.Prefix
	Via  netip.Addr
	Port string
}

// Config is what New needs.
type Config struct {
	Ports  []PortConfig
	Routes []Route
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ICMPRate and ICMPBurst limit generated ICMP errors per second (defaults 1000 and 50,
	// as Linux's icmp_msgs_per_sec and icmp_msgs_burst).
	ICMPRate, ICMPBurst int
	// RedirectRate and RedirectBurst limit ICMP redirects per second, apart from the
	// errors so that a busy hairpin does not use their budget (defaults 100 and 10).
	RedirectRate, RedirectBurst int
	// TickInterval is how often neighbour timers run (default 100ms).
	TickInterval time.Duration
	// Rules are the load-balancing rules (none: a plain router).
	Rules []balancer.RuleConfig
	// Conntrack sizes the connection table and sets its timeouts; its Now and
	// OnExpire are the router's.
	Conntrack conntrack.Config
	// ProxyPortLo and ProxyPortHi bound the full-NAT source ports (default 1024-65535).
	ProxyPortLo, ProxyPortHi uint16
	// VRRP are the virtual router instances.
	VRRP []VRRPConfig
	// ThreadNice and ThreadCPUs tune the port loops' OS threads: their niceness (0:
	// unchanged) and their CPUs, the i-th port's loop on ThreadCPUs[i % len(ThreadCPUs)]
	// (none: not pinned).
	ThreadNice int
	ThreadCPUs []int
	// SourceLimit limits the new flows each client prefix opens through the rules
	// (Rate 0: no limit).
	SourceLimit srclimit.Config
	// SYNProxy answers SYNs to the VIPs with SYN cookies (synproxy.go).
	SYNProxy SYNProxyConfig
	// NewFlowBudget bounds the new flows (and SYN cookies) one batch of a port's frames
	// may make; past it the batch's other new flows are shed, counted (0: no bound).
	NewFlowBudget int
	// NAT is the autonat and the static mappings (anat.go).
	NAT NATConfig
}

// Router is the forwarding engine. Create it with New, start it with Run.
type Router struct {
	log  *slog.Logger
	now  func() time.Time
	tick time.Duration
	// tab is the ports, indexed by routerPort.idx (and fib.NextHop.Port): a reload
	// appends new ports and marks removed ones (their slots stay), so indexes held
	// anywhere stay right (ports.go).
	tab  atomic.Pointer[portTable]
	fib  atomic.Pointer[fib.Table]
	icmp *tokenBucket
	// redirects limits ICMP redirects.
	redirects *tokenBucket
	// maxFrame is the largest frame any port sends (MTU + Ethernet header); the loops'
	// scratch buffers are made for it, so a port added later may not send larger ones.
	maxFrame int
	// loops runs the ports' receive loops while Run runs (ports.go); portsMu
	// serializes SetPorts.
	loops   loopRunner
	portsMu sync.Mutex

	// The load balancer: rules, the connection table, full-NAT source ports.
	lb         *balancer.Balancer
	ct         *conntrack.Table
	proxyPorts *nat.PortPool // full-NAT source ports
	// tracking says the connection table is in use: set once a rule, the host port or
	// an adopted flow can have put flows in it, and never cleared, as flows outlive the
	// rules that made them. Until then packets skip the table.
	tracking  atomic.Bool
	masqPorts *nat.PortPool                         // the host port's masquerade ports
	hostPort  *routerPort                           // the host port, nil without one
	pools     atomic.Pointer[map[uint32]*nat.Pools] // full-NAT proxy sources by rule ID
	ruleOpts  atomic.Pointer[map[string]RuleOptions]
	// The autonat and static mappings (anat.go): nil without any; natEver is set once
	// there were some (echo flows outlive them); natAddrs are the addresses they make
	// the router's own (under cfgMu).
	nat      atomic.Pointer[natState]
	natEver  atomic.Bool
	natAddrs map[netip.Addr]bool
	natCount natCounters
	natMap   natMap // autonat's endpoint-independent mappings

	probes *probe.Client // the health checks' probes and VRRP's pings
	// syncer is connection sync, nil when off; syncMu serializes its changes and guards
	// runCtx, Run's context (nil before Run).
	syncer atomic.Pointer[syncRun]
	syncMu sync.Mutex
	runCtx context.Context
	vrrp   vrrpState

	threadNice int
	threadCPUs []int
	// srcLimit limits new flows per source; nil: not limited. defenceMu serializes
	// SetDefence; srcLimitCfg is the limit's configuration, under it.
	srcLimit    atomic.Pointer[srclimit.Limiter]
	defenceMu   sync.Mutex
	srcLimitCfg srclimit.Config
	// The SYN proxy: its cookies (made even while it is off), its settings and state.
	cookies    *synproxy.Cookies
	proxyCount proxyCounters
	proxy      proxyState
	// newFlowBudget is Config.NewFlowBudget.
	newFlowBudget atomic.Int32

	// Fragments: the flows of balanced datagrams' fragments, the reassembly of those
	// addressed to the router, the identification of the IPv6 fragments it sends.
	frags  *fragFlows
	reasm  *reassembly.Reassembler
	fragID atomic.Uint32
	// tunnelPaths is the tunnel topology's path MTU to each server (tunnel.go).
	tunnelPaths tunnelPaths

	// cfgMu serializes the control plane's changes of routes and rules.
	cfgMu     sync.Mutex
	routes    []Route
	virtual   map[netip.Addr]int // VIPs and proxy sources answered for, by port index
	vrrpLocal map[netip.Addr]int // virtual addresses of masters in Accept_Mode, by port index
}

// routerPort is a port with the router's state about it.
type routerPort struct {
	idx    int
	cfg    PortConfig
	p      port.Port
	mac    header.MAC
	layer3 bool
	host   bool // the host port
	// linkMTU is the device's MTU, the largest a reload may set.
	linkMTU int
	// st is what a reload may change (addresses, MTU, options): one immutable
	// portState, replaced whole; read it with state().
	st    atomic.Pointer[portState]
	neigh *arpd.Neighbours
	// vrrpMux hands the port's adverts to its VRRP instances; nil until it has one.
	vrrpMux atomic.Pointer[vrrp.Mux]
	// done is closed when the port's receive loop has returned (ports.go).
	done chan struct{}

	vmacMu sync.Mutex
	vmacs  atomic.Pointer[[]header.MAC] // virtual MACs the port is master for

	counters PortCounters

	// txMu guards txOne, the one-frame batch for frames sent outside the receive loops.
	txMu  sync.Mutex
	txOne [1][]byte
}

// ErrConfig is wrapped by every error New returns for a bad configuration.
var ErrConfig = errors.New("router config")

// New builds a router over already opened ports.
func New(cfg Config) (*Router, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ICMPRate == 0 {
		cfg.ICMPRate = 1000
	}
	if cfg.ICMPBurst == 0 {
		cfg.ICMPBurst = 50
	}
	if cfg.RedirectRate == 0 {
		cfg.RedirectRate = 100
	}
	if cfg.RedirectBurst == 0 {
		cfg.RedirectBurst = 10
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	if len(cfg.Ports) == 0 {
		return nil, fmt.Errorf("%w: no ports", ErrConfig)
	}
	r := &Router{
		log:   cfg.Logger,
		now:   cfg.Now,
		tick:  cfg.TickInterval,
		icmp:  newTokenBucket(cfg.ICMPRate, cfg.ICMPBurst),
		frags: newFragFlows(),
		reasm: reassembly.New(reassembly.Config{}),

		redirects: newTokenBucket(cfg.RedirectRate, cfg.RedirectBurst),

		threadNice: cfg.ThreadNice,
		threadCPUs: slices.Clone(cfg.ThreadCPUs),
	}
	r.fragID.Store(uint32(cfg.Now().UnixNano()))
	// The cookies' secret is made once: a reload that turns the proxy off and on again
	// still accepts the cookies sent before.
	if sp := cfg.SYNProxy; sp.Secret == ([16]byte{}) {
		r.cookies = synproxy.NewRandom(cfg.Now)
	} else {
		r.cookies = synproxy.New(sp.Secret, cfg.Now)
	}
	if err := r.SetDefence(cfg.SYNProxy, cfg.SourceLimit, cfg.NewFlowBudget); err != nil {
		return nil, err
	}
	tab := &portTable{byName: map[string]int{}}
	for i, pc := range cfg.Ports {
		if _, dup := tab.byName[pc.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate port %q", ErrConfig, pc.Name)
		}
		rp, err := r.newPort(i, pc, cfg.Now, cfg.Logger)
		if err != nil {
			return nil, err
		}
		if f := rp.state().mtu + 18; f > r.maxFrame {
			r.maxFrame = f
		}
		tab.byName[pc.Name] = i
		tab.ports = append(tab.ports, rp)
	}
	r.tab.Store(tab)
	r.probes = probe.New(probeWire{r})
	r.lb = balancer.New(balancer.Config{Now: cfg.Now, Logger: cfg.Logger})
	ctc := cfg.Conntrack
	ctc.Now = cfg.Now
	ctc.OnExpire = r.flowEnded
	r.ct = conntrack.New(ctc)
	pp, err := nat.NewPortPool(cfg.ProxyPortLo, cfg.ProxyPortHi)
	if err != nil {
		return nil, fmt.Errorf("%w: proxy ports: %v", ErrConfig, err)
	}
	r.proxyPorts = pp
	r.routes = cfg.Routes
	if err := r.newMasqPorts(); err != nil {
		return nil, fmt.Errorf("%w: masquerade ports: %v", ErrConfig, err)
	}
	for _, rp := range r.ports() {
		if rp.host {
			r.hostPort = rp
			r.tracking.Store(true) // its replies come back through the connection table
		}
	}
	if err := r.newVRRP(cfg.VRRP); err != nil {
		return nil, err
	}
	if err := r.SetRules(cfg.Rules); err != nil {
		return nil, err
	}
	if err := r.SetNAT(cfg.NAT); err != nil {
		return nil, err
	}
	return r, nil
}

// SetRoutes replaces the static routes: the new table is built aside and published at
// once, so forwarding never stops.
func (r *Router) SetRoutes(routes []Route) error {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	t, err := r.buildFIB(routes)
	if err != nil {
		return err
	}
	r.routes = routes
	r.fib.Store(t)
	return nil
}

// buildFIB makes the routing table of the ports in effect: the router's own addresses
// (local), the connected prefixes of the ports, and the static routes.
func (r *Router) buildFIB(routes []Route) (*fib.Table, error) {
	return r.buildFIBFor(routes, r.tab.Load(), nil)
}

// buildFIBFor makes the routing table of the ports of tab, a port's state taken from
// next when it has one there (a reload's new addresses, not yet published), else its
// own; removed ports have none.
func (r *Router) buildFIBFor(routes []Route, tab *portTable, next map[*routerPort]*portState) (*fib.Table, error) {
	var b fib.Builder
	for _, rp := range tab.ports {
		for _, a := range stateIn(rp, next).addrs {
			b.Insert(a.Masked(), fib.NextHop{Port: rp.idx, Kind: fib.Connected})
		}
	}
	for _, rp := range tab.ports {
		for _, a := range stateIn(rp, next).addrs {
			b.Insert(netip.PrefixFrom(a.Addr(), a.Addr().BitLen()), fib.NextHop{Port: rp.idx, Kind: fib.Local})
		}
	}
	// VIPs and full-NAT proxy sources are the router's own addresses too.
	for a, i := range r.virtual {
		b.Insert(netip.PrefixFrom(a, a.BitLen()), fib.NextHop{Port: max(i, 0), Kind: fib.Local})
	}
	for a, i := range r.vrrpLocal {
		b.Insert(netip.PrefixFrom(a, a.BitLen()), fib.NextHop{Port: i, Kind: fib.Local})
	}
	for _, rt := range routes {
		nh := fib.NextHop{Gateway: rt.Via, Kind: fib.Static}
		if rt.Port != "" {
			i, ok := tab.byName[rt.Port]
			if !ok {
				return nil, fmt.Errorf("%w: route to %s: no port %q", ErrConfig, rt.To, rt.Port)
			}
			nh.Port = i
		} else {
			i, ok := connectedPortIn(rt.Via, tab, next)
			if !ok {
				return nil, fmt.Errorf("%w: route to %s: gateway %s is on no connected prefix", ErrConfig, rt.To, rt.Via)
			}
			nh.Port = i
		}
		b.Insert(rt.To.Masked(), nh)
	}
	return b.Build(), nil
}

func (r *Router) connectedPort(a netip.Addr) (int, bool) {
	return connectedPortIn(a, r.tab.Load(), nil)
}

func connectedPortIn(a netip.Addr, tab *portTable, next map[*routerPort]*portState) (int, bool) {
	for _, rp := range tab.ports {
		for _, p := range stateIn(rp, next).addrs {
			if p.Contains(a) {
				return rp.idx, true
			}
		}
	}
	return 0, false
}

// sendOne transmits one frame outside the receive loops (arpd's requests, replies and
// released queues). buf[offset:] is the frame, buf[offset-VnetHdrLen:offset] its header.
func (rp *routerPort) sendOne(buf []byte, offset int) {
	rp.txMu.Lock()
	rp.txOne[0] = buf
	_, err := rp.p.Write(rp.txOne[:], offset)
	rp.txOne[0] = nil
	rp.txMu.Unlock()
	if err != nil {
		rp.counters.Drops[DropTxError].Add(1)
	}
}

// Run forwards until ctx is done or a port fails. It starts one receive loop per port,
// each on its own locked OS thread, and the timer loop.
func (r *Router) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	r.loops.start(r, ctx, cancel, errc)
	vctx, vcancel := context.WithCancel(context.Background())
	vdone := make(chan struct{})
	go func() {
		defer close(vdone)
		r.vrrp.driver.Run(vctx)
	}()
	r.syncMu.Lock()
	r.runCtx = ctx
	if sr := r.syncer.Load(); sr != nil {
		r.startSync(sr)
	}
	r.syncMu.Unlock()
	t := time.NewTicker(r.tick)
	defer t.Stop()
	lastDrain := r.now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			for _, rp := range r.ports() {
				if rp.neigh != nil && !rp.state().removed {
					rp.neigh.Tick()
				}
			}
			r.reasm.Expire(r.now(), r.reassemblyTimedOut)
			r.proxyTick(r.now())
			if r.tracking.Load() {
				r.ct.Expire()
				r.lb.Expire()
				if now := r.now(); now.Sub(lastDrain) >= time.Second {
					lastDrain = now
					r.removeDrained()
				}
			}
		}
	}
	// VRRP masters say goodbye (priority 0) while the ports still work.
	vcancel()
	<-vdone
	// Close the ports so blocked reads return, then wait for the loops.
	r.loops.stop(r)
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}
