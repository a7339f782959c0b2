package port

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Defaults of AFPacketOptions.
const (
	DefaultBatchSize    = 64
	DefaultSocketBuffer = 8 << 20
)

// AFPacketOptions tune an AF_PACKET port. The zero value is a good default.
type AFPacketOptions struct {
	// BatchSize is the most frames one Read returns and one sendmmsg moves (default
	// DefaultBatchSize).
	BatchSize int
	// SocketBuffer is SO_RCVBUF and SO_SNDBUF in bytes, forced past the sysctl limits when
	// the process may (default DefaultSocketBuffer).
	SocketBuffer int
	// QdiscBypass sends frames straight to the driver (PACKET_QDISC_BYPASS).
	QdiscBypass bool
	// FanoutGroup, when not zero, joins the socket to this PACKET_FANOUT group of the
	// interface, so that several ports on one NIC share its receive load.
	FanoutGroup uint16
	// FanoutMode is the PACKET_FANOUT mode; zero is unix.PACKET_FANOUT_HASH (by flow).
	FanoutMode uint16
	// SplitNewFlows takes new TCP flows' first segments (SYN without ACK) through a
	// second, small receive ring, so that a flood of them cannot crowd out the frames of
	// the flows the port carries: see newflow_linux.go. It cannot be had with FanoutGroup.
	SplitNewFlows bool
	// DropKernelRX keeps the kernel's own stack from receiving the interface's frames
	// while the port is open: an IngressDrop drops each one after the port's socket has
	// it. It needs Linux 6.6 (tcx) and CAP_BPF with CAP_NET_ADMIN; where it cannot be had,
	// the port opens all the same, the kernel goes on receiving the frames, and
	// KernelRXDropped says why.
	DropKernelRX bool
}

// AFPacketStats are the counters of an AF_PACKET port.
type AFPacketStats struct {
	RxPackets, RxBytes uint64 // frames returned by Read
	RxTruncated        uint64 // frames dropped because they did not fit the read buffer
	RxOutgoing         uint64 // outgoing frames seen and dropped (kernels without PACKET_IGNORE_OUTGOING)
	RxKernelDrops      uint64 // frames the kernel dropped because the socket buffer was full
	RxNewFlow          uint64 // frames of RxPackets that came through the new-flow ring (SplitNewFlows)
	RxNewFlowDrops     uint64 // new flows' first segments the kernel dropped because the new-flow ring was full
	TxPackets, TxBytes uint64 // frames the kernel accepted
	TxErrors           uint64 // frames the kernel refused; dropped
	LastTxErrno        syscall.Errno
}

// AFPacket is a port on a kernel network interface through two AF_PACKET sockets with
// PACKET_VNET_HDR: frames move in batches (a receive ring, sendmmsg), GSO frames of up to
// 64 KiB arrive whole with their virtio-net header, and frames written with a NEEDS_CSUM or
// GSO header are completed or segmented by the kernel.
//
// Neither socket is registered with the Go runtime's poller: Read and Write block in the
// kernel on the calling thread (the router's loops run on locked OS threads). A receive
// socket takes the interface's frames and memberships into a mapped TPACKET_V2 ring
// (frames longer than a slot, such as GSO frames, into its receive queue); Read copies
// them out of the ring without a system call and, when it is empty, sleeps in ppoll on
// the socket and on an eventfd that Close signals. A send-only socket (protocol 0: it receives nothing) takes Write's sendmmsg, so
// that freeing each sent frame wakes no poller.
//
// Read must be called from one goroutine at a time; Write may be called from several.
type AFPacket struct {
	name   string
	mac    net.HardwareAddr
	mtu    int
	index  int
	batch  int
	closed atomic.Bool

	// fdMu guards the life of the receive sockets and evfd: Read and the control methods
	// hold it shared, Close exclusively to close them.
	fdMu    sync.RWMutex
	main    rxRing  // the receive socket: every frame, or with SplitNewFlows every frame but new flows' first segments
	newFlow *rxRing // with SplitNewFlows, new flows' first segments; else nil
	evfd    int     // eventfd that Close makes readable to wake a Read sleeping in ppoll
	rx      *mmsgScratch
	poll    []unix.PollFd // evfd, then each ring's socket; Read's

	ingress    *IngressDrop // under fdMu; see AFPacketOptions.DropKernelRX
	ingressErr error        // why DropKernelRX is not in effect

	txMu sync.Mutex
	txfd int          // send-only socket, closed under txMu
	tx   *mmsgScratch // Write's, under txMu

	rxPackets, rxBytes, rxTruncated, rxOutgoing, rxKernelDrops atomic.Uint64
	rxNewFlow, rxNewFlowDrops                                  atomic.Uint64
	txPackets, txBytes, txErrors                               atomic.Uint64
	lastTxErrno                                                atomic.Uintptr
}

