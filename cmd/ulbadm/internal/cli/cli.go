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
	help     string
	run      func(ctx context.Context, c *cmd, args []string) error
}

// verbs in the order the usage lists them.
var verbs = []verb{
	{"show-port", "[NAME]", "ports: device, MAC, MTU, state, addresses", showPort},
	{"show-route", "", "the routing table", showRoute},
	{"show-neigh", "[PORT]", "the ARP and NDP neighbour cache", showNeigh},
	{"show-stats", "[INTERVAL [COUNT]]", "counters; with INTERVAL (seconds or a duration like 500ms),\n" +
		"                                  a line of rates every INTERVAL, COUNT times or until interrupted", showStats},
	{"help", "", "this text", nil},
}

func lookupVerb(name string) (verb, bool) {
	for _, v := range verbs {
		if v.name == name {
			return v, true
		}
	}
	return verb{}, false
}

func writeUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: ulbadm [-s SOCKET] [-o json] VERB [options] [object]\n\nverbs:\n")
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-30s  %s\n", strings.TrimSpace(v.name+" "+v.synopsis), v.help)
	}
	fmt.Fprintf(w, "\noptions:\n"+
		"  -s SOCKET  ulbd's control socket (default $%s, else %s)\n"+
		"  -o json    print ulbd's data as JSON instead of a table\n", SocketEnv, DefaultSocket)
}

// cmd is what a verb runs with.
type cmd struct {
	socket string
	json   bool
	stdout io.Writer
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

// positional parses a verb's options (none yet) and returns at most max operands.
func positional(name string, args []string, max int) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	if fs.NArg() > max {
		return nil, usagef("%s: unexpected argument %q", name, fs.Arg(max))
	}
	return fs.Args(), nil
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
	ops, err := positional("show-stats", args, 2)
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		return show(ctx, c, control.VerbShowStats, nil, func(w io.Writer, s control.StatsInfo) error {
			return format.Stats(w, &s)
		})
	}
	interval, err := parseInterval(ops[0])
	if err != nil {
		return err
	}
	count := 0 // forever
	if len(ops) == 2 {
		count, err = strconv.Atoi(ops[1])
		if err != nil || count <= 0 {
			return usagef("show-stats: bad count %q: want a positive integer", ops[1])
		}
	}
	rw := format.NewRateWriter(c.stdout)
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
			if err := c.call(ctx, control.VerbShowStats, nil, &raw); err != nil {
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
		if err := c.call(ctx, control.VerbShowStats, nil, cur); err != nil {
			return err
		}
		if err := rw.Write(format.ComputeRates(prev, cur)); err != nil {
			return err
		}
		prev = cur
	}
	return nil
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
// ctx ends a running show-stats loop (main cancels it on SIGINT and SIGTERM).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
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
	c := &cmd{socket: *socket, stdout: stdout}
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
	if v.run == nil { // help
		writeUsage(stdout)
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
		return usage(err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return ExitOK // interrupted while repeating show-stats
	case errors.As(err, &re):
		fmt.Fprintf(stderr, "ulbadm: %s: %s\n", re.Verb, re.Message)
	default:
		fmt.Fprintf(stderr, "ulbadm: %v\n", err)
	}
	return ExitError
}
