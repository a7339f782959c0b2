// Package fakeulbd serves canned answers on a real control socket, for ulbadm's tests.
package fakeulbd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"ulb/router/control"
)

// Ports, Routes and Neighs are the canned answers.
var (
	Ports = []control.PortInfo{
		{Name: "outside", Device: "eth1", Kind: "afpacket", MAC: "02:00:00:00:00:01", MTU: 1500,
			Addresses: []string{"198.51.100.10/24", "2001:db8:1::10/64"}, Up: true},
		{Name: "inside", Device: "eth2", Kind: "afpacket", MAC: "02:00:00:00:00:02", MTU: 9000,
			Addresses: []string{"203.0.113.10/24"}, Up: true},
	}
	Routes = []control.RouteInfo{
		{Prefix: "0.0.0.0/0", Via: "198.51.100.1", Port: "outside", Kind: "static"},
		{Prefix: "198.51.100.0/24", Port: "outside", Kind: "connected"},
		{Prefix: "203.0.113.10/32", Port: "inside", Kind: "local"},
	}
	Neighs = []control.NeighInfo{
		{Port: "outside", Address: "198.51.100.1", MAC: "02:00:00:00:01:01", State: "reachable", Age: 4},
		{Port: "inside", Address: "203.0.113.200", State: "incomplete", Age: 0},
	}
)

// Stats returns the n-th canned stats snapshot (n from 1) for args: after n seconds of
// uptime, each port has received and sent 1000 packets of 1250 bytes per second and the
// router dropped 10 per second: 2000 pps and 20 Mbit/s each way in all, 10 drops/s.
// The load balancer's counters are those of RuleCounters and ServerCounters, selected
// as control.ShowStatsArgs says.
func Stats(n int, args control.ShowStatsArgs) (control.StatsInfo, error) {
	k := uint64(n)
	c := control.PortCounters{RxPackets: 1000 * k, RxBytes: 1_250_000 * k, TxPackets: 1000 * k, TxBytes: 1_250_000 * k}
	si := control.StatsInfo{
		Uptime:    int64(n) * int64(time.Second),
		Ports:     []control.PortStats{{Name: "outside", PortCounters: c}, {Name: "inside", PortCounters: c}},
		Drops:     map[string]uint64{"no-route": 6 * k, "ttl-exceeded": 4 * k},
		Forwarded: 2000 * k,
		Local:     5 * k,
		ICMPSent:  4 * k,
	}
	if args.Server != "" {
		addr, port, err := control.ParseServerRef(args.Server)
		if err != nil {
			return si, err
		}
		for _, r := range Rules {
			if args.Rule != "" && r.Name != args.Rule {
				continue
			}
			for _, g := range Groups {
				if g.Name != r.ServerGroup {
					continue
				}
				for _, m := range g.Servers {
					if control.MatchServer(addr, port, netip.MustParseAddr(m.Address), m.Port) {
						si.Servers = append(si.Servers, control.ServerStats{Rule: r.Name, Group: g.Name,
							Address: m.Address, Port: m.Port, LBCounters: ServerCounters(n)})
					}
				}
			}
		}
		if len(si.Servers) == 0 {
			return si, fmt.Errorf("no server %s", args.Server)
		}
		return si, nil
	}
	for _, r := range Rules {
		if args.Rule == "" || r.Name == args.Rule {
			si.Rules = append(si.Rules, control.RuleStats{Name: r.Name, LBCounters: RuleCounters(n)})
		}
	}
	if args.Rule != "" {
		if len(si.Rules) == 0 {
			return si, fmt.Errorf("no rule named %q", args.Rule)
		}
		for _, g := range Groups {
			if g.Name != findRule(args.Rule).ServerGroup {
				continue
			}
			for _, m := range g.Servers {
				si.Servers = append(si.Servers, control.ServerStats{Rule: args.Rule, Group: g.Name,
					Address: m.Address, Port: m.Port, LBCounters: ServerCounters(n)})
			}
		}
	}
	return si, nil
}

