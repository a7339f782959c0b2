package conntrack

import "fmt"

// Flow is one tracked connection, returned by value. It holds no pointer.
type Flow struct {
	// Orig is the client's tuple as received (client -> VIP).
	Orig Tuple
	// Reply is the tuple the server's answers carry: server -> client for half-NAT, server ->
	// proxy source for full-NAT. The zero Tuple means the answers are never seen (DSR): it is
	// not indexed and the TCP state machine uses IPVS's input-only table.
	Reply Tuple
	// Rule and Server are the balancer's indices, kept as given.
	Rule, Server uint32
	// Topology says how the router forwards the flow's packets; the table only stores it.
	Topology Topology
	// State is the TCP state, or StateUDP / StateICMP.
	State State
	// Created and LastSeen are Unix times in nanoseconds from the table's clock.
	Created, LastSeen int64
	// Packets and bytes per direction.
	OrigPackets, OrigBytes, ReplyPackets, ReplyBytes uint64
	// Adjust is how a SYN-proxied flow's server side differs from what its client saw.
	Adjust Adjust
}

// Adjust is the translation of a SYN-proxied TCP flow between the server's view and the
// client's (the router answered the client's handshake itself with a SYN cookie, then
// opened the connection to the server): nat.SeqAdjust's fields, kept in the table.
type Adjust struct {
	Flags AdjustFlags
	// Seq is the client's view of the server's sequence numbers minus the server's own;
	// TS the same for TSvals (with AdjustTimestamps).
	Seq, TS uint32
	// WScale is the server's window scale shift minus the one the client was told.
	WScale int8
	// While AdjustPending: the window and TSval of the client's ACK, which the router's
	// ACK to the server carries.
	Window   uint16
	TSClient uint32
}

// AdjustFlags say what an Adjust holds.
type AdjustFlags uint8

const (
	// AdjustPending: the router has opened the connection to the server and waits for
	// its SYN-ACK; Seq holds the cookie (the client's view of the server's initial
	// sequence number) and TS the TSval the client echoes.
	AdjustPending AdjustFlags = 1 << iota
	// AdjustOn: the server's handshake is done and Seq, TS and WScale translate.
	AdjustOn
	// AdjustTimestamps: the connection carries TCP timestamps.
	AdjustTimestamps
	// AdjustWScale: the client was told the router's window scale (it offered its own).
	AdjustWScale
)

// Topology is how the router forwards a flow's packets. The values of the balancer's
// topologies (HalfNAT, FullNAT, DSR, Tunnel) are part of ctsync's wire format and never change.
type Topology uint8

const (
	// HalfNAT rewrites the client's destination (VIP and port) to the server's; the
	// answers come back through the router.
	HalfNAT Topology = 0
	// FullNAT also rewrites the client's source to a proxy source address and port.
	FullNAT Topology = 1
	// DSR (direct server return) sends the client's packets to the server unchanged; the
	// server answers the client directly, so there is no reply tuple.
	DSR Topology = 2
	// Masquerade is a connection the kernel behind the router's host port opened: its
	// source becomes the egress port's address and a port of the router's own.
	Masquerade Topology = 3
	// HostPort is a connection to one of the router's own addresses that the kernel
	// behind the host port answers: its destination becomes the kernel's address.
	HostPort Topology = 4
	// Tunnel sends the client's packets to the server unchanged inside an IP-in-IP
	// header (RFC 2003, RFC 2473); as under DSR the server answers the client directly,
	// so there is no reply tuple.
	Tunnel Topology = 5
	// AutoNAT is a connection a host of an autonat network opened towards the outside:
	// its source becomes the outside address and a port (ICMP echo: an identifier) of
	// the router's own.
	AutoNAT Topology = 6
	// SNAT is a connection the private host of a static 1:1 mapping opened: its source
	// becomes the mapping's public address, its port kept.
	SNAT Topology = 7
	// DNAT is a connection to a static mapping's public address (and port): its
	// destination becomes the private address (and port).
	DNAT Topology = 8
)

var topologyNames = [...]string{
	HalfNAT:    "half-nat",
	FullNAT:    "full-nat",
	DSR:        "dsr",
	Masquerade: "masquerade",
	HostPort:   "host-port",
	Tunnel:     "tunnel",
	AutoNAT:    "autonat",
	SNAT:       "snat",
	DNAT:       "dnat",
}

func (t Topology) String() string {
	if int(t) < len(topologyNames) {
		return topologyNames[t]
	}
	return fmt.Sprintf("topology(%d)", uint8(t))
}

// Balanced reports whether t is one of the balancer's topologies (a rule's flow), not the
// router's own.
func (t Topology) Balanced() bool { return t <= DSR || t == Tunnel }

// Direct reports whether the servers answer the client directly, past the router (DSR,
// Tunnel): the flow has no reply tuple.
func (t Topology) Direct() bool { return t == DSR || t == Tunnel }

// Outbound reports whether t is a translation of connections that hosts behind the
// router opened towards the outside (autonat, a 1:1 mapping's SNAT): their Original
// direction leaves by the outside port.
func (t Topology) Outbound() bool { return t == AutoNAT || t == SNAT }

// Tuple returns the flow's tuple for direction d.
func (f *Flow) Tuple(d Direction) Tuple {
	if d == Reply {
		return f.Reply
	}
	return f.Orig
}

// Account applies one packet to f without a table: it advances the TCP state with tcpFlags
// (header.TCPFlag*) and counts the packet and its bytes in direction d. Call it on a new flow
// with its first packet before Insert; Lookup does the same for the packets that follow.
func (f *Flow) Account(d Direction, tcpFlags uint8, bytes int) {
	if f.Orig.Proto == ProtoTCP {
		f.State = NextState(f.State, d, f.Reply.IsZero(), tcpFlags)
	}
	if bytes < 0 {
		bytes = 0
	}
	if d == Reply {
		f.ReplyPackets++
		f.ReplyBytes += uint64(bytes)
	} else {
		f.OrigPackets++
		f.OrigBytes += uint64(bytes)
	}
}
