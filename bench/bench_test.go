package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ulb/bench/netns"
	"ulb/internal/testenv"
)

// kernelBench: two clients on a bridge segment with the router's left side, the router
// (kernel forwarding, v4 and v6) linked to a server. %s is the bench name.
const kernelBench = `name = "%s"

[[host]]
name = "c"
[[host.route]]
to = "default"
via = "192.0.2.1"
[[host.route]]
to = "default"
via = "2001:db8:1::1"

[[host]]
name = "c2"
[[host.route]]
to = "198.51.100.0/24"
via = "192.0.2.1"

[[host]]
name = "r"
sysctls = { "net.ipv4.ip_forward" = 1, "net.ipv6.conf.all.forwarding" = 1 }

[[host]]
name = "s"
[[host.route]]
to = "default"
via = "198.51.100.1"
[[host.route]]
to = "default"
via = "2001:db8:2::1"

[[segment]]
name = "lan"
mtu = 1500
member = [
  { port = "c:eth0", address = ["192.0.2.2/24", "2001:db8:1::2/64"] },
  { port = "c2:eth0", address = ["192.0.2.3/24"] },
  { port = "r:left", address = ["192.0.2.1/24", "2001:db8:1::1/64"] },
]

[[link]]
a = "r:right"
b = "s:eth0"
mtu = 1500
a_address = ["198.51.100.1/24", "2001:db8:2::1/64"]
b_address = ["198.51.100.2/24", "2001:db8:2::2/64"]

[[process]]
name = "srv"
host = "s"
serve = { name = "srv-s", tcp = [":80"], udp = [":53"], http = [":8080"], sink = [":9000"] }

[[check]]
type = "ping"
from = "c"
to = "198.51.100.2"
[[check]]
type = "ping"
from = "c"
to = "2001:db8:2::2"
[[check]]
type = "tcp"
from = "c"
to = "198.51.100.2:80"
expect_name = "srv-s"
[[check]]
type = "tcp"
from = "c2"
to = "198.51.100.2:80"
expect_name = "srv-s"
[[check]]
type = "tcp"
from = "c"
to = "[2001:db8:2::2]:80"
expect_name = "srv-s"
[[check]]
type = "udp"
from = "c"
to = "198.51.100.2:53"
expect_name = "srv-s"
[[check]]
type = "udp"
from = "c"
to = "[2001:db8:2::2]:53"
expect_name = "srv-s"
[[check]]
type = "http"
from = "c"
to = "198.51.100.2:8080"
expect_name = "srv-s"
[[check]]
type = "transfer"
from = "c"
to = "198.51.100.2:9000"
bytes = "8MiB"
[[check]]
type = "transfer"
from = "c"
to = "[2001:db8:2::2]:9000"
bytes = 1000001
[[check]]
type = "conns"
from = "c"
to = "198.51.100.2:80"
count = 20
expect_names = ["srv-s"]
[[check]]
type = "exec"
from = "r"
run = ["cat", "/proc/sys/net/ipv4/ip_forward"]
expect_output = "1"
`

// uniqueName returns a bench name with the test prefix, short enough for NAME-HOST.
func uniqueName(t *testing.T) string {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "ulbt-" + hex.EncodeToString(b[:])
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func needBench(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip", "go")
}

// upForTest parses text as a bench file in a temporary directory, brings it up, and
// registers a cleanup that tears it down and checks that no namespace remains.
func upForTest(t *testing.T, ctx context.Context, text string) (*Bench, *Spec, Options) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "bench.toml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{StateRoot: t.TempDir(), Out: testWriter{t}}
	t.Cleanup(func() {
		if err := Down(spec, opts); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertGone(t, spec)
	})
	b, err := Up(ctx, spec, opts)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return b, spec, opts
}

func assertGone(t *testing.T, spec *Spec) {
	t.Helper()
	for _, ns := range spec.Namespaces() {
		if netns.Exists(ns) {
			t.Errorf("namespace %s still exists", ns)
		}
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Errorf("ip netns list: %v", err)
	}
	if strings.Contains(string(out), spec.Name+"-") {
		t.Errorf("ip netns list still shows the bench:\n%s", out)
	}
}

