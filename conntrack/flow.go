package conntrack

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
	// Topology is the balancer's, opaque to the table.
	Topology uint8
	// State is the TCP state, or StateUDP / StateICMP.
	State State
	// Created and LastSeen are Unix times in nanoseconds from the table's clock.
	Created, LastSeen int64
	// Packets and bytes per direction.
	OrigPackets, OrigBytes, ReplyPackets, ReplyBytes uint64
}

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
