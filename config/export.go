package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"ulb/balancer/health"
)

// Marshal renders a validated configuration as a TOML file that Parse reads back into
// the same Config (but for File and Warnings, which belong to the file read). It uses
// the keys and value formats the parser accepts: durations as Go duration strings
// ("5s", "1h30m"), port ranges as "8000-8099", proxy_source as ranges of consecutive
// addresses, servers as inline tables. Sections come in the order ports, routes,
// healthchecks, servergroups, rules, conntrack, vrrp, sync, dataplane, defence, metrics, one
// table per item. A key at its default is left out, except a port's kind and a rule's
// protocol, algorithm and topology, which say what the item is. The output depends on
// the Config alone (and, for a script check's relative command, on the working
// directory: see below), so that two exports of one configuration are the same bytes.
//
// A script check's command that Parse resolved against the file's directory (a
// relative path such as "./check.sh") is written as an absolute path, so that the
// export runs the same program wherever it is saved.
//
// Marshal does not validate: a Config changed by hand should be checked by parsing
// what Marshal returns. It fails only on what TOML cannot hold (a string that is not
// UTF-8).
func Marshal(c *Config) ([]byte, error) {
	e := &encoder{}
	e.topLevel(c)
	for i := range c.Ports {
		e.port(&c.Ports[i])
	}
	for i := range c.Routes {
		e.route(&c.Routes[i])
	}
	for i := range c.HealthChecks {
		e.healthCheck(&c.HealthChecks[i])
	}
	for i := range c.ServerGroups {
		e.serverGroup(&c.ServerGroups[i])
	}
	for i := range c.Rules {
		e.rule(&c.Rules[i])
	}
	e.conntrack(&c.Conntrack)
	for i := range c.VRRP {
		e.vrrp(&c.VRRP[i])
	}
	e.sync(&c.Sync)
	e.dataplane(&c.Dataplane)
	e.defence(&c.Defence)
	e.metrics(&c.Metrics)
	for i := range c.AutoNAT {
		e.autoNAT(&c.AutoNAT[i])
	}
	for i := range c.NAT {
		e.staticNAT(&c.NAT[i])
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.buf.Bytes(), nil
}

// maxLine is the length up to which an array is written on one line; a longer one has
// an element per line.
const maxLine = 100

// encoder writes TOML text; the first value it cannot write is kept in err.
type encoder struct {
	buf bytes.Buffer
	err error
}

// header starts a table ("[conntrack]") or an element of an array of tables
// ("[[port]]"), after a blank line.
func (e *encoder) header(h string) {
	if e.buf.Len() > 0 {
		e.buf.WriteByte('\n')
	}
	e.buf.WriteString(h)
	e.buf.WriteByte('\n')
}

// kv writes one key with a value already in TOML form.
func (e *encoder) kv(key, v string) {
	e.buf.WriteString(key)
	e.buf.WriteString(" = ")
	e.buf.WriteString(v)
	e.buf.WriteByte('\n')
}

// array writes a key whose value is an array of values in TOML form: on one line when
// it fits, else one element per line.
func (e *encoder) array(key string, elems []string) {
	one := "[" + strings.Join(elems, ", ") + "]"
	if len(key)+3+len(one) <= maxLine {
		e.kv(key, one)
		return
	}
	var b strings.Builder
	b.WriteString("[\n")
	for _, el := range elems {
		b.WriteString("  ")
		b.WriteString(el)
		b.WriteString(",\n")
	}
	b.WriteString("]")
	e.kv(key, b.String())
}

// quote returns s as a TOML basic string (TOML 1.0 §String): the quotation mark, the
// backslash and the control characters escaped.
func (e *encoder) quote(s string) string {
	if !utf8.ValidString(s) {
		if e.err == nil {
			e.err = fmt.Errorf("config: cannot export %q: not UTF-8, which a TOML string must be", s)
		}
		return `""`
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (e *encoder) str(key, s string)               { e.kv(key, e.quote(s)) }
func (e *encoder) integer(key string, n int)       { e.kv(key, strconv.Itoa(n)) }
func (e *encoder) boolean(key string, b bool)      { e.kv(key, strconv.FormatBool(b)) }
func (e *encoder) dur(key string, d time.Duration) { e.str(key, fmtDuration(d)) }

// strs writes a list of strings.
func (e *encoder) strs(key string, list []string) {
	elems := make([]string, len(list))
	for i, s := range list {
		elems[i] = e.quote(s)
	}
	e.array(key, elems)
}

// inline renders an inline table from "key = value" pairs.
func inline(pairs []string) string {
	return "{ " + strings.Join(pairs, ", ") + " }"
}

func (e *encoder) topLevel(c *Config) {
	if c.Hostname != "" {
		e.str("hostname", c.Hostname)
	}
	if c.ControlSocket != DefaultControlSocket {
		e.str("control_socket", c.ControlSocket)
	}
	if c.LogLevelSet {
		e.str("log_level", logLevelName(c.LogLevel))
	}
	if c.HostPort {
		e.boolean("host_port", true)
	}
}

// logLevelName is the log_level spelling of l, as ParseLogLevel reads it.
func logLevelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "debug"
	case slog.LevelWarn:
		return "warn"
	case slog.LevelError:
		return "error"
	}
	return "info"
}

func (e *encoder) port(p *Port) {
	e.header("[[port]]")
	e.str("name", p.Name)
	e.str("device", p.Device)
	e.str("kind", string(p.Kind))
	if len(p.Addresses) > 0 {
		e.strs("address", prefixStrings(p.Addresses))
	}
	defMTU := 0
	if p.Kind == KindTUN {
		defMTU = DefaultTUNMTU
	}
	if p.MTU != defMTU {
		e.integer("mtu", p.MTU)
	}
	if p.RcvBuf != 0 {
		e.integer("rcvbuf", p.RcvBuf)
	}
	if p.SndBuf != 0 {
		e.integer("sndbuf", p.SndBuf)
	}
	if p.Batch != 0 {
		e.integer("batch", p.Batch)
	}
	if p.KernelRX {
		e.boolean("kernel_rx", true)
	}
	if p.DirectedBroadcast {
		e.boolean("directed_broadcast", true)
	}
	// redirects defaults to true on afpacket ports and is refused on tun ports.
	if p.Redirects != (p.Kind == KindAFPacket) {
		e.boolean("redirects", p.Redirects)
	}
}

func prefixStrings(list []netip.Prefix) []string {
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.String()
	}
	return out
}

