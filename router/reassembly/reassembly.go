// Package reassembly puts IPv4 and IPv6 fragments addressed to the router back together
// (RFC 791 section 3.2, RFC 815, RFC 8200 section 4.5), within bounds that a flood of
// fragments cannot exceed.
//
// A Reassembler holds the datagrams in progress keyed by source, destination,
// identification (and protocol for IPv4). It is pure: the caller passes the time with
// every call, and expires datagrams with Expire from its own timer; nothing here starts a
// goroutine. It is safe for concurrent use.
//
// The rules it applies:
//   - a datagram not complete Timeout (60 s, RFC 8200 section 4.5; RFC 1122 section
//     3.3.2 suggests 60 to 120 s for IPv4) after its first fragment arrived is dropped;
//     when its offset-zero fragment was received Expire hands that fragment to the
//     caller, to send ICMP time exceeded, code 1 (RFC 792, RFC 8200 section 4.5);
//   - overlapping fragments discard the whole datagram, and the fragments of it that
//     arrive later, silently (RFC 5722 section 4 for IPv6; RFC 791 lets IPv4 keep either
//     copy, and this package drops the datagram for IPv4 as well, as Linux does); an
//     exact duplicate of a fragment already held is dropped alone (RFC 8200 section 4.5);
//   - a fragment that would make the datagram longer than 65535 bytes (IPv4 total length;
//     IPv6 payload length) is dropped (for IPv6 the caller sends a parameter problem
//     pointing at the Fragment Offset, RFC 8200 section 4.5);
//   - an IPv6 fragment with M set whose length is not a multiple of 8 is dropped (the
//     caller sends a parameter problem pointing at the Payload Length, RFC 8200 section
//     4.5); an IPv4 one likewise (RFC 791: fragments end on 8-byte boundaries);
//   - at most MaxDatagrams datagrams in progress, MaxFragments fragments each and
//     MaxBytes bytes of buffers in all: past a limit the oldest datagram is evicted.
//
// Atomic IPv6 fragments (offset 0, M clear) are no business of the reassembler: the
// caller processes them as whole packets (RFC 6946 section 4).
package reassembly

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"ulb/router/header"
)

// Defaults of Config.
const (
	DefaultTimeout      = 60 * time.Second
	DefaultMaxDatagrams = 256
	DefaultMaxFragments = 128
	DefaultMaxBytes     = 4 << 20
)

// MaxDatagram is the size of the largest datagram reassembled: an IPv6 header and a
// payload length of 65535 (an IPv4 datagram is at most 65535 bytes).
const MaxDatagram = header.IPv6MinimumSize + 0xffff

// Config bounds a Reassembler. Zero fields take the defaults; MaxBytes is raised to hold
// at least one datagram of MaxDatagram bytes.
type Config struct {
	Timeout      time.Duration
	MaxDatagrams int
	MaxFragments int // per datagram
	MaxBytes     int // buffers of all the datagrams in progress
}

// Status says what Add did with a fragment.
type Status uint8

const (
	Held      Status = iota // stored; the datagram is not complete yet
	Done                    // the datagram is complete, written to the caller's buffer
	Duplicate               // an exact duplicate of a fragment held: dropped
	Overlap                 // overlaps a fragment held: the datagram is discarded (RFC 5722)
	Discarded               // belongs to a datagram discarded after an overlap
	TooBig                  // the datagram would exceed 65535 bytes
	BadLength               // M set and a length that is not a multiple of 8
	Malformed               // inconsistent with the datagram's end, empty, or not a fragment
	TooMany                 // the datagram has MaxFragments fragments already: discarded
	NoRoom                  // the caller's buffer cannot hold the datagram: discarded
	// IncompleteChain: an IPv6 first fragment without the whole header chain through
	// the upper-layer header (RFC 8200 section 4.5, RFC 7112): dropped, the caller sends
	// a parameter problem, code 3.
	IncompleteChain
)

