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
	v4    [256]*Instance
	v6    [256]*Instance
	drops Drops
}

// Add registers an instance. Two instances of one family cannot share a VRID.
func (m *Mux) Add(in *Instance) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.table(in.ipv6)
	if old := t[in.cfg.VRID]; old != nil {
		return fmt.Errorf("%w: %s and %s share VRID %d", ErrConfig, old.cfg.Name, in.cfg.Name, in.cfg.VRID)
	}
	t[in.cfg.VRID] = in
	return nil
}

// Remove unregisters an instance.
func (m *Mux) Remove(in *Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.table(in.ipv6)
	if t[in.cfg.VRID] == in {
		t[in.cfg.VRID] = nil
	}
}

// table returns the table of a family. mu is held.
func (m *Mux) table(ipv6 bool) *[256]*Instance {
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
	for _, t := range []*[256]*Instance{&m.v4, &m.v6} {
		for _, in := range t {
			if in != nil {
				out = append(out, in)
			}
		}
	}
	return out
}

// Receive hands an advert (the IP payload of a protocol-112 packet from src to dst
// with TTL or hop limit ttl) to its instance, or counts it.
func (m *Mux) Receive(now time.Time, src, dst netip.Addr, ttl uint8, payload []byte) {
	var in *Instance
	m.mu.RLock()
	if len(payload) > advVRID {
		in = m.table(src.Is6())[payload[advVRID]]
	}
	m.mu.RUnlock()
	if in != nil {
		in.ReceiveTo(now, src, dst, ttl, payload)
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