func (e *encoder) route(r *Route) {
	e.header("[[route]]")
	e.str("to", r.To.String())
	if r.Via.IsValid() {
		e.str("via", r.Via.String())
	}
	// A port found from via is not written: the parser finds it again.
	if r.Pinned {
		e.str("port", r.Port)
	}
}

func (e *encoder) healthCheck(h *HealthCheck) {
	e.header("[[healthcheck]]")
	e.str("name", h.Name)
	e.str("test", h.Test)
	if h.Interval != health.DefaultInterval {
		e.dur("interval", h.Interval)
	}
	if h.Timeout != health.DefaultTimeout {
		e.dur("timeout", h.Timeout)
	}
	if h.Count != health.DefaultCount {
		e.integer("count", h.Count)
	}
	if h.Rise != health.DefaultRise {
		e.integer("rise", h.Rise)
	}
	if h.Port != 0 {
		e.integer("port", int(h.Port))
	}
	switch h.Test {
	case health.TestUDP:
		e.str("send", h.Send)
		if h.Expect != "" {
			e.str("expect", h.Expect)
		}
	case health.TestHTTP:
		if h.Path != "/" {
			e.str("path", h.Path)
		}
		if h.Host != "" {
			e.str("host", h.Host)
		}
		if h.ExpectStatus != health.DefaultExpectStatus {
			e.integer("expect_status", h.ExpectStatus)
		}
		if h.ExpectBody != nil {
			e.str("expect_body", h.ExpectBody.String())
		}
	case health.TestAgent:
		if h.AgentPort != health.DefaultAgentPort {
			e.integer("agent_port", int(h.AgentPort))
		}
	case health.TestScript:
		cmd := append([]string(nil), h.Command...)
		// Parse joined a relative program path to the file's directory, giving a path
		// relative to the working directory: written as is, it would be joined again.
		if len(cmd) > 0 && strings.Contains(cmd[0], "/") && !filepath.IsAbs(cmd[0]) {
			abs, err := filepath.Abs(cmd[0])
			if err != nil && e.err == nil {
				e.err = fmt.Errorf("config: healthcheck %q: command %q: %w", h.Name, cmd[0], err)
			}
			cmd[0] = abs
		}
		e.strs("command", cmd)
	}
}

