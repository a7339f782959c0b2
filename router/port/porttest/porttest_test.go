package porttest

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"ulb/router/port"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

func newBufs(n int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, port.BufSize)
	}
	return bufs, make([]int, n)
}

// mkFrame returns a buffer holding, at port.Headroom, an Ethernet frame of n bytes
// whose bytes after the header are seq, and a virtio-net header with gso set.
func mkFrame(n int, seq byte, gso uint8) []byte {
	b := make([]byte, port.Headroom+max(n, 14))
	f := b[port.Headroom:]
	copy(f, macB)
	copy(f[6:], macA)
	f[12], f[13] = 0x08, 0x00
	for i := 14; i < n; i++ {
		f[i] = seq
	}
	h := port.Hdr(b, port.Headroom)
	h.SetGSOType(gso)
	h.SetGSOSize(1400)
	h.SetCsumStart(34)
	h.SetCsumOffset(16)
	h.SetFlags(port.VnetHdrFNeedsCsum)
	return b[:port.Headroom+n]
}

func TestPairCarriesFramesAndHeaders(t *testing.T) {
	a, b := NewPair(macA, macB, 1500)
	defer a.Close()
	defer b.Close()
	if a.Name() == b.Name() || !bytes.Equal(a.HardwareAddr(), macA) || b.MTU() != 1500 || a.Layer3() || a.BatchSize() < 1 {
		t.Fatalf("bad port properties: %s %s %v %d", a.Name(), b.Name(), a.HardwareAddr(), b.MTU())
	}
	in := [][]byte{mkFrame(60, 1, port.VnetGSONone), mkFrame(1514, 2, port.VnetGSONone), mkFrame(20000, 3, port.VnetGSOTCPv4)}
	if n, err := a.Write(in, port.Headroom); n != 3 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	in[0][port.Headroom+20] = 99 // the pair must have copied the frame
	bufs, sizes := newBufs(8)
	n, err := b.Read(bufs, sizes, port.Headroom)
	if n != 3 || err != nil {
		t.Fatalf("Read: %d, %v", n, err)
	}
	for i, want := range []int{60, 1514, 20000} {
		if sizes[i] != want {
			t.Fatalf("frame %d: %d bytes, want %d", i, sizes[i], want)
		}
		f := bufs[i][port.Headroom : port.Headroom+sizes[i]]
		if f[20] != byte(i+1) || f[sizes[i]-1] != byte(i+1) {
			t.Fatalf("frame %d: payload %d, want %d", i, f[20], i+1)
		}
		h := port.Hdr(bufs[i], port.Headroom)
		if !h.NeedsCsum() || h.CsumStart() != 34 || h.CsumOffset() != 16 || h.GSOSize() != 1400 {
			t.Fatalf("frame %d: vnet header not carried: %x", i, []byte(h))
		}
		if h.IsGSO() != (i == 2) {
			t.Fatalf("frame %d: GSO %v", i, h.IsGSO())
		}
	}
	st := a.Stats()
	if st.TxPackets != 3 || st.TxBytes != 60+1514+20000 {
		t.Fatalf("a stats %+v", st)
	}
	if st := b.Stats(); st.RxPackets != 3 || st.RxBytes != 60+1514+20000 {
		t.Fatalf("b stats %+v", st)
	}
	// The other direction and a smaller read batch.
	if _, err := b.Write([][]byte{mkFrame(64, 7, 0), mkFrame(64, 8, 0)}, port.Headroom); err != nil {
		t.Fatal(err)
	}
	for _, want := range []byte{7, 8} {
		n, err := a.Read(bufs[:1], sizes, port.Headroom)
		if n != 1 || err != nil || bufs[0][port.Headroom+20] != want {
			t.Fatalf("Read: %d, %v, payload %d want %d", n, err, bufs[0][port.Headroom+20], want)
		}
	}
}

