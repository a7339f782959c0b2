// Package fakeulbd runs ulbd's own control verbs (node.Register) on a real control
// socket over canned sources, for ulbadm's tests: the balancer and the connection table
// are real ones holding canned rules and flows, the data plane's status, the VRRP
// instances and the health results are canned. What ulbadm is tested against is therefore
// what ulbd answers.
package fakeulbd

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"ulb/balancer"
	"ulb/balancer/health"
	"ulb/conntrack"
	"ulb/internal/node"
	"ulb/router/control"
	"ulb/router/header"
	"ulb/vrrp"
)

// Ports, Routes and Neighs are the data plane's canned status.
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

// Stats is the data plane's n-th show-stats snapshot (n from 1): after n seconds of
// uptime, each port has received and sent 1000 packets of 1250 bytes per second and the
// router dropped 10 per second: 2000 pps and 20 Mbit/s each way in all, 10 drops/s.
func Stats(n int) control.StatsInfo {
	k := uint64(n)
	c := control.PortCounters{RxPackets: 1000 * k, RxBytes: 1_250_000 * k, TxPackets: 1000 * k, TxBytes: 1_250_000 * k}
	return control.StatsInfo{
		Uptime:    int64(n) * int64(time.Second),
		Ports:     []control.PortStats{{Name: "outside", PortCounters: c}, {Name: "inside", PortCounters: c}},
		Drops:     map[string]uint64{"no-route": 6 * k, "ttl-exceeded": 4 * k},
		Forwarded: 2000 * k,
		Local:     5 * k,
		ICMPSent:  4 * k,
	}
}

// Now is the fake's clock: the balancer's, the connection table's and the replies'.
var Now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// Rules are the balancer's rules. web balances 192.0.2.0/24 clients (persistence /24,
// 300 s) over group web; web6 is a full-NAT Maglev rule over a port range.
var Rules = []balancer.RuleConfig{
	{Name: "web", VIP: netip.MustParseAddr("198.51.100.100"), PortLo: 80, PortHi: 80, Proto: balancer.ProtoTCP,
		Algorithm: balancer.WeightedRoundRobin, Topology: balancer.HalfNAT, PMask: 24, PersistTimeout: 300 * time.Second,
		ConnDrain: 30 * time.Second, Group: "web", Enabled: true, Servers: []balancer.ServerConfig{
			{Addr: netip.MustParseAddr("203.0.113.200"), Port: 80, Weight: 1},
			{Addr: netip.MustParseAddr("203.0.113.210"), Port: 80, Weight: 3, MaxConns: 1000},
		}},
	{Name: "web6", VIP: netip.MustParseAddr("2001:db8:1::100"), PortLo: 8000, PortHi: 8099, Proto: balancer.ProtoTCP,
		Algorithm: balancer.Maglev, Topology: balancer.FullNAT, PMask: balancer.NoPersistence,
		ProxySource: []netip.Addr{netip.MustParseAddr("2001:db8:2::50"), netip.MustParseAddr("2001:db8:2::51")},
		Group:       "web6", Enabled: true, Servers: []balancer.ServerConfig{{Addr: netip.MustParseAddr("2001:db8:2::200"), Weight: 1}}},
}

// flow is a canned connection, counted by the balancer like one it picked.
type flow struct {
	rule           string
	client, vip    netip.AddrPort
	server         netip.AddrPort
	proxy          netip.AddrPort // full-NAT
	state          conntrack.State
	age, idle      time.Duration
	packets, bytes uint64
	ended          time.Duration // > 0: the flow ended that long ago (only its persistence is left)
}

