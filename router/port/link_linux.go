package port

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// withIfreqSocket runs fn with a throwaway datagram socket for interface ioctls. The
// socket belongs to the calling thread's network namespace.
func withIfreqSocket(fn func(fd int) error) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for interface ioctl: %w", err)
	}
	defer unix.Close(fd)
	return fn(fd)
}

// setLinkUp sets IFF_UP on the interface if it is not set yet.
func setLinkUp(name string) error {
	return withIfreqSocket(func(fd int) error {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("SIOCGIFFLAGS: %w", err)
		}
		flags := ifr.Uint16()
		if flags&unix.IFF_UP != 0 {
			return nil
		}
		ifr.SetUint16(flags | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("SIOCSIFFLAGS: %w", err)
		}
		return nil
	})
}

// setMTU sets the interface's MTU.
func setMTU(name string, mtu int) error {
	return withIfreqSocket(func(fd int) error {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint32(uint32(mtu))
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
			return fmt.Errorf("SIOCSIFMTU %d: %w", mtu, err)
		}
		return nil
	})
}
