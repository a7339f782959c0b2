// Package bench builds test benches in network namespaces from a TOML file (hosts, links,
// L2 segments, kernel routes, setup commands such as nft, processes such as ulbd and the
// built-in servers), runs scenario checks (ping, tcp, udp, http, transfer, conns, exec,
// failover) against them, and compares benches on the same workloads (tcp-stream, pps64, conns).
package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// Spec is a validated bench file.
type Spec struct {
	// Name prefixes every namespace of the bench: host h lives in namespace Name-h.
	Name      string    `toml:"name"`
	Hosts     []Host    `toml:"host"`
	Links     []Link    `toml:"link"`
	Segments  []Segment `toml:"segment"`
	Processes []Process `toml:"process"`
	Checks    []Check   `toml:"check"`

	// File is the path the spec was loaded from ("" for Parse without a name); Dir is its
	// directory, against which relative paths of processes resolve.
	File string `toml:"-"`
	Dir  string `toml:"-"`
}

// Host is one network namespace with interfaces, kernel routes and sysctls.
type Host struct {
	Name string `toml:"name"`
	// Router marks a host whose NICs ulbd takes over: the kernel keeps no address on its
	// links, forwarding is off and IPv6 is disabled on its links.
	Router bool `toml:"router"`
	// Offloads, when set to false, turns GSO/GRO/TSO and checksum offloads off on the
	// host's interfaces (with ethtool). Absent means the kernel defaults.
	Offloads *bool `toml:"offloads"`
	// Sysctls are written under /proc/sys in the host's namespace, e.g.
	// "net.ipv4.ip_forward" = 1. A key containing "/" is taken as a path under /proc/sys.
	Sysctls map[string]any `toml:"sysctls"`
	Routes  []Route        `toml:"route"`
	// Loopback are addresses (with prefix length) put on the host's lo, e.g. a DSR
	// server's copy of the VIP: "198.51.100.100/32".
	Loopback []string `toml:"loopback"`
	// Setup are commands run in the host's namespace, in order, once its addresses and
	// routes are in place and before any process starts, with the bench file's directory
	// as working directory, e.g. [["nft", "-f", "dnat.nft"]]. A failing command fails Up.
	Setup [][]string `toml:"setup"`
}

// Route is a kernel route in a host's namespace.
type Route struct {
	To  string `toml:"to"`  // a prefix, or "default" (the family comes from Via)
	Via string `toml:"via"` // gateway address
	Dev string `toml:"dev"` // optional interface
}

// Link is a veth pair between two host interfaces, written "host:iface".
type Link struct {
	A        string   `toml:"a"`
	B        string   `toml:"b"`
	MTU      int      `toml:"mtu"`
	AAddress []string `toml:"a_address"`
	BAddress []string `toml:"b_address"`
}

// Segment is a Linux bridge in its own namespace (Name-segment) joining host interfaces
// on one L2 segment.
type Segment struct {
	Name    string   `toml:"name"`
	MTU     int      `toml:"mtu"`
	Members []Member `toml:"member"`
}

// Member is one host interface on a segment.
type Member struct {
	Port    string   `toml:"port"` // "host:iface"
	Address []string `toml:"address"`
}

// Process is a program started in a host's namespace: either a command (Run) or the
// built-in servers (Serve).
type Process struct {
	Name  string   `toml:"name"` // defaults to HOST-INDEX; names the log file
	Host  string   `toml:"host"`
	Run   []string `toml:"run"`
	Serve *Serve   `toml:"serve"`
	Env   []string `toml:"env"` // extra KEY=VALUE entries
	Ready Ready    `toml:"ready"`
}

// Serve lists the built-in servers' listen addresses (see bench/traffic).
type Serve struct {
	Name string   `toml:"name"` // answer; defaults to the host's name
	TCP  []string `toml:"tcp"`
	UDP  []string `toml:"udp"`
	HTTP []string `toml:"http"`
	Sink []string `toml:"sink"`
}

