package netns

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"ulb/internal/testenv"
)

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestDo(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip")
	var b [3]byte
	rand.Read(b[:])
	name := "ulbt-ns" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if !Exists(name) {
		t.Fatalf("Exists(%s) = false", name)
	}

	runtime.LockOSThread()
	before := nsInode(t, "/proc/thread-self/ns/net")
	runtime.UnlockOSThread()
	want := nsInode(t, Path(name))

	var inside uint64
	var ifaces []net.Interface
	err := Do(name, func() error {
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
			return err
		}
		inside = st.Ino
		var err error
		ifaces, err = net.Interfaces()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != want || inside == before {
		t.Errorf("inside Do the thread is in namespace %d, want %d (outside %d)", inside, want, before)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" {
		t.Errorf("a fresh namespace should have only lo, got %v", ifaces)
	}
	runtime.LockOSThread()
	after := nsInode(t, "/proc/thread-self/ns/net")
	runtime.UnlockOSThread()
	if after != before {
		t.Errorf("caller's namespace changed from %d to %d", before, after)
	}

	// fn's error comes back; a missing namespace is an error.
	if err := Do(name, func() error { return os.ErrPermission }); err != os.ErrPermission {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := Do(name+"-missing", func() error { return nil }); err == nil {
		t.Error("Do on a missing namespace succeeded")
	}
}