var statusNames = [...]string{"held", "done", "duplicate", "overlap", "discarded", "too-big",
	"bad-length", "malformed", "too-many", "no-room", "incomplete-chain"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Result is what Add reports.
type Result struct {
	Status Status
	// Len is the length of the reassembled datagram in the caller's buffer (Done).
	Len int
	// Pointer is, for an IPv6 fragment refused with TooBig or BadLength, the offset of
	// the field a parameter problem (code 0) points at.
	Pointer uint32
}

// Stats are the Reassembler's counters.
type Stats struct {
	Fragments   uint64 // fragments given to Add
	Reassembled uint64 // datagrams completed
	Timeouts    uint64 // datagrams expired incomplete
	Overlaps    uint64 // datagrams discarded for overlapping fragments
	Duplicates  uint64 // exact duplicate fragments dropped
	Discarded   uint64 // fragments of discarded datagrams dropped
	OverLimit   uint64 // fragments refused for TooBig or BadLength
	Malformed   uint64 // fragments refused as Malformed or TooMany, NoRoom datagrams
	Evicted     uint64 // datagrams evicted by the MaxDatagrams or MaxBytes limit
	InProgress  int    // datagrams held now
	Bytes       int    // bytes of buffers held now
}

// Key identifies a datagram: RFC 791's source, destination, protocol and identification,
// RFC 8200's source, destination and identification. It is pointer-free.
type Key struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

type span struct{ off, end int }

type datagram struct {
	key     Key
	created time.Time
	tag     int
	// hdr is the offset-zero fragment's headers as received: the IPv4 header, or the
	// IPv6 headers up to and including the fragment header (fragAt, its Next Header named
	// at prevNH). nil until that fragment arrives.
	hdr      []byte
	fragAt   int
	prevNH   int
	firstLen int    // data bytes of the offset-zero fragment
	data     []byte // the fragmentable part, at its offsets
	spans    []span // the fragments held, sorted by offset
	total    int    // the datagram's data length, -1 until the last fragment arrives
	maxEnd   int
	held     int  // bytes counted in Reassembler.bytes
	dead     bool // discarded after an overlap: its later fragments are dropped
	older    *datagram
	newer    *datagram
}

// Reassembler holds datagrams in progress. Create it with New.
type Reassembler struct {
	cfg Config

	mu     sync.Mutex
	m      map[Key]*datagram
	oldest *datagram
	newest *datagram
	bytes  int
	free   [][]byte // data buffers of finished datagrams, for reuse
	quote  []byte   // Expire's copy of a first fragment
	st     Stats
}

const maxFree = 4

// New returns a Reassembler bounded by cfg.
func New(cfg Config) *Reassembler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = DefaultMaxDatagrams
	}
	if cfg.MaxFragments <= 0 {
		cfg.MaxFragments = DefaultMaxFragments
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	cfg.MaxBytes = max(cfg.MaxBytes, 2*MaxDatagram)
	return &Reassembler{cfg: cfg, m: make(map[Key]*datagram, cfg.MaxDatagrams)}
}

// Stats returns the counters.
func (r *Reassembler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st
	s.InProgress = len(r.m)
	s.Bytes = r.bytes
	return s
}

