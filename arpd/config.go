package arpd

import (
	"log/slog"
	"net/netip"
	"time"

	"ulb/router/header"
)

// Defaults of Config, close to Linux's neighbour parameters (RFC 4861 §10 and
// net.ipv4.neigh.default.*).
const (
	DefaultReachableTime   = 30 * time.Second // base_reachable_time
	DefaultRetransTimer    = time.Second      // retrans_time
	DefaultDelayFirstProbe = 5 * time.Second  // delay_first_probe_time
	DefaultMaxProbes       = 3                // mcast_solicit and ucast_solicit
	DefaultFailedKeep      = 20 * time.Second // how long a FAILED entry answers misses at once
	DefaultGCStaleTime     = 60 * time.Second // gc_stale_time: unused STALE entries are removed
	DefaultQueueLen        = 3                // unres_qlen: frames queued per unresolved next hop
	DefaultMaxQueued       = 256              // frames queued over all next hops of a port
	DefaultMaxEntries      = 1024             // gc_thresh3
)

// Config describes one Ethernet port's neighbour table. Zero durations and counts take
// the defaults above.
type Config struct {
	// Port is the router port's name, reported in Entries and logs.
	Port string
	// MAC is the port's hardware address: the source of every frame arpd builds and the
	// address it answers with (except for virtual addresses, see AddVirtual).
	MAC header.MAC
	// Addresses are the router's own addresses on the port with their on-link prefixes.
	// The IPv6 link-local address derived from MAC is added automatically.
	Addresses []netip.Prefix
	// Send transmits one frame: buf[offset:] is the Ethernet frame and
	// buf[offset-10:offset] its virtio-net header. It may be called from any goroutine
	// and must not keep buf after it returns.
	Send func(buf []byte, offset int)
	// OnUnreachable, if set, receives every queued frame dropped because its next hop
	// failed to resolve, so the router can answer with ICMP host-unreachable. The same
	// rules as for Send apply to buf.
	OnUnreachable func(buf []byte, offset int)
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Logger receives state changes worth an operator's attention (address conflicts,
	// resolution failures); nothing is logged per packet. Discarded if nil.
	Logger *slog.Logger

	ReachableTime   time.Duration // REACHABLE lasts this long after a confirmation
	RetransTimer    time.Duration // between two solicitations of the same address
	DelayFirstProbe time.Duration // DELAY lasts this long before the first unicast probe
	MaxProbes       int           // solicitations before INCOMPLETE or PROBE fails
	FailedKeep      time.Duration // a FAILED entry is removed after this long
	GCStaleTime     time.Duration // a STALE entry unused for this long is removed
	QueueLen        int           // frames queued per unresolved next hop
	MaxQueued       int           // frames queued over all next hops
	MaxEntries      int           // entries in the table, PERMANENT ones included
}

func (c Config) withDefaults() Config {
	durs := []struct {
		v *time.Duration
		d time.Duration
	}{
		{&c.ReachableTime, DefaultReachableTime},
		{&c.RetransTimer, DefaultRetransTimer},
		{&c.DelayFirstProbe, DefaultDelayFirstProbe},
		{&c.FailedKeep, DefaultFailedKeep},
		{&c.GCStaleTime, DefaultGCStaleTime},
	}
	for _, x := range durs {
		if *x.v <= 0 {
			*x.v = x.d
		}
	}
	ints := []struct {
		v *int
		d int
	}{
		{&c.MaxProbes, DefaultMaxProbes},
		{&c.QueueLen, DefaultQueueLen},
		{&c.MaxQueued, DefaultMaxQueued},
		{&c.MaxEntries, DefaultMaxEntries},
	}
	for _, x := range ints {
		if *x.v <= 0 {
			*x.v = x.d
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Send == nil {
		c.Send = func([]byte, int) {}
	}
	return c
}
