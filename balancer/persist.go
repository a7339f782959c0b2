package balancer

import (
	"sync"
	"sync/atomic"
)

// persistShards is the number of independently locked parts of the persistence table.
const persistShards = 64

// persistKey and persistVal are pointer-free, so a table with millions of client
// prefixes costs the garbage collector nothing to scan.
type persistKey struct {
	rule uint32
	// addr is the client's address masked to the rule's pmask, IPv4 as mapped IPv6; for
	// PersistDstPort, the VIP.
	addr [16]byte
	port uint16 // the client's port (PersistSrcPort), the destination port (PersistDstPort), else 0
}

type persistVal struct {
	server  uint32 // pair ID (Pick.Server)
	flows   int32  // live flows of this client prefix on this rule
	last    int64  // ns: last use, or the end of its last flow
	timeout int64  // ns: the rule's PersistTimeout when the entry was made
}

// expired reports whether an entry has neither flows nor recent use.
func (v persistVal) expired(now int64) bool {
	return v.flows <= 0 && now-v.last > v.timeout
}

type persistShard struct {
	mu sync.Mutex
	m  map[persistKey]persistVal
	_  [48]byte // keep shards' locks on separate cache lines
}

// persistTable maps client prefixes to servers, like IPVS's persistence templates.
type persistTable struct {
	shards  [persistShards]persistShard
	next    atomic.Uint32 // the next shard sweep visits
	limit   int64
	len     atomic.Int64  // entries in all shards
	refused atomic.Uint64 // new entries not made because the table was full
}

// DefaultPersistCapacity is the default limit on persistence entries.
const DefaultPersistCapacity = 1_000_000

func (t *persistTable) init(limit int) {
	if limit <= 0 {
		limit = DefaultPersistCapacity
	}
	t.limit = int64(limit)
	for i := range t.shards {
		t.shards[i].m = make(map[persistKey]persistVal)
	}
}

func (t *persistTable) shard(k persistKey) *persistShard {
	return &t.shards[hash16(seedPersist^uint64(k.rule)^uint64(k.port)<<32, &k.addr)%persistShards]
}

// release records the end of one flow of k's prefix.
func (t *persistTable) release(k persistKey, now int64) {
	sh := t.shard(k)
	sh.mu.Lock()
	if v, ok := sh.m[k]; ok {
		if v.flows > 0 {
			v.flows--
		}
		v.last = now
		sh.m[k] = v
	}
	sh.mu.Unlock()
}

// sweep deletes the expired entries of one shard and returns how many.
func (t *persistTable) sweep(now int64) int {
	sh := &t.shards[(t.next.Add(1)-1)%persistShards]
	n := 0
	sh.mu.Lock()
	for k, v := range sh.m {
		if v.expired(now) {
			delete(sh.m, k)
			n++
		}
	}
	sh.mu.Unlock()
	t.len.Add(int64(-n))
	return n
}

// dropRules deletes every entry of the given rules.
func (t *persistTable) dropRules(ids []uint32) {
	if len(ids) == 0 {
		return
	}
	drop := make(map[uint32]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			if drop[k.rule] {
				delete(sh.m, k)
				t.len.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

// store records v under k in sh (whose lock is held), unless k is new and the table is
// full; present tells whether k is in the map.
func (t *persistTable) store(sh *persistShard, k persistKey, v persistVal, present bool) {
	if !present {
		if t.len.Load() >= t.limit {
			t.refused.Add(1)
			return
		}
		t.len.Add(1)
	}
	sh.m[k] = v
}

// each calls fn for every entry (for listings).
func (t *persistTable) each(fn func(persistKey, persistVal)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, v := range sh.m {
			fn(k, v)
		}
		sh.mu.Unlock()
	}
}
