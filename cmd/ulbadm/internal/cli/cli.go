// Package cli is ulbadm's command line: global options, the verbs, and how each verb's
// answer from ulbd is printed. cmd/ulbadm's main only wires it to the process.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"ulb/cmd/ulbadm/internal/format"
	"ulb/router/control"
)

// DefaultSocket is ulbd's control socket when neither -s nor ULB_SOCKET names one.
const DefaultSocket = "/run/ulb/ulbd.sock"

// SocketEnv is the environment variable that overrides DefaultSocket.
const SocketEnv = "ULB_SOCKET"

// Exit codes of Run.
const (
	ExitOK    = 0
	ExitError = 1 // ulbd unreachable or refused the request
	ExitUsage = 2 // unknown verb or bad option
)

// usageError is a mistake on the command line: Run prints the usage and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// verb is one ulbadm verb.
type verb struct {
	name     string
	synopsis string // arguments after the verb
	short    string // one line for the usage's list
	help     string // what ulbadm help VERB adds: the options and the details
	run      func(ctx context.Context, c *cmd, args []string) error
}

// verbs in the order the usage lists them.
var verbs = []verb{
	{"show-port", "[NAME]", "ports and their addresses",
		"ports: device, MAC, MTU, state, addresses", showPort},
	{"show-route", "", "the routing table",
		"the routing table", showRoute},
	{"show-neigh", "[PORT]", "the ARP and NDP neighbour cache",
		"the ARP and NDP neighbour cache", showNeigh},
	{"show-rule", "[-f] [NAME]", "load-balancing rules",
		"load-balancing rules; -f prints every field, a block per rule", showRule},
	{"show-servergroup", "[NAME]", "server groups as configured",
		"server groups and their servers as configured", showServerGroup},
	{"show-server", "[RULE]", "each rule's servers: weight, state, health, flows",
		"each rule's servers: weight (/EFFECTIVE when health or load changed it), max_conns/min_conns, state (overloaded: at max_conns, until below min_conns), health, agent load, flows now and in total", showServer},
	{"show-hc-result", "[-r RULE | -g GROUP] [SERVER]", "health check results per server",
		"health check results per server: state, consecutive failures, RTT, agent load, last and next check, last result", showHCResult},
	{"show-healthcheck", "[NAME]", "health checks as configured",
		"health checks as configured and the groups they test", showHealthCheck},
	{"show-conn", "[-r RULE] [-s SERVER] [COUNT]", "the connection table (ilbadm show-nat)",
		"the connection table, like ilbadm show-nat: at most COUNT flows (default 1000)", showConn},
	{"show-persist", "[-r RULE] [COUNT]", "persistence entries",
		"persistence entries (client prefix to server), at most COUNT", showPersist},
	{"show-stats", "[-r RULE | -s SERVER] [INTERVAL [COUNT]]", "counters, once or as rates every INTERVAL",
		"counters; with INTERVAL (seconds or a duration like 500ms), a line of rates every INTERVAL, COUNT times or until interrupted: the router's, or the rule's or server's", showStats},
	{"enable-server", "[-r RULE | -g GROUP] SERVER...", "servers take new flows again",
		"servers take new flows again; SERVER is ADDRESS or ADDRESS:PORT, in every group that has it unless -r or -g", serverVerb(control.VerbEnableServer)},
	{"disable-server", "[-r RULE | -g GROUP] SERVER...", "servers take no new flows; their flows are removed",
		"servers take no new flows; their flows are removed at once (drain-server lets them finish)", serverVerb(control.VerbDisableServer)},
	{"drain-server", "[-r RULE | -g GROUP] SERVER...", "servers take no new flows; their flows finish",
		"servers take no new flows; their flows are removed after the rule's conn_drain (or when they end)", serverVerb(control.VerbDrainServer)},
	{"enable-rule", "NAME...", "rules take new flows again",
		"rules take new flows again", ruleVerb(control.VerbEnableRule)},
	{"disable-rule", "NAME...", "rules take no new flows; their flows go on",
		"rules take no new flows; their flows go on", ruleVerb(control.VerbDisableRule)},
	{"export-config", "", "print the configuration in effect as TOML",
		"print the configuration in effect as TOML that ulbd -check accepts (as ulbd last loaded it; comments are not kept)", exportConfig},
	{"create-servergroup", "[-s server=SERVER[,SERVER...]] [-l max-conns=N[,min-conns=M]] GROUP", "create a server group",
		"a new server group (as ilbadm); SERVER is ADDRESS or ADDRESS:PORT; -l: the servers' connection thresholds; saved, like every change below, for ulbd's next start", groupVerb(control.VerbCreateServerGroup, "s", false)},
	{"delete-servergroup", "GROUP", "remove a server group no rule uses",
		"remove a server group no rule uses", groupVerb(control.VerbDeleteServerGroup, "", false)},
	{"add-server", "-e SERVER[,SERVER...] [-l max-conns=N[,min-conns=M]] GROUP", "add servers to a group",
		"add servers to a group; new flows reach them; -l: their connection thresholds (none at max-conns takes new flows until below min-conns, default 3/4 of max-conns)", groupVerb(control.VerbAddServer, "e", false)},
	{"remove-server", "[-f] -s server=SERVER[,SERVER...] GROUP", "remove servers from a group",
		"remove servers from a group; one that carries flows only with -f (its flows drain as conn_drain says)", groupVerb(control.VerbRemoveServer, "s", true)},
	{"create-rule", "[-e] [-p] -i vip=V,port=P[,protocol=tcp|udp] -m lbalg=A,type=T[,proxy-src=R][,tunnel-src=A][,pmask=M][,persist-key=K] [-t conn-drain=S][,persist-timeout=S] -o servergroup=G NAME", "create a load-balancing rule",
		"a new rule, with ilbadm's options (-e: enabled, as ilbadm rules start disabled; -p: persistence; K: src, src+port or dst+port (UDP), what it keys on; type DSR, NAT, HALF-NAT or TUNNEL (IP-in-IP to servers on any network, from tunnel-src or the egress port's address); times in seconds), or -c FILE: a [[rule]] table", createRule},
	{"delete-rule", "NAME", "remove a rule",
		"remove a rule; its flows drain as its conn_drain says", nameVerb(control.VerbDeleteRule)},
	{"create-healthcheck", "-h hc-test=T[,hc-timeout=S][,hc-count=N][,hc-interval=S] NAME", "create a health check",
		"a new health check, with ilbadm's options (T: PING, TCP, UDP or a script's path; S in seconds), or -c FILE", createHealthCheck},
	{"delete-healthcheck", "NAME", "remove a health check no server group uses",
		"remove a health check no server group uses", nameVerb(control.VerbDeleteHealthCheck)},
	{"create-router", "-V VRID -l PORT -a ADDR[,ADDR...] [-x PORT[,PORT...]] [-A inet|inet6] [-p PRIO] [-i MS] [-o FLAGS] NAME", "create a VRRP instance (vrrpadm)",
		"a new VRRP instance, with vrrpadm's options (FLAGS: preempt, un_preempt, accept, no_accept; -x: extra links that carry adverts, advert_ports), or -c FILE", createRouter},
	{"modify-router", "[-p PRIO] [-i MS] [-o FLAGS] NAME", "change a VRRP instance",
		"change a VRRP instance (it restarts, as on a reload)", modifyRouter},
	{"delete-router", "NAME", "remove a VRRP instance",
		"remove a VRRP instance; a master says goodbye", nameVerb(control.VerbDeleteRouter)},
	{"enable-router", "NAME", "start a disabled VRRP instance",
		"start a VRRP instance disable-router stopped; it begins in init, as at ulbd's start", nameVerb(control.VerbEnableRouter)},
	{"disable-router", "NAME", "stop a VRRP instance, keeping it configured",
		"stop a VRRP instance but keep it configured (show-router lists it as disabled): a master says goodbye and gives up its addresses", nameVerb(control.VerbDisableRouter)},
	{"import-config", "FILE", "apply a configuration file and keep it",
		"apply FILE like a reload and keep it, beside ulbd's file, for its next start (until the file is reloaded)", importConfig},
	{"reload", "", "re-read ulbd's configuration file (as SIGHUP)",
		"re-read ulbd's configuration file and apply it, as SIGHUP does; a file that fails validation changes nothing", reload},
	{"show-router", "[-f] [NAME]", "VRRP instances",
		"VRRP instances; PRIO is the effective priority (/CONFIGURED when tracking lowered it), MODE o=owner p=preempt a=accept; -f prints every field and the counters, a block per instance", showRouter},
	{"watch", "[-k KIND] [-n COUNT] [NAME]", "print ulbd's events as they happen",
		"print ulbd's events (VRRP states, server health and admin state) as they happen, one line each, until interrupted or COUNT events: of KIND (vrrp, health, server), about NAME (a VRRP instance, or GROUP/SERVER)", watch},
	{"wizard", "[-f] [-o FILE]", "write a configuration from setup questions",
		"ask the setup questions (single unit or HA pair, one-arm or two-arm, addresses, gateway, the first virtual and real servers, a health check), each answer checked as ulbd checks its file, and write the configuration atomically to FILE (default /etc/ulb/ulbd.toml; an existing one only with -f); answers may come from a pipe; needs no ulbd", wizardVerb},
	{"help", "[VERB]", "this text, or a verb's options and details",
		"without VERB, every verb with one line; with VERB, its usage line and what it does", nil},
}

