package format

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"ulb/router/control"
)

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// limits prints connection thresholds as "MAX/MIN", or "-" for none.
func limits(maxConns, minConns int) string {
	if maxConns == 0 {
		return none
	}
	return strconv.Itoa(maxConns) + "/" + strconv.Itoa(minConns)
}

// seconds prints a duration in seconds as "90s", or "-" when zero.
func seconds(n int64) string {
	if n == 0 {
		return none
	}
	return i64(n) + "s"
}

func enabled(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

// persistKey is a rule's persistence key as show-rule prints it before the timeout:
// "/PMASK" (the client prefix), "/PMASK+port" (and the client's port), "dst+port" (the
// VIP's port), or "" without persistence.
func persistKey(r control.RuleInfo) string {
	switch {
	case r.PersistKey == "dst+port":
		return "dst+port"
	case r.PMask < 0:
		return ""
	case r.PersistKey == "src+port":
		return fmt.Sprintf("/%d+port", r.PMask)
	}
	return fmt.Sprintf("/%d", r.PMask)
}

// Rules writes show-rule's table. PERSIST is "/PMASK,TIMEOUT" ("/PMASK+port,TIMEOUT"
// keyed on the client's port too, "dst+port,TIMEOUT" on the VIP's port) or "-"; DRAIN is
// the conn_drain bound ("-": until the flows end).
func Rules(w io.Writer, rules []control.RuleInfo) error {
	rows := make([][]string, 0, len(rules))
	for _, r := range rules {
		persist := none
		if k := persistKey(r); k != "" {
			persist = fmt.Sprintf("%s,%ds", k, r.PersistTimeout)
		}
		rows = append(rows, []string{r.Name, enabled(r.Enabled), or(r.Protocol), r.VIP, r.Ports, or(r.Algorithm),
			or(r.Topology), persist, seconds(r.ConnDrain), or(r.ServerGroup), strconv.Itoa(r.Servers), u(r.ConnsActive)})
	}
	return table(w, "NAME\tSTATE\tPROTO\tVIP\tPORTS\tALGORITHM\tTOPOLOGY\tPERSIST\tDRAIN\tSERVERGROUP\tSERVERS\tCONNS", rows)
}

// RulesFull writes each rule as "key: value" lines, blank-line separated, with the
// fields that do not fit show-rule's table (the proxy sources).
func RulesFull(w io.Writer, rules []control.RuleInfo) error {
	for i, r := range rules {
		if i > 0 {
			fmt.Fprintln(w)
		}
		persist := "none"
		switch k := persistKey(r); {
		case r.PersistKey == "dst+port":
			persist = fmt.Sprintf("per destination port (dst+port) for %ds", r.PersistTimeout)
		case r.PersistKey == "src+port" && k != "":
			persist = fmt.Sprintf("/%d and the client's port (src+port) for %ds", r.PMask, r.PersistTimeout)
		case k != "":
			persist = fmt.Sprintf("%s for %ds", k, r.PersistTimeout)
		}
		drain := "until the flows end"
		if r.ConnDrain > 0 {
			drain = fmt.Sprintf("%ds", r.ConnDrain)
		}
		proxy := none
		if len(r.ProxySource) > 0 {
			proxy = strings.Join(r.ProxySource, ",")
		}
		rows := [][]string{
			{"RULE:", r.Name}, {"STATE:", enabled(r.Enabled)}, {"VIP:", r.VIP}, {"PORTS:", r.Ports},
			{"PROTOCOL:", r.Protocol}, {"ALGORITHM:", r.Algorithm}, {"TOPOLOGY:", r.Topology},
			{"PROXY-SOURCE:", proxy}, {"PERSISTENCE:", persist}, {"CONN-DRAIN:", drain},
			{"SERVERGROUP:", fmt.Sprintf("%s (%d servers)", r.ServerGroup, r.Servers)}, {"CONNS:", u(r.ConnsActive)},
		}
		if r.Topology == "tunnel" {
			src := "the egress port's address"
			if r.TunnelSource != "" {
				src = r.TunnelSource
			}
			rows = slices.Insert(rows, 7, []string{"TUNNEL-SOURCE:", src})
		}
		if err := tableRows(w, rows); err != nil {
			return err
		}
	}
	return nil
}

// tableRows aligns rows without a header.
func tableRows(w io.Writer, rows [][]string) error {
	tw := newTabWriter(w)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// ServerGroups writes show-servergroup's table, one row per server; PORT "-" means the
// client's destination port.
func ServerGroups(w io.Writer, groups []control.ServerGroupInfo) error {
	var rows [][]string
	for _, g := range groups {
		rules := none
		if len(g.Rules) > 0 {
			rules = strings.Join(g.Rules, ",")
		}
		for _, m := range g.Servers {
			rows = append(rows, []string{g.Name, m.Address, port(m.Port), strconv.Itoa(m.Weight), limits(m.MaxConns, m.MinConns), rules})
		}
		if len(g.Servers) == 0 {
			rows = append(rows, []string{g.Name, none, none, none, none, rules})
		}
	}
	return table(w, "GROUP\tADDRESS\tPORT\tWEIGHT\tMAX/MIN-CONNS\tRULES", rows)
}

func port(p uint16) string {
	if p == 0 {
		return none
	}
	return strconv.Itoa(int(p))
}

// Servers writes show-server's table: each server within each rule, with its weight
// (as configured, then /EFFECTIVE when health or an agent's load changed it), its admin
// state (draining shows for how long; an enabled server at its connection threshold
// shows overloaded), its max_conns/min_conns, its health, the agent's load ("-": none) and its
// flows now and in total.
func Servers(w io.Writer, servers []control.ServerInfo) error {
	rows := make([][]string, 0, len(servers))
	for _, s := range servers {
		state := or(s.State)
		switch {
		case s.State == control.ServerDraining:
			state = fmt.Sprintf("draining(%ds)", s.Draining)
		case s.State == control.ServerEnabled && s.Overloaded:
			state = "overloaded"
		}
		weight := strconv.Itoa(s.Weight)
		if s.EffectiveWeight != s.Weight {
			weight += "/" + strconv.Itoa(s.EffectiveWeight)
		}
		rows = append(rows, []string{s.Rule, s.Group, s.Endpoint(), weight, limits(s.MaxConns, s.MinConns), state,
			or(s.Health), load(s.Load), u(s.ConnsActive), u(s.ConnsTotal)})
	}
	return table(w, "RULE\tGROUP\tSERVER\tWEIGHT\tMAX/MIN-CONNS\tSTATE\tHEALTH\tLOAD\tCONNS\tTOTAL", rows)
}

// Conns writes show-conn's table, like ilbadm show-nat; PROXY is the full-NAT source
// (for autonat and SNAT flows the translated source; "-" for other topologies). A flow
// of no rule shows its type in parentheses, e.g. "(autonat)". A last line says how many
// flows were left out.
func Conns(w io.Writer, l control.ConnList) error {
	rows := make([][]string, 0, len(l.Conns))
	for _, c := range l.Conns {
		rule := c.Rule
		if rule == "" && c.Type != "" {
			rule = "(" + c.Type + ")"
		}
		rows = append(rows, []string{rule, c.Protocol, c.Client, c.VIP, or(c.Proxy), c.Server, or(c.State),
			i64(c.Age) + "s", i64(c.Idle) + "s", u(c.Packets), u(c.Bytes)})
	}
	if err := table(w, "RULE\tPROTO\tCLIENT\tVIP\tPROXY\tSERVER\tSTATE\tAGE\tIDLE\tPACKETS\tBYTES", rows); err != nil {
		return err
	}
	return more(w, len(l.Conns), l.Total, "flows")
}

func more(w io.Writer, shown, total int, what string) error {
	if total <= shown {
		return nil
	}
	_, err := fmt.Fprintf(w, "(%d of %d %s shown)\n", shown, total, what)
	return err
}

// Persist writes show-persist's table; EXPIRES is "-" while flows use the entry.
//
// CLIENT is the entry's key: the client prefix, with "port N" for src+port, or "to VIP
// port N" for dst+port.
func Persist(w io.Writer, l control.PersistList) error {
	rows := make([][]string, 0, len(l.Entries))
	for _, e := range l.Entries {
		exp := i64(e.Expires) + "s"
		if e.Conns > 0 {
			exp = none
		}
		client := e.Client
		switch e.Key {
		case "src+port":
			client += " port " + strconv.Itoa(int(e.Port))
		case "dst+port":
			client = "to " + strings.TrimSuffix(strings.TrimSuffix(e.Client, "/32"), "/128") + " port " + strconv.Itoa(int(e.Port))
		}
		rows = append(rows, []string{e.Rule, client, e.Server, u(e.Conns), exp})
	}
	if err := table(w, "RULE\tCLIENT\tSERVER\tCONNS\tEXPIRES", rows); err != nil {
		return err
	}
	return more(w, len(l.Entries), l.Total, "entries")
}

// lbHeader is the header of the load balancer's counter tables.
const lbHeader = "CONNS\tTOTAL\tPKTS-IN\tBYTES-IN\tPKTS-OUT\tBYTES-OUT\tDROPS"

func lbCells(c control.LBCounters) []string {
	return []string{u(c.ConnsActive), u(c.ConnsTotal), u(c.PacketsIn), u(c.BytesIn), u(c.PacketsOut), u(c.BytesOut), u(c.Drops)}
}

// lbStats writes the rule and server counter tables of a StatsInfo, when it has them.
func lbStats(w io.Writer, s *control.StatsInfo) error {
	if len(s.Rules) > 0 {
		rows := make([][]string, 0, len(s.Rules))
		for _, r := range s.Rules {
			rows = append(rows, append([]string{r.Name}, lbCells(r.LBCounters)...))
		}
		fmt.Fprintln(w)
		if err := table(w, "RULE\t"+lbHeader, rows); err != nil {
			return err
		}
	}
	if len(s.Servers) > 0 {
		rows := make([][]string, 0, len(s.Servers))
		for _, v := range s.Servers {
			rows = append(rows, append([]string{v.Rule, v.Endpoint()}, lbCells(v.LBCounters)...))
		}
		fmt.Fprintln(w)
		if err := table(w, "RULE\tSERVER\t"+lbHeader, rows); err != nil {
			return err
		}
	}
	return nil
}

// Selected sums the counters a show-stats -r / -s call selected: the servers when the
// call named a server, else the rules.
func Selected(s *control.StatsInfo, server bool) control.LBCounters {
	var c control.LBCounters
	if server {
		for _, v := range s.Servers {
			c.Add(v.LBCounters)
		}
		return c
	}
	for _, r := range s.Rules {
		c.Add(r.LBCounters)
	}
	return c
}

// LBRates are a rule's or server's rates between two snapshots, and its flows now.
type LBRates struct {
	Conns           uint64  // active flows at the second snapshot
	NewPS           float64 // new flows per second
	InPPS, OutPPS   float64 // packets per second, client to server and back
	InMbps, OutMbps float64 // megabits per second
	DropsPS         float64
}

// ComputeLBRates returns the rates from prev to cur, each snapshot's counters selected
// by sel. A nil prev, no time elapsed or a restarted ulbd count from ulbd's start, as in
// ComputeRates.
func ComputeLBRates(prev, cur *control.StatsInfo, sel func(*control.StatsInfo) control.LBCounters) LBRates {
	var p control.LBCounters
	var pUp int64
	if prev != nil {
		p, pUp = sel(prev), prev.Uptime
	}
	c := sel(cur)
	dt := float64(cur.Uptime - pUp)
	if cur.Uptime <= pUp {
		p = control.LBCounters{}
		dt = float64(cur.Uptime)
	}
	r := LBRates{Conns: c.ConnsActive}
	if dt <= 0 {
		return r
	}
	sec := dt / 1e9
	r.NewPS = delta(p.ConnsTotal, c.ConnsTotal) / sec
	r.InPPS = delta(p.PacketsIn, c.PacketsIn) / sec
	r.OutPPS = delta(p.PacketsOut, c.PacketsOut) / sec
	r.InMbps = delta(p.BytesIn, c.BytesIn) * 8 / 1e6 / sec
	r.OutMbps = delta(p.BytesOut, c.BytesOut) * 8 / 1e6 / sec
	r.DropsPS = delta(p.Drops, c.Drops) / sec
	return r
}

// LBRateWriter writes one line of LBRates per call, with a header before the first line
// and again every HeaderEvery lines, like RateWriter.
type LBRateWriter struct {
	w     io.Writer
	lines int
}

// NewLBRateWriter returns an LBRateWriter on w.
func NewLBRateWriter(w io.Writer) *LBRateWriter { return &LBRateWriter{w: w} }

const (
	lbRateHeader = "%10s %10s %12s %12s %10s %10s %10s\n"
	lbRateLine   = "%10d %10.0f %12.0f %12.0f %10.2f %10.2f %10.0f\n"
)

// Write writes r as one line, preceded by the header when due.
func (rw *LBRateWriter) Write(r LBRates) error {
	if rw.lines%HeaderEvery == 0 {
		if _, err := fmt.Fprintf(rw.w, lbRateHeader, "CONNS", "NEW/S", "IN-PPS", "OUT-PPS", "IN-MBIT/S", "OUT-MBIT/S", "DROPS/S"); err != nil {
			return err
		}
	}
	rw.lines++
	_, err := fmt.Fprintf(rw.w, lbRateLine, r.Conns, r.NewPS, r.InPPS, r.OutPPS, r.InMbps, r.OutMbps, r.DropsPS)
	return err
}
