package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ulb/router/header"
)

// ErrConfig is wrapped by every error New returns.
var ErrConfig = errors.New("vrrp: invalid configuration")

// Output is what an instance acts through. The router implements it.
type Output interface {
	// Send transmits one advert (the VRRP message, checksum included): the router
	// wraps it in an IP header from Config.Primary to Instance.Destination with TTL
	// (hop limit) 255, and an Ethernet header from Instance.VirtualMAC. advert is
	// only valid during the call.
	Send(advert []byte)
	// OnTransition reports a state change. On entering Master the router takes the
	// virtual MAC and addresses and sends gratuitous ARPs (unsolicited NAs); on leaving
	// it releases them.
	OnTransition(from, to State)
}

// LinkOutput is the Output of an instance with extra advert links (Config.Links): it
// also sends on those. The router implements it.
type LinkOutput interface {
	Output
	// SendLink transmits one advert on extra link i (0-based in Config.Links), built
	// with that link's Primary as its source (the checksum covers it): the router
	// wraps it in an IP header from Links[i].Primary to Instance.Destination with TTL
	// (hop limit) 255 and an Ethernet header from that port's own MAC (no virtual MAC
	// on an extra link). advert is only valid during the call.
	SendLink(i int, advert []byte)
}

// Link is an extra link an instance advertises on besides its own port (VRRP over
// redundant links, as BalanceNG does it against split brain: a crossover cable between
// the two nodes). It carries adverts only: the virtual MAC and addresses stay on the
// instance's own port.
type Link struct {
	// Name is the port's name, for show-router.
	Name string
	// Primary is the router's address on that link: the adverts' source there, and the
	// address that the tie-break and the own-advert check compare on that link (an
	// IPv4 address of the port, or its IPv6 link-local address).
	Primary netip.Addr
}

// Config describes one virtual router instance.
type Config struct {
	Name string
	VRID uint8 // 1..255
	// Version is 3 (RFC 9568, the default when 0) or 2 (RFC 3768, IPv4 only).
	Version uint8
	// Priority is 1..255; 255 means this router owns the addresses: it becomes master
	// at once and ignores adverts.
	Priority uint8
	// Interval is Advertisement_Interval: whole seconds 1 s..255 s for version 2,
	// 10 ms steps 10 ms..40.95 s for version 3.
	Interval time.Duration
	// Preempt is Preempt_Mode: a backup of higher priority takes over from a
	// lower-priority master. The owner always preempts.
	Preempt bool
	// PreemptDelay is keepalived's preempt_delay: a backup that sees a lower-priority
	// master keeps accepting its adverts for this long (counted from the first such
	// advert since it entered Backup, so from startup in the usual case) before it
	// ignores them and, Master_Down_Interval later, takes over.
	PreemptDelay time.Duration
	// Accept is Accept_Mode (see Instance.AcceptMode).
	Accept bool
	// Primary is the router's own address the adverts come from and the tie-break
	// compares: an IPv4 address of the port, or its IPv6 link-local address.
	Primary netip.Addr
	// Addresses are the virtual addresses, one family (that of Primary), 1 to 255.
	Addresses []netip.Addr
	// Mcast is the destination of adverts; invalid (the zero value) means the VRRP
	// group of the family, GroupIPv4 or GroupIPv6.
	Mcast netip.Addr
	// Checksum is how version 3 IPv4 adverts are summed when sent (PseudoHeader, the
	// zero value, is what keepalived sends).
	Checksum ChecksumMode
	// Links are extra links that carry the adverts too (each advert goes out on every
	// link; an advert on any of them is received as on the own port). Out must be a
	// LinkOutput when there are any.
	Links []Link
	// Out receives adverts and transitions. Required.
	Out Output
	// Log, when not nil, receives discarded-advert reports (at most one per reason per
	// minute) and address-list mismatches.
	Log *slog.Logger
}

