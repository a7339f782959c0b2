package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"ulb/balancer/health"
)

// Limits of the healthcheck keys.
const (
	MinHCInterval = 100 * time.Millisecond
	MaxHCInterval = time.Hour
	MinHCTimeout  = 10 * time.Millisecond
	MaxHCCount    = 100 // for count and rise
	// MaxUDPSend bounds a udp check's datagram and expected reply.
	MaxUDPSend = 1024
)

// HealthCheck is one named [[healthcheck]], with the defaults of the health engine
// filled in. The fields of a test other than Test are zero.
type HealthCheck struct {
	Name string
	// Test is one of health.Tests: ping, tcp, udp, http, agent or script.
	Test string
	// Interval between two checks of a server; Timeout (below Interval) bounds one.
	Interval, Timeout time.Duration
	// Count consecutive failures take a server down; Rise consecutive successes bring
	// it back.
	Count, Rise int
	// Port is the port tcp, udp, http and script checks test; 0 means each server's
	// own port.
	Port uint16

	// udp: the datagram sent, and what the reply must contain (any reply when empty).
	Send, Expect string

	// http: GET Path with Host as the Host header (the server's address when empty);
	// the status must be ExpectStatus and, when ExpectBody is not nil, the body must
	// match it.
	Path         string
	Host         string
	ExpectStatus int
	ExpectBody   *regexp.Regexp

	// agent: the agent's UDP port on each server.
	AgentPort uint16

	// script: the program (found and executable when the file was read; a relative
	// path is joined to the configuration file's directory) and its first arguments.
	Command []string
}

// Check returns the health engine's form of the check.
func (h *HealthCheck) Check() health.Check {
	c := health.Check{
		Name: h.Name, Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, Count: h.Count, Rise: h.Rise,
		Port: h.Port, Path: h.Path, Host: h.Host, ExpectStatus: h.ExpectStatus, ExpectBody: h.ExpectBody,
		AgentPort: h.AgentPort, Command: slices.Clone(h.Command),
	}
	if h.Test == health.TestUDP {
		c.Send = []byte(h.Send)
		if h.Expect != "" {
			c.Expect = []byte(h.Expect)
		}
	}
	return c
}

// HealthCheck returns the health check with the given name, or nil.
func (c *Config) HealthCheck(name string) *HealthCheck {
	for i := range c.HealthChecks {
		if c.HealthChecks[i].Name == name {
			return &c.HealthChecks[i]
		}
	}
	return nil
}

type rawHealthCheck struct {
	Name         value `toml:"name"`
	Test         value `toml:"test"`
	Interval     value `toml:"interval"`
	Timeout      value `toml:"timeout"`
	Count        value `toml:"count"`
	Rise         value `toml:"rise"`
	Port         value `toml:"port"`
	Send         value `toml:"send"`
	Expect       value `toml:"expect"`
	Path         value `toml:"path"`
	Host         value `toml:"host"`
	ExpectStatus value `toml:"expect_status"`
	ExpectBody   value `toml:"expect_body"`
	AgentPort    value `toml:"agent_port"`
	Command      value `toml:"command"`
}

// testKeys are the keys that belong to one test, besides name, test, interval, timeout,
// count and rise.
var testKeys = map[string][]string{
	health.TestPing:   nil,
	health.TestTCP:    {"port"},
	health.TestUDP:    {"port", "send", "expect"},
	health.TestHTTP:   {"port", "path", "host", "expect_status", "expect_body"},
	health.TestAgent:  {"agent_port"},
	health.TestScript: {"port", "command"},
}

