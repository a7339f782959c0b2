// Package netns runs Go code inside a named network namespace (one created by
// `ip netns add`, bound under /run/netns) on a locked OS thread.
package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dir is where iproute2 binds named network namespaces.
const Dir = "/run/netns"

// Path returns the bind-mount path of a named namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

// Exists reports whether the named namespace exists.
func Exists(name string) bool {
	_, err := os.Stat(Path(name))
	return err == nil
}

// Do runs fn on a fresh OS thread switched into the named network namespace and waits for
// it. Sockets that fn creates stay in that namespace after Do returns, and files under
// /proc/sys/net that fn opens belong to it. fn must not start goroutines that expect to run
// in the namespace. If the thread cannot be switched back, the runtime discards it instead
// of reusing it.
func Do(name string, fn func() error) error {
	target, err := unix.Open(Path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns: open %s: %w", name, err)
	}
	defer unix.Close(target)
	done := make(chan error, 1)
	go func() {
		// The goroutine ends locked unless the thread is back in its own namespace, so a
		// thread in the wrong namespace is never handed to other goroutines.
		runtime.LockOSThread()
		orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("netns: open current namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("netns: setns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("netns: restore namespace after %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}
