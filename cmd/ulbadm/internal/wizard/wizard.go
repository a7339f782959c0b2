// Package wizard is ulbadm's console setup wizard: it asks the questions of
// Loadbalancer.org's lbwizard (single unit or HA pair, one-arm or two-arm, the NICs and
// the router's addresses, the default gateway, the first virtual server, its real
// servers and a health check), one answer a line, and writes a configuration that ulbd
// -check accepts.
//
// Each answer is checked when it is given, by the config package itself: the wizard
// renders the configuration answered so far and parses it with config.Parse, and a
// problem on a line that an answer wrote sends the question back. The whole file is
// parsed once more before it is written (to a temporary file renamed over FILE).
package wizard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"ulb/config"
)

// DefaultFile is where the wizard writes when -o is not given: the file ulbd and the
// systemd unit of examples/systemd read.
const DefaultFile = "/etc/ulb/ulbd.toml"

// MaxAttempts is how many answers a question takes from a non-terminal before the
// wizard gives up: a script with a bad answer fails instead of looping.
const MaxAttempts = 3

// maxServers bounds the real servers the wizard asks for (more are added with
// ulbadm add-server or in the file).
const maxServers = 64

// Options are the wizard's settings.
type Options struct {
	// File is the configuration file to write (DefaultFile when empty).
	File string
	// Force lets the wizard replace an existing File.
	Force bool
	// Attempts bounds the answers to one question (0: no bound, for a terminal, where
	// a person retypes).
	Attempts int
	// Echo writes each answer after its question, so that the output of a run fed
	// from a pipe reads like a session at a terminal.
	Echo bool
}

// Run asks the questions on out, reads the answers from in, one per line, and writes
// the configuration. It returns the file written; on an error it has written nothing.
func Run(ctx context.Context, in io.Reader, out io.Writer, opt Options) (string, error) {
	file := opt.File
	if file == "" {
		file = DefaultFile
	}
	if err := checkTarget(file, opt.Force); err != nil {
		return "", err
	}
	lines := newLineReader(in)
	defer lines.stop()
	w := &wizard{ctx: ctx, in: lines, out: out, opt: opt, file: file, noted: map[string]bool{}}
	fmt.Fprintf(out, "ulb setup: answer each question and press Enter; Enter alone takes the [default].\n"+
		"The configuration is written to %s.\n\n", file)
	if err := w.interview(); err != nil {
		return "", err
	}
	data := w.a.render().bytes()
	cfg, err := config.Parse(file, data)
	if err != nil {
		// Every answer was checked when given, so this is the wizard's own mistake.
		return "", fmt.Errorf("the configuration from these answers is refused (nothing written):\n%v", err)
	}
	w.notes(cfg.Warnings)
	if err := checkTarget(file, opt.Force); err != nil {
		return "", err
	}
	if err := writeAtomic(file, data); err != nil {
		return "", err
	}
	w.nextSteps(file)
	return file, nil
}

// checkTarget refuses to replace an existing file without -f.
func checkTarget(file string, force bool) error {
	fi, err := os.Stat(file)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory: give -o FILE", file)
	case err == nil && !force:
		return fmt.Errorf("%s exists: give -f to replace it, or -o another FILE", file)
	}
	return nil
}

// writeAtomic writes data to a temporary file beside file and renames it over file, so
// that file is either the old one or the whole new one.
func writeAtomic(file string, data []byte) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(file)+".wizard-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}

// wizard is one run.
type wizard struct {
	ctx  context.Context
	in   *lineReader
	out  io.Writer
	opt  Options
	file string
	a    answers
	// noted are the config warnings already printed.
	noted map[string]bool
}

// question is one thing the wizard asks. set applies an answer (the default when the
// line is empty) to w.a, or says why it cannot; undo takes it back when the rendered
// configuration refuses it.
type question struct {
	prompt string
	def    string // "" when an answer is needed
	set    func(string) error
	undo   func()
}

// ask asks q until an answer is accepted: by set, then by config.Parse of the
// configuration rendered with it.
func (w *wizard) ask(q question) error {
	for attempt := 1; ; attempt++ {
		if q.def != "" {
			fmt.Fprintf(w.out, "%s [%s]: ", q.prompt, q.def)
		} else {
			fmt.Fprintf(w.out, "%s: ", q.prompt)
		}
		line, err := w.in.next(w.ctx)
		if err != nil {
			fmt.Fprintln(w.out)
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("standard input ended before an answer to %q (nothing written)", q.prompt)
			}
			return err
		}
		if w.opt.Echo {
			fmt.Fprintln(w.out, line)
		}
		answer := line
		if answer == "" {
			answer = q.def
		}
		err = checkLine(line)
		if err == nil && answer == "" {
			err = errors.New("an answer is needed")
		}
		if err == nil {
			err = q.set(answer)
			if err == nil {
				err = w.validate()
			}
			if err != nil && q.undo != nil {
				q.undo()
			}
		}
		if err == nil {
			return nil
		}
		fmt.Fprintf(w.out, "  %v\n", err)
		if w.opt.Attempts > 0 && attempt >= w.opt.Attempts {
			return fmt.Errorf("%d bad answers to %q, giving up (nothing written)", attempt, q.prompt)
		}
	}
}

