// Package arpd is a router port's neighbour subsystem: it answers ARP and IPv6 neighbour
// solicitations for the port's own (and virtual) addresses, resolves next hops with ARP
// and NDP while queueing a few frames for them, keeps the neighbour cache with the
// state machine of RFC 4861 §7.3 for both families, and announces the port's addresses
// with gratuitous ARP and unsolicited neighbour advertisements.
package arpd

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ulb/router/header"
)

// Neighbours is the neighbour table and ARP/NDP responder of one Ethernet port.
//
// Lookup and Enqueue are safe to call from many goroutines at once, concurrently with
// HandleARP, HandleNDP, Tick, Announce and the configuration methods.
type Neighbours struct {
	cfg Config

	addrs atomic.Pointer[addrSet] // what the port owns; replaced by the control plane

	// amu serialises the configuration methods that rebuild addrs.
	amu        sync.Mutex
	configured []netip.Prefix
	virtual    map[netip.Addr]header.MAC

	// mu guards entries and every entry (see entry). Lookup takes the read lock only.
	mu      sync.RWMutex
	entries map[netip.Addr]*entry
	queued  int // frames queued over all entries

	// coarse is the Unix ns of the last Tick: Lookup stamps entries with it instead of
	// reading the clock.
	coarse atomic.Int64

	lastConflictLog atomic.Int64 // Unix ns of the last address-conflict log line

	st counters
}

// New returns the neighbour table of the port cfg describes.
func New(cfg Config) *Neighbours {
	n := &Neighbours{
		cfg:     cfg.withDefaults(),
		virtual: make(map[netip.Addr]header.MAC),
		entries: make(map[netip.Addr]*entry),
	}
	n.configured = slices.Clone(cfg.Addresses)
	n.addrs.Store(newAddrSet(n.cfg.MAC, n.configured, n.virtual))
	n.coarse.Store(n.cfg.Now().UnixNano())
	return n
}

// SetAddresses replaces the port's own addresses (the derived link-local address stays).
// Entries are kept; those no longer on-link age out.
func (n *Neighbours) SetAddresses(prefixes []netip.Prefix) {
	n.amu.Lock()
	defer n.amu.Unlock()
	n.configured = slices.Clone(prefixes)
	n.addrs.Store(newAddrSet(n.cfg.MAC, n.configured, n.virtual))
}

// AddVirtual makes the port answer ARP requests and neighbour solicitations for addr
// with mac (a VRRP virtual MAC) until RemoveVirtual. addr need not be one of the
// configured addresses; if it is, mac replaces the port MAC in answers for it.
func (n *Neighbours) AddVirtual(addr netip.Addr, mac header.MAC) {
	addr = normalize(addr)
	if !usableUnicast(addr) {
		return
	}
	n.amu.Lock()
	defer n.amu.Unlock()
	n.virtual[addr] = mac
	n.addrs.Store(newAddrSet(n.cfg.MAC, n.configured, n.virtual))
}

// RemoveVirtual stops answering for a virtual address added by AddVirtual. A configured
// address is answered with the port MAC again.
func (n *Neighbours) RemoveVirtual(addr netip.Addr) {
	addr = normalize(addr)
	n.amu.Lock()
	defer n.amu.Unlock()
	delete(n.virtual, addr)
	n.addrs.Store(newAddrSet(n.cfg.MAC, n.configured, n.virtual))
}

// Owns reports whether the port answers for addr, and with which MAC.
func (n *Neighbours) Owns(addr netip.Addr) (header.MAC, bool) {
	m, ok := n.addrs.Load().own[normalize(addr)]
	return m, ok
}

// LinkLocal returns the port's IPv6 link-local address derived from its MAC.
func (n *Neighbours) LinkLocal() netip.Addr { return n.addrs.Load().linkLocal }

// MulticastMACs returns the Ethernet groups the port must join: all-nodes, all-routers
// and the solicited-node group of each own IPv6 address (virtual ones included).
func (n *Neighbours) MulticastMACs() []header.MAC {
	return slices.Clone(n.addrs.Load().groups)
}

// AddStatic installs a PERMANENT entry: Lookup always returns mac for addr, and nothing
// received changes it.
func (n *Neighbours) AddStatic(addr netip.Addr, mac header.MAC) bool {
	addr = normalize(addr)
	if !usableUnicast(addr) || mac.IsMulticast() || mac.IsZero() {
		return false
	}
	var out outList
	n.mu.Lock()
	e := n.entries[addr]
	if e == nil {
		e = &entry{addr: addr}
		n.entries[addr] = e
	}
	e.mac = mac
	e.updated = n.cfg.Now()
	e.setState(StatePermanent)
	n.releaseLocked(e, &out)
	n.mu.Unlock()
	n.flush(&out)
	return true
}