var (
	_ Port            = (*AFPacket)(nil)
	_ UnicastFilter   = (*AFPacket)(nil)
	_ MulticastFilter = (*AFPacket)(nil)
)

// mmsgScratch is the preallocated argument of one recvmmsg or sendmmsg call: a message per
// frame with two iovecs (virtio-net header, frame) and, to receive, a link-layer address.
type mmsgScratch struct {
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	addrs []unix.RawSockaddrLinklayer
	recv  bool
}

func newMmsgScratch(n int, recv bool) *mmsgScratch {
	s := &mmsgScratch{
		msgs: make([]unix.Mmsghdr, n),
		iovs: make([]unix.Iovec, 2*n),
		recv: recv,
	}
	if recv {
		s.addrs = make([]unix.RawSockaddrLinklayer, n)
	}
	for i := range s.msgs {
		h := &s.msgs[i].Hdr
		h.Iov = &s.iovs[2*i]
		h.SetIovlen(2)
		if recv {
			h.Name = (*byte)(unsafe.Pointer(&s.addrs[i]))
			h.Namelen = unix.SizeofSockaddrLinklayer
		}
	}
	return s
}

// set points message i at the virtio-net header and the frame of buf.
func (s *mmsgScratch) set(i int, buf []byte, offset int) {
	hdr, frame := buf[offset-VnetHdrLen:offset], buf[offset:]
	s.iovs[2*i].Base = &hdr[0]
	s.iovs[2*i].SetLen(VnetHdrLen)
	if len(frame) > 0 {
		s.iovs[2*i+1].Base = &frame[0]
	} else {
		s.iovs[2*i+1].Base = nil
	}
	s.iovs[2*i+1].SetLen(len(frame))
	s.msgs[i].Hdr.Flags = 0
	s.msgs[i].Len = 0
	if s.recv {
		s.msgs[i].Hdr.Namelen = unix.SizeofSockaddrLinklayer
	}
}

// rxRing is a receive socket with its mapped TPACKET_V2 ring.
type rxRing struct {
	fd    int
	ring  []byte // unmapped by Close
	slots int    // len(ring) / rxSlotSize
	slot  int    // the next slot Read looks at; Read's
}

// The main receive ring of a port: rxSlots slots of rxSlotSize bytes, in blocks of
// rxBlockSize. A slot holds a frame of up to about 1950 bytes after its headers; the
// kernel leaves a longer one (a GSO frame) in the socket's receive queue, marked
// TP_STATUS_COPY in its slot, and Read takes it from there with recvmmsg.
const (
	rxSlotSize  = 2048
	rxBlockSize = 1 << 16
	rxSlots     = 2048
	// tpacket2HdrLen is TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): the slot's
	// sockaddr_ll follows it.
	tpacket2HdrLen = (unix.SizeofTpacket2Hdr + 15) &^ 15
	// sllPkttypeOff is the offset of sll_pkttype in a slot.
	sllPkttypeOff = tpacket2HdrLen + 10
)