// RuleCounters are every rule's counters after n seconds: 3 flows now, 10 new flows,
// 500 packets (2 Mbit/s) in and 400 packets (8 Mbit/s) out and 1 drop per second.
func RuleCounters(n int) control.LBCounters {
	k := uint64(n)
	return control.LBCounters{ConnsActive: 3, ConnsTotal: 10 * k, PacketsIn: 500 * k, BytesIn: 250_000 * k,
		PacketsOut: 400 * k, BytesOut: 1_000_000 * k, Drops: k}
}

// ServerCounters are every server's counters within a rule after n seconds: half a
// rule's, with 1 flow now and no drops.
func ServerCounters(n int) control.LBCounters {
	k := uint64(n)
	return control.LBCounters{ConnsActive: 1, ConnsTotal: 5 * k, PacketsIn: 250 * k, BytesIn: 125_000 * k,
		PacketsOut: 200 * k, BytesOut: 500_000 * k}
}

// Rules, Groups, Conns and Persist are the load balancer's canned answers; the rules'
// and servers' states start as here and change with the enable and disable verbs.
var (
	Rules = []control.RuleInfo{
		{Name: "web", Enabled: true, VIP: "198.51.100.100", Ports: "80", Protocol: "tcp", Algorithm: "weighted-roundrobin",
			Topology: "half-nat", PMask: 24, PersistTimeout: 300, ConnDrain: 30, ServerGroup: "web", Servers: 2, ConnsActive: 3},
		{Name: "web6", Enabled: true, VIP: "2001:db8:1::100", Ports: "8000-8099", Protocol: "tcp", Algorithm: "maglev",
			Topology: "full-nat", ProxySource: []string{"2001:db8:2::50", "2001:db8:2::51"}, PMask: -1,
			ServerGroup: "web6", Servers: 1, ConnsActive: 1},
	}
	Groups = []control.ServerGroupInfo{
		{Name: "web", Servers: []control.GroupMember{
			{Address: "203.0.113.200", Port: 80, Weight: 1},
			{Address: "203.0.113.210", Port: 80, Weight: 3, MaxConns: 1000},
		}, Rules: []string{"web"}},
		{Name: "web6", Servers: []control.GroupMember{{Address: "2001:db8:2::200", Weight: 1}}, Rules: []string{"web6"}},
		{Name: "spare", Servers: []control.GroupMember{{Address: "203.0.113.220", Weight: 1}}},
	}
	Conns = []control.ConnInfo{
		{Rule: "web", Protocol: "tcp", Client: "192.0.2.7:40001", VIP: "198.51.100.100:80", Server: "203.0.113.200:80",
			State: "ESTABLISHED", Age: 12, Idle: 1, Packets: 40, Bytes: 9000},
		{Rule: "web", Protocol: "tcp", Client: "192.0.2.8:40002", VIP: "198.51.100.100:80", Server: "203.0.113.210:80",
			State: "TIME_WAIT", Age: 30, Idle: 20, Packets: 12, Bytes: 1500},
		{Rule: "web", Protocol: "tcp", Client: "192.0.2.9:40003", VIP: "198.51.100.100:80", Server: "203.0.113.210:80",
			State: "SYN_RECV", Age: 0, Idle: 0, Packets: 1, Bytes: 60},
		{Rule: "web6", Protocol: "tcp", Client: "[2001:db8:9::7]:50000", VIP: "[2001:db8:1::100]:8042",
			Proxy: "[2001:db8:2::50]:1024", Server: "[2001:db8:2::200]:8042", State: "ESTABLISHED", Age: 100, Idle: 5,
			Packets: 1000, Bytes: 1_000_000},
	}
	Persist = []control.PersistInfo{
		{Rule: "web", Client: "192.0.2.0/24", Server: "203.0.113.200:80", Conns: 2, Expires: 300},
		{Rule: "web", Client: "198.51.100.0/24", Server: "203.0.113.210:80", Expires: 42},
	}
)