// nameWidth is the usage's column of verb names.
const nameWidth = 18

// helpWidth is where ulbadm help VERB wraps its text.
const helpWidth = 80

func lookupVerb(name string) (verb, bool) {
	for _, v := range verbs {
		if v.name == name {
			return v, true
		}
	}
	return verb{}, false
}

const globalSynopsis = "ulbadm [-s SOCKET] [-o json]"

// writeUsage lists every verb with one line.
func writeUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s VERB [options] [object]\n\nverbs (ulbadm help VERB prints a verb's options):\n", globalSynopsis)
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-*s  %s\n", nameWidth, v.name, v.short)
	}
	fmt.Fprintf(w, "\noptions:\n"+
		"  -s SOCKET  ulbd's control socket (default $%s, else %s)\n"+
		"  -o json    print ulbd's data as JSON instead of a table\n", SocketEnv, DefaultSocket)
}

// writeVerbUsage prints a verb's usage line, and with details what it does.
func writeVerbUsage(w io.Writer, v verb, details bool) {
	fmt.Fprintf(w, "usage: %s\n", strings.TrimSpace(globalSynopsis+" "+v.name+" "+v.synopsis))
	if !details {
		return
	}
	fmt.Fprintln(w)
	line := " "
	for _, word := range strings.Fields(v.help) {
		if len(line)+1+len(word) > helpWidth && line != " " {
			fmt.Fprintln(w, line)
			line = " "
		}
		line += " " + word
	}
	fmt.Fprintln(w, line)
}

