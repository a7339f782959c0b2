// Package format renders ulbd's control-socket data as ulbadm's text output: aligned
// tables with upper-case headers, and vmstat-like rate lines for show-stats.
package format

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"ulb/router/control"
)

// none stands for an empty field, so every column has a value.
const none = "-"

func or(s string) string {
	if s == "" {
		return none
	}
	return s
}

func newTabWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0) }

func table(w io.Writer, header string, rows [][]string) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

// Ports writes show-port's table.
func Ports(w io.Writer, ports []control.PortInfo) error {
	rows := make([][]string, 0, len(ports))
	for _, p := range ports {
		state := "down"
		if p.Up {
			state = "up"
		}
		addrs := none
		if len(p.Addresses) > 0 {
			addrs = strings.Join(p.Addresses, ",")
		}
		rows = append(rows, []string{p.Name, or(p.Device), or(p.Kind), or(p.MAC), strconv.Itoa(p.MTU), state, addrs})
	}
	return table(w, "NAME\tDEVICE\tKIND\tMAC\tMTU\tSTATE\tADDRESSES", rows)
}

// Routes writes show-route's table; VIA is "-" on a directly connected route.
func Routes(w io.Writer, routes []control.RouteInfo) error {
	rows := make([][]string, 0, len(routes))
	for _, r := range routes {
		rows = append(rows, []string{r.Prefix, or(r.Via), or(r.Port), or(r.Kind)})
	}
	return table(w, "PREFIX\tVIA\tPORT\tKIND", rows)
}

// Neighs writes show-neigh's table; AGE is in seconds.
func Neighs(w io.Writer, neighs []control.NeighInfo) error {
	rows := make([][]string, 0, len(neighs))
	for _, n := range neighs {
		rows = append(rows, []string{n.Port, n.Address, or(n.MAC), or(n.State), strconv.FormatInt(n.Age, 10) + "s"})
	}
	return table(w, "PORT\tADDRESS\tMAC\tSTATE\tAGE", rows)
}

