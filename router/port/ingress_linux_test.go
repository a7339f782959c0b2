package port

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"
)

// kernelRXBench is a veth pair r0 (namespace r, address 192.0.2.1 in r's kernel) — p0
// (namespace p, 192.0.2.2, a static neighbour entry for 192.0.2.1 since r's kernel may be
// kept from answering ARP) and a UDP socket of p's kernel aimed at 192.0.2.1:dport.
func kernelRXBench(t *testing.T) (r string, peer func(dport int) *net.UDPConn) {
	t.Helper()
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	ip(t, "-n", r, "addr", "add", "192.0.2.1/24", "dev", "r0")
	ip(t, "-n", p, "addr", "add", "192.0.2.2/24", "dev", "p0")
	ip(t, "-n", p, "neigh", "add", "192.0.2.1", "lladdr", linkMAC(t, r, "r0").String(), "dev", "p0")
	return r, func(dport int) *net.UDPConn {
		var c *net.UDPConn
		if err := inNetns(p, func() (err error) {
			c, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IP{192, 0, 2, 1}, Port: dport})
			return
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

// kernelGets sends datagrams with a fresh marker from peer until the socket of r's kernel
// receives one (true) or wait passes (false). When tap is not nil, it must see the marker
// too.
func kernelGets(t *testing.T, peer, kernel *net.UDPConn, tap Port, wait time.Duration) bool {
	t.Helper()
	marker := []byte(fmt.Sprintf("marker-%d", time.Now().UnixNano()))
	tapSaw := make(chan bool, 1)
	if tap != nil {
		go func() {
			tapSaw <- readUntil(t, tap, wait+time.Second, func(frame []byte, _ VnetHdr) bool {
				return bytes.Contains(frame, marker)
			})
		}()
	}
	got := false
	buf := make([]byte, 256)
	for deadline := time.Now().Add(wait); time.Now().Before(deadline) && !got; {
		if _, err := peer.Write(marker); err != nil {
			t.Fatalf("peer write: %v", err)
		}
		kernel.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, _, err := kernel.ReadFromUDP(buf)
			if err != nil {
				break
			}
			if bytes.Equal(buf[:n], marker) {
				got = true
				break
			}
		}
	}
	if tap != nil && !<-tapSaw {
		t.Errorf("the port did not read the datagram %q", marker)
	}
	return got
}

// TestAFPacketDropKernelRX: with DropKernelRX the port still reads every frame while the
// kernel's stack of its namespace receives none (a socket bound to the kernel's own
// address of the NIC hears nothing); Close gives the frames back to the kernel.
func TestAFPacketDropKernelRX(t *testing.T) {
	r, peer := kernelRXBench(t)
	kernel := listenUDP(t, r, "192.0.2.1:9999")
	toKernel := peer(9999)

	before := openAFPacket(t, r, "r0", AFPacketOptions{})
	if dropped, err := before.KernelRXDropped(); dropped || err != nil {
		t.Fatalf("KernelRXDropped without the option: %v, %v", dropped, err)
	}
	if !kernelGets(t, toKernel, kernel, before, 3*time.Second) {
		t.Fatal("the kernel does not receive the peer's datagrams even without the drop")
	}
	before.Close()

	port := openAFPacket(t, r, "r0", AFPacketOptions{DropKernelRX: true})
	if dropped, err := port.KernelRXDropped(); !dropped || err != nil {
		t.Fatalf("KernelRXDropped: %v, %v", dropped, err)
	}
	if kernelGets(t, toKernel, kernel, port, time.Second) {
		t.Fatal("the kernel received a datagram while the port drops its receive")
	}
	port.Close() // detaches the program
	if dropped, _ := port.KernelRXDropped(); dropped {
		t.Fatal("KernelRXDropped after Close")
	}
	if !kernelGets(t, toKernel, kernel, nil, 3*time.Second) {
		t.Fatal("the kernel does not receive again after Close")
	}
}

// TestIngressDropUDP: the benchmark sink drops IPv4 UDP to its port only: a socket on
// that port hears nothing while a packet tap sees the frames, and other ports (and ARP,
// which the peer here does not need) go on reaching the kernel.
func TestIngressDropUDP(t *testing.T) {
	r, peer := kernelRXBench(t)
	sink, other := listenUDP(t, r, "192.0.2.1:9"), listenUDP(t, r, "192.0.2.1:10")
	toSink, toOther := peer(9), peer(10)
	tap := openAFPacket(t, r, "r0", AFPacketOptions{})
	var drop *IngressDrop
	if err := inNetns(r, func() error {
		ifi, err := net.InterfaceByName("r0")
		if err != nil {
			return err
		}
		drop, err = AttachIngressDropUDP(ifi.Index, 9)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer drop.Close()
	if kernelGets(t, toSink, sink, tap, time.Second) {
		t.Fatal("the sink port's socket received a datagram")
	}
	if !kernelGets(t, toOther, other, nil, 3*time.Second) {
		t.Fatal("a datagram to another port did not reach the kernel")
	}
	if err := drop.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !kernelGets(t, toSink, sink, nil, 3*time.Second) {
		t.Fatal("the sink port's socket hears nothing after Close")
	}
}

// TestIngressProgramsEncode pins the encoding of the two eBPF programs' first
// instructions, so that a change shows up without a kernel to load them.
func TestIngressProgramsEncode(t *testing.T) {
	all := dropAllProgram()
	if len(all) != 2 || all[0] != bpfInsn(0xb7, 0, 0, 0, 2) || all[1] != bpfInsn(0x95, 0, 0, 0, 0) {
		t.Fatalf("drop-all program %#x", all)
	}
	var b [8]byte
	for i, v := range []uint64{bpfInsn(0xbf, 6, 1, 0, 0), bpfInsn(0x55, 0, 0, 8, 0x0800)} {
		for j := range b {
			b[j] = byte(v >> (8 * j))
		}
		want := [][8]byte{{0xbf, 0x16, 0, 0, 0, 0, 0, 0}, {0x55, 0, 8, 0, 0, 8, 0, 0}}[i]
		if b != want {
			t.Errorf("instruction %d encodes as % x, want % x", i, b, want)
		}
	}
	if p := dropUDPProgram(9); p[8] != bpfInsn(0x55, 0, 0, 2, 9) {
		t.Errorf("port compare %#x", p[8])
	}
}
