// Package hostcheck reports what the host kernel would do behind ulbd's back on the
// devices ulbd owns: addresses that make it answer ARP/NDP and send RSTs, IPv6 left on,
// kernel forwarding. It reads the state of the calling thread's network namespace.
package hostcheck

import (
	"fmt"
	"net/netip"
)

// Severity says what a finding means for ulbd's start.
type Severity int

const (
	// Info states a fact; nothing is wrong.
	Info Severity = iota
	// Fixed reports a problem the check has repaired.
	Fixed
	// Warning reports something the kernel may do that ulbd can live with.
	Warning
	// Fatal reports a state in which ulbd must not run: fix it first.
	Fatal
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Fixed:
		return "fixed"
	case Warning:
		return "warning"
	case Fatal:
		return "fatal"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// Kind is what a finding is about.
type Kind int

const (
	// DeviceOK: the device exists, carries no kernel address and has IPv6 off.
	DeviceOK Kind = iota
	// DeviceMissing: no interface of that name in the namespace.
	DeviceMissing
	// DeviceDown: the interface is administratively down.
	DeviceDown
	// IPv4Address: the kernel owns an IPv4 address on the device.
	IPv4Address
	// IPv6Address: the kernel owns a (non link-local) IPv6 address on the device.
	IPv6Address
	// IPv6Enabled: IPv6 is on for the device (net.ipv6.conf.DEV.disable_ipv6=0); with
	// severity Fixed, the check turned it off.
	IPv6Enabled
	// IPv4Forwarding: net.ipv4.ip_forward=1 in the namespace.
	IPv4Forwarding
	// IPv6Forwarding: net.ipv6.conf.all.forwarding=1 in the namespace.
	IPv6Forwarding
)

// Finding is one observation about the host.
type Finding struct {
	Kind     Kind
	Severity Severity
	// Device is the interface concerned; empty for namespace-wide findings.
	Device string
	// Address is the kernel's address for IPv4Address and IPv6Address.
	Address netip.Prefix
}

// String explains the finding and, for a problem, how to fix it.
func (f Finding) String() string {
	d := f.Device
	switch f.Kind {
	case DeviceOK:
		return fmt.Sprintf("device %s is ready: no kernel address, IPv6 off", d)
	case DeviceMissing:
		return fmt.Sprintf("device %s does not exist in this network namespace", d)
	case DeviceDown:
		return fmt.Sprintf("device %s is down: it receives nothing until it is up; bring it up with `ip link set %s up`", d, d)
	case IPv4Address:
		return fmt.Sprintf("device %s carries kernel IPv4 address %s: the kernel would answer ARP for it and send RSTs for the VIPs; remove it with `ip addr flush dev %s`",
			d, f.Address, d)
	case IPv6Address:
		return fmt.Sprintf("device %s carries kernel IPv6 address %s: the kernel would answer NDP for it and send RSTs for the VIPs; disable IPv6 on it with `sysctl -w net.ipv6.conf.%s.disable_ipv6=1`",
			d, f.Address, d)
	case IPv6Enabled:
		if f.Severity == Fixed {
			return fmt.Sprintf("device %s had IPv6 enabled: disabled it (net.ipv6.conf.%s.disable_ipv6=1) so that the kernel sends no NDP, MLD or router solicitations on it", d, d)
		}
		return fmt.Sprintf("device %s has IPv6 enabled: the kernel answers NDP for its link-local address and sends MLD and router solicitations; disable it with `sysctl -w net.ipv6.conf.%s.disable_ipv6=1`", d, d)
	case IPv4Forwarding:
		return "net.ipv4.ip_forward=1 in this network namespace: the kernel would forward frames ulbd also forwards; turn it off with `sysctl -w net.ipv4.ip_forward=0`"
	case IPv6Forwarding:
		return "net.ipv6.conf.all.forwarding=1 in this network namespace: the kernel would forward frames ulbd also forwards; turn it off with `sysctl -w net.ipv6.conf.all.forwarding=0`"
	}
	return fmt.Sprintf("finding kind %d on %q", int(f.Kind), d)
}

// AnyFatal reports whether a finding forbids starting.
func AnyFatal(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == Fatal {
			return true
		}
	}
	return false
}

// Options tune Check.
type Options struct {
	// FixIPv6 disables IPv6 on owned devices that have it on (see SetIPv6),
	// reporting Fixed instead of Warning.
	FixIPv6 bool
	// ProcSys is the root of the sysctl tree; empty means /proc/sys.
	ProcSys string
}

func (o Options) procSys() string {
	if o.ProcSys == "" {
		return "/proc/sys"
	}
	return o.ProcSys
}
