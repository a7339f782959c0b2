package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"ulb/config"
	"ulb/internal/hostcheck"
	"ulb/router"
	"ulb/router/port"
)

// portPlan is what a reload does to the ports: the router's new set (router.SetPorts),
// the devices opened for it, and what changed, by port name.
type portPlan struct {
	set     []router.PortConfig
	opened  []port.Port
	kept    map[string]bool // ports that keep their device (and their loop and flows)
	added   []string        // new ports, and ports whose device was replaced
	removed []string
	changed []string // kept ports whose addresses or options changed
}

// close closes the devices the plan opened (a refused reload).
func (pp *portPlan) close() {
	for _, p := range pp.opened {
		p.Close()
	}
}

// any says the reload changes the ports.
func (pp *portPlan) any() bool { return len(pp.added)+len(pp.removed)+len(pp.changed) > 0 }

// openOptionsSame reports whether a port can keep its open device: the same device,
// kind and the options it was opened with.
func openOptionsSame(a, b config.Port) bool {
	return a.Device == b.Device && a.Kind == b.Kind && a.RcvBuf == b.RcvBuf && a.SndBuf == b.SndBuf &&
		a.Batch == b.Batch && a.KernelRX == b.KernelRX && (a.Kind != config.KindTUN || a.MTU == b.MTU)
}

// planPorts compares the running ports with c's and opens the devices of the new ones
// (a port whose device or open options changed is removed and added again, on a new
// socket). The devices of afpacket ports are checked first as at start (hostcheck: the
// device exists and the kernel holds no address on it; IPv6 is turned off on it).
// Any failure closes what was opened and changes nothing.
func (rl *reloader) planPorts(c *config.Config) (*portPlan, error) {
	running := map[string]config.Port{}
	for _, p := range rl.ports {
		running[p.Name] = p
	}
	pp := &portPlan{kept: map[string]bool{}}
	var open []config.Port
	for _, p := range c.Ports {
		old, ok := running[p.Name]
		switch {
		case ok && openOptionsSame(old, p):
			pp.kept[p.Name] = true
			pp.set = append(pp.set, router.PortConfig{Name: p.Name, Device: p.Device, Kind: string(p.Kind),
				Addresses: p.Addresses, MTU: p.MTU, DirectedBroadcast: p.DirectedBroadcast, Redirects: p.Redirects})
			if !slices.Equal(old.Addresses, p.Addresses) || old.MTU != p.MTU ||
				old.DirectedBroadcast != p.DirectedBroadcast || old.Redirects != p.Redirects {
				pp.changed = append(pp.changed, p.Name)
			}
		case ok && old.Kind == config.KindTUN && old.Device == p.Device:
			// A TUN device is made with its MTU and held by one file: it cannot be
			// opened again while the running port holds it.
			return nil, fmt.Errorf("port %s: tun device %s cannot be made again with other options while ulbd runs; restart ulbd", p.Name, p.Device)
		default:
			open = append(open, p)
			pp.added = append(pp.added, p.Name)
			pp.set = append(pp.set, router.PortConfig{Name: p.Name}) // its device below
		}
	}
	for _, p := range rl.ports {
		if c.Port(p.Name) == nil {
			pp.removed = append(pp.removed, p.Name)
		}
	}
	var devices []string
	for _, p := range open {
		if p.Kind == config.KindAFPacket {
			devices = append(devices, p.Device)
		}
	}
	if len(devices) > 0 {
		findings, err := hostcheck.Check(devices, hostcheck.Options{FixIPv6: true})
		if err != nil {
			return nil, fmt.Errorf("new ports: host check: %w", err)
		}
		var fatal []string
		for _, f := range findings {
			if f.Severity == hostcheck.Fatal {
				fatal = append(fatal, f.String())
			} else {
				rl.log.Info("host check", "severity", f.Severity.String(), "finding", f.String())
			}
		}
		if len(fatal) > 0 {
			return nil, errors.New("new ports: " + strings.Join(fatal, "; "))
		}
	}
	for _, p := range open {
		rpc, err := openPort(p, rl.started.Defence.NewFlowRing, rl.log)
		if err != nil {
			pp.close()
			return nil, err
		}
		pp.opened = append(pp.opened, rpc.Port)
		for i := range pp.set {
			if pp.set[i].Name == p.Name {
				pp.set[i] = rpc
			}
		}
	}
	return pp, nil
}

// applyPorts installs the plan: VRRP instances whose port goes or is replaced are shut
// down first (a master's priority-0 advert still goes out on its link), then the router
// takes the new port set with c's routes in one step. On an error nothing of the ports
// changed and the opened devices are closed.
func (rl *reloader) applyPorts(pp *portPlan, c *config.Config) error {
	if err := rl.r.CheckPorts(pp.set, routes(c)); err != nil {
		pp.close()
		return err
	}
	if len(pp.removed)+len(pp.added) > 0 {
		var stay []router.VRRPConfig
		for _, v := range vrrpConfigs(c) {
			if pp.kept[v.Port] && !slices.ContainsFunc(v.AdvertPorts, func(p string) bool { return !pp.kept[p] }) {
				stay = append(stay, v)
			}
		}
		if err := rl.r.SetVRRP(stay); err != nil {
			pp.close()
			return fmt.Errorf("VRRP: %w", err)
		}
	}
	if err := rl.r.SetPorts(pp.set, routes(c)); err != nil {
		pp.close()
		return err
	}
	rl.ports = c.Ports
	return nil
}
