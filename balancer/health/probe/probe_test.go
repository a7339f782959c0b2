package probe

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"ulb/balancer/health"
	"ulb/router/header"
)

var (
	router4 = netip.MustParseAddr("192.0.2.1")
	server4 = netip.MustParseAddr("192.0.2.80")
	router6 = netip.MustParseAddr("2001:db8::1")
	server6 = netip.MustParseAddr("2001:db8::80")
)

// peer is a Wire whose far end answers as answer says, from another goroutine, as the
// router's data plane would hand the answers over.
type peer struct {
	c      *Client
	answer func(c *Client, ip []byte)
	sent   chan []byte
}

func (p *peer) Source(dst netip.Addr) (netip.Addr, int, error) {
	if dst.Is4() {
		return router4, 1500, nil
	}
	return router6, 1500, nil
}

func (p *peer) Send(ip []byte) {
	b := append([]byte(nil), ip...)
	p.sent <- b
	go p.answer(p.c, b)
}

func newPeer(answer func(c *Client, ip []byte)) *peer {
	p := &peer{answer: answer, sent: make(chan []byte, 8)}
	p.c = New(p)
	return p
}

// transport returns the transport payload of an IP packet and its source and
// destination.
func transport(ip []byte) (l4 []byte, src, dst netip.Addr) {
	if v4 := header.IPv4(ip); v4.IsValid() {
		return v4.Payload(), v4.SourceAddr(), v4.DestinationAddr()
	}
	v6 := header.IPv6(ip)
	return ip[header.IPv6MinimumSize:], v6.SourceAddr(), v6.DestinationAddr()
}

// TestProbes drives every probe against a far end that answers, refuses or stays
// silent, in both families.
func TestProbes(t *testing.T) {
	ctx := context.Background()
	for _, srv := range []netip.Addr{server4, server6} {
		// A listening server: SYN-ACK, then the client resets the half-open connection.
		p := newPeer(func(c *Client, ip []byte) {
			l4, _, dst := transport(ip)
			tcp := header.TCP(l4)
			if tcp.Flags() == header.TCPFlagSYN {
				c.TCPAnswer(netip.AddrPortFrom(dst, tcp.DestinationPort()), tcp.SourcePort(),
					header.TCPFlagSYN|header.TCPFlagACK, 1000, tcp.Seq()+1)
			}
		})
		if _, err := p.c.TCPConnect(ctx, netip.AddrPortFrom(srv, 80)); err != nil {
			t.Fatalf("%v: tcp to a listener: %v", srv, err)
		}
		syn, rst := <-p.sent, <-p.sent
		l4, _, _ := transport(syn)
		if f := header.TCP(l4).Flags(); f != header.TCPFlagSYN {
			t.Errorf("%v: first segment flags %#x, want SYN", srv, f)
		}
		seq := header.TCP(l4).Seq()
		l4, _, _ = transport(rst)
		if f := header.TCP(l4).Flags(); f != header.TCPFlagRST || header.TCP(l4).Seq() != seq+1 {
			t.Errorf("%v: second segment flags %#x seq %d, want RST at %d", srv, f, header.TCP(l4).Seq(), seq+1)
		}

		// A closed port: RST.
		p = newPeer(func(c *Client, ip []byte) {
			l4, _, dst := transport(ip)
			tcp := header.TCP(l4)
			c.TCPAnswer(netip.AddrPortFrom(dst, tcp.DestinationPort()), tcp.SourcePort(), header.TCPFlagRST|header.TCPFlagACK, 0, tcp.Seq()+1)
		})
		if _, err := p.c.TCPConnect(ctx, netip.AddrPortFrom(srv, 81)); !errors.Is(err, ErrRefused) || !errors.Is(err, health.ErrRefused) {
			t.Errorf("%v: tcp to a closed port: %v, want ErrRefused", srv, err)
		}

		// UDP: an echo, then port unreachable.
		p = newPeer(func(c *Client, ip []byte) {
			l4, _, dst := transport(ip)
			u := header.UDP(l4)
			from := netip.AddrPortFrom(dst, u.DestinationPort())
			if u.DestinationPort() == 7 {
				c.UDPAnswer(from, u.SourcePort(), u.Payload())
			} else {
				c.Unreachable(header.ProtocolUDP, from, u.SourcePort())
			}
		})
		resp := make([]byte, 64)
		if n, _, err := p.c.UDPExchange(ctx, netip.AddrPortFrom(srv, 7), []byte("hello"), resp); err != nil || string(resp[:n]) != "hello" {
			t.Errorf("%v: udp echo: %q, %v", srv, resp[:n], err)
		}
		if _, _, err := p.c.UDPExchange(ctx, netip.AddrPortFrom(srv, 9), []byte("hello"), resp); !errors.Is(err, ErrPortUnreachable) {
			t.Errorf("%v: udp to a closed port: %v, want ErrPortUnreachable", srv, err)
		}

		// Ping: a reply, then silence.
		p = newPeer(func(c *Client, ip []byte) {
			l4, _, _ := transport(ip)
			c.EchoReply(header.ICMPv4(l4).Ident())
		})
		if _, err := p.c.Ping(ctx, srv); err != nil {
			t.Errorf("%v: ping: %v", srv, err)
		}
		silent := newPeer(func(*Client, []byte) {})
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		if _, err := silent.c.Ping(short, srv); !errors.Is(err, ErrPingTimeout) {
			t.Errorf("%v: ping of a silent address: %v, want ErrPingTimeout", srv, err)
		}
		if _, err := silent.c.TCPConnect(short, netip.AddrPortFrom(srv, 80)); !errors.Is(err, ErrTimeout) {
			t.Errorf("%v: tcp to a silent address: %v, want ErrTimeout", srv, err)
		}
		cancel()
		if silent.c.TCPAnswer(netip.AddrPortFrom(srv, 80), PortLo+1, header.TCPFlagRST, 0, 0) {
			t.Errorf("%v: an answer after the probe ended was taken", srv)
		}
	}
}
