package port

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// openTUN creates a TUN port inside a new namespace with the kernel side addressed
// 192.0.2.1/24 and 2001:db8::1/64; the router side is 192.0.2.2 / 2001:db8::2.
func openTUN(t *testing.T, mtu int) (*TUN, string) {
	ns := newNetns(t)
	var tun *TUN
	if err := inNetns(ns, func() (err error) { tun, err = OpenTUN("ulbtun0", mtu); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	ip(t, "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "ulbtun0")
	ip(t, "-n", ns, "addr", "add", "2001:db8::1/64", "dev", "ulbtun0", "nodad")
	return tun, ns
}

// ipFrame serializes Ethernet + IPv4 (192.0.2.2 → 192.0.2.1) + l4 with gopacket at
// Headroom in a new buffer.
func ipFrame(t testing.TB, dst net.HardwareAddr, l4 gopacket.SerializableLayer, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: TUNPeerMAC, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, SrcIP: net.IP{192, 0, 2, 2}, DstIP: net.IP{192, 0, 2, 1}}
	switch l := l4.(type) {
	case *layers.UDP:
		ip4.Protocol = layers.IPProtocolUDP
		l.SetNetworkLayerForChecksum(ip4)
	case *layers.TCP:
		ip4.Protocol = layers.IPProtocolTCP
		l.SetNetworkLayerForChecksum(ip4)
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip4, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return append(make([]byte, Headroom), sb.Bytes()...)
}

func TestTUNProperties(t *testing.T) {
	tun, ns := openTUN(t, 1400)
	if !tun.Layer3() || tun.MTU() != 1400 || tun.Name() != "ulbtun0" || tun.BatchSize() < 1 {
		t.Fatalf("properties %v %d %s", tun.Layer3(), tun.MTU(), tun.Name())
	}
	mac := tun.HardwareAddr()
	if len(mac) != 6 || mac[0]&3 != 2 || !bytes.Equal(mac, tunHardwareAddr("ulbtun0")) || bytes.Equal(mac, tunHardwareAddr("ulbtun1")) || bytes.Equal(mac, TUNPeerMAC) {
		t.Fatalf("HardwareAddr %v is not a stable locally administered unicast MAC of the name", mac)
	}
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName("ulbtun0")
		if err != nil {
			return err
		}
		if ifi.MTU != 1400 || ifi.Flags&net.FlagUp == 0 {
			t.Errorf("kernel interface MTU %d flags %v", ifi.MTU, ifi.Flags)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := inNetns(ns, func() error { _, err := OpenTUN("ulbtun1", 20); return err }); err == nil {
		t.Fatal("OpenTUN accepted MTU 20")
	}
}

// TestTUNRead: packets the kernel sends into the TUN are read as Ethernet frames.
func TestTUNRead(t *testing.T) {
	tun, ns := openTUN(t, 1500)
	var c4, c6 net.Conn
	err := inNetns(ns, func() (err error) {
		if c4, err = net.Dial("udp", "192.0.2.2:9"); err != nil {
			return err
		}
		c6, err = net.Dial("udp", "[2001:db8::2]:9")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	defer c6.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < 100; i++ {
			c4.Write([]byte("tun-read-v4"))
			c6.Write([]byte("tun-read-v6"))
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	var saw4, saw6 bool
	ok := readUntil(t, tun, 5*time.Second, func(f []byte, h VnetHdr) bool {
		if !bytes.Equal(f[:6], tun.HardwareAddr()) || !bytes.Equal(f[6:12], TUNPeerMAC) {
			t.Errorf("Ethernet addresses %x", f[:12])
		}
		if !bytes.Equal(h, make([]byte, VnetHdrLen)) {
			t.Errorf("virtio-net header %x, want zero", []byte(h))
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		switch {
		case udp == nil:
		case string(udp.Payload) == "tun-read-v4" && p.Layer(layers.LayerTypeIPv4) != nil:
			saw4 = true
		case string(udp.Payload) == "tun-read-v6" && p.Layer(layers.LayerTypeIPv6) != nil:
			saw6 = true
		}
		return saw4 && saw6
	})
	if !ok {
		t.Fatalf("datagrams read: IPv4 %v, IPv6 %v", saw4, saw6)
	}
	if st := tun.Stats(); st.RxPackets < 2 || st.RxBytes == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTUNWriteCompletesChecksum: a UDP frame with NEEDS_CSUM and only the pseudo-header sum
// in its checksum field reaches a kernel socket (which checks the checksum of packets from
// a TUN); the same frame without NEEDS_CSUM does not.
func TestTUNWriteCompletesChecksum(t *testing.T) {
	tun, ns := openTUN(t, 1500)
	srv := listenUDP(t, ns, "192.0.2.1:9999")
	mk := func(payload string, needsCsum bool) []byte {
		b := ipFrame(t, tun.HardwareAddr(), &layers.UDP{SrcPort: 40000, DstPort: 9999}, []byte(payload))
		f := b[Headroom:]
		binary.BigEndian.PutUint16(f[34+6:], pseudoSum(f, false, 17, len(f)-34))
		if needsCsum {
			h := Hdr(b, Headroom)
			h.SetFlags(VnetHdrFNeedsCsum)
			h.SetCsumStart(34)
			h.SetCsumOffset(6)
		}
		return b
	}
	bad := mk("partial-checksum-left", false)
	good := mk("completed-checksum", true)
	if n, err := tun.Write([][]byte{bad, good}, Headroom); n != 2 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	buf := make([]byte, 100)
	srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := srv.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no datagram received: %v", err)
	}
	if string(buf[:n]) != "completed-checksum" {
		t.Fatalf("received %q: the kernel accepted a wrong checksum, the test proves nothing", buf[:n])
	}
	st := tun.Stats()
	if st.TxPackets != 2 || st.TxChecksummed != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Frames that are not IP, or too short, are dropped and counted.
	arp := append(make([]byte, Headroom), make([]byte, 42)...)
	binary.BigEndian.PutUint16(arp[Headroom+12:], 0x0806)
	if n, err := tun.Write([][]byte{arp, make([]byte, Headroom+10)}, Headroom); n != 2 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if st := tun.Stats(); st.TxDropped != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTUNWriteSegmentsTCP: the router side of a TCP connection to the kernel writes its data
// as one 20000-byte GSO frame; the TUN segments it and the kernel receives it intact.
func TestTUNWriteSegmentsTCP(t *testing.T) {
	tun, ns := openTUN(t, 1500)
	var ln net.Listener
	if err := inNetns(ns, func() (err error) { ln, err = net.Listen("tcp", "192.0.2.1:5001"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := make([]byte, 20000)
	for i := range data {
		data[i] = byte(i*31 + i>>8)
	}
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, len(data))
		n, _ := io.ReadFull(c, b)
		got <- b[:n]
	}()

	const isn = 1000
	mss := []byte{0x05, 0x50} // 1360
	syn := ipFrame(t, tun.HardwareAddr(), &layers.TCP{SrcPort: 40000, DstPort: 5001, Seq: isn, SYN: true, Window: 65535,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: mss}}}, nil)
	var serverISN uint32
	ok := false
	for try := 0; try < 5 && !ok; try++ {
		if _, err := tun.Write([][]byte{syn}, Headroom); err != nil {
			t.Fatal(err)
		}
		ok = readUntil(t, tun, time.Second, func(f []byte, _ VnetHdr) bool {
			p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp != nil && tcp.SYN && tcp.ACK && tcp.DstPort == 40000 && tcp.Ack == isn+1 {
				serverISN = tcp.Seq
				return true
			}
			return false
		})
	}
	if !ok {
		t.Fatal("no SYN-ACK from the kernel")
	}
	ack := ipFrame(t, tun.HardwareAddr(), &layers.TCP{SrcPort: 40000, DstPort: 5001, Seq: isn + 1, Ack: serverISN + 1, ACK: true, Window: 65535}, nil)
	big := ipFrame(t, tun.HardwareAddr(), &layers.TCP{SrcPort: 40000, DstPort: 5001, Seq: isn + 1, Ack: serverISN + 1, ACK: true, PSH: true, Window: 65535}, data)
	h := Hdr(big, Headroom)
	h.SetFlags(VnetHdrFNeedsCsum)
	h.SetGSOType(VnetGSOTCPv4)
	h.SetGSOSize(1360)
	h.SetCsumStart(34)
	h.SetCsumOffset(16)
	h.SetHdrLen(54)
	// Spoil the big frame's checksum: only the segmentation's checksums may count.
	binary.BigEndian.PutUint16(big[Headroom+34+16:], 0x1234)
	if n, err := tun.Write([][]byte{ack, big}, Headroom); n != 2 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, data) {
			t.Fatalf("the kernel received %d bytes, not the %d sent", len(b), len(data))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("timeout")
	}
	if st := tun.Stats(); st.TxSegmented != 1 || st.TxPackets < 2+15 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTUNCloseUnblocksRead(t *testing.T) {
	tun, _ := openTUN(t, 1500)
	checkCloseUnblocksRead(t, tun)
}

// TestTUNZeroAlloc: a Write (an echo request, with NEEDS_CSUM) and the Read of the kernel's
// echo reply allocate nothing in steady state.
func TestTUNZeroAlloc(t *testing.T) {
	tun, _ := openTUN(t, 1500)
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}
	eth := &layers.Ethernet{SrcMAC: TUNPeerMAC, DstMAC: tun.HardwareAddr(), EthernetType: layers.EthernetTypeIPv4}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{192, 0, 2, 2}, DstIP: net.IP{192, 0, 2, 1}}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip4, icmp, gopacket.Payload(make([]byte, 32))); err != nil {
		t.Fatal(err)
	}
	req := append(make([]byte, Headroom), sb.Bytes()...)
	h := Hdr(req, Headroom)
	h.SetFlags(VnetHdrFNeedsCsum)
	h.SetCsumStart(34)
	h.SetCsumOffset(2)
	binary.BigEndian.PutUint16(req[Headroom+34+2:], 0)
	bufs, sizes := newBufs(8)
	batch := [][]byte{req}
	// Should a reply never come, Close unblocks Read and the test fails instead of hanging.
	guard := time.AfterFunc(20*time.Second, func() { tun.Close() })
	defer guard.Stop()
	allocs := testing.AllocsPerRun(100, func() {
		// Write completed the checksum in place last time: back to a partial one.
		binary.BigEndian.PutUint16(req[Headroom+34+2:], 0)
		if _, err := tun.Write(batch, Headroom); err != nil {
			t.Fatal(err)
		}
		if _, err := tun.Read(bufs, sizes, Headroom); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Write+Read", allocs)
	}
	if st := tun.Stats(); st.RxPackets < 100 {
		t.Fatalf("%d echo replies read for 101 requests", st.RxPackets)
	}
}
