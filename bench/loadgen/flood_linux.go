package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
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
	// The kernel copies each frame during sendmmsg, so the buffers are rewritten for
	// the next batch: nothing is allocated per frame.
	sent, start, end, err := paced(ctx, p, cfg.Rate, cfg.Batch, cfg.Duration, func(n int) [][]byte {
		for i := range n {
			gen.Fill(bufs[i])
		}
		return bufs[:n]
	})
	rep.Sent, rep.Accepted, rep.TxErrors, rep.Blocked = sent, p.sent, p.refused, p.blocked
	rep.StartNS, rep.EndNS, rep.ElapsedNS = start.UnixNano(), end.UnixNano(), int64(end.Sub(start))
	if el := end.Sub(start); el > 0 {
		rep.PPS = float64(sent) / el.Seconds()
	}
	return rep, err
}