// HCResults and HealthChecks are the health checks' canned answers: group web is
// checked by web-tcp (one server up, one down), web6 by the agent check load. Their
// times are in the local time zone, so that ulbadm prints them as written here.
var (
	HCResults = []control.HCResult{
		{Group: "web", Rules: []string{"web"}, Address: "203.0.113.200", Port: 80, Check: "web-tcp", Test: "tcp",
			State: control.HealthUp, LastResult: "ok", RTT: 350, Successes: 12, Load: -1,
			Last: time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local), Next: time.Date(2025, 1, 2, 3, 4, 10, 0, time.Local)},
		{Group: "web", Rules: []string{"web"}, Address: "203.0.113.210", Port: 80, Check: "web-tcp", Test: "tcp",
			State: control.HealthDown, LastResult: "fail: connection refused", Fails: 3, Load: -1,
			Last: time.Date(2025, 1, 2, 3, 4, 6, 0, time.Local), Next: time.Date(2025, 1, 2, 3, 4, 11, 0, time.Local)},
		{Group: "web6", Rules: []string{"web6"}, Address: "2001:db8:2::200", Check: "load", Test: "agent",
			State: control.HealthUp, LastResult: "ok", RTT: 1200, Successes: 2, Load: 20,
			Last: time.Date(2025, 1, 2, 3, 4, 7, 0, time.Local), Next: time.Date(2025, 1, 2, 3, 4, 12, 0, time.Local)},
	}
	HealthChecks = []control.HealthCheckInfo{
		{Name: "web-tcp", Test: "tcp", Interval: 5000, Timeout: 2000, Count: 3, Rise: 2, Groups: []string{"web"}},
		{Name: "load", Test: "agent", Interval: 5000, Timeout: 2000, Count: 3, Rise: 2, Groups: []string{"web6"},
			AgentPort: 7777},
		{Name: "web-http", Test: "http", Interval: 10000, Timeout: 500, Count: 2, Rise: 4, Port: 8080,
			Path: "/healthz", Host: "www.example.com", ExpectStatus: 200, ExpectBody: "^ok( [0-9]+)?$"},
		{Name: "dns", Test: "udp", Interval: 1000, Timeout: 500, Count: 3, Rise: 2, Send: "ping", Expect: "pong 1"},
		{Name: "custom", Test: "script", Interval: 60000, Timeout: 5000, Count: 1, Rise: 1,
			Command: []string{"/usr/local/bin/check", "--quiet"}},
	}
)

// hcResults answers show-hc-result.
func hcResults(a control.ShowHCResultArgs) ([]control.HCResult, error) {
	group := a.Group
	switch {
	case a.Rule != "" && a.Group != "":
		return nil, fmt.Errorf("give a rule or a group, not both")
	case a.Rule != "":
		r := findRule(a.Rule)
		if r == nil {
			return nil, fmt.Errorf("no rule named %q", a.Rule)
		}
		group = r.ServerGroup
	case a.Group != "" && !slices.ContainsFunc(Groups, func(g control.ServerGroupInfo) bool { return g.Name == a.Group }):
		return nil, fmt.Errorf("no servergroup named %q", a.Group)
	}
	var addr netip.Addr
	var port uint16
	if a.Server != "" {
		var err error
		if addr, port, err = control.ParseServerRef(a.Server); err != nil {
			return nil, err
		}
	}
	out := []control.HCResult{}
	for _, r := range HCResults {
		if (group == "" || r.Group == group) &&
			(a.Server == "" || control.MatchServer(addr, port, netip.MustParseAddr(r.Address), r.Port)) {
			out = append(out, r)
		}
	}
	if a.Server != "" && len(out) == 0 {
		return nil, fmt.Errorf("no health check result for server %s", a.Server)
	}
	return out, nil
}

// healthOf returns a server's health and load as HCResults says.
func healthOf(group string, m control.GroupMember) (string, int) {
	for _, r := range HCResults {
		if r.Group == group && r.Address == m.Address && r.Port == m.Port {
			return r.State, r.Load
		}
	}
	return control.HealthUnknown, -1
}

