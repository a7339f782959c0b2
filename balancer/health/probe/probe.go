// Package probe is the health checks' client on the router's own addresses: pings,
// TCP handshakes and UDP exchanges that the router crafts and answers itself, with no
// kernel socket involved (as BalanceNG does). The router sends what the Client builds
// through a Wire and hands it the answers its data plane receives.
package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ulb/balancer/health"
	"ulb/router/header"
)

// Errors of the probes; they wrap the health package's, so checks read them as such.
var (
	ErrRefused         = fmt.Errorf("%w (RST)", health.ErrRefused)
	ErrPortUnreachable = health.ErrUnreachable
	ErrTimeout         = errors.New("no answer")
	ErrPingTimeout     = errors.New("no echo reply")
)

// Local ports the probes use (the router's masquerade ports lie below).
const (
	PortLo = 40000
	PortHi = 59999
)

// Wire is the router's side of the client.
type Wire interface {
	// Source returns the router's address that a packet to dst leaves from, and the
	// MTU of that way.
	Source(dst netip.Addr) (src netip.Addr, mtu int, err error)
	// Send sends an IP packet the router originates; ip is only valid during the call.
	Send(ip []byte)
}

// key identifies the answers a probe waits for: from remote to the router's local port.
type key struct {
	remote netip.AddrPort
	local  uint16
	proto  uint8
}

// answer is what the data plane hands to a waiting probe.
type answer struct {
	flags       uint8 // TCP: the answer's flags
	seq, ack    uint32
	unreachable bool // an ICMP error about the probe
	n           int  // UDP: payload bytes copied
}

type wait struct {
	done chan answer
	buf  []byte // UDP: where the answer's payload goes
}

// Client keeps the probes in flight.
type Client struct {
	wire    Wire
	next    atomic.Uint32
	ident   atomic.Uint32
	mu      sync.Mutex
	waiting map[key]*wait
	pings   map[uint16]chan struct{}
}

var _ health.Prober = (*Client)(nil)

// New makes a client over the router's wire.
func New(w Wire) *Client {
	return &Client{wire: w, waiting: map[key]*wait{}, pings: map[uint16]chan struct{}{}}
}

func (c *Client) register(remote netip.AddrPort, proto uint8, buf []byte) (key, *wait) {
	w := &wait{done: make(chan answer, 1), buf: buf}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		local := uint16(PortLo + c.next.Add(1)%(PortHi-PortLo+1))
		k := key{remote: remote, local: local, proto: proto}
		if _, busy := c.waiting[k]; !busy {
			c.waiting[k] = w
			return k, w
		}
	}
}

func (c *Client) unregister(k key) {
	c.mu.Lock()
	delete(c.waiting, k)
	c.mu.Unlock()
}

// deliver hands an answer to its probe, copying payload for UDP; false when no probe
// waits for it.
func (c *Client) deliver(k key, a answer, payload []byte) bool {
	c.mu.Lock()
	w, ok := c.waiting[k]
	if ok && payload != nil {
		a.n = copy(w.buf, payload)
	}
	c.mu.Unlock()
	if ok {
		select {
		case w.done <- a:
		default:
		}
	}
	return ok
}

// TCPAnswer takes a TCP segment from remote to the router's port local; it reports
// whether a probe waited for it.
func (c *Client) TCPAnswer(remote netip.AddrPort, local uint16, flags uint8, seq, ack uint32) bool {
	return c.deliver(key{remote, local, header.ProtocolTCP}, answer{flags: flags, seq: seq, ack: ack}, nil)
}

// UDPAnswer takes a UDP datagram from remote to the router's port local.
func (c *Client) UDPAnswer(remote netip.AddrPort, local uint16, payload []byte) bool {
	return c.deliver(key{remote, local, header.ProtocolUDP}, answer{}, payload)
}

// Unreachable takes an ICMP destination unreachable about a packet the router sent from
// its port local to remote.
func (c *Client) Unreachable(proto uint8, remote netip.AddrPort, local uint16) bool {
	return c.deliver(key{remote, local, proto}, answer{unreachable: true}, nil)
}

// EchoReply takes an echo reply with ident; it reports whether a Ping waited for it.
func (c *Client) EchoReply(ident uint16) bool {
	c.mu.Lock()
	done, ok := c.pings[ident]
	c.mu.Unlock()
	if ok {
		select {
		case done <- struct{}{}:
		default:
		}
	}
	return ok
}

