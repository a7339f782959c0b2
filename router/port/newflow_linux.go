package port

import (
	"fmt"

	cbpf "golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A flood of new flows must not starve the flows a port already carries. With
// AFPacketOptions.SplitNewFlows a port takes its frames through two receive sockets in
// one PACKET_FANOUT group whose classic BPF classifier runs in the kernel, before any
// copy: a TCP segment with SYN and without ACK (a new flow's first segment, IPv4 or IPv6)
// goes to the new-flow socket's small ring, every other frame to the main ring. Read
// takes the main ring first and gives the new-flow ring a bounded share of each batch
// (NewFlowShare of it when the main ring is busy, all the room left when it is not), so
// that a SYN flood fills and overflows only its own ring: the kernel drops the excess
// there, cheaply, and counts it (AFPacketStats.RxNewFlowDrops), while established
// frames and the ACKs that complete handshakes keep their ring and their share of the
// loop.

// newFlowSlots is the new-flow ring's size in slots: a few batches, so that a burst of
// legitimate SYNs fits and a flood is shed by the kernel instead of queued.
const newFlowSlots = 512

// NewFlowShare is the part of a Read batch kept for the new-flow ring when the main ring
// has frames enough to fill it: one frame in NewFlowShare.
const NewFlowShare = 4

// fanout member indices: a member's index is its place in the order it joined.
const (
	fanoutMain    = 0
	fanoutNewFlow = 1
)

// newFlowClassifier is the fanout group's program. The kernel runs it on the frame with
// the data at the network header (the Ethernet header already pulled), and the
// protocol from skb->protocol; a load past the end returns 0 (the main ring).
func newFlowClassifier() ([]unix.SockFilter, error) {
	prog := []cbpf.Instruction{
		/* 0 */ cbpf.LoadExtension{Num: cbpf.ExtProto},
		/* 1 */ cbpf.JumpIf{Cond: cbpf.JumpEqual, Val: unix.ETH_P_IP, SkipTrue: 1},
		/* 2 */ cbpf.JumpIf{Cond: cbpf.JumpEqual, Val: unix.ETH_P_IPV6, SkipTrue: 7, SkipFalse: 12},
		// IPv4: TCP, the first fragment, the flags at IHL*4+13.
		/* 3 */ cbpf.LoadAbsolute{Off: 9, Size: 1},
		/* 4 */ cbpf.JumpIf{Cond: cbpf.JumpNotEqual, Val: unix.IPPROTO_TCP, SkipTrue: 10},
		/* 5 */ cbpf.LoadAbsolute{Off: 6, Size: 2},
		/* 6 */ cbpf.JumpIf{Cond: cbpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 8},
		/* 7 */ cbpf.LoadMemShift{Off: 0},
		/* 8 */ cbpf.LoadIndirect{Off: 13, Size: 1},
		/* 9 */ cbpf.Jump{Skip: 3},
		// IPv6: TCP right after the fixed header (a segment behind extension headers goes
		// to the main ring: rare, and never starved there).
		/* 10 */ cbpf.LoadAbsolute{Off: 6, Size: 1},
		/* 11 */ cbpf.JumpIf{Cond: cbpf.JumpNotEqual, Val: unix.IPPROTO_TCP, SkipTrue: 3},
		/* 12 */ cbpf.LoadAbsolute{Off: 40 + 13, Size: 1},
		// Both: SYN without ACK.
		/* 13 */ cbpf.ALUOpConstant{Op: cbpf.ALUOpAnd, Val: 0x12},
		/* 14 */ cbpf.JumpIf{Cond: cbpf.JumpEqual, Val: 0x02, SkipTrue: 1},
		/* 15 */ cbpf.RetConstant{Val: fanoutMain},
		/* 16 */ cbpf.RetConstant{Val: fanoutNewFlow},
	}
	raw, err := cbpf.Assemble(prog)
	if err != nil {
		return nil, err
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// splitNewFlows opens the new-flow ring and puts it and the main ring in a fanout group
// of their own (an id the kernel picks) with the classifier.
func (p *AFPacket) splitNewFlows(ifindex int, opts AFPacketOptions) error {
	nf, err := openRxSocket(ifindex, opts, newFlowSlots)
	if err != nil {
		return err
	}
	p.newFlow = &nf
	filter, err := newFlowClassifier()
	if err != nil {
		return fmt.Errorf("classifier: %w", err)
	}
	// The kernel keeps outgoing frames from a fanout group only when the group is made
	// with the flag (Linux 6.9); without it takeSlot drops and counts them.
	mode := unix.PACKET_FANOUT_CBPF | unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
	join := func(fd, id, flags int) error {
		return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, id|(mode|flags)<<16)
	}
	if err := join(p.main.fd, 0, unix.PACKET_FANOUT_FLAG_UNIQUEID); err == unix.EINVAL {
		mode &^= unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
		err = join(p.main.fd, 0, unix.PACKET_FANOUT_FLAG_UNIQUEID)
		if err != nil {
			return fmt.Errorf("PACKET_FANOUT: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("PACKET_FANOUT: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(p.main.fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, &fprog); err != nil {
		return fmt.Errorf("PACKET_FANOUT_DATA: %w", err)
	}
	v, err := unix.GetsockoptInt(p.main.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return fmt.Errorf("PACKET_FANOUT id: %w", err)
	}
	if err := join(nf.fd, v&0xffff, 0); err != nil {
		return fmt.Errorf("PACKET_FANOUT join group %d: %w", v&0xffff, err)
	}
	return nil
}

// SplitsNewFlows tells whether the port takes new flows through a ring of their own
// (AFPacketOptions.SplitNewFlows).
func (p *AFPacket) SplitsNewFlows() bool { return p.newFlow != nil }
