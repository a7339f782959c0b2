// Package testenv lets tests that need root or an external tool skip with a reason when run
// by hand, and fail instead when ULB_REQUIRE_ROOT=1 (as .ci/run sets it).
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing prerequisites must fail the test instead of skipping it.
func Required() bool { return os.Getenv("ULB_REQUIRE_ROOT") == "1" }

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("ULB_REQUIRE_ROOT=1 but %s", reason)
	}
	t.Skip(reason)
}

// NeedRoot skips (or fails, see Required) the test unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "test needs root (network namespaces, AF_PACKET)")
	}
}

// NeedTool skips (or fails) the test unless every named program is on PATH.
func NeedTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, "test needs "+n+" on PATH")
		}
	}
}
