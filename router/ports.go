package router

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"

	"ulb/arpd"
	"ulb/router/fib"
	"ulb/router/header"
	"ulb/router/port"
)

// portTable is the router's ports, published whole (Router.tab). ports is indexed by
// routerPort.idx, the index every fib.NextHop, VRRP instance and counter holds: a port
// added at run time is appended, a removed one keeps its slot with a removed state (no
// addresses, so no route or local address leads to it) and is never reused, so that an
// index taken from an older table or FIB still names the same port. byName has the live
// ports only.
type portTable struct {
	ports  []*routerPort
	byName map[string]int
}

// portState is what the data plane reads of a port that a reload may change. It is
// immutable once published (routerPort.st): a reload builds a new one and swaps it in, so
// that a loop sees the old set of addresses or the new one, never a mix, with no lock
// and no allocation.
type portState struct {
	addrs  []netip.Prefix // own addresses, with the IPv6 link-local on Ethernet ports
	src4   netip.Addr     // source of ICMPv4 errors sent from this port
	src6   netip.Addr     // source of ICMPv6 errors sent from this port
	ll6    netip.Addr     // the port's link-local address: source of its redirects
	bcast4 []netip.Addr   // directed broadcast addresses of its IPv4 networks
	mtu    int            // the largest IP packet sent out of the port
	// directedBroadcast and redirects are PortConfig's.
	directedBroadcast bool
	redirects         bool
	// removed marks a port a reload took away: its loop has stopped or is stopping,
	// its device is closed.
	removed bool
}

// removedState is the state of every removed port.
var removedState = &portState{removed: true}

// ports returns the ports, indexed by routerPort.idx (removed ones included).
func (r *Router) ports() []*routerPort { return r.tab.Load().ports }

// livePort returns the live port of that name, or nil.
func (r *Router) livePort(name string) *routerPort {
	tab := r.tab.Load()
	if i, ok := tab.byName[name]; ok {
		return tab.ports[i]
	}
	return nil
}

// state returns the port's addresses and options in effect.
func (rp *routerPort) state() *portState { return rp.st.Load() }

// stateIn returns rp's state in next when it has one there, else its own.
func stateIn(rp *routerPort, next map[*routerPort]*portState) *portState {
	if st, ok := next[rp]; ok {
		return st
	}
	return rp.state()
}

// newPort makes the router's port of pc, at index i, and joins arpd's multicast groups
// on its device.
func (r *Router) newPort(i int, pc PortConfig, now func() time.Time, logger *slog.Logger) (*routerPort, error) {
	rp := &routerPort{
		idx:     i,
		cfg:     pc,
		p:       pc.Port,
		layer3:  pc.Port.Layer3(),
		host:    pc.Host,
		linkMTU: pc.Port.MTU(),
	}
	copy(rp.mac[:], pc.Port.HardwareAddr())
	st, err := rp.newState(pc)
	if err != nil {
		return nil, err
	}
	rp.st.Store(st)
	if !rp.layer3 {
		rp.neigh = arpd.New(arpd.Config{
			Port:          pc.Name,
			MAC:           rp.mac,
			Addresses:     pc.Addresses,
			Send:          rp.sendOne,
			OnUnreachable: r.hostUnreachable,
			Now:           now,
			Logger:        logger.With("port", pc.Name),
		})
		if mf, ok := pc.Port.(port.MulticastFilter); ok {
			for _, m := range rp.neigh.MulticastMACs() {
				if err := mf.AddMulticast(m[:]); err != nil {
					return nil, fmt.Errorf("port %s: join %s: %w", pc.Name, m, err)
				}
			}
		}
	}
	return rp, nil
}