// OpenAFPacket opens an AF_PACKET port on the interface named device in the calling
// thread's network namespace, and sets the link up if it is down.
func OpenAFPacket(device string, opts AFPacketOptions) (*AFPacket, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.SocketBuffer <= 0 {
		opts.SocketBuffer = DefaultSocketBuffer
	}
	wrap := func(op string, err error) error { return fmt.Errorf("afpacket %s: %s: %w", device, op, err) }

	ifi, err := net.InterfaceByName(device)
	if err != nil {
		return nil, wrap("lookup", err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		if err := setLinkUp(device); err != nil {
			return nil, wrap("set link up", err)
		}
	}
	p := &AFPacket{
		name:  device,
		mac:   ifi.HardwareAddr,
		mtu:   ifi.MTU,
		index: ifi.Index,
		batch: opts.BatchSize,
		main:  rxRing{fd: -1},
		evfd:  -1,
		txfd:  -1,
		rx:    newMmsgScratch(opts.BatchSize, true),
		tx:    newMmsgScratch(opts.BatchSize, false),
	}
	if opts.SplitNewFlows && opts.FanoutGroup != 0 {
		return nil, wrap("options", fmt.Errorf("SplitNewFlows needs a fanout group of its own, not group %d", opts.FanoutGroup))
	}
	if p.main, err = openRxSocket(ifi.Index, opts, rxSlots); err != nil {
		return nil, wrap("receive socket", err)
	}
	if opts.SplitNewFlows {
		if err := p.splitNewFlows(ifi.Index, opts); err != nil {
			p.closeFDs()
			return nil, wrap("new-flow ring", err)
		}
	}
	if p.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		p.closeFDs()
		return nil, wrap("eventfd", err)
	}
	if p.txfd, err = openTxSocket(ifi.Index, opts); err != nil {
		p.closeFDs()
		return nil, wrap("send socket", err)
	}
	p.poll = []unix.PollFd{{Fd: int32(p.evfd), Events: unix.POLLIN}, {Fd: int32(p.main.fd), Events: unix.POLLIN}}
	if p.newFlow != nil {
		p.poll = append(p.poll, unix.PollFd{Fd: int32(p.newFlow.fd), Events: unix.POLLIN})
	}
	if opts.DropKernelRX {
		// The interface index is resolved in the calling thread's namespace: the port's.
		if p.ingress, err = AttachIngressDrop(ifi.Index); err != nil {
			p.ingressErr = wrap("drop kernel receive", err)
		}
	}
	return p, nil
}

// closeFDs closes the descriptors that are open.
func (p *AFPacket) closeFDs() error {
	err := p.main.close()
	if p.newFlow != nil {
		if e := p.newFlow.close(); e != nil && err == nil {
			err = e
		}
	}
	for _, fd := range []*int{&p.evfd, &p.txfd} {
		if *fd >= 0 {
			if e := unix.Close(*fd); e != nil && err == nil {
				err = e
			}
			*fd = -1
		}
	}
	if e := p.ingress.Close(); e != nil && err == nil {
		err = e
	}
	p.ingress = nil
	return err
}

// KernelRXDropped tells whether the kernel's own stack is kept from receiving the
// interface's frames (AFPacketOptions.DropKernelRX), and if it was asked for but is not,
// why.
func (p *AFPacket) KernelRXDropped() (bool, error) {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	return p.ingress != nil, p.ingressErr
}

// close unmaps the ring and closes the socket, if they are open.
func (r *rxRing) close() error {
	var err error
	if r.ring != nil {
		err = unix.Munmap(r.ring)
		r.ring = nil
	}
	if r.fd >= 0 {
		if e := unix.Close(r.fd); e != nil && err == nil {
			err = e
		}
		r.fd = -1
	}
	return err
}