func (e *encoder) serverGroup(g *ServerGroup) {
	e.header("[[servergroup]]")
	e.str("name", g.Name)
	if g.HealthCheck != "" {
		e.str("healthcheck", g.HealthCheck)
	}
	elems := make([]string, len(g.Servers))
	for i, s := range g.Servers {
		pairs := []string{"address = " + e.quote(s.Addr.String())}
		if s.Port != 0 {
			pairs = append(pairs, "port = "+strconv.Itoa(int(s.Port)))
		}
		if s.Weight != DefaultWeight {
			pairs = append(pairs, "weight = "+strconv.Itoa(s.Weight))
		}
		if s.MaxConns != 0 {
			pairs = append(pairs, "max_conns = "+strconv.Itoa(s.MaxConns))
		}
		if s.MinConns != 0 {
			pairs = append(pairs, "min_conns = "+strconv.Itoa(s.MinConns))
		}
		if !s.Enabled {
			pairs = append(pairs, "enabled = false")
		}
		elems[i] = inline(pairs)
	}
	// One server per line when there are several, as a list of servers reads best.
	if len(elems) > 1 {
		e.kv("server", "[\n  "+strings.Join(elems, ",\n  ")+",\n]")
	} else {
		e.array("server", elems)
	}
}

func (e *encoder) rule(r *Rule) {
	e.header("[[rule]]")
	e.str("name", r.Name)
	e.str("vip", r.VIP.String())
	e.str("port", r.Ports())
	e.str("protocol", string(r.Protocol))
	e.str("algorithm", string(r.Algorithm))
	e.str("topology", string(r.Topology))
	if len(r.ProxySource) > 0 {
		e.strs("proxy_source", addrRanges(r.ProxySource))
	}
	if r.TunnelSource.IsValid() {
		e.str("tunnel_source", r.TunnelSource.String())
	}
	if r.PMask >= 0 {
		e.integer("pmask", r.PMask)
	}
	if r.PersistKey != PersistSrc && r.PersistKey != "" {
		e.str("persist_key", string(r.PersistKey))
	}
	if (r.PMask >= 0 || r.PersistKey == PersistDstPort) && r.PersistTimeout != DefaultPersistTimeout {
		e.dur("persist_timeout", r.PersistTimeout)
	}
	if r.ConnDrain != 0 {
		e.dur("conn_drain", r.ConnDrain)
	}
	e.str("servergroup", r.ServerGroup)
	if r.SorryServer.IsValid() {
		srv := Server{Addr: r.SorryServer.Addr(), Port: r.SorryServer.Port()}
		e.str("sorry_server", srv.Endpoint())
	}
	if r.KeepFlowsOnDown {
		e.boolean("keep_flows_on_down", true)
	}
	if !r.Enabled {
		e.boolean("enabled", false)
	}
}

