package header

import (
	"encoding/binary"
	"net/netip"
)

// Builders of the IP packets a router originates itself (probes, resets, sync
// messages, pings): an IP header of the family of src with the default TTL, the
// transport header and its checksum. Each writes into b, which must be large enough,
// and returns the packet's length.

// encodeIP writes an IP header for a packet of n bytes and returns its length.
func encodeIP(b []byte, src, dst netip.Addr, proto uint8, n int) int {
	if src.Is4() {
		EncodeIPv4(b, IPv4Fields{TotalLength: uint16(n), TTL: DefaultTTL, Protocol: proto, Src: src, Dst: dst})
		return IPv4MinimumSize
	}
	EncodeIPv6(b, IPv6Fields{PayloadLength: uint16(n - IPv6MinimumSize), NextHeader: proto,
		HopLimit: DefaultTTL, Src: src, Dst: dst})
	return IPv6MinimumSize
}

func ipHeaderLen(a netip.Addr) int {
	if a.Is4() {
		return IPv4MinimumSize
	}
	return IPv6MinimumSize
}

// BuildTCPSegment writes a TCP segment without payload from src to dst, with an MSS
// option when mss is not 0.
func BuildTCPSegment(b []byte, src, dst netip.Addr, f TCPFields, mss uint16) int {
	tl := TCPMinimumSize
	if mss != 0 {
		tl += 4
	}
	n := ipHeaderLen(src) + tl
	hl := encodeIP(b, src, dst, ProtocolTCP, n)
	t := b[hl:n]
	f.DataOffset = uint8(tl)
	EncodeTCP(t, f)
	if mss != 0 {
		t[20], t[21] = 2, 4 // kind MSS, length 4
		binary.BigEndian.PutUint16(t[22:], mss)
	}
	SetTransportChecksum(ProtocolTCP, src, dst, t)
	return n
}

// BuildUDPDatagram writes a UDP datagram from src:sport to dst:dport carrying payload.
func BuildUDPDatagram(b []byte, src, dst netip.Addr, sport, dport uint16, payload []byte) int {
	n := ipHeaderLen(src) + UDPMinimumSize + len(payload)
	hl := encodeIP(b, src, dst, ProtocolUDP, n)
	u := b[hl:n]
	EncodeUDP(u, sport, dport, uint16(len(u)))
	copy(u[UDPMinimumSize:], payload)
	SetTransportChecksum(ProtocolUDP, src, dst, u)
	return n
}

// BuildEchoRequest writes an ICMP (ICMPv6) echo request with ident and seq and a
// payload of size zero bytes.
func BuildEchoRequest(b []byte, src, dst netip.Addr, ident, seq uint16, size int) int {
	if src.Is4() {
		n := IPv4MinimumSize + ICMPv4MinimumSize + size
		encodeIP(b, src, dst, ProtocolICMPv4, n)
		icmp := ICMPv4(b[IPv4MinimumSize:n])
		clear(icmp)
		icmp.SetType(ICMPv4Echo)
		binary.BigEndian.PutUint16(icmp[4:], ident)
		binary.BigEndian.PutUint16(icmp[6:], seq)
		icmp.SetChecksum(icmp.CalculateChecksum())
		return n
	}
	n := IPv6MinimumSize + ICMPv6MinimumSize + size
	encodeIP(b, src, dst, ProtocolICMPv6, n)
	icmp := ICMPv6(b[IPv6MinimumSize:n])
	clear(icmp)
	icmp.SetType(ICMPv6EchoRequest)
	binary.BigEndian.PutUint16(icmp[4:], ident)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	SetTransportChecksum(ProtocolICMPv6, src, dst, icmp)
	return n
}
