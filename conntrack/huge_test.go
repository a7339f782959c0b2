package conntrack

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestHugePages checks that a big table's memory is advised as huge pages, where the kernel
// offers them (THP "always" or "madvise"); elsewhere it checks nothing and says so.
func TestHugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skip("transparent huge pages unavailable")
	}
	anonHuge := func() int {
		b, err := os.ReadFile("/proc/self/smaps_rollup")
		if err != nil {
			t.Skip("no /proc/self/smaps_rollup")
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "AnonHugePages:" {
				n, _ := strconv.Atoi(f[1])
				return n << 10
			}
		}
		return 0
	}
	before := anonHuge()
	tb := fill(t, 300_000)
	grown := anonHuge() - before
	// 300k flows: ~38 MB of slots and ~10 MB of index.
	if grown < 16<<20 {
		t.Errorf("huge pages grew by %d bytes with a 300k-flow table", grown)
	}
	t.Logf("huge pages: +%d MiB", grown>>20)
	_ = tb.Len()
}
