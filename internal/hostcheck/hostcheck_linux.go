package hostcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Check inspects the owned devices and the namespace's forwarding switches, in the
// network namespace of the calling thread (lock the thread to check another one). It
// returns the findings in the order of devices, then forwarding; the error reports a
// check that could not be made (an unreadable sysctl, a failed netlink dump).
func Check(devices []string, opt Options) ([]Finding, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("hostcheck: list interfaces: %w", err)
	}
	byName := make(map[string]*net.Interface, len(ifaces))
	for i := range ifaces {
		byName[ifaces[i].Name] = &ifaces[i]
	}
	var out []Finding
	for _, dev := range devices {
		ifi := byName[dev]
		if ifi == nil {
			out = append(out, Finding{Kind: DeviceMissing, Severity: Fatal, Device: dev})
			continue
		}
		found, err := checkDevice(ifi, opt)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	found, err := checkForwarding(opt.procSys())
	if err != nil {
		return nil, err
	}
	return append(out, found...), nil
}

func checkDevice(ifi *net.Interface, opt Options) ([]Finding, error) {
	dev := ifi.Name
	var out []Finding
	problem := false
	enabled, err := ipv6Enabled(opt.procSys(), dev)
	if err != nil {
		return nil, err
	}
	if enabled {
		f := Finding{Kind: IPv6Enabled, Severity: Warning, Device: dev}
		if opt.FixIPv6 {
			if err := setIPv6(opt.procSys(), dev, false); err != nil {
				return nil, err
			}
			f.Severity = Fixed
		} else {
			problem = true
		}
		out = append(out, f)
	}
	if ifi.Flags&net.FlagUp == 0 {
		out = append(out, Finding{Kind: DeviceDown, Severity: Warning, Device: dev})
		problem = true
	}
	// The addresses are read after IPv6 was disabled, which removes the IPv6 ones.
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("hostcheck: addresses of %s: %w", dev, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := ipn.Mask.Size()
		p := netip.PrefixFrom(ip, ones)
		switch {
		case ip.Is4():
			out = append(out, Finding{Kind: IPv4Address, Severity: Fatal, Device: dev, Address: p})
			problem = true
		case !ip.IsLinkLocalUnicast():
			out = append(out, Finding{Kind: IPv6Address, Severity: Fatal, Device: dev, Address: p})
			problem = true
		}
	}
	if !problem {
		out = append(out, Finding{Kind: DeviceOK, Severity: Info, Device: dev})
	}
	return out, nil
}

func checkForwarding(procSys string) ([]Finding, error) {
	var out []Finding
	for _, s := range []struct {
		path string
		kind Kind
	}{
		{"net/ipv4/ip_forward", IPv4Forwarding},
		{"net/ipv6/conf/all/forwarding", IPv6Forwarding},
	} {
		v, err := readSysctl(procSys, s.path)
		if errors.Is(err, fs.ErrNotExist) && s.kind == IPv6Forwarding {
			continue // a kernel without IPv6 forwards no IPv6
		}
		if err != nil {
			return nil, err
		}
		if v != "0" {
			out = append(out, Finding{Kind: s.kind, Severity: Fatal})
		}
	}
	return out, nil
}

// ipv6Enabled reports whether IPv6 is on for dev; false when the kernel has no IPv6.
func ipv6Enabled(procSys, dev string) (bool, error) {
	if err := validDevice(dev); err != nil {
		return false, err
	}
	v, err := readSysctl(procSys, filepath.Join("net/ipv6/conf", dev, "disable_ipv6"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return v == "0", nil
}

// SetIPv6 turns IPv6 on or off on dev (net.ipv6.conf.DEV.disable_ipv6) in the calling
// thread's network namespace: off, the kernel drops the device's IPv6 addresses and sends
// no NDP, MLD or router solicitation on it.
func SetIPv6(dev string, on bool) error { return setIPv6("/proc/sys", dev, on) }

func setIPv6(procSys, dev string, on bool) error {
	if err := validDevice(dev); err != nil {
		return err
	}
	p := filepath.Join(procSys, "net/ipv6/conf", dev, "disable_ipv6")
	v, what := "1\n", "disable"
	if on {
		v, what = "0\n", "enable"
	}
	if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
		return fmt.Errorf("hostcheck: %s IPv6 on %s: %w", what, dev, err)
	}
	return nil
}

func readSysctl(procSys, path string) (string, error) {
	b, err := os.ReadFile(filepath.Join(procSys, path))
	if err != nil {
		return "", fmt.Errorf("hostcheck: read %s: %w", strings.ReplaceAll(path, "/", "."), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// validDevice refuses names that would escape the sysctl directory.
func validDevice(dev string) error {
	if dev == "" || dev == "." || dev == ".." || strings.ContainsAny(dev, "/\x00") {
		return fmt.Errorf("hostcheck: invalid device name %q", dev)
	}
	return nil
}
