package synproxy

import (
	"encoding/binary"

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
	var opts [20]byte
	n := 0
	if s.MSS != 0 {
		opts[0], opts[1] = optMSS, 4
		binary.BigEndian.PutUint16(opts[2:], s.MSS)
		n = 4
	}
	if o.Timestamps {
		if o.SACK {
			opts[n], opts[n+1] = optSACKPermitted, 2
			n += 2
		} else {
			opts[n], opts[n+1] = 1, 1 // NOPs to keep TSval aligned
			n += 2
		}
		opts[n], opts[n+1] = optTimestamps, 10
		binary.BigEndian.PutUint32(opts[n+2:], tsval)
		binary.BigEndian.PutUint32(opts[n+6:], o.TSval)
		n += 10
		if o.WScaleOK && s.WScale >= 0 {
			opts[n], opts[n+1], opts[n+2], opts[n+3] = 1, optWScale, 3, byte(min(s.WScale, MaxWScale))
			n += 4
		}
	}
	for n%4 != 0 {
		opts[n] = 0 // end of options
		n++
	}
	tl := header.TCPMinimumSize + n
	src, dst := f.VIP.Addr(), f.Client.Addr()
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
	header.EncodeTCP(t, header.TCPFields{SrcPort: f.VIP.Port(), DstPort: f.Client.Port(), Seq: cookie, Ack: isn + 1,
		DataOffset: uint8(tl), Flags: header.TCPFlagSYN | header.TCPFlagACK, Window: s.Window})
	copy(t[header.TCPMinimumSize:], opts[:n])
	header.SetTransportChecksum(header.ProtocolTCP, src, dst, t)
	return hl + tl
}
