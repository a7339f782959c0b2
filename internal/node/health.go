package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"

	"ulb/balancer"
	"ulb/balancer/health"
	"ulb/config"
	"ulb/internal/hostcheck"
	"ulb/router"
	"ulb/router/control"
	"ulb/router/port"
)

// hostPortDevice is the TUN device ulbd creates for the host port.
const hostPortDevice = "ulbhost"

// needsHostPort reports whether the configuration asks for the host port or uses the
// kernel's TCP stack (HTTP checks).
func needsHostPort(cfg *config.Config) bool {
	if cfg.HostPort {
		return true
	}
	for _, hc := range cfg.HealthChecks {
		if hc.Test == "http" {
			return true
		}
	}
	return false
}

// openHostPort creates the host port: a TUN device whose kernel side has the address
// router.HostPortKernel and a default route through the router, so that the kernel of
// ulbd's namespace (and so HTTP checks) reaches every network the router does.
func openHostPort(logger *slog.Logger) (router.PortConfig, error) {
	tun, err := port.OpenTUN(hostPortDevice, 1500)
	if err != nil {
		return router.PortConfig{}, fmt.Errorf("host port: %w", err)
	}
	for _, args := range [][]string{
		{"addr", "replace", router.HostPortKernel.String(), "dev", hostPortDevice},
		{"route", "replace", "default", "via", router.HostPortRouter.Addr().String(), "dev", hostPortDevice},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			tun.Close()
			return router.PortConfig{}, fmt.Errorf("host port: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	kernel := []string{router.HostPortKernel.String()}
	// IPv6 too, where the namespace has it: its own unique local address and a default
	// route (nodad: the link has no one else).
	v6 := hostcheck.SetIPv6(hostPortDevice, true)
	for _, args := range [][]string{
		{"-6", "addr", "replace", router.HostPortKernel6.String(), "dev", hostPortDevice, "nodad"},
		{"-6", "route", "replace", "default", "via", router.HostPortRouter6.Addr().String(), "dev", hostPortDevice},
	} {
		if v6 != nil {
			break
		}
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			v6 = fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	if v6 != nil {
		logger.Warn("host port: IPv4 only", "err", v6)
	} else {
		kernel = append(kernel, router.HostPortKernel6.String())
	}
	logger.Info("host port open", "device", hostPortDevice, "kernel", kernel)
	return router.PortConfig{Name: "host", Device: hostPortDevice, Kind: "tun", Port: tun, Host: true}, nil
}

// healthChecks runs the configured checks and applies their verdicts: the balancer's
// server health and agent loads, VRRP's group tracking, and events.
type healthChecks struct {
	engine *health.Engine
	b      *balancer.Balancer
	r      *router.Router
	events *control.Events
	log    *slog.Logger

	mu    sync.Mutex
	down  map[string]map[health.Target]bool // group -> servers down
	total map[string]int                    // group -> servers checked
	known map[health.Target]bool            // servers a check has reported
}

// newHealthChecks builds the engine for the configuration (nil when no group has a check).
func newHealthChecks(cfg *config.Config, r *router.Router, events *control.Events, logger *slog.Logger) (*healthChecks, error) {
	checks, targets, err := healthSets(cfg)
	if err != nil {
		return nil, err
	}
	h := &healthChecks{b: r.Balancer(), r: r, events: events, log: logger,
		down: map[string]map[health.Target]bool{}, total: map[string]int{}, known: map[health.Target]bool{}}
	h.engine = health.New(health.Config{
		Prober: r.Prober(), // from the router's own addresses, no kernel socket
		// The kernel of ulbd's namespace reaches the servers through the host port.
		HTTPDialer: (&net.Dialer{}).DialContext,
		Logger:     logger,
		OnChange:   h.changed,
		OnLoad: func(t health.Target, load int) {
			if err := h.b.SetLoad(t.Group, t.Addr, t.Port, load); err != nil {
				logger.Warn("agent load", "server", t.String(), "err", err)
			}
		},
	})
	if err := h.set(checks, targets); err != nil {
		return nil, err
	}
	return h, nil
}

// healthSets turns the configuration into the engine's checks and targets.
func healthSets(cfg *config.Config) (map[string]health.Check, map[string][]health.Target, error) {
	checks := map[string]health.Check{}
	for i := range cfg.HealthChecks {
		hc := &cfg.HealthChecks[i]
		checks[hc.Name] = hc.Check()
	}
	targets := map[string][]health.Target{}
	for _, g := range cfg.ServerGroups {
		if g.HealthCheck == "" {
			continue
		}
		var vip netip.Addr
		var rulePort uint16
		proto := uint8(balancer.ProtoTCP)
		for _, rl := range cfg.Rules {
			if rl.ServerGroup == g.Name {
				vip, proto, rulePort = rl.VIP, rl.Protocol.Number(), rl.PortLo
				break
			}
		}
		for _, s := range g.Servers {
			// A server without a port takes the client's destination port: its check
			// tests the first port of the first rule that uses the group, as ILB's
			// hc-port=ANY tests any port of the rule (the check's own port wins).
			targets[g.HealthCheck] = append(targets[g.HealthCheck],
				health.Target{Group: g.Name, Addr: s.Addr, Port: s.Port, RulePort: rulePort, VIP: vip, Proto: proto})
		}
	}
	return checks, targets, nil
}

func (h *healthChecks) set(checks map[string]health.Check, targets map[string][]health.Target) error {
	h.mu.Lock()
	h.total = map[string]int{}
	for _, ts := range targets {
		for _, t := range ts {
			h.total[t.Group]++
		}
	}
	h.mu.Unlock()
	if err := h.engine.Set(checks, targets); err != nil {
		return err
	}
	checked := map[health.Target]bool{}
	for _, ts := range targets {
		for _, t := range ts {
			checked[t] = true
		}
	}
	h.mu.Lock()
	for t := range h.known {
		if !checked[t] {
			delete(h.known, t) // a server checked again later starts from unknown
		}
	}
	h.mu.Unlock()
	return nil
}

// retellGroups tells the VRRP instances again which server groups are healthy, for the
// instances a reload made, whose trackers have not heard it.
func (h *healthChecks) retellGroups() {
	h.mu.Lock()
	healthy := map[string]bool{}
	for g, down := range h.down {
		healthy[g] = len(down) < h.total[g]
	}
	h.mu.Unlock()
	for g, ok := range healthy {
		h.r.SetVRRPGroupHealth(g, ok)
	}
}

// changed applies a server's new health.
func (h *healthChecks) changed(t health.Target, up bool) {
	if err := h.b.SetHealth(t.Group, t.Addr, t.Port, up); err != nil {
		h.log.Warn("health", "server", t.String(), "err", err)
	}
	h.mu.Lock()
	if h.down[t.Group] == nil {
		h.down[t.Group] = map[health.Target]bool{}
	}
	from, to := balancer.HealthUnknown, balancer.HealthDown
	if h.known[t] {
		from = balancer.HealthUp
		if h.down[t.Group][t] {
			from = balancer.HealthDown
		}
	}
	if up {
		to = balancer.HealthUp
		delete(h.down[t.Group], t)
	} else {
		h.down[t.Group][t] = true
	}
	h.known[t] = true
	healthy := len(h.down[t.Group]) < h.total[t.Group]
	h.mu.Unlock()
	h.r.SetVRRPGroupHealth(t.Group, healthy)
	h.events.Publish(control.Event{Kind: control.EventHealth, Name: t.Group + "/" + endpoint(t.Addr, t.Port),
		From: from, To: to})
}

// ruleOptions are the router's per-rule settings from the configuration.
func ruleOptions(cfg *config.Config) map[string]router.RuleOptions {
	out := map[string]router.RuleOptions{}
	for _, rl := range cfg.Rules {
		out[rl.Name] = router.RuleOptions{SorryServer: rl.SorryServer, KeepFlowsOnDown: rl.KeepFlowsOnDown}
	}
	return out
}

// registerHealth installs show-hc-result and show-healthcheck.
func registerHealth(srv *control.Server, s Sources) {
	handle(srv, control.VerbShowHCResult, func(a control.ShowHCResultArgs) (any, error) {
		return hcResults(s.Health, s.Balancer, a)
	})
	handle(srv, control.VerbShowHealthCheck, func(a control.ShowHealthCheckArgs) (any, error) {
		return checkInfos(s.Health, a.Name)
	})
}

// groupRules maps each server group to the rules that use it.
func groupRules(b *balancer.Balancer) map[string][]string {
	out := map[string][]string{}
	for _, ri := range b.Rules() {
		if g := ri.Config.Group; g != "" {
			out[g] = append(out[g], ri.Config.Name)
		}
	}
	return out
}

func hcResults(h HealthSource, b *balancer.Balancer, a control.ShowHCResultArgs) ([]control.HCResult, error) {
	if a.Rule != "" && a.Group != "" {
		return nil, fmt.Errorf("%w: give a rule or a group, not both", errBadArgs)
	}
	rules := groupRules(b)
	group := a.Group
	if a.Rule != "" {
		for _, ri := range b.Rules() {
			if ri.Config.Name == a.Rule {
				group = ri.Config.Group
				if group == "" {
					group = ri.Config.Name
				}
			}
		}
		if group == "" {
			return nil, fmt.Errorf("no rule %q", a.Rule)
		}
	}
	var refAddr netip.Addr
	var refPort uint16
	if a.Server != "" {
		var err error
		if refAddr, refPort, err = control.ParseServerRef(a.Server); err != nil {
			return nil, fmt.Errorf("%w: %v", errBadArgs, err)
		}
	}
	var results []health.Result
	if h != nil {
		results = h.Results()
	}
	out := []control.HCResult{}
	for _, r := range results {
		if group != "" && r.Target.Group != group {
			continue
		}
		if a.Server != "" && !control.MatchServer(refAddr, refPort, r.Target.Addr, r.Target.Port) {
			continue
		}
		out = append(out, control.HCResult{
			Group: r.Target.Group, Rules: rules[r.Target.Group], Address: r.Target.Addr.String(), Port: r.Target.Port,
			Check: r.Check, Test: r.Test, State: r.State.String(), LastResult: r.LastResult,
			RTT: r.RTT.Microseconds(), Fails: r.Fails, Successes: r.Successes, Load: r.Load,
			Last: r.Last, Next: r.Next,
		})
	}
	if a.Group != "" && len(out) == 0 && len(rules[a.Group]) == 0 {
		return nil, fmt.Errorf("no server group %q with a health check", a.Group)
	}
	if a.Server != "" && len(out) == 0 {
		return nil, fmt.Errorf("no checked server %s", a.Server)
	}
	return out, nil
}

func checkInfos(h HealthSource, name string) ([]control.HealthCheckInfo, error) {
	out := []control.HealthCheckInfo{}
	if h == nil {
		if name != "" {
			return nil, fmt.Errorf("no health check %q", name)
		}
		return out, nil
	}
	groups := map[string][]string{}
	for _, r := range h.Results() {
		if gs := groups[r.Check]; len(gs) == 0 || gs[len(gs)-1] != r.Target.Group {
			groups[r.Check] = append(groups[r.Check], r.Target.Group)
		}
	}
	for _, c := range h.Checks() {
		if name != "" && c.Name != name {
			continue
		}
		info := control.HealthCheckInfo{
			Name: c.Name, Test: c.Test, Interval: c.Interval.Milliseconds(), Timeout: c.Timeout.Milliseconds(),
			Count: c.Count, Rise: c.Rise, Port: c.Port, Groups: groups[c.Name],
			Send: string(c.Send), Expect: string(c.Expect), Path: c.Path, Host: c.Host,
			ExpectStatus: c.ExpectStatus, AgentPort: c.AgentPort, Command: c.Command,
		}
		if c.ExpectBody != nil {
			info.ExpectBody = c.ExpectBody.String()
		}
		out = append(out, info)
	}
	if name != "" && len(out) == 0 {
		return nil, fmt.Errorf("no health check %q", name)
	}
	return out, nil
}
