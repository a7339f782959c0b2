// Package loadgen measures a forwarding path in 64-byte frames: Send blasts UDP/IPv4
// frames through an AF_PACKET socket in sendmmsg batches, for a fixed time, at full speed
// or at a given rate; Count reports how many frames a receiving interface got; Flood sends
// TCP SYNs from random addresses of a documentation prefix and random ports (syn.go).
package loadgen

import (
	"errors"
	"fmt"
	"net/netip"

	"ulb/router/header"
)

// FrameLen is the length of a generated frame: a minimum-size (64-byte) Ethernet frame
// without its 4-byte FCS, which a veth link does not carry. It holds a 14-byte Ethernet
// header, a 20-byte IPv4 header, an 8-byte UDP header and 18 bytes of payload.
const FrameLen = 60

// payloadLen is the UDP payload of a frame of FrameLen bytes.
const payloadLen = FrameLen - header.EthernetMinimumSize - header.IPv4MinimumSize - header.UDPMinimumSize

// Defaults of frame generation.
const (
	DefaultFlows   = 256
	DefaultDstPort = 9    // discard
	firstSrcPort   = 1024 // flow i uses source port firstSrcPort+i
	frameTTL       = 64
)

// MaxFlows is the largest number of distinct flows (source ports).
const MaxFlows = 65535 - firstSrcPort + 1

// ErrBadFrameSpec is wrapped by BuildFrames' errors.
var ErrBadFrameSpec = errors.New("loadgen: bad frame specification")

// FrameSpec describes the frames of one run. Flow i differs from the others only in its
// UDP source port.
type FrameSpec struct {
	DstMAC, SrcMAC header.MAC
	Src, Dst       netip.Addr // IPv4
	DstPort        uint16
	Flows          int
}

// SrcPort returns the UDP source port of flow i.
func SrcPort(i int) uint16 { return uint16(firstSrcPort + i) }

// BuildFrames writes one complete frame per flow, with valid IPv4 and UDP checksums, each
// at buf[headroom:headroom+FrameLen] of its own buffer (the headroom bytes are zero: a
// virtio-net header saying "complete frame, no offload").
func BuildFrames(spec FrameSpec, headroom int) ([][]byte, error) {
	if !spec.Src.Is4() || !spec.Dst.Is4() {
		return nil, fmt.Errorf("%w: source %v and destination %v must be IPv4 addresses", ErrBadFrameSpec, spec.Src, spec.Dst)
	}
	if spec.Flows < 1 || spec.Flows > MaxFlows {
		return nil, fmt.Errorf("%w: %d flows, want 1..%d", ErrBadFrameSpec, spec.Flows, MaxFlows)
	}
	if spec.DstMAC.IsMulticast() || spec.DstMAC.IsZero() {
		return nil, fmt.Errorf("%w: destination MAC %v is not a unicast address", ErrBadFrameSpec, spec.DstMAC)
	}
	if headroom < 0 {
		return nil, fmt.Errorf("%w: negative headroom", ErrBadFrameSpec)
	}
	frames := make([][]byte, spec.Flows)
	for i := range frames {
		buf := make([]byte, headroom+FrameLen)
		f := buf[headroom:]
		n := header.EncodeEthernet(f, spec.DstMAC, spec.SrcMAC, header.EtherTypeIPv4)
		ip := f[n:]
		header.EncodeIPv4(ip, header.IPv4Fields{
			TotalLength: uint16(len(ip)),
			ID:          uint16(i),
			Flags:       header.IPv4FlagDontFragment,
			TTL:         frameTTL,
			Protocol:    header.ProtocolUDP,
			Src:         spec.Src,
			Dst:         spec.Dst,
		})
		udp := ip[header.IPv4MinimumSize:]
		header.EncodeUDP(udp, SrcPort(i), spec.DstPort, uint16(len(udp)))
		copy(udp[header.UDPMinimumSize:], "ulb loadgen 64B..."[:payloadLen])
		if !header.SetTransportChecksum(header.ProtocolUDP, spec.Src, spec.Dst, udp) {
			return nil, fmt.Errorf("%w: cannot checksum the UDP datagram", ErrBadFrameSpec)
		}
		frames[i] = buf
	}
	return frames, nil
}