// Stats writes show-stats's counters: one row per port, the router's totals, the drops
// by reason (sorted by reason) when there are any, then the rules' and servers' counters
// when the snapshot has them.
func Stats(w io.Writer, s *control.StatsInfo) error {
	rows := make([][]string, 0, len(s.Ports))
	for _, p := range s.Ports {
		rows = append(rows, []string{p.Name, u(p.RxPackets), u(p.RxBytes), u(p.TxPackets), u(p.TxBytes), u(p.RxDrops), u(p.TxErrors)})
	}
	if err := table(w, "PORT\tRX-PKTS\tRX-BYTES\tTX-PKTS\tTX-BYTES\tRX-DROPS\tTX-ERRORS", rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	err := table(w, "FORWARDED\tLOCAL\tICMP-SENT\tDROPS",
		[][]string{{u(s.Forwarded), u(s.Local), u(s.ICMPSent), u(s.TotalDrops())}})
	if err != nil {
		return err
	}
	if len(s.Drops) > 0 {
		fmt.Fprintln(w)
		rows = rows[:0]
		for _, reason := range slices.Sorted(maps.Keys(s.Drops)) {
			rows = append(rows, []string{reason, u(s.Drops[reason])})
		}
		if err := table(w, "DROP-REASON\tPACKETS", rows); err != nil {
			return err
		}
	}
	if s.Totals().NewFlowRing {
		fmt.Fprintln(w)
		rows = rows[:0]
		for _, p := range s.Ports {
			if p.NewFlowRing {
				rows = append(rows, []string{p.Name, u(p.RxNewFlow), u(p.RxShedNewFlow)})
			}
		}
		if err := table(w, "NEW-FLOW-RING\tSYNS-READ\tSHED-RING-FULL", rows); err != nil {
			return err
		}
	}
	if y := s.Sync; y != nil {
		fmt.Fprintln(w)
		sending := "no"
		if y.Sending {
			sending = "yes"
		}
		err := table(w, "SYNC-PEERS\tSENDING\tSENT-RECORDS\tRECV-RECORDS\tADOPTED\tREFRESHED\tUNKNOWN\tREFUSED\tDROPPED-MSGS",
			[][]string{{strings.Join(y.Peers, ","), sending, u(y.SentRecords), u(y.ReceivedRecords), u(y.Adopted),
				u(y.Refreshed), u(y.Unknown), u(y.Refused), u(y.Malformed + y.FromStranger + y.Overflow)}})
		if err != nil {
			return err
		}
	}
	if sp := s.SYNProxy; sp != nil {
		fmt.Fprintln(w)
		state := "off"
		if sp.Active {
			state = "on"
		}
		err := table(w, "SYN-COOKIES\tSTATE\tACTIVATIONS\tSENT\tVALID\tINVALID\tSERVER-HANDSHAKES\tSERVER-REFUSED",
			[][]string{{sp.Mode, state, u(sp.Activations), u(sp.CookiesSent), u(sp.CookiesValid), u(sp.CookiesInvalid),
				u(sp.Established), u(sp.ServerRefused)}})
		if err != nil {
			return err
		}
	}
	if c := s.Conntrack; c != nil {
		fmt.Fprintln(w)
		err := table(w, "FLOWS\tCAPACITY\tINSERTED\tEXPIRED\tEVICTED-UNASSURED\tEVICTED-CLOSING\tEVICTED-IDLE\tREFUSED",
			[][]string{{strconv.Itoa(c.Flows), strconv.Itoa(c.Capacity), u(c.Inserted), u(c.Expired), u(c.Evicted["unassured"]),
				u(c.Evicted["closing"]), u(c.Evicted["idle"]), u(c.Refused)}})
		if err != nil {
			return err
		}
	}
	if ra := s.Reassembly; ra != nil {
		fmt.Fprintln(w)
		err := table(w, "FRAGMENTS\tREASSEMBLED\tTIMEOUTS\tOVERLAPS\tDUPLICATES\tOVER-LIMIT\tEVICTED\tIN-PROGRESS",
			[][]string{{u(ra.Fragments), u(ra.Reassembled), u(ra.Timeouts), u(ra.Overlaps), u(ra.Duplicates),
				u(ra.OverLimit + ra.Malformed + ra.Discarded), u(ra.Evicted), strconv.Itoa(ra.InProgress)}})
		if err != nil {
			return err
		}
	}
	return lbStats(w, s)
}

// Rates are per-second rates between two StatsInfo snapshots.
type Rates struct {
	RxPPS, TxPPS   float64 // packets per second, all ports
	RxMbps, TxMbps float64 // megabits per second, all ports
	DropsPS        float64 // drops per second, all reasons and ports' receive drops
}

// delta is cur-prev, or cur when the counter went backwards (ulbd restarted).
func delta(prev, cur uint64) float64 {
	if cur < prev {
		return float64(cur)
	}
	return float64(cur - prev)
}

// ComputeRates returns the rates from prev to cur. A nil prev means since ulbd started
// (all counters and the uptime at zero), like vmstat's first line. With no time elapsed
// (or a restarted ulbd) the interval is cur's whole uptime.
func ComputeRates(prev, cur *control.StatsInfo) Rates {
	var p control.StatsInfo
	if prev != nil {
		p = *prev
	}
	dt := float64(cur.Uptime - p.Uptime)
	if cur.Uptime <= p.Uptime {
		p = control.StatsInfo{}
		dt = float64(cur.Uptime)
	}
	if dt <= 0 {
		return Rates{}
	}
	sec := dt / 1e9
	pt, ct := p.Totals(), cur.Totals()
	return Rates{
		RxPPS:   delta(pt.RxPackets, ct.RxPackets) / sec,
		TxPPS:   delta(pt.TxPackets, ct.TxPackets) / sec,
		RxMbps:  delta(pt.RxBytes, ct.RxBytes) * 8 / 1e6 / sec,
		TxMbps:  delta(pt.TxBytes, ct.TxBytes) * 8 / 1e6 / sec,
		DropsPS: delta(p.TotalDrops(), cur.TotalDrops()) / sec,
	}
}

// HeaderEvery is how many rate lines RateWriter prints between headers.
const HeaderEvery = 20

// RateWriter writes one line of rates per call, with a header before the first line and
// again every HeaderEvery lines.
type RateWriter struct {
	w     io.Writer
	lines int
}

// NewRateWriter returns a RateWriter on w.
func NewRateWriter(w io.Writer) *RateWriter { return &RateWriter{w: w} }

const (
	rateHeader = "%12s %12s %10s %10s %10s\n"
	rateLine   = "%12.0f %12.0f %10.2f %10.2f %10.0f\n"
)

// Write writes r as one line, preceded by the header when due.
func (rw *RateWriter) Write(r Rates) error {
	if rw.lines%HeaderEvery == 0 {
		if _, err := fmt.Fprintf(rw.w, rateHeader, "RX-PPS", "TX-PPS", "RX-MBIT/S", "TX-MBIT/S", "DROPS/S"); err != nil {
			return err
		}
	}
	rw.lines++
	_, err := fmt.Fprintf(rw.w, rateLine, r.RxPPS, r.TxPPS, r.RxMbps, r.TxMbps, r.DropsPS)
	return err
}

// Reload writes what a reload installed: the counts, what needs a restart, the warnings.
func Reload(w io.Writer, r control.ReloadInfo) error {
	verb := "reloaded"
	if r.State != "" {
		verb = "imported"
	}
	fmt.Fprintf(w, "%s %s: %d ports, %d routes, %d rules, %d health checks\n", verb, r.File, r.Ports, r.Routes, r.Rules, r.HealthChecks)
	for _, p := range []struct {
		what  string
		names []string
	}{{"added", r.PortsAdded}, {"removed", r.PortsRemoved}, {"changed", r.PortsChanged}} {
		if len(p.names) > 0 {
			fmt.Fprintf(w, "ports %s: %s\n", p.what, strings.Join(p.names, ", "))
		}
	}
	if len(r.Restart) > 0 {
		fmt.Fprintf(w, "changed, but taking effect only after a restart: %s\n", strings.Join(r.Restart, ", "))
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if r.State != "" {
		fmt.Fprintf(w, "saved as %s: ulbd starts from it until its file is reloaded\n", r.State)
	}
	return nil
}
