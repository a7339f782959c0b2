package hostcheck

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"ulb/internal/testenv"
)

var nsCounter atomic.Int32

// newNS creates a network namespace with a veth pair ulbt0/ulbt1, both down, and
// removes it when the test ends.
func newNS(t *testing.T) string {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip")
	ns := fmt.Sprintf("ulbt-hc%d-%d", os.Getpid(), nsCounter.Add(1))
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	run(t, "ip", "-n", ns, "link", "add", "ulbt0", "type", "veth", "peer", "name", "ulbt1")
	return ns
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNS runs fn on a locked OS thread that entered the namespace. The thread is not
// unlocked, so the runtime discards it when fn returns.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		done <- fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func setSysctl(path, v string) error {
	return os.WriteFile(filepath.Join("/proc/sys", path), []byte(v), 0o644)
}

// checkIn runs Check in the namespace.
func checkIn(t *testing.T, ns string, devices []string, opt Options) []Finding {
	t.Helper()
	var fs []Finding
	inNS(t, ns, func() error {
		var err error
		fs, err = Check(devices, opt)
		return err
	})
	return fs
}

func TestCheckNamespace(t *testing.T) {
	ns := newNS(t)
	run(t, "ip", "-n", ns, "link", "set", "ulbt0", "up")
	inNS(t, ns, func() error {
		for _, kv := range [][2]string{
			{"net/ipv4/ip_forward", "0"},
			{"net/ipv6/conf/all/forwarding", "0"},
			{"net/ipv6/conf/ulbt0/disable_ipv6", "1"},
			{"net/ipv6/conf/ulbt1/disable_ipv6", "0"},
		} {
			if err := setSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})

	// ulbt0 is clean and up; ulbt1 is down with IPv6 on; ulbt9 does not exist.
	got := checkIn(t, ns, []string{"ulbt0", "ulbt1", "ulbt9"}, Options{})
	want := []Finding{
		{Kind: DeviceOK, Severity: Info, Device: "ulbt0"},
		{Kind: IPv6Enabled, Severity: Warning, Device: "ulbt1"},
		{Kind: DeviceDown, Severity: Warning, Device: "ulbt1"},
		{Kind: DeviceMissing, Severity: Fatal, Device: "ulbt9"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("clean namespace:\n got %v\nwant %v", got, want)
	}
	if !AnyFatal(got) {
		t.Errorf("AnyFatal = false with a missing device")
	}

	// Kernel addresses on the owned devices, kernel forwarding on.
	run(t, "ip", "-n", ns, "addr", "add", "198.51.100.10/24", "dev", "ulbt0")
	run(t, "ip", "-n", ns, "addr", "add", "2001:db8:1::10/64", "dev", "ulbt1", "nodad")
	inNS(t, ns, func() error {
		if err := setSysctl("net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
		return setSysctl("net/ipv6/conf/all/forwarding", "1")
	})
	got = checkIn(t, ns, []string{"ulbt0", "ulbt1"}, Options{})
	want = []Finding{
		{Kind: IPv4Address, Severity: Fatal, Device: "ulbt0", Address: netip.MustParsePrefix("198.51.100.10/24")},
		{Kind: IPv6Enabled, Severity: Warning, Device: "ulbt1"},
		{Kind: DeviceDown, Severity: Warning, Device: "ulbt1"},
		{Kind: IPv6Address, Severity: Fatal, Device: "ulbt1", Address: netip.MustParsePrefix("2001:db8:1::10/64")},
		{Kind: IPv4Forwarding, Severity: Fatal},
		{Kind: IPv6Forwarding, Severity: Fatal},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dirty namespace:\n got %v\nwant %v", got, want)
	}
	if msg := got[0].String(); msg != "device ulbt0 carries kernel IPv4 address 198.51.100.10/24: the kernel would answer ARP for it and send RSTs for the VIPs; remove it with `ip addr flush dev ulbt0`" {
		t.Errorf("message = %q", msg)
	}

	// Fixing IPv6 turns it off and takes the IPv6 address away; forwarding off again.
	inNS(t, ns, func() error {
		if err := setSysctl("net/ipv4/ip_forward", "0"); err != nil {
			return err
		}
		return setSysctl("net/ipv6/conf/all/forwarding", "0")
	})
	run(t, "ip", "-n", ns, "link", "set", "ulbt1", "up")
	got = checkIn(t, ns, []string{"ulbt1"}, Options{FixIPv6: true})
	want = []Finding{{Kind: IPv6Enabled, Severity: Fixed, Device: "ulbt1"}, {Kind: DeviceOK, Severity: Info, Device: "ulbt1"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after fix:\n got %v\nwant %v", got, want)
	}
	inNS(t, ns, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/ulbt1/disable_ipv6")
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "1" {
			return fmt.Errorf("disable_ipv6 = %q after the fix, want 1", b)
		}
		return nil
	})
	got = checkIn(t, ns, []string{"ulbt1"}, Options{})
	want = []Finding{{Kind: DeviceOK, Severity: Info, Device: "ulbt1"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("second check after fix:\n got %v\nwant %v", got, want)
	}
}

func TestSetIPv6Namespace(t *testing.T) {
	ns := newNS(t)
	inNS(t, ns, func() error {
		read := func() string {
			b, _ := os.ReadFile("/proc/sys/net/ipv6/conf/ulbt0/disable_ipv6")
			return strings.TrimSpace(string(b))
		}
		if err := setSysctl("net/ipv6/conf/ulbt0/disable_ipv6", "0"); err != nil {
			return err
		}
		if err := SetIPv6("ulbt0", false); err != nil {
			return err
		}
		if v := read(); v != "1" {
			return fmt.Errorf("off: disable_ipv6 = %q, want 1", v)
		}
		if err := SetIPv6("ulbt0", true); err != nil {
			return err
		}
		if v := read(); v != "0" {
			return fmt.Errorf("on: disable_ipv6 = %q, want 0", v)
		}
		if err := SetIPv6("nosuchdev0", false); err == nil {
			return fmt.Errorf("SetIPv6(nosuchdev0) succeeded")
		}
		if err := SetIPv6("../all", false); err == nil {
			return fmt.Errorf("SetIPv6(../all) succeeded")
		}
		return nil
	})
}

// TestForwardingFakeProcSys runs without root on a fake sysctl tree.
func TestForwardingFakeProcSys(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []Finding
		err   bool
	}{
		{"off", map[string]string{"net/ipv4/ip_forward": "0\n", "net/ipv6/conf/all/forwarding": "0\n"}, nil, false},
		{"v4 on", map[string]string{"net/ipv4/ip_forward": "1\n", "net/ipv6/conf/all/forwarding": "0\n"},
			[]Finding{{Kind: IPv4Forwarding, Severity: Fatal}}, false},
		{"both on", map[string]string{"net/ipv4/ip_forward": "1\n", "net/ipv6/conf/all/forwarding": "1\n"},
			[]Finding{{Kind: IPv4Forwarding, Severity: Fatal}, {Kind: IPv6Forwarding, Severity: Fatal}}, false},
		{"no ipv6", map[string]string{"net/ipv4/ip_forward": "0\n"}, nil, false},
		{"unreadable", map[string]string{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for p, v := range tt.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, p), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Check(nil, Options{ProcSys: dir})
			if (err != nil) != tt.err {
				t.Fatalf("Check error = %v, want error %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}
