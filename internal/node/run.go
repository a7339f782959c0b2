// Package node assembles a running ulbd node from a configuration: it opens the ports
// and the host port, translates the configuration into the router's, the balancer's,
// VRRP's, connection sync's and the health checks' terms, serves the control socket's
// verbs and the Prometheus metrics ([metrics]), applies reloads, and runs it all until its context ends.
package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"ulb/balancer"
	"ulb/balancer/srclimit"
	"ulb/config"
	"ulb/conntrack"
	"ulb/router"
	"ulb/router/control"
	"ulb/router/port"
	"ulb/vrrp"
)

// Run opens the configured ports, starts the router and the control socket, and returns
// when ctx is cancelled (SIGTERM/SIGINT) after releasing the ports. On SIGHUP and on the
// reload verb it reads cfg.File again: a valid file is applied by the reloader (reload.go:
// ports, VRRP, routes, rules, health checks and the rest, without touching the flows of
// what did not change), and is then handed to onReload (may be nil) for what the caller
// owns.
func Run(ctx context.Context, cfg *config.Config, logger *slog.Logger, onReload func(*config.Config)) error {
	ports, err := openPorts(cfg, logger)
	if err != nil {
		return err
	}
	if needsHostPort(cfg) {
		hp, err := openHostPort(logger)
		if err != nil {
			for _, p := range ports {
				p.Port.Close()
			}
			return err
		}
		ports = append(ports, hp)
	}
	r, err := router.New(router.Config{
		Ports:     ports,
		Routes:    routes(cfg),
		Logger:    logger,
		Rules:     rules(cfg),
		Conntrack: conntrackConfig(cfg.Conntrack),
		VRRP:      vrrpConfigs(cfg),

		ThreadNice: cfg.Dataplane.Nice,
		ThreadCPUs: cfg.Dataplane.CPUs,

		SourceLimit:   sourceLimit(cfg.Defence),
		SYNProxy:      synProxy(cfg.Defence),
		NewFlowBudget: cfg.Defence.NewFlowBudget,
		NAT:           natConfig(cfg),
	})
	if err != nil {
		for _, p := range ports {
			p.Port.Close()
		}
		return err
	}
	r.SetRuleOptions(ruleOptions(cfg))
	if cfg.Sync.Enabled {
		if err := r.SetSync(syncConfig(cfg.Sync)); err != nil {
			for _, p := range ports {
				p.Port.Close()
			}
			return err
		}
		logger.Info("connection sync", "peers", cfg.Sync.Peers, "port", cfg.Sync.Port, "vrrp", cfg.Sync.VRRP, "refresh", cfg.Sync.Refresh)
	}
	start := time.Now()
	events := control.NewEvents(time.Now)
	checks, err := newHealthChecks(cfg, r, events, logger)
	if err != nil {
		for _, p := range ports {
			p.Port.Close()
		}
		return err
	}
	srv := control.NewServer(cfg.ControlSocket, logger)
	publishVRRP(r, events)
	rl := &reloader{log: logger, r: r, checks: checks, started: cfg, sync: cfg.Sync, current: cfg, ports: cfg.Ports, onReload: onReload}
	sources := Sources{
		Reload: rl.reloadFile,
		Export: rl.export,
		Import: rl.importConfig,
		Current: func() *config.Config {
			rl.mu.Lock()
			defer rl.mu.Unlock()
			return rl.current
		},
		Change: map[string]func(control.ServerGroupChange) (control.ReloadInfo, error){
			control.VerbCreateServerGroup: rl.createServerGroup,
			control.VerbDeleteServerGroup: rl.deleteServerGroup,
			control.VerbAddServer:         rl.addServer,
			control.VerbRemoveServer:      rl.removeServer,
		},
		RuleChange: map[string]func(control.RuleChange) (control.ReloadInfo, error){
			control.VerbCreateRule:        rl.createRule,
			control.VerbDeleteRule:        rl.deleteRule,
			control.VerbCreateHealthCheck: rl.createHealthCheck,
			control.VerbDeleteHealthCheck: rl.deleteHealthCheck,
			control.VerbCreateRouter:      rl.createRouter,
			control.VerbDeleteRouter:      rl.deleteRouter,
			control.VerbEnableRouter:      rl.enableRouter,
			control.VerbDisableRouter:     rl.disableRouter,
		},
		ModifyRouter: rl.modifyRouter,
		Status:       routerStatus{r: r, start: start},
		Balancer:     r.Balancer(),
		Conntrack:    r.Conntrack(),
		VRRP:         r,
		Health:       checks.engine,
		Events:       events,
	}
	Register(srv, sources)
	var metrics *metricsServer
	if cfg.Metrics.Listen.IsValid() {
		web, werr := webHandler(cfg, sources, logger)
		if werr == nil {
			metrics, werr = listenMetrics(cfg.Metrics.Listen, MetricsHandler(sources, logger), web, logger)
		}
		if err = werr; err != nil {
			for _, p := range ports {
				p.Port.Close()
			}
			return fmt.Errorf("metrics: %w", err)
		}
	}
	if err := srv.Listen(); err != nil {
		for _, p := range ports {
			p.Port.Close()
		}
		if metrics != nil {
			metrics.ln.Close()
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ctx) }()
	if metrics != nil {
		logger.Info("metrics", "listen", cfg.Metrics.Listen.String(), "path", MetricsPath,
			"web", "/", "web_read_only", cfg.Metrics.WebUser == "")
		go func() {
			if err := metrics.serve(ctx); err != nil {
				logger.Error("metrics listener stopped", "err", err)
			}
		}()
	}
	go watchHUP(ctx, rl)
	go checks.engine.Run(ctx)

	logger.Info("running", "ports", len(ports), "routes", len(cfg.Routes), "control_socket", cfg.ControlSocket)
	err = r.Run(ctx) // closes the ports when it returns
	cancel()
	if serr := <-srvDone; serr != nil && err == nil {
		err = serr
	}
	logger.Info("ports released")
	return err
}

