package router

import (
	"fmt"
	"net/netip"

	"ulb/balancer"
	"ulb/conntrack"
	"ulb/nat"
)

// SetRules installs load-balancing rules: the balancer's new snapshot, the full-NAT
// proxy source pools, and the addresses the router now owns for them (VIPs and proxy
// sources: answered for in ARP and NDP on the port whose network holds them, and
// delivered locally for ICMP echo). Flows of rules and servers that go away drain as
// their rule's conn_drain says (the drain sweep removes them once it has passed; with
// none they go on until they end); the others go on.
func (r *Router) SetRules(rules []balancer.RuleConfig) error {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	if err := r.lb.Set(rules); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	snap := r.lb.Snapshot()
	pools := map[uint32]*nat.Pools{}
	virtual := map[netip.Addr]int{}
	for _, rule := range snap.Rules() {
		virtual[rule.VIP()] = -1
		if rule.Topology() != balancer.FullNAT {
			continue
		}
		ps, err := nat.NewPools(r.proxyPorts, rule.ProxySource())
		if err != nil {
			return fmt.Errorf("%w: rule %s: %v", ErrConfig, rule.Name(), err)
		}
		pools[rule.ID()] = ps
		for _, a := range rule.ProxySource() {
			virtual[a] = -1
		}
	}
	for a := range r.natAddrs {
		virtual[a] = -1
	}
	r.pools.Store(&pools)
	if err := r.publishVirtual(virtual); err != nil {
		return err
	}
	if len(rules) > 0 {
		r.tracking.Store(true)
	}
	return nil
}

// ruleVirtual returns the addresses the rules in effect and the NAT make the router's
// own: VIPs, full-NAT proxy sources, NAT addresses (not yet placed on ports).
func (r *Router) ruleVirtual() map[netip.Addr]int {
	virtual := map[netip.Addr]int{}
	for _, rule := range r.lb.Snapshot().Rules() {
		virtual[rule.VIP()] = -1
		if rule.Topology() == balancer.FullNAT {
			for _, a := range rule.ProxySource() {
				virtual[a] = -1
			}
		}
	}
	for a := range r.natAddrs {
		virtual[a] = -1
	}
	return virtual
}

// publishVirtual makes virtual the router's virtual addresses: answered for in ARP and
// NDP on the port whose network holds them, local in the routing table. Called with
// cfgMu held.
func (r *Router) publishVirtual(virtual map[netip.Addr]int) error {
	for a := range virtual {
		if i, ok := r.connectedPort(a); ok {
			virtual[a] = i
		}
	}
	// Stop answering for what is gone, answer for what is new.
	// Addresses a VRRP instance backs up are answered for by it, with its virtual MAC,
	// while it is master.
	for a, i := range r.virtual {
		if j, ok := virtual[a]; (!ok || j != i) && i >= 0 && r.ports()[i].neigh != nil && !r.vrrp.owned[a] {
			r.ports()[i].neigh.RemoveVirtual(a)
		}
	}
	for a, i := range virtual {
		if i >= 0 && r.ports()[i].neigh != nil && !r.vrrp.owned[a] {
			r.ports()[i].neigh.AddVirtual(a, r.ports()[i].mac)
		}
	}
	old := r.virtual
	r.virtual = virtual
	t, err := r.buildFIB(r.routes)
	if err != nil {
		r.virtual = old
		return err
	}
	r.fib.Store(t)
	for a, i := range virtual {
		if _, was := old[a]; !was && i >= 0 && r.ports()[i].neigh != nil && !r.vrrp.owned[a] {
			r.ports()[i].neigh.AnnounceAddress(a)
		}
	}
	return nil
}

// RuleOptions are the router's own settings of a rule (health checks' effects).
type RuleOptions struct {
	// SorryServer takes the rule's new flows while every server is down (half-NAT to
	// it); invalid for none. Port 0 keeps the client's destination port.
	SorryServer netip.AddrPort
	// KeepFlowsOnDown keeps the flows of a server health checks declared down; else they
	// are removed, and the client's next segment gets a RST.
	KeepFlowsOnDown bool
}

// SetRuleOptions sets the options of the rules by name.
func (r *Router) SetRuleOptions(opts map[string]RuleOptions) {
	m := make(map[string]RuleOptions, len(opts))
	for k, v := range opts {
		m[k] = v
	}
	r.ruleOpts.Store(&m)
}

func (r *Router) ruleOptions(name string) RuleOptions {
	if m := r.ruleOpts.Load(); m != nil {
		return (*m)[name]
	}
	return RuleOptions{}
}

// proxyPools returns the full-NAT source pools of a rule.
func (r *Router) proxyPools(rule *balancer.Rule) *nat.Pools {
	if m := r.pools.Load(); m != nil {
		return (*m)[rule.ID()]
	}
	return nil
}

// flowEnded is the connection table's OnExpire: it gives the flow's server connection
// and full-NAT source port back.
func (r *Router) flowEnded(f conntrack.Flow) {
	switch f.Topology {
	case conntrack.Masquerade:
		r.masqPorts.Put(f.Reply.Dst(), f.Reply.DstPort)
		return
	case conntrack.AutoNAT:
		r.natMap.put(r, natMapKeyOf(f.Orig.Src(), f.Orig.SrcPort, f.Orig.Proto, f.Reply.Dst()))
		return
	case conntrack.HostPort, conntrack.SNAT, conntrack.DNAT:
		return
	}
	if f.Server == sorryServer {
		return // a sorry-server flow took nothing from the balancer
	}
	r.lb.FlowEnded(f.Rule, f.Server, f.Orig.Src(), f.Orig.SrcPort, f.Orig.DstPort)
	if f.Topology == conntrack.FullNAT {
		r.proxyPorts.Put(f.Reply.Dst(), f.Reply.DstPort)
	}
}

// removeDrained removes the flows of disabled servers, of draining servers past their
// rule's conn_drain, and of rules and servers no longer configured once their rule's
// conn_drain has passed since they went.
func (r *Router) removeDrained() {
	refs := r.lb.Drained()
	if len(refs) == 0 {
		return
	}
	type pair struct{ rule, server uint32 }
	gone := make(map[pair]bool, len(refs))
	for _, ref := range refs {
		if ref.Reason == balancer.ReasonDown && r.ruleOptions(ref.RuleName).KeepFlowsOnDown {
			continue
		}
		gone[pair{ref.Rule, ref.Server}] = true
	}
	if len(gone) == 0 {
		return
	}
	n := r.ct.DeleteIf(func(f conntrack.Flow) bool { return gone[pair{f.Rule, f.Server}] })
	if n > 0 {
		r.log.Info("flows removed", "flows", n, "servers", len(refs))
	}
}

// Balancer is the router's balancer, for the control plane's listings and admin verbs.
func (r *Router) Balancer() *balancer.Balancer { return r.lb }

// Conntrack is the router's connection table, for the control plane's listings.
func (r *Router) Conntrack() *conntrack.Table { return r.ct }
