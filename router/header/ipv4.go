package header

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers.
const (
	ProtocolHopByHop uint8 = 0
	ProtocolICMPv4   uint8 = 1
	ProtocolIPIP     uint8 = 4 // IPv4 in IP (RFC 2003)
	ProtocolTCP      uint8 = 6
	ProtocolUDP      uint8 = 17
	ProtocolIPv6     uint8 = 41 // IPv6 in IP (RFC 2473)
	ProtocolRouting  uint8 = 43
	ProtocolFragment uint8 = 44
	ProtocolESP      uint8 = 50
	ProtocolAH       uint8 = 51
	ProtocolICMPv6   uint8 = 58
	ProtocolNoNext   uint8 = 59
	ProtocolDstOpts  uint8 = 60
	ProtocolVRRP     uint8 = 112
)

// IPv4 is a view of an IPv4 packet (RFC 791).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv4 []byte

const (
	ipv4VersIHL   = 0
	ipv4TOS       = 1
	ipv4TotalLen  = 2
	ipv4ID        = 4
	ipv4FlagsFrag = 6
	ipv4TTL       = 8
	ipv4Protocol  = 9
	ipv4Checksum  = 10
	ipv4Src       = 12
	ipv4Dst       = 16

	// IPv4MinimumSize is the size of an IPv4 header without options.
	IPv4MinimumSize = 20
	// IPv4MaximumHeaderSize is the size of an IPv4 header with 40 bytes of options.
	IPv4MaximumHeaderSize = 60
	// IPv4MinimumMTU is the datagram size every IPv4 host must accept (RFC 791).
	IPv4MinimumMTU = 576
)

// IPv4 flags, as returned by Flags.
const (
	IPv4FlagMoreFragments uint8 = 1 << 0
	IPv4FlagDontFragment  uint8 = 1 << 1
)

// IsValid reports whether b starts with a well-formed IPv4 header: version 4, IHL of at
// least 5, and IHL*4 <= total length <= len(b). It does not check the checksum.
func (b IPv4) IsValid() bool {
	if len(b) < IPv4MinimumSize || b[ipv4VersIHL]>>4 != 4 {
		return false
	}
	hl := int(b[ipv4VersIHL]&0xf) * 4
	tl := int(binary.BigEndian.Uint16(b[ipv4TotalLen:]))
	return hl >= IPv4MinimumSize && tl >= hl && tl <= len(b)
}

// IsChecksumValid reports whether the header checksum is correct. Call it only on a
// view that passed IsValid.
func (b IPv4) IsChecksumValid() bool {
	return Checksum(b[:b.HeaderLength()], 0) == 0xffff
}

// HeaderLength returns the header length in bytes (IHL*4).
func (b IPv4) HeaderLength() int { return int(b[ipv4VersIHL]&0xf) * 4 }

// TOS returns the type of service (DSCP and ECN) byte.
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLength returns the total length field.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// Flags returns the three flag bits (IPv4FlagDontFragment, IPv4FlagMoreFragments).
func (b IPv4) Flags() uint8 { return b[ipv4FlagsFrag] >> 5 }

// DontFragment reports whether the DF flag is set.
func (b IPv4) DontFragment() bool { return b.Flags()&IPv4FlagDontFragment != 0 }

// MoreFragments reports whether the MF flag is set.
func (b IPv4) MoreFragments() bool { return b.Flags()&IPv4FlagMoreFragments != 0 }

// FragmentOffset returns the fragment offset in bytes.
func (b IPv4) FragmentOffset() uint16 {
	return (binary.BigEndian.Uint16(b[ipv4FlagsFrag:]) & 0x1fff) * 8
}

// IsFragment reports whether the packet is a fragment (MF set or a non-zero offset).
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsFrag:])&0x3fff != 0
}