// AddIPv4 takes an IPv4 fragment (MF set or a non-zero offset) of a packet that passed
// header.IPv4.IsValid and its checksum, cut at its total length. tag is kept with the
// datagram and handed back by Expire (the router's receiving port). When the datagram is
// complete it is written to dst as one unfragmented packet (the offset-zero fragment's
// header, MF and offset clear, length and checksum set).
func (r *Reassembler) AddIPv4(now time.Time, ip header.IPv4, tag int, dst []byte) Result {
	if !ip.IsValid() || !ip.IsFragment() {
		return r.refuse(Malformed)
	}
	hl := ip.HeaderLength()
	data := ip[hl:ip.TotalLength()]
	off := int(ip.FragmentOffset())
	more := ip.MoreFragments()
	switch {
	case len(data) == 0 && more:
		return r.refuse(Malformed)
	case more && len(data)%8 != 0:
		// RFC 791 section 3.2: every fragment but the last ends on an 8-byte boundary.
		return r.refuse(BadLength)
	case off+len(data) > 0xffff-header.IPv4MinimumSize:
		// RFC 791: the total length of the datagram is a 16-bit field.
		return r.refuse(TooBig)
	}
	k := Key{id: uint32(ip.ID()), proto: ip.Protocol()}
	s, d := ip.SourceAddr().As4(), ip.DestinationAddr().As4()
	copy(k.src[:], s[:])
	copy(k.dst[:], d[:])
	var hdr []byte
	if off == 0 {
		hdr = ip[:hl]
	}
	return r.add(now, k, tag, hdr, 0, 0, off, more, data, dst)
}

// AddIPv6 takes an IPv6 packet that passed header.IPv6.IsValid, cut at its payload
// length, holding a fragment header that is not atomic (see the package doc). tag is as
// for AddIPv4. The reassembled packet has the offset-zero fragment's headers without the
// fragment header, whose Next Header takes its place (RFC 8200 section 4.5).
func (r *Reassembler) AddIPv6(now time.Time, ip header.IPv6, tag int, dst []byte) Result {
	if !ip.IsValid() {
		return r.refuse(Malformed)
	}
	at, prev, ok := ip.FragmentHeader()
	if !ok {
		return r.refuse(Malformed)
	}
	fh := header.IPv6Fragment(ip[at:])
	if fh.IsAtomic() {
		return r.refuse(Malformed)
	}
	end := header.IPv6MinimumSize + int(ip.PayloadLength())
	data := ip[at+header.IPv6FragmentSize : end]
	off := fh.Offset()
	switch {
	case fh.More() && (len(data) == 0 || len(data)%8 != 0):
		// RFC 8200 section 4.5: a fragment with M set whose length is not a multiple of
		// 8: parameter problem, code 0, pointing at the Payload Length.
		r.mu.Lock()
		r.st.Fragments++
		r.st.OverLimit++
		r.mu.Unlock()
		return Result{Status: BadLength, Pointer: 4}
	case at-header.IPv6MinimumSize+off+len(data) > 0xffff:
		// RFC 8200 section 4.5: a reassembled payload length over 65535: parameter
		// problem, code 0, pointing at the Fragment Offset field.
		r.mu.Lock()
		r.st.Fragments++
		r.st.OverLimit++
		r.mu.Unlock()
		return Result{Status: TooBig, Pointer: uint32(at + 2)}
	}
	if off == 0 && !headerChainIn(fh.NextHeader(), data) {
		// RFC 8200 section 4.5: the first fragment must hold every header through the
		// upper-layer one; else parameter problem, code 3, pointer 0.
		return r.refuse(IncompleteChain)
	}
	k := Key{id: fh.ID(), v6: true}
	k.src = ip.SourceAddr().As16()
	k.dst = ip.DestinationAddr().As16()
	var hdr []byte
	if off == 0 {
		hdr = ip[:at+header.IPv6FragmentSize]
	}
	return r.add(now, k, tag, hdr, at, prev, off, fh.More(), data, dst)
}

// headerChainIn reports whether data, the fragmentable part of a first fragment whose
// first header is next, holds the extension headers and the upper-layer header (TCP's
// 20 bytes and options, UDP's 8, ICMPv6's 4; others need none).
func headerChainIn(next uint8, data []byte) bool {
	at := 0
	for n := 0; header.IsExtensionHeader(next); n++ {
		if n == header.IPv6MaxExtensionHeaders || next == header.ProtocolHopByHop || at+8 > len(data) {
			return false
		}
		var l int
		switch next {
		case header.ProtocolFragment:
			l = 8
		case header.ProtocolAH:
			l = (int(data[at+1]) + 2) * 4
		default:
			l = (int(data[at+1]) + 1) * 8
		}
		next = data[at]
		at += l
	}
	need := 0
	switch next {
	case header.ProtocolTCP:
		need = 20
		if at+13 <= len(data) {
			need = max(need, int(data[at+12]>>4)*4)
		}
	case header.ProtocolUDP:
		need = 8
	case header.ProtocolICMPv6:
		need = 4
	}
	return at+need <= len(data)
}

