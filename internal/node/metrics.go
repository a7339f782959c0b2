package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ulb/conntrack"
	"ulb/router/control"
	"ulb/vrrp"
)

// MetricsPath is where the metrics listener serves the Prometheus text format.
const MetricsPath = "/metrics"

// metricsShutdown bounds how long a stopping ulbd waits for scrapes in progress.
const metricsShutdown = 2 * time.Second

// metricsCollector is a prometheus.Collector that reads, at every scrape, the same
// sources the control verbs read (show-stats, show-server, show-router,
// show-hc-result): no counter is kept for it, and the data plane does nothing more
// per packet.
type metricsCollector struct {
	s     Sources
	descs []*prometheus.Desc // every desc below, for Describe

	uptime *prometheus.Desc

	portRxPackets, portRxBytes, portTxPackets, portTxBytes, portRxDrops, portTxErrors *prometheus.Desc
	portNewFlow, portNewFlowShed                                                      *prometheus.Desc

	drops, forwarded, local, icmpSent *prometheus.Desc

	ruleEnabled, ruleConnsActive, ruleConnsTotal, rulePackets, ruleBytes, ruleDrops *prometheus.Desc

	srvConnsActive, srvConnsTotal, srvPackets, srvBytes, srvDrops *prometheus.Desc
	srvWeight, srvEffWeight, srvHealth, srvAdmin                  *prometheus.Desc
	srvOverloaded, srvMaxConns, srvMinConns                       *prometheus.Desc

	persistEntries, persistRefused *prometheus.Desc

	vrrpState, vrrpPriority, vrrpBasePriority, vrrpTransitions, vrrpBecameMaster *prometheus.Desc
	vrrpAdvertsSent, vrrpAdvertsRecv, vrrpDrops                                  *prometheus.Desc

	ctFlows, ctCapacity, ctInserted, ctExpired, ctEvicted, ctRefused *prometheus.Desc

	synActive, synActivations, synCookies, synEstablished, synRefused *prometheus.Desc
	natFlows                                                          *prometheus.Desc

	syncSending, syncMessages, syncRecords, syncRecordResults, syncDropped, syncRequests *prometheus.Desc

	hcState, hcLastOK, hcRTT, hcFails, hcSuccesses, hcLast, hcLoad *prometheus.Desc
}