// MaxReadyDelay caps a fixed ready delay.
const MaxReadyDelay = 30 * time.Second

// DefaultReadyTimeout bounds the wait for a ready condition.
const DefaultReadyTimeout = 15 * time.Second

// Ready is the condition Up waits for after starting a process. At most one of Socket,
// TCP, File and Delay is set; none means "started". Serve processes wait for their
// listeners to be bound unless told otherwise.
type Ready struct {
	Socket  string        `toml:"socket"` // a unix socket path accepts connections
	TCP     string        `toml:"tcp"`    // addr:port accepts TCP connections from the host's namespace
	File    string        `toml:"file"`   // a file exists
	Delay   time.Duration `toml:"delay"`  // fixed wait, at most MaxReadyDelay
	Timeout time.Duration `toml:"timeout"`
}

// Check types.
const (
	CheckPing     = "ping"
	CheckTCP      = "tcp"
	CheckUDP      = "udp"
	CheckHTTP     = "http"
	CheckTransfer = "transfer"
	CheckConns    = "conns"
	CheckExec     = "exec"
	CheckFailover = "failover"
)

// Check is one scenario. Which fields apply depends on Type.
type Check struct {
	Name    string        `toml:"name"`
	Type    string        `toml:"type"`
	From    string        `toml:"from"` // host the check runs in
	Host    string        `toml:"host"` // alias of From
	To      string        `toml:"to"`   // ping: an address; others: addr:port
	Expect  string        `toml:"expect"`
	Timeout time.Duration `toml:"timeout"`

	Count        int      `toml:"count"`        // ping: echo requests; conns: connections
	Concurrency  int      `toml:"concurrency"`  // conns: parallel connections (default 8)
	ExpectName   string   `toml:"expect_name"`  // tcp, udp, http, transfer: answering server
	ExpectNames  []string `toml:"expect_names"` // conns: every answer is one of these
	ExpectStatus int      `toml:"expect_status"`
	ExpectPeer   string   `toml:"expect_peer"` // http: the address the server saw the client come from (a prefix or an address)
	Path         string   `toml:"path"`        // http (default "/")
	Bytes        Size     `toml:"bytes"`       // transfer
	Run          []string `toml:"run"`         // exec
	ExpectOutput string   `toml:"expect_output"`
	ExpectExit   int      `toml:"expect_exit"`

	// failover: a client in From starts a TCP connection to To (a built-in tcp server,
	// see Serve) every FailoverInterval for Duration; StopAfter into the loop, the bench
	// sends Signal to process Stop. With VRRP and Nodes, Stop must be the master of
	// instance VRRP before (asked with `ulbadm show-router` on each node's control socket,
	// its ready.socket) and another node must be master after. The check passes when
	// answers came before and after the signal, all from ExpectNames when set, none failed
	// once the first connection begun after the signal was answered, and no time without
	// an answer was longer than MaxGap (when set).
	Stop      string        `toml:"stop"`       // the process to signal
	Signal    string        `toml:"signal"`     // KILL (default) or TERM
	StopAfter time.Duration `toml:"stop_after"` // default DefaultStopAfter
	Duration  time.Duration `toml:"duration"`   // the client loop's length, default DefaultFailoverDuration
	MaxGap    time.Duration `toml:"max_gap"`    // 0: no bound
	VRRP      string        `toml:"vrrp"`       // the VRRP instance that fails over
	Nodes     []string      `toml:"nodes"`      // ulbd processes (with ready.socket) of the VRRP instance
}

// ExpectFailure reports whether the check passes when its probe fails.
func (c *Check) ExpectFailure() bool { return c.Expect == "failure" }

// Size is a byte count written as an integer or a string such as "64MiB" or "10MB".
type Size int64

