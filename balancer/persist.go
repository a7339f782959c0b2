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
	addr [16]byte // the client's address masked to the rule's pmask, IPv4 as mapped IPv6
}

type persistVal struct {
	server  uint32 // server ID
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
	shards [persistShards]persistShard
	next   atomic.Uint32 // the next shard sweep visits
}

func (t *persistTable) init() {
	for i := range t.shards {
		t.shards[i].m = make(map[persistKey]persistVal)
	}
}

func (t *persistTable) shard(k persistKey) *persistShard {
	return &t.shards[hash16(seedPersist^uint64(k.rule), &k.addr)%persistShards]
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
			}
		}
		sh.mu.Unlock()
	}
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
