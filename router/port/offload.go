package port

import (
	"encoding/binary"
	"errors"

	"ulb/router/header"
)

// Errors of the software offloads. They describe a frame whose virtio-net header does not
// fit it; a port counts such frames as dropped.
var (
	// ErrBadVnetHdr: the header's checksum or GSO fields point outside the frame or at
	// headers that are not there.
	ErrBadVnetHdr = errors.New("virtio-net header does not match the frame")
	// ErrUnsupportedGSO: the GSO type is not TCPv4 or TCPv6.
	ErrUnsupportedGSO = errors.New("unsupported GSO type")
	// ErrShortBuffer: too few or too small output buffers for the segments.
	ErrShortBuffer = errors.New("segment buffers too few or too small")
)

// EtherType values the ports use.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88a8
	ethHdrLen     = 14
)

// TCP flags the segmentation touches.
const (
	tcpFlagFIN = 0x01
	tcpFlagPSH = 0x08
	tcpFlagCWR = 0x80
)

// checksumUDPOffset is csum_offset for UDP: a UDP checksum that computes to zero is sent as
// 0xffff (RFC 768), zero meaning "no checksum".
const checksumUDPOffset = 6

// CompleteChecksum completes the layer-4 checksum of a frame whose virtio-net header says
// NEEDS_CSUM, as a NIC would: the one's complement of the sum from csum_start to the end
// of the frame (the field at csum_start+csum_offset already holds the pseudo-header sum) is
// stored at csum_start+csum_offset. Offsets are relative to the start of frame. It does
// nothing when NEEDS_CSUM is not set.
func CompleteChecksum(frame []byte, h VnetHdr) error {
	if !h.NeedsCsum() {
		return nil
	}
	start, off := int(h.CsumStart()), int(h.CsumOffset())
	if start >= len(frame) || start+off+2 > len(frame) {
		return ErrBadVnetHdr
	}
	c := ^header.Checksum(frame[start:], 0)
	if c == 0 && off == checksumUDPOffset {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(frame[start+off:], c)
	return nil
}

// tcpGSO is the layout of a TCP GSO frame.
type tcpGSO struct {
	l3     int  // start of the IP header
	v4     bool // IPv4, else IPv6
	l4     int  // start of the TCP header (csum_start)
	hdrLen int  // all headers up to the TCP payload
	mss    int
	nseg   int
}

// parseTCPGSO checks that frame is an Ethernet frame carrying a TCP segment that h's GSO
// fields describe, and returns its layout.
func parseTCPGSO(frame []byte, h VnetHdr) (tcpGSO, error) {
	var g tcpGSO
	switch h.GSOType() &^ VnetGSOECN {
	case VnetGSOTCPv4:
		g.v4 = true
	case VnetGSOTCPv6:
	default:
		return g, ErrUnsupportedGSO
	}
	if len(frame) < ethHdrLen {
		return g, ErrBadVnetHdr
	}
	g.l3 = ethHdrLen
	etype := binary.BigEndian.Uint16(frame[12:])
	if etype == etherTypeVLAN || etype == etherTypeQinQ {
		if len(frame) < ethHdrLen+4 {
			return g, ErrBadVnetHdr
		}
		g.l3 += 4
		etype = binary.BigEndian.Uint16(frame[16:])
	}
	g.l4 = int(h.CsumStart())
	if g.l4 <= g.l3 || g.l4+20 > len(frame) {
		return g, ErrBadVnetHdr
	}
	if g.v4 {
		ihl := int(frame[g.l3]&0x0f) * 4
		if etype != etherTypeIPv4 || frame[g.l3]>>4 != 4 || ihl < 20 || g.l3+ihl != g.l4 {
			return g, ErrBadVnetHdr
		}
		if frame[g.l3+9] != 6 {
			return g, ErrBadVnetHdr
		}
	} else {
		if etype != etherTypeIPv6 || frame[g.l3]>>4 != 6 || g.l4 < g.l3+40 {
			return g, ErrBadVnetHdr
		}
	}
	doff := int(frame[g.l4+12]>>4) * 4
	g.hdrLen = g.l4 + doff
	if doff < 20 || g.hdrLen > len(frame) {
		return g, ErrBadVnetHdr
	}
	g.mss = int(h.GSOSize())
	if g.mss == 0 {
		return g, ErrBadVnetHdr
	}
	payload := len(frame) - g.hdrLen
	g.nseg = (payload + g.mss - 1) / g.mss
	if g.nseg == 0 {
		g.nseg = 1
	}
	return g, nil
}

// GSOSegments returns how many segments SegmentTCP makes of frame and the length of the
// longest one, so that a caller can size its buffers.
func GSOSegments(frame []byte, h VnetHdr) (count, maxLen int, err error) {
	g, err := parseTCPGSO(frame, h)
	if err != nil {
		return 0, 0, err
	}
	maxLen = g.hdrLen + g.mss
	if maxLen > len(frame) {
		maxLen = len(frame)
	}
	return g.nseg, maxLen, nil
}

// SegmentTCP cuts a TCP GSO frame (an Ethernet frame whose virtio-net header h has GSO type
// TCPv4 or TCPv6, csum_start at the TCP header and gso_size the MSS) into complete frames,
// as a NIC's TSO would: segment i is written to out[i][:sizes[i]] with the same Ethernet
// and IP headers, sequence number advanced by i*MSS, IPv4 ID incremented per segment and
// IPv4 total length and header checksum or IPv6 payload length set, FIN and PSH only on
// the last segment and CWR only on the first, and a full TCP checksum. It returns the number
// of segments. out must hold at least GSOSegments' count buffers of its maxLen bytes.
func SegmentTCP(frame []byte, h VnetHdr, out [][]byte, sizes []int) (int, error) {
	g, err := parseTCPGSO(frame, h)
	if err != nil {
		return 0, err
	}
	if len(out) < g.nseg || len(sizes) < g.nseg {
		return 0, ErrShortBuffer
	}
	hdr := frame[:g.hdrLen]
	payload := frame[g.hdrLen:]
	seq0 := binary.BigEndian.Uint32(frame[g.l4+4:])
	flags0 := frame[g.l4+13]
	var id0 uint16
	if g.v4 {
		id0 = binary.BigEndian.Uint16(frame[g.l3+4:])
	}
	for i := 0; i < g.nseg; i++ {
		lo := i * g.mss
		hi := min(lo+g.mss, len(payload))
		segLen := g.hdrLen + hi - lo
		if len(out[i]) < segLen {
			return 0, ErrShortBuffer
		}
		seg := out[i][:segLen]
		copy(seg, hdr)
		copy(seg[g.hdrLen:], payload[lo:hi])
		sizes[i] = segLen

		tcp := seg[g.l4:]
		binary.BigEndian.PutUint32(tcp[4:], seq0+uint32(lo))
		flags := flags0
		if i != g.nseg-1 {
			flags &^= tcpFlagFIN | tcpFlagPSH
		}
		if i != 0 {
			flags &^= tcpFlagCWR
		}
		tcp[13] = flags
		tcp[16], tcp[17] = 0, 0

		tcpLen := segLen - g.l4
		var sum uint16
		if g.v4 {
			ip := seg[g.l3:g.l4]
			binary.BigEndian.PutUint16(ip[2:], uint16(segLen-g.l3))
			binary.BigEndian.PutUint16(ip[4:], id0+uint16(i))
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], ^header.Checksum(ip, 0))
			sum = header.Checksum(ip[12:20], 0) // source and destination addresses
		} else {
			ip := seg[g.l3:]
			binary.BigEndian.PutUint16(ip[4:], uint16(segLen-g.l3-40))
			sum = header.Checksum(ip[8:40], 0)
		}
		// The pseudo-header's protocol and (IPv6: 32-bit) upper-layer length.
		sum = header.ChecksumCombine(sum, uint16(header.ProtocolTCP))
		sum = header.ChecksumCombine(sum, uint16(tcpLen>>16))
		sum = header.ChecksumCombine(sum, uint16(tcpLen))
		sum = header.Checksum(tcp[:tcpLen], sum)
		binary.BigEndian.PutUint16(tcp[16:], ^sum)
	}
	return g.nseg, nil
}