func TestPairDrops(t *testing.T) {
	a, b := NewPair(macA, macB, 1500)
	defer a.Close()
	defer b.Close()
	frames := [][]byte{
		mkFrame(1514, 0, 0),                            // fits
		mkFrame(1518, 0, 0),                            // fits with a VLAN tag
		mkFrame(1519, 0, 0),                            // oversize
		mkFrame(9000, 0, port.VnetGSOTCPv6),            // GSO: fine
		mkFrame(13, 0, 0),                              // runt
		make([]byte, 10),                               // shorter than the offset
		mkFrame(port.MaxFrame+1, 0, port.VnetGSOTCPv4), // oversize even for GSO
	}
	if n, err := a.Write(frames, port.Headroom); n != len(frames) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	st := a.Stats()
	if st.TxPackets != 3 || st.Oversize != 2 || st.Runts != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Fill the queue: the rest is dropped and counted.
	one := [][]byte{mkFrame(60, 0, 0)}
	for i := 0; i < QueueLen; i++ {
		if _, err := a.Write(one, port.Headroom); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.Stats(); st.QueueDrops != 3 || b.Queued() != QueueLen {
		t.Fatalf("queue drops %d, queued %d", st.QueueDrops, b.Queued())
	}
	// A reader whose buffer is too small drops the frame and counts it.
	small := [][]byte{make([]byte, port.Headroom+100)}
	sizes := make([]int, 1)
	n, err := b.Read(small, sizes, port.Headroom)
	if err != nil || n != 1 || sizes[0] != 60 {
		t.Fatalf("Read: %d %v %v", n, err, sizes)
	}
	if st := b.Stats(); st.Truncated != 3 {
		t.Fatalf("truncated %d, want 3 (1514, 1518 and 9000 byte frames)", st.Truncated)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	a, b := NewPair(macA, macB, 1500)
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		bufs, sizes := newBufs(4)
		_, err := a.Read(bufs, sizes, port.Headroom)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, port.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if _, err := a.Write([][]byte{mkFrame(60, 0, 0)}, port.Headroom); !errors.Is(err, port.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	// Frames to a closed peer are dropped.
	if n, err := b.Write([][]byte{mkFrame(60, 0, 0)}, port.Headroom); n != 1 || err != nil {
		t.Fatalf("Write to closed peer: %d, %v", n, err)
	}
	if st := b.Stats(); st.QueueDrops != 1 || st.TxPackets != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestMemberships(t *testing.T) {
	a, _ := NewPair(macA, macB, 1500)
	vmac := net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x07}
	snm := net.HardwareAddr{0x33, 0x33, 0xff, 0x00, 0x00, 0x01}
	allNodes := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	if err := a.AddUnicast(vmac); err != nil {
		t.Fatal(err)
	}
	if err := a.AddUnicast(vmac); err != nil {
		t.Fatal(err)
	}
	if err := a.AddUnicast(snm); err == nil {
		t.Fatal("AddUnicast accepted a multicast address")
	}
	if err := a.AddMulticast(vmac); err == nil {
		t.Fatal("AddMulticast accepted a unicast address")
	}
	if err := a.AddMulticast(net.HardwareAddr{1, 2}); err == nil {
		t.Fatal("AddMulticast accepted a 2-byte address")
	}
	for _, m := range []net.HardwareAddr{snm, allNodes} {
		if err := a.AddMulticast(m); err != nil {
			t.Fatal(err)
		}
	}
	if u := a.Unicast(); len(u) != 1 || !bytes.Equal(u[0], vmac) {
		t.Fatalf("unicast %v", u)
	}
	if err := a.RemoveMulticast(snm); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveMulticast(snm); err == nil {
		t.Fatal("removing an absent membership succeeded")
	}
	if m := a.Multicast(); len(m) != 1 || !bytes.Equal(m[0], allNodes) {
		t.Fatalf("multicast %v", m)
	}
	if err := a.RemoveUnicast(vmac); err != nil || len(a.Unicast()) != 0 {
		t.Fatalf("RemoveUnicast: %v, %v", err, a.Unicast())
	}
}

// TestConcurrent runs writers on both ends and readers on both ends at once (run with
// -race) and checks that every frame written is either read or counted as dropped.
func TestConcurrent(t *testing.T) {
	a, b := NewPair(macA, macB, 1500)
	const writers, perWriter = 4, 2000
	var wg sync.WaitGroup
	for _, p := range []*Port{a, b} {
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				batch := [][]byte{mkFrame(100, byte(w), 0), mkFrame(200, byte(w), 0)}
				for i := 0; i < perWriter/2; i++ {
					if _, err := p.Write(batch, port.Headroom); err != nil {
						t.Error(err)
						return
					}
					_ = p.Multicast()
				}
			}()
		}
	}
	var rg sync.WaitGroup
	read := make([]uint64, 2)
	for i, p := range []*Port{a, b} {
		rg.Add(1)
		go func() {
			defer rg.Done()
			bufs, sizes := newBufs(BatchSize)
			for {
				n, err := p.Read(bufs, sizes, port.Headroom)
				if errors.Is(err, port.ErrClosed) {
					return
				}
				read[i] += uint64(n)
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for (a.Queued() > 0 || b.Queued() > 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	a.Close()
	b.Close()
	rg.Wait()
	for i, p := range []*Port{a, b} {
		st := p.peer.Stats() // what was read on p was written on its peer
		if st.TxPackets+st.QueueDrops != writers*perWriter {
			t.Errorf("%s: %d sent + %d dropped != %d", p.peer.Name(), st.TxPackets, st.QueueDrops, writers*perWriter)
		}
		if read[i] != st.TxPackets || p.Stats().RxPackets != read[i] {
			t.Errorf("%s: %d read (%d counted), %d sent by the peer", p.Name(), read[i], p.Stats().RxPackets, st.TxPackets)
		}
	}
}
