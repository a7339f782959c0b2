package port

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// TUNPeerMAC is the source MAC address of the Ethernet header a TUN port puts in front
// of the packets it reads: the kernel side of the point-to-point link.
var TUNPeerMAC = net.HardwareAddr{0x06, 0x00, 0x00, 0x00, 0x00, 0x01}

// TUNStats are the counters of a TUN port.
type TUNStats struct {
	RxPackets, RxBytes uint64 // packets read (bytes without the synthesized Ethernet header)
	RxDropped          uint64 // packets read that were not IPv4/IPv6 or did not fit the buffer
	TxPackets, TxBytes uint64 // IP packets the kernel accepted (after segmentation)
	TxErrors           uint64 // packets the kernel refused
	TxDropped          uint64 // frames not written: not IP, too short, or bad offload metadata
	TxSegmented        uint64 // GSO frames segmented in software
	TxChecksummed      uint64 // NEEDS_CSUM frames completed in software
	LastTxErrno        syscall.Errno
}

// TUN is a layer-3 port on a TUN device (IFF_TUN | IFF_NO_PI). Read puts an Ethernet
// header in front of each packet (destination HardwareAddr, source TUNPeerMAC) and zeroes
// the virtio-net header; Write strips the Ethernet header and completes checksums and
// segments GSO TCP frames in software before handing packets to the kernel.
//
// Read must be called from one goroutine at a time; Write may be called from several.
type TUN struct {
	name   string
	mac    net.HardwareAddr
	mtu    int
	dev    *water.Interface
	rc     syscall.RawConn
	closed atomic.Bool

	rd tunReader // Read's

	txMu sync.Mutex
	wr   tunWriter // Write's, under txMu

	rxPackets, rxBytes, rxDropped                                       atomic.Uint64
	txPackets, txBytes, txErrors, txDropped, txSegmented, txChecksummed atomic.Uint64
	lastTxErrno                                                         atomic.Uintptr
}

var _ Port = (*TUN)(nil)

// tunReader is the state of one Read: the syscalls run in fn, created once.
type tunReader struct {
	t      *TUN
	bufs   [][]byte
	sizes  []int
	offset int
	got    int
	bytes  uint64
	errno  syscall.Errno
	fn     func(fd uintptr) bool
}

// tunWriter is the state of one Write: packets to hand to the kernel, and scratch
// buffers for segments.
type tunWriter struct {
	t        *TUN
	pkts     [][]byte
	next     int
	fatal    syscall.Errno
	segs     [][]byte
	segSizes []int
	fn       func(fd uintptr) bool
}

// errnoOf returns err's errno (the unix package returns nothing else), EIO otherwise.
func errnoOf(err error) syscall.Errno {
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return unix.EIO
}