// openRxSocket opens a receive socket of a port: an AF_PACKET socket of every protocol
// bound to the interface, with PACKET_VNET_HDR and a TPACKET_V2 receive ring of slots
// slots, which it maps. It is created with protocol 0 and given ETH_P_ALL at bind, so
// that it never sees another interface's frames.
func openRxSocket(ifindex int, opts AFPacketOptions, slots int) (rxRing, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return rxRing{fd: -1}, fmt.Errorf("socket: %w", err)
	}
	var ring []byte
	fail := func(op string, err error) (rxRing, error) {
		if ring != nil {
			unix.Munmap(ring)
		}
		unix.Close(fd)
		return rxRing{fd: -1}, fmt.Errorf("%s: %w", op, err)
	}
	// The virtio-net header and the version come before the ring.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("PACKET_VNET_HDR", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("PACKET_VERSION", err)
	}
	// Any frame longer than a slot goes to the receive queue whole (TP_STATUS_COPY).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
		return fail("PACKET_COPY_THRESH", err)
	}
	req := unix.TpacketReq{Block_size: rxBlockSize, Block_nr: uint32(slots * rxSlotSize / rxBlockSize),
		Frame_size: rxSlotSize, Frame_nr: uint32(slots)}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail("PACKET_RX_RING", err)
	}
	if ring, err = unix.Mmap(fd, 0, slots*rxSlotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("mmap receive ring", err)
	}
	// Without PACKET_IGNORE_OUTGOING (Linux < 4.20) Read drops PACKET_OUTGOING frames.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil && err != unix.ENOPROTOOPT {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	if err := setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, opts.SocketBuffer); err != nil {
		return fail("SO_RCVBUF", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	if opts.FanoutGroup != 0 {
		v := int(opts.FanoutGroup) | int(opts.FanoutMode)<<16
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, v); err != nil {
			return fail(fmt.Sprintf("PACKET_FANOUT group %d mode %d", opts.FanoutGroup, opts.FanoutMode), err)
		}
	}
	return rxRing{fd: fd, ring: ring, slots: slots}, nil
}

// htons converts a 16-bit value from host to network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// sendTimeout bounds how long a sendmmsg blocks on a full send buffer (SO_SNDTIMEO);
// past it Write drops the rest of the batch.
const sendTimeout = 100 * time.Millisecond

// openTxSocket opens the send-only socket of a port: an AF_PACKET socket bound to the
// interface with protocol 0, so that it receives nothing, with PACKET_VNET_HDR. It is a
// plain blocking file descriptor that the Go runtime's poller never registers: freeing a
// sent frame wakes no one (sock_wfree finds no sleeper), and sendmmsg runs on the calling
// thread.
func openTxSocket(ifindex int, opts AFPacketOptions) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("PACKET_VNET_HDR", err)
	}
	if opts.QdiscBypass {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fail("PACKET_QDISC_BYPASS", err)
		}
	}
	if err := setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, opts.SocketBuffer); err != nil {
		return fail("SO_SNDBUF", err)
	}
	tv := unix.NsecToTimeval(int64(sendTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fail("SO_SNDTIMEO", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	return fd, nil
}

// setBuffer sets a socket buffer size with the FORCE option, past the sysctl limits, or
// without CAP_NET_ADMIN with the plain option, capped by net.core.*mem_max.
func setBuffer(fd, force, plain, size int) error {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) == nil {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size); err != nil {
		return fmt.Errorf("socket buffer %d: %w", size, err)
	}
	return nil
}

func (p *AFPacket) Name() string                   { return p.name }
func (p *AFPacket) HardwareAddr() net.HardwareAddr { return p.mac }
func (p *AFPacket) MTU() int                       { return p.mtu }
func (p *AFPacket) Layer3() bool                   { return false }
func (p *AFPacket) BatchSize() int                 { return p.batch }

// ioError turns an error of a syscall into ErrClosed after Close, or wraps it with the
// operation and the device.
func (p *AFPacket) ioError(op string, err error) error {
	if p.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("afpacket %s: %s: %w", p.name, op, err)
}

// Read blocks until frames arrive, then reads up to min(len(bufs), BatchSize) of them
// from the receive ring: frame i into bufs[i][offset:offset+sizes[i]], its virtio-net header
// into bufs[i][offset-VnetHdrLen:offset]. Frames that do not fit their buffer are dropped
// and counted. Every bufs[i] must be longer than offset, and offset at least VnetHdrLen.
// It blocks the calling OS thread, not only the goroutine; after Close it returns
// ErrClosed. The link going down does not end it: Read waits for the link to come back.
func (p *AFPacket) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := min(len(bufs), len(sizes), p.batch)
	if n == 0 {
		return 0, nil
	}
	if offset < VnetHdrLen {
		return 0, fmt.Errorf("afpacket %s: read offset %d < %d", p.name, offset, VnetHdrLen)
	}
	for i := 0; i < n; i++ {
		if len(bufs[i]) <= offset {
			return 0, fmt.Errorf("afpacket %s: read buffer %d of %d bytes, offset %d", p.name, i, len(bufs[i]), offset)
		}
	}
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	for {
		if p.closed.Load() {
			return 0, ErrClosed
		}
		got, err := p.readRings(bufs[:n], sizes, offset)
		if err != nil {
			return 0, err
		}
		if got > 0 {
			return got, nil
		}
		if p.main.ready() || p.newFlow != nil && p.newFlow.ready() {
			// Slots were taken but every frame in them dropped: look again.
			continue
		}
		if err := p.wait(); err != nil {
			return 0, err
		}
	}
}

