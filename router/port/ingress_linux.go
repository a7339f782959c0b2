package port

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's own stack has no business with the frames of a NIC that ulbd owns: it
// holds no address there and does not forward. Yet every received frame still climbs
// through it (ip_rcv, a route lookup, a drop) after the packet taps have copied it to the
// port's ring, on the CPU that received it: 15 % of that CPU at 64-byte frame rates on a
// veth bench. An IngressDrop ends the frame's way right after the taps: a small eBPF
// program attached to the interface's ingress with a tcx link (Linux 6.6) that answers
// TCX_DROP. AF_PACKET sockets see frames before tc ingress runs, so a port loses nothing;
// the kernel's stack sees nothing, which also keeps it from answering ARP, NDP or TCP for
// addresses it should not hold.
//
// The link lives as long as its file descriptor: Close detaches it, and so does the end
// of the process, however it ends. Nothing is left on the interface.

// IngressDrop is a tcx ingress link that drops frames after the packet taps.
type IngressDrop struct {
	prog, link int
}

// tcx verdicts.
const (
	tcxNext = -1 // on to the next program or, after the last, to the stack
	tcxDrop = 2
)

// eBPF instruction codes used here.
const (
	bpfMovImm = 0x07 | 0xb0        // BPF_ALU64 | BPF_MOV | BPF_K
	bpfMovReg = 0x07 | 0xb0 | 0x08 // BPF_ALU64 | BPF_MOV | BPF_X
	bpfLdAbsH = 0x00 | 0x20 | 0x08 // BPF_LD | BPF_ABS | BPF_H: r0 = ntohs(frame[imm:])
	bpfLdAbsB = 0x00 | 0x20 | 0x10 // BPF_LD | BPF_ABS | BPF_B: r0 = frame[imm]
	bpfJneImm = 0x05 | 0x50        // BPF_JMP | BPF_JNE | BPF_K
	bpfExit   = 0x05 | 0x90        // BPF_JMP | BPF_EXIT
)

// bpfInsn encodes struct bpf_insn {u8 code; u8 dst:4, src:4; s16 off; s32 imm} in the
// machine's byte order.
func bpfInsn(code, dst, src uint8, off int16, imm int32) uint64 {
	var b [8]byte
	b[0] = code
	b[1] = dst&0xf | src<<4
	binary.NativeEndian.PutUint16(b[2:], uint16(off))
	binary.NativeEndian.PutUint32(b[4:], uint32(imm))
	return binary.NativeEndian.Uint64(b[:])
}

// dropAllProgram drops every frame.
func dropAllProgram() []uint64 {
	return []uint64{
		bpfInsn(bpfMovImm, 0, 0, 0, tcxDrop),
		bpfInsn(bpfExit, 0, 0, 0, 0),
	}
}

// dropUDPProgram drops untagged IPv4 frames without options to UDP port dport and passes
// every other frame on.
func dropUDPProgram(dport uint16) []uint64 {
	const pass = 11 // index of the pass verdict
	insn := []uint64{
		bpfInsn(bpfMovReg, 6, 1, 0, 0),                     // r6 = skb, as LD_ABS wants
		bpfInsn(bpfLdAbsH, 0, 0, 0, 12),                    // EtherType
		bpfInsn(bpfJneImm, 0, 0, pass-3, 0x0800),           //
		bpfInsn(bpfLdAbsB, 0, 0, 0, 14),                    // version and IHL
		bpfInsn(bpfJneImm, 0, 0, pass-5, 0x45),             //
		bpfInsn(bpfLdAbsB, 0, 0, 0, 14+9),                  // protocol
		bpfInsn(bpfJneImm, 0, 0, pass-7, unix.IPPROTO_UDP), //
		bpfInsn(bpfLdAbsH, 0, 0, 0, 14+20+2),               // destination port
		bpfInsn(bpfJneImm, 0, 0, pass-9, int32(dport)),     //
		bpfInsn(bpfMovImm, 0, 0, 0, tcxDrop),
		bpfInsn(bpfExit, 0, 0, 0, 0),
		bpfInsn(bpfMovImm, 0, 0, 0, tcxNext), // pass
		bpfInsn(bpfExit, 0, 0, 0, 0),
	}
	return insn
}

// AttachIngressDrop drops every frame that arrives on the interface with index ifindex
// (in the calling thread's network namespace) once the packet taps have seen it.
func AttachIngressDrop(ifindex int) (*IngressDrop, error) {
	return attachIngress(ifindex, "ulb_drop_all", dropAllProgram())
}

// AttachIngressDropUDP drops the IPv4 frames to UDP port dport that arrive on the
// interface with index ifindex once the packet taps have seen them, and leaves the others
// to the kernel: a benchmark sink whose frames cost the receiving stack nothing.
func AttachIngressDropUDP(ifindex int, dport uint16) (*IngressDrop, error) {
	return attachIngress(ifindex, "ulb_drop_udp", dropUDPProgram(dport))
}

// bpfAttrSize is the size of the union bpf_attr buffer passed to bpf(2); the kernel reads
// the fields it knows and wants the rest zero.
const bpfAttrSize = 128

// progLoadRetries bounds the retries of a program load interrupted with EAGAIN.
const progLoadRetries = 10

func attachIngress(ifindex int, name string, insns []uint64) (*IngressDrop, error) {
	license := []byte("GPL\x00")
	var attr [bpfAttrSize]byte
	ne := binary.NativeEndian
	ne.PutUint32(attr[0:], unix.BPF_PROG_TYPE_SCHED_CLS)
	ne.PutUint32(attr[4:], uint32(len(insns)))
	ne.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&insns[0]))))
	ne.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&license[0]))))
	copy(attr[48:63], name) // prog_name: 16 bytes with the NUL
	ne.PutUint32(attr[68:], unix.BPF_TCX_INGRESS)
	// The verifier gives up with EAGAIN when a signal is pending for the thread (Go's
	// runtime signals its threads to preempt goroutines): try again, a bounded number of
	// times, as libbpf and cilium/ebpf do.
	prog, err := bpf(unix.BPF_PROG_LOAD, &attr)
	for try := 0; errors.Is(err, unix.EAGAIN) && try < progLoadRetries; try++ {
		prog, err = bpf(unix.BPF_PROG_LOAD, &attr)
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	if err != nil {
		return nil, fmt.Errorf("ingress drop: load eBPF program: %w", err)
	}
	attr = [bpfAttrSize]byte{}
	ne.PutUint32(attr[0:], uint32(prog))
	ne.PutUint32(attr[4:], uint32(ifindex))
	ne.PutUint32(attr[8:], unix.BPF_TCX_INGRESS)
	link, err := bpf(unix.BPF_LINK_CREATE, &attr)
	if err != nil {
		unix.Close(prog)
		return nil, fmt.Errorf("ingress drop: attach to interface %d (tcx, Linux 6.6): %w", ifindex, err)
	}
	return &IngressDrop{prog: prog, link: link}, nil
}

// Close detaches the program.
func (d *IngressDrop) Close() error {
	if d == nil || d.link < 0 {
		return nil
	}
	err := errors.Join(unix.Close(d.link), unix.Close(d.prog))
	d.link, d.prog = -1, -1
	return err
}

func bpf(cmd int, attr *[bpfAttrSize]byte) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(unsafe.Pointer(attr)), bpfAttrSize)
	runtime.KeepAlive(attr)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}
