package conntrack

import "sync"

// adjustMap holds the Adjusts of SYN-proxied flows, keyed by their Orig tuple, in shards
// chosen by the tuple's hash. Other flows never touch it: their slots' wordAdjusted is
// clear.
type adjustMap struct {
	shards [64]struct {
		mu sync.RWMutex
		m  map[Tuple]Adjust
	}
}

func (m *adjustMap) shard(h uint64) (*sync.RWMutex, *map[Tuple]Adjust) {
	s := &m.shards[h%uint64(len(m.shards))]
	return &s.mu, &s.m
}

func (m *adjustMap) store(h uint64, tu Tuple, a Adjust) {
	mu, mp := m.shard(h)
	mu.Lock()
	if *mp == nil {
		*mp = make(map[Tuple]Adjust)
	}
	(*mp)[tu] = a
	mu.Unlock()
}

func (m *adjustMap) load(h uint64, tu Tuple) Adjust {
	mu, mp := m.shard(h)
	mu.RLock()
	a := (*mp)[tu]
	mu.RUnlock()
	return a
}

func (m *adjustMap) delete(h uint64, tu Tuple) {
	mu, mp := m.shard(h)
	mu.Lock()
	delete(*mp, tu)
	mu.Unlock()
}

// len counts the entries (tests).
func (m *adjustMap) len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
