package node

import (
	"container/heap"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"ulb/balancer"
	"ulb/conntrack"
	"ulb/router/control"
)

// registerLB installs the load balancer's verbs.
func registerLB(srv *control.Server, s Sources) {
	b := s.Balancer
	handle(srv, control.VerbShowRule, func(a control.ShowRuleArgs) (any, error) { return ruleInfos(b, a.Name) })
	handle(srv, control.VerbShowServerGroup, func(a control.ShowServerGroupArgs) (any, error) { return groupInfos(b, a.Name) })
	handle(srv, control.VerbShowServer, func(a control.ShowServerArgs) (any, error) { return serverInfos(b, a.Rule, s.Now()) })
	handle(srv, control.VerbShowConn, func(a control.ShowConnArgs) (any, error) { return connList(b, s.Conntrack, a, s.Now()) })
	handle(srv, control.VerbShowPersist, func(a control.ShowPersistArgs) (any, error) { return persistList(b, a, s.Now()) })
	for _, verb := range []string{control.VerbEnableServer, control.VerbDisableServer, control.VerbDrainServer} {
		handle(srv, verb, func(a control.ServerArgs) (any, error) { return s.setServerState(verb, a, "") })
	}
	for verb, fn := range map[string]func(string) error{
		control.VerbEnableRule:  b.EnableRule,
		control.VerbDisableRule: b.DisableRule,
	} {
		handle(srv, verb, func(a control.RuleArgs) (any, error) {
			if a.Name == "" {
				return nil, fmt.Errorf("%w: a rule name is needed", errBadArgs)
			}
			if err := fn(a.Name); errors.Is(err, balancer.ErrNotFound) {
				return nil, fmt.Errorf("no rule %q", a.Name)
			} else if err != nil {
				return nil, fmt.Errorf("rule %q: %w", a.Name, err)
			}
			infos, err := ruleInfos(b, a.Name)
			if err != nil {
				return nil, err
			}
			return infos[0], nil
		})
	}
}

func ruleInfos(b *balancer.Balancer, name string) ([]control.RuleInfo, error) {
	stats := b.Stats()
	active := map[string]uint64{}
	for _, s := range stats.Rules {
		active[s.Name] = uint64(max(s.ConnsNow, 0))
	}
	var out []control.RuleInfo
	for _, ri := range b.Rules() {
		c := ri.Config
		if name != "" && c.Name != name {
			continue
		}
		info := control.RuleInfo{
			Name:        c.Name,
			Enabled:     ri.Enabled,
			VIP:         c.VIP.String(),
			Ports:       portRange(c.PortLo, c.PortHi),
			Protocol:    protoName(c.Proto),
			Algorithm:   c.Algorithm,
			Topology:    c.Topology.String(),
			PMask:       c.PMask,
			PersistKey:  c.PersistKey.String(),
			ConnDrain:   int64(c.ConnDrain / time.Second),
			ServerGroup: c.Group,
			Servers:     len(c.Servers),
			ConnsActive: active[c.Name],
		}
		if c.TunnelSource.IsValid() {
			info.TunnelSource = c.TunnelSource.String()
		}
		if info.Algorithm == "" {
			info.Algorithm = balancer.RoundRobin
		}
		if c.PMask != balancer.NoPersistence || c.PersistKey == balancer.PersistDstPort {
			info.PersistTimeout = int64(c.PersistTimeout / time.Second)
		}
		for _, a := range c.ProxySource {
			info.ProxySource = append(info.ProxySource, a.String())
		}
		out = append(out, info)
	}
	if name != "" && len(out) == 0 {
		return nil, fmt.Errorf("no rule %q", name)
	}
	return out, nil
}

func groupInfos(b *balancer.Balancer, name string) ([]control.ServerGroupInfo, error) {
	var out []control.ServerGroupInfo
	seen := map[string]int{}
	for _, ri := range b.Rules() {
		c := ri.Config
		g := c.Group
		if g == "" || (name != "" && g != name) {
			continue
		}
		if i, ok := seen[g]; ok {
			out[i].Rules = append(out[i].Rules, c.Name)
			continue
		}
		info := control.ServerGroupInfo{Name: g, Rules: []string{c.Name}}
		for _, s := range c.Servers {
			info.Servers = append(info.Servers, control.GroupMember{
				Address: s.Addr.String(), Port: s.Port, Weight: s.Weight, MaxConns: s.MaxConns,
				MinConns: s.LowConns(),
			})
		}
		seen[g] = len(out)
		out = append(out, info)
	}
	if name != "" && len(out) == 0 {
		return nil, fmt.Errorf("no server group %q used by a rule", name)
	}
	return out, nil
}

