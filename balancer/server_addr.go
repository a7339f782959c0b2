package balancer

import "net/netip"

// ServerAddr returns the address of the server with that ID (Pick.Server), configured or
// not: a DSR flow's every packet goes to it unchanged.
func (s *Snapshot) ServerAddr(id uint32) (netip.Addr, bool) {
	if int(id) < len(s.pairIDs) && s.pairIDs[id] != nil {
		return s.pairIDs[id].srv.key.addr, true
	}
	return netip.Addr{}, false
}