// Instance is one virtual router: the state machine of RFC 9568 section 6.4 (version 3)
// and RFC 3768 section 6.4 (version 2), plus keepalived's FAULT state, preempt_delay
// and sync groups.
//
// It is a step function: it never reads a clock or starts a goroutine. The caller
// passes the time to Start, Receive, Tick and Shutdown, and calls Tick at (or after)
// NextTimeout. Its methods are safe for concurrent use, but the state-changing ones
// (Start, Shutdown, Receive, ReceiveTo, Tick, SetPriorityAdjust, SetFault) of the
// instances of one sync group should come from one goroutine so that outputs keep
// their order. Output methods are called after the instance's lock is released: they
// may call the instance (State, Info, ...).
type Instance struct {
	// Immutable after New.
	cfg   Config
	ipv6  bool
	owner bool
	dst   netip.Addr
	vmac  header.MAC
	sync  *SyncGroup

	ownFault atomic.Bool   // tracking says this instance fails
	pub      atomic.Uint32 // state | wantMaster<<8, for the sync group's lock-free reads

	mu         sync.Mutex
	state      State
	prio       uint8 // effective priority
	adjust     int
	recover    bool          // leave Fault at the next Tick
	wantMaster bool          // sync group: down timer fired, waiting for the others
	mai        time.Duration // Master_Adver_Interval
	downAt     time.Time     // Master_Down_Timer, in Backup
	adverAt    time.Time     // Adver_Timer, in Master
	preemptAt  time.Time     // end of the preempt delay; zero when not running
	lastNow    time.Time     // latest time a caller passed
	master     netip.Addr
	masterPrio uint8
	counters   Counters
	links      []LinkCounters                // [0] the own port, then Config.Links
	lastLog    [NumDropReasons + 1]time.Time // the extra one: address-list mismatches
	pending    []event
	buf        []byte
}

// event is an output waiting for the lock to be released.
type event struct {
	send     bool
	prio     uint8 // advert priority
	from, to State
	now      time.Time
}

// New checks cfg and returns an instance in Initialize.
func New(cfg Config) (*Instance, error) {
	if cfg.Version == 0 {
		cfg.Version = 3
	}
	bad := func(format string, args ...any) (*Instance, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrConfig, cfg.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.Version != 2 && cfg.Version != 3:
		return bad("version %d, want 2 or 3", cfg.Version)
	case cfg.VRID == 0:
		return bad("VRID 0, want 1..255")
	case cfg.Priority == 0:
		return bad("priority 0, want 1..255")
	case cfg.Out == nil:
		return bad("no output")
	case len(cfg.Addresses) == 0 || len(cfg.Addresses) > 255:
		return bad("%d addresses, want 1..255", len(cfg.Addresses))
	case !cfg.Primary.IsValid() || cfg.Primary.Is4In6():
		return bad("no primary address")
	}
	if len(cfg.Links) > 0 {
		if _, ok := cfg.Out.(LinkOutput); !ok {
			return bad("extra links need an output that sends on them")
		}
	}
	if _, ok := intervalField(cfg.Version, cfg.Interval); !ok {
		return bad("interval %v out of range for version %d", cfg.Interval, cfg.Version)
	}
	if cfg.PreemptDelay < 0 {
		return bad("negative preempt delay")
	}
	ipv6 := cfg.Primary.Is6()
	if ipv6 && cfg.Version == 2 {
		return bad("version 2 is IPv4 only")
	}
	if ipv6 && !cfg.Primary.IsLinkLocalUnicast() {
		return bad("IPv6 adverts come from the link-local address, not %v", cfg.Primary)
	}
	cfg.Primary = cfg.Primary.WithZone("")
	links := make([]Link, len(cfg.Links))
	for i, l := range cfg.Links {
		p := l.Primary.WithZone("")
		switch {
		case !p.IsValid() || p.Is6() != ipv6 || p.Is4In6():
			return bad("link %s: primary address %v is not of the family of %v", l.Name, l.Primary, cfg.Primary)
		case ipv6 && !p.IsLinkLocalUnicast():
			return bad("link %s: IPv6 adverts come from the link-local address, not %v", l.Name, p)
		}
		links[i] = Link{Name: l.Name, Primary: p}
	}
	cfg.Links = links
	addrs := make([]netip.Addr, len(cfg.Addresses))
	for i, a := range cfg.Addresses {
		if !a.IsValid() || a.Is6() != ipv6 || a.Is4In6() {
			return bad("address %v is not of the family of %v", a, cfg.Primary)
		}
		addrs[i] = a.WithZone("")
		for _, b := range addrs[:i] {
			if b == addrs[i] {
				return bad("address %v twice", a)
			}
		}
	}
	cfg.Addresses = addrs
	dst := cfg.Mcast
	if !dst.IsValid() {
		dst = GroupIPv4
		if ipv6 {
			dst = GroupIPv6
		}
	} else if dst.Is6() != ipv6 {
		return bad("destination %v is not of the family of %v", dst, cfg.Primary)
	}
	in := &Instance{
		cfg:     cfg,
		ipv6:    ipv6,
		owner:   cfg.Priority == PriorityOwner,
		dst:     dst,
		vmac:    virtualMAC(cfg.VRID, ipv6),
		prio:    cfg.Priority,
		mai:     cfg.Interval,
		pending: make([]event, 0, 8),
		links:   make([]LinkCounters, 1+len(links)),
		buf:     make([]byte, AdvertSize(cfg.Version, len(addrs), ipv6)),
	}
	for i, l := range links {
		in.links[i+1].Name = l.Name
	}
	// Build once to prove the fields are valid.
	if in.build(in.prio) == 0 {
		return bad("cannot build an advert")
	}
	return in, nil
}

