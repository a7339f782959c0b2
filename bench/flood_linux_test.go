package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/internal/testenv"
)

// TestSYNFloodHalfNAT runs a short, slow syn-flood workload (3 s at 2000 SYNs/s) through
// a real ulbd half-NAT target (examples/half-nat under the bench name ulbt-fld, the
// ulbt-flood of this work shortened to fit "ulbt-fld-client" in a namespace name, and its
// own control socket) and checks that the report has its figures: the flood sent, the
// keep-alive load was answered, probes were made, ulbd's RSS and table were read. It
// asserts no time or rate.
func TestSYNFloodHalfNAT(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip", "ss")
	const benchName = "ulbt-fld"
	dir := t.TempDir()
	socket := fmt.Sprintf("/run/ulb/ulbt-flood-%d.sock", os.Getpid())
	ex := filepath.Join(examplesDir(t), "half-nat")
	for _, f := range []string{"bench.toml", "lb1.toml"} {
		data, err := os.ReadFile(filepath.Join(ex, f))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "/run/ulb/halfnat-lb1.sock", socket)
		if text == string(data) {
			t.Fatalf("%s does not name ulbd's control socket", f)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := `name = "flood-quick"
repeat = 1

[[target]]
name = "ulbd"
bench = "bench.toml"

[[workload]]
type = "syn-flood"
from = "client"
to = "198.51.100.100:80"
source_prefix = "192.0.2.0/25"
rate = 2000
duration = "3s"
keepalive_to = "198.51.100.100:8080"
keepalive_conns = 2
probe_interval = "100ms"
recovery_window = "2s"
`
	file := filepath.Join(dir, "flood.toml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCompare(file)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	for _, prog := range []string{"ulbbench", "ulbd"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, prog), "./cmd/"+prog)
		build.Dir = filepath.Join(examplesDir(t), "..")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", prog, err, out)
		}
	}
	rep, table := runTestCompare(t, c, filepath.Join(dir, "bench.toml"), benchName, bin, dir, 0, 2*time.Minute, "")
	w := rep.Workloads[0]
	fig := func(name string) (float64, bool) {
		for _, m := range w.Metrics {
			if m.Name == name {
				v, ok := m.Median["ulbd"]
				return v, ok
			}
		}
		t.Errorf("no %q figure", name)
		return 0, false
	}
	for _, name := range []string{figFloodFrames, figProbeAttempts, figKeepAliveQuiet, figRSSBefore, figRSSPeak, figTablePeak} {
		if v, ok := fig(name); !ok || !(v > 0) {
			t.Errorf("%s: %v (present %v), want a figure above 0", name, v, ok)
		}
	}
	// The flood is 3 s at 2000 SYNs/s: most of its 6000 SYNs were sent, and ulbd's table
	// held flows of them (each SYN from a random address and port is a new flow).
	if v, _ := fig(figFloodFrames); v > 6100 {
		t.Errorf("%v SYNs sent at 2000/s for 3 s", v)
	}
	if v, _ := fig(figTablePeak); v < 100 {
		t.Errorf("ulbd's table held %v flows at most during the flood", v)
	}
	for _, name := range []string{figProbeSuccess, figKeepAliveFraction} {
		if v, ok := fig(name); ok && (v < 0 || (name == figProbeSuccess && v > 100)) {
			t.Errorf("%s = %v", name, v)
		}
	}
	if d := w.Router["ulbd"]; d == nil || d.Forwarded == 0 {
		t.Errorf("no router counters over the flood: %+v", d)
	}
	if !strings.Contains(table, "ulbbench loadgen flood from client: TCP SYNs to 198.51.100.100:80 from random addresses of 192.0.2.0/25") {
		t.Error("the table does not say how the flood was made")
	}
}
