package balancer

import "net/netip"

// Pick is the server chosen for a new flow.
type Pick struct {
	// Server is the ID of the server within the rule: store it in the flow, give it to
	// Account and FlowEnded.
	Server uint32
	Addr   netip.Addr
	// Port is the server port to rewrite the destination to: the server's port (offset
	// like the client's destination port within a port-range rule), or the client's
	// destination port when the server has none.
	Port uint16
	// Overloaded is set on a refused Pick when the rule has servers that take new flows
	// but every one of them is overloaded (at max_conns, or not yet back below min_conns).
	Overloaded bool
}

// Pick chooses the server for a new flow from client:cport to the rule's VIP at dport
// and counts the new connection on the rule and the server; the router gives it back
// with FlowEnded when the flow ends (or when it cannot use the Pick). Persistence comes
// first: a client prefix with a live entry goes to that entry's server while the server
// takes new flows. false means no server can take the flow (none enabled, all
// overloaded: Pick.Overloaded says which): a drop, counted on the rule.
//
// Pick does not allocate, except when a persistence entry for a new client prefix makes
// its map grow.
func (r *Rule) Pick(client netip.Addr, cport, dport uint16) (Pick, bool) {
	var m *member
	if r.persistent {
		m = r.pickPersistent(client, cport, dport)
	} else {
		m = r.schedule(client, cport, dport)
	}
	if m == nil {
		r.st.c.drops.Add(1)
		// Eligible servers have a weight above 0, so only their thresholds refused them.
		return Pick{Overloaded: len(r.eligible) > 0}, false
	}
	// acquire counted the flow on m.srv.
	m.pair.c.connsNow.Add(1)
	m.pair.c.connsTotal.Add(1)
	r.st.c.connsNow.Add(1)
	r.st.c.connsTotal.Add(1)
	p := Pick{Server: m.pair.id, Addr: m.addr, Port: dport}
	if m.port != 0 {
		p.Port = m.port
		if dport >= r.cfg.PortLo && dport <= r.cfg.PortHi {
			p.Port += dport - r.cfg.PortLo
		}
	}
	return p, true
}

// full reports whether m's server is overloaded: at its max_conns, or not yet back
// below its lower threshold since it was.
func (m *member) full() bool {
	return m.maxConns > 0 && (m.srv.over.Load() || m.srv.conns.Load() >= m.maxConns)
}

// acquire counts a new connection on m's server unless the server is overloaded. The
// flow that brings the count to max_conns marks the server overloaded; it stays so
// until release sees the count below the lower threshold. This is IPVS's connection
// threshold (ip_vs_bind_dest / ip_vs_unbind_dest): u_threshold sets
// IP_VS_DEST_F_OVERLOAD, l_threshold (default 3/4 of u_threshold) clears it, and the
// schedulers skip overloaded servers. Unlike IPVS, max_conns is also a hard cap here: the
// compare-and-swap never passes it, even when several loops pick at once.
func (m *member) acquire() bool {
	c := &m.srv.conns
	if m.maxConns == 0 {
		c.Add(1)
		return true
	}
	if m.srv.over.Load() {
		return false
	}
	for {
		n := c.Load()
		if n >= m.maxConns {
			m.srv.overload(m.lowConns)
			return false
		}
		if c.CompareAndSwap(n, n+1) {
			if n+1 >= m.maxConns {
				m.srv.overload(m.lowConns)
			}
			return true
		}
	}
}

// overload marks the server overloaded. A release that lowered the count below low
// before the mark was visible did not clear it, so the count is checked again after
// the mark (atomics are sequentially consistent: a release after this check sees the
// mark and clears it itself).
func (s *serverState) overload(low int64) {
	s.over.Store(true)
	if s.conns.Load() < low {
		s.over.Store(false)
	}
}

// release clears the overload mark once the count has fallen below the lower
// threshold; FlowEnded calls it after lowering the count.
func (s *serverState) release() {
	if s.over.Load() && s.conns.Load() < s.low.Load() {
		s.over.Store(false)
	}
}

// setThresholds records a server's thresholds as a new snapshot configures them, and
// brings the overload mark in line, as IPVS does when a destination is edited
// (__ip_vs_update_dest): no limit or a higher limit clears it; a count at or over a
// lowered limit sets it. b.mu is held.
func (s *serverState) setThresholds(maxConns, low int64) {
	prev := s.max.Swap(maxConns)
	s.low.Store(low)
	n := s.conns.Load()
	if maxConns == 0 || maxConns > prev || n < low {
		s.over.Store(false)
	}
	if maxConns > 0 && n >= maxConns {
		s.over.Store(true)
	}
}

