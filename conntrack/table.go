package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Errors returned by Insert.
var (
	ErrExists  = errors.New("conntrack: a tuple of the flow is already tracked")
	ErrFull    = errors.New("conntrack: table full and no flow evictable")
	ErrInvalid = errors.New("conntrack: invalid flow")
)

// Defaults and limits.
const (
	DefaultCapacity   = 1_000_000
	DefaultShards     = 64
	MaxShards         = 1024
	DefaultSweepCalls = 4 // Expire calls per full pass over the table
	evictWindow       = 256
	sweepBatch        = 1024 // slots examined per lock hold in Expire
	rangeBatch        = 256
	chunkBits         = 10
	chunkSize         = 1 << chunkBits
)

// Config configures a Table. Zero fields take the defaults.
type Config struct {
	// Capacity is the most flows the table holds (default 1,000,000).
	Capacity int
	// Shards is the number of lock shards, a power of two up to 1024 (default 64).
	Shards int
	// Timeouts are the idle timeouts per state (zero fields: DefaultTimeouts).
	Timeouts Timeouts
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnExpire is called, outside the table's locks, for every flow that leaves the table:
	// timeout (from Expire), eviction (from Insert, on the inserting goroutine), Delete,
	// DeleteIf. It is not called for a flow Insert refused. It must not call Expire.
	OnExpire func(Flow)
	// SweepCalls is how many Expire calls one pass over the whole table takes (default 4):
	// each call examines 1/SweepCalls of every shard's slots (at least 1024 per shard).
	SweepCalls int
}

// Validate reports a configuration New would have to correct.
func (c Config) Validate() error {
	if c.Capacity < 0 {
		return fmt.Errorf("conntrack: capacity %d is negative", c.Capacity)
	}
	if c.Shards < 0 || c.Shards > MaxShards || c.Shards&(c.Shards-1) != 0 {
		return fmt.Errorf("conntrack: shards %d is not a power of two between 1 and %d", c.Shards, MaxShards)
	}
	if c.SweepCalls < 0 {
		return fmt.Errorf("conntrack: sweep calls %d is negative", c.SweepCalls)
	}
	return nil
}

// The state word of a slot: state in the low byte, then the used and dying flags, the
// topology byte, and a generation counter bumped each time the slot is handed out.
const (
	wordStateMask    = 0xff
	wordUsed         = 1 << 8
	wordDying        = 1 << 9
	wordTopologyShft = 10
	wordTopologyMask = 0x7f
	wordAdjusted     = 1 << 17 // the flow has an Adjust, in Table.adjusts
	wordGenShift     = 18
	wordGenOne       = 1 << wordGenShift
)

// slot stores one flow in 128 bytes, two cache lines (chunks are page-aligned). The tuples,
// rule, server and created are written only while the slot is being handed out (under its
// home shard's lock, before any index entry points at it) and are read while an entry points
// at it; the rest are atomics changed by Lookup. A free slot keeps the free list link in rule.
// Packet counters are 32-bit (they wrap after 2^32 packets of one flow); byte counters 64-bit.
type slot struct {
	orig, reply  Tuple
	rule, server uint32
	word         atomic.Uint32
	lastSeen     atomic.Int64
	created      int64
	origBytes    atomic.Uint64
	replyBytes   atomic.Uint64
	origPackets  atomic.Uint32
	replyPackets atomic.Uint32
}

type chunk [chunkSize]slot

// entry is an index entry: bits 24..55 of the tuple's hash, and a reference: bit 31 the
// direction, then the home shard, then the slot index + 1. ref 0 is an empty entry.
type entry struct{ tag, ref uint32 }

const refReply = 1 << 31

type shard struct {
	mu       sync.Mutex
	index    []entry
	n        int // used index entries
	chunks   []atomic.Pointer[chunk]
	hi       uint32 // slots handed out so far
	free     uint32 // free list head, slot index + 1
	maxSlots uint32
	sweep    uint32 // Expire's hand
	evict    uint32 // eviction's hand
	hits     uint64
	misses   uint64
	// states counts flows per state; a transition is counted in the shard of the tuple
	// looked up, so only the sum over shards is meaningful.
	states [NumStates]atomic.Int64
	// evictGen is bumped when a flow of this shard may have become evictable; noEvict holds
	// evictGen+1 of a scan that found nothing to evict, so later scans can skip the shard.
	evictGen atomic.Uint64
	noEvict  atomic.Uint64
	_        [64]byte
}