// cmd is what a verb runs with.
type cmd struct {
	socket string
	json   bool
	stdout io.Writer
	stdin  io.Reader // the wizard's answers
	client *control.Client
}

// call sends a request to ulbd, dialling on first use.
func (c *cmd) call(ctx context.Context, verb string, args, out any) error {
	if c.client == nil {
		cl, err := control.DialContext(ctx, c.socket)
		if err != nil {
			return err
		}
		c.client = cl
	}
	return c.client.Call(ctx, verb, args, out)
}

// show calls verb and prints its data: indented JSON with -o json, else decoded into a
// value of type T and rendered by table.
func show[T any](ctx context.Context, c *cmd, verb string, args any, table func(io.Writer, T) error) error {
	if c.json {
		var raw json.RawMessage
		if err := c.call(ctx, verb, args, &raw); err != nil {
			return err
		}
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return fmt.Errorf("%s: bad data from ulbd: %w", verb, err)
		}
		b.WriteByte('\n')
		_, err := c.stdout.Write(b.Bytes())
		return err
	}
	var v T
	if err := c.call(ctx, verb, args, &v); err != nil {
		return err
	}
	return table(c.stdout, v)
}

// positional parses a verb without options and returns at most max operands.
func positional(name string, args []string, max int) ([]string, error) {
	return parse(name, args, 0, max, nil)
}

