// Package porttest provides an in-memory pair of ports, so that the router can be tested
// without root, NICs or network namespaces.
package porttest

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"ulb/router/port"
)

// QueueLen is the number of frames a Port holds before frames written to it are dropped.
const QueueLen = 1024

// BatchSize is the BatchSize of a Port.
const BatchSize = 64

// vlanLen allows one 802.1Q tag on a frame of MTU bytes.
const vlanLen = 4

// frame is one queued frame: its virtio-net header followed by the Ethernet frame.
type frame []byte

// Stats are a Port's counters.
type Stats struct {
	RxPackets, RxBytes uint64 // frames read
	TxPackets, TxBytes uint64 // frames written and queued at the peer
	QueueDrops         uint64 // frames written while the peer's queue was full or closed
	Oversize           uint64 // frames written larger than the MTU allows (and not GSO)
	Runts              uint64 // frames written shorter than an Ethernet header
	Truncated          uint64 // frames read that did not fit the reader's buffer
}

// Port is one end of an in-memory link. Frames written on it are copied, with their
// virtio-net header, into its peer's bounded queue and read from there. It implements
// port.Port, port.UnicastFilter and port.MulticastFilter; the filters only record the
// memberships (see Unicast and Multicast), frames are not filtered.
type Port struct {
	name string
	mac  net.HardwareAddr
	mtu  int
	peer *Port

	queue     chan frame
	done      chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	unicast   []net.HardwareAddr
	multicast []net.HardwareAddr

	rxPackets, rxBytes, txPackets, txBytes atomic.Uint64
	queueDrops, oversize, runts, truncated atomic.Uint64
}

var (
	_ port.Port            = (*Port)(nil)
	_ port.UnicastFilter   = (*Port)(nil)
	_ port.MulticastFilter = (*Port)(nil)
)

// NewPair returns two connected ports with the given MAC addresses and MTU, named
// "porttest-a" and "porttest-b".
func NewPair(macA, macB net.HardwareAddr, mtu int) (a, b *Port) {
	a = newPort("porttest-a", macA, mtu)
	b = newPort("porttest-b", macB, mtu)
	a.peer, b.peer = b, a
	return a, b
}

func newPort(name string, mac net.HardwareAddr, mtu int) *Port {
	return &Port{
		name:  name,
		mac:   slices.Clone(mac),
		mtu:   mtu,
		queue: make(chan frame, QueueLen),
		done:  make(chan struct{}),
	}
}

func (p *Port) Name() string                   { return p.name }
func (p *Port) HardwareAddr() net.HardwareAddr { return p.mac }
func (p *Port) MTU() int                       { return p.mtu }
func (p *Port) Layer3() bool                   { return false }
func (p *Port) BatchSize() int                 { return BatchSize }

// Read blocks until at least one frame is queued, then returns up to len(bufs) frames. It
// returns port.ErrClosed once the port is closed. A frame that does not fit its buffer is
// dropped and counted as Truncated.
func (p *Port) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if offset < port.VnetHdrLen {
		return 0, fmt.Errorf("porttest %s: read offset %d < %d", p.name, offset, port.VnetHdrLen)
	}
	if len(bufs) == 0 || len(sizes) == 0 {
		return 0, nil
	}
	n := 0
	for n == 0 {
		var f frame
		select {
		case <-p.done:
			return 0, port.ErrClosed
		case f = <-p.queue:
		}
		n = p.deliver(bufs, sizes, offset, n, f)
	drain:
		for n < len(bufs) && n < len(sizes) {
			select {
			case f = <-p.queue:
				n = p.deliver(bufs, sizes, offset, n, f)
			default:
				break drain
			}
		}
	}
	return n, nil
}

// deliver copies f into bufs[n] and returns the new frame count.
func (p *Port) deliver(bufs [][]byte, sizes []int, offset, n int, f frame) int {
	body := f[port.VnetHdrLen:]
	if len(bufs[n]) < offset+len(body) {
		p.truncated.Add(1)
		return n
	}
	copy(bufs[n][offset-port.VnetHdrLen:], f)
	sizes[n] = len(body)
	p.rxPackets.Add(1)
	p.rxBytes.Add(uint64(len(body)))
	return n + 1
}