// virtualMAC returns 00-00-5E-00-01-VRID (IPv4) or 00-00-5E-00-02-VRID (IPv6).
func virtualMAC(vrid uint8, ipv6 bool) header.MAC {
	m := header.MAC{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}
	if ipv6 {
		m[4] = 0x02
	}
	return m
}

// Name returns the configured name.
func (in *Instance) Name() string { return in.cfg.Name }

// VRID returns the virtual router identifier.
func (in *Instance) VRID() uint8 { return in.cfg.VRID }

// IPv6 reports whether the instance is an IPv6 one.
func (in *Instance) IPv6() bool { return in.ipv6 }

// VirtualMAC returns the virtual router's MAC address.
func (in *Instance) VirtualMAC() header.MAC { return in.vmac }

// Destination returns the IP destination of the adverts (the multicast group).
func (in *Instance) Destination() netip.Addr { return in.dst }

// Primary returns the source address of the adverts.
func (in *Instance) Primary() netip.Addr { return in.cfg.Primary }

// Addresses returns the virtual addresses (a copy).
func (in *Instance) Addresses() []netip.Addr {
	return append([]netip.Addr(nil), in.cfg.Addresses...)
}

// Owner reports whether the instance is the address owner (priority 255).
func (in *Instance) Owner() bool { return in.owner }

// AcceptMode reports whether, as master, the router accepts packets addressed to the
// virtual addresses for itself (RFC 9568 section 6.1): the owner always does, others
// when Accept_Mode is configured. Otherwise only what the rules balance (and ARP/ND)
// is handled for those addresses.
func (in *Instance) AcceptMode() bool { return in.owner || in.cfg.Accept }

// State returns the current state.
func (in *Instance) State() State {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state
}

// Priority returns the effective priority (configured plus tracking adjustment).
func (in *Instance) Priority() uint8 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.prio
}

// Counters returns a copy of the statistics.
func (in *Instance) Counters() Counters {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.counters
}

// Info returns a snapshot for show-router.
func (in *Instance) Info() Info {
	in.mu.Lock()
	defer in.mu.Unlock()
	inf := Info{
		Name:                in.cfg.Name,
		VRID:                in.cfg.VRID,
		Version:             in.cfg.Version,
		IPv6:                in.ipv6,
		Priority:            in.prio,
		BasePriority:        in.cfg.Priority,
		Interval:            in.cfg.Interval,
		MasterAdverInterval: in.mai,
		Preempt:             in.cfg.Preempt,
		PreemptDelay:        in.cfg.PreemptDelay,
		Accept:              in.AcceptMode(),
		State:               in.state,
		Fault:               in.faulty(),
		VirtualMAC:          in.vmac,
		Primary:             in.cfg.Primary,
		Addresses:           in.Addresses(),
		Counters:            in.counters,
		Links:               append([]LinkCounters(nil), in.links...),
	}
	for _, l := range in.cfg.Links {
		inf.LinkPrimaries = append(inf.LinkPrimaries, l.Primary)
	}
	switch in.state {
	case Master:
		inf.Master, inf.MasterPriority = in.cfg.Primary, in.prio
	case Backup:
		inf.Master, inf.MasterPriority = in.master, in.masterPrio
	}
	if in.sync != nil {
		inf.SyncGroup = in.sync.name
	}
	return inf
}