// healthChecks decodes the [[healthcheck]] sections. names receives every name given,
// also of checks that were refused, so a group naming one is not told it is unknown.
func (d *decoder) healthChecks(p toml.Primitive, names map[string]bool) []HealthCheck {
	is := d.is
	var raws []rawHealthCheck
	if !d.tables(p, "healthcheck", &raws) {
		return nil
	}
	seen := make(map[string]string) // name → path of its name key
	out := make([]HealthCheck, 0, len(raws))
	for i, r := range raws {
		path := indexPath("healthcheck", i)
		h := HealthCheck{Interval: health.DefaultInterval, Timeout: health.DefaultTimeout,
			Count: health.DefaultCount, Rise: health.DefaultRise}
		label := fmt.Sprintf("healthcheck #%d", i+1)
		ok := true

		if s, good := is.str(r.Name, path+".name", label+": name"); good {
			kp := path + ".name"
			names[s] = true
			if err := checkName(s); err != nil {
				is.at(kp, "healthcheck name %q: %v", s, err)
				ok = false
			} else if first, dup := seen[s]; dup {
				is.at(kp, "duplicate healthcheck name %q (first defined at line %d)", s, is.ix.line(first))
				ok = false
			} else {
				seen[s] = kp
			}
			h.Name = s
			label = fmt.Sprintf("healthcheck %q", s)
		} else {
			if !r.Name.set {
				is.at(path, "[[healthcheck]] needs a name")
			}
			ok = false
		}

		if s, good := is.str(r.Test, path+".test", label+": test"); good {
			if slices.Contains(health.Tests, s) {
				h.Test = s
			} else {
				is.at(path+".test", "%s: unknown test %q: want one of %s", label, s, strings.Join(health.Tests, ", "))
				ok = false
			}
		} else {
			if !r.Test.set {
				is.at(path, "%s needs a test (%s)", label, strings.Join(health.Tests, ", "))
			}
			ok = false
		}

		ok = d.hcTiming(&r, &h, path, label) && ok
		if h.Test != "" {
			ok = d.hcTestKeys(&r, &h, path, label) && ok
		}
		if ok {
			out = append(out, h)
		}
	}
	return out
}

// hcTiming decodes interval, timeout, count and rise.
func (d *decoder) hcTiming(r *rawHealthCheck, h *HealthCheck, path, label string) bool {
	is := d.is
	ok := true
	if dur, good := is.duration(r.Interval, path+".interval", label+": interval", MinHCInterval, MaxHCInterval); good {
		h.Interval = dur
	} else if r.Interval.set {
		ok = false
	}
	timeoutOK := true
	if dur, good := is.duration(r.Timeout, path+".timeout", label+": timeout", MinHCTimeout, MaxHCInterval); good {
		h.Timeout = dur
	} else if r.Timeout.set {
		ok, timeoutOK = false, false
	}
	if ok && timeoutOK && h.Timeout >= h.Interval {
		if r.Timeout.set {
			is.at(path+".timeout", "%s: timeout %s must be shorter than interval %s", label, fmtDuration(h.Timeout), fmtDuration(h.Interval))
		} else {
			is.at(path+".interval", "%s: interval %s is not longer than the default timeout %s: set a shorter timeout",
				label, fmtDuration(h.Interval), fmtDuration(h.Timeout))
		}
		ok = false
	}
	for _, t := range []struct {
		key string
		v   value
		dst *int
	}{{"count", r.Count, &h.Count}, {"rise", r.Rise, &h.Rise}} {
		n, good := is.integer(t.v, path+"."+t.key, label+": "+t.key)
		switch {
		case good && (n < 1 || n > MaxHCCount):
			is.at(path+"."+t.key, "%s: %s %d out of range 1..%d", label, t.key, n, MaxHCCount)
			ok = false
		case good:
			*t.dst = int(n)
		case t.v.set:
			ok = false
		}
	}
	return ok
}