// parse parses a verb's options, declared by setup (nil for none), and returns its
// operands: at least min, at most max (-1: no limit). Options come before operands.
func parse(name string, args []string, min, max int, setup func(*flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if setup != nil {
		setup(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	if max >= 0 && fs.NArg() > max {
		return nil, usagef("%s: unexpected argument %q", name, fs.Arg(max))
	}
	if fs.NArg() < min {
		return nil, usagef("%s: missing operand", name)
	}
	return fs.Args(), nil
}

// checkServer refuses a malformed SERVER before ulbd sees it.
func checkServer(verb, s string) error {
	if _, _, err := control.ParseServerRef(s); err != nil {
		return usagef("%s: %v", verb, err)
	}
	return nil
}

// parseCount reads a positive COUNT operand.
func parseCount(verb, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, usagef("%s: bad count %q: want a positive integer", verb, s)
	}
	return n, nil
}

func showPort(ctx context.Context, c *cmd, args []string) error {
	ops, err := positional("show-port", args, 1)
	if err != nil {
		return err
	}
	var a control.ShowPortArgs
	if len(ops) == 1 {
		a.Name = ops[0]
	}
	return show(ctx, c, control.VerbShowPort, a, format.Ports)
}

func showRoute(ctx context.Context, c *cmd, args []string) error {
	if _, err := positional("show-route", args, 0); err != nil {
		return err
	}
	return show(ctx, c, control.VerbShowRoute, nil, format.Routes)
}

// reload asks ulbd to reload its file, and prints what it installed and what needs a
// restart (with -o json, the ReloadInfo).
func reload(ctx context.Context, c *cmd, args []string) error {
	if _, err := positional("reload", args, 0); err != nil {
		return err
	}
	return show(ctx, c, control.VerbReload, nil, format.Reload)
}

// exportConfig prints the TOML ulbd renders (with -o json, the ExportInfo).
func exportConfig(ctx context.Context, c *cmd, args []string) error {
	if _, err := positional("export-config", args, 0); err != nil {
		return err
	}
	return show(ctx, c, control.VerbExportConfig, nil, func(w io.Writer, e control.ExportInfo) error {
		_, err := io.WriteString(w, e.TOML)
		return err
	})
}

// groupVerb runs a server-group change with ilbadm's options: the servers after -e
// (add-server) or -s server= (create-servergroup, remove-server), -f when force is
// allowed, and the group as the operand.
func groupVerb(verb, serversFlag string, force bool) func(context.Context, *cmd, []string) error {
	return func(ctx context.Context, c *cmd, args []string) error {
		var servers, limits string
		var f bool
		thresholds := verb == control.VerbCreateServerGroup || verb == control.VerbAddServer
		ops, err := parse(verb, args, 1, 1, func(fs *flag.FlagSet) {
			if serversFlag != "" {
				fs.StringVar(&servers, serversFlag, "", "")
			}
			if thresholds {
				fs.StringVar(&limits, "l", "", "")
			}
			if force {
				fs.BoolVar(&f, "f", false, "")
			}
		})
		if err != nil {
			return err
		}
		a := control.ServerGroupChange{Name: ops[0], Force: f}
		if limits != "" {
			if a.MaxConns, a.MinConns, err = parseLimits(verb, limits); err != nil {
				return err
			}
		}
		if serversFlag == "s" && servers != "" {
			v, ok := strings.CutPrefix(servers, "server=")
			if !ok {
				return usagef("%s: -s %q: want server=SERVER[,SERVER...]", verb, servers)
			}
			servers = v
		}
		if servers != "" {
			for _, s := range strings.Split(servers, ",") {
				if _, _, err := control.ParseServerRef(s); err != nil {
					return usagef("%s: %v", verb, err)
				}
				a.Servers = append(a.Servers, s)
			}
		}
		if (verb == control.VerbAddServer || verb == control.VerbRemoveServer) && len(a.Servers) == 0 {
			return usagef("%s: no server given", verb)
		}
		return show(ctx, c, verb, a, format.Reload)
	}
}

// parseLimits reads -l max-conns=N[,min-conns=M]; ulbd checks the values as it checks a
// file's max_conns and min_conns.
func parseLimits(verb, list string) (maxConns, minConns int, err error) {
	for _, pair := range strings.Split(list, ",") {
		k, v, _ := strings.Cut(pair, "=")
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 0 || (k != "max-conns" && k != "min-conns") {
			return 0, 0, usagef("%s: -l %q: want max-conns=N[,min-conns=M]", verb, pair)
		}
		if k == "max-conns" {
			maxConns = n
		} else {
			minConns = n
		}
	}
	if minConns > 0 && maxConns == 0 {
		return 0, 0, usagef("%s: -l min-conns needs max-conns", verb)
	}
	return maxConns, minConns, nil
}

// createRule builds a [[rule]] table from ilbadm's create-rule options, or reads one
// from -c FILE, and sends it.
func createRule(ctx context.Context, c *cmd, args []string) error {
	var enable, persist bool
	var incoming, method, timers, output, file string
	ops, err := parse("create-rule", args, 1, 1, func(fs *flag.FlagSet) {
		fs.BoolVar(&enable, "e", false, "")
		fs.BoolVar(&persist, "p", false, "")
		fs.StringVar(&incoming, "i", "", "")
		fs.StringVar(&method, "m", "", "")
		fs.StringVar(&timers, "t", "", "")
		fs.StringVar(&output, "o", "", "")
		fs.StringVar(&file, "c", "", "")
	})
	if err != nil {
		return err
	}
	name := ops[0]
	if file != "" {
		if incoming != "" || method != "" || timers != "" || output != "" || enable || persist {
			return usagef("create-rule: -c FILE or ilbadm's options, not both")
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("create-rule: %w", err)
		}
		return show(ctx, c, control.VerbCreateRule, control.RuleChange{Name: name, TOML: string(data)}, format.Reload)
	}
	toml, err := ruleTOML(name, enable, persist, incoming, method, timers, output)
	if err != nil {
		return err
	}
	return show(ctx, c, control.VerbCreateRule, control.RuleChange{Name: name, TOML: toml}, format.Reload)
}

// ruleTOML renders ilbadm's create-rule options as a [[rule]] table.
func ruleTOML(name string, enable, persist bool, incoming, method, timers, output string) (string, error) {
	kv := func(opt, list string, allowed ...string) (map[string]string, error) {
		out := map[string]string{}
		if list == "" {
			return out, nil
		}
		for _, pair := range strings.Split(list, ",") {
			k, v, ok := strings.Cut(pair, "=")
			if !ok || v == "" || !slices.Contains(allowed, k) {
				return nil, usagef("create-rule: -%s %q: want %s=VALUE, ...", opt, pair, strings.Join(allowed, "|"))
			}
			out[k] = v
		}
		return out, nil
	}
	in, err := kv("i", incoming, "vip", "port", "protocol")
	if err != nil {
		return "", err
	}
	m, err := kv("m", method, "lbalg", "type", "proxy-src", "tunnel-src", "pmask", "persist-key")
	if err != nil {
		return "", err
	}
	tm, err := kv("t", timers, "conn-drain", "persist-timeout")
	if err != nil {
		return "", err
	}
	o, err := kv("o", output, "servergroup")
	if err != nil {
		return "", err
	}
	if in["vip"] == "" || in["port"] == "" || o["servergroup"] == "" {
		return "", usagef("create-rule: needs -i vip=...,port=... and -o servergroup=...")
	}
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, strconv.Quote(v)) }
	b.WriteString("[[rule]]\n")
	line("name", name)
	line("vip", in["vip"])
	line("port", in["port"])
	if v := in["protocol"]; v != "" {
		line("protocol", strings.ToLower(v))
	}
	if v := m["lbalg"]; v != "" {
		line("algorithm", strings.ToLower(v))
	}
	if v := m["type"]; v != "" {
		topo := map[string]string{"dsr": "dsr", "nat": "full-nat", "full-nat": "full-nat", "half-nat": "half-nat", "tunnel": "tunnel"}[strings.ToLower(v)]
		if topo == "" {
			return "", usagef("create-rule: -m type=%s: want DSR, NAT, HALF-NAT or TUNNEL", v)
		}
		line("topology", topo)
	}
	if v := m["proxy-src"]; v != "" {
		fmt.Fprintf(&b, "proxy_source = [%s]\n", strconv.Quote(v))
	}
	if v := m["tunnel-src"]; v != "" {
		line("tunnel_source", v)
	}
	key := strings.ToLower(m["persist-key"])
	if key != "" {
		// BalanceNG's sessionid: src, src+port or dst+port; ulbd checks it with the rest.
		persist = true
		line("persist_key", key)
	}
	switch v := m["pmask"]; {
	case v != "" && !persist:
		return "", usagef("create-rule: pmask needs -p (persistence)")
	case persist && v == "" && key == "dst+port":
		// keyed on the VIP's port: no client prefix
	case persist && v == "":
		line("pmask", "/32") // ilbadm's default
	case persist:
		if !strings.HasPrefix(v, "/") {
			v = "/" + v
		}
		line("pmask", v)
	}
	for _, t := range [][2]string{{"conn-drain", "conn_drain"}, {"persist-timeout", "persist_timeout"}} {
		k, key := t[0], t[1]
		if v := tm[k]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return "", usagef("create-rule: -t %s=%s: want seconds", k, v)
			}
			line(key, fmt.Sprintf("%ds", n))
		}
	}
	line("servergroup", o["servergroup"])
	fmt.Fprintf(&b, "enabled = %v\n", enable)
	return b.String(), nil
}