// UnmarshalTOML implements toml.Unmarshaler.
func (s *Size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*s = Size(v)
		return nil
	case string:
		n, err := ParseSize(v)
		*s = Size(n)
		return err
	}
	return fmt.Errorf("size must be an integer or a string like \"64MiB\", not %T", v)
}

// ParseSize parses "123", "64KiB", "64MiB", "1GiB", "10kB", "10MB", "1GB" (case of the unit
// letters matters only for the i).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// Namespace returns the namespace name of a host or segment of the bench.
func (s *Spec) Namespace(name string) string { return s.Name + "-" + name }

// Namespaces returns every namespace of the bench: hosts first, then segments.
func (s *Spec) Namespaces() []string {
	var ns []string
	for _, h := range s.Hosts {
		ns = append(ns, s.Namespace(h.Name))
	}
	for _, g := range s.Segments {
		ns = append(ns, s.Namespace(g.Name))
	}
	return ns
}

// Host returns the host named name, or nil.
func (s *Spec) Host(name string) *Host {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i]
		}
	}
	return nil
}

// ErrInvalid is wrapped by every validation error of Load and Parse.
var ErrInvalid = errors.New("invalid bench file")

// SpecError lists every problem of a bench file, one "FILE:LINE: what" per line.
type SpecError struct {
	Problems []string
}

func (e *SpecError) Error() string { return strings.Join(e.Problems, "\n") }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *SpecError) Unwrap() error { return ErrInvalid }

// Load reads and validates a bench file.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s.File, s.Dir = abs, filepath.Dir(abs)
	return s, nil
}

// Parse decodes and validates a bench file's contents; file names it in errors and sets
// Spec.File/Dir (relative to the working directory).
func Parse(data []byte, file string) (*Spec, error) {
	if file == "" {
		file = "bench.toml"
	}
	var s Spec
	v, err := decodeFile(data, file, &s)
	if err != nil {
		return nil, err
	}
	s.File, s.Dir = file, filepath.Dir(file)
	v.spec(&s)
	if len(v.problems) > 0 {
		return nil, &SpecError{Problems: v.problems}
	}
	return &s, nil
}

// decodeFile decodes a TOML file of the bench package into out and returns a validator
// that already holds its unknown keys, with FILE:LINE; a syntax error is returned at once.
func decodeFile(data []byte, file string, out any) (*validator, error) {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(out)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &SpecError{Problems: []string{fmt.Sprintf("%s:%d: %s", file, pe.Position.Line, pe.Message)}}
		}
		return nil, &SpecError{Problems: []string{fmt.Sprintf("%s: %v", file, err)}}
	}
	v := &validator{file: file, lines: indexLines(data)}
	for _, k := range md.Undecoded() {
		v.at(v.keyLine(k[len(k)-1]), "unknown key %q", k.String())
	}
	return v, nil
}

// sourceLines records where array-of-table headers and keys appear in the file.
type sourceLines struct {
	headers map[string][]int // "host" -> line of each [[host]]
	text    []string
}

var headerRE = regexp.MustCompile(`^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]`)

func indexLines(data []byte) sourceLines {
	sl := sourceLines{headers: map[string][]int{}, text: strings.Split(string(data), "\n")}
	for i, l := range sl.text {
		if m := headerRE.FindStringSubmatch(l); m != nil {
			sl.headers[m[1]] = append(sl.headers[m[1]], i+1)
		}
	}
	return sl
}

type validator struct {
	file     string
	lines    sourceLines
	problems []string
}

func (v *validator) at(line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		v.problems = append(v.problems, fmt.Sprintf("%s:%d: %s", v.file, line, msg))
	} else {
		v.problems = append(v.problems, fmt.Sprintf("%s: %s", v.file, msg))
	}
}

// header returns the line of the i-th [[table]] header, or 0 when the entries were written
// as an inline array.
func (v *validator) header(table string, i int) int {
	if h := v.lines.headers[table]; i < len(h) {
		return h[i]
	}
	return 0
}

