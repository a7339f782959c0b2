package header

import (
	"encoding/binary"
	"net/netip"
)

// ARP is a view of an ARP packet for Ethernet hardware and IPv4 protocol addresses
// (RFC 826), the Ethernet payload of EtherType 0x0806.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    Hardware Type (1)          |    Protocol Type (0x0800)     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  HLEN (6)     |   PLEN (4)    |          Operation            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Sender Hardware Address (6 bytes) ...              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  ... | Sender Protocol Address (4) | Target Hardware Address  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  ...  (6 bytes)       |    Target Protocol Address (4)        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ARP []byte

const (
	arpHType = 0
	arpPType = 2
	arpHLen  = 4
	arpPLen  = 5
	arpOp    = 6
	arpSHA   = 8
	arpSPA   = 14
	arpTHA   = 18
	arpTPA   = 24

	// ARPSize is the size of an Ethernet/IPv4 ARP packet.
	ARPSize = 28
	// ARPHardwareEthernet is the ARP hardware type of Ethernet.
	ARPHardwareEthernet = 1
)

// ARP operations.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// IsValid reports whether b is at least 28 bytes of ARP for Ethernet and IPv4.
func (b ARP) IsValid() bool {
	return len(b) >= ARPSize &&
		binary.BigEndian.Uint16(b[arpHType:]) == ARPHardwareEthernet &&
		binary.BigEndian.Uint16(b[arpPType:]) == EtherTypeIPv4 &&
		b[arpHLen] == 6 && b[arpPLen] == 4
}

// Op returns the operation (ARPRequest or ARPReply; others are possible on the wire).
func (b ARP) Op() uint16 { return binary.BigEndian.Uint16(b[arpOp:]) }

// SenderMAC returns the sender hardware address.
func (b ARP) SenderMAC() MAC { return MAC(b[arpSHA : arpSHA+6]) }

// SenderIP returns the sender protocol address.
func (b ARP) SenderIP() netip.Addr { return netip.AddrFrom4([4]byte(b[arpSPA : arpSPA+4])) }

// TargetMAC returns the target hardware address.
func (b ARP) TargetMAC() MAC { return MAC(b[arpTHA : arpTHA+6]) }

// TargetIP returns the target protocol address.
func (b ARP) TargetIP() netip.Addr { return netip.AddrFrom4([4]byte(b[arpTPA : arpTPA+4])) }

// BuildARP writes a 28-byte Ethernet/IPv4 ARP packet into b and returns 28. It returns 0,
// writing nothing, when b is shorter than 28 bytes or spa or tpa is not IPv4.
func BuildARP(b []byte, op uint16, sha MAC, spa netip.Addr, tha MAC, tpa netip.Addr) int {
	if len(b) < ARPSize || !spa.Is4() || !tpa.Is4() {
		return 0
	}
	binary.BigEndian.PutUint16(b[arpHType:], ARPHardwareEthernet)
	binary.BigEndian.PutUint16(b[arpPType:], EtherTypeIPv4)
	b[arpHLen] = 6
	b[arpPLen] = 4
	binary.BigEndian.PutUint16(b[arpOp:], op)
	copy(b[arpSHA:], sha[:])
	s, t := spa.As4(), tpa.As4()
	copy(b[arpSPA:], s[:])
	copy(b[arpTHA:], tha[:])
	copy(b[arpTPA:], t[:])
	return ARPSize
}

// BuildARPRequest writes an Ethernet frame holding a broadcast ARP request from
// sha/spa asking for tpa, and returns its length (42), or 0 when b is too short or an
// address is not IPv4. The target hardware address is zero (RFC 826). For a gratuitous
// ARP pass tpa == spa.
func BuildARPRequest(b []byte, sha MAC, spa, tpa netip.Addr) int {
	if len(b) < EthernetMinimumSize+ARPSize {
		return 0
	}
	if BuildARP(b[EthernetMinimumSize:], ARPRequest, sha, spa, MAC{}, tpa) == 0 {
		return 0
	}
	EncodeEthernet(b, BroadcastMAC, sha, EtherTypeARP)
	return EthernetMinimumSize + ARPSize
}

// BuildARPReply writes an Ethernet frame holding an ARP reply from sha/spa to tha/tpa,
// sent to tha, and returns its length (42), or 0 when b is too short or an address is
// not IPv4.
func BuildARPReply(b []byte, sha MAC, spa netip.Addr, tha MAC, tpa netip.Addr) int {
	if len(b) < EthernetMinimumSize+ARPSize {
		return 0
	}
	if BuildARP(b[EthernetMinimumSize:], ARPReply, sha, spa, tha, tpa) == 0 {
		return 0
	}
	EncodeEthernet(b, tha, sha, EtherTypeARP)
	return EthernetMinimumSize + ARPSize
}
