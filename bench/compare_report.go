package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"ulb/router/control"
)

// CompareReport is the outcome of RunCompare: per workload, the median of each figure on
// each target, every sample, and the ratios to the baseline.
type CompareReport struct {
	Name      string           `json:"name,omitempty"`
	Repeat    int              `json:"repeat"`
	Baseline  string           `json:"baseline"`
	Targets   []string         `json:"targets"`
	Started   time.Time        `json:"started"`
	Workloads []WorkloadReport `json:"workloads"`
}

// WorkloadReport is one workload's figures.
type WorkloadReport struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Duration string   `json:"duration"`
	Metrics  []Metric `json:"metrics"`
	// Errors holds, per target, why a repetition failed (its figures are then missing).
	Errors map[string][]string `json:"errors,omitempty"`
	// Notes say how a figure was measured when it differs from the usual way.
	Notes []string `json:"notes,omitempty"`
	// Router holds, per target that runs ulbd, the router's counters over the last
	// repetition (differences of show-stats before and after).
	Router map[string]*control.StatsInfo `json:"router,omitempty"`
}

// Metric is one figure of a workload.
type Metric struct {
	Name string `json:"name"` // e.g. "Gbit/s received"
	// Main marks the workload's headline figure, the one goals apply to.
	Main bool `json:"main,omitempty"`
	// Ratio reports whether dividing by the baseline means something (a rate does, a
	// loss percentage does not).
	Ratio   bool                 `json:"ratio"`
	Samples map[string][]float64 `json:"samples"` // per target, one per repetition that succeeded
	Median  map[string]float64   `json:"median"`
	Ratios  map[string]float64   `json:"ratios,omitempty"` // per non-baseline target: median / baseline median
	Goal    string               `json:"goal,omitempty"`   // e.g. ">= 0.50x kernel, >= 0.35"
	GoalMet map[string]bool      `json:"goal_met,omitempty"`
}

// add records one sample.
func (m *Metric) add(target string, v float64) {
	if m.Samples == nil {
		m.Samples = map[string][]float64{}
	}
	m.Samples[target] = append(m.Samples[target], v)
}

// metric returns the workload's metric named name, adding it (in order of first use).
func (w *WorkloadReport) metric(name string, main, ratio bool) *Metric {
	for i := range w.Metrics {
		if w.Metrics[i].Name == name {
			return &w.Metrics[i]
		}
	}
	w.Metrics = append(w.Metrics, Metric{Name: name, Main: main, Ratio: ratio})
	return &w.Metrics[len(w.Metrics)-1]
}

// Median returns the median of xs (the mean of the middle two for an even count), or NaN
// for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// finish computes medians, ratios and goals from the samples.
func (r *CompareReport) finish(specs []Workload) {
	for wi := range r.Workloads {
		w := &r.Workloads[wi]
		var spec Workload
		if wi < len(specs) {
			spec = specs[wi]
		}
		for mi := range w.Metrics {
			m := &w.Metrics[mi]
			m.Median = map[string]float64{}
			for t, xs := range m.Samples {
				m.Median[t] = Median(xs)
			}
			base, hasBase := m.Median[r.Baseline]
			if m.Ratio && hasBase && base > 0 {
				m.Ratios = map[string]float64{}
				for t, v := range m.Median {
					if t != r.Baseline {
						m.Ratios[t] = v / base
					}
				}
			}
			judged := slices.ContainsFunc(r.Targets, func(t string) bool { return t != r.Baseline })
			if i := slices.IndexFunc(spec.goals, func(g figureGoal) bool { return g.Figure == m.Name }); i >= 0 && judged {
				// A goal of the workload's goals table bounds this figure.
				g := spec.goals[i]
				m.Goal = g.String()
				m.GoalMet = map[string]bool{}
				for _, t := range r.Targets {
					if t != r.Baseline {
						v, ok := m.Median[t]
						m.GoalMet[t] = ok && g.met(v)
					}
				}
				continue
			}
			if !m.Main || !judged || (spec.GoalRatio == 0 && spec.GoalMin == 0) {
				continue
			}
			var goals []string
			if spec.GoalRatio > 0 {
				goals = append(goals, fmt.Sprintf(">= %.2fx %s", spec.GoalRatio, r.Baseline))
			}
			if spec.GoalMin > 0 {
				goals = append(goals, fmt.Sprintf(">= %s", formatFigure(spec.GoalMin)))
			}
			m.Goal = strings.Join(goals, ", ")
			m.GoalMet = map[string]bool{}
			for t, v := range m.Median {
				if t == r.Baseline {
					continue
				}
				met := spec.GoalMin == 0 || v >= spec.GoalMin
				if spec.GoalRatio > 0 {
					ratio, ok := m.Ratios[t]
					met = met && ok && ratio >= spec.GoalRatio
				}
				m.GoalMet[t] = met
			}
		}
	}
}

