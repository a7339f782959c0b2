package port

import (
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// BenchmarkAFPacketForward64 is the router's 64-byte-frame path between two ports: a
// sender port in namespace a blasts frames at r0; a loop on a locked OS thread reads r0
// and writes each batch to r1 towards namespace b, whose kernel drops them at a UDP socket
// that is never read (as the compare bench's server does). It reports the loop thread's
// CPU time per forwarded frame (its share of b's receive path, which veth runs inside the
// send, included): unlike frames/s, that figure hardly depends on what else the machine
// runs.
func BenchmarkAFPacketForward64(b *testing.B) {
	ft := &forwardTopology{a: newNetns(b), r: newNetns(b), b: newNetns(b)}
	veth(b, ft.a, "a0", ft.r, "r0")
	veth(b, ft.b, "b0", ft.r, "r1")
	ip(b, "-n", ft.b, "addr", "add", "198.51.100.2/24", "dev", "b0")
	sink := listenUDP(b, ft.b, "198.51.100.2:9")
	sink.SetReadBuffer(1 << 16)
	sender := openAFPacket(b, ft.a, "a0", AFPacketOptions{})
	ft.p0 = openAFPacket(b, ft.r, "r0", AFPacketOptions{})
	ft.p1 = openAFPacket(b, ft.r, "r1", AFPacketOptions{})
	macB := linkMAC(b, ft.b, "b0")
	frame := udpFrame(b, sender.HardwareAddr(), ft.p0.HardwareAddr(), net.IP{192, 0, 2, 1}, net.IP{198, 51, 100, 2}, 9,
		make([]byte, 64-14-20-8))
	batch := make([][]byte, sender.BatchSize())
	for i := range batch {
		batch[i] = frame
	}
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := sender.Write(batch, Headroom); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-sent }()

	type result struct {
		frames int
		cpu    time.Duration
		wall   time.Duration
		err    error
	}
	res := make(chan result, 1)
	b.ResetTimer()
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		bufs, sizes := newBufs(ft.p0.BatchSize())
		out := make([][]byte, len(bufs))
		var r result
		cpu0, start := threadCPU(), time.Now()
		for i := 0; i < b.N; i++ {
			n, err := ft.p0.Read(bufs, sizes, Headroom)
			if err != nil {
				r.err = err
				break
			}
			for k := 0; k < n; k++ {
				f := bufs[k][Headroom : Headroom+sizes[k]]
				copy(f[0:6], macB)
				copy(f[6:12], ft.p1.HardwareAddr())
				out[k] = bufs[k][:Headroom+sizes[k]]
			}
			if _, err := ft.p1.Write(out[:n], Headroom); err != nil {
				r.err = err
				break
			}
			r.frames += n
		}
		r.cpu, r.wall = threadCPU()-cpu0, time.Since(start)
		res <- r
	}()
	r := <-res
	b.StopTimer()
	if r.err != nil {
		b.Fatal(r.err)
	}
	b.ReportMetric(float64(r.cpu.Nanoseconds())/float64(r.frames), "cpu-ns/frame")
	b.ReportMetric(float64(r.frames)/r.wall.Seconds(), "frames/s")
	b.ReportMetric(float64(r.frames)/float64(b.N), "frames/read")
	b.ReportMetric(float64(ft.p0.Stats().RxKernelDrops), "kdrops")
}

// threadCPU is the calling thread's CPU time, user and system.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