// RemoveStatic removes a PERMANENT entry added by AddStatic.
func (n *Neighbours) RemoveStatic(addr netip.Addr) {
	addr = normalize(addr)
	n.mu.Lock()
	if e := n.entries[addr]; e != nil && e.State() == StatePermanent {
		delete(n.entries, addr)
	}
	n.mu.Unlock()
}

// Lookup returns the link-layer address of the next hop ip. It is the forwarding fast
// path: it neither allocates nor takes an exclusive lock. Multicast and broadcast
// addresses map to their Ethernet groups. A hit on a STALE entry still returns its MAC
// and moves the entry to DELAY, so that Tick probes it if no confirmation arrives.
func (n *Neighbours) Lookup(ip netip.Addr) (header.MAC, bool) {
	ip = normalize(ip)
	if ip.IsMulticast() {
		if ip.Is4() {
			return ipv4MulticastMAC(ip), true
		}
		return header.IPv6MulticastMAC(ip), true
	}
	n.mu.RLock()
	e := n.entries[ip]
	if e == nil {
		n.mu.RUnlock()
		if n.addrs.Load().isBroadcast(ip) {
			return header.BroadcastMAC, true
		}
		return header.MAC{}, false
	}
	switch e.State() {
	case StateReachable, StateDelay, StateProbe, StatePermanent:
	case StateStale:
		if e.state.CompareAndSwap(uint32(StateStale), uint32(StateDelay)) {
			e.delayEnd.Store(n.cfg.Now().Add(n.cfg.DelayFirstProbe).UnixNano())
		}
	default:
		n.mu.RUnlock()
		return header.MAC{}, false
	}
	mac := e.mac
	if c := n.coarse.Load(); e.used.Load() != c {
		e.used.Store(c)
	}
	n.mu.RUnlock()
	return mac, true
}

// Enqueue takes a frame that Lookup could not resolve: buf[offset:] is the Ethernet
// frame and buf[offset-10:offset] its virtio-net header. The frame is copied (the caller
// keeps buf) into the next hop's queue, whose oldest frame is dropped when full, and
// resolution starts. When the next hop resolves, its frames leave through Config.Send in
// order with the learned destination MAC; when it fails, they are dropped and handed to
// Config.OnUnreachable. A next hop that failed recently (FAILED) refuses the frame at
// once the same way. A next hop that resolved meanwhile gets the frame sent directly.
func (n *Neighbours) Enqueue(ip netip.Addr, buf []byte, offset int) {
	ip = normalize(ip)
	if offset < header.VnetHdrLen || offset > len(buf) || len(buf)-offset < header.EthernetMinimumSize ||
		len(buf)-offset > header.MaxFrame {
		n.drop(DropShort)
		return
	}
	if !usableUnicast(ip) {
		n.drop(DropBadNextHop)
		return
	}
	as := n.addrs.Load()
	if _, own := as.own[ip]; own {
		n.drop(DropBadNextHop)
		return
	}
	// A next hop that failed recently refuses the frame under the read lock: a flood of
	// frames towards addresses that do not answer (replies to spoofed sources) costs a
	// map lookup and a counter each, not the table's exclusive lock.
	n.mu.RLock()
	if e := n.entries[ip]; e != nil && e.State() == StateFailed {
		n.mu.RUnlock()
		n.unreachable(buf, offset)
		return
	}
	n.mu.RUnlock()
	var out outList
	n.mu.Lock()
	now := n.cfg.Now()
	e := n.entries[ip]
	if e == nil {
		if !n.roomLocked() {
			n.mu.Unlock()
			n.drop(DropTableFull)
			n.unreachable(buf, offset)
			return
		}
		e = &entry{addr: ip, updated: now}
		e.setState(StateIncomplete)
		n.entries[ip] = e
		e.probes = 1
		e.nextProbe = now.Add(n.cfg.RetransTimer)
		out.add(n.solicit(as, e, false))
	}
	switch st := e.State(); {
	case st == StateIncomplete:
		n.queueLocked(e, buf, offset)
		n.mu.Unlock()
		n.flush(&out)
	case st == StateFailed:
		n.mu.Unlock()
		n.unreachable(buf, offset)
	default:
		if st == StateStale {
			e.setState(StateDelay)
			e.delayEnd.Store(now.Add(n.cfg.DelayFirstProbe).UnixNano())
		}
		mac := e.mac
		n.mu.Unlock()
		header.Ethernet(buf[offset:]).SetDestination(mac)
		n.cfg.Send(buf, offset)
	}
}

