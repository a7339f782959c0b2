package port

import (
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// tcpFrame returns a buffer with an Ethernet/IP/TCP frame at Headroom, IPv4 when sip is
// a 4-byte address and IPv6 otherwise, with the given flags and the sequence number seq
// (which the tests use to tell frames apart).
func tcpFrame(t testing.TB, src, dst net.HardwareAddr, sip, dip net.IP, syn, ack bool, seq uint32) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: seq, SYN: syn, ACK: ack, Window: 1000}
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst}
	var ipl gopacket.SerializableLayer
	if v4 := sip.To4(); v4 != nil {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: v4, DstIP: dip.To4()}
		tcp.SetNetworkLayerForChecksum(ip4)
		ipl = ip4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: sip, DstIP: dip}
		tcp.SetNetworkLayerForChecksum(ip6)
		ipl = ip6
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ipl, tcp); err != nil {
		t.Fatal(err)
	}
	return append(make([]byte, Headroom), sb.Bytes()...)
}

// frameSeq decodes a read frame's TCP sequence number, or reports false for a frame that
// is not TCP.
func frameSeq(f []byte) (uint32, bool) {
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		return 0, false
	}
	return tcp.Seq, true
}

// portRead is what one Read returned: how many frames, and the sequence numbers of the
// test's own TCP frames among them (the kernel may send others, such as an MLD report
// when the veth comes up; they are main-ring frames too).
type portRead struct {
	frames int
	seqs   []uint32
}

// readAvailable reads what the port holds until it has been quiet for a while, then
// closes it, and returns each read's TCP sequence numbers and the port's counters just
// before the close.
func readAvailable(t *testing.T, port *AFPacket, batch int) ([]portRead, AFPacketStats) {
	t.Helper()
	bufs, sizes := newBufs(batch)
	var out []portRead
	type result struct {
		n   int
		err error
	}
	for {
		res := make(chan result, 1)
		go func() { n, err := port.Read(bufs, sizes, Headroom); res <- result{n, err} }()
		select {
		case r := <-res:
			if r.err != nil {
				t.Fatal(r.err)
			}
			var seqs []uint32
			for i := 0; i < r.n; i++ {
				if s, ok := frameSeq(bufs[i][Headroom : Headroom+sizes[i]]); ok {
					seqs = append(seqs, s)
				}
			}
			out = append(out, portRead{frames: r.n, seqs: seqs})
		case <-time.After(300 * time.Millisecond):
			st := port.Stats()
			port.Close() // ends the Read left waiting
			<-res
			return out, st
		}
	}
}

// TestSplitNewFlowsClassifies: with SplitNewFlows a port reads every frame once, and the
// new-flow ring takes exactly the SYNs without ACK, IPv4 and IPv6; SYN-ACKs, ACKs and
// other frames come through the main ring.
func TestSplitNewFlowsClassifies(t *testing.T) {
	port, sender := splitPort(t)
	src, dst := sender.HardwareAddr(), port.HardwareAddr()
	c4, s4 := net.IP{192, 0, 2, 2}, net.IP{192, 0, 2, 1}
	c6, s6 := net.ParseIP("2001:db8::2"), net.ParseIP("2001:db8::1")
	frames := [][]byte{
		tcpFrame(t, src, dst, c4, s4, true, false, 1), // new flow
		tcpFrame(t, src, dst, c4, s4, true, true, 2),
		tcpFrame(t, src, dst, c4, s4, false, true, 3),
		tcpFrame(t, src, dst, c6, s6, true, false, 4), // new flow
		tcpFrame(t, src, dst, c6, s6, true, true, 5),
		tcpFrame(t, src, dst, c6, s6, false, true, 6),
		udpFrame(t, src, dst, c4, s4, 80, []byte("not tcp")),
	}
	if _, err := sender.Write(frames, Headroom); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]int{}
	reads, st := readAvailable(t, port, 64)
	for _, r := range reads {
		for _, s := range r.seqs {
			seen[s]++
		}
	}
	for s := uint32(1); s <= 6; s++ {
		if seen[s] != 1 {
			t.Errorf("segment %d read %d times, want once", s, seen[s])
		}
	}
	if st.RxNewFlow != 2 || st.RxNewFlowDrops != 0 {
		t.Errorf("new-flow ring took %d frames and dropped %d, want 2 and 0", st.RxNewFlow, st.RxNewFlowDrops)
	}
	if st.RxPackets < 7 {
		t.Errorf("read %d frames, want at least the 7 sent", st.RxPackets)
	}
}