// newMetricsCollector describes every metric family ulbd exports.
func newMetricsCollector(s Sources) *metricsCollector {
	c := &metricsCollector{s: s}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc("ulb_"+name, help, labels, nil)
		c.descs = append(c.descs, desc)
		return desc
	}
	c.uptime = d("uptime_seconds", "Seconds since ulbd started.")

	c.portRxPackets = d("port_receive_packets_total", "Frames the port received.", "port")
	c.portRxBytes = d("port_receive_bytes_total", "Bytes the port received.", "port")
	c.portTxPackets = d("port_transmit_packets_total", "Frames the port sent.", "port")
	c.portTxBytes = d("port_transmit_bytes_total", "Bytes the port sent.", "port")
	c.portRxDrops = d("port_receive_drops_total", "Frames the port lost before the router saw them (truncated, kernel drops, shed SYNs).", "port")
	c.portTxErrors = d("port_transmit_errors_total", "Frames the port failed to send.", "port")
	c.portNewFlow = d("port_new_flow_receive_packets_total", "SYNs read through the port's new-flow ring ([defence] new_flow_ring).", "port")
	c.portNewFlowShed = d("port_new_flow_shed_packets_total", "SYNs the kernel shed because the port's new-flow ring was full.", "port")

	c.drops = d("drops_total", "Packets the router dropped, by reason.", "reason")
	c.forwarded = d("forwarded_packets_total", "Packets routed to another port.")
	c.local = d("local_packets_total", "Packets delivered to the router itself.")
	c.icmpSent = d("icmp_sent_packets_total", "ICMP errors and echo replies the router sent.")

	c.ruleEnabled = d("rule_enabled", "1 when the rule takes new flows, 0 when disabled.", "rule")
	c.ruleConnsActive = d("rule_connections_active", "Flows of the rule in the connection table now.", "rule")
	c.ruleConnsTotal = d("rule_connections_total", "Flows the rule ever created.", "rule")
	c.rulePackets = d("rule_packets_total", "Packets of the rule's flows; direction in is client to server, out server to client.", "rule", "direction")
	c.ruleBytes = d("rule_bytes_total", "Bytes of the rule's flows, by direction.", "rule", "direction")
	c.ruleDrops = d("rule_drops_total", "Packets dropped for the rule (no server, table or proxy ports full).", "rule")

	sl := []string{"rule", "group", "server"}
	c.srvConnsActive = d("server_connections_active", "Flows to the server within the rule now.", sl...)
	c.srvConnsTotal = d("server_connections_total", "Flows the rule ever gave the server.", sl...)
	c.srvPackets = d("server_packets_total", "Packets of the server's flows within the rule, by direction.", append(sl, "direction")...)
	c.srvBytes = d("server_bytes_total", "Bytes of the server's flows within the rule, by direction.", append(sl, "direction")...)
	c.srvDrops = d("server_drops_total", "Packets of the server's flows the router dropped.", sl...)
	c.srvWeight = d("server_weight", "The server's configured weight.", sl...)
	c.srvEffWeight = d("server_effective_weight", "The weight the schedulers use after health and agent load.", sl...)
	c.srvHealth = d("server_health", "1 for the balancer's view of the server's health (up, down, unknown: no check took it down yet, it takes flows), 0 for the others.", append(sl, "state")...)
	c.srvAdmin = d("server_admin_state", "1 for the server's administrative state (enabled, disabled, draining), 0 for the others.", append(sl, "state")...)
	c.srvOverloaded = d("server_overloaded", "1 while the server takes no new flows because it reached max_conns and is not yet below min_conns.", sl...)
	c.srvMaxConns = d("server_max_conns", "The server's max_conns (0: no limit).", sl...)
	c.srvMinConns = d("server_min_conns", "The lower threshold in effect: min_conns, or 3/4 of max_conns when not set.", sl...)

	c.persistEntries = d("persistence_entries", "Persistence entries (expired ones not yet swept included).")
	c.persistRefused = d("persistence_refused_total", "Persistence entries not made because the table was full.")

	c.vrrpState = d("vrrp_state", "1 for the instance's VRRP state (init, backup, master, fault), 0 for the others.", "instance", "state")
	c.vrrpPriority = d("vrrp_priority", "The instance's effective priority (configured, adjusted by tracking).", "instance")
	c.vrrpBasePriority = d("vrrp_configured_priority", "The instance's configured priority.", "instance")
	c.vrrpTransitions = d("vrrp_transitions_total", "State transitions of the instance.", "instance")
	c.vrrpBecameMaster = d("vrrp_became_master_total", "Transitions of the instance to master.", "instance")
	c.vrrpAdvertsSent = d("vrrp_adverts_sent_total", "Advertisements the instance sent (priority 0 included).", "instance")
	c.vrrpAdvertsRecv = d("vrrp_adverts_received_total", "Advertisements that passed the receive checks.", "instance")
	c.vrrpDrops = d("vrrp_drops_total", "Advertisements discarded, by reason.", "instance", "reason")

	c.ctFlows = d("conntrack_flows", "Flows in the connection table.")
	c.ctCapacity = d("conntrack_capacity", "Flows the connection table holds at most.")
	c.ctInserted = d("conntrack_inserted_total", "Flows entered into the connection table.")
	c.ctExpired = d("conntrack_expired_total", "Flows that timed out.")
	c.ctEvicted = d("conntrack_evicted_total", "Flows evicted to make room, by class (unassured, closing, idle).", "class")
	c.ctRefused = d("conntrack_refused_total", "Flows not entered because every flow of the full table was established.")

	c.synActive = d("synproxy_active", "1 while the SYN proxy answers SYNs with cookies.")
	c.synActivations = d("synproxy_activations_total", "Times syn_cookies = \"auto\" switched the SYN proxy on.")
	c.synCookies = d("synproxy_cookies_total", "SYN cookies: sent (SYN-ACKs), valid (ACKs that made a flow), invalid (ACKs with neither flow nor valid cookie).", "result")
	c.synEstablished = d("synproxy_server_handshakes_total", "Server-side handshakes the SYN proxy completed.")
	c.synRefused = d("synproxy_server_refused_total", "Server-side handshakes refused (RST).")
	c.natFlows = d("nat_flows_total", "Flows autonat and the static mappings translated, by type (autonat, snat, dnat); an exhausted pool is the drop reason nat-no-port.", "type")

	c.syncSending = d("sync_sending", "1 while this node sends its flows to its sync peers.")
	c.syncMessages = d("sync_messages_total", "Connection sync messages, by direction (sent, received).", "direction")
	c.syncRecords = d("sync_records_total", "Connection sync records, by direction (sent, received).", "direction")
	c.syncRecordResults = d("sync_received_records_total", "What became of received records: adopted, refreshed, unknown, refused.", "result")
	c.syncDropped = d("sync_dropped_messages_total", "Sync messages dropped or not sent: malformed, from_stranger, overflow, no_route.", "reason")
	c.syncRequests = d("sync_requests_total", "Peers' requests for this node's flows.")

	hl := []string{"check", "group", "server"}
	c.hcState = d("healthcheck_state", "1 for the server's state as its check sees it (up, down, unknown), 0 for the others.", append(hl, "state")...)
	c.hcLastOK = d("healthcheck_last_success", "1 when the last check of the server succeeded, 0 when it failed (absent before the first).", hl...)
	c.hcRTT = d("healthcheck_rtt_seconds", "Round-trip time of the last successful check (a gauge of the last value, not a histogram).", hl...)
	c.hcFails = d("healthcheck_consecutive_failures", "Consecutive failed checks of the server.", hl...)
	c.hcSuccesses = d("healthcheck_consecutive_successes", "Consecutive successful checks of the server.", hl...)
	c.hcLast = d("healthcheck_last_check_timestamp_seconds", "When the last check of the server ended, Unix time.", hl...)
	c.hcLoad = d("healthcheck_agent_load", "The agent's last load figure (0-100).", hl...)
	return c
}

