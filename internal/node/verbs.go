package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"ulb/balancer"
	"ulb/balancer/health"
	"ulb/config"
	"ulb/conntrack"
	"ulb/router/control"
	"ulb/vrrp"
)

// Sources are what the control verbs read and change. A running node's come from its
// router, balancer, connection table, VRRP instances and health checks; ulbadm's tests
// register the same verbs over canned sources, so that the CLI is tested against the
// daemon's own replies.
type Sources struct {
	// Status describes the data plane: ports, routes, neighbours, counters.
	Status Status
	// Balancer and Conntrack are the balancer and the connection table the rule, server,
	// connection and persistence verbs read and change.
	Balancer  *balancer.Balancer
	Conntrack *conntrack.Table
	// VRRP lists the VRRP instances (nil: none).
	VRRP VRRPSource
	// Health lists the health checks and their results (nil: none).
	Health HealthSource
	// Events is the hub the watch verb streams from.
	Events *control.Events
	// Now is the clock of the replies' ages and times left (nil: time.Now); it should be
	// the balancer's and the connection table's.
	Now func() time.Time
	// Reload re-reads and applies the configuration file (nil: the reload verb is
	// refused).
	Reload func() (control.ReloadInfo, error)
	// Export renders the configuration in effect (nil: export-config is refused).
	Export func() (control.ExportInfo, error)
	// Import applies and saves a configuration (nil: import-config is refused).
	Import func(control.ImportArgs) (control.ReloadInfo, error)
	// Change makes the run-time changes of server groups (nil: refused), by verb.
	Change map[string]func(control.ServerGroupChange) (control.ReloadInfo, error)
	// RuleChange creates and deletes rules, health checks and VRRP instances (nil:
	// refused), by verb.
	RuleChange map[string]func(control.RuleChange) (control.ReloadInfo, error)
	// Current is the configuration in effect (nil: none), for what only it knows, such
	// as the VRRP instances that are configured but disabled.
	Current func() *config.Config
	// ModifyRouter changes a VRRP instance (nil: refused).
	ModifyRouter func(control.RouterChange) (control.ReloadInfo, error)
}

// Status is the data plane's state as the control socket shows it.
type Status interface {
	Ports() []control.PortInfo
	Routes() []control.RouteInfo
	// Neighbours lists the neighbour caches of every port, sorted by port and address.
	Neighbours() []control.NeighInfo
	// Stats is show-stats without the balancer's counters (which Register adds).
	Stats() control.StatsInfo
}

// VRRPSource lists the VRRP instances; *router.Router is one.
type VRRPSource interface {
	VRRPInfo() []vrrp.Info
	// VRRPPort is the name of the port an instance runs on.
	VRRPPort(instance string) string
}

// HealthSource lists the health checks and their latest results; *health.Engine is one.
type HealthSource interface {
	Results() []health.Result
	Checks() []health.Check
}

// Register installs every control verb on srv, answering from s.
func Register(srv *control.Server, s Sources) {
	if s.Now == nil {
		s.Now = time.Now
	}
	handle(srv, control.VerbShowPort, func(a control.ShowPortArgs) (any, error) {
		ports := s.Status.Ports()
		if a.Name == "" {
			return ports, nil
		}
		for _, p := range ports {
			if p.Name == a.Name {
				return []control.PortInfo{p}, nil
			}
		}
		return nil, fmt.Errorf("no port %q", a.Name)
	})
	handle(srv, control.VerbShowRoute, func(struct{}) (any, error) { return s.Status.Routes(), nil })
	handle(srv, control.VerbExportConfig, func(struct{}) (any, error) {
		if s.Export == nil {
			return nil, errors.New("this ulbd has no configuration to export")
		}
		return s.Export()
	})
	for _, verb := range []string{control.VerbCreateServerGroup, control.VerbDeleteServerGroup, control.VerbAddServer, control.VerbRemoveServer} {
		handle(srv, verb, func(a control.ServerGroupChange) (any, error) {
			fn := s.Change[verb]
			if fn == nil {
				return nil, errors.New("this ulbd cannot change its configuration")
			}
			return fn(a)
		})
	}
	handle(srv, control.VerbModifyRouter, func(a control.RouterChange) (any, error) {
		if s.ModifyRouter == nil {
			return nil, errors.New("this ulbd cannot change its configuration")
		}
		return s.ModifyRouter(a)
	})
	for _, verb := range []string{control.VerbCreateRule, control.VerbDeleteRule, control.VerbCreateHealthCheck,
		control.VerbDeleteHealthCheck, control.VerbCreateRouter, control.VerbDeleteRouter,
		control.VerbEnableRouter, control.VerbDisableRouter} {
		handle(srv, verb, func(a control.RuleChange) (any, error) {
			fn := s.RuleChange[verb]
			if fn == nil {
				return nil, errors.New("this ulbd cannot change its configuration")
			}
			return fn(a)
		})
	}
	handle(srv, control.VerbImportConfig, func(a control.ImportArgs) (any, error) {
		if s.Import == nil {
			return nil, errors.New("this ulbd cannot import a configuration")
		}
		return s.Import(a)
	})
	handle(srv, control.VerbReload, func(struct{}) (any, error) {
		if s.Reload == nil {
			return nil, errors.New("this ulbd cannot reload")
		}
		return s.Reload()
	})
	handle(srv, control.VerbShowNeigh, func(a control.ShowNeighArgs) (any, error) {
		if a.Port == "" {
			return s.Status.Neighbours(), nil
		}
		if !s.hasPort(a.Port) {
			return nil, fmt.Errorf("no port %q", a.Port)
		}
		var out []control.NeighInfo
		for _, n := range s.Status.Neighbours() {
			if n.Port == a.Port {
				out = append(out, n)
			}
		}
		return out, nil
	})
	handle(srv, control.VerbShowStats, func(a control.ShowStatsArgs) (any, error) {
		si := s.Status.Stats()
		if s.Conntrack != nil {
			si.Conntrack = conntrackInfo(s.Conntrack.Stats())
		}
		if err := lbStats(s.Balancer, &si, a); err != nil {
			return nil, err
		}
		return si, nil
	})
	registerLB(srv, s)
	registerVRRP(srv, s)
	registerHealth(srv, s)
}

// hasPort reports whether the data plane has a port of that name.
func (s Sources) hasPort(name string) bool {
	for _, p := range s.Status.Ports() {
		if p.Name == name {
			return true
		}
	}
	return false
}

// handle installs a verb whose arguments decode into a fresh A on every request.
func handle[A any](srv *control.Server, verb string, fn func(A) (any, error)) {
	srv.Handle(verb, func(_ context.Context, raw json.RawMessage) (any, error) {
		var a A
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return fn(a)
	})
}

var errBadArgs = errors.New("bad arguments")

func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", errBadArgs, err)
	}
	return nil
}

// conntrackInfo describes the connection table for show-stats.
func conntrackInfo(st conntrack.Stats) *control.ConntrackInfo {
	ci := &control.ConntrackInfo{Flows: st.Len, Capacity: st.Capacity, Inserted: st.Inserted, Expired: st.Expired,
		Refused: st.Refused, Evicted: map[string]uint64{}}
	for class, n := range st.EvictedBy {
		ci.Evicted[conntrack.EvictClassNames[class]] = n
	}
	return ci
}