// NextTimeout returns when Tick must be called next: the Adver_Timer in Master, the
// Master_Down_Timer in Backup, a time already past when a cleared fault waits for a
// Tick, and the zero time when no timer runs.
func (in *Instance) NextTimeout() time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch in.state {
	case Master:
		return in.adverAt
	case Backup:
		return in.downAt
	case Fault:
		if in.recover {
			return in.lastNow
		}
	}
	return time.Time{}
}

// Start is the Startup event: the owner becomes master at once, the others backup;
// an instance whose tracking fails goes to Fault. It does nothing unless the state is
// Initialize.
func (in *Instance) Start(now time.Time) {
	in.mu.Lock()
	in.lastNow = now
	if in.state == Initialize {
		if in.faulty() {
			in.setState(Fault, now)
		} else {
			in.startup(now)
		}
	}
	in.mu.Unlock()
	in.flush()
}

// Shutdown is the Shutdown event: a master sends an advert of priority 0 so that a
// backup takes over after Skew_Time; every state goes to Initialize.
func (in *Instance) Shutdown(now time.Time) {
	in.mu.Lock()
	in.lastNow = now
	if in.state == Master {
		in.queueAdvert(PriorityStop)
	}
	if in.state != Initialize {
		in.setState(Initialize, now)
	}
	in.recover = false
	in.mu.Unlock()
	in.flush()
}

// Tick fires the timers that are due at now.
func (in *Instance) Tick(now time.Time) {
	in.mu.Lock()
	in.lastNow = now
	switch in.state {
	case Master:
		if !now.Before(in.adverAt) {
			in.queueAdvert(in.prio)
			in.adverAt = now.Add(in.cfg.Interval)
		}
	case Backup:
		if !in.downAt.IsZero() && !now.Before(in.downAt) {
			in.masterDown(now)
		}
	case Fault:
		if in.recover {
			in.recover = false
			if !in.faulty() {
				in.startup(now)
			}
		}
	}
	in.mu.Unlock()
	in.flush()
}

// SetPriorityAdjust sets the tracking adjustment: the effective priority becomes the
// configured one plus delta, kept within 1..254. The owner's priority stays 255. A
// master announces a changed priority at once.
func (in *Instance) SetPriorityAdjust(delta int) {
	in.mu.Lock()
	in.adjust = delta
	p := in.cfg.Priority
	if !in.owner {
		p = uint8(min(max(int(in.cfg.Priority)+delta, 1), PriorityOwner-1))
	}
	if p != in.prio {
		in.prio = p
		if in.state == Master {
			in.queueAdvert(p)
		}
	}
	in.mu.Unlock()
	in.flush()
}

// SetFault sets the tracking failure. A failing master sends priority 0 and goes to
// Fault, as does a backup (without sending). When the failure clears (in the whole
// sync group), the instance leaves Fault at its next Tick, which NextTimeout asks for
// at once, as at startup.
func (in *Instance) SetFault(fault bool) {
	in.ownFault.Store(fault)
	in.mu.Lock()
	in.applyFault()
	now := in.lastNow
	in.mu.Unlock()
	in.flush()
	if in.sync != nil {
		in.sync.faultChanged(in, now)
	}
}

// applyFault moves to or out of Fault after a change of the fault inputs. mu is held.
func (in *Instance) applyFault() {
	if in.faulty() {
		in.recover = false
		switch in.state {
		case Master:
			in.queueAdvert(PriorityStop)
			in.setState(Fault, in.lastNow)
		case Backup:
			in.setState(Fault, in.lastNow)
		}
		return
	}
	if in.state == Fault {
		in.recover = true
	}
}

// faulty reports whether tracking fails for this instance or a member of its group.
func (in *Instance) faulty() bool {
	if in.ownFault.Load() {
		return true
	}
	return in.sync != nil && in.sync.anyFault()
}

// Receive handles an advert sent to the instance's multicast group (see ReceiveTo).
func (in *Instance) Receive(now time.Time, src netip.Addr, ttl uint8, payload []byte) {
	in.ReceiveTo(now, src, in.dst, ttl, payload)
}

// ReceiveTo handles an advert: payload is the IP payload (as delimited by the IP
// header's length), src and dst the IP addresses, ttl the TTL or hop limit. Invalid
// or unwanted adverts are counted by reason (Counters.Drops), never an error.
func (in *Instance) ReceiveTo(now time.Time, src, dst netip.Addr, ttl uint8, payload []byte) {
	in.ReceiveOn(now, 0, src, dst, ttl, payload)
}