// Write copies each frame bufs[i][offset:], with its virtio-net header, to the peer's
// queue. Frames that do not fit the queue, runts and frames larger than the MTU (unless
// GSO) are dropped and counted. It returns len(bufs), or port.ErrClosed after Close.
func (p *Port) Write(bufs [][]byte, offset int) (int, error) {
	if offset < port.VnetHdrLen {
		return 0, fmt.Errorf("porttest %s: write offset %d < %d", p.name, offset, port.VnetHdrLen)
	}
	select {
	case <-p.done:
		return 0, port.ErrClosed
	default:
	}
	for _, b := range bufs {
		if len(b) < offset+14 {
			p.runts.Add(1)
			continue
		}
		body := b[offset:]
		h := port.Hdr(b, offset)
		if (!h.IsGSO() && len(body) > p.mtu+14+vlanLen) || len(body) > port.MaxFrame {
			p.oversize.Add(1)
			continue
		}
		f := frame(slices.Clone(b[offset-port.VnetHdrLen:]))
		select {
		case <-p.peer.done:
			p.queueDrops.Add(1)
			continue
		default:
		}
		select {
		case p.peer.queue <- f:
			p.txPackets.Add(1)
			p.txBytes.Add(uint64(len(body)))
		default:
			p.queueDrops.Add(1)
		}
	}
	return len(bufs), nil
}

// Close makes Read and Write return port.ErrClosed; a blocked Read returns at once. Frames
// written by the peer afterwards are dropped.
func (p *Port) Close() error {
	p.closeOnce.Do(func() { close(p.done) })
	return nil
}

// AddUnicast records a unicast MAC membership.
func (p *Port) AddUnicast(mac net.HardwareAddr) error {
	return p.add(&p.unicast, mac, false)
}

// RemoveUnicast removes a recorded unicast MAC membership.
func (p *Port) RemoveUnicast(mac net.HardwareAddr) error {
	return p.remove(&p.unicast, mac)
}

// AddMulticast records a multicast group membership.
func (p *Port) AddMulticast(mac net.HardwareAddr) error {
	return p.add(&p.multicast, mac, true)
}

// RemoveMulticast removes a recorded multicast group membership.
func (p *Port) RemoveMulticast(mac net.HardwareAddr) error {
	return p.remove(&p.multicast, mac)
}

func (p *Port) add(list *[]net.HardwareAddr, mac net.HardwareAddr, multicast bool) error {
	if len(mac) != 6 || (mac[0]&1 == 1) != multicast {
		return fmt.Errorf("porttest %s: bad membership address %v", p.name, mac)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Like the kernel, a membership added twice is kept once.
	if !slices.ContainsFunc(*list, func(m net.HardwareAddr) bool { return string(m) == string(mac) }) {
		*list = append(*list, slices.Clone(mac))
	}
	return nil
}

func (p *Port) remove(list *[]net.HardwareAddr, mac net.HardwareAddr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(*list, func(m net.HardwareAddr) bool { return string(m) == string(mac) })
	if i < 0 {
		return fmt.Errorf("porttest %s: no membership for %v", p.name, mac)
	}
	*list = slices.Delete(*list, i, i+1)
	return nil
}

// Unicast returns the recorded unicast memberships, in the order they were added.
func (p *Port) Unicast() []net.HardwareAddr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.unicast)
}

// Multicast returns the recorded multicast memberships, in the order they were added.
func (p *Port) Multicast() []net.HardwareAddr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.multicast)
}

// Queued returns the number of frames waiting to be read.
func (p *Port) Queued() int { return len(p.queue) }

// Stats returns the port's counters.
func (p *Port) Stats() Stats {
	return Stats{
		RxPackets:  p.rxPackets.Load(),
		RxBytes:    p.rxBytes.Load(),
		TxPackets:  p.txPackets.Load(),
		TxBytes:    p.txBytes.Load(),
		QueueDrops: p.queueDrops.Load(),
		Oversize:   p.oversize.Load(),
		Runts:      p.runts.Load(),
		Truncated:  p.truncated.Load(),
	}
}