// Ping sends one echo request to dst and waits for the reply until ctx ends. It returns
// the round-trip time, or ErrPingTimeout.
func (c *Client) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	dst = dst.Unmap()
	src, _, err := c.wire.Source(dst)
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", dst, err)
	}
	id := uint16(c.ident.Add(1))
	done := make(chan struct{}, 1)
	c.mu.Lock()
	c.pings[id] = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pings, id)
		c.mu.Unlock()
	}()
	var buf [header.IPv6MinimumSize + header.ICMPv6MinimumSize + 16]byte
	n := header.BuildEchoRequest(buf[:], src, dst, id, 1, 16)
	start := time.Now()
	c.wire.Send(buf[:n])
	select {
	case <-done:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("ping %s: %w", dst, ErrPingTimeout)
	}
}

// TCPConnect checks that dst accepts TCP connections with a handshake the router
// crafts: SYN, then SYN-ACK answered by a RST. It returns the round-trip time,
// ErrRefused on a RST, ErrPortUnreachable on an ICMP error, or ErrTimeout.
func (c *Client) TCPConnect(ctx context.Context, dst netip.AddrPort) (time.Duration, error) {
	src, mtu, err := c.wire.Source(dst.Addr())
	if err != nil {
		return 0, fmt.Errorf("tcp %s: %w", dst, err)
	}
	k, w := c.register(dst, header.ProtocolTCP, nil)
	defer c.unregister(k)
	seq := rand.Uint32()
	mss := uint16(mtu - 40)
	if dst.Addr().Is6() {
		mss = uint16(mtu - 60)
	}
	var buf [header.IPv6MinimumSize + header.TCPMinimumSize + 4]byte
	n := header.BuildTCPSegment(buf[:], src, dst.Addr(), header.TCPFields{SrcPort: k.local, DstPort: dst.Port(),
		Seq: seq, Flags: header.TCPFlagSYN, Window: 65535}, mss)
	start := time.Now()
	c.wire.Send(buf[:n])
	select {
	case a := <-w.done:
		rtt := time.Since(start)
		switch {
		case a.unreachable:
			return 0, fmt.Errorf("tcp %s: %w", dst, ErrPortUnreachable)
		case a.flags&header.TCPFlagRST != 0:
			return 0, fmt.Errorf("tcp %s: %w", dst, ErrRefused)
		case a.flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN|header.TCPFlagACK && a.ack == seq+1:
			// Close the half-open connection at once.
			n := header.BuildTCPSegment(buf[:], src, dst.Addr(), header.TCPFields{SrcPort: k.local, DstPort: dst.Port(),
				Seq: a.ack, Flags: header.TCPFlagRST, Window: 65535}, 0)
			c.wire.Send(buf[:n])
			return rtt, nil
		default:
			return 0, fmt.Errorf("tcp %s: unexpected answer (flags %#x)", dst, a.flags)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("tcp %s: %w", dst, ErrTimeout)
	}
}

// UDPExchange sends req to dst and waits for a datagram back, copied into resp. It
// returns the answer's length and the round-trip time, ErrPortUnreachable on an ICMP
// port unreachable, or ErrTimeout.
func (c *Client) UDPExchange(ctx context.Context, dst netip.AddrPort, req, resp []byte) (int, time.Duration, error) {
	src, mtu, err := c.wire.Source(dst.Addr())
	if err != nil {
		return 0, 0, fmt.Errorf("udp %s: %w", dst, err)
	}
	if len(req) > mtu-header.IPv6MinimumSize-header.UDPMinimumSize {
		return 0, 0, fmt.Errorf("udp %s: request of %d bytes is larger than the path allows", dst, len(req))
	}
	k, w := c.register(dst, header.ProtocolUDP, resp)
	defer c.unregister(k)
	buf := make([]byte, header.IPv6MinimumSize+header.UDPMinimumSize+len(req))
	n := header.BuildUDPDatagram(buf, src, dst.Addr(), k.local, dst.Port(), req)
	start := time.Now()
	c.wire.Send(buf[:n])
	select {
	case a := <-w.done:
		if a.unreachable {
			return 0, 0, fmt.Errorf("udp %s: %w", dst, ErrPortUnreachable)
		}
		return a.n, time.Since(start), nil
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("udp %s: %w", dst, ErrTimeout)
	}
}