// tunHardwareAddr derives a stable, locally administered unicast MAC from a TUN's name.
func tunHardwareAddr(name string) net.HardwareAddr {
	h := fnv.New64a()
	h.Write([]byte(name))
	s := h.Sum64()
	return net.HardwareAddr{0x02, byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// OpenTUN creates (or attaches to) the TUN device name in the calling thread's network
// namespace, sets its MTU and sets it up.
func OpenTUN(name string, mtu int) (*TUN, error) {
	wrap := func(op string, err error) error { return fmt.Errorf("tun %s: %s: %w", name, op, err) }
	if mtu < 68 || mtu > 65535 {
		return nil, wrap("open", fmt.Errorf("MTU %d out of range 68..65535", mtu))
	}
	dev, err := water.New(water.Config{
		DeviceType:             water.TUN,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: name},
	})
	if err != nil {
		return nil, wrap("open", err)
	}
	t := &TUN{name: dev.Name(), mac: tunHardwareAddr(dev.Name()), mtu: mtu, dev: dev}
	fail := func(op string, err error) (*TUN, error) {
		dev.Close()
		return nil, wrap(op, err)
	}
	f, ok := dev.ReadWriteCloser.(*os.File)
	if !ok {
		return fail("open", errors.New("TUN device is not a file"))
	}
	if t.rc, err = f.SyscallConn(); err != nil {
		return fail("syscall conn", err)
	}
	if err := setMTU(t.name, mtu); err != nil {
		return fail("set MTU", err)
	}
	if err := setLinkUp(t.name); err != nil {
		return fail("set link up", err)
	}
	t.rd = tunReader{t: t}
	t.rd.fn = t.rd.read
	t.wr = tunWriter{t: t}
	t.wr.fn = t.wr.write
	return t, nil
}

func (t *TUN) Name() string                   { return t.name }
func (t *TUN) HardwareAddr() net.HardwareAddr { return t.mac }
func (t *TUN) MTU() int                       { return t.mtu }
func (t *TUN) Layer3() bool                   { return true }
func (t *TUN) BatchSize() int                 { return DefaultBatchSize }

func (t *TUN) ioError(op string, err error) error {
	if t.closed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("tun %s: %s: %w", t.name, op, err)
}

// read reads packets until the batch is full or none is waiting; it returns false (wait
// for readability) only when nothing was read.
func (r *tunReader) read(fd uintptr) bool {
	t := r.t
	for r.got < len(r.bufs) && r.got < len(r.sizes) {
		buf := r.bufs[r.got]
		pkt := buf[r.offset+ethHdrLen:]
		n, err := unix.Read(int(fd), pkt)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return r.got > 0
		case err != nil:
			r.errno = errnoOf(err)
			return true
		}
		var etype uint16
		switch {
		case n == len(pkt) || n == 0: // no room to tell a whole packet from a cut one
			t.rxDropped.Add(1)
			continue
		case pkt[0]>>4 == 4:
			etype = etherTypeIPv4
		case pkt[0]>>4 == 6:
			etype = etherTypeIPv6
		default:
			t.rxDropped.Add(1)
			continue
		}
		eth := buf[r.offset:]
		copy(eth[0:6], t.mac)
		copy(eth[6:12], TUNPeerMAC)
		binary.BigEndian.PutUint16(eth[12:], etype)
		Hdr(buf, r.offset).Clear()
		r.sizes[r.got] = n + ethHdrLen
		r.bytes += uint64(n)
		r.got++
	}
	return true
}

// Read blocks until packets arrive, then reads up to len(bufs) of them, each as an
// Ethernet frame at bufs[i][offset:offset+sizes[i]] with a zero virtio-net header.
func (t *TUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if offset < VnetHdrLen {
		return 0, fmt.Errorf("tun %s: read offset %d < %d", t.name, offset, VnetHdrLen)
	}
	n := min(len(bufs), len(sizes))
	for i := 0; i < n; i++ {
		if len(bufs[i]) <= offset+ethHdrLen {
			return 0, fmt.Errorf("tun %s: read buffer %d of %d bytes, offset %d", t.name, i, len(bufs[i]), offset)
		}
	}
	if n == 0 {
		return 0, nil
	}
	r := &t.rd
	r.bufs, r.sizes, r.offset, r.got, r.bytes, r.errno = bufs[:n], sizes, offset, 0, 0, 0
	err := t.rc.Read(r.fn)
	got, bytes, errno := r.got, r.bytes, r.errno
	r.bufs, r.sizes = nil, nil
	t.rxPackets.Add(uint64(got))
	t.rxBytes.Add(bytes)
	if got > 0 {
		return got, nil
	}
	if err != nil {
		return 0, t.ioError("read", err)
	}
	if errno != 0 {
		return 0, t.ioError("read", errno)
	}
	return 0, nil
}

// write writes w.pkts from w.next on; it returns false (wait for writability) on EAGAIN.
// Packets the kernel refuses are counted and skipped.
func (w *tunWriter) write(fd uintptr) bool {
	t := w.t
	for w.next < len(w.pkts) {
		p := w.pkts[w.next]
		_, err := unix.Write(int(fd), p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err == unix.EBADF:
			w.fatal = unix.EBADF
			return true
		case err != nil:
			t.txErrors.Add(1)
			t.lastTxErrno.Store(uintptr(errnoOf(err)))
		default:
			t.txPackets.Add(1)
			t.txBytes.Add(uint64(len(p)))
		}
		w.next++
	}
	return true
}

