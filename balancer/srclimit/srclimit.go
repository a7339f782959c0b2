// Package srclimit limits how fast each client prefix may open new flows, the per-source
// part of the balancer's overload defence: a flood from a few sources (or from spoofed
// addresses of one prefix) is shed at the door, counted, while other clients' new flows
// go on.
//
// Each prefix (the client's address masked to Bits4 or Bits6) maps by a keyed hash to one
// of a fixed number of buckets, so that memory does not grow with the number of sources;
// prefixes that share a bucket share its allowance. A bucket runs the generic cell rate
// algorithm (GCRA, ITU-T I.371 — a token bucket kept as one theoretical arrival time):
// Rate flows per second, Burst at once, updated with one compare-and-swap.
package srclimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"sync/atomic"
	"time"
)

// Defaults.
const (
	DefaultBits4   = 24
	DefaultBits6   = 64
	DefaultBuckets = 1 << 16
)

// Config configures a Limiter.
type Config struct {
	// Rate is the new flows per second each prefix may open (must be positive).
	Rate float64
	// Burst is how many it may open at once (default: one second's worth, at least 1).
	Burst int
	// Bits4 and Bits6 are the prefix lengths that group clients (DefaultBits4, DefaultBits6
	// when 0).
	Bits4, Bits6 int
	// Buckets is the size of the table, a power of two (DefaultBuckets when 0).
	Buckets int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ErrConfig reports a configuration New refuses.
var ErrConfig = errors.New("srclimit: bad configuration")

// Limiter decides whether a client may open a new flow. It is safe for concurrent use.
type Limiter struct {
	interval int64 // ns between two flows at Rate
	tau      int64 // how far the arrival time may run ahead of now: (Burst-1) intervals
	bits4    int
	bits6    int
	mask     uint64
	seed     maphash.Seed
	now      func() time.Time
	epoch    time.Time
	tat      []atomic.Int64 // per bucket: theoretical arrival time, ns since epoch
	allowed  atomic.Uint64
	refused  atomic.Uint64
}

// New returns a Limiter, or an error wrapping ErrConfig.
func New(cfg Config) (*Limiter, error) {
	if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 0) {
		return nil, fmt.Errorf("%w: rate %v is not a positive number", ErrConfig, cfg.Rate)
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(cfg.Rate))
	}
	if cfg.Bits4 == 0 {
		cfg.Bits4 = DefaultBits4
	}
	if cfg.Bits6 == 0 {
		cfg.Bits6 = DefaultBits6
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = DefaultBuckets
	}
	switch {
	case cfg.Burst < 0:
		return nil, fmt.Errorf("%w: burst %d is negative", ErrConfig, cfg.Burst)
	case cfg.Bits4 < 0 || cfg.Bits4 > 32:
		return nil, fmt.Errorf("%w: IPv4 prefix length %d is not 0-32", ErrConfig, cfg.Bits4)
	case cfg.Bits6 < 0 || cfg.Bits6 > 128:
		return nil, fmt.Errorf("%w: IPv6 prefix length %d is not 0-128", ErrConfig, cfg.Bits6)
	case cfg.Buckets < 1 || cfg.Buckets&(cfg.Buckets-1) != 0 || cfg.Buckets > 1<<24:
		return nil, fmt.Errorf("%w: %d buckets is not a power of two up to %d", ErrConfig, cfg.Buckets, 1<<24)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	interval := int64(float64(time.Second) / cfg.Rate)
	interval = max(interval, 1)
	l := &Limiter{
		interval: interval,
		tau:      interval * int64(cfg.Burst-1),
		bits4:    cfg.Bits4,
		bits6:    cfg.Bits6,
		mask:     uint64(cfg.Buckets - 1),
		seed:     maphash.MakeSeed(),
		now:      cfg.Now,
		epoch:    cfg.Now(),
		tat:      make([]atomic.Int64, cfg.Buckets),
	}
	return l, nil
}

// Allow reports whether client may open a new flow now, and counts the answer.
func (l *Limiter) Allow(client netip.Addr) bool {
	b := &l.tat[l.bucket(client)]
	now := l.now().Sub(l.epoch).Nanoseconds()
	for {
		tat := b.Load()
		t := max(tat, now)
		if t-now > l.tau {
			l.refused.Add(1)
			return false
		}
		if b.CompareAndSwap(tat, t+l.interval) {
			l.allowed.Add(1)
			return true
		}
	}
}

// bucket is the index of client's prefix in the table.
func (l *Limiter) bucket(client netip.Addr) uint64 {
	client = client.Unmap()
	bits := l.bits6
	if client.Is4() {
		bits = l.bits4
	}
	p, _ := client.Prefix(bits) // bits is within the family's length
	a := p.Addr().As16()
	var k [17]byte
	copy(k[:], a[:])
	k[16] = byte(bits)
	return maphash.Bytes(l.seed, k[:]) & l.mask
}

// Stats are a Limiter's counters.
type Stats struct {
	Allowed, Refused uint64
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats { return Stats{Allowed: l.allowed.Load(), Refused: l.refused.Load()} }