// nameVerb runs a verb whose one operand names what it removes.
func nameVerb(verb string) func(context.Context, *cmd, []string) error {
	return func(ctx context.Context, c *cmd, args []string) error {
		ops, err := parse(verb, args, 1, 1, nil)
		if err != nil {
			return err
		}
		return show(ctx, c, verb, control.RuleChange{Name: ops[0]}, format.Reload)
	}
}

// createHealthCheck builds a [[healthcheck]] table from ilbadm's options, or reads one
// from -c FILE, and sends it.
func createHealthCheck(ctx context.Context, c *cmd, args []string) error {
	var hc, file string
	ops, err := parse("create-healthcheck", args, 1, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&hc, "h", "", "")
		fs.StringVar(&file, "c", "", "")
	})
	if err != nil {
		return err
	}
	a := control.RuleChange{Name: ops[0]}
	switch {
	case file != "" && hc != "":
		return usagef("create-healthcheck: -c FILE or -h, not both")
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("create-healthcheck: %w", err)
		}
		a.TOML = string(data)
	default:
		if a.TOML, err = healthCheckTOML(ops[0], hc); err != nil {
			return err
		}
	}
	return show(ctx, c, control.VerbCreateHealthCheck, a, format.Reload)
}

// healthCheckTOML renders ilbadm's -h options as a [[healthcheck]] table.
func healthCheckTOML(name, hc string) (string, error) {
	opts := map[string]string{}
	for _, pair := range strings.Split(hc, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || v == "" || !slices.Contains([]string{"hc-test", "hc-timeout", "hc-count", "hc-interval"}, k) {
			return "", usagef("create-healthcheck: -h %q: want hc-test|hc-timeout|hc-count|hc-interval=VALUE, ...", pair)
		}
		opts[k] = v
	}
	test := opts["hc-test"]
	if test == "" {
		return "", usagef("create-healthcheck: needs -h hc-test=PING|TCP|UDP|SCRIPT")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[[healthcheck]]\nname = %s\n", strconv.Quote(name))
	switch t := strings.ToLower(test); t {
	case "ping", "tcp", "udp":
		fmt.Fprintf(&b, "test = %q\n", t)
	default:
		fmt.Fprintf(&b, "test = \"script\"\ncommand = [%s]\n", strconv.Quote(test))
	}
	for _, k := range []string{"hc-timeout", "hc-interval"} {
		if v := opts[k]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return "", usagef("create-healthcheck: %s=%s: want seconds", k, v)
			}
			fmt.Fprintf(&b, "%s = \"%ds\"\n", strings.TrimPrefix(k, "hc-"), n)
		}
	}
	if v := opts["hc-count"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return "", usagef("create-healthcheck: hc-count=%s: want a number", v)
		}
		fmt.Fprintf(&b, "count = %d\n", n)
	}
	return b.String(), nil
}

// routerFlags reads vrrpadm's -o flags.
func routerFlags(verb, flags string) (preempt, accept *bool, err error) {
	if flags == "" {
		return nil, nil, nil
	}
	yes, no := true, false
	for _, f := range strings.Split(flags, ",") {
		switch f {
		case "preempt":
			preempt = &yes
		case "un_preempt":
			preempt = &no
		case "accept":
			accept = &yes
		case "no_accept":
			accept = &no
		default:
			return nil, nil, usagef("%s: -o %q: want preempt, un_preempt, accept or no_accept", verb, f)
		}
	}
	return preempt, accept, nil
}