func findRule(name string) *control.RuleInfo {
	for i := range Rules {
		if Rules[i].Name == name {
			return &Rules[i]
		}
	}
	return nil
}

func filter[T any](args json.RawMessage, key func(T) string, all []T, what string) (any, error) {
	var a struct {
		Name string `json:"name"`
		Port string `json:"port"`
	}
	if len(args) > 0 {
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, fmt.Errorf("bad arguments: %w", err)
		}
	}
	want := a.Name + a.Port
	if want == "" {
		return all, nil
	}
	var out []T
	for _, v := range all {
		if key(v) == want {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s named %q", what, want)
	}
	return out, nil
}

// Routers are show-router's canned answer: a master whose tracking lowered its
// priority, a backup that learnt its master's interval, and an IPv6 owner in FAULT.
var Routers = []control.RouterInfo{
	{Name: "vip", VRID: 1, Port: "outside", Family: control.FamilyIPv4, Version: 3, Priority: 200, EffectivePriority: 150,
		AdverInterval: 1000, MasterAdverInterval: 1000, Preempt: true, PreemptDelay: 30000, Accept: true,
		State: control.RouterMaster, VMAC: "00:00:5e:00:01:01", Master: "198.51.100.10", MasterPriority: 150,
		Addresses: []string{"198.51.100.100/24"}, SyncGroup: "pair",
		Counters: control.VRRPCounters{AdvertsSent: 1200, AdvertsReceived: 3, Drops: map[string]uint64{"vrid-mismatch": 2, "bad-ttl": 1},
			Transitions: 2, BecameMaster: 1, LastTransition: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}},
	{Name: "gw", VRID: 2, Port: "inside", Family: control.FamilyIPv4, Version: 3, Priority: 100, EffectivePriority: 100,
		AdverInterval: 100, MasterAdverInterval: 2000, State: control.RouterBackup, VMAC: "00:00:5e:00:01:02",
		Master: "203.0.113.11", MasterPriority: 200, Addresses: []string{"203.0.113.1/24"}, SyncGroup: "pair",
		Counters: control.VRRPCounters{AdvertsReceived: 600, Transitions: 1, LastTransition: time.Date(2025, 1, 2, 3, 4, 4, 0, time.UTC)}},
	{Name: "vip6", VRID: 1, Port: "outside", Family: control.FamilyIPv6, Version: 3, Priority: 255, EffectivePriority: 255,
		AdverInterval: 1000, MasterAdverInterval: 1000, Preempt: true, State: control.RouterFault, Fault: "port outside down",
		VMAC: "00:00:5e:00:02:01", Addresses: []string{"fe80::1/64", "2001:db8:1::10/64"}},
}

// Fake is a running fake ulbd.
type Fake struct {
	// Path is the control socket's path.
	Path string
	// Events is the hub the fake's watch verb streams from: a test publishes on it.
	Events *control.Events
}

// Start serves the canned answers on a socket in a fresh temporary directory until the
// test ends, and returns the socket's path.
func Start(t testing.TB) string {
	t.Helper()
	return Run(t).Path
}

