package conntrack

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strconv"
)

// IP protocol numbers the table gives a meaning to.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Tuple identifies one direction of a flow. It is packed, comparable and holds no pointer, so
// it can key big tables without costing the garbage collector anything. Addresses are 16 bytes;
// IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d). For ICMP echo both ports hold the
// echo identifier.
type Tuple struct {
	SrcAddr, DstAddr [16]byte
	SrcPort, DstPort uint16
	Proto            uint8
}

// MakeTuple builds a tuple; IPv4 addresses are stored IPv4-mapped.
func MakeTuple(src, dst netip.Addr, sport, dport uint16, proto uint8) Tuple {
	return Tuple{SrcAddr: src.As16(), DstAddr: dst.As16(), SrcPort: sport, DstPort: dport, Proto: proto}
}

// Reply returns the tuple of the opposite direction: source and destination swapped.
func (t Tuple) Reply() Tuple {
	return Tuple{SrcAddr: t.DstAddr, DstAddr: t.SrcAddr, SrcPort: t.DstPort, DstPort: t.SrcPort, Proto: t.Proto}
}

// Src returns the source address; an IPv4-mapped address is returned as IPv4.
func (t Tuple) Src() netip.Addr { return netip.AddrFrom16(t.SrcAddr).Unmap() }

// Dst returns the destination address; an IPv4-mapped address is returned as IPv4.
func (t Tuple) Dst() netip.Addr { return netip.AddrFrom16(t.DstAddr).Unmap() }

// IsZero reports whether t is the zero tuple (used for "no reply tuple").
func (t Tuple) IsZero() bool { return t == Tuple{} }

// String formats the tuple as "tcp 192.0.2.1:1234->198.51.100.1:80".
func (t Tuple) String() string {
	return ProtoName(t.Proto) + " " + netip.AddrPortFrom(t.Src(), t.SrcPort).String() + "->" +
		netip.AddrPortFrom(t.Dst(), t.DstPort).String()
}

// ProtoName names an IP protocol number: tcp, udp, icmp, ipv6-icmp or the number.
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(p))
}

// seed keys the tuple hash so that remote senders cannot aim at one index bucket.
type seed [6]uint64

// mum is the 64x64->128 multiply-fold of wyhash.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash mixes every byte of the tuple with the seed.
func (s *seed) hash(t *Tuple) uint64 {
	a0 := binary.LittleEndian.Uint64(t.SrcAddr[0:8])
	a1 := binary.LittleEndian.Uint64(t.SrcAddr[8:16])
	b0 := binary.LittleEndian.Uint64(t.DstAddr[0:8])
	b1 := binary.LittleEndian.Uint64(t.DstAddr[8:16])
	p := uint64(t.SrcPort) | uint64(t.DstPort)<<16 | uint64(t.Proto)<<32
	h := mum(a0^s[0], a1^s[1]) ^ mum(b0^s[2], b1^s[3])
	return mum(h^s[4], p^s[5])
}