// lowThreshold is the count below which an overloaded server takes new flows again:
// min_conns, or IPVS's default when only max_conns is set, three quarters of it
// (ip_vs_unbind_dest clears the overload when conns*4 < u_threshold*3, that is when
// conns < ceil(3*u/4)).
func lowThreshold(sc ServerConfig) int64 { return int64(sc.LowConns()) }

// LowConns is the lower threshold in effect for the server: MinConns, or IPVS's
// default of three quarters of MaxConns (rounded up); 0 without MaxConns.
func (sc ServerConfig) LowConns() int {
	switch {
	case sc.MaxConns == 0:
		return 0
	case sc.MinConns > 0:
		return sc.MinConns
	}
	return (3*sc.MaxConns + 3) / 4
}

// schedule runs the rule's algorithm over its eligible servers and returns the chosen
// one, its connection already acquired, or nil.
func (r *Rule) schedule(client netip.Addr, cport, dport uint16) *member {
	if len(r.eligible) == 0 {
		return nil
	}
	c := client.As16()
	var h uint64
	switch r.algo {
	case algoRR:
		return r.pickRR()
	case algoWRR:
		return r.pickWRR()
	case algoLC:
		return r.pickLeast(false)
	case algoWLC:
		return r.pickLeast(true)
	case algoHashIP:
		h = hash16(seedIP, &c)
	case algoHashIPPort:
		h = mix(hash16(seedIPPort, &c) ^ uint64(cport))
	case algoHashIPVIP:
		h = hash16(hash16(seedIPVIP, &c), &r.vip16)
	case algoMaglev:
		return r.pickMaglev(flowHash(&c, cport, &r.vip16, dport, r.cfg.Proto))
	}
	return r.pickHash(h)
}

// pickRR takes the eligible servers in turn, skipping full ones.
func (r *Rule) pickRR() *member {
	el := r.eligible
	n := uint64(len(el))
	start := r.rr.Add(1) - 1
	for i := range n {
		if m := el[(start+i)%n]; m.acquire() {
			return m
		}
	}
	return nil
}

