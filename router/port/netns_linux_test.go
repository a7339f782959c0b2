package port

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"ulb/internal/testenv"
)

// Network namespaces for the tests: created with ip(8), entered with setns(2) on a locked
// OS thread, removed in t.Cleanup.

var nsSeq atomic.Uint32

// newNetns creates a uniquely named network namespace with lo up and removes it when the
// test ends.
func newNetns(t testing.TB) string {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip")
	name := fmt.Sprintf("ulbt-port-%d-%d", os.Getpid(), nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// ip runs ip(8) with args and fails the test on error.
func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// nsExec runs a program inside a namespace and fails the test on error.
func nsExec(t testing.TB, ns string, args ...string) {
	t.Helper()
	full := append([]string{"netns", "exec", ns}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

// inNetns runs fn on an OS thread that has entered the namespace ns. Sockets and devices
// fn opens belong to ns and can be used from any goroutine afterwards. The thread goes
// back to its namespace afterwards, or is left locked so that it dies if it cannot.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// veth creates a veth pair between two namespaces, both ends up.
func veth(t testing.TB, nsA, ifA, nsB, ifB string) {
	t.Helper()
	ip(t, "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	ip(t, "-n", nsA, "link", "set", ifA, "up")
	ip(t, "-n", nsB, "link", "set", ifB, "up")
}

// linkMAC returns the MAC address of an interface in a namespace.
func linkMAC(t testing.TB, ns, dev string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// openAFPacket opens an AF_PACKET port inside ns and closes it when the test ends.
func openAFPacket(t testing.TB, ns, dev string, opts AFPacketOptions) *AFPacket {
	t.Helper()
	var p *AFPacket
	err := inNetns(ns, func() (err error) {
		p, err = OpenAFPacket(dev, opts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