// formatFigure prints a figure with three significant digits, at least.
func formatFigure(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// WriteTable prints the report as one table (WORKLOAD, METRIC, a column per target, a
// ratio column per non-baseline target, GOAL), then the errors and the router counters.
func (r *CompareReport) WriteTable(out io.Writer) error {
	others := slices.DeleteFunc(slices.Clone(r.Targets), func(t string) bool { return t == r.Baseline })
	fmt.Fprintf(out, "compare %s: median of %d repetition(s); ratio = target / %s\n", r.Name, r.Repeat, r.Baseline)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	head := []string{"WORKLOAD", "METRIC"}
	head = append(head, r.Targets...)
	for _, t := range others {
		head = append(head, t+"/"+r.Baseline)
	}
	anyGoal := false
	for _, w := range r.Workloads {
		for _, m := range w.Metrics {
			anyGoal = anyGoal || m.Goal != ""
		}
	}
	if anyGoal {
		head = append(head, "GOAL")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, w := range r.Workloads {
		label := w.Name
		if len(w.Metrics) == 0 {
			row := append([]string{label, "(no figures)"}, make([]string, len(head)-2)...)
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		for _, m := range w.Metrics {
			row := []string{label, m.Name}
			label = ""
			for _, t := range r.Targets {
				v, ok := m.Median[t]
				if !ok {
					v = math.NaN()
				}
				row = append(row, formatFigure(v))
			}
			for _, t := range others {
				if ratio, ok := m.Ratios[t]; ok {
					row = append(row, fmt.Sprintf("%.2f", ratio))
				} else {
					row = append(row, "-")
				}
			}
			if m.Goal != "" {
				var verdicts []string
				for _, t := range others {
					if met, ok := m.GoalMet[t]; ok {
						verdict := "met"
						if !met {
							verdict = "MISSED"
						}
						verdicts = append(verdicts, t+" "+verdict)
					}
				}
				row = append(row, m.Goal+": "+strings.Join(verdicts, ", "))
			}
			// Every row has every cell, so that tabwriter aligns them as one table.
			row = append(row, make([]string, len(head)-len(row))...)
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range strings.SplitAfter(table.String(), "\n") {
		if l != "" {
			fmt.Fprintln(out, strings.TrimRight(l, " \n"))
		}
	}
	for _, w := range r.Workloads {
		for _, n := range w.Notes {
			fmt.Fprintf(out, "note: %s: %s\n", w.Name, n)
		}
		for _, t := range slices.Sorted(maps.Keys(w.Errors)) {
			for _, e := range w.Errors[t] {
				fmt.Fprintf(out, "error: %s on %s: %s\n", w.Name, t, e)
			}
		}
	}
	for _, w := range r.Workloads {
		for _, t := range slices.Sorted(maps.Keys(w.Router)) {
			writeRouterStats(out, w.Name, t, w.Router[t])
		}
	}
	return nil
}

func writeRouterStats(out io.Writer, workload, target string, s *control.StatsInfo) {
	fmt.Fprintf(out, "\n%s counters during %s (last repetition, %.1f s): forwarded %d, local %d, icmp sent %d\n",
		target, workload, time.Duration(s.Uptime).Seconds(), s.Forwarded, s.Local, s.ICMPSent)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PORT\tRX\tTX\tRX_DROPS\tTX_ERRORS")
	for _, p := range s.Ports {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\n", p.Name, p.RxPackets, p.TxPackets, p.RxDrops, p.TxErrors)
	}
	tw.Flush()
	var drops []string
	for _, k := range slices.Sorted(maps.Keys(s.Drops)) {
		if s.Drops[k] > 0 {
			drops = append(drops, fmt.Sprintf("%s=%d", k, s.Drops[k]))
		}
	}
	if len(drops) == 0 {
		drops = []string{"none"}
	}
	fmt.Fprintf(out, "  router drops: %s\n", strings.Join(drops, " "))
}

// WriteJSON prints the report as indented JSON.
func (r *CompareReport) WriteJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Failed reports whether any repetition failed.
func (r *CompareReport) Failed() bool {
	for _, w := range r.Workloads {
		if len(w.Errors) > 0 {
			return true
		}
	}
	return false
}

// statsDelta returns after - before: counters over an interval (Uptime is its length).
func statsDelta(before, after *control.StatsInfo) *control.StatsInfo {
	d := &control.StatsInfo{
		Uptime:    after.Uptime - before.Uptime,
		Forwarded: after.Forwarded - before.Forwarded,
		Local:     after.Local - before.Local,
		ICMPSent:  after.ICMPSent - before.ICMPSent,
		Drops:     map[string]uint64{},
	}
	for k, v := range after.Drops {
		d.Drops[k] = v - before.Drops[k]
	}
	for _, p := range after.Ports {
		var b control.PortCounters
		for _, q := range before.Ports {
			if q.Name == p.Name {
				b = q.PortCounters
			}
		}
		d.Ports = append(d.Ports, control.PortStats{Name: p.Name, PortCounters: control.PortCounters{
			RxPackets: p.RxPackets - b.RxPackets,
			RxBytes:   p.RxBytes - b.RxBytes,
			TxPackets: p.TxPackets - b.TxPackets,
			TxBytes:   p.TxBytes - b.TxBytes,
			RxDrops:   p.RxDrops - b.RxDrops,
			TxErrors:  p.TxErrors - b.TxErrors,
		}})
	}
	return d
}
