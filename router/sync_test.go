package router

import (
	"net/netip"
	"testing"

	"ulb/balancer"
	"ulb/conntrack"
	"ulb/conntrack/ctsync"
	"ulb/router/port/porttest"
)

// TestSyncAdopt drives the receiving side of connection sync without a network: records
// of half-NAT, full-NAT and DSR flows enter the table on the servers they name (full-NAT
// taking its proxy port), a known flow is refreshed, a record for no rule or no server
// here is counted as unknown, and the sending side describes the adopted flows as they
// came.
func TestSyncAdopt(t *testing.T) {
	rl, _ := porttest.NewPair(macRouterL, macHostL, 1500)
	rr, _ := porttest.NewPair(macRouterR, macHostR, 1500)
	vip := netip.MustParseAddr("192.0.2.100")
	s1, s2 := netip.MustParseAddr("198.51.100.21"), netip.MustParseAddr("198.51.100.22")
	proxy := netip.MustParseAddr("198.51.100.50")
	srv := []balancer.ServerConfig{{Addr: s1, Port: 8080, Weight: 1}, {Addr: s2, Port: 8080, Weight: 1}}
	rule := func(name string, port uint16, topo balancer.Topology) balancer.RuleConfig {
		rc := balancer.RuleConfig{Name: name, VIP: vip, PortLo: port, PortHi: port, Proto: balancer.ProtoTCP,
			Algorithm: balancer.RoundRobin, PMask: balancer.NoPersistence, Topology: topo, Servers: srv, Enabled: true}
		if topo == balancer.FullNAT {
			rc.ProxySource = []netip.Addr{proxy}
		}
		if topo == balancer.DSR {
			rc.Servers = []balancer.ServerConfig{{Addr: s1, Weight: 1}, {Addr: s2, Weight: 1}}
		}
		return rc
	}
	r, err := New(Config{
		Ports: []PortConfig{
			{Name: "left", Port: rl, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}},
			{Name: "right", Port: rr, Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}},
		},
		Rules: []balancer.RuleConfig{rule("half", 80, balancer.HalfNAT), rule("full", 81, balancer.FullNAT), rule("dsr", 82, balancer.DSR)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSync(SyncConfig{Peers: []netip.Addr{netip.MustParseAddr("192.0.2.12")}, Port: ctsync.DefaultPort, Refresh: 60e9}); err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddr("192.0.2.2")
	tcp := conntrack.ProtoTCP
	recs := []ctsync.Record{
		{Orig: conntrack.MakeTuple(client, vip, 40000, 80, tcp), Reply: conntrack.MakeTuple(s2, client, 8080, 40000, tcp),
			State: conntrack.StateEstablished, Topology: uint8(balancer.HalfNAT), Server: netip.AddrPortFrom(s2, 8080)},
		// A flow the peer's SYN proxy opened: its translation comes along.
		{Orig: conntrack.MakeTuple(client, vip, 40010, 80, tcp), Reply: conntrack.MakeTuple(s1, client, 8080, 40010, tcp),
			State: conntrack.StateEstablished, Topology: uint8(balancer.HalfNAT), Server: netip.AddrPortFrom(s1, 8080),
			Adjust: conntrack.Adjust{Flags: conntrack.AdjustOn | conntrack.AdjustTimestamps, Seq: 777, TS: 5, WScale: 1}},
		{Orig: conntrack.MakeTuple(client, vip, 40001, 81, tcp), Reply: conntrack.MakeTuple(s1, proxy, 8080, 61000, tcp),
			State: conntrack.StateSynRecv, Topology: uint8(balancer.FullNAT), Server: netip.AddrPortFrom(s1, 8080)},
		{Orig: conntrack.MakeTuple(client, vip, 40002, 82, tcp),
			State: conntrack.StateEstablished, Topology: uint8(balancer.DSR), Server: netip.AddrPortFrom(s2, 82)},
	}
	for _, rec := range recs {
		if o := r.syncAdopt(rec); o != ctsync.Adopted {
			t.Fatalf("record %+v: outcome %d, want adopted", rec, o)
		}
	}
	snap := r.lb.Snapshot()
	for _, rec := range recs {
		f, _, ok := r.ct.Get(rec.Orig)
		if !ok {
			t.Fatalf("no flow for %+v", rec.Orig)
		}
		back, ok := syncRecord(snap, &f)
		if !ok || back != rec {
			t.Errorf("the adopted flow is sent back as %+v (%v), want %+v", back, ok, rec)
		}
	}
	// Adopted flows carry no packet of this node's: a refresh leaves them out, so that
	// two nodes that both send do not keep each other's flows alive forever.
	n := 0
	for range r.syncFlows() {
		n++
	}
	if n != 0 {
		t.Errorf("a refresh sends %d records of flows only adopted", n)
	}
	if r.proxyPorts.Take(proxy, 61000) {
		t.Error("the full-NAT flow's proxy port was left free")
	}
	// The peer's next record for the full-NAT flow: the handshake is over.
	est := recs[2]
	est.State = conntrack.StateEstablished
	o := r.syncAdopt(est)
	if f, _, _ := r.ct.Get(est.Orig); f.State != conntrack.StateEstablished || o != ctsync.Refreshed {
		t.Errorf("refresh: state %v, outcome %d, want refreshed", f.State, o)
	}
	for _, bad := range []ctsync.Record{
		{Orig: conntrack.MakeTuple(client, vip, 40003, 99, tcp), State: conntrack.StateEstablished,
			Topology: uint8(balancer.HalfNAT), Server: netip.AddrPortFrom(s1, 8080)}, // no rule on port 99
		{Orig: conntrack.MakeTuple(client, vip, 40004, 80, tcp), Reply: conntrack.MakeTuple(s1, client, 9999, 40004, tcp),
			State: conntrack.StateEstablished, Topology: uint8(balancer.HalfNAT), Server: netip.AddrPortFrom(s1, 9999)}, // no such server port
		{Orig: conntrack.MakeTuple(client, vip, 40005, 80, tcp), State: conntrack.StateEstablished,
			Topology: uint8(balancer.DSR), Server: netip.AddrPortFrom(s1, 80)}, // another topology than the rule's
	} {
		if o := r.syncAdopt(bad); o != ctsync.Unknown {
			t.Errorf("record %+v: outcome %d, want unknown", bad, o)
		}
		if _, _, ok := r.ct.Get(bad.Orig); ok {
			t.Errorf("a flow was entered for %+v", bad)
		}
	}
	// A SYN-proxied flow whose server handshake is pending is not sent.
	pending := conntrack.Flow{Orig: recs[1].Orig, Reply: recs[1].Reply, Topology: conntrack.HalfNAT, Server: 1,
		State: conntrack.StateSynRecv, Adjust: conntrack.Adjust{Flags: conntrack.AdjustPending, Seq: 9}}
	if rec, ok := syncRecord(snap, &pending); ok {
		t.Errorf("a pending SYN-proxied flow is sent as %+v", rec)
	}
	var conns int64
	for _, s := range r.lb.Servers() {
		conns += s.ConnsNow
	}
	if conns != 4 {
		t.Errorf("the balancer counts %d flows, want the 4 adopted", conns)
	}
}