// Run is Start returning the fake, so that a test can publish events.
func Run(t testing.TB) *Fake {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ulbd.sock")
	s := control.NewServer(path, nil)
	events := control.NewEvents(nil)
	s.HandleStream(control.VerbWatch, events.Watch)
	s.Handle(control.VerbShowRouter, func(_ context.Context, args json.RawMessage) (any, error) {
		return filter(args, func(r control.RouterInfo) string { return r.Name }, Routers, "router")
	})
	s.Handle(control.VerbShowPort, func(_ context.Context, args json.RawMessage) (any, error) {
		return filter(args, func(p control.PortInfo) string { return p.Name }, Ports, "port")
	})
	s.Handle(control.VerbShowRoute, func(context.Context, json.RawMessage) (any, error) { return Routes, nil })
	s.Handle(control.VerbShowNeigh, func(_ context.Context, args json.RawMessage) (any, error) {
		return filter(args, func(n control.NeighInfo) string { return n.Port }, Neighs, "port")
	})
	var mu sync.Mutex
	calls := 0
	s.Handle(control.VerbShowStats, func(_ context.Context, raw json.RawMessage) (any, error) {
		var a control.ShowStatsArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		return Stats(calls, a)
	})
	s.Handle(control.VerbShowHCResult, func(_ context.Context, raw json.RawMessage) (any, error) {
		var a control.ShowHCResultArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		return hcResults(a)
	})
	s.Handle(control.VerbShowHealthCheck, func(_ context.Context, args json.RawMessage) (any, error) {
		return filter(args, func(c control.HealthCheckInfo) string { return c.Name }, HealthChecks, "healthcheck")
	})
	lb := newBalancer()
	s.Handle(control.VerbShowRule, func(_ context.Context, raw json.RawMessage) (any, error) {
		var a control.ShowRuleArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		return lb.rules(a.Name)
	})
	s.Handle(control.VerbShowServerGroup, func(_ context.Context, args json.RawMessage) (any, error) {
		return filter(args, func(g control.ServerGroupInfo) string { return g.Name }, Groups, "servergroup")
	})
	s.Handle(control.VerbShowServer, func(_ context.Context, raw json.RawMessage) (any, error) {
		var a control.ShowServerArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		return lb.servers(a.Rule)
	})
	s.Handle(control.VerbShowConn, func(_ context.Context, raw json.RawMessage) (any, error) {
		var a control.ShowConnArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		out := control.ConnList{Conns: []control.ConnInfo{}}
		for _, c := range Conns {
			if (a.Rule == "" || c.Rule == a.Rule) && (a.Server == "" || matchEndpoint(a.Server, c.Server)) {
				out.Total++
				if len(out.Conns) < listLimit(a.Limit) {
					out.Conns = append(out.Conns, c)
				}
			}
		}
		return out, nil
	})
	s.Handle(control.VerbShowPersist, func(_ context.Context, raw json.RawMessage) (any, error) {
		var a control.ShowPersistArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		out := control.PersistList{Entries: []control.PersistInfo{}}
		for _, e := range Persist {
			if a.Rule == "" || e.Rule == a.Rule {
				out.Total++
				if len(out.Entries) < listLimit(a.Limit) {
					out.Entries = append(out.Entries, e)
				}
			}
		}
		return out, nil
	})
	for verb, state := range map[string]string{control.VerbEnableServer: control.ServerEnabled,
		control.VerbDisableServer: control.ServerDisabled, control.VerbDrainServer: control.ServerDraining} {
		s.Handle(verb, func(_ context.Context, raw json.RawMessage) (any, error) {
			var a control.ServerArgs
			if err := decode(raw, &a); err != nil {
				return nil, err
			}
			return lb.setServer(a, state)
		})
	}
	for verb, on := range map[string]bool{control.VerbEnableRule: true, control.VerbDisableRule: false} {
		s.Handle(verb, func(_ context.Context, raw json.RawMessage) (any, error) {
			var a control.RuleArgs
			if err := decode(raw, &a); err != nil {
				return nil, err
			}
			return lb.setRule(a.Name, on)
		})
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &Fake{Path: path, Events: events}
}

// WaitWatchers waits until n watch streams are open, failing the test after 5 seconds.
func (f *Fake) WaitWatchers(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.Events.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d watchers, want %d", f.Events.Subscribers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func decode(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("bad arguments: %w", err)
	}
	return nil
}

func listLimit(n int) int {
	if n <= 0 {
		return control.DefaultListLimit
	}
	return min(n, control.MaxListLimit)
}

// matchEndpoint reports whether the "ip:port" endpoint is the server ref names.
func matchEndpoint(ref, ep string) bool {
	addr, port, err := control.ParseServerRef(ref)
	if err != nil {
		return false
	}
	ap, err := netip.ParseAddrPort(ep)
	return err == nil && control.MatchServer(addr, port, ap.Addr(), ap.Port())
}

// balancer holds the states that enable and disable verbs change, per Start.
type balancer struct {
	mu      sync.Mutex
	enabled map[string]bool   // rule → enabled
	state   map[string]string // group/address/port → server state
}

