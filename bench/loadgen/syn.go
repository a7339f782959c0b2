package loadgen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"ulb/router/header"
)

// A SYN flood's frames: each a TCP SYN (RFC 9293 section 3.5: the first segment of a
// three-way handshake, SYN set, no ACK) from a random address of a source prefix and a
// random port, with a random initial sequence number and IP identification, and a
// maximum segment size option as real clients send (RFC 9293 section 3.7.1).
const (
	synTCPLen = header.TCPMinimumSize + 4 // the fixed header and the MSS option
	// SYNFrameLen4 is an IPv4 SYN's frame: 14 + 20 + 24 = 58 bytes, padded with zeros to
	// the 60 bytes of a minimum Ethernet frame without its FCS (IEEE 802.3 clause 3.2.8:
	// the receiver goes by the IP total length, not the frame's).
	SYNFrameLen4 = FrameLen
	// SYNFrameLen6 is an IPv6 SYN's frame: 14 + 40 + 24 bytes.
	SYNFrameLen6 = header.EthernetMinimumSize + header.IPv6MinimumSize + synTCPLen

	synMSS        = 1460
	synWindow     = 64240
	firstFloodSrc = 1024 // source ports are drawn from firstFloodSrc..65535
)

// DocumentationPrefixes are the only prefixes a flood's source addresses may come from:
// the IPv4 blocks reserved for documentation (RFC 5737 section 3) and the IPv6 one
// (RFC 3849), so that a flood that escapes its namespaces names no one's real address.
var DocumentationPrefixes = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// CheckFloodSources returns an error unless p lies inside one of DocumentationPrefixes.
func CheckFloodSources(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: source prefix %v is not a prefix", ErrBadFrameSpec, p)
	}
	if p.Masked() != p {
		return fmt.Errorf("%w: source prefix %v has host bits set (want %v)", ErrBadFrameSpec, p, p.Masked())
	}
	for _, d := range DocumentationPrefixes {
		if d.Addr().Is4() == p.Addr().Is4() && p.Bits() >= d.Bits() && d.Contains(p.Addr()) {
			return nil
		}
	}
	return fmt.Errorf("%w: source prefix %v is outside the documentation prefixes 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 (RFC 5737, RFC 3849)",
		ErrBadFrameSpec, p)
}

// SYNSpec describes the frames of a SYN flood.
type SYNSpec struct {
	DstMAC, SrcMAC header.MAC
	Sources        netip.Prefix // the source addresses, inside DocumentationPrefixes
	Dst            netip.Addr   // of the family of Sources
	DstPort        uint16
}

// SYNGen writes SYN frames, each from a new random source address, port and sequence
// number. It allocates nothing per frame. It is not safe for concurrent use.
type SYNGen struct {
	v6       bool
	frameLen int
	dst      netip.Addr
	// The source prefix as two 64-bit halves of a 16-byte address (IPv4: in the low 32
	// bits of lo), and the masks of its host bits.
	baseHi, baseLo, hostHi, hostLo uint64
	rng                            rand.PCG
	template                       [SYNFrameLen6]byte
}

