package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"ulb/bench/netns"
)

// DefaultStateRoot holds one directory per bench that is up: its state (namespaces,
// process ids), logs and built programs.
const DefaultStateRoot = "/run/ulbbench"

// ErrAlreadyUp means the bench's state or one of its namespaces already exists.
var ErrAlreadyUp = errors.New("bench is already up")

// Options tune Up and Down.
type Options struct {
	BinDir    string    // where ulbd/ulbbench are looked up first (the -bin flag)
	StateRoot string    // default DefaultStateRoot
	Out       io.Writer // progress and check lines; nil discards them
}

// Bench is a bench that is up.
type Bench struct {
	spec     *Spec
	opts     Options
	stateDir string

	binMu sync.Mutex
	bins  map[string]string

	mu    sync.Mutex
	state state
	procs map[string]*proc // started by this Bench, by process name
}

// state is what Down needs to undo Up, also from another process after a crash.
type state struct {
	Name       string      `json:"name"`
	Namespaces []string    `json:"namespaces"`
	Processes  []procState `json:"processes"`
}

type procState struct {
	Name  string   `json:"name"`
	Host  string   `json:"host"`
	PID   int      `json:"pid"`
	Start uint64   `json:"start"` // start time in clock ticks, /proc/PID/stat field 22
	Argv  []string `json:"argv"`
	Log   string   `json:"log"`
}

const stateFile = "state.json"

// StateDir returns the state directory of the bench.
func (b *Bench) StateDir() string { return b.stateDir }

// Spec returns the bench's spec.
func (b *Bench) Spec() *Spec { return b.spec }

// Namespace returns the network namespace of a host or segment.
func (b *Bench) Namespace(name string) string { return b.spec.Namespace(name) }

// LogPath returns the log file of a process.
func (b *Bench) LogPath(process string) string {
	return filepath.Join(b.stateDir, "logs", process+".log")
}