func (r *Reassembler) refuse(s Status) Result {
	r.mu.Lock()
	r.st.Fragments++
	switch s {
	case TooBig, BadLength:
		r.st.OverLimit++
	default:
		r.st.Malformed++
	}
	r.mu.Unlock()
	return Result{Status: s}
}

// add files the fragment data at offset off of datagram k. hdr is the offset-zero
// fragment's headers (nil for the others).
func (r *Reassembler) add(now time.Time, k Key, tag int, hdr []byte, fragAt, prevNH, off int, more bool, data, dst []byte) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Fragments++
	dg := r.m[k]
	if dg != nil && !now.Before(dg.created.Add(r.cfg.Timeout)) {
		// Expired but not reaped yet: a new datagram takes its place.
		r.timeout(dg, nil)
		dg = nil
	}
	if dg == nil {
		for len(r.m) >= r.cfg.MaxDatagrams {
			r.evictOldest()
		}
		dg = &datagram{key: k, created: now, tag: tag, total: -1}
		r.m[k] = dg
		r.link(dg)
	}
	if dg.dead {
		// RFC 5722 section 4: the fragments of a datagram discarded for an overlap,
		// including those not received yet, are discarded.
		r.st.Discarded++
		return Result{Status: Discarded}
	}
	end := off + len(data)
	// The datagram's end: the last fragment says it; nothing may lie beyond it.
	switch {
	case !more && dg.total >= 0 && end != dg.total,
		!more && end < dg.maxEnd,
		more && dg.total >= 0 && end > dg.total:
		r.st.Malformed++
		r.discard(dg)
		return Result{Status: Malformed}
	}
	// Overlap and duplicate (RFC 5722 section 4, RFC 8200 section 4.5).
	i := 0
	for i < len(dg.spans) && dg.spans[i].end <= off {
		i++
	}
	if i < len(dg.spans) && dg.spans[i].off < end {
		sp := dg.spans[i]
		if sp.off == off && sp.end == end && bytes.Equal(dg.data[off:end], data) {
			r.st.Duplicates++
			return Result{Status: Duplicate}
		}
		r.st.Overlaps++
		r.kill(dg)
		return Result{Status: Overlap}
	}
	if len(dg.spans) >= r.cfg.MaxFragments {
		r.st.Malformed++
		r.discard(dg)
		return Result{Status: TooMany}
	}
	if !r.grow(dg, end) {
		// The datagram alone is over the memory limit (cannot be with the bounds of New).
		r.st.Evicted++
		r.discard(dg)
		return Result{Status: NoRoom}
	}
	if len(dg.data) < end {
		dg.data = dg.data[:end]
	}
	copy(dg.data[off:end], data)
	dg.spans = append(dg.spans, span{})
	copy(dg.spans[i+1:], dg.spans[i:])
	dg.spans[i] = span{off, end}
	dg.maxEnd = max(dg.maxEnd, end)
	if !more {
		dg.total = end
	}
	if hdr != nil {
		before := cap(dg.hdr)
		dg.hdr = append(dg.hdr[:0], hdr...)
		r.bytes += cap(dg.hdr) - before
		dg.held += cap(dg.hdr) - before
		dg.fragAt, dg.prevNH, dg.firstLen = fragAt, prevNH, len(data)
		dg.tag = tag
	}
	if dg.total < 0 || dg.hdr == nil || !dg.contiguous() {
		return Result{Status: Held}
	}
	n, ok := dg.write(dst)
	r.remove(dg)
	if !ok {
		r.st.Malformed++
		return Result{Status: NoRoom}
	}
	r.st.Reassembled++
	return Result{Status: Done, Len: n}
}