// Table is a sharded connection table, safe for concurrent use.
type Table struct {
	shards     []shard
	shardShift uint // shard = hash >> shardShift
	slotBits   uint
	slotMask   uint32
	seed       seed
	capacity   int64
	timeouts   [NumStates]atomic.Int64
	cfg        Config

	count    atomic.Int64
	inserted atomic.Uint64
	exists   atomic.Uint64
	refused  atomic.Uint64
	evicted  [numEvictClasses]atomic.Uint64
	adjusts  adjustMap // the SYN-proxied flows' Adjusts
	deleted  atomic.Uint64
	expired  [NumStates]atomic.Uint64

	expMu  sync.Mutex
	expBuf []Flow
	expIdx []uint32

	// Slot chunks of big tables are carved from blocks of blockChunks chunks (2 MiB and
	// more) advised as huge pages; small tables allocate chunk by chunk.
	blockMu     sync.Mutex
	blockChunks int
	block       []chunk
}

// hugeFrom is the capacity from which the table's memory is advised as huge pages.
const hugeFrom = 1 << 16

// newChunk returns a zeroed chunk of slots.
func (t *Table) newChunk() *chunk {
	if t.blockChunks <= 1 {
		return new(chunk)
	}
	t.blockMu.Lock()
	defer t.blockMu.Unlock()
	if len(t.block) == 0 {
		t.block = make([]chunk, t.blockChunks)
		adviseHuge(unsafe.Pointer(&t.block[0]), uintptr(len(t.block))*unsafe.Sizeof(chunk{}))
	}
	c := &t.block[0]
	t.block = t.block[1:]
	return c
}

