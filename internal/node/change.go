package node

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"ulb/config"
	"ulb/router/control"
)

// change makes a run-time change to the configuration in effect, as ilbadm does: fn
// edits a copy, which is rendered and parsed again (so it is validated exactly as a file
// is, with the same messages), applied like a reload and saved as the run-time state.
// A change refused at any step changes nothing.
func (rl *reloader) change(what string, fn func(c *config.Config) error) (control.ReloadInfo, error) {
	rl.changeMu.Lock()
	defer rl.changeMu.Unlock()
	rl.mu.Lock()
	cur := rl.current
	rl.mu.Unlock()
	data, err := config.Marshal(cur)
	if err != nil {
		return control.ReloadInfo{}, err
	}
	c, err := config.Parse(cur.File, data)
	if err != nil {
		return control.ReloadInfo{}, fmt.Errorf("%s: the configuration in effect does not parse back: %w", what, err)
	}
	if err := fn(c); err != nil {
		return control.ReloadInfo{}, err
	}
	if data, err = config.Marshal(c); err != nil {
		return control.ReloadInfo{}, err
	}
	const name = "the changed configuration"
	next, err := config.Parse(name, data)
	if err != nil {
		return control.ReloadInfo{}, fmt.Errorf("refused: %w", err)
	}
	next.File = cur.File
	return rl.commit(what, next)
}

// commit applies a configuration that did not come from ulbd's file and saves it as the
// run-time state.
func (rl *reloader) commit(what string, c *config.Config) (control.ReloadInfo, error) {
	info, err := rl.apply(c)
	if err != nil {
		return info, err
	}
	file := config.FilePath(rl.started.File)
	if err := config.SaveState(file, c); err != nil {
		return info, fmt.Errorf("%s: applied, but not saved (a restart loses it): %w", what, err)
	}
	info.State = config.StatePath(file)
	if abs, err := filepath.Abs(info.State); err == nil {
		info.State = abs
	}
	rl.log.Info(what+": applied and saved", "state", info.State)
	return info, nil
}

// parseServers reads ilbadm-style server lists into config servers, with the
// change's connection thresholds (validated with the rest when the changed
// configuration is parsed again).
func parseServers(a control.ServerGroupChange) ([]config.Server, error) {
	var out []config.Server
	for _, r := range a.Servers {
		addr, p, err := control.ParseServerRef(r)
		if err != nil {
			return nil, err
		}
		out = append(out, config.Server{Addr: addr, Port: p, Weight: config.DefaultWeight, Enabled: true,
			MaxConns: a.MaxConns, MinConns: a.MinConns})
	}
	return out, nil
}

