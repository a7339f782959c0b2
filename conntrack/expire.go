package conntrack

// Expire removes the flows idle for longer than their state's timeout, by the table's clock,
// and returns how many it removed. Each call examines 1/SweepCalls of every shard's slots (at
// least 1024), holding a shard's lock for at most 1024 slots at a time, so a caller can run it
// every 100ms; every expired flow is gone after SweepCalls calls. OnExpire is called for each
// removed flow; OnExpire must not call Expire. Concurrent calls are serialized.
func (t *Table) Expire() int {
	t.expMu.Lock()
	defer t.expMu.Unlock()
	now := t.nanos()
	var timeouts [NumStates]int64
	for s := range timeouts {
		timeouts[s] = t.timeouts[s].Load()
	}
	n := 0
	for ai := range t.shards {
		n += t.expireShard(ai, now, &timeouts)
	}
	return n
}

func (t *Table) expireShard(ai int, now int64, timeouts *[NumStates]int64) int {
	a := &t.shards[ai]
	a.mu.Lock()
	budget := a.hi/uint32(t.cfg.SweepCalls) + 1
	if budget < sweepBatch {
		budget = min(sweepBatch, a.hi)
	}
	a.mu.Unlock()
	removed := 0
	for budget > 0 {
		k := min(budget, sweepBatch)
		budget -= k
		flows, idxs := t.expBuf[:0], t.expIdx[:0]
		a.mu.Lock()
		for range k {
			if a.sweep >= a.hi {
				a.sweep = 0
				if a.hi == 0 {
					break
				}
			}
			idx := a.sweep
			a.sweep++
			sl := t.slotAt(ai, idx)
			w := sl.word.Load()
			if w&wordUsed == 0 || w&wordDying != 0 {
				continue
			}
			st := State(w & wordStateMask)
			if now-sl.lastSeen.Load() < timeouts[st] {
				continue
			}
			// A packet that changes the state meanwhile makes the CAS fail; one that only
			// refreshed LastSeen is seen after it. Either way the flow stays.
			if !sl.word.CompareAndSwap(w, w|wordDying) {
				continue
			}
			if now-sl.lastSeen.Load() < timeouts[st] {
				sl.word.Store(w)
				continue
			}
			a.states[st].Add(-1)
			flows = append(flows, t.withAdjust(sl.load(w), w))
			idxs = append(idxs, idx)
		}
		a.mu.Unlock()
		for i := range flows {
			t.unlink(ai, idxs[i], &flows[i])
			t.expired[flows[i].State].Add(1)
			t.expireCallback(flows[i])
		}
		removed += len(flows)
		t.expBuf, t.expIdx = flows[:0], idxs[:0]
	}
	return removed
}

// evict makes room for one flow: it tries the home shard first, then the others in turn.
func (t *Table) evict(home int) bool {
	for k := range t.shards {
		if t.evictIn((home + k) & (len(t.shards) - 1)) {
			return true
		}
	}
	return false
}

// Eviction classes, from the first evicted to the last: flows whose answers were never
// seen (a TCP handshake not completed, a UDP or ICMP flow without a reply: what a SYN or
// spoofed-source flood leaves), TCP flows closing, UDP and ICMP flows with replies. An
// ESTABLISHED TCP flow is never evicted: Insert refuses a flow (ErrFull) before that.
const (
	EvictUnassured = iota
	EvictClosing
	EvictIdle
	numEvictClasses
	noEvict = numEvictClasses
)

// EvictClassNames names the eviction classes (show-stats).
var EvictClassNames = [numEvictClasses]string{EvictUnassured: "unassured", EvictClosing: "closing", EvictIdle: "idle"}

// evictClass is the class of a slot holding a flow in state st.
func evictClass(st State, sl *slot) int {
	switch st {
	case StateEstablished:
		return noEvict
	case StateNone, StateSynSent, StateSynRecv:
		return EvictUnassured
	case StateUDP, StateICMP:
		if sl.replyPackets.Load() == 0 {
			return EvictUnassured
		}
		return EvictIdle
	}
	return EvictClosing
}