// ReceiveOn handles an advert received on a link: 0 is the instance's own port, i+1
// is Config.Links[i]. An advert on an extra link goes through the same receive checks
// (RFC 9568 section 7.1) and the same state machine (section 6.4) as one on the own
// port, so that a backup's Master_Down_Timer is reset by the master's adverts on any
// link and it takes over only when no link carried them for Master_Down_Interval,
// and a master steps down on a better advert from any link (section 6.4.3). Adverts
// on an unknown link are counted as drops of link 0's kind and ignored.
func (in *Instance) ReceiveOn(now time.Time, link int, src, dst netip.Addr, ttl uint8, payload []byte) {
	in.mu.Lock()
	in.lastNow = now
	if link < 0 || link >= len(in.links) {
		link = 0
	}
	lc := &in.links[link]
	if r, ok := in.check(now, link, src, dst, ttl, Advert(payload)); !ok {
		lc.Drops++
		in.drop(now, r, src)
	} else {
		lc.AdvertsReceived++
		lc.LastAdvert = now
		lc.LastFrom = src.WithZone("")
		in.advert(now, link, src.WithZone(""), Advert(payload))
	}
	in.mu.Unlock()
	in.flush()
}

// linkPrimary returns the router's own address on a link. mu need not be held.
func (in *Instance) linkPrimary(link int) netip.Addr {
	if link == 0 {
		return in.cfg.Primary
	}
	return in.cfg.Links[link-1].Primary
}

// isOwn reports whether src is one of the router's addresses on the instance's links.
func (in *Instance) isOwn(src netip.Addr) bool {
	if src == in.cfg.Primary {
		return true
	}
	for _, l := range in.cfg.Links {
		if src == l.Primary {
			return true
		}
	}
	return false
}

// check validates an advert in the order of RFC 9568 and RFC 3768 section 7.1. mu is
// held.
func (in *Instance) check(now time.Time, link int, src, dst netip.Addr, ttl uint8, p Advert) (DropReason, bool) {
	if ttl != 255 {
		return DropTTL, false
	}
	if len(p) == 0 || src.Is6() != in.ipv6 || p.Version() != in.cfg.Version {
		return DropVersion, false
	}
	if len(p) < AdvertHeaderSize {
		return DropLength, false
	}
	if p.Type() != TypeAdvertisement {
		return DropType, false
	}
	if !p.IsValid(in.ipv6) {
		return DropLength, false
	}
	if p.CountIPAddrs() == 0 {
		return DropCount, false
	}
	ok, mode := p.IsChecksumValid(src, dst)
	if !ok {
		return DropChecksum, false
	}
	if p.VRID() != in.cfg.VRID {
		return DropVRID, false
	}
	if in.owner {
		return DropOwner, false
	}
	if in.isOwn(src.WithZone("")) {
		// A master that heard itself (on any of its links, should two of them be
		// bridged) would take its advert for a rival's.
		return DropSelf, false
	}
	if in.cfg.Version == 2 {
		if p.AuthType() != AuthNone {
			return DropAuthType, false
		}
		if p.Interval() != in.cfg.Interval {
			return DropInterval, false
		}
	} else if p.MaxAdverInt() == 0 {
		return DropInterval, false
	}
	if in.state == Initialize || in.state == Fault {
		return DropNotRunning, false
	}
	if !in.sameAddresses(p) {
		if in.cfg.Version == 2 && p.Priority() != PriorityOwner {
			return DropAddressList, false
		}
		in.counters.AddressListMismatch++
		if in.cfg.Log != nil && now.Sub(in.lastLog[NumDropReasons]) >= logEvery {
			in.lastLog[NumDropReasons] = now
			in.cfg.Log.Warn("vrrp: advert's addresses differ from ours (accepted)",
				"instance", in.cfg.Name, "from", src, "count", p.CountIPAddrs())
		}
	}
	if in.cfg.Version == 3 && !in.ipv6 && mode == NoPseudoHeader {
		in.counters.ChecksumNoPseudoHeader++
	}
	return 0, true
}

// logEvery is the least time between two log lines of one kind per instance.
const logEvery = time.Minute

