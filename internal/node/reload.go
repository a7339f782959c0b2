package node

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"ulb/config"
	"ulb/router"
	"ulb/router/control"
)

// reloader applies reloaded configurations, from SIGHUP, the reload verb and
// import-config, one at a time: the ports (added ones opened and started, removed ones
// stopped and closed, changed addresses, MTU, redirects and directed_broadcast applied
// in place; a port whose device or open options changed is closed and opened again;
// the unchanged ones keep their loops and flows), VRRP instances (unchanged ones keep
// their state), [defence] (but its new_flow_ring), connection sync, routes, rules and
// health checks. What the router cannot change while it runs (the host port,
// new_flow_ring, [dataplane], [conntrack], [metrics], control_socket) is left as it
// started and reported.
type reloader struct {
	mu       sync.Mutex
	changeMu sync.Mutex // serializes run-time changes (change), which read current first
	log      *slog.Logger
	r        *router.Router
	checks   *healthChecks
	started  *config.Config       // the configuration ulbd started with
	sync     config.Sync          // the [sync] in effect
	current  *config.Config       // the configuration last applied
	ports    []config.Port        // the [[port]]s in effect
	onReload func(*config.Config) // what the caller owns (the log level); may be nil
}

// reloadFile reads the configuration file again and applies it. A file that fails
// validation changes nothing and returns the config.Error listing its issues.
//
// The file wins over the run-time state: once it is applied, the state file beside it
// (changes made with ulbadm) is removed.
func (rl *reloader) reloadFile() (control.ReloadInfo, error) {
	rl.changeMu.Lock()
	defer rl.changeMu.Unlock()
	file := config.FilePath(rl.started.File)
	rl.log.Info("reloading", "config", file)
	cfg, err := config.Load(file)
	if err != nil {
		LogIssues(rl.log, err)
		rl.log.Warn("reload refused: keeping the running configuration")
		return control.ReloadInfo{}, err
	}
	info, err := rl.apply(cfg)
	if err == nil {
		if rerr := config.RemoveState(file); rerr != nil {
			rl.log.Warn("reload: the run-time state stays", "err", rerr)
		}
	}
	return info, err
}

// importConfig applies a configuration sent by ulbadm import-config (name names it in
// messages) like a reload, and saves it as the run-time state, so that it survives a
// restart; the configuration file is left as it is.
func (rl *reloader) importConfig(a control.ImportArgs) (control.ReloadInfo, error) {
	cfg, err := config.Parse(a.Name, []byte(a.TOML))
	if err != nil {
		return control.ReloadInfo{}, err
	}
	rl.changeMu.Lock()
	defer rl.changeMu.Unlock()
	return rl.commit("import-config from "+a.Name, cfg)
}