// pickWRR is nginx's smooth weighted round-robin: every server's current weight grows by
// its weight, the largest wins and loses the total. Over sum(weights) picks each server
// is chosen weight times, spread out (weights 5,1,1 give a a b a c a a, not a a a a a b c).
// Full servers sit the round out.
func (r *Rule) pickWRR() *member {
	el := r.eligible
	r.wrrMu.Lock()
	defer r.wrrMu.Unlock()
	for range len(el) {
		best, total := -1, int64(0)
		for i, m := range el {
			if m.full() {
				continue
			}
			r.wrrCur[i] += m.weight
			total += m.weight
			if best < 0 || r.wrrCur[i] > r.wrrCur[best] {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		r.wrrCur[best] -= total
		if el[best].acquire() {
			return el[best]
		}
	}
	return nil
}

// pickLeast picks the server with the fewest active flows (weighted: the fewest per unit
// of weight); ties go round-robin.
func (r *Rule) pickLeast(weighted bool) *member {
	el := r.eligible
	n := uint64(len(el))
	for range 4 {
		start := r.rr.Add(1) - 1
		var best *member
		var bc int64
		for i := range n {
			m := el[(start+i)%n]
			c := m.srv.conns.Load()
			if m.full() {
				continue
			}
			if best == nil || (weighted && c*best.weight < bc*m.weight) || (!weighted && c < bc) {
				best, bc = m, c
			}
		}
		if best == nil {
			return nil
		}
		if best.acquire() {
			return best
		}
	}
	return nil
}

// pickHash maps h onto the eligible servers in proportion to their weights; a full
// server passes the flow to the next one.
func (r *Rule) pickHash(h uint64) *member {
	el := r.eligible
	n := len(el)
	target := int64(h % uint64(r.cum[n-1]))
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.cum[mid] > target {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	for i := range n {
		if m := el[(lo+i)%n]; m.acquire() {
			return m
		}
	}
	return nil
}

// pickMaglev looks h up in the Maglev table; a full server passes the flow to the next
// entries of the table, then to the next servers.
func (r *Rule) pickMaglev(h uint64) *member {
	el := r.eligible
	t := r.maglev
	j := h % uint64(len(t))
	for i := range uint64(maglevProbe) {
		if m := el[t[(j+i)%uint64(len(t))]]; m.acquire() {
			return m
		}
	}
	n := uint64(len(el))
	start := uint64(t[j])
	for i := range n {
		if m := el[(start+i)%n]; m.acquire() {
			return m
		}
	}
	return nil
}

// pickPersistent returns the server of the client prefix's persistence entry, or
// schedules one and records it.
func (r *Rule) pickPersistent(client netip.Addr, cport, dport uint16) *member {
	k := r.persistKey(client, cport, dport)
	now := r.b.now().UnixNano()
	sh := r.b.persist.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v, ok := sh.m[k]
	present := ok
	if ok && v.expired(now) {
		ok, v = false, persistVal{}
	}
	if ok {
		if j, found := r.byPair[v.server]; found {
			if m := &r.members[j]; m.eligible && m.acquire() {
				v.flows++
				v.last = now
				sh.m[k] = v
				return m
			}
		}
	}
	m := r.schedule(client, cport, dport)
	if m == nil {
		return nil
	}
	r.b.persist.store(sh, k, persistVal{server: m.pair.id, flows: v.flows + 1, last: now,
		timeout: int64(r.cfg.PersistTimeout)}, present)
	return m
}

// persistKey is the persistence key of a flow from client:cport to the rule's VIP at
// dport: the rule and, by the rule's PersistKey, the client's prefix (PersistSrc), the
// client's prefix and port (PersistSrcPort, BalanceNG's sessionid src+port), or the
// VIP and destination port (PersistDstPort, sessionid dst+port).
func (r *Rule) persistKey(client netip.Addr, cport, dport uint16) persistKey {
	switch r.cfg.PersistKey {
	case PersistSrcPort:
		a := client.As16()
		maskBits(&a, r.bits)
		return persistKey{rule: r.id, addr: a, port: cport}
	case PersistDstPort:
		return persistKey{rule: r.id, addr: r.vip16, port: dport}
	}
	a := client.As16()
	maskBits(&a, r.bits)
	return persistKey{rule: r.id, addr: a}
}

// initScheduler prepares the scheduler's state for r.eligible.
func (r *Rule) initScheduler(prevMaglev, nextMaglev map[string][]uint32) {
	el := r.eligible
	r.wrrCur = make([]int64, len(el))
	r.cum = make([]int64, len(el))
	t := int64(0)
	for i, m := range el {
		t += m.weight
		r.cum[i] = t
	}
	if r.algo == algoMaglev && len(el) > 0 {
		r.maglev = maglevTable(el, prevMaglev, nextMaglev)
	}
}

// Adopt counts a flow that a peer balancer picked (connection sync): client:cport to the
// rule's VIP at dport on the server at addr:port. The flow is counted on the rule and the
// server like a Pick (max_conns does not refuse it: the flow exists) and renews the client
// prefix's persistence entry; the router gives it back with FlowEnded. false: no server
// of the rule is at addr:port.
func (r *Rule) Adopt(client netip.Addr, cport, dport uint16, addr netip.Addr, port uint16) (Pick, bool) {
	var m *member
	for j := range r.members {
		c := &r.members[j]
		if c.addr != addr {
			continue
		}
		want := dport
		if c.port != 0 {
			want = c.port
			if dport >= r.cfg.PortLo && dport <= r.cfg.PortHi {
				want += dport - r.cfg.PortLo
			}
		}
		if want == port {
			m = c
			break
		}
	}
	if m == nil {
		return Pick{}, false
	}
	if n := m.srv.conns.Add(1); m.maxConns > 0 && n >= m.maxConns {
		m.srv.overload(m.lowConns)
	}
	m.pair.c.connsNow.Add(1)
	m.pair.c.connsTotal.Add(1)
	r.st.c.connsNow.Add(1)
	r.st.c.connsTotal.Add(1)
	if r.persistent {
		k := r.persistKey(client, cport, dport)
		now := r.b.now().UnixNano()
		sh := r.b.persist.shard(k)
		sh.mu.Lock()
		v, present := sh.m[k]
		if !present || v.expired(now) || v.server != m.pair.id {
			v = persistVal{server: m.pair.id, timeout: int64(r.cfg.PersistTimeout)}
		}
		v.flows++
		v.last = now
		r.b.persist.store(sh, k, v, present)
		sh.mu.Unlock()
	}
	return Pick{Server: m.pair.id, Addr: addr, Port: port}, true
}