// New returns an empty table. Shards is rounded up to a power of two and limited to
// MaxShards; negative values take the defaults (Config.Validate reports them).
func New(cfg Config) *Table {
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.Shards <= 0 {
		cfg.Shards = DefaultShards
	}
	if cfg.Shards > MaxShards {
		cfg.Shards = MaxShards
	}
	cfg.Shards = 1 << bits.Len(uint(cfg.Shards-1))
	if cfg.SweepCalls <= 0 {
		cfg.SweepCalls = DefaultSweepCalls
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Timeouts = cfg.Timeouts.withDefaults()

	shardBits := uint(bits.TrailingZeros(uint(cfg.Shards)))
	t := &Table{
		shards:     make([]shard, cfg.Shards),
		shardShift: 64 - shardBits,
		slotBits:   31 - shardBits,
		slotMask:   1<<(31-shardBits) - 1,
		capacity:   int64(cfg.Capacity),
		cfg:        cfg,
		expBuf:     make([]Flow, 0, sweepBatch),
		expIdx:     make([]uint32, 0, sweepBatch),
	}
	var b [48]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	for i := range t.seed {
		t.seed[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	t.SetTimeouts(cfg.Timeouts)
	perShard := (cfg.Capacity + cfg.Shards - 1) / cfg.Shards
	maxSlots := uint64(2*perShard + chunkSize)
	if maxSlots > uint64(t.slotMask) {
		maxSlots = uint64(t.slotMask)
	}
	// Each shard indexes about 2*perShard tuples at capacity; keep the load under 0.6.
	size := 16
	for size*3 < 2*perShard*5 {
		size *= 2
	}
	// One allocation for every shard's index, so that it can take huge pages.
	all := make([]entry, size*cfg.Shards)
	if cfg.Capacity >= hugeFrom {
		adviseHuge(unsafe.Pointer(&all[0]), uintptr(len(all))*unsafe.Sizeof(entry{}))
		// 4 MiB blocks hold at least one whole aligned huge page wherever they start.
		t.blockChunks = (4 << 20) / int(unsafe.Sizeof(chunk{}))
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.maxSlots = uint32(maxSlots)
		s.index = all[i*size : (i+1)*size : (i+1)*size]
		s.chunks = make([]atomic.Pointer[chunk], (maxSlots+chunkSize-1)/chunkSize)
	}
	return t
}

func (t *Table) nanos() int64 { return t.cfg.Now().UnixNano() }

func (t *Table) shardOf(h uint64) int { return int(h >> t.shardShift) }

func (t *Table) makeRef(home int, idx uint32, d Direction) uint32 {
	r := uint32(home)<<t.slotBits | (idx + 1)
	if d == Reply {
		r |= refReply
	}
	return r
}

func (t *Table) refHome(ref uint32) int   { return int((ref &^ refReply) >> t.slotBits) }
func (t *Table) refIdx(ref uint32) uint32 { return ref&t.slotMask - 1 }
func refDir(ref uint32) Direction         { return Direction(ref >> 31) }
func (t *Table) slotAt(home int, idx uint32) *slot {
	return &t.shards[home].chunks[idx>>chunkBits].Load()[idx&(chunkSize-1)]
}
func (t *Table) slotOf(ref uint32) *slot { return t.slotAt(t.refHome(ref), t.refIdx(ref)) }

// Capacity returns the most flows the table holds.
func (t *Table) Capacity() int { return int(t.capacity) }

// Timeout returns the idle timeout of state s.
func (t *Table) Timeout(s State) time.Duration {
	if s >= NumStates {
		return 0
	}
	return time.Duration(t.timeouts[s].Load())
}

// SetTimeouts replaces the idle timeouts (zero fields: the defaults), for a configuration
// reload; flows keep their LastSeen and are judged by the new timeouts from the next Expire.
func (t *Table) SetTimeouts(to Timeouts) {
	to = to.withDefaults()
	for s := State(0); s < NumStates; s++ {
		t.timeouts[s].Store(int64(to.Of(s)))
	}
}

// Len returns the number of flows in the table (including ones being removed).
func (t *Table) Len() int { return int(t.count.Load()) }

// load copies a slot into a Flow; the state is taken from w.
func (sl *slot) load(w uint32) Flow {
	return Flow{
		Orig:         sl.orig,
		Reply:        sl.reply,
		Rule:         sl.rule,
		Server:       sl.server,
		Topology:     Topology(w >> wordTopologyShft & wordTopologyMask),
		State:        State(w & wordStateMask),
		Created:      sl.created,
		LastSeen:     sl.lastSeen.Load(),
		OrigPackets:  uint64(sl.origPackets.Load()),
		OrigBytes:    sl.origBytes.Load(),
		ReplyPackets: uint64(sl.replyPackets.Load()),
		ReplyBytes:   sl.replyBytes.Load(),
	}
}

// markDying sets the dying flag of a used slot; false if it is free or already dying.
func markDying(sl *slot) (State, uint32, bool) {
	for {
		w := sl.word.Load()
		if w&wordUsed == 0 || w&wordDying != 0 {
			return 0, 0, false
		}
		if sl.word.CompareAndSwap(w, w|wordDying) {
			return State(w & wordStateMask), w, true
		}
	}
}

// Lookup finds the flow one of whose tuples is tu, applies the packet to it (TCP state with
// tcpFlags, LastSeen, the direction's packet and byte counters) and returns a copy and the
// direction the packet travels. It locks one shard, never allocates, and misses flows that
// are being removed.
func (t *Table) Lookup(tu Tuple, tcpFlags uint8, bytes int) (f Flow, dir Direction, ok bool) {
	h := t.seed.hash(&tu)
	s := &t.shards[t.shardOf(h)]
	now := t.nanos()
	if bytes < 0 {
		bytes = 0
	}
	s.mu.Lock()
	sl, ref := t.find(s, &tu, h)
	if sl == nil {
		s.misses++
		s.mu.Unlock()
		return Flow{}, 0, false
	}
	dir = refDir(ref)
	var w, nw uint32
	for {
		w = sl.word.Load()
		if w&wordDying != 0 {
			s.misses++
			s.mu.Unlock()
			return Flow{}, 0, false
		}
		st := State(w & wordStateMask)
		nw = w
		if tu.Proto == ProtoTCP {
			if ns := NextState(st, dir, sl.reply.IsZero(), tcpFlags); ns != st {
				nw = w&^wordStateMask | uint32(ns)
			}
		}
		if nw == w || sl.word.CompareAndSwap(w, nw) {
			break
		}
	}
	if nw != w {
		old, ns := State(w&wordStateMask), State(nw&wordStateMask)
		s.states[old].Add(-1)
		s.states[ns].Add(1)
		if ns != StateEstablished {
			t.shards[t.refHome(ref)].evictGen.Add(1)
		}
	}
	sl.lastSeen.Store(now)
	if dir == Reply {
		sl.replyPackets.Add(1)
		sl.replyBytes.Add(uint64(bytes))
	} else {
		sl.origPackets.Add(1)
		sl.origBytes.Add(uint64(bytes))
	}
	s.hits++
	f = t.withAdjust(sl.load(nw), nw)
	s.mu.Unlock()
	return f, dir, true
}

// Get finds the flow one of whose tuples is tu and returns a copy without changing it: no
// state transition, no counter. Use it for packets that belong to a flow without being its
// segments, such as an ICMP error quoting it (Lookup with tcpFlags 0 would move a TCP flow to
// CLOSE, as IPVS does for a segment without flags). It locks one shard and never allocates.
func (t *Table) Get(tu Tuple) (f Flow, dir Direction, ok bool) {
	h := t.seed.hash(&tu)
	s := &t.shards[t.shardOf(h)]
	s.mu.Lock()
	sl, ref := t.find(s, &tu, h)
	if sl != nil {
		if w := sl.word.Load(); w&wordDying == 0 {
			f, dir, ok = t.withAdjust(sl.load(w), w), refDir(ref), true
		}
	}
	s.mu.Unlock()
	return f, dir, ok
}

// SetAdjust replaces the Adjust of the flow one of whose tuples is tu (a SYN-proxied
// flow) and reports whether the flow is tracked. Adjusts live apart from the slots, in a
// map of their own: only SYN-proxied flows pay for them.
func (t *Table) SetAdjust(tu Tuple, a Adjust) bool {
	h := t.seed.hash(&tu)
	s := &t.shards[t.shardOf(h)]
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, _ := t.find(s, &tu, h)
	if sl == nil {
		return false
	}
	orig := sl.orig
	// Into the map first, then the flag: a flow being removed (dying) takes its entry
	// away itself once it saw the flag, or here when the flag could not be set.
	t.adjusts.store(t.seed.hash(&orig), orig, a)
	for {
		w := sl.word.Load()
		if w&wordDying != 0 {
			t.adjusts.delete(t.seed.hash(&orig), orig)
			return false
		}
		if w&wordAdjusted != 0 || sl.word.CompareAndSwap(w, w|wordAdjusted) {
			return true
		}
	}
}

// withAdjust fills in f's Adjust when its word w says it has one.
func (t *Table) withAdjust(f Flow, w uint32) Flow {
	if w&wordAdjusted != 0 {
		f.Adjust = t.adjusts.load(t.seed.hash(&f.Orig), f.Orig)
	}
	return f
}

// Insert adds a flow and indexes its Orig tuple and, unless it is zero, its Reply tuple.
// Created and LastSeen default to now; UDP and ICMP flows get StateUDP / StateICMP; a TCP
// flow keeps the State given (use Flow.Account with the first packet, or leave StateNone and
// call Lookup with it). At capacity the least valuable flow is evicted first: of the lowest
// eviction class (EvictUnassured, then EvictClosing, then EvictIdle; never an ESTABLISHED TCP
// flow), the longest idle among up to 256 scanned in the home shard (the whole shard if none
// there, then the other shards); when every flow is established Insert fails with ErrFull. ErrExists: one of the tuples is already tracked. ErrInvalid: a zero Orig, a Reply
// equal to Orig or of another protocol, a TCP flow with a non-TCP state.
func (t *Table) Insert(f Flow) error {
	if f.Orig.IsZero() || f.Orig == f.Reply || (!f.Reply.IsZero() && f.Reply.Proto != f.Orig.Proto) {
		return ErrInvalid
	}
	if f.Orig.Proto == ProtoTCP {
		if !f.State.IsTCP() {
			return ErrInvalid
		}
	} else {
		f.State = initialState(f.Orig.Proto)
	}
	now := t.nanos()
	if f.Created == 0 {
		f.Created = now
	}
	if f.LastSeen == 0 {
		f.LastSeen = now
	}
	ho := t.seed.hash(&f.Orig)
	ai := t.shardOf(ho)
	hasReply := !f.Reply.IsZero()
	var hr uint64
	bi := -1
	if hasReply {
		hr = t.seed.hash(&f.Reply)
		bi = t.shardOf(hr)
	}
	if t.count.Add(1) > t.capacity && !t.evict(ai) {
		t.count.Add(-1)
		t.refused.Add(1)
		return ErrFull
	}
	a := &t.shards[ai]
	a.mu.Lock()
	if sl, _ := t.find(a, &f.Orig, ho); sl != nil {
		return t.insertFailed(a, ErrExists)
	}
	if bi == ai {
		if sl, _ := t.find(a, &f.Reply, hr); sl != nil {
			return t.insertFailed(a, ErrExists)
		}
	}
	idx, ok := t.alloc(a, ai)
	if !ok {
		return t.insertFailed(a, ErrFull)
	}
	sl := t.slotAt(ai, idx)
	sl.orig, sl.reply = f.Orig, f.Reply
	sl.rule, sl.server = f.Rule, f.Server
	sl.created = f.Created
	sl.lastSeen.Store(f.LastSeen)
	sl.origPackets.Store(uint32(f.OrigPackets))
	sl.origBytes.Store(f.OrigBytes)
	sl.replyPackets.Store(uint32(f.ReplyPackets))
	sl.replyBytes.Store(f.ReplyBytes)
	w := (sl.word.Load()&^(wordGenOne-1) + wordGenOne) | uint32(f.Topology)<<wordTopologyShft |
		wordUsed | uint32(f.State)
	if f.Adjust.Flags != 0 {
		t.adjusts.store(ho, f.Orig, f.Adjust)
		w |= wordAdjusted
	}
	sl.word.Store(w)
	t.indexAdd(a, ho, t.makeRef(ai, idx, Original))
	if bi == ai {
		t.indexAdd(a, hr, t.makeRef(ai, idx, Reply))
	}
	a.states[f.State].Add(1)
	if f.State != StateEstablished {
		a.evictGen.Add(1)
	}
	a.mu.Unlock()
	if bi >= 0 && bi != ai {
		b := &t.shards[bi]
		b.mu.Lock()
		// The flow may have been removed (and its slot reused) since the home lock was
		// dropped: then whoever removed it reports it through OnExpire.
		if cur := sl.word.Load(); cur&^wordStateMask != w&^wordStateMask {
			b.mu.Unlock()
			t.inserted.Add(1)
			return nil
		}
		if other, _ := t.find(b, &f.Reply, hr); other != nil {
			b.mu.Unlock()
			st, _, ok := markDying(sl)
			if !ok {
				t.inserted.Add(1)
				return nil
			}
			a.states[st].Add(-1)
			t.unlink(ai, idx, &f)
			t.exists.Add(1)
			return ErrExists
		}
		t.indexAdd(b, hr, t.makeRef(ai, idx, Reply))
		b.mu.Unlock()
	}
	t.inserted.Add(1)
	return nil
}

func (t *Table) insertFailed(a *shard, err error) error {
	a.mu.Unlock()
	t.count.Add(-1)
	if err == ErrExists {
		t.exists.Add(1)
	} else {
		t.refused.Add(1)
	}
	return err
}

// alloc hands out a slot of shard a (locked): from the free list, else a new one.
func (t *Table) alloc(a *shard, ai int) (uint32, bool) {
	if a.free != 0 {
		idx := a.free - 1
		a.free = t.slotAt(ai, idx).rule
		return idx, true
	}
	if a.hi >= a.maxSlots {
		return 0, false
	}
	idx := a.hi
	if idx&(chunkSize-1) == 0 && a.chunks[idx>>chunkBits].Load() == nil {
		a.chunks[idx>>chunkBits].Store(t.newChunk())
	}
	a.hi++
	return idx, true
}

// freeSlot returns a slot to its shard's free list (shard locked).
func (t *Table) freeSlot(a *shard, ai int, idx uint32) {
	sl := t.slotAt(ai, idx)
	sl.word.Store(sl.word.Load() &^ (wordGenOne - 1))
	sl.rule = a.free
	a.free = idx + 1
}

// unlink removes a dying flow's index entries, then frees its slot; it takes no lock on entry
// and holds at most one at a time.
func (t *Table) unlink(ai int, idx uint32, f *Flow) {
	a := &t.shards[ai]
	ho := t.seed.hash(&f.Orig)
	if f.Adjust.Flags != 0 {
		t.adjusts.delete(ho, f.Orig)
	}
	bi := -1
	var hr uint64
	if !f.Reply.IsZero() {
		hr = t.seed.hash(&f.Reply)
		bi = t.shardOf(hr)
	}
	a.mu.Lock()
	t.indexRemove(a, ho, t.makeRef(ai, idx, Original))
	if bi == ai {
		t.indexRemove(a, hr, t.makeRef(ai, idx, Reply))
	}
	if bi == ai || bi < 0 {
		t.freeSlot(a, ai, idx)
		a.mu.Unlock()
	} else {
		a.mu.Unlock()
		b := &t.shards[bi]
		b.mu.Lock()
		t.indexRemove(b, hr, t.makeRef(ai, idx, Reply))
		b.mu.Unlock()
		a.mu.Lock()
		t.freeSlot(a, ai, idx)
		a.mu.Unlock()
	}
	t.count.Add(-1)
}

// Delete removes the flow one of whose tuples is tu; false if there is none.
func (t *Table) Delete(tu Tuple) bool {
	h := t.seed.hash(&tu)
	s := &t.shards[t.shardOf(h)]
	s.mu.Lock()
	sl, ref := t.find(s, &tu, h)
	if sl == nil {
		s.mu.Unlock()
		return false
	}
	st, w, ok := markDying(sl)
	if !ok {
		s.mu.Unlock()
		return false
	}
	home := t.refHome(ref)
	t.shards[home].states[st].Add(-1)
	f := t.withAdjust(sl.load(w), w)
	s.mu.Unlock()
	t.unlink(home, t.refIdx(ref), &f)
	t.deleted.Add(1)
	t.expireCallback(f)
	return true
}

func (t *Table) expireCallback(f Flow) {
	if t.cfg.OnExpire != nil {
		t.cfg.OnExpire(f)
	}
}

// Stats are the table's counters.
type Stats struct {
	Len, Capacity int
	Inserted      uint64 // flows inserted
	Exists        uint64 // inserts refused with ErrExists
	Refused       uint64 // inserts refused with ErrFull
	Evicted       uint64 // flows evicted to make room
	// EvictedBy counts them by eviction class (EvictUnassured, EvictClosing, EvictIdle).
	EvictedBy [numEvictClasses]uint64
	Deleted   uint64 // flows removed by Delete and DeleteIf
	Expired   uint64 // flows timed out, all states
	// ExpiredIn counts timed-out flows by the state they timed out in.
	ExpiredIn [NumStates]uint64
	// States counts the flows now in each state.
	States       [NumStates]int64
	Hits, Misses uint64 // Lookup results
}

// Stats returns a snapshot of the counters.
func (t *Table) Stats() Stats {
	st := Stats{
		Len:      t.Len(),
		Capacity: int(t.capacity),
		Inserted: t.inserted.Load(),
		Exists:   t.exists.Load(),
		Refused:  t.refused.Load(),
		Deleted:  t.deleted.Load(),
	}
	for i := range t.evicted {
		st.EvictedBy[i] = t.evicted[i].Load()
		st.Evicted += st.EvictedBy[i]
	}
	for i := range t.expired {
		st.ExpiredIn[i] = t.expired[i].Load()
		st.Expired += st.ExpiredIn[i]
	}
	for i := range t.shards {
		s := &t.shards[i]
		for j := range s.states {
			st.States[j] += s.states[j].Load()
		}
		s.mu.Lock()
		st.Hits += s.hits
		st.Misses += s.misses
		s.mu.Unlock()
	}
	return st
}

// Refresh sets the TCP state of the flow one of whose tuples is tu to st (other flows
// keep theirs) and marks it seen now: what a peer that forwards the flow reports through
// connection sync. It reports whether the flow is tracked.
func (t *Table) Refresh(tu Tuple, st State) bool {
	h := t.seed.hash(&tu)
	s := &t.shards[t.shardOf(h)]
	now := t.nanos()
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ref := t.find(s, &tu, h)
	if sl == nil {
		return false
	}
	for {
		w := sl.word.Load()
		if w&wordDying != 0 {
			return false
		}
		old := State(w & wordStateMask)
		if tu.Proto != ProtoTCP || !st.IsTCP() || st == old {
			break
		}
		if sl.word.CompareAndSwap(w, w&^wordStateMask|uint32(st)) {
			s.states[old].Add(-1)
			s.states[st].Add(1)
			if st != StateEstablished {
				t.shards[t.refHome(ref)].evictGen.Add(1)
			}
			break
		}
	}
	sl.lastSeen.Store(now)
	return true
}