func TestKernelForwardingBench(t *testing.T) {
	needBench(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, spec, _ := upForTest(t, ctx, fmt.Sprintf(kernelBench, uniqueName(t)))

	rs := b.Run(ctx)
	if len(rs) != len(spec.Checks) {
		t.Fatalf("%d results for %d checks", len(rs), len(spec.Checks))
	}
	for _, r := range rs {
		if !r.Pass || !strings.HasPrefix(r.String(), "PASS ") {
			t.Errorf("%s", r)
		}
		// ulbbench's own echo client reports what it measured.
		if r.Type == CheckPing && !regexp.MustCompile(`^3/[3-5] replies, rtt min/avg/max [0-9.]+/[0-9.]+/[0-9.]+ ms$`).MatchString(r.Detail) {
			t.Errorf("ping detail %q, want replies and rtt", r.Detail)
		}
	}

	// Failing checks report FAIL with the reason.
	fails := []Check{
		{Name: "closed port", Type: CheckTCP, From: "c", To: "198.51.100.2:81", Timeout: 2 * time.Second},
		{Name: "wrong name", Type: CheckTCP, From: "c", To: "198.51.100.2:80", ExpectName: "other"},
		{Name: "udp closed", Type: CheckUDP, From: "c", To: "198.51.100.2:54", Timeout: time.Second},
		{Name: "http status", Type: CheckHTTP, From: "c", To: "198.51.100.2:8080", ExpectStatus: 404},
		{Name: "unrouted ping", Type: CheckPing, From: "c2", To: "2001:db8:2::2", Count: 1, Timeout: time.Second},
		{Name: "unanswered ping", Type: CheckPing, From: "c", To: "192.0.2.99", Count: 1, Timeout: time.Second},
		{Name: "exec exit", Type: CheckExec, From: "c", Run: []string{"false"}},
		{Name: "exec output", Type: CheckExec, From: "c", Run: []string{"echo", "hello"}, ExpectOutput: "bye"},
		{Name: "conns to nothing", Type: CheckConns, From: "c", To: "198.51.100.2:81", Count: 3, Timeout: 2 * time.Second},
		{Name: "unexpected success", Type: CheckTCP, From: "c", To: "198.51.100.2:80", Expect: "failure"},
		{Name: "no such host", Type: CheckTCP, From: "zz", To: "198.51.100.2:80"},
	}
	for _, c := range fails {
		r := b.Check(ctx, c)
		t.Log(r)
		if r.Pass || !strings.HasPrefix(r.String(), "FAIL "+c.Name+": ") || r.Detail == "" {
			t.Errorf("%s: got %q, want a FAIL line", c.Name, r)
		}
	}
	// An expected failure passes.
	if r := b.Check(ctx, Check{Name: "refused", Type: CheckTCP, From: "c", To: "198.51.100.2:81", Expect: "failure"}); !r.Pass {
		t.Errorf("expected failure: %s", r)
	}
	r := b.Check(ctx, Check{Name: "nobody", Type: CheckPing, From: "c", To: "2001:db8:1::99", Timeout: time.Second, Expect: "failure"})
	if want := `^PASS nobody \(failed as expected: ping 2001:db8:1::99 from c: 0/[45] replies\)$`; !regexp.MustCompile(want).MatchString(r.String()) {
		t.Errorf("expected ping failure: %q, want %s", r, want)
	}

	out, err := b.Exec(ctx, "s", "ip", "-o", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(string(out), "198.51.100.2/24") {
		t.Errorf("Exec: %v: %s", err, out)
	}
	if err := b.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	assertGone(t, spec)
	if err := b.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// routerBench has a router host (for ulbd) whose links must carry no kernel address and
// no IPv6, with forwarding off, and a server started under a stand-in name.
const routerBench = `name = "%s"
[[host]]
name = "c"
offloads = false
[[host]]
name = "r"
router = true
[[host]]
name = "s"
[[link]]
a = "c:eth0"
b = "r:left"
a_address = ["192.0.2.2/24", "2001:db8:1::2/64"]
[[link]]
a = "r:right"
b = "s:eth0"
b_address = ["198.51.100.2/24"]
[[process]]
name = "srv"
host = "s"
serve = { tcp = ["198.51.100.2:80"] }
[[process]]
name = "sleeper"
host = "r"
run = ["sleep", "600"]
ready = { delay = "100ms" }
`

func TestRouterHostAndCrashDown(t *testing.T) {
	needBench(t)
	testenv.NeedTool(t, "ethtool")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, spec, opts := upForTest(t, ctx, fmt.Sprintf(routerBench, uniqueName(t)))

	// offloads = false on c, defaults elsewhere.
	for host, want := range map[string]string{"c": "off", "s": "on"} {
		out, err := b.Exec(ctx, host, "ethtool", "-k", "eth0")
		if err != nil || !strings.Contains(string(out), "generic-segmentation-offload: "+want) {
			t.Errorf("%s:eth0 gso should be %s (%v):\n%s", host, want, err, out)
		}
	}

	for _, dev := range []string{"left", "right"} {
		out, err := b.Exec(ctx, "r", "cat", "/proc/sys/net/ipv6/conf/"+dev+"/disable_ipv6")
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Errorf("r:%s disable_ipv6 = %q, %v; want 1", dev, out, err)
		}
		out, err = b.Exec(ctx, "r", "ip", "-o", "addr", "show", "dev", dev)
		if err != nil || strings.Contains(string(out), "inet") {
			t.Errorf("r:%s has kernel addresses (%v): %s", dev, err, out)
		}
		out, err = b.Exec(ctx, "r", "ip", "-o", "link", "show", "dev", dev)
		if err != nil || !strings.Contains(string(out), "state UP") {
			t.Errorf("r:%s is not up (%v): %s", dev, err, out)
		}
	}
	for _, k := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding"} {
		out, err := b.Exec(ctx, "r", "cat", "/proc/sys/net/"+k)
		if err != nil || strings.TrimSpace(string(out)) != "0" {
			t.Errorf("r %s = %q, %v; want 0", k, out, err)
		}
	}
	// The server answers with the host name by default, on the address it was given.
	r := b.Check(ctx, Check{Type: CheckTCP, From: "s", To: "198.51.100.2:80", ExpectName: "s"})
	if !r.Pass {
		t.Errorf("%s", r)
	}

	// Down from the recorded state alone, as `ulbbench down` after a crash would.
	var pids []int
	b.mu.Lock()
	for _, p := range b.state.Processes {
		pids = append(pids, p.PID)
	}
	b.mu.Unlock()
	if len(pids) != 2 {
		t.Fatalf("recorded %d processes, want 2", len(pids))
	}
	if err := Down(spec, opts); err != nil {
		t.Fatalf("Down: %v", err)
	}
	assertGone(t, spec)
	for _, pid := range pids {
		// Our own children stay as zombies until b reaps them; a zombie has state Z.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:])); len(f) > 0 && f[0] != "Z" {
				t.Errorf("process %d still runs: %s", pid, st)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(b.StateDir(), stateFile)); err == nil {
		t.Error("state file survived Down")
	}
	if err := Down(spec, opts); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// A process that dies before it is ready makes Up fail and leave nothing behind.
func TestUpFailureCleansUp(t *testing.T) {
	needBench(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	text := fmt.Sprintf(`name = "%s"
[[host]]
name = "a"
[[host]]
name = "b"
[[link]]
a = "a:eth0"
b = "b:eth0"
[[process]]
host = "a"
run = ["sh", "-c", "echo dying; exit 3"]
ready = { file = "/nonexistent/ready" }
`, uniqueName(t))
	spec, err := Parse([]byte(text), filepath.Join(t.TempDir(), "bench.toml"))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{StateRoot: t.TempDir(), Out: testWriter{t}}
	t.Cleanup(func() { Down(spec, opts) })
	_, err = Up(ctx, spec, opts)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "dying") {
		t.Errorf("Up error = %v; want the early exit with the log tail", err)
	}
	assertGone(t, spec)
	// The bench can come up again after the failure (no stale state).
	_, err = Up(ctx, spec, opts)
	if err == nil || errors.Is(err, ErrAlreadyUp) {
		t.Errorf("second Up: %v; want the early exit again", err)
	}
	if _, err := os.Stat(filepath.Join(opts.StateRoot, spec.Name, stateFile)); err == nil {
		t.Error("state file survived the failed Up")
	}
}

// Setup commands run in the host's namespace once addresses and routes are in place, in
// the bench file's directory, before the processes; a failing one fails Up with its output
// and leaves nothing behind.
func TestHostSetup(t *testing.T) {
	needBench(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const text = `name = "%s"
[[host]]
name = "a"
setup = [["sh", "-c", "ip -o addr show dev eth0 > setup.out; ip route show >> setup.out; test ! -e proc.out"], %s]
[[host.route]]
to = "203.0.113.0/24"
via = "192.0.2.2"
[[host]]
name = "b"
[[link]]
a = "a:eth0"
b = "b:eth0"
a_address = ["192.0.2.1/24"]
b_address = ["192.0.2.2/24"]
[[process]]
host = "a"
run = ["sh", "-c", "touch proc.out; exec sleep 600"]
ready = { delay = "200ms" }
`
	b, _, _ := upForTest(t, ctx, fmt.Sprintf(text, uniqueName(t), `["true"]`))
	dir := b.Spec().Dir
	out, err := os.ReadFile(filepath.Join(dir, "setup.out"))
	if err != nil {
		t.Fatalf("the setup command left no output in the bench's directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "proc.out")); err != nil {
		t.Errorf("the process did not run in the bench's directory: %v", err)
	}
	for _, want := range []string{"inet 192.0.2.1/24", "203.0.113.0/24 via 192.0.2.2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("setup saw no %q (namespace, addresses and routes before setup):\n%s", want, out)
		}
	}

	// A failing command: Up fails with its output, no process started, nothing left.
	dir = t.TempDir()
	spec, err := Parse([]byte(fmt.Sprintf(text, uniqueName(t), `["sh", "-c", "echo boom-from-setup; exit 3"]`)), filepath.Join(dir, "bench.toml"))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{StateRoot: t.TempDir(), Out: testWriter{t}}
	t.Cleanup(func() { Down(spec, opts) })
	_, err = Up(ctx, spec, opts)
	if err == nil || !strings.Contains(err.Error(), "host a: setup") || !strings.Contains(err.Error(), "boom-from-setup") ||
		!strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Up error = %v; want the failing setup command with its output", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "proc.out")); err == nil {
		t.Error("a process started although setup failed")
	}
	assertGone(t, spec)
}