// flows are the connections: two to 203.0.113.200 and one to web6's server; a flow from
// 198.51.100.9 to 203.0.113.200 ended 258 s ago, so its persistence entry has 42 s left.
var flows = []flow{
	{rule: "web", client: ap("192.0.2.7:40001"), vip: ap("198.51.100.100:80"), server: ap("203.0.113.200:80"),
		state: conntrack.StateEstablished, age: 12 * time.Second, idle: time.Second, packets: 40, bytes: 9000},
	{rule: "web", client: ap("192.0.2.8:40002"), vip: ap("198.51.100.100:80"), server: ap("203.0.113.200:80"),
		state: conntrack.StateTimeWait, age: 30 * time.Second, idle: 20 * time.Second, packets: 12, bytes: 1500},
	{rule: "web", client: ap("198.51.100.9:40003"), vip: ap("198.51.100.100:80"), server: ap("203.0.113.200:80"),
		ended: 258 * time.Second},
	{rule: "web6", client: ap("[2001:db8:9::7]:50000"), vip: ap("[2001:db8:1::100]:8042"), server: ap("[2001:db8:2::200]:8042"),
		proxy: ap("[2001:db8:2::50]:1024"), state: conntrack.StateEstablished, age: 100 * time.Second, idle: 5 * time.Second,
		packets: 1000, bytes: 1_000_000},
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// HCResults and HealthChecks are the health checks' canned state: group web is checked
// by web-tcp (203.0.113.200 up, 203.0.113.210 down), web6 by the agent check load (load
// 20). The balancer holds the same health and load. Their times are in the local time
// zone, so that ulbadm prints them as written here.
var (
	HCResults = []health.Result{
		{Target: target("web", "203.0.113.200", 80), Check: "web-tcp", Test: "tcp", State: health.Up, LastResult: "ok",
			RTT: 350 * time.Microsecond, Successes: 12, Load: -1,
			Last: time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local), Next: time.Date(2025, 1, 2, 3, 4, 10, 0, time.Local)},
		{Target: target("web", "203.0.113.210", 80), Check: "web-tcp", Test: "tcp", State: health.Down,
			LastResult: "fail: connection refused", Fails: 3, Load: -1,
			Last: time.Date(2025, 1, 2, 3, 4, 6, 0, time.Local), Next: time.Date(2025, 1, 2, 3, 4, 11, 0, time.Local)},
		{Target: target("web6", "2001:db8:2::200", 0), Check: "load", Test: "agent", State: health.Up, LastResult: "ok",
			RTT: 1200 * time.Microsecond, Successes: 2, Load: 20,
			Last: time.Date(2025, 1, 2, 3, 4, 7, 0, time.Local), Next: time.Date(2025, 1, 2, 3, 4, 12, 0, time.Local)},
	}
	HealthChecks = []health.Check{
		{Name: "web-tcp", Test: "tcp", Interval: 5 * time.Second, Timeout: 2 * time.Second, Count: 3, Rise: 2},
		{Name: "load", Test: "agent", Interval: 5 * time.Second, Timeout: 2 * time.Second, Count: 3, Rise: 2, AgentPort: 7777},
		{Name: "web-http", Test: "http", Interval: 10 * time.Second, Timeout: 500 * time.Millisecond, Count: 2, Rise: 4,
			Port: 8080, Path: "/healthz", Host: "www.example.com", ExpectStatus: 200,
			ExpectBody: regexp.MustCompile("^ok( [0-9]+)?$")},
		{Name: "dns", Test: "udp", Interval: time.Second, Timeout: 500 * time.Millisecond, Count: 3, Rise: 2,
			Send: []byte("ping"), Expect: []byte("pong 1")},
		{Name: "custom", Test: "script", Interval: time.Minute, Timeout: 5 * time.Second, Count: 1, Rise: 1,
			Command: []string{"/usr/local/bin/check", "--quiet"}},
	}
)

func target(group, addr string, port uint16) health.Target {
	return health.Target{Group: group, Addr: netip.MustParseAddr(addr), Port: port}
}