// hcTestKeys refuses the keys of other tests and decodes those of h.Test.
func (d *decoder) hcTestKeys(r *rawHealthCheck, h *HealthCheck, path, label string) bool {
	is := d.is
	ok := true
	keys := []struct {
		key string
		v   value
	}{
		{"port", r.Port}, {"send", r.Send}, {"expect", r.Expect}, {"path", r.Path}, {"host", r.Host},
		{"expect_status", r.ExpectStatus}, {"expect_body", r.ExpectBody}, {"agent_port", r.AgentPort},
		{"command", r.Command},
	}
	allowed := testKeys[h.Test]
	for _, k := range keys {
		if k.v.set && !slices.Contains(allowed, k.key) {
			is.at(path+"."+k.key, "%s: %s does not apply to test %s (%s)", label, k.key, h.Test, keysOf(h.Test))
			ok = false
		}
	}
	if !ok {
		return false
	}
	port := func(v value, key string) (uint16, bool) {
		n, good := is.integer(v, path+"."+key, label+": "+key)
		if good && (n < 1 || n > 65535) {
			is.at(path+"."+key, "%s: %s %d out of range 1..65535", label, key, n)
			return 0, false
		}
		return uint16(n), good || !v.set
	}
	if p, good := port(r.Port, "port"); good {
		h.Port = p
	} else {
		ok = false
	}

	switch h.Test {
	case health.TestUDP:
		if s, good := is.str(r.Send, path+".send", label+": send"); good {
			if s == "" || len(s) > MaxUDPSend {
				is.at(path+".send", "%s: send must be 1 to %d bytes", label, MaxUDPSend)
				ok = false
			}
			h.Send = s
		} else {
			if !r.Send.set {
				is.at(path, "%s: a udp check needs send, the datagram to send", label)
			}
			ok = false
		}
		if s, good := is.str(r.Expect, path+".expect", label+": expect"); good {
			if len(s) > MaxUDPSend {
				is.at(path+".expect", "%s: expect is longer than %d bytes", label, MaxUDPSend)
				ok = false
			}
			h.Expect = s
		} else if r.Expect.set {
			ok = false
		}
	case health.TestHTTP:
		h.Path, h.ExpectStatus = "/", health.DefaultExpectStatus
		if s, good := is.str(r.Path, path+".path", label+": path"); good {
			if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\r\n") {
				is.at(path+".path", "%s: path %q must start with / and hold no white space", label, s)
				ok = false
			}
			h.Path = s
		} else if r.Path.set {
			ok = false
		}
		if s, good := is.str(r.Host, path+".host", label+": host"); good {
			if s == "" || strings.ContainsAny(s, " \t\r\n/") {
				is.at(path+".host", "%s: host %q must be a host name or address (with an optional :port)", label, s)
				ok = false
			}
			h.Host = s
		} else if r.Host.set {
			ok = false
		}
		if n, good := is.integer(r.ExpectStatus, path+".expect_status", label+": expect_status"); good {
			if n < 100 || n > 599 {
				is.at(path+".expect_status", "%s: expect_status %d out of range 100..599", label, n)
				ok = false
			}
			h.ExpectStatus = int(n)
		} else if r.ExpectStatus.set {
			ok = false
		}
		if s, good := is.str(r.ExpectBody, path+".expect_body", label+": expect_body"); good {
			re, err := regexp.Compile(s)
			if err != nil {
				is.at(path+".expect_body", "%s: expect_body %q is not a Go regular expression: %v", label, s, err)
				ok = false
			}
			h.ExpectBody = re
		} else if r.ExpectBody.set {
			ok = false
		}
	case health.TestAgent:
		h.AgentPort = health.DefaultAgentPort
		if p, good := port(r.AgentPort, "agent_port"); good && r.AgentPort.set {
			h.AgentPort = p
		} else if !good {
			ok = false
		}
	case health.TestScript:
		ok = d.hcCommand(r.Command, h, path, label) && ok
	}
	return ok
}

// hcCommand decodes a script check's command: a list of strings whose first names an
// executable program: a path (relative to the configuration file's directory, and kept
// so joined) or a name found in PATH.
func (d *decoder) hcCommand(v value, h *HealthCheck, path, label string) bool {
	is := d.is
	kp := path + ".command"
	if !v.set {
		is.at(path, "%s: a script check needs command, like [\"/usr/local/bin/check\", \"arg\"]", label)
		return false
	}
	if _, isList := v.v.([]any); !isList {
		is.at(kp, "%s: command must be a list of strings like [\"/usr/local/bin/check\", \"arg\"], not %s", label, tomlType(v.v))
		return false
	}
	list, _ := is.strList(v, kp, label+": command")
	if len(list) != len(v.v.([]any)) {
		return false
	}
	if len(list) == 0 || list[0] == "" {
		is.at(kp, "%s: command is empty: give the program and its first arguments", label)
		return false
	}
	if strings.Contains(list[0], "/") && !filepath.IsAbs(list[0]) {
		list[0] = filepath.Join(filepath.Dir(is.file), list[0])
		// Join drops the "./" of a file in the working directory ("lb.toml" and
		// "./check.sh" give "check.sh"), which would make it a name looked up in PATH.
		if !strings.Contains(list[0], "/") {
			list[0] = "./" + list[0]
		}
	}
	if _, err := exec.LookPath(list[0]); err != nil {
		is.at(kp, "%s: command %q is not an executable program: %v", label, list[0], lookPathReason(err))
		return false
	}
	h.Command = list
	return true
}

// lookPathReason shortens exec.LookPath's error to its cause.
func lookPathReason(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err
}

// keysOf lists a test's own keys for messages.
func keysOf(test string) string {
	if len(testKeys[test]) == 0 {
		return "it has no keys of its own"
	}
	return "its keys: " + strings.Join(testKeys[test], ", ")
}

func checkList(checks []HealthCheck) string {
	var names []string
	for _, h := range checks {
		names = append(names, fmt.Sprintf("%q", h.Name))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