// unreachable counts a frame refused for a failed next hop and hands it to
// OnUnreachable.
func (n *Neighbours) unreachable(buf []byte, offset int) {
	n.st.unreachable.Add(1)
	if n.cfg.OnUnreachable != nil {
		n.cfg.OnUnreachable(buf, offset)
	}
}

// queueLocked copies a frame into e's queue.
func (n *Neighbours) queueLocked(e *entry, buf []byte, offset int) {
	if len(e.queue) >= n.cfg.QueueLen {
		putBuf(e.queue[0])
		e.queue = slices.Delete(e.queue, 0, 1)
		n.queued--
		n.st.queueDrops.Add(1)
	}
	if n.queued >= n.cfg.MaxQueued {
		n.st.queueDrops.Add(1)
		return
	}
	f := getBufFor(len(buf) - offset)
	f.b = f.b[:header.Headroom+len(buf)-offset]
	copy(f.b[header.Headroom-header.VnetHdrLen:], buf[offset-header.VnetHdrLen:])
	e.queue = append(e.queue, f)
	n.queued++
	n.st.queued.Add(1)
}

// releaseLocked moves e's queued frames, addressed to e.mac, to out.
func (n *Neighbours) releaseLocked(e *entry, out *outList) {
	for _, f := range e.queue {
		header.Ethernet(f.b[header.Headroom:]).SetDestination(e.mac)
		out.add(f)
		n.st.released.Add(1)
	}
	n.queued -= len(e.queue)
	clear(e.queue)
	e.queue = e.queue[:0]
}

// roomLocked reports whether a new entry fits, removing FAILED and STALE entries first
// when the table is full (like Linux's forced garbage collection).
func (n *Neighbours) roomLocked() bool {
	if len(n.entries) < n.cfg.MaxEntries {
		return true
	}
	for ip, e := range n.entries {
		switch e.State() {
		case StateFailed:
			delete(n.entries, ip)
		case StateStale:
			delete(n.entries, ip)
		}
	}
	return len(n.entries) < n.cfg.MaxEntries
}

// lastActive is the later of the last update and the last Lookup hit.
func (e *entry) lastActive() time.Time {
	if u := e.lastUse(); u.After(e.updated) {
		return u
	}
	return e.updated
}

// Tick runs the timers: retransmissions of INCOMPLETE and PROBE, their failure,
// REACHABLE→STALE, DELAY→PROBE, and the removal of expired FAILED and unused STALE
// entries. The router calls it a few times per second; all times come from Config.Now.
func (n *Neighbours) Tick() {
	now := n.cfg.Now()
	n.coarse.Store(now.UnixNano())
	as := n.addrs.Load()
	var out, dead outList
	n.mu.Lock()
	for ip, e := range n.entries {
		switch e.State() {
		case StateIncomplete:
			if now.Before(e.nextProbe) {
				break
			}
			if e.probes < n.cfg.MaxProbes {
				e.probes++
				e.nextProbe = now.Add(n.cfg.RetransTimer)
				out.add(n.solicit(as, e, false))
				break
			}
			n.failLocked(e, now)
			dead.frames = append(dead.frames, e.queue...)
			n.queued -= len(e.queue)
			e.queue = nil
		case StateReachable:
			if now.Sub(e.updated) >= n.cfg.ReachableTime {
				e.setState(StateStale)
				e.updated = now
			}
		case StateStale:
			if now.Sub(e.lastActive()) >= n.cfg.GCStaleTime {
				delete(n.entries, ip)
			}
		case StateDelay:
			if now.UnixNano() < e.delayEnd.Load() {
				break
			}
			e.setState(StateProbe)
			e.updated = now
			e.probes = 1
			e.nextProbe = now.Add(n.cfg.RetransTimer)
			out.add(n.solicit(as, e, true))
		case StateProbe:
			if now.Before(e.nextProbe) {
				break
			}
			if e.probes < n.cfg.MaxProbes {
				e.probes++
				e.nextProbe = now.Add(n.cfg.RetransTimer)
				out.add(n.solicit(as, e, true))
				break
			}
			n.failLocked(e, now)
		case StateFailed:
			if now.Sub(e.updated) >= n.cfg.FailedKeep {
				delete(n.entries, ip)
			}
		}
	}
	n.mu.Unlock()
	n.flush(&out)
	for _, f := range dead.frames {
		n.unreachable(f.b, header.Headroom)
		putBuf(f)
	}
}