func newBench(spec *Spec, opts Options) *Bench {
	if opts.StateRoot == "" {
		opts.StateRoot = DefaultStateRoot
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	return &Bench{
		spec: spec, opts: opts,
		stateDir: filepath.Join(opts.StateRoot, spec.Name),
		bins:     map[string]string{},
		state:    state{Name: spec.Name},
		procs:    map[string]*proc{},
	}
}

func (b *Bench) logf(format string, args ...any) {
	fmt.Fprintf(b.opts.Out, format+"\n", args...)
}

// Up creates the bench's namespaces, links, segments, addresses and routes, runs the
// hosts' setup commands, starts its processes and waits until each is ready. On error it
// tears down what it built. Processes run detached (own session), so they outlive the
// caller unless Down stops them.
func Up(ctx context.Context, spec *Spec, opts Options) (*Bench, error) {
	b := newBench(spec, opts)
	if _, err := os.Stat(filepath.Join(b.stateDir, stateFile)); err == nil {
		return nil, fmt.Errorf("bench %s: %w (state in %s; run down first)", spec.Name, ErrAlreadyUp, b.stateDir)
	}
	for _, ns := range spec.Namespaces() {
		if netns.Exists(ns) {
			return nil, fmt.Errorf("bench %s: %w (namespace %s exists; run down first)", spec.Name, ErrAlreadyUp, ns)
		}
	}
	if err := os.MkdirAll(filepath.Join(b.stateDir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := b.saveState(); err != nil {
		return nil, err
	}
	if err := b.up(ctx); err != nil {
		if derr := b.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("tearing down after the failure: %w", derr))
		}
		return nil, err
	}
	return b, nil
}

func (b *Bench) saveState() error {
	b.mu.Lock()
	data, err := json.MarshalIndent(b.state, "", "  ")
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("bench: state: %w", err)
	}
	tmp := filepath.Join(b.stateDir, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("bench: state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(b.stateDir, stateFile)); err != nil {
		return fmt.Errorf("bench: state: %w", err)
	}
	return nil
}

// ip runs the ip command and returns a clear error with its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// iface is one configured end: a host's device with its addresses and MTU.
type iface struct {
	host  *Host
	dev   string
	addrs []string
	mtu   int
}

func (b *Bench) up(ctx context.Context) error {
	s := b.spec
	for _, ns := range s.Namespaces() {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
		b.mu.Lock()
		b.state.Namespaces = append(b.state.Namespaces, ns)
		b.mu.Unlock()
		if err := b.saveState(); err != nil {
			return err
		}
		if err := ip("-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	// Devices created from now on skip duplicate address detection, so that their
	// link-local addresses are usable at once and NDP answers without a 1-2 s wait.
	// The segments' bridges carry no IPv6 at all.
	for _, h := range s.Hosts {
		if err := writeSysctls(s.Namespace(h.Name), map[string]string{
			"net.ipv6.conf.default.accept_dad": "0",
			"net.ipv6.conf.all.accept_dad":     "0",
		}); err != nil {
			return err
		}
	}
	for _, g := range s.Segments {
		if err := writeSysctls(s.Namespace(g.Name), map[string]string{
			"net.ipv6.conf.default.disable_ipv6": "1",
			"net.ipv6.conf.all.disable_ipv6":     "1",
		}); err != nil {
			return err
		}
	}
	for i := range s.Hosts {
		if h := &s.Hosts[i]; h.Router {
			// The kernel must stay out of the way of ulbd on a router host.
			if err := writeSysctls(s.Namespace(h.Name), map[string]string{
				"net.ipv4.ip_forward":          "0",
				"net.ipv6.conf.all.forwarding": "0",
			}); err != nil {
				return err
			}
		}
	}

	var ends []iface
	var devs [][2]string // (namespace, device) pairs that must come up
	end := func(ref string, addrs []string, mtu int) iface {
		host, dev, _ := strings.Cut(ref, ":")
		return iface{host: s.Host(host), dev: dev, addrs: addrs, mtu: mtu}
	}
	for _, l := range s.Links {
		a, z := end(l.A, l.AAddress, l.MTU), end(l.B, l.BAddress, l.MTU)
		if err := ip("-n", s.Namespace(a.host.Name), "link", "add", a.dev, "type", "veth",
			"peer", "name", z.dev, "netns", s.Namespace(z.host.Name)); err != nil {
			return err
		}
		ends = append(ends, a, z)
	}
	for _, g := range s.Segments {
		seg := s.Namespace(g.Name)
		if err := ip("-n", seg, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"); err != nil {
			return err
		}
		for i, m := range g.Members {
			e := end(m.Port, m.Address, g.MTU)
			port := fmt.Sprintf("p%d", i)
			if err := ip("-n", s.Namespace(e.host.Name), "link", "add", e.dev, "type", "veth",
				"peer", "name", port, "netns", seg); err != nil {
				return err
			}
			args := []string{"-n", seg, "link", "set", port, "master", "br0"}
			if g.MTU != 0 {
				args = append(args, "mtu", fmt.Sprint(g.MTU))
			}
			if err := ip(append(args, "up")...); err != nil {
				return err
			}
			devs = append(devs, [2]string{seg, port})
			ends = append(ends, e)
		}
		if g.MTU != 0 {
			if err := ip("-n", seg, "link", "set", "br0", "mtu", fmt.Sprint(g.MTU)); err != nil {
				return err
			}
		}
		if err := ip("-n", seg, "link", "set", "br0", "up"); err != nil {
			return err
		}
	}
	// Host sysctls apply once every device exists, before any is up.
	for _, h := range s.Hosts {
		vals := map[string]string{}
		for _, k := range sortedKeys(h.Sysctls) {
			vals[k], _ = sysctlValue(h.Sysctls[k])
		}
		if err := writeSysctls(s.Namespace(h.Name), vals); err != nil {
			return err
		}
	}
	for _, e := range ends {
		if err := b.configure(e); err != nil {
			return err
		}
	}
	for _, e := range ends {
		devs = append(devs, [2]string{s.Namespace(e.host.Name), e.dev})
	}
	if err := waitOperUp(ctx, devs); err != nil {
		return err
	}
	for _, h := range s.Hosts {
		for _, a := range h.Loopback {
			if err := ip("-n", s.Namespace(h.Name), "addr", "add", a, "dev", "lo"); err != nil {
				return err
			}
		}
	}
	for _, h := range s.Hosts {
		for _, r := range h.Routes {
			if err := addRoute(s.Namespace(h.Name), r); err != nil {
				return err
			}
		}
	}
	for _, h := range s.Hosts {
		for _, cmd := range h.Setup {
			if err := b.setup(ctx, h.Name, cmd); err != nil {
				return err
			}
		}
	}
	for _, h := range s.Hosts {
		role := ""
		if h.Router {
			role = ", router"
		}
		b.logf("host %s (netns %s%s)%s", h.Name, s.Namespace(h.Name), role, b.describeHost(h.Name, ends))
	}
	for i := range s.Processes {
		if err := b.start(ctx, &s.Processes[i]); err != nil {
			return err
		}
	}
	b.logf("bench %s is up (state in %s)", s.Name, b.stateDir)
	return nil
}

// setupTimeout bounds one setup command of a host.
const setupTimeout = time.Minute

// setup runs one setup command in a host's namespace; its output is in the error when it
// fails.
func (b *Bench) setup(ctx context.Context, host string, argv []string) error {
	cctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	out, err := b.Exec(cctx, host, argv...)
	if err != nil {
		return fmt.Errorf("host %s: setup: %w: %s", host, err, strings.TrimSpace(string(out)))
	}
	b.logf("host %s: setup %s", host, strings.Join(argv, " "))
	return nil
}

func (b *Bench) describeHost(host string, ends []iface) string {
	var sb strings.Builder
	for _, e := range ends {
		if e.host.Name != host {
			continue
		}
		fmt.Fprintf(&sb, "\n  %s", e.dev)
		if len(e.addrs) > 0 {
			fmt.Fprintf(&sb, " %s", strings.Join(e.addrs, " "))
		}
	}
	return sb.String()
}

// configure sets one interface's MTU, router-host sysctls, offloads and addresses, and
// brings it up.
func (b *Bench) configure(e iface) error {
	ns := b.spec.Namespace(e.host.Name)
	if e.mtu != 0 {
		if err := ip("-n", ns, "link", "set", e.dev, "mtu", fmt.Sprint(e.mtu)); err != nil {
			return err
		}
	}
	if e.host.Router {
		if err := writeSysctls(ns, map[string]string{"net/ipv6/conf/" + e.dev + "/disable_ipv6": "1"}); err != nil {
			return err
		}
	}
	if e.host.Offloads != nil && !*e.host.Offloads {
		args := []string{"netns", "exec", ns, "ethtool", "-K", e.dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off"}
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("turning offloads off on %s:%s: %v: %s", e.host.Name, e.dev, err, strings.TrimSpace(string(out)))
		}
	}
	for _, a := range e.addrs {
		args := []string{"-n", ns, "addr", "add", a, "dev", e.dev}
		if p, _ := netip.ParsePrefix(a); p.Addr().Is6() {
			args = append(args, "nodad")
		}
		if err := ip(args...); err != nil {
			return err
		}
	}
	return ip("-n", ns, "link", "set", e.dev, "up")
}

// linkUpTimeout bounds the wait for the kernel to report new links operationally up.
const linkUpTimeout = 5 * time.Second

// waitOperUp waits until every interface is operationally up. The kernel activates a
// device's queueing discipline only then (link events are batched, up to a second late),
// and drops what is sent before: the first packets of a check would be lost.
func waitOperUp(ctx context.Context, devs [][2]string) error {
	deadline := time.Now().Add(linkUpTimeout)
	for _, d := range devs {
		ns, dev := d[0], d[1]
		for {
			out, err := exec.Command("ip", "-n", ns, "-br", "link", "show", "dev", dev).Output()
			if err != nil {
				return fmt.Errorf("ip -n %s link show dev %s: %w", ns, dev, err)
			}
			if f := strings.Fields(string(out)); len(f) >= 2 && f[1] == "UP" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s in %s is not up after %v: %s", dev, ns, linkUpTimeout, strings.TrimSpace(string(out)))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(readyPoll):
			}
		}
	}
	return nil
}

func addRoute(ns string, r Route) error {
	family := "-4"
	if r.To != "default" {
		if p, _ := netip.ParsePrefix(r.To); p.Addr().Is6() {
			family = "-6"
		}
	} else if a, _ := netip.ParseAddr(r.Via); a.Is6() {
		family = "-6"
	}
	args := []string{family, "-n", ns, "route", "add", r.To}
	if r.Via != "" {
		args = append(args, "via", r.Via)
	}
	if r.Dev != "" {
		args = append(args, "dev", r.Dev)
	}
	return ip(args...)
}

// writeSysctls writes values under /proc/sys inside a namespace.
func writeSysctls(ns string, vals map[string]string) error {
	if len(vals) == 0 {
		return nil
	}
	return netns.Do(ns, func() error {
		for k, v := range vals {
			p, err := sysctlPath(k)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", k, v, ns, err)
			}
		}
		return nil
	})
}

// Exec runs argv in a host's namespace (ip netns exec) and returns its combined output. A
// program name starting with "ulb" is resolved like process programs.
func (b *Bench) Exec(ctx context.Context, host string, argv ...string) ([]byte, error) {
	if b.spec.Host(host) == nil {
		return nil, fmt.Errorf("bench: no host %q", host)
	}
	if len(argv) == 0 {
		return nil, errors.New("bench: exec: empty command")
	}
	prog := argv[0]
	if strings.HasPrefix(prog, "ulb") || strings.Contains(prog, "/") {
		p, err := b.lookBin(prog)
		if err != nil {
			return nil, err
		}
		prog = p
	}
	args := append([]string{"netns", "exec", b.spec.Namespace(host), prog}, argv[1:]...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Dir = b.spec.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("exec in %s: %s: %w", host, strings.Join(argv, " "), err)
	}
	return out, nil
}
