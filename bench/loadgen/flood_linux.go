package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"time"
)

// MaxFloodRate bounds a flood's rate in frames per second (0 is flat out).
const MaxFloodRate = 100_000_000

// FloodConfig describes one SYN flood. Dst, Sources and Duration are required.
type FloodConfig struct {
	Dst      netip.AddrPort // the address and port the SYNs go to, e.g. a VIP
	Sources  netip.Prefix   // source addresses, inside DocumentationPrefixes
	Device   string         // default: the route's interface
	DstMAC   string         // default: the next hop's MAC from the kernel neighbour table
	Duration time.Duration
	Rate     int // frames per second; 0 sends as fast as the socket takes them
	Batch    int // frames per sendmmsg, default DefaultBatch
	Seed     uint64
}

// FloodReport is what one flood sent. Start and End are wall-clock Unix nanoseconds, so
// that another process can place its own events against them.
type FloodReport struct {
	Device    string  `json:"device"`
	Dst       string  `json:"dst"`
	DstMAC    string  `json:"dst_mac"`
	Sources   string  `json:"sources"`
	FrameLen  int     `json:"frame_len"`
	Rate      int     `json:"rate"` // the requested rate, 0 = flat out
	Sent      uint64  `json:"sent"` // frames handed to sendmmsg
	Accepted  uint64  `json:"accepted"`
	TxErrors  uint64  `json:"tx_errors"`
	Blocked   uint64  `json:"blocked"`
	StartNS   int64   `json:"start_ns"`
	EndNS     int64   `json:"end_ns"`
	ElapsedNS int64   `json:"elapsed_ns"`
	PPS       float64 `json:"pps"`
}

// Validate checks cfg and fills its defaults.
func (cfg *FloodConfig) Validate() error {
	if !cfg.Dst.IsValid() || cfg.Dst.Port() == 0 {
		return fmt.Errorf("loadgen: flood destination %v: want ADDRESS:PORT", cfg.Dst)
	}
	if err := CheckFloodSources(cfg.Sources); err != nil {
		return err
	}
	if cfg.Dst.Addr().Is4() != cfg.Sources.Addr().Is4() {
		return fmt.Errorf("loadgen: flood destination %v and sources %v are of different families", cfg.Dst, cfg.Sources)
	}
	if cfg.Duration <= 0 || cfg.Duration > MaxDuration {
		return fmt.Errorf("loadgen: duration %v out of range (0, %v]", cfg.Duration, MaxDuration)
	}
	if cfg.Rate < 0 || cfg.Rate > MaxFloodRate {
		return fmt.Errorf("loadgen: rate %d out of range 0..%d frames per second (0 = flat out)", cfg.Rate, MaxFloodRate)
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Batch < 1 || cfg.Batch > 1024 {
		return fmt.Errorf("loadgen: batch %d, want 1..1024", cfg.Batch)
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	return nil
}

// Flood resolves the route and next hop to cfg.Dst (unless given), opens an AF_PACKET
// socket on the egress interface in the calling process's network namespace, and sends
// SYNs (SYNGen) to cfg.Dst until cfg.Duration has passed or ctx ends.
func Flood(ctx context.Context, cfg FloodConfig) (FloodReport, error) {
	if err := cfg.Validate(); err != nil {
		return FloodReport{}, err
	}
	rc := SendConfig{Dst: cfg.Dst.Addr(), Device: cfg.Device, DstMAC: cfg.DstMAC, DstPort: cfg.Dst.Port(), Flows: 1}
	fs, err := resolve(ctx, &rc)
	if err != nil {
		return FloodReport{}, err
	}
	gen, err := NewSYNGen(SYNSpec{DstMAC: fs.DstMAC, SrcMAC: fs.SrcMAC, Sources: cfg.Sources, Dst: cfg.Dst.Addr(), DstPort: cfg.Dst.Port()}, cfg.Seed)
	if err != nil {
		return FloodReport{}, err
	}
	p, err := openTxSocket(rc.Device, cfg.Batch)
	if err != nil {
		return FloodReport{}, err
	}
	defer p.close()
	rep := FloodReport{Device: rc.Device, Dst: cfg.Dst.String(), DstMAC: fs.DstMAC.String(), Sources: cfg.Sources.String(),
		FrameLen: gen.FrameLen(), Rate: cfg.Rate}
	bufs := make([][]byte, cfg.Batch)
	for i := range bufs {
		bufs[i] = make([]byte, gen.FrameLen())
	}
	start := time.Now()
	sent, end, err := floodLoop(ctx, p, gen, bufs, cfg, start)
	rep.Sent, rep.Accepted, rep.TxErrors, rep.Blocked = sent, p.sent, p.refused, p.blocked
	rep.StartNS, rep.EndNS, rep.ElapsedNS = start.UnixNano(), end.UnixNano(), int64(end.Sub(start))
	if el := end.Sub(start); el > 0 {
		rep.PPS = float64(sent) / el.Seconds()
	}
	return rep, err
}

// floodLoop fills and sends batches of SYNs at cfg.Rate (0: as fast as the socket takes
// them) until cfg.Duration after start or ctx ends, and returns the frames sent and when
// it stopped. The kernel copies each frame during sendmmsg, so the buffers are rewritten
// for the next batch: nothing is allocated per frame.
func floodLoop(ctx context.Context, p *txSocket, gen *SYNGen, bufs [][]byte, cfg FloodConfig, start time.Time) (uint64, time.Time, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	done := ctx.Done()
	var sent uint64
	end := start.Add(cfg.Duration)
	now := start
	for now.Before(end) {
		select {
		case <-done:
			return sent, time.Now(), nil
		default:
		}
		n := len(bufs)
		if cfg.Rate > 0 {
			due := int64(float64(cfg.Rate)*now.Sub(start).Seconds()) + 1
			if ahead := due - int64(sent); ahead < int64(n) {
				n = int(max(ahead, 0))
			}
			if n == 0 {
				next := start.Add(time.Duration(float64(sent) / float64(cfg.Rate) * float64(time.Second)))
				time.Sleep(max(next.Sub(now), minPause))
				now = time.Now()
				continue
			}
		}
		for i := range n {
			gen.Fill(bufs[i])
		}
		w, err := p.write(bufs[:n])
		sent += uint64(w)
		if err != nil {
			return sent, time.Now(), err
		}
		now = time.Now()
	}
	return sent, now, nil
}