// newState computes the port's state for the addresses and options of pc.
func (rp *routerPort) newState(pc PortConfig) (*portState, error) {
	st := &portState{
		addrs:             slices.Clone(pc.Addresses),
		mtu:               rp.linkMTU,
		directedBroadcast: pc.DirectedBroadcast,
		redirects:         pc.Redirects && !rp.layer3,
	}
	if rp.host {
		st.addrs = []netip.Prefix{HostPortRouter, HostPortRouter6}
	}
	if pc.MTU != 0 {
		if pc.MTU > rp.linkMTU {
			return nil, fmt.Errorf("%w: port %s: mtu %d is larger than the link's %d", ErrConfig, pc.Name, pc.MTU, rp.linkMTU)
		}
		st.mtu = pc.MTU
	}
	if !rp.layer3 {
		st.addrs = append(st.addrs, netip.PrefixFrom(header.LinkLocalFromMAC(rp.mac), 64))
	}
	for _, a := range st.addrs {
		if a.Addr().Is4() && a.Bits() < 31 {
			st.bcast4 = append(st.bcast4, broadcast4(a))
		}
		if a.Addr().IsLinkLocalUnicast() && !st.ll6.IsValid() {
			st.ll6 = a.Addr()
		}
		switch {
		case a.Addr().Is4() && !st.src4.IsValid():
			st.src4 = a.Addr()
		case a.Addr().Is6() && !a.Addr().IsLinkLocalUnicast() && !st.src6.IsValid():
			st.src6 = a.Addr()
		}
	}
	if !st.src6.IsValid() && !rp.layer3 {
		st.src6 = header.LinkLocalFromMAC(rp.mac)
	}
	return st, nil
}

// SetPorts replaces the router's ports (all but the host port, which stays as it
// started) by ports, in one step, together with the static routes (whose gateways and
// pinned ports depend on the ports):
//   - a port named as a live one, with a nil Port, keeps its device, its receive loop,
//     its neighbour cache and its flows; its addresses and options (MTU, redirects,
//     directed broadcasts) become pc's: the data plane sees the new state at once, arpd
//     answers for the new addresses and no longer for the removed ones, the connected
//     and local routes follow, and each added address is announced (a gratuitous ARP,
//     RFC 5227 §3; an unsolicited neighbour advertisement, RFC 4861 §7.2.6);
//   - a port with a Port is new (a live port of that name, if any, is removed: a
//     changed device): it gets the next index, joins the routing table with its
//     connected prefixes, and, while Run runs, its receive loop starts and its
//     addresses are announced;
//   - a live port not in ports is removed: its loop stops, its device is closed (the
//     caller gives up the port.Port), its routes and neighbours go.
//
// Nothing changes when an error is returned (a bad MTU, a route that no longer
// resolves, a duplicate name); the ports of ports that SetPorts did not take are then
// the caller's to close. A rule's VIP on a changed network finds its port at the next
// SetRules; VRRP instances of a removed port must be gone (SetVRRP) before.
func (r *Router) SetPorts(ports []PortConfig, routes []Route) error {
	r.portsMu.Lock()
	defer r.portsMu.Unlock()
	r.cfgMu.Lock()
	old := r.tab.Load()
	prev := map[*routerPort]*portState{}
	tab, next, added, err := r.planPorts(old, ports)
	if err == nil {
		var t *fib.Table
		if t, err = r.buildFIBFor(routes, tab, next); err == nil {
			// The table first, then the FIB that may point into its new slots.
			r.tab.Store(tab)
			r.routes = routes
			r.fib.Store(t)
			for rp, st := range next {
				prev[rp] = rp.state()
				rp.st.Store(st)
			}
		}
	}
	r.cfgMu.Unlock()
	if err != nil {
		return err
	}
	for rp, st := range next {
		if st.removed {
			r.loops.remove(r, rp)
		}
	}
	for rp, st := range next {
		if !st.removed && rp.neigh != nil {
			r.readdress(rp, prev[rp])
		}
	}
	for _, rp := range added {
		r.loops.add(r, rp)
	}
	return nil
}

