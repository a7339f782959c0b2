package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/BurntSushi/toml"
)

// Kind is how a port reaches its device.
type Kind string

// Port kinds.
const (
	KindAFPacket Kind = "afpacket" // an existing Ethernet NIC, through an AF_PACKET socket
	KindTUN      Kind = "tun"      // a layer-3 TUN device that ulbd creates
)

// Limits of the port keys.
const (
	DefaultTUNMTU = 1500
	MinMTU        = 68    // RFC 791's minimum for IPv4
	MinMTUIPv6    = 1280  // RFC 8200's minimum for a link that carries IPv6
	MaxMTU        = 65535 // the largest IP packet
	MinSockBuf    = 4096
	MaxSockBuf    = 1 << 30
	MaxBatch      = 1024
	maxNameLen    = 32
	maxDeviceLen  = 15 // IFNAMSIZ less its NUL
)

// Port is one NIC or TUN device ulbd owns.
type Port struct {
	// Name ties other sections (routes, VRRP, ...) to the port.
	Name string
	// Device is the kernel interface: taken over (afpacket) or created (tun).
	Device string
	Kind   Kind
	// Addresses are the router's own addresses on the port, each with the prefix length
	// of its connected network (198.51.100.10/24).
	Addresses []netip.Prefix
	// MTU is the largest IP packet: 0 for an afpacket port means the device's MTU, and a
	// smaller value makes the router treat the link as that MTU (ulbd refuses a larger
	// one); a tun port defaults to DefaultTUNMTU.
	MTU int
	// RcvBuf and SndBuf size the AF_PACKET socket's buffers in bytes (SO_RCVBUFFORCE /
	// SO_SNDBUFFORCE); 0 keeps the port's default.
	RcvBuf, SndBuf int
	// Batch is the number of frames read or written per system call; 0 keeps the
	// port's default.
	Batch int
	// KernelRX lets the kernel's own stack go on receiving the frames of an afpacket
	// port. By default ulbd drops them at the device's ingress once its socket has them
	// (an eBPF program on tcx), so that the kernel neither spends CPU on them nor answers
	// for addresses it should not hold.
	KernelRX bool
	// DirectedBroadcast (directed_broadcast, default false) forwards the directed
	// broadcasts of the port's IPv4 networks that arrive on other ports, as link-layer
	// broadcasts (RFC 1812 §5.3.5.2). Off, as RFC 2644 (BCP 34) asks by default, they
	// are dropped without an ICMP error and counted as "directed-broadcast". Afpacket
	// ports only.
	DirectedBroadcast bool
	// Redirects (redirects, default true on afpacket ports) sends ICMP redirects for
	// host (RFC 1812 §5.2.7.2) and ICMPv6 redirects (RFC 4861 §8.2) to the port's hosts
	// whose packets leave by the port they came in by, the packets still being
	// forwarded. Turn it off where VRRP routers share a link's load in a symmetric
	// topology (RFC 9568 §8.1.1, §8.2.1). Afpacket ports only.
	Redirects bool
}