// flush hands the queued packets to the kernel.
func (t *TUN) flush() error {
	w := &t.wr
	if len(w.pkts) == 0 {
		return nil
	}
	w.next, w.fatal = 0, 0
	err := t.rc.Write(w.fn)
	clear(w.pkts)
	w.pkts = w.pkts[:0]
	if err != nil {
		return t.ioError("write", err)
	}
	if w.fatal != 0 {
		return t.ioError("write", w.fatal)
	}
	return nil
}

// segment cuts a GSO frame into the scratch segments and queues their IP packets.
func (t *TUN) segment(frame []byte, h VnetHdr) error {
	w := &t.wr
	count, maxLen, err := GSOSegments(frame, h)
	if err != nil {
		return err
	}
	if count > len(w.segs) || (count > 0 && maxLen > len(w.segs[0])) {
		size := maxLen
		if len(w.segs) > 0 {
			size = max(size, len(w.segs[0]))
		}
		w.segs = make([][]byte, max(count, len(w.segs)))
		for i := range w.segs {
			w.segs[i] = make([]byte, size)
		}
		w.segSizes = make([]int, len(w.segs))
	}
	n, err := SegmentTCP(frame, h, w.segs, w.segSizes)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		w.pkts = append(w.pkts, w.segs[i][ethHdrLen:w.segSizes[i]])
	}
	return nil
}

// Write writes the IP packets of the Ethernet frames bufs[i][offset:]. A frame whose
// virtio-net header says NEEDS_CSUM gets its checksum completed in place; a TCP GSO frame
// is segmented in software. Frames that are not IP or whose offload metadata is wrong
// are dropped and counted, as are packets the kernel refuses; Write returns len(bufs)
// unless the port is closed or the device fails.
func (t *TUN) Write(bufs [][]byte, offset int) (int, error) {
	if offset < VnetHdrLen {
		return 0, fmt.Errorf("tun %s: write offset %d < %d", t.name, offset, VnetHdrLen)
	}
	if t.closed.Load() {
		return 0, ErrClosed
	}
	t.txMu.Lock()
	defer t.txMu.Unlock()
	w := &t.wr
	for i, b := range bufs {
		if len(b) <= offset+ethHdrLen {
			t.txDropped.Add(1)
			continue
		}
		frame := b[offset:]
		etype := binary.BigEndian.Uint16(frame[12:])
		if etype != etherTypeIPv4 && etype != etherTypeIPv6 {
			t.txDropped.Add(1)
			continue
		}
		h := Hdr(b, offset)
		switch {
		case h.IsGSO():
			if err := t.flush(); err != nil { // the segments reuse the scratch
				return i, err
			}
			if err := t.segment(frame, h); err != nil {
				t.txDropped.Add(1)
				continue
			}
			t.txSegmented.Add(1)
			if err := t.flush(); err != nil {
				return i, err
			}
			continue
		case h.NeedsCsum():
			if err := CompleteChecksum(frame, h); err != nil {
				t.txDropped.Add(1)
				continue
			}
			t.txChecksummed.Add(1)
		}
		w.pkts = append(w.pkts, frame[ethHdrLen:])
	}
	if err := t.flush(); err != nil {
		return 0, err
	}
	return len(bufs), nil
}

// Close closes the device; a blocked Read returns ErrClosed. A TUN device that is not
// persistent disappears with it.
func (t *TUN) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	if err := t.dev.Close(); err != nil {
		return fmt.Errorf("tun %s: close: %w", t.name, err)
	}
	return nil
}

// Stats returns the port's counters.
func (t *TUN) Stats() TUNStats {
	return TUNStats{
		RxPackets:     t.rxPackets.Load(),
		RxBytes:       t.rxBytes.Load(),
		RxDropped:     t.rxDropped.Load(),
		TxPackets:     t.txPackets.Load(),
		TxBytes:       t.txBytes.Load(),
		TxErrors:      t.txErrors.Load(),
		TxDropped:     t.txDropped.Load(),
		TxSegmented:   t.txSegmented.Load(),
		TxChecksummed: t.txChecksummed.Load(),
		LastTxErrno:   syscall.Errno(t.lastTxErrno.Load()),
	}
}