// readRings fills bufs from the main ring and, with SplitNewFlows, from the new-flow ring,
// which gets one frame in NewFlowShare of bufs when the main ring is busy and the room
// left when it is not. The caller holds fdMu shared.
func (p *AFPacket) readRings(bufs [][]byte, sizes []int, offset int) (int, error) {
	if p.newFlow == nil {
		return p.readRing(&p.main, bufs, sizes, offset)
	}
	n := len(bufs)
	got, err := p.readRing(&p.main, bufs[:n-n/NewFlowShare], sizes, offset)
	if err != nil {
		return 0, err
	}
	nf, err := p.readRing(p.newFlow, bufs[got:], sizes[got:], offset)
	if err != nil {
		return 0, err
	}
	p.rxNewFlow.Add(uint64(nf))
	got += nf
	more, err := p.readRing(&p.main, bufs[got:], sizes[got:], offset)
	return got + more, err
}

// status returns the tp_status of slot i, which the kernel writes.
func (r *rxRing) status(i int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.ring[i*rxSlotSize])))
}

// ready tells whether the ring's next slot holds a frame.
func (r *rxRing) ready() bool { return r.status(r.slot)&unix.TP_STATUS_USER != 0 }

// readRing takes the frames of the ring's ready slots, in order, into bufs, and gives
// each slot back to the kernel. It stops at the first slot the kernel owns or when bufs
// are full. A slot marked TP_STATUS_COPY holds the head of a frame longer than a slot,
// which readRing takes whole from the socket's receive queue. The caller holds fdMu
// shared.
func (p *AFPacket) readRing(r *rxRing, bufs [][]byte, sizes []int, offset int) (int, error) {
	got := 0
	var bytes uint64
	for got < len(bufs) {
		status := r.status(r.slot)
		if status&unix.TP_STATUS_USER == 0 {
			break
		}
		h := r.ring[r.slot*rxSlotSize : (r.slot+1)*rxSlotSize]
		size, err := p.takeSlot(r.fd, h, status, bufs[got], offset)
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&h[0])), unix.TP_STATUS_KERNEL)
		r.slot = (r.slot + 1) % r.slots
		if err != nil {
			return 0, err
		}
		if size < 0 {
			continue
		}
		sizes[got] = size
		bytes += uint64(size)
		got++
	}
	if got > 0 {
		p.rxPackets.Add(uint64(got))
		p.rxBytes.Add(bytes)
	}
	return got, nil
}

// takeSlot copies the frame of ring slot h, with its virtio-net header, into
// buf[offset-VnetHdrLen:], and returns its size, or -1 for a frame it dropped and counted.
func (p *AFPacket) takeSlot(fd int, h []byte, status uint32, buf []byte, offset int) (int, error) {
	if h[sllPkttypeOff] == unix.PACKET_OUTGOING {
		p.rxOutgoing.Add(1)
		if status&unix.TP_STATUS_COPY != 0 {
			// Its whole copy waits in the receive queue: take it out of the way.
			if _, err := p.recvQueued(fd, buf, offset); err != nil {
				return 0, err
			}
		}
		return -1, nil
	}
	if status&unix.TP_STATUS_COPY != 0 {
		return p.recvQueued(fd, buf, offset)
	}
	hdr := (*unix.Tpacket2Hdr)(unsafe.Pointer(&h[0]))
	mac, snap := int(hdr.Mac), int(hdr.Snaplen)
	if mac < VnetHdrLen || mac+snap > len(h) || snap > len(buf)-offset || int(hdr.Len) != snap {
		p.rxTruncated.Add(1)
		return -1, nil
	}
	copy(buf[offset-VnetHdrLen:offset+snap], h[mac-VnetHdrLen:mac+snap])
	return snap, nil
}

