package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"ulb/router/header"
	"ulb/router/port"
)

// Limits and defaults of Send.
const (
	MaxDuration      = 10 * time.Minute
	MaxSenders       = 64
	DefaultBatch     = port.DefaultBatchSize
	ResolveTimeout   = 3 * time.Second
	resolvePoll      = 20 * time.Millisecond
	resolveRetrigger = 500 * time.Millisecond
	// minPause is the shortest sleep of a rate-limited sender ahead of its schedule.
	minPause = 50 * time.Microsecond
)

// SendConfig describes one run of the generator. Only Dst and Duration are required.
type SendConfig struct {
	Dst      netip.Addr // IPv4 destination
	Src      netip.Addr // default: the route's preferred source address
	Device   string     // default: the route's interface
	DstMAC   string     // default: the next hop's MAC from the kernel neighbour table
	DstPort  uint16     // default DefaultDstPort
	Flows    int        // distinct UDP source ports, default DefaultFlows
	Duration time.Duration
	Rate     int // frames per second; 0 sends as fast as the socket takes them
	Batch    int // frames per sendmmsg, default DefaultBatch
	// Senders is the number of sockets sending in parallel, each from its own thread
	// (default 1); Rate is shared among them.
	Senders int
}

// SendReport is what one run sent. Offered load is PPS: every frame handed to the
// kernel, refused or not, over the sending time.
type SendReport struct {
	Device    string  `json:"device"`
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	DstMAC    string  `json:"dst_mac"`
	Flows     int     `json:"flows"`
	FrameLen  int     `json:"frame_len"`
	Rate      int     `json:"rate"` // the requested rate, 0 = full speed
	Senders   int     `json:"senders"`
	Sent      uint64  `json:"sent"`       // frames handed to sendmmsg
	Accepted  uint64  `json:"accepted"`   // frames the kernel took
	TxErrors  uint64  `json:"tx_errors"`  // frames the kernel refused (e.g. the peer's queue was full)
	Blocked   uint64  `json:"blocked"`    // sendmmsg calls that found the send buffer full and waited
	ElapsedNS int64   `json:"elapsed_ns"` // from the first sendmmsg to the end of the last
	PPS       float64 `json:"pps"`        // Sent per second of Elapsed
}

// Elapsed returns the sending time.
func (r SendReport) Elapsed() time.Duration { return time.Duration(r.ElapsedNS) }

// Send resolves the route and next hop (unless given), opens an AF_PACKET socket on the
// egress interface in the calling process's network namespace, and sends FrameLen-byte
// UDP frames to cfg.Dst, cycling over cfg.Flows source ports, until cfg.Duration has
// passed or ctx ends, from cfg.Senders sockets each on its own locked OS thread.
func Send(ctx context.Context, cfg SendConfig) (SendReport, error) {
	if err := cfg.fill(); err != nil {
		return SendReport{}, err
	}
	spec, err := resolve(ctx, &cfg)
	if err != nil {
		return SendReport{}, err
	}
	frames, err := BuildFrames(spec, 0)
	if err != nil {
		return SendReport{}, err
	}
	rep := SendReport{
		Device: cfg.Device, Src: spec.Src.String(), Dst: spec.Dst.String(), DstMAC: spec.DstMAC.String(),
		Flows: cfg.Flows, FrameLen: FrameLen, Rate: cfg.Rate, Senders: cfg.Senders,
	}
	ports := make([]*txSocket, cfg.Senders)
	for i := range ports {
		p, err := openTxSocket(cfg.Device, cfg.Batch)
		if err != nil {
			for _, q := range ports[:i] {
				q.close()
			}
			return SendReport{}, err
		}
		ports[i] = p
	}
	// ring[k:k+Batch] is always a valid batch starting at flow k: no copy per batch.
	ring := make([][]byte, cfg.Flows+cfg.Batch)
	for i := range ring {
		ring[i] = frames[i%cfg.Flows]
	}
	type result struct {
		sent    uint64
		elapsed time.Duration
		err     error
	}
	results := make(chan result, len(ports))
	each := cfg
	each.Rate = cfg.Rate / cfg.Senders
	for i, p := range ports {
		go func() {
			// Each sender starts at its own place in the flows.
			sent, elapsed, err := blast(ctx, p, ring, each, i*cfg.Flows/cfg.Senders)
			results <- result{sent, elapsed, err}
		}()
	}
	var errs []error
	var elapsed time.Duration
	for range ports {
		r := <-results
		rep.Sent += r.sent
		elapsed = max(elapsed, r.elapsed)
		errs = append(errs, r.err)
	}
	for _, p := range ports {
		rep.Accepted += p.sent
		rep.TxErrors += p.refused
		rep.Blocked += p.blocked
		p.close()
	}
	rep.ElapsedNS = int64(elapsed)
	if elapsed > 0 {
		rep.PPS = float64(rep.Sent) / elapsed.Seconds()
	}
	err = errors.Join(errs...)
	return rep, err
}