// keyLine returns the first line assigning key, or 0.
func (v *validator) keyLine(key string) int {
	re := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for i, l := range v.lines.text {
		if re.MatchString(l) {
			return i + 1
		}
	}
	return 0
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	ifnameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)
)

// maxNamespace keeps NAME-HOST within IFNAMSIZ-1 so it can also name devices.
const maxNamespace = 15

// ifaceRef is a parsed "host:iface".
type ifaceRef struct{ host, iface string }

func (v *validator) spec(s *Spec) {
	if !nameRE.MatchString(s.Name) {
		v.at(v.keyLine("name"), "name %q: want letters, digits, '-' or '_'", s.Name)
	}
	nsNames := map[string]bool{}
	checkNS := func(line int, what, n string) {
		if !nameRE.MatchString(n) {
			v.at(line, "%s name %q: want letters, digits, '-' or '_'", what, n)
			return
		}
		if nsNames[n] {
			v.at(line, "%s name %q is used twice (hosts and segments share names)", what, n)
		}
		nsNames[n] = true
		if ns := s.Namespace(n); len(ns) > maxNamespace {
			v.at(line, "namespace %q is longer than %d characters; shorten the bench or %s name", ns, maxNamespace, what)
		}
	}
	for i := range s.Hosts {
		checkNS(v.header("host", i), "host", s.Hosts[i].Name)
		for _, a := range s.Hosts[i].Loopback {
			if _, err := netip.ParsePrefix(a); err != nil {
				v.at(v.header("host", i), "host %q: loopback address %q: want an address with its prefix length", s.Hosts[i].Name, a)
			}
		}
		for j, cmd := range s.Hosts[i].Setup {
			if len(cmd) == 0 || strings.TrimSpace(cmd[0]) == "" {
				v.at(v.header("host", i), "host %q: setup command %d is empty (want [\"PROGRAM\", \"ARG\", ...])", s.Hosts[i].Name, j+1)
			}
		}
	}
	for i := range s.Segments {
		checkNS(v.header("segment", i), "segment", s.Segments[i].Name)
	}

	// Interfaces per host, to catch duplicates and check route devices.
	ifaces := map[string]map[string]bool{}
	useIface := func(line int, ref string, addrs []string) {
		r, ok := v.ifaceRef(line, s, ref)
		if !ok {
			return
		}
		if ifaces[r.host] == nil {
			ifaces[r.host] = map[string]bool{}
		}
		if ifaces[r.host][r.iface] {
			v.at(line, "interface %q is used twice", ref)
		}
		ifaces[r.host][r.iface] = true
		h := s.Host(r.host)
		if h.Router && len(addrs) > 0 {
			v.at(line, "%s: host %q is a router: the kernel keeps no address on its links (put addresses in the ulbd config)", ref, r.host)
		}
		for _, a := range addrs {
			if _, err := netip.ParsePrefix(a); err != nil {
				v.at(line, "%s: address %q: want ADDRESS/PREFIXLEN", ref, a)
			}
		}
	}
	for i, l := range s.Links {
		line := v.header("link", i)
		useIface(line, l.A, l.AAddress)
		useIface(line, l.B, l.BAddress)
		v.mtu(line, l.MTU)
	}
	for i, g := range s.Segments {
		line := v.header("segment", i)
		v.mtu(line, g.MTU)
		if len(g.Members) == 0 {
			v.at(line, "segment %q has no member", g.Name)
		}
		for _, m := range g.Members {
			useIface(line, m.Port, m.Address)
		}
	}
	for i, h := range s.Hosts {
		line := v.header("host", i)
		for k, val := range h.Sysctls {
			if _, err := sysctlPath(k); err != nil {
				v.at(line, "host %q: %v", h.Name, err)
			}
			if _, err := sysctlValue(val); err != nil {
				v.at(line, "host %q: sysctl %q: %v", h.Name, k, err)
			}
		}
		for _, r := range h.Routes {
			if err := checkRoute(r, ifaces[h.Name]); err != nil {
				v.at(line, "host %q: route to %q: %v", h.Name, r.To, err)
			}
		}
	}
	procNames := map[string]bool{}
	for i := range s.Processes {
		p := &s.Processes[i]
		line := v.header("process", i)
		if p.Name == "" {
			p.Name = fmt.Sprintf("%s-%d", p.Host, i)
		}
		if !nameRE.MatchString(p.Name) || procNames[p.Name] {
			v.at(line, "process name %q: want a unique name of letters, digits, '-' or '_'", p.Name)
		}
		procNames[p.Name] = true
		v.process(line, s, p)
	}
	for i := range s.Checks {
		v.check(v.header("check", i), s, &s.Checks[i])
	}
}

