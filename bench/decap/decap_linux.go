// Package decap is a test bench's userspace stand-in for the kernel's ipip and ip6tnl
// devices, for kernels built without them: it takes the IPv4-in-IPv4 (protocol 4) and
// IPv6-in-IPv6 (next header 41) packets addressed to its host from raw sockets and
// hands each inner packet, unchanged, to the host's kernel through a TUN device, as a
// tunnel device's receive path does (RFC 2003 section 3, RFC 2473 section 3.3). The
// host's kernel then delivers the inner packet (to the VIP on its loopback) as if it had
// arrived on the TUN device.
package decap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Stats count what Run saw.
type Stats struct {
	Packets4, Packets6 atomic.Uint64 // inner packets handed to the kernel
	Malformed          atomic.Uint64 // outer or inner headers that do not hold together
	WriteErrors        atomic.Uint64
}

// ipProtoIPv6 is IPv6-in-IP's protocol number (IPPROTO_IPV6 is the socket option level).
const (
	ipProtoIPIP = 4
	ipProtoIPv6 = 41
)

// Run attaches to the TUN device tun (which must exist, e.g. `ip tuntap add dev tun0
// mode tun`, and be up), opens the raw sockets and calls ready, then decapsulates until
// ctx ends.
func Run(ctx context.Context, tun string, st *Stats, ready func()) error {
	tf, err := openTUN(tun)
	if err != nil {
		return err
	}
	defer tf.Close()
	fd4, err := rawSocket(unix.AF_INET, ipProtoIPIP)
	if err != nil {
		return err
	}
	defer unix.Close(fd4)
	fd6, err := rawSocket(unix.AF_INET6, ipProtoIPv6)
	if err != nil {
		return err
	}
	defer unix.Close(fd6)
	if ready != nil {
		ready()
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, fd := range []int{fd4, fd6} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = loop(ctx, fd, i == 1, tf, st)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// rawSocket opens a raw socket for an IP protocol, with a receive timeout so that its
// loop sees ctx end.
func rawSocket(family, proto int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, fmt.Errorf("raw socket for protocol %d: %w", proto, err)
	}
	tv := unix.Timeval{Usec: 200_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	return fd, nil
}

// loop reads encapsulated packets from fd and writes their inner packets to tun. An
// IPv4 raw socket returns the outer header too; an IPv6 one only what follows it.
func loop(ctx context.Context, fd int, v6 bool, tun *os.File, st *Stats) error {
	buf := make([]byte, 65536)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("recvfrom: %w", err)
		}
		inner, ok := Inner(buf[:n], v6)
		if !ok {
			st.Malformed.Add(1)
			continue
		}
		if _, err := tun.Write(inner); err != nil {
			st.WriteErrors.Add(1)
			continue
		}
		if v6 {
			st.Packets6.Add(1)
		} else {
			st.Packets4.Add(1)
		}
	}
	return nil
}

// Inner returns the inner packet of what a raw socket read: for IPv4 (v6 false) an
// outer IPv4 header of protocol 4 and an inner IPv4 packet; for IPv6 the inner IPv6
// packet alone. It is cut at the inner header's length; ok is false when the headers do
// not hold together (a wrong version, lengths past the data).
func Inner(b []byte, v6 bool) ([]byte, bool) {
	if v6 {
		if len(b) < 40 || b[0]>>4 != 6 {
			return nil, false
		}
		n := 40 + int(binary.BigEndian.Uint16(b[4:]))
		if n > len(b) {
			return nil, false
		}
		return b[:n], true
	}
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != ipProtoIPIP {
		return nil, false
	}
	hl := int(b[0]&0xf) * 4
	if hl < 20 || len(b) < hl+20 {
		return nil, false
	}
	in := b[hl:]
	n := int(binary.BigEndian.Uint16(in[2:]))
	if in[0]>>4 != 4 || int(in[0]&0xf)*4 < 20 || n < 20 || n > len(in) {
		return nil, false
	}
	return in[:n], true
}
