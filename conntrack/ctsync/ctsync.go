// Package ctsync is the wire format of connection sync between ulbd nodes: the node that
// forwards a VIP's flows (the VRRP master) tells its peers about them, so that a peer that
// takes over forwards the same flows to the same servers and open connections live on, as
// IPVS's sync daemon does for LVS.
//
// A message is one UDP datagram (port DefaultPort): an 8-byte header, "ULBS", version 2,
// a flags byte and the record count (big endian), then count fixed-size records. The one
// flag, FlagRequest, asks the peer to send the flows it forwards: a node sends it, with
// no records, when it starts, so that it knows the open connections before it may take
// over. A record:
//
//	0  protocol (6 TCP, 17 UDP)     1  state (conntrack.State)   2  topology   3  zero
//	4  original tuple: source address (16, IPv4-mapped), destination address (16),
//	   source port, destination port (2 each)
//	40 reply tuple, the same way (all zero: none, direct server return)
//	76 server address (16), server port (2)          94 two zero bytes
//	96 SYN proxy adjust: flags (conntrack.AdjustOn, AdjustTimestamps), window scale
//	   difference (signed), two zero bytes, sequence difference (4), TSval difference
//	   (4); all zero for a flow the SYN proxy did not open
//
// Version 2 added the SYN proxy's adjust (version 1 records were 96 bytes): nodes of
// both versions refuse each other's messages, so a pair is upgraded together.
//
// Records carry the client's view and the server's address, never a node's rule or
// server numbers, so that nodes with the same configuration understand each other.
package ctsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"ulb/conntrack"
)

// Wire constants.
const (
	DefaultPort = 8848 // the UDP port of sync messages, IPVS's
	HeaderLen   = 8
	RecordLen   = 108
	// MaxRecords keeps a message within 1400 bytes, below any link MTU it may cross.
	MaxRecords = (1400 - HeaderLen) / RecordLen
	version    = 2
	// FlagRequest asks the receiver to send its flows.
	FlagRequest = 0x01
)

var magic = [4]byte{'U', 'L', 'B', 'S'}

// Record is one flow as the sending node tracks it.
type Record struct {
	Orig, Reply conntrack.Tuple // Reply is zero for direct server return
	State       conntrack.State
	Topology    uint8          // a conntrack.Topology of the balancer's (HalfNAT 0, FullNAT 1, DSR 2)
	Server      netip.AddrPort // the server the flow goes to
	// Adjust is a SYN-proxied flow's translation (flags AdjustOn and AdjustTimestamps
	// only; zero for other flows).
	Adjust conntrack.Adjust
}

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("ctsync: malformed message")

// Append appends a message holding recs (at most MaxRecords) to b.
func Append(b []byte, recs []Record) []byte {
	return appendMessage(b, 0, recs)
}

// AppendRequest appends a message that asks the peer for its flows.
func AppendRequest(b []byte) []byte {
	return appendMessage(b, FlagRequest, nil)
}

func appendMessage(b []byte, flags uint8, recs []Record) []byte {
	if len(recs) > MaxRecords {
		panic(fmt.Sprintf("ctsync: %d records, at most %d", len(recs), MaxRecords))
	}
	b = append(b, magic[:]...)
	b = append(b, version, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(len(recs)))
	for _, r := range recs {
		b = append(b, r.Orig.Proto, uint8(r.State), r.Topology, 0)
		b = appendTuple(b, r.Orig)
		b = appendTuple(b, r.Reply)
		a := r.Server.Addr().As16()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, r.Server.Port())
		b = append(b, 0, 0)
		b = append(b, uint8(r.Adjust.Flags), uint8(r.Adjust.WScale), 0, 0)
		b = binary.BigEndian.AppendUint32(b, r.Adjust.Seq)
		b = binary.BigEndian.AppendUint32(b, r.Adjust.TS)
	}
	return b
}

func appendTuple(b []byte, t conntrack.Tuple) []byte {
	b = append(b, t.SrcAddr[:]...)
	b = append(b, t.DstAddr[:]...)
	b = binary.BigEndian.AppendUint16(b, t.SrcPort)
	return binary.BigEndian.AppendUint16(b, t.DstPort)
}

func readTuple(b []byte, proto uint8) conntrack.Tuple {
	var t conntrack.Tuple
	copy(t.SrcAddr[:], b[0:16])
	copy(t.DstAddr[:], b[16:32])
	t.SrcPort = binary.BigEndian.Uint16(b[32:])
	t.DstPort = binary.BigEndian.Uint16(b[34:])
	t.Proto = proto
	return t
}