// createRouter builds a [[vrrp]] table from vrrpadm's options, or reads one from -c.
func createRouter(ctx context.Context, c *cmd, args []string) error {
	var vrid, prio, interval int
	var port, addrs, family, flags, file, extra string
	ops, err := parse("create-router", args, 1, 1, func(fs *flag.FlagSet) {
		fs.IntVar(&vrid, "V", 0, "")
		fs.StringVar(&port, "l", "", "")
		fs.StringVar(&extra, "x", "", "")
		fs.StringVar(&addrs, "a", "", "")
		fs.StringVar(&family, "A", "", "")
		fs.IntVar(&prio, "p", 0, "")
		fs.IntVar(&interval, "i", 0, "")
		fs.StringVar(&flags, "o", "", "")
		fs.StringVar(&file, "c", "", "")
	})
	if err != nil {
		return err
	}
	a := control.RuleChange{Name: ops[0]}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("create-router: %w", err)
		}
		a.TOML = string(data)
		return show(ctx, c, control.VerbCreateRouter, a, format.Reload)
	}
	if vrid == 0 || port == "" || addrs == "" {
		return usagef("create-router: needs -V VRID, -l PORT and -a ADDR[,ADDR...]")
	}
	preempt, accept, err := routerFlags("create-router", flags)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[[vrrp]]\nname = %s\nport = %s\nvrid = %d\n", strconv.Quote(ops[0]), strconv.Quote(port), vrid)
	var list []string
	for _, s := range strings.Split(addrs, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return usagef("create-router: -a %q is not an address", s)
		}
		if (family == "inet" && !a.Is4()) || (family == "inet6" && !a.Is6()) {
			return usagef("create-router: -a %s is not of family %s", s, family)
		}
		list = append(list, strconv.Quote(s))
	}
	if family != "" && family != "inet" && family != "inet6" {
		return usagef("create-router: -A %q: want inet or inet6", family)
	}
	fmt.Fprintf(&b, "address = [%s]\n", strings.Join(list, ", "))
	if extra != "" {
		var ports []string
		for _, p := range strings.Split(extra, ",") {
			ports = append(ports, strconv.Quote(p))
		}
		fmt.Fprintf(&b, "advert_ports = [%s]\n", strings.Join(ports, ", "))
	}
	if prio != 0 {
		fmt.Fprintf(&b, "priority = %d\n", prio)
	}
	if interval != 0 {
		fmt.Fprintf(&b, "interval = \"%dms\"\n", interval)
	}
	if preempt != nil {
		fmt.Fprintf(&b, "preempt = %v\n", *preempt)
	}
	if accept != nil {
		fmt.Fprintf(&b, "accept = %v\n", *accept)
	}
	a.TOML = b.String()
	return show(ctx, c, control.VerbCreateRouter, a, format.Reload)
}

// modifyRouter sends vrrpadm's modify-router options.
func modifyRouter(ctx context.Context, c *cmd, args []string) error {
	var prio, interval int
	var flags string
	ops, err := parse("modify-router", args, 1, 1, func(fs *flag.FlagSet) {
		fs.IntVar(&prio, "p", 0, "")
		fs.IntVar(&interval, "i", 0, "")
		fs.StringVar(&flags, "o", "", "")
	})
	if err != nil {
		return err
	}
	a := control.RouterChange{Name: ops[0], Priority: prio, Interval: int64(interval)}
	if a.Preempt, a.Accept, err = routerFlags("modify-router", flags); err != nil {
		return err
	}
	if prio == 0 && interval == 0 && flags == "" {
		return usagef("modify-router: nothing to change: give -p, -i or -o")
	}
	return show(ctx, c, control.VerbModifyRouter, a, format.Reload)
}

// importConfig sends FILE to ulbd, which applies and saves it.
func importConfig(ctx context.Context, c *cmd, args []string) error {
	ops, err := parse("import-config", args, 1, 1, nil)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(ops[0])
	if err != nil {
		return fmt.Errorf("import-config: %w", err)
	}
	return show(ctx, c, control.VerbImportConfig, control.ImportArgs{Name: ops[0], TOML: string(data)}, format.Reload)
}

func showNeigh(ctx context.Context, c *cmd, args []string) error {
	ops, err := positional("show-neigh", args, 1)
	if err != nil {
		return err
	}
	var a control.ShowNeighArgs
	if len(ops) == 1 {
		a.Port = ops[0]
	}
	return show(ctx, c, control.VerbShowNeigh, a, format.Neighs)
}