func (n *Neighbours) failLocked(e *entry, now time.Time) {
	n.cfg.Logger.Debug("neighbour unreachable", "address", e.addr, "state", e.State(), "queued", len(e.queue))
	e.setState(StateFailed)
	e.mac = header.MAC{}
	e.updated = now
	e.probes = 0
	n.st.failures.Add(1)
}

// Entries returns a snapshot of the table, sorted by address.
func (n *Neighbours) Entries() []Entry {
	now := n.cfg.Now()
	n.mu.RLock()
	list := make([]Entry, 0, len(n.entries))
	for _, e := range n.entries {
		st := e.State()
		x := Entry{
			Port:     n.cfg.Port,
			Address:  e.addr,
			State:    st.String(),
			Updated:  e.updated,
			Age:      now.Sub(e.updated),
			Queued:   len(e.queue),
			IsRouter: e.isRouter,
		}
		if st.hasMAC() {
			x.MAC = e.mac
		}
		list = append(list, x)
	}
	n.mu.RUnlock()
	slices.SortFunc(list, func(a, b Entry) int { return a.Address.Compare(b.Address) })
	return list
}

// Announce sends a gratuitous ARP request for each own IPv4 address and an unsolicited
// neighbour advertisement to all-nodes for each own IPv6 address, virtual ones included,
// each from the MAC the address is answered with.
func (n *Neighbours) Announce() {
	as := n.addrs.Load()
	for _, a := range slices.SortedFunc(maps.Keys(as.own), netip.Addr.Compare) {
		n.announce(as, a, as.own[a])
	}
}

// AnnounceAddress announces one owned address as Announce does, and reports false,
// sending nothing, when the port does not own addr.
func (n *Neighbours) AnnounceAddress(addr netip.Addr) bool {
	as := n.addrs.Load()
	addr = normalize(addr)
	mac, ok := as.own[addr]
	if ok {
		n.announce(as, addr, mac)
	}
	return ok
}

func (n *Neighbours) announce(as *addrSet, a netip.Addr, mac header.MAC) {
	var out outList
	if a.Is4() {
		out.add(n.buildGratuitousARP(a, mac))
	} else {
		out.add(n.buildNA(mac, a, allNodes, header.IPv6MulticastMAC(allNodes), a, false))
	}
	n.flush(&out)
}

// frameBuf is a pooled buffer whose b holds header.Headroom bytes (the last VnetHdrLen
// of them a virtio-net header) and then one frame: smallBuf bytes for the frames arpd
// builds and the ordinary frames it queues, header.BufSize for a large (GSO) one.
type frameBuf struct{ b []byte }

// smallBuf holds the headroom and a frame of up to 2 KiB: a queued frame costs that,
// not the 64 KiB of a GSO frame, so that the queues of unresolved next hops (MaxQueued
// frames a port) stay small under a flood of replies to addresses that do not answer.
const smallBuf = header.Headroom + 2048

var (
	smallPool = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, smallBuf)} }}
	bigPool   = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, header.BufSize)} }}
)

// getBuf returns a buffer with a zero virtio-net header and room for a frame of up to
// smallBuf-Headroom bytes.
func getBuf() *frameBuf { return getBufFor(smallBuf - header.Headroom) }

// getBufFor returns a buffer with a zero virtio-net header and room for a frame of n
// bytes (up to header.MaxFrame).
func getBufFor(n int) *frameBuf {
	pool := &smallPool
	size := smallBuf
	if header.Headroom+n > smallBuf {
		pool, size = &bigPool, header.BufSize
	}
	f := pool.Get().(*frameBuf)
	f.b = f.b[:size]
	clear(f.b[header.Headroom-header.VnetHdrLen : header.Headroom])
	return f
}

func putBuf(f *frameBuf) {
	if f == nil {
		return
	}
	if cap(f.b) >= header.BufSize {
		bigPool.Put(f)
	} else {
		smallPool.Put(f)
	}
}

// outList collects frames built under the lock, sent after it is released.
type outList struct{ frames []*frameBuf }

func (o *outList) add(f *frameBuf) {
	if f != nil {
		o.frames = append(o.frames, f)
	}
}

// flush sends the collected frames in order and returns their buffers to the pool.
func (n *Neighbours) flush(o *outList) {
	for i, f := range o.frames {
		n.cfg.Send(f.b, header.Headroom)
		putBuf(f)
		o.frames[i] = nil
	}
	o.frames = o.frames[:0]
}