// openPorts opens every configured port; on an error it closes those already open.
func openPorts(cfg *config.Config, logger *slog.Logger) ([]router.PortConfig, error) {
	var out []router.PortConfig
	for _, pc := range cfg.Ports {
		rpc, err := openPort(pc, cfg.Defence.NewFlowRing, logger)
		if err != nil {
			for _, o := range out {
				o.Port.Close()
			}
			return nil, err
		}
		out = append(out, rpc)
	}
	return out, nil
}

// openPort opens one configured port's device (at start, and for a port a reload adds),
// with the [dataplane] and tcx options of pc and newFlowRing ([defence] new_flow_ring).
func openPort(pc config.Port, newFlowRing bool, logger *slog.Logger) (router.PortConfig, error) {
	var p port.Port
	var err error
	switch pc.Kind {
	case config.KindTUN:
		mtu := pc.MTU
		if mtu == 0 {
			mtu = config.DefaultTUNMTU
		}
		p, err = port.OpenTUN(pc.Device, mtu)
	default:
		var ap *port.AFPacket
		ap, err = port.OpenAFPacket(pc.Device, port.AFPacketOptions{
			BatchSize:     pc.Batch,
			SocketBuffer:  max(pc.RcvBuf, pc.SndBuf),
			DropKernelRX:  !pc.KernelRX,
			SplitNewFlows: newFlowRing,
		})
		if err == nil {
			p = ap
			if pc.MTU > ap.MTU() {
				ap.Close()
				err = fmt.Errorf("mtu %d is larger than device %s's %d", pc.MTU, pc.Device, ap.MTU())
			}
		}
		if err == nil && !pc.KernelRX {
			if _, derr := ap.KernelRXDropped(); derr != nil {
				logger.Warn("the kernel's stack still receives the port's frames (it drops them itself, at a cost in CPU)",
					"port", pc.Name, "err", derr)
			}
		}
	}
	if err != nil {
		return router.PortConfig{}, fmt.Errorf("port %s: %w", pc.Name, err)
	}
	mtu := p.MTU()
	if pc.MTU != 0 {
		mtu = pc.MTU
	}
	attrs := []any{"port", pc.Name, "device", pc.Device, "kind", string(pc.Kind),
		"mac", p.HardwareAddr().String(), "mtu", mtu, "batch", p.BatchSize()}
	if ap, ok := p.(*port.AFPacket); ok {
		dropped, _ := ap.KernelRXDropped()
		attrs = append(attrs, "kernel_rx_dropped", dropped)
	}
	logger.Info("port open", attrs...)
	return router.PortConfig{
		Name:      pc.Name,
		Device:    pc.Device,
		Kind:      string(pc.Kind),
		Port:      p,
		Addresses: pc.Addresses,
		MTU:       pc.MTU,

		DirectedBroadcast: pc.DirectedBroadcast,
		Redirects:         pc.Redirects,
	}, nil
}

func routes(cfg *config.Config) []router.Route {
	var out []router.Route
	for _, rt := range cfg.Routes {
		out = append(out, router.Route{To: rt.To, Via: rt.Via, Port: rt.Port})
	}
	return out
}

// watchHUP reloads the configuration file on every SIGHUP until ctx ends.
func watchHUP(ctx context.Context, rl *reloader) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			rl.reloadFile()
		}
	}
}