// recvQueued reads the frame the kernel queued for a TP_STATUS_COPY slot into
// buf[offset-VnetHdrLen:] with recvmmsg, and returns its size, or -1 when it was dropped
// and counted (no longer queued, or too long for buf).
func (p *AFPacket) recvQueued(fd int, buf []byte, offset int) (int, error) {
	s := p.rx
	for {
		s.set(0, buf, offset)
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.msgs[0])), 1,
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENETDOWN:
			p.rxTruncated.Add(1)
			return -1, nil
		default:
			return 0, p.ioError("recvmmsg", e)
		}
		m := &s.msgs[0]
		if r != 1 || m.Hdr.Flags&unix.MSG_TRUNC != 0 || m.Len < VnetHdrLen {
			p.rxTruncated.Add(1)
			return -1, nil
		}
		return int(m.Len) - VnetHdrLen, nil
	}
}

// wait sleeps in ppoll until a receive socket is readable (or has an error to report)
// or Close signals the eventfd. The caller holds fdMu shared.
func (p *AFPacket) wait() error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&p.poll[0])), uintptr(len(p.poll)), 0, 0, 0, 0)
		switch e {
		case 0:
			if p.poll[0].Revents != 0 || p.closed.Load() {
				return ErrClosed
			}
			return nil
		case unix.EINTR:
			continue
		default:
			return p.ioError("ppoll", e)
		}
	}
}

// Write sends the frames bufs[i][offset:], each with the virtio-net header before it, in
// batches of BatchSize with sendmmsg. Frames with NEEDS_CSUM or GSO headers are completed
// or segmented by the kernel. A frame the kernel refuses (too long, bad header, link
// down) is dropped and counted in TxErrors; Write returns len(bufs) unless the port is
// closed or the socket fails.
func (p *AFPacket) Write(bufs [][]byte, offset int) (int, error) {
	if offset < VnetHdrLen {
		return 0, fmt.Errorf("afpacket %s: write offset %d < %d", p.name, offset, VnetHdrLen)
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.closed.Load() {
		return 0, ErrClosed
	}
	s := p.tx
	sent := 0
	for sent < len(bufs) {
		n := min(len(bufs)-sent, p.batch)
		for i := 0; i < n; i++ {
			if len(bufs[sent+i]) < offset {
				// Not a frame at all: drop it here, send the ones before it.
				n = i
				break
			}
			s.set(i, bufs[sent+i], offset)
		}
		if n == 0 {
			p.txErrors.Add(1)
			p.lastTxErrno.Store(uintptr(unix.EINVAL))
			sent++
			continue
		}
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(p.txfd), uintptr(unsafe.Pointer(&s.msgs[0])), uintptr(n), 0, 0, 0)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// The send buffer stayed full for sendTimeout: drop the rest.
			p.txErrors.Add(uint64(len(bufs) - sent))
			p.lastTxErrno.Store(uintptr(e))
			return len(bufs), nil
		case unix.EBADF:
			return sent, p.ioError("sendmmsg", e)
		default:
			// sendmmsg reports an error only for its first message.
			p.txErrors.Add(1)
			p.lastTxErrno.Store(uintptr(e))
			sent++
			continue
		}
		done := int(r)
		var bytes uint64
		for i := 0; i < done; i++ {
			bytes += uint64(len(bufs[sent+i]) - offset)
		}
		p.txPackets.Add(uint64(done))
		p.txBytes.Add(bytes)
		sent += done
	}
	return sent, nil
}