// addrRanges writes a list of addresses as "FIRST-LAST" for each run of consecutive
// addresses (a single address alone), in order, so that proxy_source's expansion gives
// the list back.
func addrRanges(list []netip.Addr) []string {
	var out []string
	for i := 0; i < len(list); {
		j := i
		for j+1 < len(list) && list[j+1] == list[j].Next() {
			j++
		}
		if j == i {
			out = append(out, list[i].String())
		} else {
			out = append(out, list[i].String()+"-"+list[j].String())
		}
		i = j + 1
	}
	return out
}

func (e *encoder) conntrack(ct *Conntrack) {
	var timeouts []string
	for _, k := range timeoutKeys {
		if d := *ct.Timeouts.field(k); d != 0 {
			timeouts = append(timeouts, k)
		}
	}
	if ct.Capacity == 0 && len(timeouts) == 0 {
		return
	}
	e.header("[conntrack]")
	if ct.Capacity != 0 {
		e.integer("capacity", ct.Capacity)
	}
	if len(timeouts) > 0 {
		e.header("[conntrack.timeout]")
		for _, k := range timeouts {
			e.dur(k, *ct.Timeouts.field(k))
		}
	}
}

func (e *encoder) vrrp(v *VRRP) {
	e.header("[[vrrp]]")
	e.str("name", v.Name)
	e.str("port", v.Port)
	if len(v.AdvertPorts) > 0 {
		e.strs("advert_ports", v.AdvertPorts)
	}
	e.integer("vrid", int(v.VRID))
	if v.Version != DefaultVRRPVersion {
		e.integer("version", v.Version)
	}
	if v.Priority != DefaultVRRPPriority {
		e.integer("priority", v.Priority)
	}
	if v.Interval != DefaultVRRPInterval {
		e.dur("interval", v.Interval)
	}
	if !v.Preempt {
		e.boolean("preempt", false)
	}
	if !v.Enabled {
		e.boolean("enabled", false)
	}
	if v.PreemptDelay != 0 {
		e.dur("preempt_delay", v.PreemptDelay)
	}
	if v.Accept {
		e.boolean("accept", true)
	}
	// Each address with its prefix length: the length found for a plain address is
	// kept as found.
	e.strs("address", prefixStrings(v.Addresses))
	// A tracked item without a weight is written as its name alone: weight 0 (FAULT)
	// is what an absent weight means, and weight = 0 is refused.
	if len(v.TrackPorts) > 0 {
		elems := make([]string, len(v.TrackPorts))
		for i, t := range v.TrackPorts {
			elems[i] = e.quote(t.Port)
			if t.Weight != 0 {
				elems[i] = inline([]string{"port = " + elems[i], "weight = " + strconv.Itoa(t.Weight)})
			}
		}
		e.array("track_port", elems)
	}
	if len(v.TrackPings) > 0 {
		elems := make([]string, len(v.TrackPings))
		for i, t := range v.TrackPings {
			pairs := []string{"address = " + e.quote(t.Address.String())}
			if t.Interval != DefaultPingInterval {
				pairs = append(pairs, "interval = "+e.quote(fmtDuration(t.Interval)))
			}
			if t.Count != DefaultPingCount {
				pairs = append(pairs, "count = "+strconv.Itoa(t.Count))
			}
			if t.Weight != 0 {
				pairs = append(pairs, "weight = "+strconv.Itoa(t.Weight))
			}
			elems[i] = inline(pairs)
		}
		e.array("track_ping", elems)
	}
	if len(v.TrackGroups) > 0 {
		elems := make([]string, len(v.TrackGroups))
		for i, t := range v.TrackGroups {
			elems[i] = e.quote(t.ServerGroup)
			if t.Weight != 0 {
				elems[i] = inline([]string{"servergroup = " + elems[i], "weight = " + strconv.Itoa(t.Weight)})
			}
		}
		e.array("track_group", elems)
	}
	if v.SyncGroup != "" {
		e.str("sync_group", v.SyncGroup)
	}
	if v.Checksum != ChecksumDefault {
		e.str("checksum", string(v.Checksum))
	}
	if v.GARPCount != DefaultGARPCount {
		e.integer("garp_count", v.GARPCount)
	}
	if v.GARPRefresh != 0 {
		e.dur("garp_refresh", v.GARPRefresh)
	}
}