// Describe sends every metric family's description.
func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the node's sources and sends their values.
func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	enum := func(d *prometheus.Desc, states []string, state string, labels ...string) {
		for _, s := range states {
			gauge(d, b2f(s == state), append(labels, s)...)
		}
	}
	s := c.s
	if s.Status != nil {
		si := s.Status.Stats()
		gauge(c.uptime, time.Duration(si.Uptime).Seconds())
		for _, p := range si.Ports {
			counter(c.portRxPackets, p.RxPackets, p.Name)
			counter(c.portRxBytes, p.RxBytes, p.Name)
			counter(c.portTxPackets, p.TxPackets, p.Name)
			counter(c.portTxBytes, p.TxBytes, p.Name)
			counter(c.portRxDrops, p.RxDrops, p.Name)
			counter(c.portTxErrors, p.TxErrors, p.Name)
			if p.NewFlowRing {
				counter(c.portNewFlow, p.RxNewFlow, p.Name)
				counter(c.portNewFlowShed, p.RxShedNewFlow, p.Name)
			}
		}
		for reason, n := range si.Drops {
			counter(c.drops, n, reason)
		}
		counter(c.forwarded, si.Forwarded)
		counter(c.local, si.Local)
		counter(c.icmpSent, si.ICMPSent)
		if n := si.NAT; n != nil {
			counter(c.natFlows, n.AutoNAT, "autonat")
			counter(c.natFlows, n.SNAT, "snat")
			counter(c.natFlows, n.DNAT, "dnat")
		}
		if sp := si.SYNProxy; sp != nil {
			gauge(c.synActive, b2f(sp.Active))
			counter(c.synActivations, sp.Activations)
			counter(c.synCookies, sp.CookiesSent, "sent")
			counter(c.synCookies, sp.CookiesValid, "valid")
			counter(c.synCookies, sp.CookiesInvalid, "invalid")
			counter(c.synEstablished, sp.Established)
			counter(c.synRefused, sp.ServerRefused)
		}
		if sy := si.Sync; sy != nil {
			gauge(c.syncSending, b2f(sy.Sending))
			counter(c.syncMessages, sy.SentMessages, "sent")
			counter(c.syncMessages, sy.ReceivedMessages, "received")
			counter(c.syncRecords, sy.SentRecords, "sent")
			counter(c.syncRecords, sy.ReceivedRecords, "received")
			counter(c.syncRecordResults, sy.Adopted, "adopted")
			counter(c.syncRecordResults, sy.Refreshed, "refreshed")
			counter(c.syncRecordResults, sy.Unknown, "unknown")
			counter(c.syncRecordResults, sy.Refused, "refused")
			counter(c.syncDropped, sy.Malformed, "malformed")
			counter(c.syncDropped, sy.FromStranger, "from_stranger")
			counter(c.syncDropped, sy.Overflow, "overflow")
			counter(c.syncDropped, sy.NoRoute, "no_route")
			counter(c.syncRequests, sy.Requests)
		}
	}
	if s.Conntrack != nil {
		ci := conntrackInfo(s.Conntrack.Stats())
		gauge(c.ctFlows, float64(ci.Flows))
		gauge(c.ctCapacity, float64(ci.Capacity))
		counter(c.ctInserted, ci.Inserted)
		counter(c.ctExpired, ci.Expired)
		counter(c.ctRefused, ci.Refused)
		for _, class := range conntrack.EvictClassNames {
			counter(c.ctEvicted, ci.Evicted[class], class)
		}
	}
	if b := s.Balancer; b != nil {
		st := b.Stats()
		for _, rs := range st.Rules {
			lc := lbCounters(rs.Counters)
			gauge(c.ruleConnsActive, float64(lc.ConnsActive), rs.Name)
			counter(c.ruleConnsTotal, lc.ConnsTotal, rs.Name)
			counter(c.rulePackets, lc.PacketsIn, rs.Name, "in")
			counter(c.rulePackets, lc.PacketsOut, rs.Name, "out")
			counter(c.ruleBytes, lc.BytesIn, rs.Name, "in")
			counter(c.ruleBytes, lc.BytesOut, rs.Name, "out")
			counter(c.ruleDrops, lc.Drops, rs.Name)
		}
		for _, ss := range st.Servers {
			lc := lbCounters(ss.Counters)
			l := []string{ss.Rule, ss.Group, endpoint(ss.Addr, ss.Port)}
			gauge(c.srvConnsActive, float64(lc.ConnsActive), l...)
			counter(c.srvConnsTotal, lc.ConnsTotal, l...)
			counter(c.srvPackets, lc.PacketsIn, append(l, "in")...)
			counter(c.srvPackets, lc.PacketsOut, append(l, "out")...)
			counter(c.srvBytes, lc.BytesIn, append(l, "in")...)
			counter(c.srvBytes, lc.BytesOut, append(l, "out")...)
			counter(c.srvDrops, lc.Drops, l...)
		}
		gauge(c.persistEntries, float64(st.PersistEntries))
		counter(c.persistRefused, st.PersistRefused)
		for _, ri := range b.Rules() {
			gauge(c.ruleEnabled, b2f(ri.Enabled), ri.Config.Name)
		}
		for _, si := range b.Servers() {
			l := []string{si.Rule, si.Group, endpoint(si.Addr, si.Port)}
			gauge(c.srvWeight, float64(si.Weight), l...)
			gauge(c.srvEffWeight, float64(si.EffectiveWeight), l...)
			enum(c.srvHealth, healthStates, si.Health, l...)
			enum(c.srvAdmin, adminStates, serverStateName(si.State), l...)
			gauge(c.srvOverloaded, b2f(si.Overloaded), l...)
			gauge(c.srvMaxConns, float64(si.MaxConns), l...)
			gauge(c.srvMinConns, float64(si.MinConns), l...)
		}
	}
	if s.VRRP != nil {
		for _, in := range s.VRRP.VRRPInfo() {
			enum(c.vrrpState, vrrpStates, stateName(in.State), in.Name)
			gauge(c.vrrpPriority, float64(in.Priority), in.Name)
			gauge(c.vrrpBasePriority, float64(in.BasePriority), in.Name)
			counter(c.vrrpTransitions, in.Counters.Transitions, in.Name)
			counter(c.vrrpBecameMaster, in.Counters.BecameMaster, in.Name)
			counter(c.vrrpAdvertsSent, in.Counters.AdvertsSent, in.Name)
			counter(c.vrrpAdvertsRecv, in.Counters.AdvertsReceived, in.Name)
			for reason, n := range in.Counters.Drops {
				counter(c.vrrpDrops, n, in.Name, vrrp.DropReason(reason).String())
			}
		}
	}
	if s.Health != nil {
		for _, r := range s.Health.Results() {
			l := []string{r.Check, r.Target.Group, endpoint(r.Target.Addr, r.Target.Port)}
			enum(c.hcState, healthStates, r.State.String(), l...)
			gauge(c.hcFails, float64(r.Fails), l...)
			gauge(c.hcSuccesses, float64(r.Successes), l...)
			if r.LastResult != "" {
				gauge(c.hcLastOK, b2f(r.LastResult == "ok"), l...)
			}
			if r.RTT > 0 {
				gauge(c.hcRTT, r.RTT.Seconds(), l...)
			}
			if !r.Last.IsZero() {
				gauge(c.hcLast, float64(r.Last.UnixNano())/1e9, l...)
			}
			if r.Load >= 0 {
				gauge(c.hcLoad, float64(r.Load), l...)
			}
		}
	}
}

