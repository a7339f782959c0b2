package config

import (
	"github.com/BurntSushi/toml"
)

// Limits and defaults of the [defence] keys.
const (
	MaxSourceRate          = 10_000_000
	DefaultCookieScale     = 7      // Linux's window scale for its default buffers
	DefaultCookieThreshold = 10_000 // SYNs per second that turn "auto" cookies on
)

// SYN cookie modes ([defence] syn_cookies).
const (
	SYNCookiesOff    = "off"
	SYNCookiesAuto   = "auto"
	SYNCookiesAlways = "always"
)

// Defence is the balancer's protection against floods of new flows ([defence]).
//
//	[defence]
//	source_rate = 200       # new flows per second each client prefix may open (0: no limit)
//	source_burst = 400      # how many at once (default: source_rate)
//	source_prefix4 = 24     # the prefix lengths that group clients (defaults 24 and 64)
//	source_prefix6 = 64
//	syn_cookies = "auto"    # off (default) | auto | always: SYNs to half-NAT and full-NAT
//	                        # VIPs answered by ulbd with SYN cookies (the SYN proxy)
//	syn_cookie_threshold = 10000  # auto: on at this many SYNs/s to them, off after 10 s
//	                        # below half of it
//	syn_cookie_wscale = 7   # the window scale ulbd announces to clients (0-14)
//	new_flow_ring = true    # afpacket ports take new TCP flows' SYNs through a ring of
//	                        # their own (default true; see below)
//	new_flow_budget = 16    # new flows (and cookies) a batch of a port's frames may make;
//	                        # past it they are shed, lb-new-flow-budget (default 0: no bound)
//
// new_flow_budget is off by default because it cannot tell a client's SYN from a flood's:
// measured with examples/syn-cookies/flood.toml flat out (about 270-300k SYNs/s offered
// on this 2-vCPU machine, cookies on), a budget of 16 per batch kept 0.92 of the
// keep-alive throughput but let 34 of 90 probe connections through, against 0.72 and
// 90 of 90 without it; the cookies alone are the better defence.
//
// With new_flow_ring every afpacket port's frames are classified in the kernel, before any
// copy, by a classic BPF program on a PACKET_FANOUT group of two sockets: SYNs without ACK
// go to a small ring of their own (512 frames), everything else to the port's main ring.
// The port loop reads the main ring first and gives the SYN ring a quarter of each batch
// when the main ring is busy (all of the batch when it is not), so a SYN flood fills and
// overflows only its own ring (counted as new_flow_ring_full) while established flows
// and the ACKs that complete handshakes keep theirs.
//
// A client prefix over its limit has its new flows (SYNs, first datagrams) dropped
// silently and counted (drop reason lb-source-limit); its established flows and other
// prefixes' new ones go on. Prefixes are counted in a fixed table of 65536 buckets (512
// KiB), whatever the number of sources; prefixes that share a bucket share its allowance.
//
// With syn_cookies = "always" no SYN to a half-NAT or full-NAT rule costs state: ulbd
// answers it with a SYN cookie (MSS, and with TCP timestamps window scale and SACK, are
// kept), and opens the connection to the server only for an ACK with a valid cookie,
// translating sequence numbers, timestamps and windows for the flow's life. DSR rules
// are not proxied (the server's answers never pass ulbd). A server whose window scale is
// not syn_cookie_wscale gets its windows shifted to the client's view, rounded down. A
// server without timestamps behind a client that has them sends its segments to the
// client without any, though the client was told they are on: Linux clients take them
// (tested), but RFC 7323 §3.2 lets a receiver drop them, so servers behind the SYN proxy
// should keep timestamps on, as behind the kernel's SYNPROXY.
type Defence struct {
	SYNCookies         string
	SYNCookieThreshold int
	SYNCookieWScale    int
	NewFlowBudget      int
	NewFlowRing        bool
	SourceRate         int
	SourceBurst        int
	SourcePrefix4      int
	SourcePrefix6      int
}

type rawDefence struct {
	SYNCookies      value `toml:"syn_cookies"`
	SYNCookieWScale value `toml:"syn_cookie_wscale"`
	SYNCookieThresh value `toml:"syn_cookie_threshold"`
	NewFlowBudget   value `toml:"new_flow_budget"`
	NewFlowRing     value `toml:"new_flow_ring"`
	SourceRate      value `toml:"source_rate"`
	SourceBurst     value `toml:"source_burst"`
	SourcePrefix4   value `toml:"source_prefix4"`
	SourcePrefix6   value `toml:"source_prefix6"`
}

func (d *decoder) defence(p toml.Primitive) Defence {
	df := Defence{SYNCookies: SYNCookiesOff, SYNCookieThreshold: DefaultCookieThreshold, SYNCookieWScale: DefaultCookieScale, NewFlowRing: true}
	if !d.md.IsDefined("defence") {
		return df
	}
	is := d.is
	var raw rawDefence
	if err := d.md.PrimitiveDecode(p, &raw); err != nil {
		d.failed["defence"] = true
		is.at("defence", "defence must be a table: write its keys under a [defence] header")
		return df
	}
	for _, k := range []struct {
		v      value
		key    string
		lo, hi int64
		dst    *int
	}{
		{raw.SourceRate, "source_rate", 0, MaxSourceRate, &df.SourceRate},
		{raw.SourceBurst, "source_burst", 1, MaxSourceRate, &df.SourceBurst},
		{raw.SourcePrefix4, "source_prefix4", 1, 32, &df.SourcePrefix4},
		{raw.SourcePrefix6, "source_prefix6", 1, 128, &df.SourcePrefix6},
		{raw.SYNCookieWScale, "syn_cookie_wscale", 0, 14, &df.SYNCookieWScale},
		{raw.SYNCookieThresh, "syn_cookie_threshold", 1, MaxSourceRate, &df.SYNCookieThreshold},
		{raw.NewFlowBudget, "new_flow_budget", 0, 4096, &df.NewFlowBudget},
	} {
		path := "defence." + k.key
		if n, ok := is.integer(k.v, path, "defence "+k.key); ok {
			if n < k.lo || n > k.hi {
				is.at(path, "defence %s %d out of range %d..%d", k.key, n, k.lo, k.hi)
			} else {
				*k.dst = int(n)
			}
		}
	}
	if b, ok := is.boolean(raw.NewFlowRing, "defence.new_flow_ring", "defence new_flow_ring"); ok {
		df.NewFlowRing = b
	}
	if m, ok := is.str(raw.SYNCookies, "defence.syn_cookies", "defence syn_cookies"); ok {
		switch m {
		case SYNCookiesOff, SYNCookiesAuto, SYNCookiesAlways:
			df.SYNCookies = m
		default:
			is.at("defence.syn_cookies", "defence syn_cookies %q: want %q, %q or %q", m, SYNCookiesOff, SYNCookiesAuto, SYNCookiesAlways)
		}
	}
	if df.SourceRate == 0 && (raw.SourceBurst.set || raw.SourcePrefix4.set || raw.SourcePrefix6.set) {
		is.warnAt("defence", "[defence] sets how sources are limited but not source_rate: no limit applies")
	}
	return df
}