// drop counts (and now and then logs) a discarded advert. mu is held.
func (in *Instance) drop(now time.Time, r DropReason, src netip.Addr) {
	in.counters.Drops[r]++
	if in.cfg.Log != nil && r != DropLowerPriority && now.Sub(in.lastLog[r]) >= logEvery {
		in.lastLog[r] = now
		in.cfg.Log.Warn("vrrp: advert discarded", "instance", in.cfg.Name, "from", src,
			"reason", r.String(), "count", in.counters.Drops[r])
	}
}

// sameAddresses reports whether the advert carries exactly our addresses, in any
// order.
func (in *Instance) sameAddresses(p Advert) bool {
	n := int(p.CountIPAddrs())
	if n != len(in.cfg.Addresses) {
		return false
	}
	for i := range n {
		a := p.Address(i, in.ipv6)
		found := false
		for _, b := range in.cfg.Addresses {
			if a == b {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// advert runs the state machine on a valid advert. mu is held.
func (in *Instance) advert(now time.Time, link int, src netip.Addr, p Advert) {
	in.counters.AdvertsReceived++
	prio := p.Priority()
	if prio == PriorityStop {
		in.counters.PriorityZeroReceived++
	}
	switch in.state {
	case Backup:
		if prio == PriorityStop {
			// The master stops: take over after Skew_Time.
			in.downAt = now.Add(in.skew())
			return
		}
		if !in.cfg.Preempt || prio >= in.prio || in.preemptDelayed(now) {
			if in.cfg.Version == 3 {
				in.mai = p.Interval()
			}
			in.downAt = now.Add(in.masterDownInterval())
			in.master, in.masterPrio = src, prio
			in.setWantMaster(false)
			if in.cfg.PreemptDelay > 0 && in.cfg.Preempt {
				if prio >= in.prio {
					in.preemptAt = time.Time{}
				} else if in.preemptAt.IsZero() {
					in.preemptAt = now.Add(in.cfg.PreemptDelay)
				}
			}
			return
		}
		// Preempt: ignore the lower-priority master, so that the down timer fires.
		in.master, in.masterPrio = src, prio
		in.drop(now, DropLowerPriority, src)
	case Master:
		if prio == PriorityStop {
			in.queueAdvert(in.prio)
			in.adverAt = now.Add(in.cfg.Interval)
			return
		}
		// RFC 9568 section 6.4.3: step down on a higher priority, or an equal one from
		// a greater primary address, compared with ours on the link it came by.
		if prio > in.prio || (prio == in.prio && src.Compare(in.linkPrimary(link)) > 0) {
			if in.cfg.Version == 3 {
				in.mai = p.Interval()
			}
			in.master, in.masterPrio = src, prio
			in.enterBackup(now)
			return
		}
		// Two masters: the winner announces itself at once so that the other yields.
		in.queueAdvert(in.prio)
		in.adverAt = now.Add(in.cfg.Interval)
	}
}

// preemptDelayed reports whether keepalived's preempt delay still holds off
// preemption: it has not started (it starts on this advert) or has not ended.
func (in *Instance) preemptDelayed(now time.Time) bool {
	return in.cfg.PreemptDelay > 0 && (in.preemptAt.IsZero() || now.Before(in.preemptAt))
}

// skew returns Skew_Time: ((256 - Priority) * Master_Adver_Interval) / 256 for
// version 3, (256 - Priority) / 256 seconds for version 2, computed exactly (in
// nanoseconds). mu is held.
func (in *Instance) skew() time.Duration {
	unit := in.mai
	if in.cfg.Version == 2 {
		unit = time.Second
	}
	return time.Duration(256-int(in.prio)) * unit / 256
}

// masterDownInterval returns 3 * Master_Adver_Interval + Skew_Time. mu is held.
func (in *Instance) masterDownInterval() time.Duration {
	return 3*in.mai + in.skew()
}

// startup is the Startup event of Initialize (also used on leaving Fault). mu is held.
func (in *Instance) startup(now time.Time) {
	in.mai = in.cfg.Interval
	if in.owner {
		in.becomeMaster(now)
		return
	}
	in.enterBackup(now)
}

// masterDown handles the Master_Down_Timer. A member of a sync group waits for the
// others (keepalived: prefer backup to thrashing). mu is held.
func (in *Instance) masterDown(now time.Time) {
	if in.sync != nil && !in.sync.canGoMaster(in) {
		in.setWantMaster(true)
		in.downAt = now.Add(in.masterDownInterval())
		return
	}
	in.becomeMaster(now)
}

// becomeMaster sends an advert, starts the Adver_Timer and enters Master. mu is held.
func (in *Instance) becomeMaster(now time.Time) {
	in.queueAdvert(in.prio)
	in.adverAt = now.Add(in.cfg.Interval)
	in.setState(Master, now)
}

// enterBackup starts the Master_Down_Timer with the current Master_Adver_Interval and
// enters Backup. mu is held.
func (in *Instance) enterBackup(now time.Time) {
	in.downAt = now.Add(in.masterDownInterval())
	in.preemptAt = time.Time{}
	in.setState(Backup, now)
}

// setState records a transition and queues its report. mu is held.
func (in *Instance) setState(to State, now time.Time) {
	from := in.state
	in.state = to
	in.wantMaster = false
	if to != Master {
		in.adverAt = time.Time{}
	}
	if to != Backup {
		in.downAt = time.Time{}
		in.preemptAt = time.Time{}
	}
	if to == Master {
		in.counters.BecameMaster++
		in.master, in.masterPrio = in.cfg.Primary, in.prio
	}
	in.counters.Transitions++
	in.counters.LastTransition = now
	in.publish()
	in.pending = append(in.pending, event{from: from, to: to, now: now})
}

// setWantMaster sets the sync group's wish flag. mu is held.
func (in *Instance) setWantMaster(w bool) {
	in.wantMaster = w
	in.publish()
}

// publish stores the state for lock-free reads. mu is held.
func (in *Instance) publish() {
	v := uint32(in.state)
	if in.wantMaster {
		v |= 1 << 8
	}
	in.pub.Store(v)
}

// published returns the state and wish flag without locking.
func (in *Instance) published() (State, bool) {
	v := in.pub.Load()
	return State(v), v&(1<<8) != 0
}

// queueAdvert queues an advert of the given priority. mu is held.
func (in *Instance) queueAdvert(prio uint8) {
	in.counters.AdvertsSent++
	for i := range in.links {
		in.links[i].AdvertsSent++
	}
	if prio == PriorityStop {
		in.counters.PriorityZeroSent++
	}
	in.pending = append(in.pending, event{send: true, prio: prio, now: in.lastNow})
}

// build writes an advert of the given priority into buf and returns its length. mu is
// held.
func (in *Instance) build(prio uint8) int {
	return in.buildFrom(prio, in.cfg.Primary)
}

// buildFrom writes an advert of the given priority from src (whose pseudo-header the
// checksum covers) into buf and returns its length. mu is held.
func (in *Instance) buildFrom(prio uint8, src netip.Addr) int {
	return BuildAdvert(in.buf, AdvertFields{
		Version:   in.cfg.Version,
		VRID:      in.cfg.VRID,
		Priority:  prio,
		Interval:  in.cfg.Interval,
		Addresses: in.cfg.Addresses,
		Checksum:  in.cfg.Checksum,
		Src:       src,
		Dst:       in.dst,
	})
}

// flush delivers the queued outputs in order, one at a time without the lock, so that
// an output may call back into the instance (whose new outputs join the queue).
func (in *Instance) flush() {
	for {
		in.mu.Lock()
		if len(in.pending) == 0 {
			in.mu.Unlock()
			return
		}
		ev := in.pending[0]
		n := copy(in.pending, in.pending[1:])
		in.pending = in.pending[:n]
		var size int
		if ev.send {
			size = in.build(ev.prio)
		}
		in.mu.Unlock()
		if ev.send {
			in.cfg.Out.Send(in.buf[:size])
			// RFC 9568 section 5.1.1.1 / 5.1.2.1: on each extra link the source is the
			// router's address there, so the advert is built (summed) again per link.
			for i, l := range in.cfg.Links {
				in.mu.Lock()
				size = in.buildFrom(ev.prio, l.Primary)
				in.mu.Unlock()
				in.cfg.Out.(LinkOutput).SendLink(i, in.buf[:size])
			}
			continue
		}
		in.cfg.Out.OnTransition(ev.from, ev.to)
		if in.sync != nil {
			in.sync.changed(in, ev.to, ev.now)
		}
	}
}
