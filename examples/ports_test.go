package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ulb/bench"
	"ulb/router/control"
)

// TestReloadPorts: a transfer from the client to s1, through outside and inside, runs
// while ulbadm reload applies files that change the ports, and completes intact:
//   - an address added to inside (192.0.2.129/25, 2001:db8:3::1/64): s2, on the new
//     prefix, resolves and pings it, and the client reaches s2 behind it (v4 and v6);
//   - the address removed again: s2's ARP for it goes unanswered, the client no longer
//     reaches s2;
//   - a port added on the extra link, which the first file did not use: traffic routes
//     through it to far; then removed: show-port no longer lists it, far is unreachable;
//   - a port naming a device that does not exist: refused with a clear message, nothing
//     changed;
//   - the added port's batch changed: opened again on a new socket, still routing.
func TestReloadPorts(t *testing.T) {
	const socket = "/run/ulb/rport.sock"
	dir := copyFiles(t, "testdata/rport", "bench.toml", "lb1.toml")
	conf := filepath.Join(dir, "lb1.toml")
	base, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	const inside = `address = ["192.0.2.10/25", "2001:db8:2::10/64"] # INSIDE`
	if !strings.Contains(string(base), inside) {
		t.Fatalf("lb1.toml lacks the line %q the test rewrites", inside)
	}
	withAddr := []byte(strings.Replace(string(base), inside,
		`address = ["192.0.2.10/25", "2001:db8:2::10/64", "192.0.2.129/25", "2001:db8:3::1/64"] # INSIDE`, 1))
	withExtra := append(slices.Clone(base), `
[[port]]
name = "extra"
device = "extra"
address = ["203.0.113.1/24", "2001:db8:4::1/64"]
`...)
	withGhost := append(slices.Clone(withExtra), `
[[port]]
name = "ghost"
device = "nosuch0"
address = ["2001:db8:9::1/64"]
`...)

	b := upBench(t, filepath.Join(dir, "bench.toml"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	check := func(t *testing.T, c bench.Check) {
		t.Helper()
		r := b.Check(ctx, c)
		t.Log(r)
		if !r.Pass {
			t.Fatalf("%s", r)
		}
	}
	ports := func() []string {
		var ps []control.PortInfo
		ulbadm(t, socket, &ps, "show-port")
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		return names
	}
	// Before: s2 and far are beyond every prefix ulbd has.
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "192.0.2.140", Count: 1, Expect: "failure"})
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "203.0.113.2", Count: 1, Expect: "failure"})

	transfer := make(chan bench.Result, 1)
	go func() {
		transfer <- b.Check(ctx, bench.Check{Type: bench.CheckTransfer, From: "client", To: "192.0.2.20:9000",
			Bytes: 24 << 30, Timeout: 7 * time.Minute})
	}()
	running := func(step string) {
		t.Helper()
		select {
		case r := <-transfer:
			t.Fatalf("the transfer ended before %s, so it proves nothing: %s", step, r)
		default:
		}
	}
	time.Sleep(time.Second) // the transfer under way
	running("the first reload")

	// An address added to inside.
	info := reloadWith(t, socket, conf, withAddr)
	t.Logf("reload adding an address: %+v", info)
	if !slices.Equal(info.PortsChanged, []string{"inside"}) || len(info.PortsAdded)+len(info.PortsRemoved) != 0 || len(info.Restart) != 0 {
		t.Errorf("reload adding an address: %+v, want inside changed and nothing else", info)
	}
	check(t, bench.Check{Type: bench.CheckPing, From: "s2", To: "192.0.2.129", Count: 2})
	check(t, bench.Check{Type: bench.CheckPing, From: "s2", To: "2001:db8:3::1", Count: 2})
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "192.0.2.140", Count: 2})
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "2001:db8:3::2", Count: 2})
	check(t, bench.Check{Type: bench.CheckConns, From: "client", To: "192.0.2.140:80", Count: 10, ExpectNames: []string{"s2"}})
	neigh, err := b.Exec(ctx, "s2", "ip", "neigh", "show", "192.0.2.129", "dev", "eth0")
	if err != nil || !strings.Contains(string(neigh), "lladdr") {
		t.Errorf("s2's neighbour entry of the added address: %q, %v", neigh, err)
	}
	running("the address was removed")

	// The address removed: no ARP answer any more.
	info = reloadWith(t, socket, conf, base)
	if !slices.Equal(info.PortsChanged, []string{"inside"}) {
		t.Errorf("reload removing the address: %+v, want inside changed", info)
	}
	if out, err := b.Exec(ctx, "s2", "ip", "neigh", "flush", "dev", "eth0"); err != nil {
		t.Fatalf("ip neigh flush: %v %s", err, out)
	}
	check(t, bench.Check{Type: bench.CheckPing, From: "s2", To: "192.0.2.129", Count: 2, Expect: "failure"})
	neigh, err = b.Exec(ctx, "s2", "ip", "neigh", "show", "192.0.2.129", "dev", "eth0")
	if err != nil || strings.Contains(string(neigh), "lladdr") {
		t.Errorf("s2 still resolves the removed address: %q, %v", neigh, err)
	}
	t.Logf("s2's neighbour entry of the removed address: %q", strings.TrimSpace(string(neigh)))
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "192.0.2.140", Count: 1, Expect: "failure"})
	running("the port was added")

	// A port added on a link the first file did not use.
	info = reloadWith(t, socket, conf, withExtra)
	if !slices.Equal(info.PortsAdded, []string{"extra"}) || info.Ports != 3 {
		t.Errorf("reload adding a port: %+v, want extra added", info)
	}
	if got := ports(); !slices.Contains(got, "extra") {
		t.Errorf("show-port after adding extra: %v", got)
	}
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "203.0.113.2", Count: 2})
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "2001:db8:4::2", Count: 2})
	check(t, bench.Check{Type: bench.CheckConns, From: "client", To: "203.0.113.2:80", Count: 10, ExpectNames: []string{"far"}})
	running("the device that does not exist")

	// A device that does not exist: refused as a whole, nothing changes.
	if err := os.WriteFile(conf, withGhost, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", socket, "reload").CombinedOutput()
	t.Logf("reload naming nosuch0: %v: %s", err, out)
	if err == nil || !strings.Contains(string(out), "nosuch0 does not exist") || !strings.Contains(string(out), "nothing was changed") {
		t.Errorf("reload with a missing device: %v, %q: want a refusal naming the device", err, out)
	}
	if got := ports(); !slices.Equal(got, []string{"outside", "inside", "extra"}) {
		t.Errorf("show-port after the refused reload: %v", got)
	}
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "203.0.113.2", Count: 1})
	// A changed open option (batch): the port is opened again on a new socket.
	rebatched := []byte(strings.Replace(string(withExtra), `device = "extra"`, "device = \"extra\"\nbatch = 16", 1))
	info = reloadWith(t, socket, conf, rebatched)
	if !slices.Equal(info.PortsAdded, []string{"extra"}) || len(info.PortsRemoved) != 0 {
		t.Errorf("reload changing extra's batch: %+v, want extra opened again", info)
	}
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "203.0.113.2", Count: 2})
	check(t, bench.Check{Type: bench.CheckConns, From: "client", To: "203.0.113.2:80", Count: 10, ExpectNames: []string{"far"}})
	running("the port was removed")

	// The port removed.
	info = reloadWith(t, socket, conf, base)
	if !slices.Equal(info.PortsRemoved, []string{"extra"}) || info.Ports != 2 {
		t.Errorf("reload removing a port: %+v, want extra removed", info)
	}
	if got := ports(); !slices.Equal(got, []string{"outside", "inside"}) {
		t.Errorf("show-port after removing extra: %v", got)
	}
	var routes []control.RouteInfo
	ulbadm(t, socket, &routes, "show-route")
	for _, r := range routes {
		if r.Port == "extra" || strings.HasPrefix(r.Prefix, "203.0.113.") {
			t.Errorf("route %+v left after the port was removed", r)
		}
	}
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "203.0.113.2", Count: 1, Expect: "failure"})
	// Removed and added again: a new socket on the same device works.
	reloadWith(t, socket, conf, withExtra)
	check(t, bench.Check{Type: bench.CheckPing, From: "client", To: "203.0.113.2", Count: 2})
	reloadWith(t, socket, conf, base)
	running("the end of the reloads")

	r := <-transfer
	t.Log(r)
	if !r.Pass {
		t.Fatalf("the transfer through the port reloads: %s", r)
	}
	var st control.StatsInfo
	ulbadm(t, socket, &st, "show-stats")
	t.Logf("drops after the reloads: %v", st.Drops)
}