// blast sends the ring's frames, batch after batch from flow k on, as paced says.
func blast(ctx context.Context, p *txSocket, ring [][]byte, cfg SendConfig, k int) (uint64, time.Duration, error) {
	sent, start, end, err := paced(ctx, p, cfg.Rate, cfg.Batch, cfg.Duration, func(n int) [][]byte {
		b := ring[k : k+n]
		k = (k + n) % cfg.Flows
		return b
	})
	return sent, end.Sub(start), err
}

// paced sends batches of at most batch frames, next(n) giving the n frames of each, at
// rate frames per second (0: as fast as the socket takes them), on a locked OS thread,
// for d or until ctx ends. It returns the frames sent and when sending started and
// stopped.
func paced(ctx context.Context, p *txSocket, rate, batch int, d time.Duration, next func(n int) [][]byte) (sent uint64, start, end time.Time, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	done := ctx.Done()
	start = time.Now()
	stop := start.Add(d)
	now := start
	for now.Before(stop) {
		select {
		case <-done:
			return sent, start, time.Now(), nil
		default:
		}
		n := batch
		if rate > 0 {
			due := int64(float64(rate)*now.Sub(start).Seconds()) + 1
			if ahead := due - int64(sent); ahead < int64(n) {
				n = int(max(ahead, 0))
			}
			if n == 0 {
				at := start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second)))
				time.Sleep(max(at.Sub(now), minPause))
				now = time.Now()
				continue
			}
		}
		w, err := p.write(next(n))
		sent += uint64(w)
		if err != nil {
			return sent, start, time.Now(), err
		}
		now = time.Now()
	}
	return sent, start, now, nil
}