// rules turns the configuration's rules and server groups into the balancer's.
func rules(cfg *config.Config) []balancer.RuleConfig {
	var out []balancer.RuleConfig
	for _, r := range cfg.Rules {
		rc := balancer.RuleConfig{
			Name:           r.Name,
			VIP:            r.VIP,
			PortLo:         r.PortLo,
			PortHi:         r.PortHi,
			Proto:          r.Protocol.Number(),
			Algorithm:      string(r.Algorithm),
			ProxySource:    r.ProxySource,
			PMask:          r.PMask,
			PersistKey:     persistKey(r.PersistKey),
			PersistTimeout: r.PersistTimeout,
			ConnDrain:      r.ConnDrain,
			Group:          r.ServerGroup,
			Enabled:        r.Enabled,
		}
		switch r.Topology {
		case config.FullNAT:
			rc.Topology = balancer.FullNAT
		case config.DSR:
			rc.Topology = balancer.DSR
		case config.Tunnel:
			rc.Topology, rc.TunnelSource = balancer.Tunnel, r.TunnelSource
		default:
			rc.Topology = balancer.HalfNAT
		}
		if g := cfg.ServerGroup(r.ServerGroup); g != nil {
			for _, s := range g.Servers {
				rc.Servers = append(rc.Servers, balancer.ServerConfig{
					Addr: s.Addr, Port: s.Port, Weight: s.Weight, MaxConns: s.MaxConns, MinConns: s.MinConns, Disabled: !s.Enabled,
				})
			}
		}
		out = append(out, rc)
	}
	return out
}

// persistKey is the balancer's name for a rule's persist_key (config has checked it).
func persistKey(k config.PersistKey) balancer.PersistKey {
	switch k {
	case config.PersistSrcPort:
		return balancer.PersistSrcPort
	case config.PersistDstPort:
		return balancer.PersistDstPort
	}
	return balancer.PersistSrc
}

// vrrpConfigs turns the configuration's [[vrrp]] sections into the router's instances.
func vrrpConfigs(cfg *config.Config) []router.VRRPConfig {
	var out []router.VRRPConfig
	for _, v := range cfg.VRRP {
		if !v.Enabled {
			continue // disable-router: configured, not running
		}
		ic := vrrp.Config{
			Name:         v.Name,
			VRID:         v.VRID,
			Version:      uint8(v.Version),
			Priority:     uint8(v.Priority),
			Interval:     v.Interval,
			Preempt:      v.Preempt,
			PreemptDelay: v.PreemptDelay,
			Accept:       v.Accept,
		}
		if v.Checksum == config.ChecksumNoPseudoHeader {
			ic.Checksum = vrrp.NoPseudoHeader
		}
		for _, a := range v.Addresses {
			ic.Addresses = append(ic.Addresses, a.Addr())
		}
		rc := router.VRRPConfig{Port: v.Port, AdvertPorts: v.AdvertPorts, Instance: ic, SyncGroup: v.SyncGroup,
			GARPCount: v.GARPCount, GARPRefresh: v.GARPRefresh}
		for _, tp := range v.TrackPorts {
			rc.Track.Ports = append(rc.Track.Ports, vrrp.TrackPort{Name: tp.Port, Weight: tp.Weight})
		}
		for _, tp := range v.TrackPings {
			rc.Track.Pings = append(rc.Track.Pings, vrrp.TrackPing{Address: tp.Address, Count: tp.Count, Weight: tp.Weight})
			if rc.PingInterval == 0 || tp.Interval < rc.PingInterval {
				rc.PingInterval = tp.Interval
			}
		}
		for _, tg := range v.TrackGroups {
			rc.Track.Groups = append(rc.Track.Groups, vrrp.TrackGroup{Name: tg.ServerGroup, Weight: tg.Weight})
		}
		out = append(out, rc)
	}
	return out
}

// syncConfig is the router's connection sync of [sync].
func syncConfig(s config.Sync) router.SyncConfig {
	return router.SyncConfig{Peers: s.Peers, Port: s.Port, VRRP: s.VRRP, Refresh: s.Refresh}
}

// synProxy is the router's SYN proxy of [defence].
func synProxy(d config.Defence) router.SYNProxyConfig {
	return router.SYNProxyConfig{Enabled: d.SYNCookies != config.SYNCookiesOff, Auto: d.SYNCookies == config.SYNCookiesAuto,
		Threshold: d.SYNCookieThreshold, WScale: d.SYNCookieWScale}
}

// sourceLimit is the router's per-source new-flow limit of [defence] (Rate 0: none).
func sourceLimit(d config.Defence) srclimit.Config {
	return srclimit.Config{Rate: float64(d.SourceRate), Burst: d.SourceBurst, Bits4: d.SourcePrefix4, Bits6: d.SourcePrefix6}
}

func conntrackConfig(c config.Conntrack) conntrack.Config {
	t := c.Timeouts
	return conntrack.Config{
		Capacity: c.Capacity,
		Timeouts: conntrack.Timeouts{
			Established: t.Established, SynSent: t.SynSent, SynRecv: t.SynRecv, FinWait: t.FinWait,
			TimeWait: t.TimeWait, Close: t.Close, CloseWait: t.CloseWait, LastAck: t.LastAck,
			UDP: t.UDP, ICMP: t.ICMP,
		},
	}
}
