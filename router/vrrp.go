package router

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ulb/router/header"
	"ulb/router/port"
	"ulb/vrrp"
)

// VRRPConfig is one VRRP instance the router runs on one of its ports.
type VRRPConfig struct {
	// Port is the name of the port the instance runs on.
	Port string
	// AdvertPorts are extra links the instance advertises on, and hears its peers on,
	// besides Port (VRRP over redundant links: e.g. a crossover cable between the two
	// nodes). They carry adverts only, from each port's own address and MAC: the
	// virtual MAC and addresses stay on Port. They are not tracked: a dead extra link
	// is a lost path to the peer, not a fault of this node.
	AdvertPorts []string
	// Instance configures the state machine; the router sets Primary (the port's first
	// IPv4 address, or its IPv6 link-local address) and Out.
	Instance vrrp.Config
	// Track lists what the instance follows besides its own port's link (always
	// tracked: down is Fault). PingInterval is how often tracked addresses are pinged.
	Track        vrrp.TrackerConfig
	PingInterval time.Duration
	// SyncGroup names the instances that change state together ("" for none).
	SyncGroup string
	// GARPCount gratuitous ARPs (unsolicited NAs) go out for each address on becoming
	// master; GARPRefresh, when not 0, repeats one while master.
	GARPCount   int
	GARPRefresh time.Duration
}

// VRRPEvent is a state change of an instance, as published to the control socket.
type VRRPEvent struct {
	Time     time.Time
	Instance string
	From, To vrrp.State
}

// vrrpNode is one instance with the router's side of it: the Output that sends its
// adverts and takes or releases the virtual MAC and addresses.
type vrrpNode struct {
	r       *Router
	rp      *routerPort
	in      *vrrp.Instance
	cfg     VRRPConfig
	tracker *vrrp.Tracker
	// primary is the instance's primary address (its adverts' source), from its port.
	primary netip.Addr
	// links are the ports of cfg.AdvertPorts, in order, and linkPrimaries the
	// adverts' source on each.
	links         []*routerPort
	linkPrimaries []netip.Addr

	mu       sync.Mutex
	master   bool
	nextGARP time.Time
}

var _ vrrp.LinkOutput = (*vrrpNode)(nil)

// vrrpState is the router's VRRP part.
type vrrpState struct {
	mu     sync.Mutex                  // serializes SetVRRP
	nodes  atomic.Pointer[[]*vrrpNode] // the instances, in configuration order
	driver *vrrp.Driver                // runs the instances' timers and tracking
	owned  map[netip.Addr]bool         // their virtual addresses; under Router.cfgMu
	// OnEvent, when set, receives every transition.
	onEvent func(VRRPEvent)
}

// vrrpNodes returns the instances (read without a lock, from any goroutine).
func (r *Router) vrrpNodes() []*vrrpNode {
	if p := r.vrrp.nodes.Load(); p != nil {
		return *p
	}
	return nil
}

// mcastMAC is the Ethernet group of the VRRP address of a family.
func vrrpGroupMAC(ipv6 bool) header.MAC {
	if ipv6 {
		return header.IPv6MulticastMAC(vrrp.GroupIPv6)
	}
	return header.MAC{0x01, 0x00, 0x5e, 0x00, 0x00, 0x12}
}

// newVRRP makes the driver and the instances of the configuration.
func (r *Router) newVRRP(cfgs []VRRPConfig) error {
	r.vrrp.owned = map[netip.Addr]bool{}
	r.vrrp.driver = r.newVRRPDriver()
	return r.SetVRRP(cfgs)
}

