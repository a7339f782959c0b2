package config

import (
	"github.com/BurntSushi/toml"
)

// Limits of the [defence] keys.
const (
	MaxSourceRate = 10_000_000
)

// Defence is the balancer's protection against floods of new flows ([defence]).
//
//	[defence]
//	source_rate = 200       # new flows per second each client prefix may open (0: no limit)
//	source_burst = 400      # how many at once (default: source_rate)
//	source_prefix4 = 24     # the prefix lengths that group clients (defaults 24 and 64)
//	source_prefix6 = 64
//
// A client prefix over its limit has its new flows (SYNs, first datagrams) dropped
// silently and counted (drop reason lb-source-limit); its established flows and other
// prefixes' new ones go on. Prefixes are counted in a fixed table of 65536 buckets (512
// KiB), whatever the number of sources; prefixes that share a bucket share its allowance.
type Defence struct {
	SourceRate    int
	SourceBurst   int
	SourcePrefix4 int
	SourcePrefix6 int
}

type rawDefence struct {
	SourceRate    value `toml:"source_rate"`
	SourceBurst   value `toml:"source_burst"`
	SourcePrefix4 value `toml:"source_prefix4"`
	SourcePrefix6 value `toml:"source_prefix6"`
}

func (d *decoder) defence(p toml.Primitive) Defence {
	var df Defence
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
	if df.SourceRate == 0 && (raw.SourceBurst.set || raw.SourcePrefix4.set || raw.SourcePrefix6.set) {
		is.warnAt("defence", "[defence] sets how sources are limited but not source_rate: no limit applies")
	}
	return df
}
