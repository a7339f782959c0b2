package port

import (
	"net"
	"testing"
	"time"
)

// benchPair is a veth pair between two namespaces with an AF_PACKET port on each end.
func benchPair(b *testing.B, opts AFPacketOptions) (r, p *AFPacket) {
	nr, np := newNetns(b), newNetns(b)
	veth(b, nr, "r0", np, "p0")
	return openAFPacket(b, nr, "r0", opts), openAFPacket(b, np, "p0", opts)
}

// batch64 returns BatchSize buffers each holding a 64-byte frame from src to dst.
func batch64(b *testing.B, src, dst net.HardwareAddr, n int) [][]byte {
	frame := udpFrame(b, src, dst, net.IP{192, 0, 2, 2}, net.IP{192, 0, 2, 1}, 9, make([]byte, 64-14-20-8))
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = frame
	}
	return bufs
}

// BenchmarkAFPacketWrite64 measures batched sendmmsg of 64-byte frames onto a veth (the
// peer kernel drops them: they are addressed to another MAC).
func BenchmarkAFPacketWrite64(b *testing.B) {
	for _, bypass := range []bool{false, true} {
		name := "qdisc"
		if bypass {
			name = "bypass"
		}
		b.Run(name, func(b *testing.B) {
			nr, np := newNetns(b), newNetns(b)
			veth(b, nr, "r0", np, "p0")
			w := openAFPacket(b, nr, "r0", AFPacketOptions{QdiscBypass: bypass})
			bufs := batch64(b, w.HardwareAddr(), net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}, w.BatchSize())
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := w.Write(bufs, Headroom); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start)
			st := w.Stats()
			b.ReportMetric(float64(st.TxPackets)/el.Seconds(), "frames/s")
			if st.TxErrors != 0 {
				b.ReportMetric(float64(st.TxErrors), "txerrors")
			}
		})
	}
}

// BenchmarkAFPacketRead64 measures batched recvmmsg of 64-byte frames that a port on the
// other end of the veth sends as fast as it can (on the same 2 vCPUs).
func BenchmarkAFPacketRead64(b *testing.B) {
	r, p := benchPair(b, AFPacketOptions{QdiscBypass: true})
	bufs := batch64(b, p.HardwareAddr(), r.HardwareAddr(), p.BatchSize())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := p.Write(bufs, Headroom); err != nil {
				return
			}
		}
	}()
	rb, sizes := newBufs(r.BatchSize())
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var frames int
	for i := 0; i < b.N; i++ {
		n, err := r.Read(rb, sizes, Headroom)
		if err != nil {
			b.Fatal(err)
		}
		frames += n
	}
	el := time.Since(start)
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(frames)/el.Seconds(), "frames/s")
	b.ReportMetric(float64(frames)/float64(b.N), "frames/read")
	b.ReportMetric(float64(r.Stats().RxKernelDrops), "kdrops")
}

// BenchmarkAFPacketRead64Backlog measures recvmmsg alone: each round the timer is stopped
// while the peer queues 4096 64-byte frames in the socket buffer, then they are read in
// full batches.
func BenchmarkAFPacketRead64Backlog(b *testing.B) {
	r, p := benchPair(b, AFPacketOptions{QdiscBypass: true})
	bufs := batch64(b, p.HardwareAddr(), r.HardwareAddr(), p.BatchSize())
	rb, sizes := newBufs(r.BatchSize())
	const backlog = 4096
	one := bufs[:1]
	b.ResetTimer()
	var frames int
	var el time.Duration
	for i := 0; i < b.N; i++ {
		for sent := 0; sent < backlog; sent += len(bufs) {
			if _, err := p.Write(bufs, Headroom); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := p.Write(one, Headroom); err != nil { // so that the last batch is short
			b.Fatal(err)
		}
		// Should frames be lost and no short batch come, Close unblocks Read.
		guard := time.AfterFunc(10*time.Second, func() { r.Close() })
		start := time.Now()
		for {
			n, err := r.Read(rb, sizes, Headroom)
			if err != nil {
				b.Fatal(err)
			}
			frames += n
			if n < len(rb) {
				break
			}
		}
		el += time.Since(start)
		guard.Stop()
	}
	b.ReportMetric(float64(frames)/el.Seconds(), "frames/s")
	b.ReportMetric(float64(r.Stats().RxKernelDrops), "kdrops")
}
