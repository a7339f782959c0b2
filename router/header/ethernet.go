package header

import (
	"encoding/binary"
	"net/netip"
)

// MAC is an IEEE 802 48-bit hardware address.
type MAC [6]byte

// BroadcastMAC is the Ethernet broadcast address ff:ff:ff:ff:ff:ff.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

const hexDigits = "0123456789abcdef"

// String formats m as six colon-separated lower-case hex bytes.
func (m MAC) String() string {
	var buf [17]byte
	for i, b := range m {
		if i > 0 {
			buf[i*3-1] = ':'
		}
		buf[i*3] = hexDigits[b>>4]
		buf[i*3+1] = hexDigits[b&0xf]
	}
	return string(buf[:])
}

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == BroadcastMAC }

// IsMulticast reports whether m is a group address (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IPv6MulticastMAC returns the Ethernet address for IPv6 multicast group a:
// 33:33 followed by the group's last 32 bits (RFC 2464 section 7).
func IPv6MulticastMAC(a netip.Addr) MAC {
	b := a.As16()
	return MAC{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// SolicitedNodeMAC returns the Ethernet address of the solicited-node multicast group of
// a (33:33:ff followed by the last 24 bits of a). a may be the unicast address or its
// solicited-node address.
func SolicitedNodeMAC(a netip.Addr) MAC {
	b := a.As16()
	return MAC{0x33, 0x33, 0xff, b[13], b[14], b[15]}
}

// SolicitedNodeAddr returns the solicited-node multicast address ff02::1:ffXX:XXXX of
// the IPv6 address a (RFC 4291 section 2.7.1).
func SolicitedNodeAddr(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// LinkLocalFromMAC returns the fe80::/64 address with the modified EUI-64 interface
// identifier derived from m (RFC 4291 appendix A).
func LinkLocalFromMAC(m MAC) netip.Addr {
	return netip.AddrFrom16([16]byte{
		0xfe, 0x80, 0, 0, 0, 0, 0, 0,
		m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5],
	})
}

// EtherType values.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100 // IEEE 802.1Q tag
	EtherTypeIPv6 uint16 = 0x86dd
)

// Ethernet is a view of an Ethernet II frame, optionally carrying one 802.1Q tag.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Destination MAC                          |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                        Source MAC                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   EtherType (0x8100 if tagged)|  PCP|D|  VLAN ID (if tagged)  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   inner EtherType (if tagged) |  payload ...
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Ethernet []byte

const (
	ethDst     = 0
	ethSrc     = 6
	ethType    = 12
	ethTCI     = 14
	ethInner   = 16
	vlanIDMask = 0x0fff

	// EthernetMinimumSize is the size of an untagged Ethernet header.
	EthernetMinimumSize = 14
	// EthernetTaggedSize is the size of an Ethernet header with one 802.1Q tag.
	EthernetTaggedSize = 18
)

// IsValid reports whether b holds a full Ethernet header: 14 bytes, or 18 when tagged.
func (b Ethernet) IsValid() bool {
	if len(b) < EthernetMinimumSize {
		return false
	}
	return binary.BigEndian.Uint16(b[ethType:]) != EtherTypeVLAN || len(b) >= EthernetTaggedSize
}

// Destination returns the destination MAC.
func (b Ethernet) Destination() MAC { return MAC(b[ethDst : ethDst+6]) }

// Source returns the source MAC.
func (b Ethernet) Source() MAC { return MAC(b[ethSrc : ethSrc+6]) }

// SetDestination sets the destination MAC.
func (b Ethernet) SetDestination(m MAC) { copy(b[ethDst:ethDst+6], m[:]) }

// SetSource sets the source MAC.
func (b Ethernet) SetSource(m MAC) { copy(b[ethSrc:ethSrc+6], m[:]) }

// EtherType returns the type of the payload: the inner type after an 802.1Q tag.
func (b Ethernet) EtherType() uint16 {
	t := binary.BigEndian.Uint16(b[ethType:])
	if t == EtherTypeVLAN {
		return binary.BigEndian.Uint16(b[ethInner:])
	}
	return t
}

// SetEtherType sets the type of the payload (the inner type when tagged).
func (b Ethernet) SetEtherType(t uint16) {
	if binary.BigEndian.Uint16(b[ethType:]) == EtherTypeVLAN {
		binary.BigEndian.PutUint16(b[ethInner:], t)
		return
	}
	binary.BigEndian.PutUint16(b[ethType:], t)
}

// VLAN returns the 802.1Q VLAN ID and whether the frame is tagged.
func (b Ethernet) VLAN() (id uint16, tagged bool) {
	if binary.BigEndian.Uint16(b[ethType:]) != EtherTypeVLAN {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[ethTCI:]) & vlanIDMask, true
}

// HeaderLen returns the header size: 14, or 18 when tagged.
func (b Ethernet) HeaderLen() int {
	if binary.BigEndian.Uint16(b[ethType:]) == EtherTypeVLAN {
		return EthernetTaggedSize
	}
	return EthernetMinimumSize
}

// Payload returns the bytes after the header.
func (b Ethernet) Payload() []byte { return b[b.HeaderLen():] }

// EncodeEthernet writes an untagged 14-byte Ethernet header into b and returns 14, or 0
// when b is too short.
func EncodeEthernet(b []byte, dst, src MAC, etherType uint16) int {
	if len(b) < EthernetMinimumSize {
		return 0
	}
	copy(b[ethDst:], dst[:])
	copy(b[ethSrc:], src[:])
	binary.BigEndian.PutUint16(b[ethType:], etherType)
	return EthernetMinimumSize
}
