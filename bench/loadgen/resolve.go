package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"ulb/router/header"
)

// ErrResolve is wrapped when the route or the next hop's MAC address cannot be found.
var ErrResolve = errors.New("loadgen: cannot resolve the next hop")

// Route is the kernel's route to a destination, as `ip -j route get` prints it.
type Route struct {
	Dev     string     // egress interface
	Src     netip.Addr // preferred source address
	Gateway netip.Addr // next hop; invalid when the destination is on link
}

// NextHop is the address whose MAC the frames carry: the gateway, or dst itself.
func (r Route) NextHop(dst netip.Addr) netip.Addr {
	if r.Gateway.IsValid() {
		return r.Gateway
	}
	return dst
}

// ParseRouteGet parses the JSON output of `ip -j route get ADDR`.
func ParseRouteGet(out []byte) (Route, error) {
	var rs []struct {
		Dev     string `json:"dev"`
		PrefSrc string `json:"prefsrc"`
		Gateway string `json:"gateway"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return Route{}, fmt.Errorf("%w: ip route get: %v", ErrResolve, err)
	}
	if len(rs) == 0 || rs[0].Dev == "" {
		return Route{}, fmt.Errorf("%w: ip route get printed no route", ErrResolve)
	}
	r := Route{Dev: rs[0].Dev}
	var err error
	if rs[0].PrefSrc != "" {
		if r.Src, err = netip.ParseAddr(rs[0].PrefSrc); err != nil {
			return Route{}, fmt.Errorf("%w: ip route get: source %q", ErrResolve, rs[0].PrefSrc)
		}
	}
	if rs[0].Gateway != "" {
		if r.Gateway, err = netip.ParseAddr(rs[0].Gateway); err != nil {
			return Route{}, fmt.Errorf("%w: ip route get: gateway %q", ErrResolve, rs[0].Gateway)
		}
	}
	return r, nil
}

// usableNeigh lists the neighbour states whose link-layer address can be used.
var usableNeigh = []string{"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}

// ParseNeigh parses the JSON output of `ip -j neigh show to ADDR dev DEV` and returns the
// MAC address of the first entry in a usable state, or ok false.
func ParseNeigh(out []byte) (mac header.MAC, ok bool, err error) {
	var ns []struct {
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal(out, &ns); err != nil {
		return mac, false, fmt.Errorf("%w: ip neigh show: %v", ErrResolve, err)
	}
	for _, n := range ns {
		if n.LLAddr == "" || !slices.ContainsFunc(n.State, func(s string) bool { return slices.Contains(usableNeigh, s) }) {
			continue
		}
		hw, err := net.ParseMAC(n.LLAddr)
		if err != nil || len(hw) != 6 {
			return mac, false, fmt.Errorf("%w: ip neigh show: bad address %q", ErrResolve, n.LLAddr)
		}
		return header.MAC(hw), true, nil
	}
	return mac, false, nil
}

// ParseMAC parses a 48-bit MAC address.
func ParseMAC(s string) (header.MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return header.MAC{}, fmt.Errorf("loadgen: %q is not a 48-bit MAC address", s)
	}
	return header.MAC(hw), nil
}