// The values of the enum-style metrics' state label.
var (
	healthStates = []string{control.HealthUp, control.HealthDown, control.HealthUnknown}
	adminStates  = []string{control.ServerEnabled, control.ServerDisabled, control.ServerDraining}
	vrrpStates   = []string{stateName(vrrp.Initialize), stateName(vrrp.Backup), stateName(vrrp.Master), stateName(vrrp.Fault)}
)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MetricsHandler is the handler of MetricsPath: the Prometheus text (or protobuf, as
// the scraper asks) exposition of the node's metrics, gathered from s at every scrape
// through a registry of its own (no global state).
func MetricsHandler(s Sources, logger *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(s))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{logger},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// slogPrinter logs promhttp's errors through slog.
type slogPrinter struct{ logger *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.logger.Warn("metrics", "err", v) }

// metricsServer is the [metrics] listener: a plain TCP socket of the kernel of ulbd's
// network namespace (see config.Metrics for which addresses that is).
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
}

// listenMetrics opens the metrics listener on addr: h serves MetricsPath, web (when
// not nil) every other path (the web status page).
func listenMetrics(addr netip.AddrPort, h, web http.Handler, logger *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, h)
	if web != nil {
		mux.Handle("/", web)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	return &metricsServer{ln: ln, srv: srv}, nil
}

// serve serves scrapes until ctx ends.
func (m *metricsServer) serve(ctx context.Context) error {
	done := make(chan error, 1)
	// Requests end with ctx: the web page's event streams do not outlast ulbd.
	m.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	go func() { done <- m.srv.Serve(m.ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), metricsShutdown)
	defer cancel()
	m.srv.Shutdown(sctx)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