func findGroup(c *config.Config, name string) (int, error) {
	for i, g := range c.ServerGroups {
		if g.Name == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no server group %q", name)
}

// createServerGroup adds a group (ilbadm create-servergroup [-s server=...] NAME).
func (rl *reloader) createServerGroup(a control.ServerGroupChange) (control.ReloadInfo, error) {
	return rl.change("create-servergroup", func(c *config.Config) error {
		if _, err := findGroup(c, a.Name); err == nil {
			return fmt.Errorf("server group %q exists", a.Name)
		}
		servers, err := parseServers(a)
		if err != nil {
			return err
		}
		c.ServerGroups = append(c.ServerGroups, config.ServerGroup{Name: a.Name, Servers: servers})
		return nil
	})
}

// deleteServerGroup removes a group no rule uses (ilbadm delete-servergroup NAME).
func (rl *reloader) deleteServerGroup(a control.ServerGroupChange) (control.ReloadInfo, error) {
	return rl.change("delete-servergroup", func(c *config.Config) error {
		i, err := findGroup(c, a.Name)
		if err != nil {
			return err
		}
		for _, r := range c.Rules {
			if r.ServerGroup == a.Name {
				return fmt.Errorf("server group %q is used by rule %q: delete the rule first", a.Name, r.Name)
			}
		}
		c.ServerGroups = slices.Delete(c.ServerGroups, i, i+1)
		return nil
	})
}

// addServer adds servers to a group (ilbadm add-server -e server,... GROUP); a server
// the group has already is refused.
func (rl *reloader) addServer(a control.ServerGroupChange) (control.ReloadInfo, error) {
	return rl.change("add-server", func(c *config.Config) error {
		i, err := findGroup(c, a.Name)
		if err != nil {
			return err
		}
		servers, err := parseServers(a)
		if err != nil {
			return err
		}
		if len(servers) == 0 {
			return errors.New("add-server: no server given")
		}
		g := &c.ServerGroups[i]
		for _, s := range servers {
			if slices.ContainsFunc(g.Servers, func(o config.Server) bool { return o.Addr == s.Addr && o.Port == s.Port }) {
				return fmt.Errorf("server %s is in group %q already", endpoint(s.Addr, s.Port), a.Name)
			}
			g.Servers = append(g.Servers, s)
		}
		return nil
	})
}

// removeServer removes servers from a group (ilbadm remove-server -s server=... GROUP);
// a server that carries flows is removed only with Force (its flows then drain as the
// rule's conn_drain says, as a removed server's do).
func (rl *reloader) removeServer(a control.ServerGroupChange) (control.ReloadInfo, error) {
	return rl.change("remove-server", func(c *config.Config) error {
		i, err := findGroup(c, a.Name)
		if err != nil {
			return err
		}
		if len(a.Servers) == 0 {
			return errors.New("remove-server: no server given")
		}
		g := &c.ServerGroups[i]
		for _, ref := range a.Servers {
			addr, port, err := control.ParseServerRef(ref)
			if err != nil {
				return err
			}
			j := slices.IndexFunc(g.Servers, func(s config.Server) bool { return control.MatchServer(addr, port, s.Addr, s.Port) })
			if j < 0 {
				return fmt.Errorf("no server %s in group %q", ref, a.Name)
			}
			s := g.Servers[j]
			if n := rl.activeFlows(a.Name, s.Addr, s.Port); n > 0 && !a.Force {
				return fmt.Errorf("server %s of group %q carries %d flows: drain it first (drain-server) or give -f", endpoint(s.Addr, s.Port), a.Name, n)
			}
			g.Servers = slices.Delete(g.Servers, j, j+1)
		}
		return nil
	})
}

// activeFlows counts the flows a server of a group carries now, over every rule.
func (rl *reloader) activeFlows(group string, addr netip.Addr, port uint16) int64 {
	var n int64
	for _, s := range rl.r.Balancer().Stats().Servers {
		if s.Group == group && s.Addr == addr && s.Port == port {
			n += s.ConnsNow
		}
	}
	return n
}

// createRule adds the rule of one [[rule]] table (ilbadm create-rule).
func (rl *reloader) createRule(a control.RuleChange) (control.ReloadInfo, error) {
	return rl.appendTable("create-rule", "rule", a, func(c *config.Config) []string {
		var names []string
		for _, r := range c.Rules {
			names = append(names, r.Name)
		}
		return names
	})
}

// createHealthCheck adds the check of one [[healthcheck]] table (ilbadm
// create-healthcheck); a server group uses it once its healthcheck names it.
func (rl *reloader) createHealthCheck(a control.RuleChange) (control.ReloadInfo, error) {
	return rl.appendTable("create-healthcheck", "healthcheck", a, func(c *config.Config) []string {
		var names []string
		for _, h := range c.HealthChecks {
			names = append(names, h.Name)
		}
		return names
	})
}

// appendTable adds one table of a kind: appended to the configuration in effect and
// validated with it, so it is checked exactly as in a file; names lists the items of
// the kind, which must grow by exactly the one named.
func (rl *reloader) appendTable(verb, kind string, a control.RuleChange, names func(*config.Config) []string) (control.ReloadInfo, error) {
	rl.changeMu.Lock()
	defer rl.changeMu.Unlock()
	rl.mu.Lock()
	cur := rl.current
	rl.mu.Unlock()
	before := names(cur)
	if slices.Contains(before, a.Name) {
		return control.ReloadInfo{}, fmt.Errorf("%s %q exists", kind, a.Name)
	}
	data, err := config.Marshal(cur)
	if err != nil {
		return control.ReloadInfo{}, err
	}
	text := string(data) + "\n" + a.TOML + "\n"
	next, err := config.Parse(verb, []byte(text))
	if err != nil {
		return control.ReloadInfo{}, fmt.Errorf("refused: %w", err)
	}
	if after := names(next); len(after) != len(before)+1 || after[len(after)-1] != a.Name {
		return control.ReloadInfo{}, fmt.Errorf("the TOML must hold one [[%s]] table named %q", kind, a.Name)
	}
	counts := func(c *config.Config) map[string]int {
		return map[string]int{"rule": len(c.Rules), "healthcheck": len(c.HealthChecks), "vrrp": len(c.VRRP),
			"servergroup": len(c.ServerGroups), "route": len(c.Routes), "port": len(c.Ports)}
	}
	was, is := counts(cur), counts(next)
	was[kind]++
	if !maps.Equal(was, is) || !reflect.DeepEqual(cur.Sync, next.Sync) || cur.Defence != next.Defence {
		return control.ReloadInfo{}, fmt.Errorf("the TOML must hold one [[%s]] table and nothing else", kind)
	}
	next.File = cur.File
	return rl.commit(verb+" "+a.Name, next)
}

// deleteRule removes a rule (ilbadm delete-rule); its flows drain as its conn_drain
// says, as removed rules' do.
func (rl *reloader) deleteRule(a control.RuleChange) (control.ReloadInfo, error) {
	return rl.change("delete-rule", func(c *config.Config) error {
		i := slices.IndexFunc(c.Rules, func(r config.Rule) bool { return r.Name == a.Name })
		if i < 0 {
			return fmt.Errorf("no rule %q", a.Name)
		}
		c.Rules = slices.Delete(c.Rules, i, i+1)
		return nil
	})
}

// deleteHealthCheck removes a check no server group uses (ilbadm delete-healthcheck).
func (rl *reloader) deleteHealthCheck(a control.RuleChange) (control.ReloadInfo, error) {
	return rl.change("delete-healthcheck", func(c *config.Config) error {
		i := slices.IndexFunc(c.HealthChecks, func(h config.HealthCheck) bool { return h.Name == a.Name })
		if i < 0 {
			return fmt.Errorf("no healthcheck %q", a.Name)
		}
		for _, g := range c.ServerGroups {
			if g.HealthCheck == a.Name {
				return fmt.Errorf("healthcheck %q is used by server group %q", a.Name, g.Name)
			}
		}
		c.HealthChecks = slices.Delete(c.HealthChecks, i, i+1)
		return nil
	})
}

// createRouter adds the VRRP instance of one [[vrrp]] table (vrrpadm create-router).
func (rl *reloader) createRouter(a control.RuleChange) (control.ReloadInfo, error) {
	return rl.appendTable("create-router", "vrrp", a, func(c *config.Config) []string {
		var names []string
		for _, v := range c.VRRP {
			names = append(names, v.Name)
		}
		return names
	})
}

// modifyRouter changes an instance's priority, interval, preempt or accept mode
// (vrrpadm modify-router); the instance restarts from Initialize, as a changed one
// does on a reload.
func (rl *reloader) modifyRouter(a control.RouterChange) (control.ReloadInfo, error) {
	return rl.change("modify-router", func(c *config.Config) error {
		i := slices.IndexFunc(c.VRRP, func(v config.VRRP) bool { return v.Name == a.Name })
		if i < 0 {
			return fmt.Errorf("no router %q", a.Name)
		}
		v := &c.VRRP[i]
		if a.Priority != 0 {
			v.Priority = a.Priority
		}
		if a.Interval != 0 {
			v.Interval = time.Duration(a.Interval) * time.Millisecond
		}
		if a.Preempt != nil {
			v.Preempt = *a.Preempt
		}
		if a.Accept != nil {
			v.Accept = *a.Accept
		}
		return nil
	})
}

// enableRouter starts a disabled VRRP instance (vrrpadm enable-router) from Initialize.
func (rl *reloader) enableRouter(a control.RuleChange) (control.ReloadInfo, error) {
	return rl.setRouterEnabled("enable-router", a.Name, true)
}

// disableRouter stops a VRRP instance (vrrpadm disable-router) but keeps it
// configured: a master says goodbye (priority 0) and gives up its addresses, as on
// delete-router; enable-router starts it again.
func (rl *reloader) disableRouter(a control.RuleChange) (control.ReloadInfo, error) {
	return rl.setRouterEnabled("disable-router", a.Name, false)
}

func (rl *reloader) setRouterEnabled(verb, name string, on bool) (control.ReloadInfo, error) {
	return rl.change(verb, func(c *config.Config) error {
		i := slices.IndexFunc(c.VRRP, func(v config.VRRP) bool { return v.Name == name })
		if i < 0 {
			return fmt.Errorf("no router %q", name)
		}
		if c.VRRP[i].Enabled == on {
			return fmt.Errorf("router %q is %s already", name, map[bool]string{true: "enabled", false: "disabled"}[on])
		}
		c.VRRP[i].Enabled = on
		return nil
	})
}

// deleteRouter removes a VRRP instance (vrrpadm delete-router): a master says goodbye.
func (rl *reloader) deleteRouter(a control.RuleChange) (control.ReloadInfo, error) {
	return rl.change("delete-router", func(c *config.Config) error {
		i := slices.IndexFunc(c.VRRP, func(v config.VRRP) bool { return v.Name == a.Name })
		if i < 0 {
			return fmt.Errorf("no router %q", a.Name)
		}
		if c.Sync.Enabled && c.Sync.VRRP == a.Name {
			return fmt.Errorf("router %q is the one [sync] follows", a.Name)
		}
		c.VRRP = slices.Delete(c.VRRP, i, i+1)
		return nil
	})
}