// apply installs a validated configuration: ports, VRRP, [defence], [sync], routes,
// rules, their options and the health checks, each refused as a whole when the router
// rejects it (a refusal of the ports changes nothing at all).
func (rl *reloader) apply(c *config.Config) (control.ReloadInfo, error) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	info := control.ReloadInfo{File: c.File, Routes: len(c.Routes), Rules: len(c.Rules), HealthChecks: len(c.HealthChecks)}
	for _, w := range c.Warnings {
		info.Warnings = append(info.Warnings, w.String())
		rl.log.Warn("configuration", "warning", w.String())
	}
	running := rl.started
	// The ports first: the VRRP instances, routes and rules below may name new ones.
	// Opening a new device, or a port set the router refuses, refuses the whole reload
	// before anything changed.
	pp, err := rl.planPorts(c)
	if err != nil {
		rl.log.Error("reload refused: ports; nothing was changed", "err", err)
		return info, fmt.Errorf("reload refused: %w; nothing was changed", err)
	}
	if pp.any() {
		if err := rl.applyPorts(pp, c); err != nil {
			rl.log.Error("reload refused: ports; nothing was changed", "err", err)
			return info, fmt.Errorf("reload refused: ports: %w; nothing was changed", err)
		}
		info.PortsAdded, info.PortsRemoved, info.PortsChanged = pp.added, pp.removed, pp.changed
		rl.log.Info("reload: ports", "added", pp.added, "removed", pp.removed, "changed", pp.changed)
	}
	info.Ports = len(c.Ports)
	for _, d := range []struct {
		name    string
		was, is any
	}{
		{"[defence] new_flow_ring", running.Defence.NewFlowRing, c.Defence.NewFlowRing},
		{"[dataplane]", running.Dataplane, c.Dataplane},
		{"[metrics]", running.Metrics, c.Metrics},
		{"[conntrack]", running.Conntrack, c.Conntrack},
		{"control_socket", running.ControlSocket, c.ControlSocket},
		{"host_port", running.HostPort, c.HostPort},
	} {
		if !reflect.DeepEqual(d.was, d.is) {
			info.Restart = append(info.Restart, d.name)
			rl.log.Warn("reload: " + d.name + " changed; it takes effect only after a restart")
		}
	}
	if err := rl.r.SetVRRP(vrrpConfigs(c)); err != nil {
		rl.log.Error("reload: VRRP instances refused; the running ones stay", "err", err)
		return info, fmt.Errorf("reload refused: VRRP: %w", err)
	}
	rl.checks.retellGroups()
	if err := rl.r.SetDefence(synProxy(c.Defence), sourceLimit(c.Defence), c.Defence.NewFlowBudget); err != nil {
		rl.log.Error("reload: [defence] refused; the running one stays", "err", err)
		return info, fmt.Errorf("reload refused: [defence]: %w", err)
	}
	if !reflect.DeepEqual(rl.sync, c.Sync) {
		if c.Sync.Enabled {
			if err := rl.r.SetSync(syncConfig(c.Sync)); err != nil {
				rl.log.Error("reload: [sync] refused; the running one stays", "err", err)
				return info, fmt.Errorf("reload refused: [sync]: %w", err)
			}
			rl.log.Info("connection sync", "peers", c.Sync.Peers, "port", c.Sync.Port, "vrrp", c.Sync.VRRP, "refresh", c.Sync.Refresh)
		} else {
			rl.r.StopSync()
			rl.log.Info("connection sync off")
		}
		rl.sync = c.Sync
	}
	if err := rl.r.SetRoutes(routes(c)); err != nil {
		rl.log.Error("reload refused", "err", err)
		return info, fmt.Errorf("reload refused: routes: %w", err)
	}
	if err := rl.r.SetRules(rules(c)); err != nil {
		rl.log.Error("reload: rules refused; the running rules stay", "err", err)
		return info, fmt.Errorf("reload: routes installed, rules refused (the running rules stay): %w", err)
	}
	rl.r.SetRuleOptions(ruleOptions(c))
	if err := rl.r.SetNAT(natConfig(c)); err != nil {
		rl.log.Error("reload: autonat and static NAT refused; the running ones stay", "err", err)
		return info, fmt.Errorf("reload: routes and rules installed, NAT refused (the running NAT stays): %w", err)
	}
	hc, targets, err := healthSets(c)
	if err == nil {
		err = rl.checks.set(hc, targets)
	}
	if err != nil {
		rl.log.Error("reload: health checks refused; the running ones stay", "err", err)
		return info, fmt.Errorf("reload: routes and rules installed, health checks refused (the running ones stay): %w", err)
	}
	rl.current = c
	if rl.onReload != nil {
		rl.onReload(c)
	}
	rl.log.Info("reload: routes and rules installed", "routes", len(c.Routes), "rules", len(c.Rules))
	return info, nil
}

// LogIssues logs every issue of a refused configuration (at start and on reloads).
func LogIssues(logger *slog.Logger, err error) {
	var ce *config.Error
	if !errors.As(err, &ce) {
		logger.Error("configuration refused", "err", err)
		return
	}
	for _, is := range ce.Issues {
		logger.Error("configuration refused", "issue", is.String())
	}
}

// export renders the configuration in effect as TOML (config.Marshal).
func (rl *reloader) export() (control.ExportInfo, error) {
	rl.mu.Lock()
	c := rl.current
	rl.mu.Unlock()
	data, err := config.Marshal(c)
	if err != nil {
		return control.ExportInfo{}, err
	}
	return control.ExportInfo{File: c.File, TOML: string(data)}, nil
}