// contiguous reports whether the spans cover [0, total) without a hole.
func (dg *datagram) contiguous() bool {
	at := 0
	for _, s := range dg.spans {
		if s.off != at {
			return false
		}
		at = s.end
	}
	return at == dg.total
}

// write puts the reassembled datagram into dst.
func (dg *datagram) write(dst []byte) (int, bool) {
	if dg.key.v6 {
		hl := dg.fragAt
		n := hl + dg.total
		if n > len(dst) || n-header.IPv6MinimumSize > 0xffff {
			return 0, false
		}
		copy(dst, dg.hdr[:hl])
		// The fragment header's Next Header takes its place (RFC 8200 section 4.5).
		dst[dg.prevNH] = dg.hdr[hl]
		copy(dst[hl:], dg.data[:dg.total])
		header.IPv6(dst).SetPayloadLength(uint16(n - header.IPv6MinimumSize))
		return n, true
	}
	hl := len(dg.hdr)
	n := hl + dg.total
	if n > len(dst) || n > 0xffff {
		return 0, false
	}
	copy(dst, dg.hdr)
	copy(dst[hl:], dg.data[:dg.total])
	ip := header.IPv4(dst[:n])
	ip.SetTotalLength(uint16(n))
	// Offset 0, MF clear; DF as the first fragment had it.
	binary.BigEndian.PutUint16(ip[6:], binary.BigEndian.Uint16(ip[6:])&0x4000)
	ip.SetChecksum(ip.CalculateChecksum())
	return n, true
}

// grow makes dg.data hold n bytes (plus its header), within MaxBytes: older datagrams are
// evicted to make room.
func (r *Reassembler) grow(dg *datagram, n int) bool {
	if cap(dg.data) >= n {
		return true
	}
	size := 2048
	for size < n {
		size *= 2
	}
	size = min(size, MaxDatagram)
	if size < n {
		return false
	}
	need := size - cap(dg.data)
	for r.bytes+need > r.cfg.MaxBytes {
		if r.oldest == dg && dg.newer == nil {
			return false
		}
		if r.oldest == dg {
			r.evict(dg.newer)
		} else {
			r.evictOldest()
		}
	}
	var b []byte
	for i, f := range r.free {
		if cap(f) >= size {
			b = f[:len(dg.data)]
			r.free[i] = r.free[len(r.free)-1]
			r.free[len(r.free)-1] = nil
			r.free = r.free[:len(r.free)-1]
			need = cap(b) - cap(dg.data)
			break
		}
	}
	if b == nil {
		b = make([]byte, len(dg.data), size)
	}
	copy(b, dg.data)
	r.release(dg.data)
	dg.data = b
	r.bytes += need
	dg.held += need
	return true
}

// release keeps a data buffer for reuse.
func (r *Reassembler) release(b []byte) {
	if cap(b) > 0 && len(r.free) < maxFree {
		r.free = append(r.free, b[:0])
	}
}

// Expire drops the datagrams that have been in progress for Timeout or longer. For each
// one whose offset-zero fragment was received, timedOut gets that fragment as it arrived
// (valid only during the call) and the tag it came with, to send ICMP time exceeded
// (fragment reassembly time exceeded, RFC 792, RFC 8200 section 4.5). timedOut runs with
// the Reassembler locked and must not call it.
func (r *Reassembler) Expire(now time.Time, timedOut func(first []byte, tag int)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for dg := r.oldest; dg != nil && !now.Before(dg.created.Add(r.cfg.Timeout)); dg = r.oldest {
		r.timeout(dg, timedOut)
	}
}