func (cfg *SendConfig) fill() error {
	if !cfg.Dst.Is4() {
		return fmt.Errorf("loadgen: destination %v: want an IPv4 address", cfg.Dst)
	}
	if cfg.Src.IsValid() && !cfg.Src.Is4() {
		return fmt.Errorf("loadgen: source %v: want an IPv4 address", cfg.Src)
	}
	if cfg.Duration <= 0 || cfg.Duration > MaxDuration {
		return fmt.Errorf("loadgen: duration %v out of range (0, %v]", cfg.Duration, MaxDuration)
	}
	if cfg.Rate < 0 {
		return fmt.Errorf("loadgen: negative rate %d", cfg.Rate)
	}
	if cfg.Flows == 0 {
		cfg.Flows = DefaultFlows
	}
	if cfg.Flows < 1 || cfg.Flows > MaxFlows {
		return fmt.Errorf("loadgen: %d flows, want 1..%d", cfg.Flows, MaxFlows)
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Batch < 1 || cfg.Batch > 1024 {
		return fmt.Errorf("loadgen: batch %d, want 1..1024", cfg.Batch)
	}
	if cfg.DstPort == 0 {
		cfg.DstPort = DefaultDstPort
	}
	if cfg.Senders == 0 {
		cfg.Senders = 1
	}
	if cfg.Senders < 1 || cfg.Senders > MaxSenders {
		return fmt.Errorf("loadgen: %d senders, want 1..%d", cfg.Senders, MaxSenders)
	}
	if cfg.Rate > 0 && cfg.Rate < cfg.Senders {
		return fmt.Errorf("loadgen: rate %d is below one frame per second per sender", cfg.Rate)
	}
	return nil
}

// resolve completes cfg from the kernel's route and neighbour tables and returns the
// frames' specification.
func resolve(ctx context.Context, cfg *SendConfig) (FrameSpec, error) {
	family := "-4"
	if !cfg.Dst.Is4() {
		family = "-6" // a flood's destination may be IPv6
	}
	out, err := exec.CommandContext(ctx, "ip", "-j", family, "route", "get", cfg.Dst.String()).Output()
	if err != nil {
		return FrameSpec{}, fmt.Errorf("%w: ip route get %v: %v%s", ErrResolve, cfg.Dst, err, stderrOf(err))
	}
	rt, err := ParseRouteGet(out)
	if err != nil {
		return FrameSpec{}, err
	}
	if cfg.Device == "" {
		cfg.Device = rt.Dev
	}
	if !cfg.Src.IsValid() {
		if !rt.Src.IsValid() || rt.Src.Is4() != cfg.Dst.Is4() {
			return FrameSpec{}, fmt.Errorf("%w: the route to %v has no source of its family; give one", ErrResolve, cfg.Dst)
		}
		cfg.Src = rt.Src
	}
	ifi, err := net.InterfaceByName(cfg.Device)
	if err != nil {
		return FrameSpec{}, fmt.Errorf("loadgen: %w", err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return FrameSpec{}, fmt.Errorf("loadgen: %s has no Ethernet address", cfg.Device)
	}
	spec := FrameSpec{SrcMAC: header.MAC(ifi.HardwareAddr), Src: cfg.Src, Dst: cfg.Dst, DstPort: cfg.DstPort, Flows: cfg.Flows}
	if cfg.DstMAC != "" {
		spec.DstMAC, err = ParseMAC(cfg.DstMAC)
		return spec, err
	}
	spec.DstMAC, err = neighbour(ctx, cfg, rt.NextHop(cfg.Dst))
	cfg.DstMAC = spec.DstMAC.String()
	return spec, err
}

// neighbour returns the MAC address of next hop nh on cfg.Device, making the kernel
// resolve it (by sending one UDP datagram to the destination) when it is not known.
func neighbour(ctx context.Context, cfg *SendConfig, nh netip.Addr) (header.MAC, error) {
	deadline := time.Now().Add(ResolveTimeout)
	var lastTrigger time.Time
	for {
		out, err := exec.CommandContext(ctx, "ip", "-j", "neigh", "show", "to", nh.String(), "dev", cfg.Device).Output()
		if err != nil {
			return header.MAC{}, fmt.Errorf("%w: ip neigh show %v: %v%s", ErrResolve, nh, err, stderrOf(err))
		}
		mac, ok, err := ParseNeigh(out)
		if err != nil || ok {
			return mac, err
		}
		now := time.Now()
		if now.After(deadline) {
			return header.MAC{}, fmt.Errorf("%w: no answer from %v on %s after %v", ErrResolve, nh, cfg.Device, ResolveTimeout)
		}
		if now.Sub(lastTrigger) >= resolveRetrigger {
			lastTrigger = now
			if err := trigger(cfg); err != nil {
				return header.MAC{}, err
			}
		}
		select {
		case <-ctx.Done():
			return header.MAC{}, ctx.Err()
		case <-time.After(resolvePoll):
		}
	}
}

// trigger sends one UDP datagram to the destination through the kernel, which resolves
// the next hop on the way.
func trigger(cfg *SendConfig) error {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Src, 0)),
		net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Dst, cfg.DstPort)))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrResolve, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ulb loadgen: resolve")); err != nil && !errors.Is(err, net.ErrClosed) {
		// A refused datagram (an ICMP error from an earlier one) still resolved the hop.
		if !strings.Contains(err.Error(), "refused") {
			return fmt.Errorf("%w: %v", ErrResolve, err)
		}
	}
	return nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
