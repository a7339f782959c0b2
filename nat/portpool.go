package nat

import (
	"errors"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Default full-NAT source port range.
const (
	DefaultPortLo uint16 = 1024
	DefaultPortHi uint16 = 65535
)

// Errors of the port pools' constructors.
var (
	ErrPortRange    = errors.New("nat: bad port range")
	ErrNoProxy      = errors.New("nat: no proxy source address")
	ErrProxyAddress = errors.New("nat: bad proxy source address")
	ErrMixedFamily  = errors.New("nat: proxy source addresses of both families")
	ErrDuplicate    = errors.New("nat: duplicate proxy source address")
)

// PortPool hands out full-NAT source ports per proxy source address: a port is never
// handed out twice for one address while it is in use (between Get and Put). Share one
// PortPool between every rule that may use the same proxy address, so that the reply
// tuples of their flows (server -> proxy address:port) stay unique.
//
// Ports are searched from the one after the last handed out, so a freed port is reused
// as late as possible (the server may still hold the old connection in TIME_WAIT).
// Each address costs a bitmap of 8 KiB, kept until the pool is dropped. Get and Put take
// one mutex per address, never allocate, and are safe for concurrent use.
type PortPool struct {
	lo, hi uint16
	mu     sync.Mutex // serialises Add
	sets   atomic.Pointer[map[[16]byte]*portSet]
}

// portSet is the port bitmap of one proxy address.
type portSet struct {
	mu   sync.Mutex
	used []uint64 // bit i: port lo+i is in use
	size int      // number of ports in the range
	next int      // index where the next search starts
	free int
}

// NewPortPool returns a pool handing out ports lo..hi (inclusive). 0, 0 means
// DefaultPortLo..DefaultPortHi. Port 0 cannot be handed out.
func NewPortPool(lo, hi uint16) (*PortPool, error) {
	if lo == 0 && hi == 0 {
		lo, hi = DefaultPortLo, DefaultPortHi
	}
	if lo == 0 || lo > hi {
		return nil, ErrPortRange
	}
	p := &PortPool{lo: lo, hi: hi}
	m := map[[16]byte]*portSet{}
	p.sets.Store(&m)
	return p, nil
}

// Range returns the port range.
func (p *PortPool) Range() (lo, hi uint16) { return p.lo, p.hi }

// Add registers proxy source addresses; registering one again keeps its ports in use.
func (p *PortPool) Add(addrs ...netip.Addr) error {
	for _, a := range addrs {
		if !a.IsValid() || a.Zone() != "" {
			return ErrProxyAddress
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.sets.Load()
	m := make(map[[16]byte]*portSet, len(old)+len(addrs))
	for k, v := range old {
		m[k] = v
	}
	size := int(p.hi-p.lo) + 1
	for _, a := range addrs {
		k := a.As16()
		if m[k] == nil {
			m[k] = &portSet{used: make([]uint64, (size+63)/64), size: size, free: size}
		}
	}
	p.sets.Store(&m)
	return nil
}

func (p *PortPool) set(proxy netip.Addr) *portSet {
	return (*p.sets.Load())[proxy.As16()]
}

// Get hands out a free port of proxy. ok is false when proxy was never added or all
// its ports are in use.
func (p *PortPool) Get(proxy netip.Addr) (port uint16, ok bool) {
	s := p.set(proxy)
	if s == nil {
		return 0, false
	}
	i, ok := s.get()
	if !ok {
		return 0, false
	}
	return p.lo + uint16(i), true
}

// Put gives back a port Get handed out for proxy. It reports false, changing nothing,
// for a port that is not in use (given back twice, never handed out, out of range).
func (p *PortPool) Put(proxy netip.Addr, port uint16) bool {
	s := p.set(proxy)
	if s == nil || port < p.lo || port > p.hi {
		return false
	}
	return s.put(int(port - p.lo))
}

// Take marks a given port of proxy as in use, for flows that exist before the pool
// does (a restored table). It reports false when the port is in use or out of range.
func (p *PortPool) Take(proxy netip.Addr, port uint16) bool {
	s := p.set(proxy)
	if s == nil || port < p.lo || port > p.hi {
		return false
	}
	return s.take(int(port - p.lo))
}

// InUse returns the number of ports of proxy in use (0 for an unknown address).
func (p *PortPool) InUse(proxy netip.Addr) int {
	s := p.set(proxy)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size - s.free
}

// get finds the first free index at or after next, wrapping around.
func (s *portSet) get() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free == 0 {
		return 0, false
	}
	nw := len(s.used)
	w := s.next / 64
	// Bits below next in its word are searched last, on the wrap-around.
	avail := ^s.used[w] &^ (1<<(s.next%64) - 1)
	for n := 0; n <= nw; n++ {
		if avail != 0 {
			i := w*64 + bits.TrailingZeros64(avail)
			if i < s.size {
				s.used[w] |= 1 << (i % 64)
				s.free--
				s.next = i + 1
				if s.next == s.size {
					s.next = 0
				}
				return i, true
			}
		}
		w++
		if w == nw {
			w = 0
		}
		avail = ^s.used[w]
	}
	return 0, false // unreachable while free counts the clear bits
}

func (s *portSet) put(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	bit := uint64(1) << (i % 64)
	if s.used[i/64]&bit == 0 {
		return false
	}
	s.used[i/64] &^= bit
	s.free++
	return true
}

func (s *portSet) take(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	bit := uint64(1) << (i % 64)
	if s.used[i/64]&bit != 0 {
		return false
	}
	s.used[i/64] |= bit
	s.free--
	return true
}

// Pools picks a proxy source address with free ports among a rule's list and a port of
// it from a shared PortPool. It is immutable apart from its round-robin cursor and safe
// for concurrent use.
type Pools struct {
	pool  *PortPool
	addrs []netip.Addr
	sets  []*portSet
	rr    atomic.Uint32
}

// NewPools returns the pools of the proxy addresses addrs (at least one, all of one
// family, no duplicates), registering them in pool.
func NewPools(pool *PortPool, addrs []netip.Addr) (*Pools, error) {
	if len(addrs) == 0 {
		return nil, ErrNoProxy
	}
	seen := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		if !a.IsValid() || a.Zone() != "" {
			return nil, ErrProxyAddress
		}
		a = a.Unmap()
		if a.Is4() != addrs[0].Unmap().Is4() {
			return nil, ErrMixedFamily
		}
		if seen[a] {
			return nil, ErrDuplicate
		}
		seen[a] = true
	}
	if err := pool.Add(addrs...); err != nil {
		return nil, err
	}
	ps := &Pools{pool: pool, addrs: make([]netip.Addr, len(addrs)), sets: make([]*portSet, len(addrs))}
	for i, a := range addrs {
		ps.addrs[i] = a.Unmap()
		ps.sets[i] = pool.set(a)
	}
	return ps, nil
}

// Addrs returns the proxy addresses (do not modify).
func (ps *Pools) Addrs() []netip.Addr { return ps.addrs }

// Get hands out a port of the next address in round-robin order that has one free.
func (ps *Pools) Get() (proxy netip.Addr, port uint16, ok bool) {
	return ps.getFrom(int(ps.rr.Add(1) % uint32(len(ps.addrs))))
}

// GetFor hands out a port of an address chosen by a hash of the client's address, so
// one client keeps one proxy address while it has free ports (then the next ones).
func (ps *Pools) GetFor(client netip.Addr) (proxy netip.Addr, port uint16, ok bool) {
	a := client.As16()
	h := uint32(2166136261) // FNV-1a
	for _, b := range a {
		h = (h ^ uint32(b)) * 16777619
	}
	return ps.getFrom(int(h % uint32(len(ps.addrs))))
}

func (ps *Pools) getFrom(start int) (netip.Addr, uint16, bool) {
	n := len(ps.addrs)
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		if j, ok := ps.sets[i].get(); ok {
			return ps.addrs[i], ps.pool.lo + uint16(j), true
		}
	}
	return netip.Addr{}, 0, false
}

// Put gives back a port of proxy (see PortPool.Put).
func (ps *Pools) Put(proxy netip.Addr, port uint16) bool { return ps.pool.Put(proxy, port) }