func (v *validator) ifaceRef(line int, s *Spec, ref string) (ifaceRef, bool) {
	host, iface, ok := strings.Cut(ref, ":")
	if !ok {
		v.at(line, "interface %q: want HOST:IFACE", ref)
		return ifaceRef{}, false
	}
	if s.Host(host) == nil {
		v.at(line, "interface %q: no host %q", ref, host)
		return ifaceRef{}, false
	}
	if !ifnameRE.MatchString(iface) || iface == "lo" {
		v.at(line, "interface %q: bad device name %q (1 to 15 characters, not lo)", ref, iface)
		return ifaceRef{}, false
	}
	return ifaceRef{host, iface}, true
}

func (v *validator) mtu(line, mtu int) {
	if mtu != 0 && (mtu < 68 || mtu > 65535) {
		v.at(line, "mtu %d out of range 68..65535", mtu)
	}
}

func checkRoute(r Route, ifaces map[string]bool) error {
	via, err := netip.ParseAddr(r.Via)
	if r.Via == "" && r.Dev == "" {
		return errors.New("want via or dev")
	}
	if r.Via != "" && err != nil {
		return fmt.Errorf("via %q is not an address", r.Via)
	}
	if r.Dev != "" && !ifaces[r.Dev] {
		return fmt.Errorf("dev %q is not an interface of the host", r.Dev)
	}
	if r.To == "default" {
		if r.Via == "" {
			return errors.New("a default route needs via (it gives the family)")
		}
		return nil
	}
	to, err := netip.ParsePrefix(r.To)
	if err != nil {
		return errors.New("want a prefix or \"default\"")
	}
	if r.Via != "" && to.Addr().Is4() != via.Is4() {
		return errors.New("to and via are of different families")
	}
	return nil
}

