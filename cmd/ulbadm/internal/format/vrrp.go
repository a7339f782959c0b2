package format

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"ulb/router/control"
)

// TimeLayout prints event and transition times: RFC 3339 with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Mode returns show-router's MODE flags, like vrrpadm's: o (address owner), p
// (preempt), a (accept), "-" for each one off.
func Mode(r *control.RouterInfo) string {
	flag := func(on bool, c byte) byte {
		if on {
			return c
		}
		return '-'
	}
	return string([]byte{flag(r.Owner(), 'o'), flag(r.Preempt, 'p'), flag(r.Accept, 'a')})
}

// Prio prints the effective priority, followed by "/CONFIGURED" when tracking lowered
// it: "200", or "150/200".
func Prio(r *control.RouterInfo) string {
	if r.EffectivePriority == 0 || r.EffectivePriority == r.Priority {
		return strconv.Itoa(r.Priority)
	}
	return fmt.Sprintf("%d/%d", r.EffectivePriority, r.Priority)
}

func millis(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

// Routers writes show-router's table.
func Routers(w io.Writer, routers []control.RouterInfo) error {
	rows := make([][]string, 0, len(routers))
	for i := range routers {
		r := &routers[i]
		port := or(r.Port)
		if len(r.Links) > 1 {
			var names []string
			for _, l := range r.Links {
				names = append(names, l.Port)
			}
			port = strings.Join(names, "+")
		}
		rows = append(rows, []string{r.Name, strconv.Itoa(r.VRID), port, or(r.Family), Prio(r), millis(r.AdverInterval),
			Mode(r), strings.ToUpper(or(r.State)), or(r.VMAC), or(r.Master)})
	}
	return table(w, "NAME\tVRID\tPORT\tAF\tPRIO\tADV_INTV\tMODE\tSTATE\tVMAC\tMASTER", rows)
}

// RoutersFull writes each instance as "KEY: value" lines, blank-line separated, with its
// counters and its drops by reason.
func RoutersFull(w io.Writer, routers []control.RouterInfo) error {
	for i := range routers {
		r := &routers[i]
		if i > 0 {
			fmt.Fprintln(w)
		}
		state := strings.ToUpper(or(r.State))
		if r.Fault != "" {
			state += " (" + r.Fault + ")"
		}
		prio := strconv.Itoa(r.Priority)
		if r.Owner() {
			prio += " (address owner)"
		}
		if r.EffectivePriority != 0 && r.EffectivePriority != r.Priority {
			prio += fmt.Sprintf(", %d with tracking", r.EffectivePriority)
		}
		intv := millis(r.AdverInterval)
		if r.MasterAdverInterval != 0 && r.MasterAdverInterval != r.AdverInterval {
			intv += ", master's " + millis(r.MasterAdverInterval)
		}
		preempt := "no"
		if r.Preempt {
			preempt = "yes"
			if r.PreemptDelay > 0 {
				preempt += ", after " + millis(r.PreemptDelay)
			}
		}
		accept := "no"
		if r.Accept {
			accept = "yes"
		}
		master := or(r.Master)
		if r.Master != "" && r.MasterPriority != 0 {
			master += fmt.Sprintf(" (priority %d)", r.MasterPriority)
		}
		addrs := none
		if len(r.Addresses) > 0 {
			addrs = strings.Join(r.Addresses, ",")
		}
		c := &r.Counters
		trans := u(c.Transitions) + fmt.Sprintf(" (%s to master)", u(c.BecameMaster))
		if !c.LastTransition.IsZero() {
			trans += ", last " + c.LastTransition.Format(TimeLayout)
		}
		drops := "none"
		if len(c.Drops) > 0 {
			var parts []string
			for _, reason := range slices.Sorted(maps.Keys(c.Drops)) {
				parts = append(parts, fmt.Sprintf("%s=%d", reason, c.Drops[reason]))
			}
			drops = strings.Join(parts, " ")
		}
		rows := [][]string{
			{"ROUTER:", r.Name}, {"VRID:", strconv.Itoa(r.VRID)}, {"PORT:", r.Port},
			{"FAMILY:", fmt.Sprintf("%s, VRRPv%d", or(r.Family), r.Version)}, {"STATE:", state},
			{"PRIORITY:", prio}, {"ADVER-INTERVAL:", intv}, {"PREEMPT:", preempt}, {"ACCEPT:", accept},
			{"VMAC:", or(r.VMAC)}, {"MASTER:", master}, {"ADDRESSES:", addrs}, {"SYNC-GROUP:", or(r.SyncGroup)},
			{"ADVERTS:", fmt.Sprintf("%s sent, %s received", u(c.AdvertsSent), u(c.AdvertsReceived))},
			{"TRANSITIONS:", trans}, {"DROPS:", drops},
		}
		// One row per link of an instance with advert ports: its counters and when the
		// last advert came by it (a silent link is a cut one).
		for _, l := range r.Links {
			line := fmt.Sprintf("%s from %s: %s sent, %s received, %s dropped", l.Port, or(l.Source),
				u(l.AdvertsSent), u(l.AdvertsReceived), u(l.Drops))
			if !l.LastAdvert.IsZero() {
				line += ", last advert " + l.LastAdvert.Format(TimeLayout)
				if l.LastFrom != "" {
					line += " from " + l.LastFrom
				}
			} else {
				line += ", no advert yet"
			}
			rows = append(rows, []string{"LINK:", line})
		}
		if err := tableRows(w, rows); err != nil {
			return err
		}
	}
	return nil
}

// Event formats one event of ulbadm watch as a line (without the newline):
//
//	2025-01-02T03:04:05.000Z vrrp vip: backup -> master (master down) master 198.51.100.10 priority 200
//	2025-01-02T03:04:06.000Z lost: 12 events missed
func Event(ev control.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.Format(TimeLayout))
	b.WriteByte(' ')
	b.WriteString(or(ev.Kind))
	if ev.Kind == control.EventLost {
		fmt.Fprintf(&b, ": %d events missed", ev.Missed)
		return b.String()
	}
	if ev.Name != "" {
		b.WriteString(" " + ev.Name)
	}
	if ev.From != "" || ev.To != "" {
		fmt.Fprintf(&b, ": %s -> %s", or(ev.From), or(ev.To))
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, " (%s)", ev.Reason)
	}
	if ev.Master != "" {
		b.WriteString(" master " + ev.Master)
	}
	if ev.Priority != 0 {
		fmt.Fprintf(&b, " priority %d", ev.Priority)
	}
	return b.String()
}