// SetVRRP replaces the VRRP instances (a reload), as keepalived does: an instance whose
// configuration is the same as before, in a sync group whose members and their
// configurations are the same, goes on untouched, in its state, with its timers (no
// mastership flap, no advert gap); one that is gone is shut down (a master sends its
// priority-0 advert and releases its virtual MAC and addresses); a new or changed one
// starts from Initialize, as at start-up. Nothing changes when an instance cannot be
// made.
func (r *Router) SetVRRP(cfgs []VRRPConfig) error {
	r.vrrp.mu.Lock()
	defer r.vrrp.mu.Unlock()
	old := r.vrrpNodes()
	byName := map[string]*vrrpNode{}
	var oldCfgs []VRRPConfig
	for _, n := range old {
		byName[n.cfg.Instance.Name] = n
		oldCfgs = append(oldCfgs, n.cfg)
	}
	oldGroups, newGroups := syncGroupSigs(oldCfgs), syncGroupSigs(cfgs)
	var next, added []*vrrpNode
	kept := map[*vrrpNode]bool{}
	for _, c := range cfgs {
		// An instance whose port was replaced (a reload that changed its device) is
		// made again on the new one.
		// So is one whose primary address went with its port's addresses (RFC 9568
		// §5.1.1.1: the adverts' source is the interface's primary address).
		if n := byName[c.Instance.Name]; n != nil && reflect.DeepEqual(n.cfg, c) && r.livePort(c.Port) == n.rp &&
			n.primary == vrrpPrimary(n.rp, c) && r.sameLinks(n, c) &&
			(c.SyncGroup == "" || oldGroups[c.SyncGroup] == newGroups[c.SyncGroup]) {
			kept[n] = true
			next = append(next, n)
			continue
		}
		n, err := r.newVRRPNode(c)
		if err != nil {
			return err
		}
		next = append(next, n)
		added = append(added, n)
	}
	groups := map[string][]*vrrp.Instance{}
	var order []string
	for _, n := range added {
		if g := n.cfg.SyncGroup; g != "" {
			if _, ok := groups[g]; !ok {
				order = append(order, g)
			}
			groups[g] = append(groups[g], n.in)
		}
	}
	for _, name := range order {
		if _, err := vrrp.NewSyncGroup(name, groups[name]...); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	// The instances that go are shut down first, so that a changed one's VRID is free.
	var stay []vrrp.Member
	for _, n := range next {
		if kept[n] {
			stay = append(stay, r.vrrpMember(n))
		}
	}
	r.vrrp.driver.Set(stay)
	var errs []error
	for _, n := range old {
		if !kept[n] {
			r.detachVRRP(n)
		}
	}
	for _, n := range added {
		if err := r.attachVRRP(n); err != nil {
			errs = append(errs, err)
		}
	}
	r.vrrp.nodes.Store(&next)
	members := make([]vrrp.Member, 0, len(next))
	for _, n := range next {
		members = append(members, r.vrrpMember(n))
	}
	r.vrrp.driver.Set(members)
	return errors.Join(errs...)
}

// syncGroupSigs describes each sync group by its members' configurations, in order.
func syncGroupSigs(cfgs []VRRPConfig) map[string]string {
	out := map[string]string{}
	for _, c := range cfgs {
		if c.SyncGroup != "" {
			out[c.SyncGroup] += fmt.Sprintf("%+v;", c)
		}
	}
	return out
}

// newVRRPNode makes an instance and its tracker, not yet registered anywhere.
func (r *Router) newVRRPNode(c VRRPConfig) (*vrrpNode, error) {
	i, ok := r.tab.Load().byName[c.Port]
	if !ok {
		return nil, fmt.Errorf("%w: vrrp %s: no port %q", ErrConfig, c.Instance.Name, c.Port)
	}
	rp := r.ports()[i]
	if rp.layer3 {
		return nil, fmt.Errorf("%w: vrrp %s: port %s has no Ethernet", ErrConfig, c.Instance.Name, c.Port)
	}
	n := &vrrpNode{r: r, rp: rp, cfg: c}
	ic := c.Instance
	ic.Out = n
	if ic.Log == nil {
		ic.Log = r.log.With("vrrp", ic.Name)
	}
	ic.Primary = vrrpPrimary(rp, c)
	n.primary = ic.Primary
	for _, name := range c.AdvertPorts {
		lp := r.livePort(name)
		switch {
		case lp == nil:
			return nil, fmt.Errorf("%w: vrrp %s: no advert port %q", ErrConfig, c.Instance.Name, name)
		case lp.layer3:
			return nil, fmt.Errorf("%w: vrrp %s: advert port %s has no Ethernet", ErrConfig, c.Instance.Name, name)
		case lp == rp || slices.Contains(n.links, lp):
			return nil, fmt.Errorf("%w: vrrp %s: port %s is one of its links twice", ErrConfig, c.Instance.Name, name)
		}
		// RFC 9568 §5.1.1.1 / §5.1.2.1: the source is the primary address of the
		// interface the advert goes out of: this link's own.
		src := vrrpPrimary(lp, c)
		if !src.IsValid() {
			return nil, fmt.Errorf("%w: vrrp %s: advert port %s has no IPv4 address to send adverts from", ErrConfig, c.Instance.Name, name)
		}
		n.links = append(n.links, lp)
		n.linkPrimaries = append(n.linkPrimaries, src)
		ic.Links = append(ic.Links, vrrp.Link{Name: name, Primary: src})
	}
	in, err := vrrp.New(ic)
	if err != nil {
		return nil, fmt.Errorf("%w: vrrp %s: %v", ErrConfig, ic.Name, err)
	}
	n.in = in
	track := c.Track
	track.Ports = append([]vrrp.TrackPort{{Name: c.Port}}, track.Ports...)
	if n.tracker, err = vrrp.NewTracker(track); err != nil {
		return nil, fmt.Errorf("%w: vrrp %s: %v", ErrConfig, ic.Name, err)
	}
	return n, nil
}

// sameLinks reports whether the instance n still has the extra links c asks for: the
// same live ports with the same addresses.
func (r *Router) sameLinks(n *vrrpNode, c VRRPConfig) bool {
	if len(n.links) != len(c.AdvertPorts) {
		return false
	}
	for i, name := range c.AdvertPorts {
		if r.livePort(name) != n.links[i] || vrrpPrimary(n.links[i], c) != n.linkPrimaries[i] {
			return false
		}
	}
	return true
}

// vrrpPrimary is the primary address of an instance of c on rp: the port's first IPv4
// address, or for IPv6 its link-local address.
func vrrpPrimary(rp *routerPort, c VRRPConfig) netip.Addr {
	if a := c.Instance.Addresses; len(a) > 0 && a[0].Is6() {
		return header.LinkLocalFromMAC(rp.mac)
	}
	return rp.state().src4
}

// attachVRRP registers an instance with its port: the port's mux, the VRRP group's
// multicast address, and its virtual addresses as the router's (answered for by the
// instance while master, not by the port).
func (r *Router) attachVRRP(n *vrrpNode) error {
	rp := n.rp
	if err := r.attachVRRPLink(n, rp, 0); err != nil {
		return err
	}
	// The extra links hear the adverts too (RFC 9568 §7.1 applies there as on rp).
	for i, lp := range n.links {
		if err := r.attachVRRPLink(n, lp, i+1); err != nil {
			return err
		}
	}
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	for _, a := range n.in.Addresses() {
		if !r.vrrp.owned[a] && rp.neigh != nil {
			rp.neigh.RemoveVirtual(a) // a rule's VIP the port answered for until now
		}
		r.vrrp.owned[a] = true
	}
	return nil
}

// attachVRRPLink registers an instance with the mux of one of its link's ports and joins
// the VRRP group there.
func (r *Router) attachVRRPLink(n *vrrpNode, rp *routerPort, link int) error {
	mux := rp.vrrpMux.Load()
	if mux == nil {
		mux = &vrrp.Mux{}
		rp.vrrpMux.Store(mux)
	}
	if err := mux.AddLink(n.in, link); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if mf, ok := rp.p.(port.MulticastFilter); ok {
		g := vrrpGroupMAC(n.in.IPv6())
		if err := mf.AddMulticast(g[:]); err != nil {
			return fmt.Errorf("port %s: join %s: %w", rp.cfg.Name, g, err)
		}
	}
	return nil
}

// detachVRRP undoes attachVRRP for an instance the driver has shut down.
func (r *Router) detachVRRP(n *vrrpNode) {
	detachVRRPLink(n, n.rp)
	for _, lp := range n.links {
		detachVRRPLink(n, lp)
	}
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	for _, a := range n.in.Addresses() {
		delete(r.vrrp.owned, a)
	}
}

// detachVRRPLink removes an instance from the mux of one of its links' ports, and
// leaves the VRRP group there when no instance of the family is left.
func detachVRRPLink(n *vrrpNode, rp *routerPort) {
	if mux := rp.vrrpMux.Load(); mux != nil {
		mux.Remove(n.in)
		same := false
		for _, in := range mux.Instances() {
			same = same || in.IPv6() == n.in.IPv6()
		}
		if mf, ok := rp.p.(port.MulticastFilter); ok && !same {
			g := vrrpGroupMAC(n.in.IPv6())
			mf.RemoveMulticast(g[:])
		}
	}
}

// Send transmits an advert from the virtual MAC to the VRRP group.
func (n *vrrpNode) Send(advert []byte) {
	n.sendOn(n.rp, n.in.Primary(), n.in.VirtualMAC(), advert)
}

// SendLink transmits an advert on extra link i from that port's own address and MAC:
// the virtual MAC belongs to the own port only (a switch on the extra link must not
// learn it there).
func (n *vrrpNode) SendLink(i int, advert []byte) {
	if i < 0 || i >= len(n.links) {
		return
	}
	lp := n.links[i]
	n.sendOn(lp, n.linkPrimaries[i], lp.mac, advert)
}

// sendOn transmits an advert on rp from src and the MAC from, to the VRRP group with
// TTL (hop limit) 255 (RFC 9568 §5.1.1.3, §5.1.2.3).
func (n *vrrpNode) sendOn(rp *routerPort, src netip.Addr, from header.MAC, advert []byte) {
	in := n.in
	dst := in.Destination()
	buf := make([]byte, headroom+ethLen+header.IPv6MinimumSize+len(advert))
	port.Hdr(buf, headroom).Clear()
	ipb := buf[headroom+ethLen:]
	var l int
	if in.IPv6() {
		l = header.IPv6MinimumSize + len(advert)
		header.EncodeIPv6(ipb, header.IPv6Fields{PayloadLength: uint16(len(advert)), NextHeader: header.ProtocolVRRP,
			HopLimit: 255, Src: src, Dst: dst})
		copy(ipb[header.IPv6MinimumSize:], advert)
	} else {
		l = header.IPv4MinimumSize + len(advert)
		header.EncodeIPv4(ipb, header.IPv4Fields{TOS: 0xc0, TotalLength: uint16(l), TTL: 255,
			Protocol: header.ProtocolVRRP, Src: src, Dst: dst})
		copy(ipb[header.IPv4MinimumSize:], advert)
	}
	et := header.EtherTypeIPv4
	if in.IPv6() {
		et = header.EtherTypeIPv6
	}
	header.EncodeEthernet(buf[headroom:], vrrpGroupMAC(in.IPv6()), from, et)
	rp.sendOne(buf[:headroom+ethLen+l], headroom)
}

// OnTransition takes the virtual MAC and addresses on becoming master and releases them
// on leaving Master.
func (n *vrrpNode) OnTransition(from, to vrrp.State) {
	now := n.r.now()
	n.r.log.Info("vrrp transition", "instance", n.in.Name(), "vrid", n.in.VRID(), "from", from.String(), "to", to.String())
	switch {
	case to == vrrp.Master:
		n.takeOver(now)
	case from == vrrp.Master:
		n.release()
	}
	if f := n.r.vrrp.onEvent; f != nil {
		f(VRRPEvent{Time: now, Instance: n.in.Name(), From: from, To: to})
	}
}

func (n *vrrpNode) takeOver(now time.Time) {
	vmac := n.in.VirtualMAC()
	if uf, ok := n.rp.p.(port.UnicastFilter); ok {
		if err := uf.AddUnicast(vmac[:]); err != nil {
			n.r.log.Error("vrrp: cannot receive the virtual MAC", "instance", n.in.Name(), "err", err)
		}
	}
	n.rp.addVMAC(vmac)
	for _, a := range n.in.Addresses() {
		n.rp.neigh.AddVirtual(a, vmac)
	}
	if n.in.AcceptMode() {
		n.r.setVRRPLocal(n.in.Addresses(), n.rp.idx, true)
	}
	n.mu.Lock()
	n.master = true
	if n.cfg.GARPRefresh > 0 {
		n.nextGARP = now.Add(n.cfg.GARPRefresh)
	}
	n.mu.Unlock()
	n.announce(n.cfg.GARPCount)
}

func (n *vrrpNode) release() {
	n.mu.Lock()
	n.master = false
	n.mu.Unlock()
	vmac := n.in.VirtualMAC()
	for _, a := range n.in.Addresses() {
		n.rp.neigh.RemoveVirtual(a)
	}
	n.r.setVRRPLocal(n.in.Addresses(), n.rp.idx, false)
	n.rp.removeVMAC(vmac)
	if uf, ok := n.rp.p.(port.UnicastFilter); ok {
		uf.RemoveUnicast(vmac[:])
	}
}

// announce sends count gratuitous ARPs (unsolicited NAs) for every address.
func (n *vrrpNode) announce(count int) {
	for range count {
		for _, a := range n.in.Addresses() {
			n.rp.neigh.AnnounceAddress(a)
		}
	}
}

// tick refreshes the gratuitous ARPs of a master.
func (n *vrrpNode) tick(now time.Time) {
	n.mu.Lock()
	due := n.master && n.cfg.GARPRefresh > 0 && !now.Before(n.nextGARP)
	if due {
		n.nextGARP = now.Add(n.cfg.GARPRefresh)
	}
	n.mu.Unlock()
	if due {
		n.announce(1)
	}
}

// addVMAC makes the port accept frames for a virtual MAC.
func (rp *routerPort) addVMAC(m header.MAC) {
	rp.vmacMu.Lock()
	defer rp.vmacMu.Unlock()
	old := rp.vmacs.Load()
	var list []header.MAC
	if old != nil {
		list = append(list, *old...)
	}
	for _, x := range list {
		if x == m {
			return
		}
	}
	list = append(list, m)
	rp.vmacs.Store(&list)
}

func (rp *routerPort) removeVMAC(m header.MAC) {
	rp.vmacMu.Lock()
	defer rp.vmacMu.Unlock()
	old := rp.vmacs.Load()
	if old == nil {
		return
	}
	var list []header.MAC
	for _, x := range *old {
		if x != m {
			list = append(list, x)
		}
	}
	rp.vmacs.Store(&list)
}

// acceptsVMAC reports whether the port is master for the virtual MAC m.
func (rp *routerPort) acceptsVMAC(m header.MAC) bool {
	if l := rp.vmacs.Load(); l != nil {
		for _, x := range *l {
			if x == m {
				return true
			}
		}
	}
	return false
}

// setVRRPLocal makes the virtual addresses of a master in Accept_Mode the router's own
// (or stops it), for ICMP echo and the like.
func (r *Router) setVRRPLocal(addrs []netip.Addr, port int, on bool) {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	if r.vrrpLocal == nil {
		r.vrrpLocal = map[netip.Addr]int{}
	}
	for _, a := range addrs {
		if on {
			r.vrrpLocal[a] = port
		} else {
			delete(r.vrrpLocal, a)
		}
	}
	if t, err := r.buildFIB(r.routes); err == nil {
		r.fib.Store(t)
	}
}

// wakeVRRP tells the VRRP driver that a timer may have moved.
func (r *Router) wakeVRRP() {
	if d := r.vrrp.driver; d != nil {
		d.Wake()
	}
}

// newVRRPDriver makes the driver of the instances: their timers on the router's clock,
// the links of the tracked ports, and pings from the router's own addresses. SetVRRP
// gives it its members.
func (r *Router) newVRRPDriver() *vrrp.Driver {
	return vrrp.NewDriver(vrrp.DriverConfig{
		Clock:  routerClock{r.now},
		LinkUp: r.linkUp,
		Ping: func(ctx context.Context, dst netip.Addr) error {
			_, err := r.probes.Ping(ctx, dst)
			return err
		},
		Log: r.log,
	})
}

// vrrpMember is an instance as the driver runs it.
func (r *Router) vrrpMember(n *vrrpNode) vrrp.Member {
	m := vrrp.Member{Instance: n.in, Tracker: n.tracker, Ports: []string{n.rp.cfg.Name},
		PingInterval: n.cfg.PingInterval, Tick: n.tick}
	for _, tp := range n.cfg.Track.Ports {
		m.Ports = append(m.Ports, tp.Name)
	}
	for _, p := range n.cfg.Track.Pings {
		m.Pings = append(m.Pings, p.Address)
	}
	return m
}

// routerClock is the router's clock for the VRRP driver; its timers are real ones.
type routerClock struct{ now func() time.Time }

func (c routerClock) Now() time.Time                         { return c.now() }
func (c routerClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// linkUp reports whether the named port's device has its link (carrier) up; ports
// without a kernel device (tests) are always up, unknown ones down.
func (r *Router) linkUp(name string) bool {
	i, ok := r.tab.Load().byName[name]
	if !ok {
		return false
	}
	rp := r.ports()[i]
	if rp.cfg.Device == "" {
		return true
	}
	ifi, err := net.InterfaceByName(rp.cfg.Device)
	if err != nil {
		return false
	}
	return ifi.Flags&net.FlagRunning != 0
}

// VRRPInfo lists the instances for show-router.
func (r *Router) VRRPInfo() []vrrp.Info {
	var out []vrrp.Info
	for _, n := range r.vrrpNodes() {
		out = append(out, n.in.Info())
	}
	return out
}

// VRRPLinks names the ports an instance advertises on: its own port first, then its
// extra links (in the order of vrrp.Info.Links).
func (r *Router) VRRPLinks(instance string) []string {
	for _, n := range r.vrrpNodes() {
		if n.in.Name() == instance {
			out := []string{n.rp.cfg.Name}
			for _, lp := range n.links {
				out = append(out, lp.cfg.Name)
			}
			return out
		}
	}
	return nil
}

// VRRPPort names the port an instance runs on.
func (r *Router) VRRPPort(instance string) string {
	for _, n := range r.vrrpNodes() {
		if n.in.Name() == instance {
			return n.rp.cfg.Name
		}
	}
	return ""
}

// OnVRRPEvent sets the function that receives every VRRP transition (before Run).
func (r *Router) OnVRRPEvent(f func(VRRPEvent)) { r.vrrp.onEvent = f }

// SetVRRPGroupHealth tells the instances tracking a server group whether it is healthy.
func (r *Router) SetVRRPGroupHealth(group string, healthy bool) {
	for _, n := range r.vrrpNodes() {
		if n.tracker.SetGroup(group, healthy) {
			n.tracker.Apply(n.in)
			r.wakeVRRP()
		}
	}
}
