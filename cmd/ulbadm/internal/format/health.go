package format

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"ulb/router/control"
)

// clock prints a time of day in the local time zone, like ilbadm's LAST and NEXT; "-"
// for the zero time.
func clock(t time.Time) string {
	if t.IsZero() {
		return none
	}
	return t.Local().Format("15:04:05")
}

// interval prints milliseconds as a duration without zero units ("1m", not "1m0s").
func interval(ms int64) string {
	s := (time.Duration(ms) * time.Millisecond).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// load prints an agent's load figure: "-" for none (-1).
func load(n int) string {
	if n < 0 {
		return none
	}
	return strconv.Itoa(n)
}

// rtt prints a round-trip time given in microseconds: "-" for none.
func rtt(us int64) string {
	if us <= 0 {
		return none
	}
	return (time.Duration(us) * time.Microsecond).String()
}

func list(l []string) string {
	if len(l) == 0 {
		return none
	}
	return strings.Join(l, ",")
}

// HCResults writes show-hc-result's table, one row per server and check. FAILS counts
// the consecutive failed checks, LOAD is the agent's last figure, LAST and NEXT the
// local time the last check ended and the next starts; LAST-RESULT comes last as it
// may hold spaces.
func HCResults(w io.Writer, results []control.HCResult) error {
	rows := make([][]string, 0, len(results))
	for _, r := range results {
		rows = append(rows, []string{list(r.Rules), r.Group, r.Endpoint(), r.Check, or(r.Test), or(r.State),
			strconv.Itoa(r.Fails), rtt(r.RTT), load(r.Load), clock(r.Last), clock(r.Next), or(r.LastResult)})
	}
	return table(w, "RULES\tGROUP\tSERVER\tCHECK\tTEST\tSTATE\tFAILS\tRTT\tLOAD\tLAST\tNEXT\tLAST-RESULT", rows)
}

// HealthChecks writes show-healthcheck's table: a check's timing, the groups it tests
// and, under SETTINGS, its test's own settings as key=value pairs.
func HealthChecks(w io.Writer, checks []control.HealthCheckInfo) error {
	rows := make([][]string, 0, len(checks))
	for _, c := range checks {
		rows = append(rows, []string{c.Name, c.Test, interval(c.Interval), interval(c.Timeout), strconv.Itoa(c.Count),
			strconv.Itoa(c.Rise), port(c.Port), list(c.Groups), Settings(&c)})
	}
	return table(w, "NAME\tTEST\tINTERVAL\tTIMEOUT\tCOUNT\tRISE\tPORT\tGROUPS\tSETTINGS", rows)
}

// Settings prints the settings of a check's test as space-separated key=value pairs
// (strings quoted when they need it), "-" when it has none.
func Settings(c *control.HealthCheckInfo) string {
	var kv []string
	add := func(k, v string) { kv = append(kv, k+"="+v) }
	str := func(s string) string {
		if s == "" || strings.ContainsAny(s, " \t\"'=\\") || strconv.Quote(s) != `"`+s+`"` {
			return strconv.Quote(s)
		}
		return s
	}
	switch c.Test {
	case "udp":
		add("send", str(c.Send))
		if c.Expect != "" {
			add("expect", str(c.Expect))
		}
	case "http":
		add("path", str(c.Path))
		if c.Host != "" {
			add("host", str(c.Host))
		}
		add("status", strconv.Itoa(c.ExpectStatus))
		if c.ExpectBody != "" {
			add("body", str(c.ExpectBody))
		}
	case "agent":
		add("agent_port", strconv.Itoa(int(c.AgentPort)))
	case "script":
		parts := make([]string, len(c.Command))
		for i, a := range c.Command {
			parts[i] = str(a)
		}
		add("command", fmt.Sprintf("[%s]", strings.Join(parts, " ")))
	}
	if len(kv) == 0 {
		return none
	}
	return strings.Join(kv, " ")
}
