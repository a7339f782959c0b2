package traffic

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// PingInterval is the time between two echo requests (ping -i 0.2).
const PingInterval = 200 * time.Millisecond

// IANA protocol numbers of ICMP and ICMPv6, as icmp.ParseMessage wants them.
const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// pingToken is the length of the random payload that tells our replies from others'.
const pingToken = 16

// PingResult is what an echo exchange measured. RTTs are in nanoseconds in JSON.
type PingResult struct {
	Sent     int           `json:"sent"`
	Received int           `json:"received"`
	RTTMin   time.Duration `json:"rtt_min,omitempty"`
	RTTAvg   time.Duration `json:"rtt_avg,omitempty"`
	RTTMax   time.Duration `json:"rtt_max,omitempty"`
	// Error is the first ICMP error that came back for one of the requests (such as
	// "destination unreachable (code 1) from 192.0.2.1") or the first send error.
	Error string `json:"error,omitempty"`
}

// String formats the result as "3/3 replies, rtt min/avg/max 0.041/0.062/0.090 ms".
func (r PingResult) String() string {
	s := fmt.Sprintf("%d/%d replies", r.Received, r.Sent)
	if r.Received > 0 {
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		s += fmt.Sprintf(", rtt min/avg/max %.3f/%.3f/%.3f ms", ms(r.RTTMin), ms(r.RTTAvg), ms(r.RTTMax))
	}
	if r.Error != "" {
		s += "; " + r.Error
	}
	return s
}

// ErrTooFewReplies is wrapped by Ping's error when fewer than count replies came back.
var ErrTooFewReplies = errors.New("too few echo replies")

// Ping sends ICMP echo requests (ICMPv6 for an IPv6 addr) to addr every PingInterval
// until count replies have come back or ctx ends, like `ping -c COUNT -w DEADLINE`: it
// goes on sending past count while replies are missing. It opens a raw socket (root or
// CAP_NET_RAW) in the calling thread's network namespace, then works from any thread. The
// error wraps ErrTooFewReplies when fewer than count replies came back; the result is
// valid either way.
func Ping(ctx context.Context, addr netip.Addr, count int) (PingResult, error) {
	var res PingResult
	if count <= 0 {
		return res, fmt.Errorf("ping: count %d, want > 0", count)
	}
	addr = addr.Unmap()
	network, laddr, proto := "ip4:icmp", "0.0.0.0", protoICMP
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if addr.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", protoICMPv6
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(network, laddr)
	if err != nil {
		return res, fmt.Errorf("ping: %w", err)
	}
	defer c.Close()

	var rnd [2 + pingToken]byte
	rand.Read(rnd[:])
	id := int(binary.BigEndian.Uint16(rnd[:2]))
	token := rnd[2:]
	dst := &net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	var sentAt []time.Time // by sequence number
	var rtts []time.Duration
	buf := make([]byte, 1<<16)
	next := time.Now()
	end, hasEnd := ctx.Deadline()
	for len(rtts) < count && ctx.Err() == nil {
		now := time.Now()
		if hasEnd && !now.Before(end) {
			break // before ctx's own timer says so: no request sent at the deadline
		}
		if !now.Before(next) {
			req := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: len(sentAt) & 0xffff, Data: token}}
			wire, err := req.Marshal(nil) // the kernel sums ICMPv6 itself (IPV6_CHECKSUM)
			if err != nil {
				return res, fmt.Errorf("ping: %w", err)
			}
			sentAt = append(sentAt, now)
			if _, err := c.WriteTo(wire, dst); err != nil && res.Error == "" {
				res.Error = fmt.Sprintf("send: %v", err)
			}
			next = now.Add(PingInterval)
		}
		deadline := next
		if hasEnd && end.Before(deadline) {
			deadline = end
		}
		c.SetReadDeadline(deadline)
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return res, fmt.Errorf("ping: read: %w", err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue // not ours to judge
		}
		switch {
		case m.Type == replyType:
			e, ok := m.Body.(*icmp.Echo)
			if !ok || e.ID != id || string(e.Data) != string(token) || e.Seq >= len(sentAt) || peerAddr(peer) != addr {
				continue
			}
			rtts = append(rtts, time.Since(sentAt[e.Seq]))
		case res.Error == "":
			if what := echoError(m, proto, id); what != "" {
				res.Error = fmt.Sprintf("%s from %s", what, peerAddr(peer))
			}
		}
	}
	res.Sent, res.Received = len(sentAt), len(rtts)
	if len(rtts) > 0 {
		res.RTTMin, res.RTTMax = rtts[0], rtts[0]
		var sum time.Duration
		for _, d := range rtts {
			res.RTTMin, res.RTTMax = min(res.RTTMin, d), max(res.RTTMax, d)
			sum += d
		}
		res.RTTAvg = sum / time.Duration(len(rtts))
	}
	if res.Received < count {
		return res, fmt.Errorf("%w: %s", ErrTooFewReplies, res)
	}
	return res, nil
}

// peerAddr is the address of a raw socket's peer.
func peerAddr(a net.Addr) netip.Addr {
	ip, ok := a.(*net.IPAddr)
	if !ok {
		return netip.Addr{}
	}
	addr, _ := netip.AddrFromSlice(ip.IP)
	return addr.Unmap()
}

// echoError names an ICMP error message that quotes one of our echo requests (identifier
// id), such as "destination unreachable (code 1)", or returns "".
func echoError(m *icmp.Message, proto, id int) string {
	var quoted []byte
	switch b := m.Body.(type) {
	case *icmp.DstUnreach:
		quoted = b.Data
	case *icmp.TimeExceeded:
		quoted = b.Data
	case *icmp.PacketTooBig:
		quoted = b.Data
	default:
		return ""
	}
	// The quoted datagram: its IP header, then at least the first 8 bytes of our request.
	var hlen int
	if proto == protoICMP {
		if len(quoted) < 1 {
			return ""
		}
		hlen = int(quoted[0]&0x0f) * 4
	} else {
		hlen = 40 // an echo request of ours carries no extension header
	}
	if len(quoted) < hlen+8 || (quoted[hlen] != 8 && quoted[hlen] != 128) || // echo request
		binary.BigEndian.Uint16(quoted[hlen+4:]) != uint16(id) {
		return ""
	}
	return fmt.Sprintf("%v (code %d)", m.Type, m.Code)
}
