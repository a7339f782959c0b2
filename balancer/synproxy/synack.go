package synproxy

import (
	"encoding/binary"
	"net/netip"

	"ulb/router/header"
)

// SYNACK is what the router's answer to a SYN carries besides the cookie.
type SYNACK struct {
	// Window is the receive window announced (unscaled, as in every SYN-ACK).
	Window uint16
	// MSS is the router's MSS for the client (0: no MSS option).
	MSS uint16
	// WScale is the router's window scale shift, sent when the client offered window
	// scaling and the cookie can keep it (timestamps), WScale >= 0.
	WScale int
}

// MaxSYNACK is the largest packet BuildSYNACK writes.
const MaxSYNACK = header.IPv6MinimumSize + header.TCPMinimumSize + 20

// BuildSYNACK writes the IP packet of a SYN-ACK from f.VIP to f.Client that answers a SYN
// whose initial sequence number was isn and whose options were o, with the cookie and
// tsval from Make, and returns its length. b must hold MaxSYNACK bytes. It offers SACK,
// window scaling and timestamps only when the client did and the cookie keeps them (the
// SYN had timestamps).
func BuildSYNACK(b []byte, f Flow, isn uint32, o Options, cookie, tsval uint32, s SYNACK) int {
	seg := Segment{Src: f.VIP, Dst: f.Client, Seq: cookie, Ack: isn + 1, Flags: header.TCPFlagSYN | header.TCPFlagACK,
		Window: s.Window, MSS: s.MSS, WScale: -1}
	if o.Timestamps {
		seg.SACK, seg.Timestamps, seg.TSval, seg.TSecr = o.SACK, true, tsval, o.TSval
		if o.WScaleOK && s.WScale >= 0 {
			seg.WScale = s.WScale
		}
	}
	return BuildSegment(b, seg)
}

// Segment is a TCP segment without payload the proxy sends: a SYN-ACK to the client, the
// SYN and the ACK of the server's handshake, the client's window update.
type Segment struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
	// Options: MSS (0: none), window scale (negative: none), SACK-permitted, timestamps.
	MSS          uint16
	WScale       int
	SACK         bool
	Timestamps   bool
	TSval, TSecr uint32
}

// BuildSegment writes the IP packet of s into b (MaxSYNACK bytes) and returns its length.
func BuildSegment(b []byte, s Segment) int {
	var opts [20]byte
	n := 0
	if s.MSS != 0 {
		opts[0], opts[1] = optMSS, 4
		binary.BigEndian.PutUint16(opts[2:], s.MSS)
		n = 4
	}
	if s.Timestamps {
		if s.SACK {
			opts[n], opts[n+1] = optSACKPermitted, 2
		} else {
			opts[n], opts[n+1] = 1, 1 // NOPs to keep TSval aligned
		}
		n += 2
		opts[n], opts[n+1] = optTimestamps, 10
		binary.BigEndian.PutUint32(opts[n+2:], s.TSval)
		binary.BigEndian.PutUint32(opts[n+6:], s.TSecr)
		n += 10
	} else if s.SACK {
		opts[n], opts[n+1], opts[n+2], opts[n+3] = 1, 1, optSACKPermitted, 2
		n += 4
	}
	if s.WScale >= 0 {
		opts[n], opts[n+1], opts[n+2], opts[n+3] = 1, optWScale, 3, byte(min(s.WScale, MaxWScale))
		n += 4
	}
	for n%4 != 0 {
		opts[n] = 0 // end of options
		n++
	}
	tl := header.TCPMinimumSize + n
	src, dst := s.Src.Addr(), s.Dst.Addr()
	var hl int
	if src.Is4() {
		hl = header.IPv4MinimumSize
		header.EncodeIPv4(b, header.IPv4Fields{TotalLength: uint16(hl + tl), TTL: header.DefaultTTL,
			Protocol: header.ProtocolTCP, Src: src, Dst: dst})
	} else {
		hl = header.IPv6MinimumSize
		header.EncodeIPv6(b, header.IPv6Fields{PayloadLength: uint16(tl), NextHeader: header.ProtocolTCP,
			HopLimit: header.DefaultTTL, Src: src, Dst: dst})
	}
	t := b[hl : hl+tl]
	header.EncodeTCP(t, header.TCPFields{SrcPort: s.Src.Port(), DstPort: s.Dst.Port(), Seq: s.Seq, Ack: s.Ack,
		DataOffset: uint8(tl), Flags: s.Flags, Window: s.Window})
	copy(t[header.TCPMinimumSize:], opts[:n])
	header.SetTransportChecksum(header.ProtocolTCP, src, dst, t)
	return hl + tl
}