// Close closes the sockets; a blocked Read returns ErrClosed, and so do Read and Write
// afterwards. A Write in progress finishes first.
func (p *AFPacket) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	one := [8]byte{1}
	if _, err := unix.Write(p.evfd, one[:]); err != nil {
		return fmt.Errorf("afpacket %s: close: wake the reader: %w", p.name, err)
	}
	// The descriptors are closed only when no call uses them, so that none is reused
	// under it.
	p.fdMu.Lock()
	p.txMu.Lock()
	err := p.closeFDs()
	p.txMu.Unlock()
	p.fdMu.Unlock()
	if err != nil {
		return fmt.Errorf("afpacket %s: close: %w", p.name, err)
	}
	return nil
}

// membership adds or drops a PACKET_MR_UNICAST or PACKET_MR_MULTICAST membership.
func (p *AFPacket) membership(what string, typ uint16, add bool, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("afpacket %s: %s %v: not a 6-byte MAC address", p.name, what, mac)
	}
	if (mac[0]&1 == 1) != (typ == unix.PACKET_MR_MULTICAST) {
		return fmt.Errorf("afpacket %s: %s %v: wrong kind of address", p.name, what, mac)
	}
	mreq := unix.PacketMreq{Ifindex: int32(p.index), Type: typ, Alen: 6}
	copy(mreq.Address[:], mac)
	opt := unix.PACKET_DROP_MEMBERSHIP
	if add {
		opt = unix.PACKET_ADD_MEMBERSHIP
	}
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.closed.Load() {
		return ErrClosed
	}
	if err := unix.SetsockoptPacketMreq(p.main.fd, unix.SOL_PACKET, opt, &mreq); err != nil {
		return fmt.Errorf("afpacket %s: %s %v: %w", p.name, what, mac, err)
	}
	return nil
}

// AddUnicast makes the NIC pass frames for mac (a PACKET_MR_UNICAST membership), e.g. a
// VRRP virtual MAC, without promiscuous mode.
func (p *AFPacket) AddUnicast(mac net.HardwareAddr) error {
	return p.membership("add unicast", unix.PACKET_MR_UNICAST, true, mac)
}

// RemoveUnicast drops a membership added by AddUnicast.
func (p *AFPacket) RemoveUnicast(mac net.HardwareAddr) error {
	return p.membership("remove unicast", unix.PACKET_MR_UNICAST, false, mac)
}

// AddMulticast joins the Ethernet multicast group mac (PACKET_MR_MULTICAST).
func (p *AFPacket) AddMulticast(mac net.HardwareAddr) error {
	return p.membership("add multicast", unix.PACKET_MR_MULTICAST, true, mac)
}

// RemoveMulticast leaves a group joined with AddMulticast.
func (p *AFPacket) RemoveMulticast(mac net.HardwareAddr) error {
	return p.membership("remove multicast", unix.PACKET_MR_MULTICAST, false, mac)
}

// Stats returns the port's counters. It also collects the kernel's drop count
// (PACKET_STATISTICS), so it belongs to the control plane, not the per-packet path.
func (p *AFPacket) Stats() AFPacketStats {
	p.fdMu.RLock()
	if !p.closed.Load() {
		// Reading the kernel's counters resets them.
		if ks, err := unix.GetsockoptTpacketStats(p.main.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			p.rxKernelDrops.Add(uint64(ks.Drops))
		}
		if p.newFlow != nil {
			if ks, err := unix.GetsockoptTpacketStats(p.newFlow.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
				p.rxNewFlowDrops.Add(uint64(ks.Drops))
			}
		}
	}
	p.fdMu.RUnlock()
	return AFPacketStats{
		RxPackets:      p.rxPackets.Load(),
		RxBytes:        p.rxBytes.Load(),
		RxTruncated:    p.rxTruncated.Load(),
		RxOutgoing:     p.rxOutgoing.Load(),
		RxKernelDrops:  p.rxKernelDrops.Load(),
		RxNewFlow:      p.rxNewFlow.Load(),
		RxNewFlowDrops: p.rxNewFlowDrops.Load(),
		TxPackets:      p.txPackets.Load(),
		TxBytes:        p.txBytes.Load(),
		TxErrors:       p.txErrors.Load(),
		LastTxErrno:    syscall.Errno(p.lastTxErrno.Load()),
	}
}
