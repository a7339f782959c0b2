package loadgen

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// txSocket is a send-only AF_PACKET socket: bound with protocol 0 it receives nothing, and
// it is a plain blocking file descriptor that the Go runtime's poller never registers, so
// that freeing each sent frame wakes no one (sock_wfree -> sock_def_write_space finds no
// sleeper). sendmmsg runs on the calling thread and may block while the socket's send
// buffer is full.
type txSocket struct {
	fd   int
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
	// Counters of frames the kernel took and refused, and of sendmmsg calls that found
	// the send buffer full and blocked.
	sent, refused, blocked uint64
}

func openTxSocket(device string, batch int) (*txSocket, error) {
	ifi, err := net.InterfaceByName(device)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loadgen: socket(AF_PACKET): %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("loadgen: bind AF_PACKET to %s: %w", device, err)
	}
	s := &txSocket{fd: fd, msgs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch)}
	for i := range s.msgs {
		s.msgs[i].Hdr.Iov = &s.iovs[i]
		s.msgs[i].Hdr.SetIovlen(1)
	}
	return s, nil
}

// write sends frames (each complete, at most len(msgs) of them), retrying past a frame
// the kernel refuses, and returns how many it handed to the kernel.
func (s *txSocket) write(frames [][]byte) (int, error) {
	done := 0
	for done < len(frames) {
		n := len(frames) - done
		for i := 0; i < n; i++ {
			f := frames[done+i]
			s.iovs[i].Base = &f[0]
			s.iovs[i].SetLen(len(f))
		}
		r, e := s.sendmmsg(n)
		switch e {
		case 0:
			s.sent += uint64(r)
			done += int(r)
		case unix.EINTR:
		case unix.ENOBUFS, unix.EAGAIN, unix.ENETDOWN, unix.ENXIO, unix.EMSGSIZE:
			// sendmmsg reports an error only for its first message: drop that one.
			s.refused++
			done++
		default:
			return done, fmt.Errorf("loadgen: sendmmsg: %w", e)
		}
	}
	return done, nil
}

// sendmmsg sends the first n prepared messages. It first tries without blocking and
// without telling the Go runtime (RawSyscall6 with MSG_DONTWAIT): a back-to-back blocking
// Syscall6 per batch makes the runtime's sysmon wake up thousands of times a second, on
// whatever CPU is idle, which is the CPU a router under test needs. Only when the send
// buffer is full does it make the blocking call through Syscall6, which lets the runtime
// hand the P to other goroutines while the thread sleeps.
func (s *txSocket) sendmmsg(n int) (uintptr, unix.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.msgs[0])), uintptr(n),
		unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		s.blocked++
		r, _, e = unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.msgs[0])), uintptr(n), 0, 0, 0)
	}
	return r, e
}

func (s *txSocket) close() error { return unix.Close(s.fd) }