// CheckPorts reports the error SetPorts would return for ports and routes, changing
// nothing.
func (r *Router) CheckPorts(ports []PortConfig, routes []Route) error {
	r.portsMu.Lock()
	defer r.portsMu.Unlock()
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	tab, next, _, err := r.planPorts(r.tab.Load(), ports)
	if err != nil {
		return err
	}
	_, err = r.buildFIBFor(routes, tab, next)
	return err
}

// planPorts makes the port table of ports from old, with the new states of the ports
// that change (removed ones included) and the ports added; nothing is published, and a
// new port's arpd is not started (it sends nothing before its loop runs).
func (r *Router) planPorts(old *portTable, ports []PortConfig) (*portTable, map[*routerPort]*portState, []*routerPort, error) {
	tab := &portTable{ports: slices.Clone(old.ports), byName: map[string]int{}}
	next := map[*routerPort]*portState{}
	var added []*routerPort
	seen := map[string]bool{}
	for _, pc := range ports {
		if seen[pc.Name] {
			return nil, nil, nil, fmt.Errorf("%w: duplicate port %q", ErrConfig, pc.Name)
		}
		seen[pc.Name] = true
		if pc.Host {
			return nil, nil, nil, fmt.Errorf("%w: port %s: the host port cannot be changed while the router runs", ErrConfig, pc.Name)
		}
		i, live := old.byName[pc.Name]
		if live && old.ports[i].host {
			return nil, nil, nil, fmt.Errorf("%w: port %s: the host port cannot be changed while the router runs", ErrConfig, pc.Name)
		}
		if pc.Port == nil {
			if !live {
				return nil, nil, nil, fmt.Errorf("%w: port %s: a new port needs its device", ErrConfig, pc.Name)
			}
			rp := old.ports[i]
			pc.Device, pc.Kind, pc.Port = rp.cfg.Device, rp.cfg.Kind, rp.p
			st, err := rp.newState(pc)
			if err != nil {
				return nil, nil, nil, err
			}
			if st.mtu+18 > r.maxFrame {
				return nil, nil, nil, fmt.Errorf("%w: port %s: mtu %d is larger than the router's buffers were made for (%d); it needs a restart",
					ErrConfig, pc.Name, st.mtu, r.maxFrame-18)
			}
			next[rp] = st
			tab.byName[pc.Name] = i
			continue
		}
		if live {
			next[old.ports[i]] = removedState // a changed device: the old one goes
		}
		rp, err := r.newPort(len(tab.ports), pc, r.now, r.log)
		if err != nil {
			return nil, nil, nil, err
		}
		if st := rp.state(); st.mtu+18 > r.maxFrame {
			return nil, nil, nil, fmt.Errorf("%w: port %s: mtu %d is larger than the router's buffers were made for (%d); set mtu, or restart",
				ErrConfig, pc.Name, st.mtu, r.maxFrame-18)
		}
		tab.byName[pc.Name] = rp.idx
		tab.ports = append(tab.ports, rp)
		added = append(added, rp)
	}
	for name, i := range old.byName {
		rp := old.ports[i]
		switch {
		case rp.host:
			tab.byName[name] = i
		case !seen[name]:
			next[rp] = removedState
		}
	}
	return tab, next, added, nil
}

// readdress hands arpd a port's new addresses (prev is its state before): it answers ARP and NDP for the new set,
// joins the solicited-node groups of new IPv6 addresses and leaves those of removed
// ones, and announces each address it did not have.
func (r *Router) readdress(rp *routerPort, prev *portState) {
	before := map[netip.Addr]bool{}
	for _, p := range prev.addrs {
		before[p.Addr()] = true
	}
	groupsBefore := rp.neigh.MulticastMACs()
	var own []netip.Prefix
	for _, p := range rp.state().addrs {
		if p.Addr() != header.LinkLocalFromMAC(rp.mac) {
			own = append(own, p)
		}
	}
	rp.neigh.SetAddresses(own)
	groupsAfter := rp.neigh.MulticastMACs()
	if mf, ok := rp.p.(port.MulticastFilter); ok {
		for _, m := range groupsAfter {
			if !slices.Contains(groupsBefore, m) {
				if err := mf.AddMulticast(m[:]); err != nil {
					r.log.Warn("port: join multicast group", "port", rp.cfg.Name, "group", m.String(), "err", err)
				}
			}
		}
		for _, m := range groupsBefore {
			if !slices.Contains(groupsAfter, m) {
				mf.RemoveMulticast(m[:])
			}
		}
	}
	for _, p := range own {
		if !before[p.Addr()] {
			// RFC 5227 §3 (an ARP announcement of an address newly in use) and RFC 4861
			// §7.2.6 (unsolicited neighbour advertisements when a link-layer address
			// changes or an address is new), so that the link's caches learn it at once.
			rp.neigh.AnnounceAddress(p.Addr())
		}
	}
}