func serverInfos(b *balancer.Balancer, rule string, now time.Time) ([]control.ServerInfo, error) {
	var out []control.ServerInfo
	for _, si := range b.Servers() {
		if rule != "" && si.Rule != rule {
			continue
		}
		info := control.ServerInfo{
			Rule:            si.Rule,
			Group:           si.Group,
			Address:         si.Addr.String(),
			Port:            si.Port,
			Weight:          si.Weight,
			MaxConns:        si.MaxConns,
			MinConns:        si.MinConns,
			Overloaded:      si.Overloaded,
			State:           serverStateName(si.State),
			Health:          si.Health,
			Load:            si.Load,
			EffectiveWeight: si.EffectiveWeight,
			ConnsActive:     uint64(max(si.ConnsNow, 0)),
			ConnsTotal:      si.ConnsTotal,
		}
		if si.State == balancer.Draining && !si.Since.IsZero() {
			info.Draining = int64(now.Sub(si.Since) / time.Second)
		}
		out = append(out, info)
	}
	if rule != "" && len(out) == 0 {
		return nil, fmt.Errorf("no rule %q", rule)
	}
	return out, nil
}

// setServerState runs a server's admin verb (enable-server, disable-server or
// drain-server) for the control socket and the web page alike, returns the servers it
// matched and publishes an EventServer for each (group, server) whose state it changed;
// by says who asked ("" for the control socket).
func (s Sources) setServerState(verb string, a control.ServerArgs, by string) ([]control.ServerInfo, error) {
	b := s.Balancer
	fn := map[string]func(string, netip.Addr, uint16) error{
		control.VerbEnableServer:  b.EnableServer,
		control.VerbDisableServer: b.DisableServer,
		control.VerbDrainServer:   b.DrainServer,
	}[verb]
	if fn == nil {
		return nil, fmt.Errorf("%w: no server verb %q", errBadArgs, verb)
	}
	now := s.Now()
	before := map[string]string{}
	if all, err := serverInfos(b, "", now); err == nil {
		for _, si := range all {
			before[si.Rule+"/"+si.Endpoint()] = si.State
		}
	}
	out, err := changeServer(b, a, fn, now)
	if err != nil || s.Events == nil {
		return out, err
	}
	reason := verb
	if by != "" {
		reason += " from " + by
	}
	published := map[string]bool{}
	for _, si := range out {
		name := si.Group + "/" + si.Endpoint()
		was := before[si.Rule+"/"+si.Endpoint()]
		if was == si.State || published[name] {
			continue
		}
		published[name] = true
		s.Events.Publish(control.Event{Kind: control.EventServer, Name: name, From: was, To: si.State, Reason: reason})
	}
	return out, nil
}