// timeout removes an expired datagram and reports it.
func (r *Reassembler) timeout(dg *datagram, timedOut func([]byte, int)) {
	if !dg.dead {
		r.st.Timeouts++
		if dg.hdr != nil && timedOut != nil {
			r.quote = append(append(r.quote[:0], dg.hdr...), dg.data[:dg.firstLen]...)
			fixQuote(r.quote, dg)
			timedOut(r.quote, dg.tag)
		}
	}
	r.remove(dg)
}

// fixQuote sets the length field of a first fragment rebuilt from its header and data.
func fixQuote(q []byte, dg *datagram) {
	if dg.key.v6 {
		header.IPv6(q).SetPayloadLength(uint16(len(q) - header.IPv6MinimumSize))
		return
	}
	header.IPv4(q).SetTotalLength(uint16(len(q)))
}

func (r *Reassembler) evictOldest() {
	if r.oldest != nil {
		r.evict(r.oldest)
	}
}

func (r *Reassembler) evict(dg *datagram) {
	r.st.Evicted++
	r.remove(dg)
}

// kill discards dg's data but keeps it, dead, until it times out, so that its later
// fragments are dropped too (RFC 5722 section 4).
func (r *Reassembler) kill(dg *datagram) {
	r.freeData(dg)
	dg.dead = true
}

// discard drops a datagram now.
func (r *Reassembler) discard(dg *datagram) { r.remove(dg) }

func (r *Reassembler) freeData(dg *datagram) {
	r.bytes -= dg.held
	dg.held = 0
	r.release(dg.data)
	dg.data, dg.spans, dg.hdr = nil, nil, nil
}

func (r *Reassembler) remove(dg *datagram) {
	r.freeData(dg)
	delete(r.m, dg.key)
	r.unlink(dg)
}

func (r *Reassembler) link(dg *datagram) {
	dg.older = r.newest
	if r.newest != nil {
		r.newest.newer = dg
	} else {
		r.oldest = dg
	}
	r.newest = dg
}

func (r *Reassembler) unlink(dg *datagram) {
	if dg.older != nil {
		dg.older.newer = dg.newer
	} else if r.oldest == dg {
		r.oldest = dg.newer
	}
	if dg.newer != nil {
		dg.newer.older = dg.older
	} else if r.newest == dg {
		r.newest = dg.older
	}
	dg.older, dg.newer = nil, nil
}

// KeyIPv4 is the key of the IPv4 datagram with these fields (RFC 791 section 3.2).
func KeyIPv4(src, dst netip.Addr, id uint16, proto uint8) Key {
	k := Key{id: uint32(id), proto: proto}
	s, d := src.As4(), dst.As4()
	copy(k.src[:], s[:])
	copy(k.dst[:], d[:])
	return k
}

// KeyIPv6 is the key of the IPv6 datagram with these fields (RFC 8200 section 4.5).
func KeyIPv6(src, dst netip.Addr, id uint32) Key {
	return Key{src: src.As16(), dst: dst.As16(), id: id, v6: true}
}

// Take removes the datagram k if it is in progress and hands the fragments it holds,
// other than an offset-zero one, to fn in offset order: the offset in bytes, whether
// more data follows (false only for the datagram's last fragment), and the data, valid
// during the call. fn runs with the Reassembler locked and must not call it. Take
// returns how many fragments it handed. The router uses it for fragments that overtook
// the first fragment of a datagram it does not reassemble but forwards on a balanced
// flow's behalf.
func (r *Reassembler) Take(k Key, fn func(off int, more bool, data []byte)) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	dg := r.m[k]
	if dg == nil {
		return 0
	}
	n := 0
	if !dg.dead {
		for _, s := range dg.spans {
			if s.off == 0 {
				continue
			}
			fn(s.off, dg.total < 0 || s.end < dg.total, dg.data[s.off:s.end])
			n++
		}
	}
	r.remove(dg)
	return n
}