// evictIn removes the least valuable flow of shard ai: of the lowest eviction class, the
// longest idle among the next evictWindow slots of the eviction hand (further if none
// there).
func (t *Table) evictIn(ai int) bool {
	a := &t.shards[ai]
	gen := a.evictGen.Load()
	if a.noEvict.Load() == gen+1 {
		return false
	}
	a.mu.Lock()
	hi := a.hi
	best, bestClass := uint32(0), noEvict
	var bestSeen int64
	for scanned := uint32(0); scanned < hi && (bestClass == noEvict || scanned < evictWindow); scanned++ {
		if a.evict >= hi {
			a.evict = 0
		}
		idx := a.evict
		a.evict++
		sl := t.slotAt(ai, idx)
		w := sl.word.Load()
		if w&wordUsed == 0 || w&wordDying != 0 {
			continue
		}
		c := evictClass(State(w&wordStateMask), sl)
		if c == noEvict {
			continue
		}
		if ls := sl.lastSeen.Load(); c < bestClass || (c == bestClass && ls < bestSeen) {
			best, bestClass, bestSeen = idx, c, ls
		}
	}
	if bestClass == noEvict {
		a.noEvict.Store(gen + 1)
		a.mu.Unlock()
		return false
	}
	sl := t.slotAt(ai, best)
	st, w, ok := markDying(sl)
	if !ok {
		a.mu.Unlock()
		return false
	}
	a.states[st].Add(-1)
	f := t.withAdjust(sl.load(w), w)
	a.mu.Unlock()
	t.unlink(ai, best, &f)
	t.evicted[bestClass].Add(1)
	t.expireCallback(f)
	return true
}

// Range calls fn with a copy of every flow until fn returns false. fn runs outside the
// table's locks and may call any method; flows inserted or removed meanwhile may or may not
// be seen. It is for the control plane (show-conn): it allocates.
func (t *Table) Range(fn func(Flow) bool) {
	buf := make([]Flow, 0, rangeBatch)
	for ai := range t.shards {
		a := &t.shards[ai]
		for start := uint32(0); ; start += rangeBatch {
			buf = buf[:0]
			a.mu.Lock()
			hi := a.hi
			for idx := start; idx < min(start+rangeBatch, hi); idx++ {
				sl := t.slotAt(ai, idx)
				if w := sl.word.Load(); w&wordUsed != 0 && w&wordDying == 0 {
					buf = append(buf, t.withAdjust(sl.load(w), w))
				}
			}
			a.mu.Unlock()
			for _, f := range buf {
				if !fn(f) {
					return
				}
			}
			if start+rangeBatch >= hi {
				break
			}
		}
	}
}

// DeleteIf removes every flow for which fn returns true (conn_drain, server removal) and
// returns how many it removed; OnExpire is called for each. fn runs outside the locks.
func (t *Table) DeleteIf(fn func(Flow) bool) int {
	n := 0
	t.Range(func(f Flow) bool {
		if fn(f) && t.deleteExact(&f) {
			n++
		}
		return true
	})
	return n
}

// deleteExact removes the flow f if the table still holds it (same tuples, same Created).
func (t *Table) deleteExact(f *Flow) bool {
	h := t.seed.hash(&f.Orig)
	ai := t.shardOf(h)
	a := &t.shards[ai]
	a.mu.Lock()
	sl, ref := t.find(a, &f.Orig, h)
	if sl == nil || refDir(ref) != Original || sl.reply != f.Reply || sl.created != f.Created {
		a.mu.Unlock()
		return false
	}
	st, w, ok := markDying(sl)
	if !ok {
		a.mu.Unlock()
		return false
	}
	a.states[st].Add(-1)
	g := t.withAdjust(sl.load(w), w)
	a.mu.Unlock()
	t.unlink(ai, t.refIdx(ref), &g)
	t.deleted.Add(1)
	t.expireCallback(g)
	return true
}