func (v *validator) process(line int, s *Spec, p *Process) {
	if s.Host(p.Host) == nil {
		v.at(line, "process %q: no host %q", p.Name, p.Host)
	}
	switch {
	case len(p.Run) > 0 && p.Serve != nil:
		v.at(line, "process %q: set run or serve, not both", p.Name)
	case len(p.Run) == 0 && p.Serve == nil:
		v.at(line, "process %q: needs run or serve", p.Name)
	case p.Serve != nil:
		sv := p.Serve
		if len(sv.TCP)+len(sv.UDP)+len(sv.HTTP)+len(sv.Sink) == 0 {
			v.at(line, "process %q: serve has no listener", p.Name)
		}
		for _, a := range concat(sv.TCP, sv.UDP, sv.HTTP, sv.Sink) {
			if _, _, err := net.SplitHostPort(a); err != nil {
				v.at(line, "process %q: listen address %q: want [HOST]:PORT", p.Name, a)
			}
		}
	}
	for _, e := range p.Env {
		if !strings.Contains(e, "=") {
			v.at(line, "process %q: env %q: want KEY=VALUE", p.Name, e)
		}
	}
	r := p.Ready
	n := 0
	for _, set := range []bool{r.Socket != "", r.TCP != "", r.File != "", r.Delay != 0} {
		if set {
			n++
		}
	}
	if n > 1 {
		v.at(line, "process %q: ready takes one of socket, tcp, file, delay", p.Name)
	}
	if r.TCP != "" {
		if _, _, err := net.SplitHostPort(r.TCP); err != nil {
			v.at(line, "process %q: ready tcp %q: want HOST:PORT", p.Name, r.TCP)
		}
	}
	if r.Delay < 0 || r.Delay > MaxReadyDelay {
		v.at(line, "process %q: ready delay %v out of range 0..%v", p.Name, r.Delay, MaxReadyDelay)
	}
	if r.Timeout < 0 {
		v.at(line, "process %q: negative ready timeout", p.Name)
	}
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func (v *validator) check(line int, s *Spec, c *Check) {
	if c.From == "" {
		c.From = c.Host
	} else if c.Host != "" && c.Host != c.From {
		v.at(line, "check: from %q and host %q differ", c.From, c.Host)
	}
	if c.Name == "" {
		c.Name = defaultCheckName(c)
	}
	where := fmt.Sprintf("check %q", c.Name)
	if s.Host(c.From) == nil {
		v.at(line, "%s: no host %q (from)", where, c.From)
	}
	switch c.Expect {
	case "", "success", "failure":
	default:
		v.at(line, "%s: expect %q: want success or failure", where, c.Expect)
	}
	if c.Timeout < 0 || c.Count < 0 || c.Concurrency < 0 || c.Bytes < 0 {
		v.at(line, "%s: negative timeout, count, concurrency or bytes", where)
	}
	if c.ExpectPeer != "" {
		_, perr := netip.ParsePrefix(c.ExpectPeer)
		_, aerr := netip.ParseAddr(c.ExpectPeer)
		switch {
		case c.Type != CheckHTTP:
			v.at(line, "%s: expect_peer is for http checks", where)
		case perr != nil && aerr != nil:
			v.at(line, "%s: expect_peer %q: want an address or a prefix", where, c.ExpectPeer)
		}
	}
	hostPort := func() {
		if _, _, err := net.SplitHostPort(c.To); err != nil {
			v.at(line, "%s: to %q: want ADDRESS:PORT", where, c.To)
		}
	}
	switch c.Type {
	case CheckPing:
		if _, err := netip.ParseAddr(c.To); err != nil {
			v.at(line, "%s: to %q: want an address", where, c.To)
		}
	case CheckTCP, CheckUDP:
		hostPort()
	case CheckHTTP:
		hostPort()
		if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
			v.at(line, "%s: expect_status %d", where, c.ExpectStatus)
		}
		if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
			v.at(line, "%s: path %q must start with /", where, c.Path)
		}
	case CheckTransfer:
		hostPort()
		if c.Bytes <= 0 {
			v.at(line, "%s: transfer needs bytes > 0", where)
		}
	case CheckConns:
		hostPort()
		if c.Count <= 0 {
			v.at(line, "%s: conns needs count > 0", where)
		}
	case CheckExec:
		if len(c.Run) == 0 {
			v.at(line, "%s: exec needs run", where)
		}
	case CheckFailover:
		hostPort()
		v.failover(line, where, s, c)
	default:
		v.at(line, "%s: type %q: want one of ping, tcp, udp, http, transfer, conns, exec, failover", where, c.Type)
	}
	if c.Type != CheckFailover && (c.Stop != "" || c.Signal != "" || c.StopAfter != 0 || c.Duration != 0 ||
		c.MaxGap != 0 || c.VRRP != "" || len(c.Nodes) > 0) {
		v.at(line, "%s: stop, signal, stop_after, duration, max_gap, vrrp and nodes are for failover checks", where)
	}
}

// Defaults and bounds of failover checks.
const (
	DefaultFailoverDuration = 10 * time.Second
	DefaultStopAfter        = 2 * time.Second
	MaxFailoverDuration     = 5 * time.Minute
)

