package loadgen

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	netport "ulb/router/port"
)

// Defaults of Count.
const (
	DefaultSysClassNet = "/sys/class/net"
	DefaultCountPoll   = 20 * time.Millisecond
)

// CountConfig describes one count. Count reads the interface's kernel counters
// (statistics/rx_packets and rx_dropped under SysClassNet): every frame the interface
// received, whatever it was, so the count is only meaningful on a link that carries
// nothing else at the time. It costs the receiver nothing per frame.
type CountConfig struct {
	Device      string
	Duration    time.Duration // the longest count; it also ends with ctx
	Poll        time.Duration // default DefaultCountPoll
	SysClassNet string        // default DefaultSysClassNet: the process's network namespace's view (ip netns exec remounts it)
	// SinkPort, when not zero, is a UDP port Count binds (IPv4, any address) and never
	// reads, with the smallest receive buffer: the kernel then drops the generator's
	// datagrams at the full socket instead of answering each with an ICMP port
	// unreachable, whose per-packet route lookup (done before the rate limit since Linux
	// 6.12) would otherwise weigh on whoever delivers the frames.
	SinkPort int
	// SinkDrop, with SinkPort, also drops the datagrams to SinkPort at the device's
	// ingress once they are counted (an eBPF program on tcx, port.AttachIngressDropUDP),
	// so that the receiving stack does no work for them. On a veth bench the receiver's
	// stack runs on the CPU of whoever sends to it, the device under test; a real server
	// would spend its own. Where the program cannot be attached, the socket alone drops
	// them and the report's Sink says so.
	SinkDrop bool
}

// CountReport is what an interface received during a count.
type CountReport struct {
	Device    string  `json:"device"`
	Source    string  `json:"source"`              // where the figures come from
	Sink      string  `json:"sink"`                // "ingress-drop", "socket" or "" (no sink)
	SinkNote  string  `json:"sink_note,omitempty"` // why SinkDrop fell back to the socket
	Packets   uint64  `json:"packets"`             // rx_packets delta
	Dropped   uint64  `json:"dropped"`             // rx_dropped delta
	ElapsedNS int64   `json:"elapsed_ns"`          // the whole count
	ActiveNS  int64   `json:"active_ns"`           // from the first poll that saw packets arrive to the last
	PPS       float64 `json:"pps"`                 // Packets per second of the active time (0 if too short to tell)
}

// Count reads the interface's counters, calls ready (when not nil), and counts until
// cfg.Duration has passed or ctx ends.
func Count(ctx context.Context, cfg CountConfig, ready func()) (CountReport, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultCountPoll
	}
	if cfg.SysClassNet == "" {
		cfg.SysClassNet = DefaultSysClassNet
	}
	if cfg.Duration <= 0 || cfg.Duration > MaxDuration {
		return CountReport{}, fmt.Errorf("loadgen: count duration %v out of range (0, %v]", cfg.Duration, MaxDuration)
	}
	if cfg.Device == "" || strings.ContainsAny(cfg.Device, "/") || cfg.Device == "." || cfg.Device == ".." {
		return CountReport{}, fmt.Errorf("loadgen: bad device name %q", cfg.Device)
	}
	if cfg.SinkPort < 0 || cfg.SinkPort > 65535 {
		return CountReport{}, fmt.Errorf("loadgen: sink port %d out of range", cfg.SinkPort)
	}
	var sinkKind, sinkNote string
	if cfg.SinkPort > 0 {
		sink, err := listenSink(cfg.SinkPort)
		if err != nil {
			return CountReport{}, err
		}
		defer sink.Close()
		sinkKind = "socket"
		if cfg.SinkDrop {
			if drop, err := dropAtIngress(cfg.Device, cfg.SinkPort); err != nil {
				sinkNote = err.Error()
			} else {
				defer drop.Close()
				sinkKind = "ingress-drop"
			}
		}
	}
	dir := filepath.Join(cfg.SysClassNet, cfg.Device, "statistics")
	read := func() (rx, drop uint64, err error) {
		if rx, err = readCounter(filepath.Join(dir, "rx_packets")); err != nil {
			return 0, 0, err
		}
		drop, err = readCounter(filepath.Join(dir, "rx_dropped"))
		return rx, drop, err
	}
	rx0, drop0, err := read()
	if err != nil {
		return CountReport{}, err
	}
	start := time.Now()
	if ready != nil {
		ready()
	}
	timer := time.NewTimer(cfg.Duration)
	defer timer.Stop()
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	last := rx0
	var first, lastChange time.Time
	rep := CountReport{Device: cfg.Device, Source: dir + "/rx_packets", Sink: sinkKind, SinkNote: sinkNote}
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-timer.C:
			running = false
		case <-tick.C:
		}
		rx, drop, err := read()
		if err != nil {
			return rep, err
		}
		now := time.Now()
		if rx != last {
			if first.IsZero() {
				// Packets arrived since the previous poll: the traffic began about then.
				first = now.Add(-cfg.Poll)
			}
			lastChange, last = now, rx
		}
		rep.Packets, rep.Dropped = rx-rx0, drop-drop0
		rep.ElapsedNS = int64(now.Sub(start))
	}
	if !first.IsZero() {
		rep.ActiveNS = int64(lastChange.Sub(first))
		if active := lastChange.Sub(first); active >= 2*cfg.Poll {
			rep.PPS = float64(rep.Packets) / active.Seconds()
		}
	}
	return rep, nil
}

func readCounter(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("loadgen: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("loadgen: %s: %q is not a counter", path, strings.TrimSpace(string(data)))
	}
	return v, nil
}

// sinkRcvBuf is the receive buffer asked for the sink socket; the kernel raises it to its
// minimum.
const sinkRcvBuf = 1

// listenSink binds the UDP sink that keeps the receiving kernel from answering.
func listenSink(port int) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
	if err != nil {
		return nil, fmt.Errorf("loadgen: sink: %w", err)
	}
	if err := c.SetReadBuffer(sinkRcvBuf); err != nil {
		c.Close()
		return nil, fmt.Errorf("loadgen: sink: %w", err)
	}
	return c, nil
}

// dropAtIngress attaches the sink's ingress drop to the device of the calling thread's
// network namespace.
func dropAtIngress(device string, port int) (*netport.IngressDrop, error) {
	ifi, err := net.InterfaceByName(device)
	if err != nil {
		return nil, fmt.Errorf("loadgen: sink drop: %w", err)
	}
	d, err := netport.AttachIngressDropUDP(ifi.Index, uint16(port))
	if err != nil {
		return nil, fmt.Errorf("loadgen: sink drop on %s: %w", device, err)
	}
	return d, nil
}