// parseInterval reads a positive interval: a number of seconds ("2", "0.5") or a Go
// duration ("500ms").
func parseInterval(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || !(f > 0) || f > 1e9 { // NaN, negative, or overflowing
			return 0, usagef("show-stats: bad interval %q: want seconds or a duration like 500ms", s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, usagef("show-stats: interval %q is not positive", s)
	}
	return d, nil
}

func showStats(ctx context.Context, c *cmd, args []string) error {
	var a control.ShowStatsArgs
	ops, err := parse("show-stats", args, 0, 2, func(fs *flag.FlagSet) {
		fs.StringVar(&a.Rule, "r", "", "")
		fs.StringVar(&a.Server, "s", "", "")
	})
	if err != nil {
		return err
	}
	if a.Server != "" {
		if err := checkServer("show-stats", a.Server); err != nil {
			return err
		}
	}
	var sendArgs any
	if a != (control.ShowStatsArgs{}) {
		sendArgs = a
	}
	if len(ops) == 0 {
		return show(ctx, c, control.VerbShowStats, sendArgs, func(w io.Writer, s control.StatsInfo) error {
			return format.Stats(w, &s)
		})
	}
	interval, err := parseInterval(ops[0])
	if err != nil {
		return err
	}
	count := 0 // forever
	if len(ops) == 2 {
		if count, err = parseCount("show-stats", ops[1]); err != nil {
			return err
		}
	}
	// The router's rates, or the selected rule's or server's.
	write := format.NewRateWriter(c.stdout).Write
	line := func(prev, cur *control.StatsInfo) error { return write(format.ComputeRates(prev, cur)) }
	if sendArgs != nil {
		lw := format.NewLBRateWriter(c.stdout)
		sel := func(s *control.StatsInfo) control.LBCounters { return format.Selected(s, a.Server != "") }
		line = func(prev, cur *control.StatsInfo) error { return lw.Write(format.ComputeLBRates(prev, cur, sel)) }
	}
	var prev *control.StatsInfo
	for i := 0; count == 0 || i < count; i++ {
		if i > 0 {
			if err := sleep(ctx, interval); err != nil {
				return err
			}
		}
		if c.json {
			// One snapshot per line; a consumer computes what it needs.
			var raw json.RawMessage
			if err := c.call(ctx, control.VerbShowStats, sendArgs, &raw); err != nil {
				return err
			}
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				return fmt.Errorf("show-stats: bad data from ulbd: %w", err)
			}
			b.WriteByte('\n')
			if _, err := c.stdout.Write(b.Bytes()); err != nil {
				return err
			}
			continue
		}
		cur := new(control.StatsInfo)
		if err := c.call(ctx, control.VerbShowStats, sendArgs, cur); err != nil {
			return err
		}
		if err := line(prev, cur); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

func showRule(ctx context.Context, c *cmd, args []string) error {
	var full bool
	ops, err := parse("show-rule", args, 0, 1, func(fs *flag.FlagSet) { fs.BoolVar(&full, "f", false, "") })
	if err != nil {
		return err
	}
	var a control.ShowRuleArgs
	if len(ops) == 1 {
		a.Name = ops[0]
	}
	if full {
		return show(ctx, c, control.VerbShowRule, a, format.RulesFull)
	}
	return show(ctx, c, control.VerbShowRule, a, format.Rules)
}

func showServerGroup(ctx context.Context, c *cmd, args []string) error {
	ops, err := positional("show-servergroup", args, 1)
	if err != nil {
		return err
	}
	var a control.ShowServerGroupArgs
	if len(ops) == 1 {
		a.Name = ops[0]
	}
	return show(ctx, c, control.VerbShowServerGroup, a, format.ServerGroups)
}

func showServer(ctx context.Context, c *cmd, args []string) error {
	ops, err := positional("show-server", args, 1)
	if err != nil {
		return err
	}
	var a control.ShowServerArgs
	if len(ops) == 1 {
		a.Rule = ops[0]
	}
	return show(ctx, c, control.VerbShowServer, a, format.Servers)
}

func showHCResult(ctx context.Context, c *cmd, args []string) error {
	var a control.ShowHCResultArgs
	ops, err := parse("show-hc-result", args, 0, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&a.Rule, "r", "", "")
		fs.StringVar(&a.Group, "g", "", "")
	})
	if err != nil {
		return err
	}
	if a.Rule != "" && a.Group != "" {
		return usagef("show-hc-result: give -r or -g, not both")
	}
	if len(ops) == 1 {
		if err := checkServer("show-hc-result", ops[0]); err != nil {
			return err
		}
		a.Server = ops[0]
	}
	return show(ctx, c, control.VerbShowHCResult, a, format.HCResults)
}

func showHealthCheck(ctx context.Context, c *cmd, args []string) error {
	ops, err := positional("show-healthcheck", args, 1)
	if err != nil {
		return err
	}
	var a control.ShowHealthCheckArgs
	if len(ops) == 1 {
		a.Name = ops[0]
	}
	return show(ctx, c, control.VerbShowHealthCheck, a, format.HealthChecks)
}

func showConn(ctx context.Context, c *cmd, args []string) error {
	var a control.ShowConnArgs
	ops, err := parse("show-conn", args, 0, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&a.Rule, "r", "", "")
		fs.StringVar(&a.Server, "s", "", "")
	})
	if err != nil {
		return err
	}
	if a.Server != "" {
		if err := checkServer("show-conn", a.Server); err != nil {
			return err
		}
	}
	if len(ops) == 1 {
		if a.Limit, err = parseCount("show-conn", ops[0]); err != nil {
			return err
		}
	}
	return show(ctx, c, control.VerbShowConn, a, format.Conns)
}

func showPersist(ctx context.Context, c *cmd, args []string) error {
	var a control.ShowPersistArgs
	ops, err := parse("show-persist", args, 0, 1, func(fs *flag.FlagSet) { fs.StringVar(&a.Rule, "r", "", "") })
	if err != nil {
		return err
	}
	if len(ops) == 1 {
		if a.Limit, err = parseCount("show-persist", ops[0]); err != nil {
			return err
		}
	}
	return show(ctx, c, control.VerbShowPersist, a, format.Persist)
}

func showRouter(ctx context.Context, c *cmd, args []string) error {
	var full bool
	ops, err := parse("show-router", args, 0, 1, func(fs *flag.FlagSet) { fs.BoolVar(&full, "f", false, "") })
	if err != nil {
		return err
	}
	var a control.ShowRouterArgs
	if len(ops) == 1 {
		a.Name = ops[0]
	}
	if full {
		return show(ctx, c, control.VerbShowRouter, a, format.RoutersFull)
	}
	return show(ctx, c, control.VerbShowRouter, a, format.Routers)
}

// errWatchDone stops a watch after COUNT events.
var errWatchDone = errors.New("watch: count reached")