// checkLine refuses what no answer holds: control characters (a TOML string cannot
// hold them unescaped, and no name or address has one).
func checkLine(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("the answer is not UTF-8 text")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("the answer holds a control character (%q)", r)
		}
	}
	return nil
}

// lineNote strips the line references of the config package's messages: they point
// into the wizard's draft, not into a file the user has.
var lineNote = regexp.MustCompile(` \((first defined )?at line \d+\)| \(line \d+\)| at line \d+`)

// validate parses the configuration answered so far. Its problems on lines that
// answers wrote refuse the last answer; problems on section headers are keys not
// asked for yet (a [[rule]] without its servergroup), and wait for the final check.
func (w *wizard) validate() error {
	d := w.a.render()
	cfg, err := config.Parse("wizard", d.bytes())
	var ce *config.Error
	if errors.As(err, &ce) {
		var msgs []string
		for _, is := range ce.Issues {
			if !d.answered(is.Line) {
				continue
			}
			m := lineNote.ReplaceAllString(is.Msg, "")
			if !slices.Contains(msgs, m) {
				msgs = append(msgs, m)
			}
		}
		if len(msgs) > 1 {
			// [sync] vrrp names the instance the VIP's answer makes: when that
			// instance is refused, its reason is the one to tell.
			msgs = slices.DeleteFunc(msgs, func(m string) bool { return strings.HasPrefix(m, "sync: no [[vrrp]] named") })
		}
		if len(msgs) > 0 {
			return errors.New(strings.Join(msgs, "\n  "))
		}
		return nil
	}
	if err != nil {
		return err
	}
	w.notes(cfg.Warnings)
	return nil
}

// notes prints the config warnings not printed yet.
func (w *wizard) notes(list []config.Issue) {
	for _, is := range list {
		m := lineNote.ReplaceAllString(is.Msg, "")
		if !w.noted[m] {
			w.noted[m] = true
			fmt.Fprintf(w.out, "  note: %s\n", m)
		}
	}
}

