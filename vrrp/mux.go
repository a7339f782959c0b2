package vrrp

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Mux hands the adverts received on one port (one link) to the instance of their
// address family and VRID, and counts those that no instance takes, by the first
// receive check they fail (DropVRID when they pass all the packet checks).
type Mux struct {
	mu    sync.RWMutex
	v4    [256]muxEntry
	v6    [256]muxEntry
	drops Drops
}

// muxEntry is an instance and which of its links the mux's port is (0: its own port).
type muxEntry struct {
	in   *Instance
	link int
}

// Add registers an instance on its own port. Two instances of one family cannot share
// a VRID.
func (m *Mux) Add(in *Instance) error { return m.AddLink(in, 0) }

// AddLink registers an instance on one of its links: 0 its own port, i+1 its extra
// link Config.Links[i]. A port has one instance per VRID and family, whichever of its
// links the port is.
func (m *Mux) AddLink(in *Instance, link int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if link < 0 || link > len(in.cfg.Links) {
		return fmt.Errorf("%w: %s has no link %d", ErrConfig, in.cfg.Name, link)
	}
	t := m.table(in.ipv6)
	if old := t[in.cfg.VRID].in; old != nil {
		return fmt.Errorf("%w: %s and %s share VRID %d", ErrConfig, old.cfg.Name, in.cfg.Name, in.cfg.VRID)
	}
	t[in.cfg.VRID] = muxEntry{in: in, link: link}
	return nil
}

// Remove unregisters an instance.
func (m *Mux) Remove(in *Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.table(in.ipv6)
	if t[in.cfg.VRID].in == in {
		t[in.cfg.VRID] = muxEntry{}
	}
}

// table returns the table of a family. mu is held.
func (m *Mux) table(ipv6 bool) *[256]muxEntry {
	if ipv6 {
		return &m.v6
	}
	return &m.v4
}

// Instances returns the registered instances, IPv4 first, by VRID.
func (m *Mux) Instances() []*Instance {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Instance
	for _, t := range []*[256]muxEntry{&m.v4, &m.v6} {
		for _, e := range t {
			if e.in != nil {
				out = append(out, e.in)
			}
		}
	}
	return out
}

// Receive hands an advert (the IP payload of a protocol-112 packet from src to dst
// with TTL or hop limit ttl) to its instance, or counts it.
func (m *Mux) Receive(now time.Time, src, dst netip.Addr, ttl uint8, payload []byte) {
	var e muxEntry
	m.mu.RLock()
	if len(payload) > advVRID {
		e = m.table(src.Is6())[payload[advVRID]]
	}
	m.mu.RUnlock()
	if e.in != nil {
		e.in.ReceiveOn(now, e.link, src, dst, ttl, payload)
		return
	}
	r := checkUnclaimed(src, dst, ttl, Advert(payload))
	m.mu.Lock()
	m.drops[r]++
	m.mu.Unlock()
}

// Drops returns the counts of adverts no instance took.
func (m *Mux) Drops() Drops {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.drops
}

// checkUnclaimed runs the receive checks that come before the VRID check on an advert
// no instance takes, and returns the reason of the first that fails, or DropVRID.
func checkUnclaimed(src, dst netip.Addr, ttl uint8, p Advert) DropReason {
	switch {
	case ttl != 255:
		return DropTTL
	case len(p) == 0 || (p.Version() != 3 && (p.Version() != 2 || src.Is6())):
		return DropVersion
	case len(p) < AdvertHeaderSize:
		return DropLength
	case p.Type() != TypeAdvertisement:
		return DropType
	case !p.IsValid(src.Is6()):
		return DropLength
	case p.CountIPAddrs() == 0:
		return DropCount
	}
	if ok, _ := p.IsChecksumValid(src, dst); !ok {
		return DropChecksum
	}
	return DropVRID
}
