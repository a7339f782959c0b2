package nat

import (
	"encoding/binary"
	"math/bits"

	"ulb/router/header"
)

// SeqAdjust is how the server side of a SYN-proxied connection differs from what its
// client saw. The router answered the client's SYN itself (a SYN cookie, package
// balancer/synproxy) and later opened the connection to the server, whose initial
// sequence number, timestamps and window scale are its own: every segment is translated
// between the two views, as the kernel's SYNPROXY with conntrack's sequence adjustment
// does.
type SeqAdjust struct {
	// Seq is the client's view of the server's sequence numbers minus the server's own
	// (the cookie minus the server's initial sequence number).
	Seq uint32
	// TS is the client's view of the server's TSvals minus the server's own (the
	// router's SYN-ACK TSval minus the server's), when Timestamps.
	TS         uint32
	Timestamps bool
	// WScale is the server's window scale shift minus the one the router announced to
	// the client: the server's windows are shifted left by it (right when negative).
	WScale int8
}

// AdjustToClient translates a server's segment (the TCP header and its payload) for the
// client: sequence number, TSval and window. partial says the checksum field holds
// only the pseudo-header's sum (CHECKSUM_PARTIAL): it is left alone. It reports false,
// changing nothing, for a malformed header.
func AdjustToClient(tcp header.TCP, a SeqAdjust, partial bool) bool {
	if !tcp.IsValid() {
		return false
	}
	sum := tcp.Checksum()
	sum = put32(tcp, 4, tcp.Seq()+a.Seq, sum)
	if a.WScale != 0 {
		w := uint32(tcp.Window())
		if a.WScale > 0 {
			w = min(w<<a.WScale, 0xffff)
		} else {
			w >>= -a.WScale
		}
		old := tcp.Window()
		binary.BigEndian.PutUint16(tcp[14:], uint16(w))
		sum = header.ChecksumUpdate(sum, old, uint16(w))
	}
	if a.Timestamps {
		if off := tsOffset(tcp); off > 0 {
			sum = put32(tcp, off, binary.BigEndian.Uint32(tcp[off:])+a.TS, sum)
		}
	}
	if !partial {
		tcp.SetChecksum(sum)
	}
	return true
}

// AdjustToServer translates a client's segment for the server: acknowledgment number,
// the edges of SACK blocks (they name the server's data) and TSecr (it echoes the
// server's TSval). partial as for AdjustToClient.
func AdjustToServer(tcp header.TCP, a SeqAdjust, partial bool) bool {
	if !tcp.IsValid() {
		return false
	}
	sum := tcp.Checksum()
	if tcp.Flags()&header.TCPFlagACK != 0 {
		sum = put32(tcp, 8, tcp.Ack()-a.Seq, sum)
	}
	opts := tcp.Options()
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == 0 {
			break
		}
		if kind == 1 {
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break
		}
		n := int(opts[i+1])
		at := header.TCPMinimumSize + i
		switch {
		case kind == optSACK && (n-2)%8 == 0:
			for e := at + 2; e < at+n; e += 4 {
				sum = put32(tcp, e, binary.BigEndian.Uint32(tcp[e:])-a.Seq, sum)
			}
		case kind == optTimestamps && n == 10 && a.Timestamps:
			sum = put32(tcp, at+6, binary.BigEndian.Uint32(tcp[at+6:])-a.TS, sum)
		}
		i += n
	}
	if !partial {
		tcp.SetChecksum(sum)
	}
	return true
}

// TCP option kinds (RFC 2018, RFC 7323).
const (
	optSACK       = 5
	optTimestamps = 8
)

// tsOffset is the offset of the timestamp option's TSval in tcp, or 0.
func tsOffset(tcp header.TCP) int {
	opts := tcp.Options()
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return 0
		case 1:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return 0
		}
		if opts[i] == optTimestamps && opts[i+1] == 10 {
			return header.TCPMinimumSize + i + 2
		}
		i += int(opts[i+1])
	}
	return 0
}

// put32 writes v at tcp[off:] and returns the checksum sum updated for it. A field at
// an odd offset straddles the 16-bit words the checksum adds: its change is the
// byte-swapped change of the same bytes at an even offset (RFC 1071 §2(B)).
func put32(tcp header.TCP, off int, v uint32, sum uint16) uint16 {
	old := binary.BigEndian.Uint32(tcp[off:])
	binary.BigEndian.PutUint32(tcp[off:], v)
	d := header.ChecksumCombine(^sum32(old), sum32(v))
	if off%2 == 1 {
		d = bits.ReverseBytes16(d)
	}
	return header.SumDelta(d).Checksum(sum)
}

func sum32(w uint32) uint16 { return header.ChecksumCombine(uint16(w>>16), uint16(w)) }