// Routers are the VRRP instances: a master whose tracking lowered its priority, a
// backup that learnt its master's interval, and an IPv6 owner in FAULT.
var Routers = []vrrp.Info{
	{Name: "vip", VRID: 1, Version: 3, BasePriority: 200, Priority: 150, Interval: time.Second,
		MasterAdverInterval: time.Second, Preempt: true, PreemptDelay: 30 * time.Second, Accept: true,
		State: vrrp.Master, VirtualMAC: header.MAC{0, 0, 0x5e, 0, 1, 1}, Master: netip.MustParseAddr("198.51.100.10"),
		MasterPriority: 150, Addresses: []netip.Addr{netip.MustParseAddr("198.51.100.100")}, SyncGroup: "pair",
		Counters: vrrp.Counters{AdvertsSent: 1200, AdvertsReceived: 3, Drops: drops(map[vrrp.DropReason]uint64{vrrp.DropVRID: 2, vrrp.DropTTL: 1}),
			Transitions: 2, BecameMaster: 1, LastTransition: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}},
	{Name: "gw", VRID: 2, Version: 3, BasePriority: 100, Priority: 100, Interval: 100 * time.Millisecond,
		MasterAdverInterval: 2 * time.Second, State: vrrp.Backup, VirtualMAC: header.MAC{0, 0, 0x5e, 0, 1, 2},
		Master: netip.MustParseAddr("203.0.113.11"), MasterPriority: 200, Addresses: []netip.Addr{netip.MustParseAddr("203.0.113.1")},
		SyncGroup: "pair",
		Counters:  vrrp.Counters{AdvertsReceived: 600, Transitions: 1, LastTransition: time.Date(2025, 1, 2, 3, 4, 4, 0, time.UTC)}},
	{Name: "vip6", VRID: 1, Version: 3, IPv6: true, BasePriority: 255, Priority: 255, Interval: time.Second,
		MasterAdverInterval: time.Second, Preempt: true, State: vrrp.Fault, Fault: true, VirtualMAC: header.MAC{0, 0, 0x5e, 0, 2, 1},
		Addresses: []netip.Addr{netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2001:db8:1::10")}},
}

// vrrpPorts are the ports the instances run on.
var vrrpPorts = map[string]string{"vip": "outside", "gw": "inside", "vip6": "outside"}

func drops(m map[vrrp.DropReason]uint64) vrrp.Drops {
	var d vrrp.Drops
	for r, n := range m {
		d[r] = n
	}
	return d
}

// Fake is a running fake ulbd.
type Fake struct {
	// Path is the control socket's path.
	Path string
	// Events is the hub the watch verb streams from: a test publishes on it.
	Events *control.Events
}

// Start serves the verbs on a socket in a fresh temporary directory until the test
// ends, and returns the socket's path.
func Start(t testing.TB) string {
	t.Helper()
	return Run(t).Path
}

// Run is Start returning the fake, so that a test can publish events.
func Run(t testing.TB) *Fake {
	t.Helper()
	clock := Now
	now := func() time.Time { return clock }
	b := balancer.New(balancer.Config{Now: now})
	if err := b.Set(Rules); err != nil {
		t.Fatalf("fakeulbd: rules: %v", err)
	}
	table := conntrack.New(conntrack.Config{Capacity: 1024, Now: now})
	if err := addFlows(b, table, &clock); err != nil {
		t.Fatalf("fakeulbd: %v", err)
	}
	for _, r := range HCResults {
		if r.Test == "agent" {
			if err := b.SetLoad(r.Target.Group, r.Target.Addr, r.Target.Port, r.Load); err != nil {
				t.Fatalf("fakeulbd: load: %v", err)
			}
		}
		if err := b.SetHealth(r.Target.Group, r.Target.Addr, r.Target.Port, r.State == health.Up); err != nil {
			t.Fatalf("fakeulbd: health: %v", err)
		}
	}
	path := filepath.Join(t.TempDir(), "ulbd.sock")
	s := control.NewServer(path, nil)
	events := control.NewEvents(nil)
	node.Register(s, node.Sources{
		Status:    &status{b: b},
		Balancer:  b,
		Conntrack: table,
		VRRP:      vrrpSource{},
		Health:    healthSource{},
		Events:    events,
		Now:       now,
	})
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

// addFlows counts the canned flows on the balancer as the router does (Adopt when a flow
// starts, FlowEnded when it ends) and puts the live ones in the table. clock is the
// balancer's: an ended flow ends at its time.
func addFlows(b *balancer.Balancer, table *conntrack.Table, clock *time.Time) error {
	snap := b.Snapshot()
	for _, f := range flows {
		rule, _ := snap.RuleByName(f.rule)
		if f.ended > 0 {
			*clock = Now.Add(-f.ended)
		}
		pick, ok := rule.Adopt(f.client.Addr(), f.client.Port(), f.vip.Port(), f.server.Addr(), f.server.Port())
		if !ok {
			return fmt.Errorf("rule %s has no server %s", f.rule, f.server)
		}
		if f.ended > 0 {
			b.FlowEnded(rule.ID(), pick.Server, f.client.Addr(), f.client.Port(), f.vip.Port())
			*clock = Now
			continue
		}
		reply := conntrack.MakeTuple(f.server.Addr(), f.client.Addr(), f.server.Port(), f.client.Port(), conntrack.ProtoTCP)
		topo := conntrack.HalfNAT
		if f.proxy.IsValid() {
			reply = conntrack.MakeTuple(f.server.Addr(), f.proxy.Addr(), f.server.Port(), f.proxy.Port(), conntrack.ProtoTCP)
			topo = conntrack.FullNAT
		}
		err := table.Insert(conntrack.Flow{
			Orig:         conntrack.MakeTuple(f.client.Addr(), f.vip.Addr(), f.client.Port(), f.vip.Port(), conntrack.ProtoTCP),
			Reply:        reply,
			Rule:         rule.ID(),
			Server:       pick.Server,
			Topology:     topo,
			State:        f.state,
			Created:      Now.Add(-f.age).UnixNano(),
			LastSeen:     Now.Add(-f.idle).UnixNano(),
			OrigPackets:  f.packets / 2,
			OrigBytes:    f.bytes / 2,
			ReplyPackets: f.packets - f.packets/2,
			ReplyBytes:   f.bytes - f.bytes/2,
		})
		if err != nil {
			return fmt.Errorf("flow %s: %w", f.client, err)
		}
	}
	return nil
}

// status is the data plane's canned status. Every show-stats is a second of traffic:
// Stats(n) for the n-th, and on the balancer, for each rule, 10 new flows that end at once
// (from 203.0.113.99 or 2001:db8:9::99; one on each server, the rest on the first, so
// show-persist lists 203.0.113.0/24 after a show-stats), 500 packets of 500 bytes in
// (2 Mbit/s), 400 of 2500 bytes out (8 Mbit/s), both spread evenly over the rule's
// servers, and a drop.
type status struct {
	b     *balancer.Balancer
	mu    sync.Mutex
	calls int
}

func (*status) Ports() []control.PortInfo       { return Ports }
func (*status) Routes() []control.RouteInfo     { return Routes }
func (*status) Neighbours() []control.NeighInfo { return Neighs }

func (s *status) Stats() control.StatsInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	snap := s.b.Snapshot()
	for _, rc := range Rules {
		rule, _ := snap.RuleByName(rc.Name)
		n := len(rc.Servers)
		client := netip.MustParseAddr("203.0.113.99")
		if rc.VIP.Is6() {
			client = netip.MustParseAddr("2001:db8:9::99")
		}
		for i, sc := range rc.Servers {
			port := sc.Port
			if port == 0 {
				port = rc.PortLo
			}
			pick, _ := rule.Adopt(client, 0, rc.PortLo, sc.Addr, port)
			s.b.FlowEnded(rule.ID(), pick.Server, client, 0, rc.PortLo)
			if i == 0 {
				for range 10 - n {
					rule.Adopt(client, 0, rc.PortLo, sc.Addr, port)
					s.b.FlowEnded(rule.ID(), pick.Server, client, 0, rc.PortLo)
				}
			}
			for range 500 / n {
				snap.Account(rule.ID(), pick.Server, false, 500)
			}
			for range 400 / n {
				snap.Account(rule.ID(), pick.Server, true, 2500)
			}
		}
		snap.CountDrop(rule.ID(), 0)
	}
	return Stats(s.calls)
}

type vrrpSource struct{}

func (vrrpSource) VRRPInfo() []vrrp.Info           { return Routers }
func (vrrpSource) VRRPPort(instance string) string { return vrrpPorts[instance] }

type healthSource struct{}

func (healthSource) Results() []health.Result { return HCResults }
func (healthSource) Checks() []health.Check   { return HealthChecks }

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
