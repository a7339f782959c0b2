package port

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"ulb/internal/testenv"
)

func newBufs(n int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, BufSize)
	}
	return bufs, make([]int, n)
}

// udpFrame returns a buffer with an Ethernet/IPv4/UDP frame at Headroom (checksums
// complete) and a zero virtio-net header.
func udpFrame(t testing.TB, src, dst net.HardwareAddr, sip, dip net.IP, dport uint16, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: sip, DstIP: dip}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
		t.Fatal(err)
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip4, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return append(make([]byte, Headroom), sb.Bytes()...)
}

// listenUDP opens a UDP socket inside ns.
func listenUDP(t testing.TB, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNetns(ns, func() error {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp", ua)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAFPacketWriteReachesPeer: (a) a frame written by the port reaches a UDP socket of the
// peer kernel; the link, left down, is set up by OpenAFPacket.
func TestAFPacketWriteReachesPeer(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	ip(t, "-n", r, "link", "add", "r0", "type", "veth", "peer", "name", "p0", "netns", p)
	ip(t, "-n", p, "link", "set", "p0", "up")
	ip(t, "-n", p, "addr", "add", "192.0.2.2/24", "dev", "p0")
	port := openAFPacket(t, r, "r0", AFPacketOptions{QdiscBypass: true})
	if port.Name() != "r0" || port.MTU() != 1500 || port.Layer3() || port.BatchSize() != DefaultBatchSize {
		t.Fatalf("port properties %s %d %v %d", port.Name(), port.MTU(), port.Layer3(), port.BatchSize())
	}
	if !bytes.Equal(port.HardwareAddr(), linkMAC(t, r, "r0")) {
		t.Fatalf("HardwareAddr %v", port.HardwareAddr())
	}
	conn := listenUDP(t, p, "192.0.2.2:9999")
	frame := udpFrame(t, port.HardwareAddr(), linkMAC(t, p, "p0"), net.IP{192, 0, 2, 1}, net.IP{192, 0, 2, 2}, 9999, []byte("hello from ulb"))
	buf := make([]byte, 100)
	for try := 0; try < 20; try++ { // the peer link may need a moment to come up
		if n, err := port.Write([][]byte{frame}, Headroom); n != 1 || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := conn.ReadFromUDP(buf)
		if err == nil {
			if string(buf[:n]) != "hello from ulb" || !from.IP.Equal(net.IP{192, 0, 2, 1}) || from.Port != 40000 {
				t.Fatalf("peer got %q from %v", buf[:n], from)
			}
			st := port.Stats()
			if st.TxPackets != uint64(try+1) || st.TxBytes != uint64(try+1)*uint64(len(frame)-Headroom) || st.TxErrors != 0 {
				t.Fatalf("stats %+v", st)
			}
			return
		}
	}
	t.Fatal("the peer never received the datagram")
}

// TestAFPacketWriteErrorsCounted: a frame the kernel refuses is counted and the rest of the
// batch is sent.
func TestAFPacketWriteErrorsCounted(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	port := openAFPacket(t, r, "r0", AFPacketOptions{})
	dst := linkMAC(t, p, "p0")
	good := udpFrame(t, port.HardwareAddr(), dst, net.IP{192, 0, 2, 1}, net.IP{192, 0, 2, 2}, 9, make([]byte, 100))
	big := udpFrame(t, port.HardwareAddr(), dst, net.IP{192, 0, 2, 1}, net.IP{192, 0, 2, 2}, 9, make([]byte, 3000))
	n, err := port.Write([][]byte{good, big, good, make([]byte, 5)}, Headroom)
	if n != 4 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	st := port.Stats()
	if st.TxPackets != 2 || st.TxErrors != 2 || st.LastTxErrno == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// readUntil reads frames from port until stop returns true for one or the deadline passes;
// every frame read is passed to stop.
func readUntil(t testing.TB, port Port, timeout time.Duration, stop func(frame []byte, h VnetHdr) bool) bool {
	t.Helper()
	bufs, sizes := newBufs(port.BatchSize())
	done := make(chan bool, 1)
	go func() {
		for {
			n, err := port.Read(bufs, sizes, Headroom)
			if err != nil {
				done <- false
				return
			}
			for i := 0; i < n; i++ {
				if stop(bufs[i][Headroom:Headroom+sizes[i]], Hdr(bufs[i], Headroom)) {
					done <- true
					return
				}
			}
		}
	}()
	select {
	case ok := <-done:
		return ok
	case <-time.After(timeout):
		port.Close() // unblocks the reader
		<-done
		return false
	}
}

// TestAFPacketReadsGSO: (b) a TCP stream from the peer kernel arrives as frames larger than
// the MTU carrying GSO metadata and NEEDS_CSUM; (c) the frames this namespace's kernel sends
// (the ACKs) are not read back.
func TestAFPacketReadsGSO(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	ip(t, "-n", r, "addr", "add", "192.0.2.1/24", "dev", "r0")
	ip(t, "-n", p, "addr", "add", "192.0.2.2/24", "dev", "p0")
	port := openAFPacket(t, r, "r0", AFPacketOptions{})
	var ln net.Listener
	if err := inNetns(r, func() (err error) { ln, err = net.Listen("tcp", "192.0.2.1:5001"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	var c net.Conn
	if err := inNetns(p, func() (err error) { c, err = net.DialTimeout("tcp", "192.0.2.1:5001", 5*time.Second); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		chunk := make([]byte, 1<<16)
		for i := 0; i < 256; i++ {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	own := port.HardwareAddr()
	var sawOwn bool
	ok := readUntil(t, port, 10*time.Second, func(f []byte, h VnetHdr) bool {
		if bytes.Equal(f[6:12], own) {
			sawOwn = true
		}
		if len(f) <= port.MTU()+14 {
			return false
		}
		if h.GSOType()&^VnetGSOECN != VnetGSOTCPv4 || h.GSOSize() == 0 || int(h.GSOSize()) > port.MTU()-40 ||
			!h.NeedsCsum() || h.CsumStart() != 34 || h.CsumOffset() != 16 {
			t.Errorf("%d-byte frame with virtio-net header %x", len(f), []byte(h))
		}
		return true
	})
	if !ok {
		t.Fatal("no frame larger than the MTU read")
	}
	if sawOwn {
		t.Error("read a frame sent by this namespace's kernel")
	}
}

// TestAFPacketIgnoresOwnFrames: (c) frames sent on the interface by this process are
// never read back. The kernel never loops a socket's frames back to the socket itself, but
// it does show them to every other packet socket of the interface: here a second port on
// the same interface (as a restarted daemon or a fanout sibling would be) writes too.
// The same holds for a port with SplitNewFlows, whose fanout group is made to ignore
// outgoing frames.
func TestAFPacketIgnoresOwnFrames(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testIgnoresOwnFrames(t, AFPacketOptions{}) })
	t.Run("split", func(t *testing.T) { testIgnoresOwnFrames(t, AFPacketOptions{SplitNewFlows: true}) })
}

func testIgnoresOwnFrames(t *testing.T, opts AFPacketOptions) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	ip(t, "-n", p, "addr", "add", "192.0.2.2/24", "dev", "p0")
	port := openAFPacket(t, r, "r0", opts)
	sibling := openAFPacket(t, r, "r0", AFPacketOptions{})
	ip(t, "-n", p, "neigh", "add", "192.0.2.1", "lladdr", port.HardwareAddr().String(), "dev", "p0")
	own := udpFrame(t, port.HardwareAddr(), linkMAC(t, p, "p0"), net.IP{192, 0, 2, 1}, net.IP{192, 0, 2, 2}, 9, []byte("own-frame-marker"))
	batch := [][]byte{own, own, own, own}
	var peer *net.UDPConn
	if err := inNetns(p, func() (err error) {
		peer, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IP{192, 0, 2, 1}, Port: 7})
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	stopSending := make(chan struct{})
	defer close(stopSending)
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := port.Write(batch, Headroom); err != nil {
				return
			}
			if _, err := sibling.Write(batch, Headroom); err != nil {
				return
			}
			if i >= 5 {
				peer.Write([]byte("peer-marker"))
			}
			select {
			case <-stopSending:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	var sawOwn bool
	ok := readUntil(t, port, 5*time.Second, func(f []byte, _ VnetHdr) bool {
		// (The peer's ICMP port unreachable quotes the marker, but not at this offset.)
		if bytes.Equal(f[6:12], port.HardwareAddr()) || bytes.HasPrefix(f[min(len(f), 14+20+8):], []byte("own-frame-marker")) {
			sawOwn = true
		}
		return bytes.Contains(f, []byte("peer-marker"))
	})
	if !ok {
		t.Fatal("the peer's frame never arrived")
	}
	if sawOwn {
		t.Fatal("a frame sent on the interface by this process was read back")
	}
}

// forwardTopology is client namespace a — router namespace r — server namespace b, with
// ports r0 (to a) and r1 (to b) in r. a is 192.0.2.1 and b 192.0.2.2 on one /24; their
// neighbour entries point at the router's MACs, so that a forwarder that rewrites MACs
// connects them.
type forwardTopology struct {
	a, r, b    string
	p0, p1     *AFPacket
	macA, macB net.HardwareAddr
}

func newForwardTopology(t *testing.T) *forwardTopology {
	ft := &forwardTopology{a: newNetns(t), r: newNetns(t), b: newNetns(t)}
	veth(t, ft.a, "a0", ft.r, "r0")
	veth(t, ft.b, "b0", ft.r, "r1")
	ip(t, "-n", ft.a, "addr", "add", "192.0.2.1/24", "dev", "a0")
	ip(t, "-n", ft.b, "addr", "add", "192.0.2.2/24", "dev", "b0")
	ft.p0 = openAFPacket(t, ft.r, "r0", AFPacketOptions{})
	ft.p1 = openAFPacket(t, ft.r, "r1", AFPacketOptions{})
	ft.macA, ft.macB = linkMAC(t, ft.a, "a0"), linkMAC(t, ft.b, "b0")
	ip(t, "-n", ft.a, "neigh", "add", "192.0.2.2", "lladdr", ft.p0.HardwareAddr().String(), "dev", "a0")
	ip(t, "-n", ft.b, "neigh", "add", "192.0.2.1", "lladdr", ft.p1.HardwareAddr().String(), "dev", "b0")
	return ft
}

// forward copies IPv4 frames from in to out, rewriting MACs, until in is closed. seen, if
// not nil, is called with every frame before it is written.
func forward(in, out Port, dst net.HardwareAddr, seen func(f []byte, h VnetHdr)) {
	bufs, sizes := newBufs(in.BatchSize())
	wbufs := make([][]byte, len(bufs))
	for {
		n, err := in.Read(bufs, sizes, Headroom)
		if err != nil {
			return
		}
		w := 0
		for i := 0; i < n; i++ {
			f := bufs[i][Headroom : Headroom+sizes[i]]
			if binary.BigEndian.Uint16(f[12:]) != etherTypeIPv4 {
				continue
			}
			if seen != nil {
				seen(f, Hdr(bufs[i], Headroom))
			}
			copy(f[0:6], dst)
			copy(f[6:12], out.HardwareAddr())
			wbufs[w] = bufs[i][:Headroom+sizes[i]]
			w++
		}
		if _, err := out.Write(wbufs[:w], Headroom); err != nil {
			return
		}
	}
}

// TestAFPacketForwardsChecksumPartial: (d) a UDP datagram from a local sender is read with
// NEEDS_CSUM (its checksum not filled in); written as is on the other port, whose veth does
// no checksum offload, it arrives with a valid checksum, completed by the kernel.
func TestAFPacketForwardsChecksumPartial(t *testing.T) {
	testenv.NeedTool(t, "ethtool")
	ft := newForwardTopology(t)
	nsExec(t, ft.r, "ethtool", "-K", "r1", "tx", "off")

	var mu sync.Mutex
	var partial int
	go forward(ft.p0, ft.p1, ft.macB, func(f []byte, h VnetHdr) {
		if h.NeedsCsum() && f[23] == 17 {
			mu.Lock()
			partial++
			mu.Unlock()
		}
	})
	// A raw capture in b sees the bytes on the wire, checksum field included.
	var capc *packet.Conn
	err := inNetns(ft.b, func() error {
		ifi, err := net.InterfaceByName("b0")
		if err != nil {
			return err
		}
		capc, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer capc.Close()
	srv := listenUDP(t, ft.b, "192.0.2.2:9999")
	var cli *net.UDPConn
	if err := inNetns(ft.a, func() (err error) {
		cli, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IP{192, 0, 2, 2}, Port: 9999})
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	msg := []byte("checksum me, please: 0123456789")
	got := make([]byte, 200)
	received := false
	for try := 0; try < 20 && !received; try++ {
		cli.Write(msg)
		srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := srv.ReadFromUDP(got)
		received = err == nil && bytes.Equal(got[:n], msg)
	}
	if !received {
		t.Fatal("the datagram never reached the server")
	}
	mu.Lock()
	if partial == 0 {
		t.Error("no datagram was read with NEEDS_CSUM: the test does not exercise checksum completion")
	}
	mu.Unlock()
	// Find the datagram in the capture and check its UDP checksum against gopacket's.
	capc.SetReadDeadline(time.Now().Add(2 * time.Second))
	raw := make([]byte, 2000)
	for {
		n, _, err := capc.ReadFrom(raw)
		if err != nil {
			t.Fatalf("no datagram captured on b0: %v", err)
		}
		f := raw[:n]
		if !bytes.Contains(f, msg) {
			continue
		}
		pk := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		udp, _ := pk.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil {
			t.Fatal("captured frame has no UDP layer")
		}
		wire := udp.Checksum
		if err := udp.SetNetworkLayerForChecksum(pk.NetworkLayer()); err != nil {
			t.Fatal(err)
		}
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true}, udp, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		if want := binary.BigEndian.Uint16(sb.Bytes()[6:]); wire != want {
			t.Fatalf("checksum on the wire %#04x, want %#04x", wire, want)
		}
		return
	}
}

// TestAFPacketForwardsTCP: a TCP stream with the peers' default offloads (checksum, TSO,
// GRO) crosses a userspace forwarder of two AF_PACKET ports intact, GSO frames included.
func TestAFPacketForwardsTCP(t *testing.T) {
	ft := newForwardTopology(t)
	var gso sync.Map
	go forward(ft.p0, ft.p1, ft.macB, func(f []byte, h VnetHdr) {
		if h.IsGSO() {
			gso.Store("a->b", true)
		}
	})
	go forward(ft.p1, ft.p0, ft.macA, nil)

	var ln net.Listener
	if err := inNetns(ft.b, func() (err error) { ln, err = net.Listen("tcp", "192.0.2.2:5001"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sum := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sum <- nil
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		sum <- h.Sum(nil)
	}()
	var c net.Conn
	if err := inNetns(ft.a, func() (err error) { c, err = net.DialTimeout("tcp", "192.0.2.2:5001", 5*time.Second); return }); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7 >> 3)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	want := sha256.Sum256(data)
	select {
	case got := <-sum:
		if !bytes.Equal(got, want[:]) {
			t.Fatal("the server received different data")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not complete")
	}
	t.Logf("16 MiB in %v (%.1f Gbit/s)", time.Since(start), 16*8*1.048576/1000/time.Since(start).Seconds())
	if _, ok := gso.Load("a->b"); !ok {
		t.Error("no GSO frame was forwarded: the test did not exercise GSO")
	}
}

// TestAFPacketMemberships: PACKET_MR_UNICAST makes the port receive frames for a VRRP
// virtual MAC; adding and removing memberships works and bad addresses are refused.
func TestAFPacketMemberships(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	port := openAFPacket(t, r, "r0", AFPacketOptions{})
	sender := openAFPacket(t, p, "p0", AFPacketOptions{})
	vmac := net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x07}
	group := net.HardwareAddr{0x33, 0x33, 0xff, 0x00, 0x00, 0x07}
	if err := port.AddUnicast(group); err == nil {
		t.Error("AddUnicast accepted a multicast address")
	}
	if err := port.AddMulticast(vmac); err == nil {
		t.Error("AddMulticast accepted a unicast address")
	}
	if err := port.AddMulticast(group); err != nil {
		t.Fatal(err)
	}
	if err := port.RemoveMulticast(group); err != nil {
		t.Fatal(err)
	}
	if err := port.AddUnicast(vmac); err != nil {
		t.Fatal(err)
	}
	frame := udpFrame(t, sender.HardwareAddr(), vmac, net.IP{192, 0, 2, 2}, net.IP{192, 0, 2, 100}, 9, []byte("to-the-vmac"))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < 200; i++ {
			sender.Write([][]byte{frame}, Headroom)
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	if !readUntil(t, port, 5*time.Second, func(f []byte, _ VnetHdr) bool { return bytes.Equal(f[:6], vmac) }) {
		t.Fatal("no frame to the virtual MAC received")
	}
}

// TestAFPacketCloseUnblocksRead: Close makes a blocked Read return ErrClosed.
func TestAFPacketCloseUnblocksRead(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	checkCloseUnblocksRead(t, openAFPacket(t, r, "r0", AFPacketOptions{}))
}

// checkCloseUnblocksRead checks that Close makes a Read blocked on an idle port return
// ErrClosed, and that Write then fails with it too.
func checkCloseUnblocksRead(t *testing.T, port Port) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		bufs, sizes := newBufs(4)
		for {
			if _, err := port.Read(bufs, sizes, Headroom); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	port.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if _, err := port.Write([][]byte{make([]byte, 100)}, Headroom); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

// TestAFPacketZeroAlloc: a Write and a Read of a batch allocate nothing in steady state.
func TestAFPacketZeroAlloc(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	rx := openAFPacket(t, r, "r0", AFPacketOptions{})
	tx := openAFPacket(t, p, "p0", AFPacketOptions{})
	frame := udpFrame(t, tx.HardwareAddr(), rx.HardwareAddr(), net.IP{192, 0, 2, 2}, net.IP{192, 0, 2, 1}, 9, make([]byte, 18))
	batch := [][]byte{frame, frame, frame, frame}
	bufs, sizes := newBufs(8)
	// Should a reply never come, Close unblocks Read and the test fails instead of hanging.
	guard := time.AfterFunc(20*time.Second, func() { rx.Close() })
	defer guard.Stop()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := tx.Write(batch, Headroom); err != nil {
			t.Fatal(err)
		}
		if _, err := rx.Read(bufs, sizes, Headroom); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Write+Read", allocs)
	}
}

func TestOpenAFPacketErrors(t *testing.T) {
	r := newNetns(t)
	err := inNetns(r, func() error {
		_, err := OpenAFPacket("nonexistent0", AFPacketOptions{})
		return err
	})
	if err == nil {
		t.Fatal("OpenAFPacket on a missing interface succeeded")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("nonexistent0")) {
		t.Fatalf("error does not name the device: %v", err)
	}
}

// TestAFPacketFanout: two ports in one PACKET_FANOUT group share the interface's frames,
// each frame read by exactly one of them.
func TestAFPacketFanout(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	opts := AFPacketOptions{FanoutGroup: 4242, FanoutMode: unix.PACKET_FANOUT_LB}
	ports := []*AFPacket{openAFPacket(t, r, "r0", opts), openAFPacket(t, r, "r0", opts)}
	sender := openAFPacket(t, p, "p0", AFPacketOptions{})
	const frames = 200
	batch := make([][]byte, frames)
	for i := range batch {
		batch[i] = udpFrame(t, sender.HardwareAddr(), ports[0].HardwareAddr(), net.IP{192, 0, 2, 2}, net.IP{192, 0, 2, 1}, 9,
			[]byte{'f', 'a', 'n', byte(i)})
	}
	if _, err := sender.Write(batch, Headroom); err != nil {
		t.Fatal(err)
	}
	seen := make([]int, frames)
	per := make([]int, 2)
	for k, port := range ports {
		readUntil(t, port, 500*time.Millisecond, func(f []byte, _ VnetHdr) bool {
			if len(f) >= 14+20+8+4 && bytes.Equal(f[14+20+8:14+20+8+3], []byte("fan")) {
				seen[f[14+20+8+3]]++
				per[k]++
			}
			return false
		})
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("frame %d read %d times", i, n)
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("frames per port %v: the group did not share them", per)
	}
}

// TestAFPacketControlWhileReadBlocked: memberships and Stats work while a Read sleeps in
// ppoll (they share the receive socket with it), and Close still ends that Read.
func TestAFPacketControlWhileReadBlocked(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	port := openAFPacket(t, r, "r0", AFPacketOptions{})
	errc := make(chan error, 1)
	go func() {
		bufs, sizes := newBufs(4)
		for {
			if _, err := port.Read(bufs, sizes, Headroom); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // let Read reach ppoll
	done := make(chan error, 1)
	go func() {
		vmac := net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x09}
		if err := port.AddUnicast(vmac); err != nil {
			done <- err
			return
		}
		port.Stats()
		done <- port.RemoveUnicast(vmac)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		port.Close()
		t.Fatal("memberships blocked behind a sleeping Read")
	}
	select {
	case err := <-errc:
		t.Fatalf("Read returned during the membership changes: %v", err)
	default:
	}
	port.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := port.AddUnicast(net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x09}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddUnicast after Close: %v", err)
	}
}

// TestAFPacketConcurrentWriteClose: Writes from several goroutines racing with Close end
// with ErrClosed and never touch a closed (possibly reused) descriptor.
func TestAFPacketConcurrentWriteClose(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	port := openAFPacket(t, r, "r0", AFPacketOptions{})
	frame := udpFrame(t, port.HardwareAddr(), net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}, net.IP{192, 0, 2, 1}, net.IP{192, 0, 2, 2}, 9, make([]byte, 18))
	batch := [][]byte{frame, frame, frame, frame}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				if _, err := port.Write(batch, Headroom); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := port.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("Write racing Close: %v", err)
		}
	}
	if st := port.Stats(); st.TxPackets == 0 || st.TxErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAFPacketRingKeepsOrder: frames longer than a receive-ring slot (jumbo frames here)
// arrive whole and in their place among short ones, and a frame longer than the read
// buffer is dropped and counted.
func TestAFPacketRingKeepsOrder(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	ip(t, "-n", r, "link", "set", "r0", "mtu", "9000")
	ip(t, "-n", p, "link", "set", "p0", "mtu", "9000")
	sender := openAFPacket(t, p, "p0", AFPacketOptions{})
	port := openAFPacket(t, r, "r0", AFPacketOptions{})
	var frames [][]byte
	for i, n := range []int{10, 4000, 20, 3000, 8000, 30, 5000, 5000, 40} {
		payload := bytes.Repeat([]byte{byte(i + 1)}, n)
		frames = append(frames, udpFrame(t, sender.HardwareAddr(), port.HardwareAddr(), net.IP{192, 0, 2, 2}, net.IP{192, 0, 2, 1}, 9, payload))
	}
	const rounds = 3 * rxSlots / 9 // several times around the ring
	bufs, sizes := newBufs(port.BatchSize())
	// The 8000-byte frame does not fit a 6000-byte read buffer.
	for i := range bufs {
		bufs[i] = bufs[i][:Headroom+6000]
	}
	done := make(chan error, 1)
	go func() {
		for k := 0; k < rounds; k++ {
			if _, err := sender.Write(frames, Headroom); err != nil {
				done <- err
				return
			}
			// Stay within the receive ring and queue.
			time.Sleep(200 * time.Microsecond)
		}
		done <- nil
	}()
	want := 0 // index into frames of the next frame expected
	seen := 0
	deadline := time.Now().Add(10 * time.Second)
	for seen < rounds*(len(frames)-1) && time.Now().Before(deadline) {
		n, err := port.Read(bufs, sizes, Headroom)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			got := bufs[i][Headroom : Headroom+sizes[i]]
			if len(got) < 14 || !bytes.Equal(got[6:12], sender.HardwareAddr()) || got[12] != 0x08 || got[13] != 0 {
				continue // the peer kernel's own frames (IPv6 NDP, MLD)
			}
			if want == 4 {
				want++ // the 8000-byte frame is dropped
			}
			if !bytes.Equal(got, frames[want][Headroom:]) {
				t.Fatalf("frame %d: %d bytes, want frame %d of %d bytes", seen, len(got), want, len(frames[want])-Headroom)
			}
			want = (want + 1) % len(frames)
			seen++
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := port.Stats()
	if seen != rounds*(len(frames)-1) || st.RxTruncated != rounds || st.RxKernelDrops != 0 {
		t.Fatalf("read %d frames of %d; stats %+v", seen, rounds*(len(frames)-1), st)
	}
}