// TTL returns the time to live.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the protocol of the payload.
func (b IPv4) Protocol() uint8 { return b[ipv4Protocol] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// SourceAddr returns the source address.
func (b IPv4) SourceAddr() netip.Addr { return netip.AddrFrom4([4]byte(b[ipv4Src : ipv4Src+4])) }

// DestinationAddr returns the destination address.
func (b IPv4) DestinationAddr() netip.Addr {
	return netip.AddrFrom4([4]byte(b[ipv4Dst : ipv4Dst+4]))
}

// Options returns the option bytes of the header.
func (b IPv4) Options() IPv4Options { return IPv4Options(b[IPv4MinimumSize:b.HeaderLength()]) }

// Payload returns the bytes after the header up to the total length; link-layer
// padding beyond the total length is excluded.
func (b IPv4) Payload() []byte { return b[b.HeaderLength():b.TotalLength()] }

// SetTTL sets the time to live without touching the checksum.
func (b IPv4) SetTTL(ttl uint8) { b[ipv4TTL] = ttl }

// SetTTLWithChecksumUpdate sets the time to live and updates the header checksum.
func (b IPv4) SetTTLWithChecksumUpdate(ttl uint8) {
	old := binary.BigEndian.Uint16(b[ipv4TTL:])
	b[ipv4TTL] = ttl
	b.SetChecksum(ChecksumUpdate(b.Checksum(), old, binary.BigEndian.Uint16(b[ipv4TTL:])))
}

// DecTTL decrements the time to live by one, updates the header checksum
// incrementally (RFC 1624), and returns the new TTL. A TTL of 0 is left unchanged.
func (b IPv4) DecTTL() uint8 {
	ttl := b[ipv4TTL]
	if ttl == 0 {
		return 0
	}
	// The TTL is the high byte of its 16-bit word: the word drops by 0x0100.
	old := binary.BigEndian.Uint16(b[ipv4TTL:])
	b[ipv4TTL] = ttl - 1
	b.SetChecksum(ChecksumUpdate(b.Checksum(), old, old-0x0100))
	return ttl - 1
}

// SetSourceAddr sets the source address without touching any checksum. a must be IPv4.
func (b IPv4) SetSourceAddr(a netip.Addr) {
	a4 := a.As4()
	copy(b[ipv4Src:ipv4Src+4], a4[:])
}

// SetDestinationAddr sets the destination address without touching any checksum. a must
// be IPv4.
func (b IPv4) SetDestinationAddr(a netip.Addr) {
	a4 := a.As4()
	copy(b[ipv4Dst:ipv4Dst+4], a4[:])
}

// SetSourceAddrWithChecksumUpdate sets the source address and updates the IP header
// checksum. It returns the change of the address's sum: a transport checksum covering
// the pseudo-header is the caller's, with TCP.UpdateChecksumPseudoHeader or its
// siblings. a must be IPv4.
func (b IPv4) SetSourceAddrWithChecksumUpdate(a netip.Addr) SumDelta {
	return b.setAddrWithChecksumUpdate(ipv4Src, a)
}

// SetDestinationAddrWithChecksumUpdate sets the destination address, updates the IP
// header checksum and returns the change of the address's sum (see
// SetSourceAddrWithChecksumUpdate). a must be IPv4.
func (b IPv4) SetDestinationAddrWithChecksumUpdate(a netip.Addr) SumDelta {
	return b.setAddrWithChecksumUpdate(ipv4Dst, a)
}

func (b IPv4) setAddrWithChecksumUpdate(off int, a netip.Addr) SumDelta {
	a4 := a.As4()
	f := b[off : off+4]
	d := sumDelta(sum32(binary.BigEndian.Uint32(f)), sum32(binary.BigEndian.Uint32(a4[:])))
	b.SetChecksum(d.Checksum(b.Checksum()))
	copy(f, a4[:])
	return d
}

// SetTotalLength sets the total length field without touching the checksum.
func (b IPv4) SetTotalLength(l uint16) { binary.BigEndian.PutUint16(b[ipv4TotalLen:], l) }

// SetChecksum sets the header checksum field.
func (b IPv4) SetChecksum(x uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], x) }