// choice returns the option that s names (case-insensitive, a unique prefix will do).
func choice(s string, options ...string) (string, error) {
	s = strings.ToLower(s)
	var found []string
	for _, o := range options {
		if o == s {
			return o, nil
		}
		if strings.HasPrefix(o, s) {
			found = append(found, o)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return "", fmt.Errorf("%q: want %s", s, strings.Join(options, " or "))
}

// number parses a whole number.
func number(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return n, nil
}

// list splits an answer of several items separated by commas or spaces.
func list(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// address parses one IP address (no prefix length, no zone).
func address(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil && strings.Contains(s, "/"):
		return a, fmt.Errorf("%q: give the address without a prefix length", s)
	case err != nil:
		return a, fmt.Errorf("%q is not an IP address (like 198.51.100.20 or 2001:db8::20)", s)
	case a.Zone() != "":
		return a, fmt.Errorf("%q: give the address without a zone", s)
	}
	return a, nil
}

// interview asks the questions in lbwizard's order.
func (w *wizard) interview() error {
	a := &w.a
	qs := []func() error{
		// Single unit or clustered pair, and for a pair this node's part in it.
		func() error {
			return w.ask(question{prompt: "Single unit or HA pair (single, pair)", def: "single", set: func(s string) error {
				c, err := choice(s, "single", "pair")
				a.pair = c == "pair"
				return err
			}})
		},
		func() error {
			if !a.pair {
				return nil
			}
			return w.ask(question{prompt: "This node's role in the pair (master, backup)", def: "master", set: func(s string) error {
				c, err := choice(s, "master", "backup")
				a.backup = c == "backup"
				return err
			}})
		},
		func() error {
			def := "lb1"
			if a.backup {
				def = "lb2"
			}
			return w.ask(question{prompt: "This node's hostname", def: def,
				set: func(s string) error { a.hostname = s; return nil }, undo: func() { a.hostname = "" }})
		},
		func() error {
			if !a.pair {
				return nil
			}
			return w.ask(question{prompt: "The other node's address (connection sync goes to it)", set: func(s string) error {
				p, err := address(s)
				a.peer = p
				return err
			}, undo: func() { a.peer = netip.Addr{} }})
		},
		func() error {
			if !a.pair {
				return nil
			}
			return w.ask(question{prompt: "Virtual router ID, the same on both nodes (1-255)", def: "1", set: func(s string) error {
				n, err := number(s)
				if err == nil && (n < 1 || n > 255) {
					// RFC 9568 §5.2.3: the VRID is 1..255.
					err = fmt.Errorf("VRID %d out of range 1..255", n)
				}
				a.vrid = n
				return err
			}})
		},
		// One-arm or two-arm, and how the packets reach the servers.
		func() error {
			return w.ask(question{prompt: "One-arm (one network) or two-arm (outside and inside)", def: "two-arm",
				set: func(s string) error {
					c, err := choice(s, "one-arm", "two-arm")
					a.twoArm = c == "two-arm"
					return err
				}})
		},
		func() error {
			opts, def := []string{"dsr", "full-nat"}, "dsr"
			if a.twoArm {
				opts, def = []string{"half-nat", "full-nat"}, "half-nat"
			}
			return w.ask(question{prompt: "Topology (" + strings.Join(opts, ", ") + ")", def: def, set: func(s string) error {
				c, err := choice(s, opts...)
				a.topology = c
				return err
			}})
		},
		// The NICs ulbd takes over, and the router's own addresses on each.
		func() error {
			for i := range a.portNames() {
				prompt, def := "Network device that ulbd takes over", "eth0"
				if a.twoArm && i == 0 {
					prompt, def = "Outside network device (clients and the VIP)", "eth1"
				} else if a.twoArm {
					prompt, def = "Inside network device (the real servers)", "eth0"
				}
				if err := w.ask(question{prompt: prompt, def: def, set: func(s string) error {
					a.devices = append(a.devices, s)
					return nil
				}, undo: func() { a.devices = a.devices[:i] }}); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			for i := range a.portNames() {
				prompt := fmt.Sprintf("This node's address(es) on %s, %s (ADDRESS/PREFIX, comma-separated)", a.portNames()[i], a.devices[i])
				if err := w.ask(question{prompt: prompt, set: func(s string) error {
					a.addrs = append(a.addrs, list(s))
					return nil
				}, undo: func() { a.addrs = a.addrs[:i] }}); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			return w.ask(question{prompt: "Default gateway (an address per family, comma-separated, or none)", def: "none",
				set: func(s string) error {
					a.gateways, a.gatewaySet = nil, true
					if strings.EqualFold(s, "none") {
						return nil
					}
					seen := map[bool]bool{}
					for _, g := range list(s) {
						ga, err := address(g)
						if err != nil {
							return err
						}
						if seen[ga.Is4()] {
							return fmt.Errorf("two %s gateways: give one per family", familyOf(ga))
						}
						seen[ga.Is4()] = true
						a.gateways = append(a.gateways, ga)
					}
					return nil
				}, undo: func() { a.gateways, a.gatewaySet = nil, false }})
		},
		// The first virtual server.
		func() error {
			return w.ask(question{prompt: "First virtual server's name", def: "web",
				set: func(s string) error { a.name = s; return nil }, undo: func() { a.name = "" }})
		},
		func() error {
			return w.ask(question{prompt: "Its virtual IP address (VIP)", set: func(s string) error {
				v, err := address(s)
				a.vip = v
				return err
			}, undo: func() { a.vip = netip.Addr{} }})
		},
		func() error {
			return w.ask(question{prompt: "Its port (PORT or FIRST-LAST)", def: "80",
				set: func(s string) error { a.port = s; return nil }, undo: func() { a.port = "" }})
		},
		func() error {
			return w.ask(question{prompt: "Its protocol (tcp, udp)", def: "tcp", set: func(s string) error {
				c, err := choice(s, "tcp", "udp")
				a.protocol = c
				return err
			}, undo: func() { a.protocol = "" }})
		},
		func() error {
			if a.topology != string(config.FullNAT) {
				return nil
			}
			prompt := "Source addresses the servers see (full-nat; comma-separated, or FIRST-LAST)"
			if a.pair {
				prompt = "Source addresses the servers see (full-nat; comma-separated; they float with VRRP)"
			}
			return w.ask(question{prompt: prompt, set: func(s string) error {
				a.proxies = list(s)
				if a.pair {
					for _, p := range a.proxies {
						if strings.Contains(p, "-") {
							return fmt.Errorf("%q: in a pair each source address floats with VRRP: list the addresses, not a range", p)
						}
					}
				}
				return nil
			}, undo: func() { a.proxies = nil }})
		},
		func() error {
			if !a.pair || !a.twoArm || a.topology != string(config.HalfNAT) {
				return nil
			}
			return w.ask(question{prompt: "Floating gateway address for the real servers (their default gateway)", set: func(s string) error {
				g, err := address(s)
				if err != nil {
					return err
				}
				if g.Is4() != a.vip.Is4() {
					return fmt.Errorf("%s is %s but the VIP %s is %s: the servers' gateway is of the VIP's family", g, familyOf(g), a.vip, familyOf(a.vip))
				}
				if !a.onPort(1, g) {
					return fmt.Errorf("%s is not on the inside network (%s): the servers reach their gateway there", g, a.networks(1))
				}
				a.floatGW = g
				return nil
			}, undo: func() { a.floatGW = netip.Addr{} }})
		},
		// Its real servers.
		func() error {
			for i := 0; i < maxServers; i++ {
				prompt, def := fmt.Sprintf("Real server %d's address", i+1), ""
				if i > 0 {
					prompt, def = fmt.Sprintf("Real server %d's address (or done)", i+1), "done"
				}
				done := false
				if err := w.ask(question{prompt: prompt, def: def, set: func(s string) error {
					if i > 0 && strings.EqualFold(s, "done") {
						done = true
						return nil
					}
					addr, err := address(s)
					if err != nil {
						return err
					}
					a.servers = append(a.servers, server{addr: addr})
					return nil
				}, undo: func() { a.servers = a.servers[:i] }}); err != nil {
					return err
				}
				if done {
					return nil
				}
				srv := &a.servers[i]
				if err := w.ask(question{prompt: fmt.Sprintf("Real server %d's port", i+1), def: strconv.Itoa(a.firstPort()),
					set: func(s string) error {
						n, err := number(s)
						srv.port = n
						return err
					}, undo: func() { srv.port = 0 }}); err != nil {
					return err
				}
				if err := w.ask(question{prompt: fmt.Sprintf("Real server %d's weight", i+1), def: "1",
					set: func(s string) error {
						n, err := number(s)
						srv.weight, srv.weightSet = n, err == nil
						return err
					}, undo: func() { srv.weight, srv.weightSet = 0, false }}); err != nil {
					return err
				}
			}
			return nil
		},
		// A health check of the servers.
		func() error {
			return w.ask(question{prompt: "Health check (tcp, ping, none)", def: "tcp", set: func(s string) error {
				c, err := choice(s, "tcp", "ping", "none")
				a.check = c
				return err
			}, undo: func() { a.check = "" }})
		},
		func() error {
			if a.check != "tcp" {
				return nil
			}
			return w.ask(question{prompt: "Health check port", def: "the server's port", set: func(s string) error {
				if s == "the server's port" {
					return nil
				}
				n, err := number(s)
				a.checkPort = n
				return err
			}, undo: func() { a.checkPort = 0 }})
		},
	}
	for _, q := range qs {
		if err := q(); err != nil {
			return err
		}
	}
	return nil
}

// nextSteps says where the file went and what to do with it.
func (w *wizard) nextSteps(file string) {
	a := &w.a
	out := w.out
	fmt.Fprintf(out, "\nWrote %s.\n\nNext steps:\n", file)
	fmt.Fprintf(out, "  1. Check it (touches no NIC): ulbd -check -c %s\n", file)
	step := 2
	switch config.Topology(a.topology) {
	case config.HalfNAT:
		gw := a.floatGW
		if !gw.IsValid() {
			gw = a.ownAddr(1, a.vip.Is4())
		}
		fmt.Fprintf(out, "  %d. Give the real servers the default gateway %s: half-NAT keeps the client's address,\n"+
			"     so their replies must come back through the router.\n", step, gw)
		step++
	case config.DSR:
		fmt.Fprintf(out, "  %d. On each real server, put the VIP %s on lo and keep it from answering ARP or\n"+
			"     neighbour solicitations for it (Linux: arp_ignore=1, arp_announce=2): DSR servers\n"+
			"     answer the client directly.\n", step, a.vip)
		step++
	}
	if a.pair {
		other := "backup"
		if a.backup {
			other = "master"
		}
		fmt.Fprintf(out, "  %d. Run ulbadm wizard on the other node with the same answers but role %s, its own\n"+
			"     hostname and addresses, and this node's address (%s) as its peer.\n", step, other, a.ownAddr(len(a.addrs)-1, a.peer.Is4()))
		step++
	}
	fmt.Fprintf(out, "  %d. Install the systemd unit: install -m 644 examples/systemd/ulbd.service /etc/systemd/system/\n", step)
	if file != DefaultFile {
		fmt.Fprintf(out, "     (it reads %s: change its -c to %s, or move the file there)\n", DefaultFile, file)
	}
	fmt.Fprintf(out, "     then: systemctl daemon-reload && systemctl enable --now ulbd\n")
}

// familyOf names an address's family.
func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