// loopRunner starts and stops the ports' receive loops: all of them when Run starts
// and stops, one at a time when SetPorts adds or removes a port while Run runs.
type loopRunner struct {
	mu     sync.Mutex
	ctx    context.Context // Run's; nil while it does not run
	cancel context.CancelFunc
	errc   chan error
	wg     sync.WaitGroup
}

// start starts the loops of the live ports and announces their addresses.
func (lr *loopRunner) start(r *Router, ctx context.Context, cancel context.CancelFunc, errc chan error) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	lr.ctx, lr.cancel, lr.errc = ctx, cancel, errc
	var live []*routerPort
	for _, rp := range r.ports() {
		if !rp.state().removed {
			lr.goLoop(r, rp)
			live = append(live, rp)
		}
	}
	for _, rp := range live {
		if rp.neigh != nil {
			rp.neigh.Announce()
		}
	}
}

// add starts a new port's loop and announces its addresses while Run runs.
func (lr *loopRunner) add(r *Router, rp *routerPort) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.ctx == nil {
		return // Run starts it
	}
	lr.goLoop(r, rp)
	if rp.neigh != nil {
		rp.neigh.Announce()
	}
}

// goLoop starts rp's receive loop on its own locked OS thread; lr.mu is held.
func (lr *loopRunner) goLoop(r *Router, rp *routerPort) {
	cpu := -1
	if len(r.threadCPUs) > 0 {
		cpu = r.threadCPUs[rp.idx%len(r.threadCPUs)]
	}
	ctx := lr.ctx
	done := make(chan struct{})
	rp.done = done
	lr.wg.Add(1)
	go func() {
		defer lr.wg.Done()
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		restore, err := tuneThread(r.threadNice, cpu)
		defer restore()
		if err != nil {
			lr.fail(fmt.Errorf("port %s: %w", rp.cfg.Name, err))
			return
		}
		// A removed port's loop ends on its closed device; that is no failure.
		if err := r.newLoop(rp).run(ctx); err != nil && ctx.Err() == nil && !rp.state().removed {
			lr.fail(fmt.Errorf("port %s: %w", rp.cfg.Name, err))
		}
	}()
}

// fail reports a loop's error to Run (the first one) and stops it.
func (lr *loopRunner) fail(err error) {
	select {
	case lr.errc <- err:
	default:
	}
	lr.cancel()
}

// removeWait bounds how long remove waits for a removed port's loop to end.
const removeWait = 5 * time.Second

// remove closes a removed port's device, which ends its loop, and waits for the loop.
func (lr *loopRunner) remove(r *Router, rp *routerPort) {
	lr.mu.Lock()
	done := rp.done
	lr.mu.Unlock()
	rp.p.Close()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(removeWait):
		r.log.Warn("port removed, but its receive loop has not ended yet", "port", rp.cfg.Name)
	}
}

// stop ends every loop: the devices are closed so that blocked reads return.
func (lr *loopRunner) stop(r *Router) {
	lr.mu.Lock()
	lr.ctx = nil
	lr.mu.Unlock()
	for _, rp := range r.ports() {
		rp.p.Close()
	}
	lr.wg.Wait()
}
