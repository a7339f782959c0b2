package config

import (
	"time"

	"github.com/BurntSushi/toml"
)

// Limits of the [conntrack] keys.
const (
	MaxConntrackCapacity = 100_000_000
	MinFlowTimeout       = time.Second
	MaxFlowTimeout       = 7 * 24 * time.Hour
)

// Conntrack tunes the connection table. A zero field keeps the connection table's own
// default (capacity 1,000,000; timeouts close to IPVS's: established 15m, syn_sent 2m,
// syn_recv 1m, fin_wait 2m, time_wait 2m, close 10s, close_wait 60s, last_ack 30s,
// udp 5m, icmp 1m).
type Conntrack struct {
	// Capacity is the most flows the table holds.
	Capacity int
	// Timeouts are the idle timeouts by TCP state and protocol.
	Timeouts ConntrackTimeouts
}

// ConntrackTimeouts are idle timeouts of flows; zero keeps the default.
type ConntrackTimeouts struct {
	Established, SynSent, SynRecv, FinWait, TimeWait, Close, CloseWait, LastAck time.Duration
	UDP, ICMP                                                                   time.Duration
}

type rawConntrack struct {
	Capacity value `toml:"capacity"`
	Timeout  value `toml:"timeout"`
}

// timeoutKeys are the keys of [conntrack.timeout], in the order of ConntrackTimeouts.
var timeoutKeys = []string{"established", "syn_sent", "syn_recv", "fin_wait", "time_wait", "close", "close_wait", "last_ack", "udp", "icmp"}

func (t *ConntrackTimeouts) field(key string) *time.Duration {
	switch key {
	case "established":
		return &t.Established
	case "syn_sent":
		return &t.SynSent
	case "syn_recv":
		return &t.SynRecv
	case "fin_wait":
		return &t.FinWait
	case "time_wait":
		return &t.TimeWait
	case "close":
		return &t.Close
	case "close_wait":
		return &t.CloseWait
	case "last_ack":
		return &t.LastAck
	case "udp":
		return &t.UDP
	case "icmp":
		return &t.ICMP
	}
	return nil
}

func (d *decoder) conntrack(p toml.Primitive) Conntrack {
	var ct Conntrack
	if !d.md.IsDefined("conntrack") {
		return ct
	}
	is := d.is
	var raw rawConntrack
	if err := d.md.PrimitiveDecode(p, &raw); err != nil {
		d.failed["conntrack"] = true
		is.at("conntrack", "conntrack must be a table: write its keys under a [conntrack] header")
		return ct
	}
	if n, ok := is.integer(raw.Capacity, "conntrack.capacity", "conntrack capacity"); ok {
		if n < 1 || n > MaxConntrackCapacity {
			is.at("conntrack.capacity", "conntrack capacity %d out of range 1..%d", n, MaxConntrackCapacity)
		} else {
			ct.Capacity = int(n)
		}
	}
	d.owned = append(d.owned, "conntrack.timeout")
	m, ok := is.table(raw.Timeout, "conntrack.timeout", "conntrack timeout")
	if !ok {
		return ct
	}
	is.unknownIn(m, timeoutKeys, "conntrack.timeout", "[conntrack.timeout]")
	for _, k := range timeoutKeys {
		v, set := m[k]
		path := "conntrack.timeout." + k
		if dur, good := is.duration(value{v: v, set: set}, path, "conntrack timeout "+k, MinFlowTimeout, MaxFlowTimeout); good {
			*ct.Timeouts.field(k) = dur
		}
	}
	return ct
}