// failover validates the fields of a failover check.
func (v *validator) failover(line int, where string, s *Spec, c *Check) {
	process := func(name string) *Process {
		for i := range s.Processes {
			if s.Processes[i].Name == name {
				return &s.Processes[i]
			}
		}
		return nil
	}
	if c.Stop == "" {
		v.at(line, "%s: failover needs stop (the process to signal)", where)
	} else if process(c.Stop) == nil {
		v.at(line, "%s: stop %q: no such process", where, c.Stop)
	}
	if _, ok := failoverSignals[c.Signal]; !ok {
		v.at(line, "%s: signal %q: want KILL or TERM", where, c.Signal)
	}
	d := failoverDuration(*c)
	if c.Duration < 0 || d > MaxFailoverDuration {
		v.at(line, "%s: duration %v out of range 0..%v", where, c.Duration, MaxFailoverDuration)
	}
	if c.StopAfter < 0 || failoverStopAfter(*c) >= d {
		v.at(line, "%s: stop_after %v: want 0 or more, and less than the duration %v", where, failoverStopAfter(*c), d)
	}
	if c.MaxGap < 0 {
		v.at(line, "%s: negative max_gap", where)
	}
	if c.Timeout != 0 && c.Timeout <= d {
		v.at(line, "%s: timeout %v must exceed the duration %v", where, c.Timeout, d)
	}
	if (c.VRRP == "") != (len(c.Nodes) == 0) {
		v.at(line, "%s: vrrp and nodes go together", where)
	}
	for _, n := range c.Nodes {
		switch p := process(n); {
		case p == nil:
			v.at(line, "%s: node %q: no such process", where, n)
		case p.Ready.Socket == "":
			v.at(line, "%s: node %q: its process has no ready.socket (its control socket)", where, n)
		}
	}
	if len(c.Nodes) > 0 && !slices.Contains(c.Nodes, c.Stop) {
		v.at(line, "%s: stop %q is not one of the nodes", where, c.Stop)
	}
	if len(c.Nodes) == 1 {
		v.at(line, "%s: nodes: want the stopped node and at least one to take over", where)
	}
}

// failoverSignals are the signals a failover check may send.
var failoverSignals = map[string]syscall.Signal{"": syscall.SIGKILL, "KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM}

func failoverDuration(c Check) time.Duration {
	if c.Duration == 0 {
		return DefaultFailoverDuration
	}
	return c.Duration
}

func failoverStopAfter(c Check) time.Duration {
	if c.StopAfter == 0 {
		return DefaultStopAfter
	}
	return c.StopAfter
}

func defaultCheckName(c *Check) string {
	if c.Type == CheckExec {
		return fmt.Sprintf("exec %s: %s", c.From, strings.Join(c.Run, " "))
	}
	return fmt.Sprintf("%s %s->%s", c.Type, c.From, c.To)
}

// sysctlPath maps "net.ipv4.ip_forward" (or "net/ipv4/ip_forward") to its /proc/sys path.
func sysctlPath(key string) (string, error) {
	k := key
	if !strings.Contains(k, "/") {
		k = strings.ReplaceAll(k, ".", "/")
	}
	k = strings.Trim(k, "/")
	if k == "" || strings.Contains(k, "..") || !strings.HasPrefix(k, "net/") {
		return "", fmt.Errorf("sysctl %q: only net.* keys of the namespace are allowed", key)
	}
	return "/proc/sys/" + k, nil
}

func sysctlValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	}
	return "", fmt.Errorf("value must be a string, integer or boolean, not %T", v)
}

// sortedKeys returns a map's keys in order, for deterministic setup.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Rename gives the bench another name (its namespaces follow), e.g. to run an example
// under a unique test prefix. It checks the same rules as Parse.
func (s *Spec) Rename(name string) error {
	v := &validator{file: s.File}
	old := s.Name
	s.Name = name
	v.spec(s)
	if len(v.problems) > 0 {
		s.Name = old
		return &SpecError{Problems: v.problems}
	}
	return nil
}