func newBalancer() *balancer {
	b := &balancer{enabled: make(map[string]bool), state: make(map[string]string)}
	for _, r := range Rules {
		b.enabled[r.Name] = r.Enabled
	}
	return b
}

func serverKey(group string, m control.GroupMember) string {
	return fmt.Sprintf("%s/%s/%d", group, m.Address, m.Port)
}

func (b *balancer) rules(name string) ([]control.RuleInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []control.RuleInfo
	for _, r := range Rules {
		if name == "" || r.Name == name {
			r.Enabled = b.enabled[r.Name]
			out = append(out, r)
		}
	}
	if len(out) == 0 && name != "" {
		return nil, fmt.Errorf("no rule named %q", name)
	}
	return out, nil
}

// servers lists each rule's servers (of one rule when rule is not empty).
func (b *balancer) servers(rule string) ([]control.ServerInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rule != "" && findRule(rule) == nil {
		return nil, fmt.Errorf("no rule named %q", rule)
	}
	return b.list(func(r control.RuleInfo, _ string, _ control.GroupMember) bool { return rule == "" || r.Name == rule }), nil
}

func (b *balancer) list(keep func(control.RuleInfo, string, control.GroupMember) bool) []control.ServerInfo {
	out := []control.ServerInfo{}
	for _, r := range Rules {
		for _, g := range Groups {
			if g.Name != r.ServerGroup {
				continue
			}
			for i, m := range g.Servers {
				if !keep(r, g.Name, m) {
					continue
				}
				st := b.state[serverKey(g.Name, m)]
				if st == "" {
					st = control.ServerEnabled
				}
				si := control.ServerInfo{Rule: r.Name, Group: g.Name, Address: m.Address, Port: m.Port, Weight: m.Weight,
					MaxConns: m.MaxConns, State: st, ConnsActive: uint64(i + 1), ConnsTotal: uint64(10 * (i + 1))}
				si.Health, si.Load = healthOf(g.Name, m)
				si.EffectiveWeight = m.Weight
				if si.Load >= 0 {
					si.EffectiveWeight = m.Weight * (100 - si.Load) / 20 // in proportion, as the balancer keeps it
				}
				if st == control.ServerDraining {
					si.Draining = 5
				}
				out = append(out, si)
			}
		}
	}
	return out
}

func (b *balancer) setServer(a control.ServerArgs, state string) ([]control.ServerInfo, error) {
	addr, port, err := control.ParseServerRef(a.Server)
	if err != nil {
		return nil, err
	}
	if a.Rule != "" && findRule(a.Rule) == nil {
		return nil, fmt.Errorf("no rule named %q", a.Rule)
	}
	if a.Group != "" && !slices.ContainsFunc(Groups, func(g control.ServerGroupInfo) bool { return g.Name == a.Group }) {
		return nil, fmt.Errorf("no servergroup named %q", a.Group)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	hit := false
	for _, g := range Groups {
		if a.Group != "" && g.Name != a.Group || a.Rule != "" && g.Name != findRule(a.Rule).ServerGroup {
			continue
		}
		for _, m := range g.Servers {
			if control.MatchServer(addr, port, netip.MustParseAddr(m.Address), m.Port) {
				b.state[serverKey(g.Name, m)] = state
				hit = true
			}
		}
	}
	if !hit {
		return nil, fmt.Errorf("no server %s", a.Server)
	}
	return b.list(func(r control.RuleInfo, g string, m control.GroupMember) bool {
		return (a.Group == "" || g == a.Group) && (a.Rule == "" || r.Name == a.Rule) &&
			control.MatchServer(addr, port, netip.MustParseAddr(m.Address), m.Port)
	}), nil
}

func (b *balancer) setRule(name string, on bool) (control.RuleInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := findRule(name)
	if r == nil {
		return control.RuleInfo{}, fmt.Errorf("no rule named %q", name)
	}
	b.enabled[name] = on
	out := *r
	out.Enabled = on
	return out, nil
}