// watch prints events as they come: a line each, or with -o json each event as one
// line of JSON, until interrupted, ulbd ends the stream, or COUNT events were printed.
func watch(ctx context.Context, c *cmd, args []string) error {
	var a control.WatchArgs
	var countArg string
	ops, err := parse("watch", args, 0, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&a.Kind, "k", "", "")
		fs.StringVar(&countArg, "n", "", "")
	})
	if err != nil {
		return err
	}
	if len(ops) == 1 {
		a.Name = ops[0]
	}
	count := 0 // forever
	if countArg != "" {
		if count, err = parseCount("watch", countArg); err != nil {
			return err
		}
	}
	cl, err := control.DialContext(ctx, c.socket)
	if err != nil {
		return err
	}
	defer cl.Close()
	seen := 0
	err = cl.Watch(ctx, a, func(ev control.Event) error {
		line := format.Event(ev)
		if c.json {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			line = string(b)
		}
		if _, err := fmt.Fprintln(c.stdout, line); err != nil {
			return err
		}
		if ev.Kind != control.EventLost {
			seen++
		}
		if count > 0 && seen >= count {
			return errWatchDone
		}
		return nil
	})
	if errors.Is(err, errWatchDone) {
		return nil
	}
	return err
}

// serverVerb runs enable-server, disable-server or drain-server on each SERVER in turn,
// stopping at the first refusal. It prints nothing, or with -o json the servers changed.
func serverVerb(verb string) func(context.Context, *cmd, []string) error {
	return func(ctx context.Context, c *cmd, args []string) error {
		var rule, group string
		ops, err := parse(verb, args, 1, -1, func(fs *flag.FlagSet) {
			fs.StringVar(&rule, "r", "", "")
			fs.StringVar(&group, "g", "", "")
		})
		if err != nil {
			return err
		}
		if rule != "" && group != "" {
			return usagef("%s: give -r RULE or -g GROUP, not both", verb)
		}
		for _, s := range ops {
			if err := checkServer(verb, s); err != nil {
				return err
			}
		}
		changed := []control.ServerInfo{}
		for _, s := range ops {
			var out []control.ServerInfo
			if err := c.call(ctx, verb, control.ServerArgs{Rule: rule, Group: group, Server: s}, &out); err != nil {
				return err
			}
			changed = append(changed, out...)
		}
		return c.printJSON(changed)
	}
}

// ruleVerb runs enable-rule or disable-rule on each NAME in turn, stopping at the first
// refusal. It prints nothing, or with -o json the rules changed.
func ruleVerb(verb string) func(context.Context, *cmd, []string) error {
	return func(ctx context.Context, c *cmd, args []string) error {
		ops, err := parse(verb, args, 1, -1, nil)
		if err != nil {
			return err
		}
		changed := []control.RuleInfo{}
		for _, name := range ops {
			var out control.RuleInfo
			if err := c.call(ctx, verb, control.RuleArgs{Name: name}, &out); err != nil {
				return err
			}
			changed = append(changed, out)
		}
		return c.printJSON(changed)
	}
}

// printJSON prints v as indented JSON with -o json, and nothing otherwise.
func (c *cmd) printJSON(v any) error {
	if !c.json {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(append(b, '\n'))
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs ulbadm with the arguments after the program name and returns the exit code.
// ctx ends a running show-stats loop or watch (main cancels it on SIGINT and SIGTERM).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return RunInput(ctx, args, os.Stdin, stdout, stderr, getenv)
}

// RunInput is Run with standard input given: the wizard reads its answers from stdin.
func RunInput(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("ulbadm", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("s", "", "")
	output := fs.String("o", "", "")
	usage := func(err error) int {
		fmt.Fprintf(stderr, "ulbadm: %v\n", err)
		writeUsage(stderr)
		return ExitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(stdout)
			return ExitOK
		}
		return usage(err)
	}
	c := &cmd{socket: *socket, stdout: stdout, stdin: stdin}
	if c.socket == "" {
		c.socket = getenv(SocketEnv)
	}
	if c.socket == "" {
		c.socket = DefaultSocket
	}
	switch *output {
	case "":
	case "json":
		c.json = true
	default:
		return usage(fmt.Errorf("-o %q: the only output format is json", *output))
	}
	if fs.NArg() == 0 {
		return usage(errors.New("no verb"))
	}
	v, ok := lookupVerb(fs.Arg(0))
	if !ok {
		return usage(fmt.Errorf("unknown verb %q", fs.Arg(0)))
	}
	if v.run == nil { // help [VERB]
		switch rest := fs.Args()[1:]; {
		case len(rest) == 0:
			writeUsage(stdout)
		case len(rest) > 1:
			return usage(fmt.Errorf("help: unexpected argument %q", rest[1]))
		default:
			hv, ok := lookupVerb(rest[0])
			if !ok {
				return usage(fmt.Errorf("help: unknown verb %q", rest[0]))
			}
			writeVerbUsage(stdout, hv, true)
		}
		return ExitOK
	}
	err := v.run(ctx, c, fs.Args()[1:])
	if c.client != nil {
		c.client.Close()
	}
	var ue *usageError
	var re *control.RemoteError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ulbadm: %v\n", err)
		writeVerbUsage(stderr, v, false)
		return ExitUsage
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return ExitOK // interrupted while repeating show-stats or watching
	case errors.As(err, &re):
		fmt.Fprintf(stderr, "ulbadm: %s: %s\n", re.Verb, re.Message)
	default:
		fmt.Fprintf(stderr, "ulbadm: %v\n", err)
	}
	return ExitError
}