func (e *encoder) sync(s *Sync) {
	if !s.Enabled {
		return
	}
	e.header("[sync]")
	peers := make([]string, len(s.Peers))
	for i, p := range s.Peers {
		peers[i] = p.String()
	}
	e.strs("peer", peers) // required, even when empty
	if s.Port != DefaultSyncPort {
		e.integer("port", int(s.Port))
	}
	if s.VRRP != "" {
		e.str("vrrp", s.VRRP)
	}
	if s.Refresh != DefaultSyncRefresh {
		e.dur("refresh", s.Refresh)
	}
}

func (e *encoder) dataplane(dp *Dataplane) {
	if dp.Nice == 0 && len(dp.CPUs) == 0 {
		return
	}
	e.header("[dataplane]")
	if dp.Nice != 0 {
		e.integer("nice", dp.Nice)
	}
	if len(dp.CPUs) > 0 {
		cpus := make([]string, len(dp.CPUs))
		for i, n := range dp.CPUs {
			cpus[i] = strconv.Itoa(n)
		}
		e.array("cpus", cpus)
	}
}

func (e *encoder) defence(df *Defence) {
	var keys []string
	for _, k := range []struct {
		key      string
		v, deflt int
	}{
		{"source_rate", df.SourceRate, 0},
		{"source_burst", df.SourceBurst, 0},
		{"source_prefix4", df.SourcePrefix4, 0},
		{"source_prefix6", df.SourcePrefix6, 0},
		{"syn_cookie_threshold", df.SYNCookieThreshold, DefaultCookieThreshold},
		{"syn_cookie_wscale", df.SYNCookieWScale, DefaultCookieScale},
		{"new_flow_budget", df.NewFlowBudget, 0},
	} {
		if k.v != k.deflt {
			keys = append(keys, k.key+" = "+strconv.Itoa(k.v))
		}
	}
	if df.SYNCookies != SYNCookiesOff {
		keys = append(keys, "syn_cookies = "+e.quote(df.SYNCookies))
	}
	if !df.NewFlowRing {
		keys = append(keys, "new_flow_ring = false")
	}
	if len(keys) == 0 {
		return
	}
	e.header("[defence]")
	for _, k := range keys {
		e.buf.WriteString(k)
		e.buf.WriteByte('\n')
	}
}

func (e *encoder) metrics(m *Metrics) {
	if !m.Listen.IsValid() {
		return
	}
	e.header("[metrics]")
	e.str("listen", m.Listen.String())
	if m.WebUser != "" {
		e.str("web_user", m.WebUser)
		e.str("web_password_file", m.WebPasswordFile)
	}
}

func (e *encoder) autoNAT(a *AutoNAT) {
	e.header("[[autonat]]")
	from := make([]string, len(a.From))
	for i, p := range a.From {
		from[i] = e.quote(p.String())
	}
	e.array("from", from)
	e.str("out", a.Out)
	if a.Address.IsValid() {
		e.str("address", a.Address.String())
	}
}

func (e *encoder) staticNAT(s *StaticNAT) {
	e.header("[[nat]]")
	endpoint := func(ap netip.AddrPort) string {
		if ap.Port() == 0 {
			return ap.Addr().String()
		}
		return ap.String()
	}
	e.str("public", endpoint(s.Public))
	e.str("private", endpoint(s.Private))
	if s.Protocol != "" {
		e.str("protocol", string(s.Protocol))
	}
	// Written even when found from public: the parser accepts it as given.
	e.str("out", s.Out)
}