// changeServer applies an admin state change and returns the servers it changed.
func changeServer(b *balancer.Balancer, a control.ServerArgs, fn func(string, netip.Addr, uint16) error, now time.Time) ([]control.ServerInfo, error) {
	if a.Rule != "" && a.Group != "" {
		return nil, fmt.Errorf("%w: give a rule or a group, not both", errBadArgs)
	}
	addr, port, err := control.ParseServerRef(a.Server)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadArgs, err)
	}
	name := a.Rule
	switch {
	case a.Rule != "":
		if _, err := ruleInfos(b, a.Rule); err != nil {
			return nil, err
		}
	case a.Group != "":
		if _, err := groupInfos(b, a.Group); err != nil {
			return nil, err
		}
		name = a.Group
	}
	if err := fn(name, addr, port); errors.Is(err, balancer.ErrNotFound) {
		return nil, fmt.Errorf("no server %s", a.Server)
	} else if err != nil {
		return nil, fmt.Errorf("server %s: %w", a.Server, err)
	}
	all, err := serverInfos(b, "", now)
	if err != nil {
		return nil, err
	}
	var out []control.ServerInfo
	for _, s := range all {
		sa, _ := netip.ParseAddr(s.Address)
		if !control.MatchServer(addr, port, sa, s.Port) {
			continue
		}
		if (a.Rule != "" && s.Rule != a.Rule) || (a.Group != "" && s.Group != a.Group) {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

func connList(b *balancer.Balancer, table *conntrack.Table, a control.ShowConnArgs, clock time.Time) (control.ConnList, error) {
	limit := a.Limit
	if limit <= 0 {
		limit = control.DefaultListLimit
	}
	limit = min(limit, control.MaxListLimit)
	var refAddr netip.Addr
	var refPort uint16
	if a.Server != "" {
		var err error
		if refAddr, refPort, err = control.ParseServerRef(a.Server); err != nil {
			return control.ConnList{}, fmt.Errorf("%w: %v", errBadArgs, err)
		}
	}
	rules := map[uint32]string{}
	for _, rs := range b.Stats().Rules {
		rules[rs.ID] = rs.Name
	}
	if a.Rule != "" && !slices.Contains(mapsValues(rules), a.Rule) {
		return control.ConnList{}, fmt.Errorf("no rule %q", a.Rule)
	}
	snap := b.Snapshot()
	now := clock.UnixNano()
	// The first limit flows in (rule, client, VIP) order: the table's own order is its
	// hash's, different on every start.
	var out control.ConnList
	var shown flowHeap
	table.Range(func(f conntrack.Flow) bool {
		name := rules[f.Rule]
		if a.Rule != "" && name != a.Rule {
			return true
		}
		server := flowServer(snap, f)
		if a.Server != "" && !control.MatchServer(refAddr, refPort, server.Addr(), server.Port()) {
			return true
		}
		out.Total++
		if len(shown) < limit {
			heap.Push(&shown, f)
		} else if flowLess(f, shown[0]) {
			shown[0] = f
			heap.Fix(&shown, 0)
		}
		return true
	})
	slices.SortFunc(shown, func(x, y conntrack.Flow) int {
		if flowLess(x, y) {
			return -1
		}
		return 1
	})
	out.Conns = make([]control.ConnInfo, 0, len(shown))
	for _, f := range shown {
		ci := control.ConnInfo{
			Rule:     rules[f.Rule],
			Protocol: conntrack.ProtoName(f.Orig.Proto),
			Client:   netip.AddrPortFrom(f.Orig.Src(), f.Orig.SrcPort).String(),
			VIP:      netip.AddrPortFrom(f.Orig.Dst(), f.Orig.DstPort).String(),
			Server:   flowServer(snap, f).String(),
			State:    f.State.String(),
			Age:      (now - f.Created) / int64(time.Second),
			Idle:     (now - f.LastSeen) / int64(time.Second),
			Packets:  f.OrigPackets + f.ReplyPackets,
			Bytes:    f.OrigBytes + f.ReplyBytes,
		}
		if !f.Topology.Balanced() {
			ci.Type = f.Topology.String() // the router's own flows: no rule
		}
		if f.Topology == conntrack.FullNAT || f.Topology.Outbound() {
			ci.Proxy = netip.AddrPortFrom(f.Reply.Dst(), f.Reply.DstPort).String()
		}
		out.Conns = append(out.Conns, ci)
	}
	return out, nil
}

// flowServer is the server a flow goes to: its reply tuple's source, or for DSR and tunnel (no
// reply tuple) the rule's server at the client's destination port.
func flowServer(snap *balancer.Snapshot, f conntrack.Flow) netip.AddrPort {
	if f.Topology.Direct() {
		addr, _ := snap.ServerAddr(f.Server)
		return netip.AddrPortFrom(addr, f.Orig.DstPort)
	}
	return netip.AddrPortFrom(f.Reply.Src(), f.Reply.SrcPort)
}

// flowLess orders flows by rule, client address and port, VIP, port and protocol.
func flowLess(x, y conntrack.Flow) bool {
	if x.Rule != y.Rule {
		return x.Rule < y.Rule
	}
	if c := x.Orig.Src().Compare(y.Orig.Src()); c != 0 {
		return c < 0
	}
	if x.Orig.SrcPort != y.Orig.SrcPort {
		return x.Orig.SrcPort < y.Orig.SrcPort
	}
	if c := x.Orig.Dst().Compare(y.Orig.Dst()); c != 0 {
		return c < 0
	}
	if x.Orig.DstPort != y.Orig.DstPort {
		return x.Orig.DstPort < y.Orig.DstPort
	}
	return x.Orig.Proto < y.Orig.Proto
}

// flowHeap keeps the flows show-conn shows, the last in flowLess order on top.
type flowHeap []conntrack.Flow

func (h flowHeap) Len() int           { return len(h) }
func (h flowHeap) Less(i, j int) bool { return flowLess(h[j], h[i]) }
func (h flowHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *flowHeap) Push(x any)        { *h = append(*h, x.(conntrack.Flow)) }
func (h *flowHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	*h = old[:len(old)-1]
	return f
}

func persistList(b *balancer.Balancer, a control.ShowPersistArgs, now time.Time) (control.PersistList, error) {
	limit := a.Limit
	if limit <= 0 {
		limit = control.DefaultListLimit
	}
	limit = min(limit, control.MaxListLimit)
	if a.Rule != "" {
		if _, err := ruleInfos(b, a.Rule); err != nil {
			return control.PersistList{}, err
		}
	}
	out := control.PersistList{Entries: []control.PersistInfo{}}
	for _, p := range b.Persist() {
		if a.Rule != "" && p.Rule != a.Rule {
			continue
		}
		out.Total++
		if len(out.Entries) >= limit {
			continue
		}
		e := control.PersistInfo{
			Rule:   p.Rule,
			Client: p.Client.String(),
			Key:    p.Key.String(),
			Port:   p.KeyPort,
			Server: endpoint(p.Addr, p.Port),
			Conns:  uint64(max(p.Flows, 0)),
		}
		if !p.Expires.IsZero() {
			e.Expires = max(int64(p.Expires.Sub(now)/time.Second), 0)
		}
		out.Entries = append(out.Entries, e)
	}
	return out, nil
}

// lbStats adds the rule and server counters show-stats -r / -s asks for.
func lbStats(b *balancer.Balancer, si *control.StatsInfo, a control.ShowStatsArgs) error {
	st := b.Stats()
	var refAddr netip.Addr
	var refPort uint16
	if a.Server != "" {
		var err error
		if refAddr, refPort, err = control.ParseServerRef(a.Server); err != nil {
			return fmt.Errorf("%w: %v", errBadArgs, err)
		}
	}
	for _, rs := range st.Rules {
		if a.Server != "" || (a.Rule != "" && rs.Name != a.Rule) {
			continue
		}
		si.Rules = append(si.Rules, control.RuleStats{Name: rs.Name, LBCounters: lbCounters(rs.Counters)})
	}
	if a.Rule != "" && a.Server == "" && len(si.Rules) == 0 {
		return fmt.Errorf("no rule %q", a.Rule)
	}
	if a.Rule == "" && a.Server == "" {
		return nil
	}
	for _, ss := range st.Servers {
		if a.Rule != "" && ss.Rule != a.Rule {
			continue
		}
		if a.Server != "" && !control.MatchServer(refAddr, refPort, ss.Addr, ss.Port) {
			continue
		}
		si.Servers = append(si.Servers, control.ServerStats{
			Rule: ss.Rule, Group: ss.Group, Address: ss.Addr.String(), Port: ss.Port,
			LBCounters: lbCounters(ss.Counters),
		})
	}
	if a.Server != "" && len(si.Servers) == 0 {
		return fmt.Errorf("no server %s", a.Server)
	}
	return nil
}

func lbCounters(c balancer.Counters) control.LBCounters {
	return control.LBCounters{
		ConnsActive: uint64(max(c.ConnsNow, 0)), ConnsTotal: c.ConnsTotal,
		PacketsIn: c.PacketsIn, BytesIn: c.BytesIn, PacketsOut: c.PacketsOut, BytesOut: c.BytesOut,
		Drops: c.Drops,
	}
}

func endpoint(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}

func portRange(lo, hi uint16) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func protoName(p uint8) string {
	if p == balancer.ProtoUDP {
		return "udp"
	}
	return "tcp"
}

func serverStateName(s balancer.ServerState) string {
	switch s {
	case balancer.Disabled:
		return control.ServerDisabled
	case balancer.Draining:
		return control.ServerDraining
	}
	return control.ServerEnabled
}

func mapsValues(m map[uint32]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