// NewSYNGen checks spec and returns a generator seeded with seed.
func NewSYNGen(spec SYNSpec, seed uint64) (*SYNGen, error) {
	if err := CheckFloodSources(spec.Sources); err != nil {
		return nil, err
	}
	if !spec.Dst.IsValid() || spec.Dst.Is4() != spec.Sources.Addr().Is4() || spec.Dst.Is4In6() {
		return nil, fmt.Errorf("%w: destination %v is not of the family of the sources %v", ErrBadFrameSpec, spec.Dst, spec.Sources)
	}
	if spec.DstPort == 0 {
		return nil, fmt.Errorf("%w: destination port 0", ErrBadFrameSpec)
	}
	if spec.DstMAC.IsMulticast() || spec.DstMAC.IsZero() {
		return nil, fmt.Errorf("%w: destination MAC %v is not a unicast address", ErrBadFrameSpec, spec.DstMAC)
	}
	g := &SYNGen{v6: !spec.Dst.Is4(), dst: spec.Dst}
	g.rng.Seed(seed, seed^0x9e3779b97f4a7c15)
	f := g.template[:]
	src := spec.Sources.Addr()
	var tcp []byte
	if g.v6 {
		g.frameLen = SYNFrameLen6
		n := header.EncodeEthernet(f, spec.DstMAC, spec.SrcMAC, header.EtherTypeIPv6)
		header.EncodeIPv6(f[n:], header.IPv6Fields{PayloadLength: synTCPLen, NextHeader: header.ProtocolTCP, HopLimit: frameTTL, Src: src, Dst: spec.Dst})
		tcp = f[n+header.IPv6MinimumSize:]
		b := src.As16()
		g.baseHi, g.baseLo = binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		hostBits := 128 - spec.Sources.Bits()
		g.hostLo = lowBits(min(hostBits, 64))
		g.hostHi = lowBits(max(hostBits-64, 0))
	} else {
		g.frameLen = SYNFrameLen4
		n := header.EncodeEthernet(f, spec.DstMAC, spec.SrcMAC, header.EtherTypeIPv4)
		header.EncodeIPv4(f[n:], header.IPv4Fields{TotalLength: header.IPv4MinimumSize + synTCPLen, Flags: header.IPv4FlagDontFragment,
			TTL: frameTTL, Protocol: header.ProtocolTCP, Src: src, Dst: spec.Dst})
		tcp = f[n+header.IPv4MinimumSize:]
		b := src.As4()
		g.baseLo = uint64(binary.BigEndian.Uint32(b[:]))
		g.hostLo = lowBits(32 - spec.Sources.Bits())
	}
	header.EncodeTCP(tcp, header.TCPFields{DstPort: spec.DstPort, DataOffset: synTCPLen, Flags: header.TCPFlagSYN, Window: synWindow})
	// RFC 9293 section 3.2: MSS option, kind 2, length 4.
	tcp[20], tcp[21] = 2, 4
	binary.BigEndian.PutUint16(tcp[22:], synMSS)
	return g, nil
}

func lowBits(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<n - 1
}

// FrameLen returns the length of the frames Fill writes.
func (g *SYNGen) FrameLen() int { return g.frameLen }

// Fill writes the next SYN into f[:g.FrameLen()] and returns that frame.
func (g *SYNGen) Fill(f []byte) []byte {
	f = f[:g.frameLen]
	copy(f, g.template[:g.frameLen])
	r := g.rng.Uint64()
	sport := uint16(firstFloodSrc + r%(65536-firstFloodSrc))
	seq := uint32(r >> 32)
	var src netip.Addr
	var tcp []byte
	ip := f[header.EthernetMinimumSize:]
	if g.v6 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], g.baseHi|g.rng.Uint64()&g.hostHi)
		binary.BigEndian.PutUint64(b[8:], g.baseLo|g.rng.Uint64()&g.hostLo)
		src = netip.AddrFrom16(b)
		header.IPv6(ip).SetSourceAddr(src)
		tcp = ip[header.IPv6MinimumSize : header.IPv6MinimumSize+synTCPLen]
	} else {
		r2 := g.rng.Uint64()
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(g.baseLo|r2&g.hostLo))
		src = netip.AddrFrom4(b)
		v := header.IPv4(ip)
		v.SetSourceAddr(src)
		binary.BigEndian.PutUint16(ip[4:], uint16(r2>>32)) // identification (RFC 791 section 3.1)
		v.SetChecksum(0)
		v.SetChecksum(v.CalculateChecksum())
		tcp = ip[header.IPv4MinimumSize : header.IPv4MinimumSize+synTCPLen]
	}
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	// RFC 9293 section 3.1: the checksum covers the pseudo-header, header and data.
	header.SetTransportChecksum(header.ProtocolTCP, src, g.dst, tcp)
	return f
}