// CalculateChecksum returns the header checksum computed over the header with the
// checksum field taken as zero.
func (b IPv4) CalculateChecksum() uint16 {
	hl := b.HeaderLength()
	sum := Checksum(b[:ipv4Checksum], 0)
	return ^Checksum(b[ipv4Checksum+2:hl], sum)
}

// IPv4Fields are the fields EncodeIPv4 writes.
type IPv4Fields struct {
	TOS            uint8
	TotalLength    uint16
	ID             uint16
	Flags          uint8  // IPv4FlagDontFragment, IPv4FlagMoreFragments
	FragmentOffset uint16 // in bytes, a multiple of 8
	TTL            uint8
	Protocol       uint8
	Src, Dst       netip.Addr // IPv4
}

// EncodeIPv4 writes a 20-byte IPv4 header (no options) with its checksum into b, which
// must hold at least IPv4MinimumSize bytes.
func EncodeIPv4(b []byte, f IPv4Fields) {
	_ = b[IPv4MinimumSize-1]
	b[ipv4VersIHL] = 0x45
	b[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], f.TotalLength)
	binary.BigEndian.PutUint16(b[ipv4ID:], f.ID)
	binary.BigEndian.PutUint16(b[ipv4FlagsFrag:], uint16(f.Flags&7)<<13|(f.FragmentOffset/8)&0x1fff)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = f.Protocol
	v := IPv4(b)
	v.SetSourceAddr(f.Src)
	v.SetDestinationAddr(f.Dst)
	v.SetChecksum(0)
	v.SetChecksum(v.CalculateChecksum())
}

// IPv4 option types.
const (
	IPv4OptionEOL         uint8 = 0
	IPv4OptionNOP         uint8 = 1
	IPv4OptionRecordRoute uint8 = 7
	IPv4OptionTimestamp   uint8 = 68
	IPv4OptionLSRR        uint8 = 131
	IPv4OptionSSRR        uint8 = 137
	IPv4OptionRouterAlert uint8 = 148
	ipv4OptionMinimumSize       = 2
)

// ErrOptionTruncated means an option's length runs past the end of its header or is
// smaller than its own type and length bytes.
var ErrOptionTruncated = errors.New("header: option length invalid or truncated")

// Option is one type-length-value option: Type and its Data, without the type and length
// bytes. Data aliases the packet.
type Option struct {
	Type uint8
	Data []byte
}

// IPv4Options is the options area of an IPv4 header.
type IPv4Options []byte

// Iter returns an iterator over the options.
func (o IPv4Options) Iter() OptionIterator { return OptionIterator{b: o} }

// OptionIterator walks IPv4 or TCP options, which share their layout: type 0 ends the
// list, type 1 is a one-byte no-operation, every other option has a length byte that
// counts the type and length bytes. It stops at the end-of-list option or the end of
// the area; a malformed option stops it with Err returning ErrOptionTruncated.
type OptionIterator struct {
	b   []byte
	err error
}

// Next returns the next option other than NOP, and false when there is none left or
// the rest is malformed (see Err).
func (it *OptionIterator) Next() (Option, bool) {
	for len(it.b) > 0 {
		t := it.b[0]
		switch t {
		case 0: // end of option list
			it.b = nil
			return Option{}, false
		case 1: // no-operation
			it.b = it.b[1:]
			continue
		}
		if len(it.b) < ipv4OptionMinimumSize {
			it.fail()
			return Option{}, false
		}
		l := int(it.b[1])
		if l < ipv4OptionMinimumSize || l > len(it.b) {
			it.fail()
			return Option{}, false
		}
		o := Option{Type: t, Data: it.b[2:l:l]}
		it.b = it.b[l:]
		return o, true
	}
	return Option{}, false
}

func (it *OptionIterator) fail() {
	it.b = nil
	it.err = ErrOptionTruncated
}

// Err returns ErrOptionTruncated when the walk stopped on a malformed option, else nil.
func (it *OptionIterator) Err() error { return it.err }