// Connected returns the networks the port's addresses are on, without duplicates.
func (p *Port) Connected() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range p.Addresses {
		n := a.Masked()
		dup := false
		for _, o := range out {
			dup = dup || o == n
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out
}

type rawPort struct {
	Name     value `toml:"name"`
	Device   value `toml:"device"`
	Kind     value `toml:"kind"`
	Address  value `toml:"address"`
	MTU      value `toml:"mtu"`
	RcvBuf   value `toml:"rcvbuf"`
	SndBuf   value `toml:"sndbuf"`
	Batch    value `toml:"batch"`
	KernelRX value `toml:"kernel_rx"`

	DirectedBroadcast value `toml:"directed_broadcast"`
	Redirects         value `toml:"redirects"`
}

// portAddr remembers where an address was configured, for overlap messages.
type portAddr struct {
	prefix netip.Prefix
	port   int // index in the file
	name   string
	path   string
}

func (d *decoder) ports(p toml.Primitive) []Port {
	is := d.is
	var raws []rawPort
	if !d.tables(p, "port", &raws) {
		if !d.failed["port"] {
			is.atLine(0, "no [[port]] defined: ulbd needs at least one port")
		}
		return nil
	}
	names := make(map[string]string)   // name → path of its name key
	devices := make(map[string]string) // device → name of the port using it
	var addrs []portAddr
	ports := make([]Port, 0, len(raws))
	for i, r := range raws {
		path := indexPath("port", i)
		pt := Port{Kind: KindAFPacket}
		if s, ok := is.str(r.Name, path+".name", portLabel("", i)+": name"); ok {
			kp := path + ".name"
			if err := checkName(s); err != nil {
				is.at(kp, "port name %q: %v", s, err)
			} else if first, dup := names[s]; dup {
				is.at(kp, "duplicate port name %q (first defined at line %d)", s, is.ix.line(first))
			} else {
				names[s] = kp
			}
			pt.Name = s
		} else if !r.Name.set {
			is.at(path, "[[port]] needs a name")
		}
		label := portLabel(pt.Name, i)

		if s, ok := is.str(r.Device, path+".device", label+": device"); ok {
			kp := path + ".device"
			if err := checkDevice(s); err != nil {
				is.at(kp, "%s: device %q: %v", label, s, err)
			} else if other, dup := devices[s]; dup {
				is.at(kp, "%s: device %q is already used by %s", label, s, other)
			} else {
				devices[s] = label
			}
			pt.Device = s
		} else if !r.Device.set {
			is.at(path, "%s needs a device", label)
		}

		if s, ok := is.str(r.Kind, path+".kind", label+": kind"); ok {
			switch k := Kind(s); k {
			case KindAFPacket, KindTUN:
				pt.Kind = k
			default:
				is.at(path+".kind", "%s: unknown kind %q: want afpacket or tun", label, s)
			}
		}

		list, paths := is.strList(r.Address, path+".address", label+": address")
		for j, s := range list {
			a, err := parseAddress(s)
			if err != nil {
				is.at(paths[j], "%s: %v", label, err)
				continue
			}
			if dup := slicesIndexAddr(pt.Addresses, a.Addr()); dup >= 0 {
				is.at(paths[j], "%s: duplicate address %s", label, a.Addr())
				continue
			}
			for _, o := range addrs {
				if o.port != i && o.prefix.Masked().Overlaps(a.Masked()) {
					is.at(paths[j], "%s: address %s overlaps %s of %s (line %d): ports must be on different networks",
						label, a, o.prefix, portLabel(o.name, o.port), is.ix.line(o.path))
					break
				}
			}
			addrs = append(addrs, portAddr{prefix: a, port: i, name: pt.Name, path: paths[j]})
			pt.Addresses = append(pt.Addresses, a)
		}

		if pt.Kind == KindTUN {
			pt.MTU = DefaultTUNMTU
		}
		if n, ok := is.integer(r.MTU, path+".mtu", label+": mtu"); ok {
			lo := MinMTU
			if hasIPv6(pt.Addresses) {
				lo = MinMTUIPv6
			}
			if n < int64(lo) || n > MaxMTU {
				is.at(path+".mtu", "%s: mtu %d out of range %d..%d", label, n, lo, MaxMTU)
			}
			pt.MTU = int(n)
		}
		for _, t := range []struct {
			v        value
			key      string
			dst      *int
			min, max int64
		}{
			{r.RcvBuf, "rcvbuf", &pt.RcvBuf, MinSockBuf, MaxSockBuf},
			{r.SndBuf, "sndbuf", &pt.SndBuf, MinSockBuf, MaxSockBuf},
			{r.Batch, "batch", &pt.Batch, 1, MaxBatch},
		} {
			kp := path + "." + t.key
			n, ok := is.integer(t.v, kp, label+": "+t.key)
			if !ok {
				continue
			}
			switch {
			case pt.Kind != KindAFPacket:
				is.at(kp, "%s: %s applies only to kind afpacket", label, t.key)
			case n < t.min || n > t.max:
				is.at(kp, "%s: %s %d out of range %d..%d", label, t.key, n, t.min, t.max)
			default:
				*t.dst = int(n)
			}
		}
		if b, ok := is.boolean(r.KernelRX, path+".kernel_rx", label+": kernel_rx"); ok {
			if pt.Kind != KindAFPacket {
				is.at(path+".kernel_rx", "%s: kernel_rx applies only to kind afpacket", label)
			}
			pt.KernelRX = b
		}
		pt.Redirects = pt.Kind == KindAFPacket
		for _, o := range []struct {
			v   value
			key string
			dst *bool
		}{
			{r.DirectedBroadcast, "directed_broadcast", &pt.DirectedBroadcast},
			{r.Redirects, "redirects", &pt.Redirects},
		} {
			kp := path + "." + o.key
			if b, ok := is.boolean(o.v, kp, label+": "+o.key); ok {
				if pt.Kind != KindAFPacket {
					is.at(kp, "%s: %s applies only to kind afpacket (a tun port has no link-layer broadcast or neighbours)", label, o.key)
				}
				*o.dst = b
			}
		}
		ports = append(ports, pt)
	}
	return ports
}

func portLabel(name string, i int) string {
	if name == "" {
		return fmt.Sprintf("port #%d", i+1)
	}
	return fmt.Sprintf("port %q", name)
}

func slicesIndexAddr(list []netip.Prefix, a netip.Addr) int {
	for i, p := range list {
		if p.Addr() == a {
			return i
		}
	}
	return -1
}

func hasIPv6(list []netip.Prefix) bool {
	for _, p := range list {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}

// parseAddress parses a router address with the prefix length of its network. The host
// bits are the point (198.51.100.10/24 is the address 198.51.100.10 on 198.51.100.0/24),
// but an address that is its network's own or broadcast address is refused.
func parseAddress(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		if a, err := netip.ParseAddr(s); err == nil {
			hint := 24
			if a.Is6() {
				hint = 64
			}
			return netip.Prefix{}, fmt.Errorf("address %q needs the prefix length of its network, e.g. \"%s/%d\"", s, a, hint)
		}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address %q is not an address with a prefix length (like 198.51.100.10/24 or 2001:db8::10/64)", s)
	}
	a := p.Addr()
	switch {
	case a.Is4In6():
		return p, fmt.Errorf("address %q is an IPv4-mapped IPv6 address: write the IPv4 address", s)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return p, fmt.Errorf("address %q cannot be a router's address (unspecified, multicast or loopback)", s)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return p, fmt.Errorf("address %q is the limited broadcast address", s)
	}
	bits := p.Bits()
	// /31 and /32 (RFC 3021) and /127, /128 (RFC 6164) have no network or broadcast
	// address to avoid.
	if bits >= a.BitLen()-1 {
		return p, nil
	}
	if a == p.Masked().Addr() {
		if a.Is4() {
			return p, fmt.Errorf("address %q is the network address of %s: give the router's own address, e.g. %s/%d",
				s, p.Masked(), p.Masked().Addr().Next(), bits)
		}
		return p, fmt.Errorf("address %q is the subnet-router anycast address of %s: give the router's own address, e.g. %s/%d",
			s, p.Masked(), p.Masked().Addr().Next(), bits)
	}
	if a.Is4() && a == lastAddr(p) {
		return p, fmt.Errorf("address %q is the broadcast address of %s", s, p.Masked())
	}
	return p, nil
}

// lastAddr returns the highest address of p's network.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	start := 0
	if p.Addr().Is4() {
		start = 12
	}
	for i := p.Bits(); i < p.Addr().BitLen(); i++ {
		b[start+i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// checkName accepts the names that tie sections together: 1 to 32 letters, digits,
// '-', '_' or '.'.
func checkName(s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("must be 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("character %q is not allowed (letters, digits, '-', '_', '.')", c)
		}
	}
	return nil
}

// checkDevice applies the kernel's rules for interface names (dev_valid_name).
func checkDevice(s string) error {
	switch {
	case s == "" || len(s) > maxDeviceLen:
		return fmt.Errorf("must be 1 to %d characters", maxDeviceLen)
	case s == "." || s == "..":
		return errors.New("is not a valid interface name")
	case strings.ContainsAny(s, "/: \t\n\v\f\r\x00"):
		return errors.New("may not contain '/', ':' or white space")
	}
	return nil
}