// Decode checks a whole message and then calls fn with each record in order; request
// tells whether the message carries FlagRequest. A message with any bad record is refused
// whole, with an error wrapping ErrMalformed.
func Decode(b []byte, fn func(Record)) (request bool, err error) {
	n, err := check(b)
	if err != nil {
		return false, err
	}
	for i := range n {
		fn(record(b[HeaderLen+i*RecordLen:]))
	}
	return b[5]&FlagRequest != 0, nil
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// check validates the message and returns its record count.
func check(b []byte) (int, error) {
	if len(b) < HeaderLen {
		return 0, bad("%d bytes, shorter than the header", len(b))
	}
	if [4]byte(b[0:4]) != magic {
		return 0, bad("no ULBS magic")
	}
	if b[4] != version {
		return 0, bad("version %d, want %d", b[4], version)
	}
	if b[5]&^FlagRequest != 0 {
		return 0, bad("unknown flags %#x", b[5])
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n > MaxRecords || len(b) != HeaderLen+n*RecordLen {
		return 0, bad("%d bytes for %d records", len(b), n)
	}
	for i := range n {
		if err := checkRecord(b[HeaderLen+i*RecordLen : HeaderLen+(i+1)*RecordLen]); err != nil {
			return 0, fmt.Errorf("%w (record %d)", err, i)
		}
	}
	return n, nil
}

func checkRecord(b []byte) error {
	proto, st := b[0], conntrack.State(b[1])
	switch {
	case proto == conntrack.ProtoTCP:
		if !st.IsTCP() {
			return bad("TCP flow in state %d", b[1])
		}
	case proto == conntrack.ProtoUDP:
		if st != conntrack.StateUDP {
			return bad("UDP flow in state %d", b[1])
		}
	default:
		return bad("protocol %d", proto)
	}
	r := record(b)
	if !sameFamily(r.Orig.Src(), r.Orig.Dst()) || r.Orig.SrcPort == 0 || r.Orig.DstPort == 0 {
		return bad("original tuple %v:%d -> %v:%d", r.Orig.Src(), r.Orig.SrcPort, r.Orig.Dst(), r.Orig.DstPort)
	}
	if !r.Reply.IsZero() && (!sameFamily(r.Reply.Src(), r.Reply.Dst()) || r.Reply == r.Orig) {
		return bad("reply tuple %v:%d -> %v:%d", r.Reply.Src(), r.Reply.SrcPort, r.Reply.Dst(), r.Reply.DstPort)
	}
	if s := r.Server.Addr(); !s.IsValid() || s.IsUnspecified() || s.Is4() != r.Orig.Dst().Is4() {
		return bad("server %v", r.Server)
	}
	if b[3] != 0 || b[94] != 0 || b[95] != 0 || b[98] != 0 || b[99] != 0 {
		return bad("reserved bytes set")
	}
	switch fl := conntrack.AdjustFlags(b[96]); {
	case fl&^(conntrack.AdjustOn|conntrack.AdjustTimestamps) != 0:
		return bad("adjust flags %#x", b[96])
	case fl == 0 && [12]byte(b[96:108]) != [12]byte{}:
		return bad("adjust values without flags")
	case fl != 0 && proto != conntrack.ProtoTCP:
		return bad("adjust for a protocol %d flow", proto)
	}
	return nil
}

func sameFamily(a, b netip.Addr) bool {
	return a.Is4() == b.Is4() && !a.IsUnspecified() && !b.IsUnspecified()
}

func record(b []byte) Record {
	proto := b[0]
	return Record{
		Orig:     readTuple(b[4:], proto),
		Reply:    readReply(b[40:], proto),
		State:    conntrack.State(b[1]),
		Topology: b[2],
		Server:   netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[76:92])).Unmap(), binary.BigEndian.Uint16(b[92:])),
		Adjust: conntrack.Adjust{Flags: conntrack.AdjustFlags(b[96]), WScale: int8(b[97]),
			Seq: binary.BigEndian.Uint32(b[100:]), TS: binary.BigEndian.Uint32(b[104:])},
	}
}

// readReply reads the reply tuple; all zero is no tuple (not even the protocol).
func readReply(b []byte, proto uint8) conntrack.Tuple {
	t := readTuple(b, proto)
	if t == (conntrack.Tuple{Proto: proto}) {
		return conntrack.Tuple{}
	}
	return t
}
