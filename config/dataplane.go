package config

import (
	"github.com/BurntSushi/toml"
)

// Limits of the [dataplane] keys.
const (
	MinNice = -20
	MaxNice = 19
	MaxCPU  = 1023 // the largest CPU number a cpu_set_t of the kernel's default size holds
)

// Dataplane gives the port loops' threads the CPU they need, as an appliance does: a
// higher priority than the rest of the host's work, and CPUs of their own.
//
//	[dataplane]
//	nice = -10       # niceness of the port loops' threads, -20..19 (default 0: as started)
//	cpus = [1, 2]    # the port loops run on these CPUs, one each in port order, round-robin
//
// A port loop is one OS thread reading, routing and writing its port's frames; under a
// flood it is what must not be starved. The VRRP instances' thread already runs at nice
// -10. Nice below 0 needs CAP_SYS_NICE; a CPU the process may not use stops ulbd at start.
type Dataplane struct {
	// Nice is the niceness of every port loop's thread (0: unchanged).
	Nice int
	// CPUs are the CPUs the port loops are pinned to, the i-th port's loop to
	// CPUs[i % len(CPUs)] (none: not pinned).
	CPUs []int
}

type rawDataplane struct {
	Nice value `toml:"nice"`
	CPUs value `toml:"cpus"`
}

func (d *decoder) dataplane(p toml.Primitive) Dataplane {
	var dp Dataplane
	if !d.md.IsDefined("dataplane") {
		return dp
	}
	is := d.is
	var raw rawDataplane
	if err := d.md.PrimitiveDecode(p, &raw); err != nil {
		d.failed["dataplane"] = true
		is.at("dataplane", "dataplane must be a table: write its keys under a [dataplane] header")
		return dp
	}
	if n, ok := is.integer(raw.Nice, "dataplane.nice", "dataplane nice"); ok {
		if n < MinNice || n > MaxNice {
			is.at("dataplane.nice", "dataplane nice %d out of range %d..%d", n, MinNice, MaxNice)
		} else {
			dp.Nice = int(n)
		}
	}
	if raw.CPUs.set {
		list, ok := raw.CPUs.v.([]any)
		if !ok {
			is.at("dataplane.cpus", "dataplane cpus must be a list of CPU numbers, not %s", tomlType(raw.CPUs.v))
			return dp
		}
		seen := map[int64]bool{}
		for i, e := range list {
			path := indexPath("dataplane.cpus", i)
			n, ok := e.(int64)
			switch {
			case !ok:
				is.at(path, "dataplane cpus[%d] must be an integer, not %s", i, tomlType(e))
			case n < 0 || n > MaxCPU:
				is.at(path, "dataplane cpus[%d]: CPU %d out of range 0..%d", i, n, MaxCPU)
			case seen[n]:
				is.at(path, "dataplane cpus[%d]: CPU %d is listed twice", i, n)
			default:
				seen[n] = true
				dp.CPUs = append(dp.CPUs, int(n))
			}
		}
	}
	return dp
}