// TestSplitNewFlowsUnderFlood: a flood of SYNs larger than the new-flow ring, sent while
// the port does not read, overflows only that ring: every ACK sent among them is read,
// the SYNs the kernel could not queue are counted, and while both rings hold frames each
// Read gives the SYNs their share of the batch and no more.
func TestSplitNewFlowsUnderFlood(t *testing.T) {
	port, sender := splitPort(t)
	src, dst := sender.HardwareAddr(), port.HardwareAddr()
	c4, s4 := net.IP{192, 0, 2, 2}, net.IP{192, 0, 2, 1}
	const syns, acks = 4 * newFlowSlots, 1000 // acks fit the main ring, syns do not fit theirs
	const synBase = 1 << 20
	var frames [][]byte
	for i := 0; i < syns; i++ {
		frames = append(frames, tcpFrame(t, src, dst, c4, s4, true, false, synBase+uint32(i)))
		if i%(syns/acks+1) == 0 && len(frames) < syns+acks {
			frames = append(frames, tcpFrame(t, src, dst, c4, s4, false, true, uint32(len(frames))))
		}
	}
	for len(frames) < syns+acks {
		frames = append(frames, tcpFrame(t, src, dst, c4, s4, false, true, uint32(len(frames))))
	}
	if _, err := sender.Write(frames, Headroom); err != nil {
		t.Fatal(err)
	}
	const batch = 64
	reads, st := readAvailable(t, port, batch)
	gotACK, gotSYN := 0, 0
	for k, r := range reads {
		nSYN := 0
		for _, s := range r.seqs {
			if s >= synBase {
				nSYN++
			}
		}
		gotSYN += nSYN
		gotACK += len(r.seqs) - nSYN
		// The main ring still has frames for at least the first reads (1000 ACKs, 48 a
		// read): there the SYNs get their share exactly.
		if k < 10 && (nSYN != batch/NewFlowShare || r.frames != batch) {
			t.Errorf("read %d: %d frames, %d of them SYNs; want %d and %d", k, r.frames, nSYN, batch, batch/NewFlowShare)
		}
	}
	if gotACK != acks {
		t.Errorf("read %d ACKs of %d: the flood crowded them out", gotACK, acks)
	}
	if st.RxNewFlowDrops == 0 || gotSYN+int(st.RxNewFlowDrops) != syns {
		t.Errorf("read %d SYNs, the kernel dropped %d at the new-flow ring: want %d in all, some dropped", gotSYN, st.RxNewFlowDrops, syns)
	}
	if st.RxKernelDrops != 0 {
		t.Errorf("main ring dropped %d frames", st.RxKernelDrops)
	}
}

// TestSplitNewFlowsRefusesFanoutGroup: the split needs a fanout group of its own.
func TestSplitNewFlowsRefusesFanoutGroup(t *testing.T) {
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	err := inNetns(r, func() error {
		port, err := OpenAFPacket("r0", AFPacketOptions{SplitNewFlows: true, FanoutGroup: 7})
		if err == nil {
			port.Close()
		}
		return err
	})
	if err == nil {
		t.Fatal("SplitNewFlows with a FanoutGroup opened")
	}
}

// splitPort opens a port with SplitNewFlows on one end of a veth pair and a plain port on
// the other, in namespaces of the test's.
func splitPort(t *testing.T) (port, sender *AFPacket) {
	t.Helper()
	r, p := newNetns(t), newNetns(t)
	veth(t, r, "r0", p, "p0")
	return openAFPacket(t, r, "r0", AFPacketOptions{SplitNewFlows: true}), openAFPacket(t, p, "p0", AFPacketOptions{})
}
