package examples

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulb/bench"
	"ulb/config"
	"ulb/router/control"
)

// TestReloadKeepsFlows: a transfer through a VIP runs while ulbd reloads its file 21
// times (ulbadm reload), the server group alternating between two servers and three: the
// transfer completes intact, show-conn keeps its flow on the same server after every
// reload, a file that fails validation is refused with FILE:LINE and changes nothing,
// and the server added by the reloads takes new flows only.
func TestReloadKeepsFlows(t *testing.T) {
	const socket = "/run/ulb/ulbt-rl.sock"
	dir := copyFiles(t, "testdata/reload", "bench.toml", "lb1.toml")
	conf := filepath.Join(dir, "lb1.toml")
	two, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	three := []byte(withThreeServers(t, string(two)))
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	transfer := make(chan bench.Result, 1)
	go func() {
		transfer <- b.Check(ctx, bench.Check{Type: bench.CheckTransfer, From: "client", To: "198.51.100.100:9000",
			Bytes: 4 << 30, Timeout: 3 * time.Minute})
	}()
	sinkFlow := func() (control.ConnInfo, bool) {
		var conns control.ConnList
		ulbadm(t, socket, &conns, "show-conn", "-r", "sink")
		for _, c := range conns.Conns {
			if c.State == "ESTABLISHED" {
				return c, true
			}
		}
		return control.ConnInfo{}, false
	}
	var flow control.ConnInfo
	for deadline := time.Now().Add(20 * time.Second); ; {
		f, ok := sinkFlow()
		if ok {
			flow = f
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the transfer's flow never showed in show-conn")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("transfer flow %s -> %s on %s", flow.Client, flow.VIP, flow.Server)

	for i := 0; i <= 20; i++ {
		file := three // the first reload adds the third server, the last keeps it
		if i%2 == 1 {
			file = two
		}
		info := reloadWith(t, socket, conf, file)
		if info.File != "lb1.toml" && info.File != conf || info.Rules != 2 || len(info.Restart) != 0 {
			t.Fatalf("reload %d: %+v", i, info)
		}
		f, ok := sinkFlow()
		if !ok || f.Client != flow.Client || f.Server != flow.Server {
			t.Fatalf("after reload %d: the transfer's flow is %+v (found %v), want %s on %s", i, f, ok, flow.Client, flow.Server)
		}
		select {
		case r := <-transfer:
			t.Fatalf("the transfer ended after %d reloads, before the last: %s", i+1, r)
		default:
		}
	}

	// A file that fails validation: refused with its line, nothing changes.
	bad := strings.Replace(string(three), `port = "9000"`, `port = "90000"`, 1)
	if err := os.WriteFile(conf, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", socket, "reload").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "lb1.toml:") || !strings.Contains(string(out), "90000") {
		t.Errorf("reload of a bad file: %v, output %q: want a refusal naming lb1.toml:LINE", err, out)
	}
	if f, ok := sinkFlow(); !ok || f.Server != flow.Server {
		t.Errorf("after the refused reload: the transfer's flow %+v (found %v)", f, ok)
	}

	r := <-transfer
	t.Log(r)
	if !r.Pass {
		t.Fatalf("the transfer through 21 reloads: %s", r)
	}

	// The last good reload had three servers: new flows reach the third one, which had
	// none before.
	var before []control.ServerInfo
	ulbadm(t, socket, &before, "show-server", "tcp")
	if c := b.Check(ctx, bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 30,
		ExpectNames: []string{"s1", "s2", "s3"}}); !c.Pass {
		t.Fatalf("after the reloads: %s", c)
	}
	var after []control.ServerInfo
	ulbadm(t, socket, &after, "show-server", "tcp")
	for _, s := range after {
		t.Logf("server %s: %d connections in all, health %s", s.Address, s.ConnsTotal, s.Health)
		if s.Address == "203.0.113.203" && s.ConnsTotal == 0 {
			t.Errorf("the server the reloads added took no new flow: %+v", s)
		}
	}
	if len(after) != 3 {
		t.Errorf("show-server tcp lists %d servers, want 3", len(after))
	}

	// [defence] reloads too: SYN cookies turned on answer the next connections.
	if err := os.WriteFile(conf, append(append([]byte(nil), three...), "\n[defence]\nsyn_cookies = \"always\"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	var info control.ReloadInfo
	ulbadm(t, socket, &info, "reload")
	if len(info.Restart) != 0 {
		t.Errorf("reload with [defence]: %+v, want nothing left for a restart", info)
	}
	if c := b.Check(ctx, bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 20,
		ExpectNames: []string{"s1", "s2", "s3"}}); !c.Pass {
		t.Fatalf("with the SYN cookies reloaded on: %s", c)
	}
	var st control.StatsInfo
	ulbadm(t, socket, &st, "show-stats")
	if sp := st.SYNProxy; sp == nil || sp.Mode != "always" || sp.CookiesValid < 20 {
		t.Errorf("after reloading syn_cookies = always: syn_proxy %+v, want the 20 connections through cookies", sp)
	}

	// [sync] reloads too: turned on (a peer on the client's link that nobody holds:
	// its messages go unanswered), changed, and off again.
	for _, tc := range []struct{ body, peer string }{
		{"\n[sync]\npeer = [\"198.51.100.3\"]\n", "198.51.100.3"},
		{"\n[sync]\npeer = [\"198.51.100.4\"]\nport = 8849\n", "198.51.100.4"},
		{"", ""},
	} {
		if err := os.WriteFile(conf, append(append([]byte(nil), three...), tc.body...), 0o644); err != nil {
			t.Fatal(err)
		}
		ulbadm(t, socket, &info, "reload")
		var st control.StatsInfo
		ulbadm(t, socket, &st, "show-stats")
		switch {
		case tc.peer == "" && st.Sync != nil:
			t.Errorf("[sync] removed by reload: show-stats still has %+v", st.Sync)
		case tc.peer != "" && (st.Sync == nil || len(st.Sync.Peers) != 1 || st.Sync.Peers[0] != tc.peer):
			t.Errorf("[sync] with peer %s reloaded: show-stats sync %+v", tc.peer, st.Sync)
		}
		if len(info.Restart) != 0 {
			t.Errorf("reload %q: %+v, want nothing left for a restart", tc.body, info)
		}
	}

	// export-config prints what is in effect: ulbd -check takes it, and it parses to
	// the configuration of the file last loaded.
	exported, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", socket, "export-config").Output()
	if err != nil {
		t.Fatalf("export-config: %v", err)
	}
	file := filepath.Join(dir, "exported.toml")
	if err := os.WriteFile(file, exported, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(binDir, "ulbd"), "-check", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("ulbd -check of the export: %v\n%s\n%s", err, out, exported)
	}
	want, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	got.File, got.Warnings, want.File, want.Warnings = "", nil, "", nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the export parses to\n%+v\nwant the file's\n%+v", got, want)
	}
}

// TestReloadVRRP: the master of a two-node VRRP pair reloads its file 20 times, an
// extra instance added and removed in turn: its unchanged instances never change state,
// here or at the backup (no advert gap long enough for a takeover), the added instance
// comes up (master, alone on its VRID) and the removed one goes away.
func TestReloadVRRP(t *testing.T) {
	dir := copyFiles(t, "testdata/vrrp", "bench.toml", "lb1.toml", "lb2.toml")
	conf := filepath.Join(dir, "lb1.toml")
	plain, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	extra := append(append([]byte(nil), plain...), []byte(`
[[vrrp]]
name = "v4b"
port = "lan"
vrid = 2
priority = 150
interval = "500ms"
accept = true
address = ["198.51.100.101"]
`)...)
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, inst := range []string{"v4", "v6"} {
		waitState(t, vrSocket1, inst, control.RouterMaster, 5*time.Second)
		waitState(t, vrSocket2, inst, control.RouterBackup, 5*time.Second)
	}
	routers := func(socket string) map[string]control.RouterInfo {
		var infos []control.RouterInfo
		ulbadm(t, socket, &infos, "show-router")
		out := map[string]control.RouterInfo{}
		for _, in := range infos {
			out[in.Name] = in
		}
		return out
	}
	before1, before2 := routers(vrSocket1), routers(vrSocket2)
	start := time.Now()
	for i := 0; i < 20; i++ {
		file := extra // the first reload adds v4b, the second removes it, ...
		if i%2 == 1 {
			file = plain
		}
		info := reloadWith(t, vrSocket1, conf, file)
		if len(info.Restart) != 0 {
			t.Fatalf("reload %d: %+v: nothing should need a restart", i, info)
		}
		r1 := routers(vrSocket1)
		if _, ok := r1["v4b"]; ok != (i%2 == 0) {
			t.Fatalf("reload %d: v4b listed %v", i, ok)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The last reload (i = 19) removed v4b; add it again and let it come up.
	if err := os.WriteFile(conf, extra, 0o644); err != nil {
		t.Fatal(err)
	}
	var info control.ReloadInfo
	ulbadm(t, vrSocket1, &info, "reload")
	waitState(t, vrSocket1, "v4b", control.RouterMaster, 5*time.Second)
	if r := b.Check(ctx, bench.Check{Type: bench.CheckPing, From: "client", To: "198.51.100.101", Count: 2}); !r.Pass {
		t.Errorf("the added instance's address: %s", r)
	}
	elapsed := time.Since(start)
	after1, after2 := routers(vrSocket1), routers(vrSocket2)
	for _, inst := range []string{"v4", "v6"} {
		a1, b1 := after1[inst], before1[inst]
		a2, b2 := after2[inst], before2[inst]
		t.Logf("%s: lb1 %s, %d transitions before, %d after; lb2 %s, %d adverts received in %v",
			inst, a1.State, b1.Counters.Transitions, a1.Counters.Transitions, a2.State,
			a2.Counters.AdvertsReceived-b2.Counters.AdvertsReceived, elapsed.Round(time.Millisecond))
		if a1.State != control.RouterMaster || a1.Counters.Transitions != b1.Counters.Transitions {
			t.Errorf("%s on the reloaded master: %s, transitions %d -> %d", inst, a1.State, b1.Counters.Transitions, a1.Counters.Transitions)
		}
		if a2.State != control.RouterBackup || a2.Counters.Transitions != b2.Counters.Transitions {
			t.Errorf("%s on the backup: %s, transitions %d -> %d", inst, a2.State, b2.Counters.Transitions, a2.Counters.Transitions)
		}
		// One advert every 500 ms: a gap would show as fewer.
		if got, want := a2.Counters.AdvertsReceived-b2.Counters.AdvertsReceived, uint64(elapsed/(500*time.Millisecond))*8/10; got < want {
			t.Errorf("%s: the backup received %d adverts in %v, want at least %d", inst, got, elapsed, want)
		}
	}
}

// TestImportConfig: ulbadm import-config applies a file like a reload and saves it as
// ulbd's run-time state beside its own file: after a restart ulbd starts from it (the
// imported third server is still there), a file that fails validation is refused with
// its NAME:LINE and saves nothing, and a reload of ulbd's own file makes the file win and
// removes the state.
func TestImportConfig(t *testing.T) {
	const socket = "/run/ulb/ulbt-rl.sock"
	dir := copyFiles(t, "testdata/reload", "bench.toml", "lb1.toml")
	conf := filepath.Join(dir, "lb1.toml")
	two, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	three := withThreeServers(t, string(two))
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	servers := func() int {
		var s []control.ServerInfo
		ulbadm(t, socket, &s, "show-server", "tcp")
		return len(s)
	}
	if n := servers(); n != 2 {
		t.Fatalf("at start: %d servers, want 2", n)
	}
	imported := filepath.Join(t.TempDir(), "new.toml")
	if err := os.WriteFile(imported, []byte(three), 0o644); err != nil {
		t.Fatal(err)
	}
	var info control.ReloadInfo
	ulbadm(t, socket, &info, "import-config", imported)
	if info.State != conf+".state" || servers() != 3 {
		t.Fatalf("import-config: %+v, %d servers; want 3 and the state saved beside %s", info, servers(), conf)
	}

	// A bad file: refused with its name and line, the state unchanged.
	bad := filepath.Join(filepath.Dir(imported), "bad.toml")
	if err := os.WriteFile(bad, []byte(strings.Replace(three, `port = "80"`, `port = "0"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	saved, _ := os.ReadFile(conf + ".state")
	out, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", socket, "import-config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad.toml:") {
		t.Errorf("import-config of a bad file: %v, %q: want a refusal naming bad.toml:LINE", err, out)
	}
	if now, _ := os.ReadFile(conf + ".state"); string(now) != string(saved) || servers() != 3 {
		t.Error("a refused import-config changed the state or the running configuration")
	}

	// A restart starts from the state.
	if err := syscall.Kill(benchPID(t, b, "ulbd"), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(socket); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ulbd did not stop")
		}
	}
	startIn(t, dir, b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", "lb1.toml")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ulbd did not start again")
		}
	}
	if n := servers(); n != 3 {
		t.Fatalf("after a restart: %d servers, want the 3 imported", n)
	}

	// The file wins on a reload: two servers, the state gone.
	ulbadm(t, socket, &info, "reload")
	if n := servers(); n != 2 {
		t.Errorf("after reloading the file: %d servers, want its 2", n)
	}
	if _, err := os.Stat(conf + ".state"); !os.IsNotExist(err) {
		t.Errorf("the state file is still there after a reload of the file: %v", err)
	}
}

// TestImportConfigCrash: ulbd is killed (SIGKILL) at random moments while import-config
// saves its state, twenty times: each time it starts again from a state that loads, the
// old one or the new one, never a part.
func TestImportConfigCrash(t *testing.T) {
	const socket = "/run/ulb/ulbt-rl.sock"
	dir := copyFiles(t, "testdata/reload", "bench.toml", "lb1.toml")
	conf := filepath.Join(dir, "lb1.toml")
	two, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	files := map[int]string{}
	for n := 2; n <= 3; n++ {
		text := string(two)
		if n == 3 {
			text = withThreeServers(t, text)
		}
		files[n] = filepath.Join(t.TempDir(), fmt.Sprintf("servers%d.toml", n))
		if err := os.WriteFile(files[n], []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	pid := benchPID(t, b, "ulbd")
	var last *daemon
	waitSocket := func(present bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, err := os.Stat(socket)
			if (err == nil) == present {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("control socket present %v: want %v", err == nil, present)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	came := map[int]int{} // servers ulbd came back with -> times
	for i := 0; i < 20; i++ {
		// import-config in a loop, and a SIGKILL in the middle of it.
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				exec.Command(filepath.Join(binDir, "ulbadm"), "-s", socket, "import-config", files[2+k%2]).Run()
			}
		}()
		time.Sleep(time.Duration(rng.IntN(40)+5) * time.Millisecond)
		syscall.Kill(pid, syscall.SIGKILL)
		if last != nil {
			<-last.done
		}
		close(stop)
		<-done
		os.Remove(socket) // a killed ulbd leaves it
		if data, err := os.ReadFile(conf + ".state"); err == nil {
			if _, err := config.Parse("state", data); err != nil {
				t.Fatalf("kill %d: the state file does not load: %v\n%s", i, err, data)
			}
		}
		last = startIn(t, dir, b.Namespace("lb1"), filepath.Join(binDir, "ulbd"), "-c", "lb1.toml")
		pid = last.cmd.Process.Pid
		waitSocket(true)
		var s []control.ServerInfo
		ulbadm(t, socket, &s, "show-server", "tcp")
		if len(s) != 2 && len(s) != 3 {
			t.Fatalf("kill %d: ulbd came back with %d servers", i, len(s))
		}
		came[len(s)]++
	}
	t.Logf("after 20 kills ulbd came back with 2 servers %d times, 3 servers %d times", came[2], came[3])
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".lb1.toml.state.*")); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

// TestServerGroupVerbs: ilbadm's verbs change a running ulbd, each validated, applied
// and saved as its run-time state: create-servergroup, add-server (new flows reach the
// server), remove-server (refused for a server that carries a flow unless -f),
// create-rule (ilbadm's options or a TOML fragment; the rule carries traffic at once),
// delete-rule, create-healthcheck, delete-healthcheck (refused for a check a group
// uses), delete-servergroup (refused for a group a rule uses), each refusing what
// is wrong with the file's own message and changing nothing then.
func TestServerGroupVerbs(t *testing.T) {
	const socket = "/run/ulb/ulbt-rl.sock"
	dir := copyFiles(t, "testdata/reload", "bench.toml", "lb1.toml")
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(binDir, "ulbadm"), append([]string{"-s", socket}, args...)...).CombinedOutput()
		return string(out), err
	}
	mustOK := func(args ...string) {
		t.Helper()
		if out, err := adm(args...); err != nil {
			t.Fatalf("ulbadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	mustFail := func(want string, args ...string) {
		t.Helper()
		out, err := adm(args...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("ulbadm %s: %v, %q: want a refusal saying %q", strings.Join(args, " "), err, out, want)
		}
	}
	servers := func() []string {
		var s []control.ServerInfo
		ulbadm(t, socket, &s, "show-server", "sink")
		var out []string
		for _, x := range s {
			out = append(out, x.Address)
		}
		return out
	}

	mustOK("create-servergroup", "-s", "server=203.0.113.203", "spare")
	if out, _ := adm("export-config"); !strings.Contains(out, `name = "spare"`) {
		t.Errorf("export-config after create-servergroup lacks the group:\n%s", out)
	}
	mustFail(`server group "spare" exists`, "create-servergroup", "spare")
	mustOK("add-server", "-e", "203.0.113.203", "web")
	if got := servers(); len(got) != 3 {
		t.Fatalf("after add-server: servers %v, want 3", got)
	}
	mustFail("is in group \"web\" already", "add-server", "-e", "203.0.113.203", "web")
	mustFail("no server group \"nope\"", "add-server", "-e", "203.0.113.9", "nope")
	mustFail("bad.address", "add-server", "-e", "bad.address", "web")
	if c := b.Check(ctx, bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 30,
		ExpectNames: []string{"s1", "s2", "s3"}}); !c.Pass {
		t.Errorf("after add-server: %s", c)
	}

	// A server with a flow: remove-server needs -f, and then its flow drains as the
	// rule's conn_drain says (ILB's conn-drain): sink is made again with one of 3 s.
	mustOK("delete-rule", "sink")
	mustOK("create-rule", "-e", "-i", "vip=198.51.100.100,port=9000,protocol=tcp", "-m", "lbalg=roundrobin,type=HALF-NAT",
		"-t", "conn-drain=3", "-o", "servergroup=web", "sink")
	transfer := make(chan bench.Result, 1)
	go func() {
		transfer <- b.Check(ctx, bench.Check{Type: bench.CheckTransfer, From: "client", To: "198.51.100.100:9000",
			Bytes: 8 << 30, Timeout: 2 * time.Minute})
	}()
	var busy string
	for deadline := time.Now().Add(20 * time.Second); busy == ""; time.Sleep(50 * time.Millisecond) {
		var conns control.ConnList
		ulbadm(t, socket, &conns, "show-conn", "-r", "sink")
		for _, c := range conns.Conns {
			if c.State == "ESTABLISHED" {
				busy, _, _ = strings.Cut(c.Server, ":")
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the transfer's flow never showed")
		}
	}
	mustFail("flows: drain it first", "remove-server", "-s", "server="+busy, "web")
	if got := servers(); len(got) != 3 {
		t.Errorf("a refused remove-server changed the servers: %v", got)
	}
	mustOK("remove-server", "-f", "-s", "server="+busy, "web")
	removedAt := time.Now()
	if got := servers(); len(got) != 2 || slices.Contains(got, busy) {
		t.Errorf("after remove-server -f %s: servers %v", busy, got)
	}
	sinkFlows := func() int {
		var conns control.ConnList
		ulbadm(t, socket, &conns, "show-conn", "-r", "sink")
		return len(conns.Conns)
	}
	if n := sinkFlows(); n != 1 {
		t.Errorf("right after remove-server -f: %d flows on sink, want the transfer's, draining", n)
	}
	for sinkFlows() != 0 {
		if time.Since(removedAt) > 15*time.Second {
			t.Fatal("the removed server's flow outlived its rule's conn_drain of 3 s by 12 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := time.Since(removedAt); d < 3*time.Second {
		t.Errorf("the removed server's flow went after %v, before its rule's conn_drain of 3 s", d)
	}
	cancel()
	<-transfer

	// create-rule with ilbadm's options, and as a TOML fragment; delete-rule.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mustOK("create-rule", "-e", "-i", "vip=198.51.100.100,port=8080,protocol=tcp", "-m", "lbalg=roundrobin,type=HALF-NAT",
		"-o", "servergroup=web", "http")
	if r := b.Check(ctx, bench.Check{Type: bench.CheckHTTP, From: "client", To: "198.51.100.100:8080"}); !r.Pass {
		t.Errorf("through the created rule: %s", r)
	}
	mustFail(`rule "http" exists`, "create-rule", "-e", "-i", "vip=198.51.100.100,port=8081", "-o", "servergroup=web", "http")
	mustFail(`unknown servergroup "nope"`, "create-rule", "-i", "vip=198.51.100.100,port=8082", "-o", "servergroup=nope", "bad")
	fragment := filepath.Join(t.TempDir(), "rule.toml")
	os.WriteFile(fragment, []byte("[[rule]]\nname = \"udp\"\nvip = \"198.51.100.100\"\nport = \"53\"\nprotocol = \"udp\"\nservergroup = \"web\"\n"), 0o644)
	mustOK("create-rule", "-c", fragment, "udp")
	var rules []control.RuleInfo
	ulbadm(t, socket, &rules, "show-rule")
	if len(rules) != 4 {
		t.Errorf("after two create-rule: %d rules, want 4", len(rules))
	}
	mustOK("delete-rule", "http")
	mustOK("delete-rule", "udp")
	mustFail(`no rule "http"`, "delete-rule", "http")
	if r := b.Check(ctx, bench.Check{Type: bench.CheckHTTP, From: "client", To: "198.51.100.100:8080", Expect: "failure",
		Timeout: 2 * time.Second}); !r.Pass {
		t.Errorf("after delete-rule: %s", r)
	}

	// create-healthcheck and delete-healthcheck.
	mustOK("create-healthcheck", "-h", "hc-test=TCP,hc-timeout=1,hc-interval=2,hc-count=2", "chk")
	if out, _ := adm("export-config"); !strings.Contains(out, `name = "chk"`) {
		t.Errorf("export-config lacks the created health check:\n%s", out)
	}
	mustFail(`healthcheck "chk" exists`, "create-healthcheck", "-h", "hc-test=PING", "chk")
	mustFail("must be shorter than interval", "create-healthcheck", "-h", "hc-test=TCP,hc-timeout=5,hc-interval=2", "slow")
	mustFail(`used by server group "web"`, "delete-healthcheck", "tcp80")
	mustOK("delete-healthcheck", "chk")
	mustFail(`no healthcheck "chk"`, "delete-healthcheck", "chk")

	mustFail(`used by rule "tcp"`, "delete-servergroup", "web")
	mustOK("delete-servergroup", "spare")
	if out, _ := adm("export-config"); strings.Contains(out, `name = "spare"`) {
		t.Error("export-config still lists the deleted group")
	}
	mustFail("missing operand", "delete-servergroup")
	mustFail("want server=SERVER", "remove-server", "-s", "203.0.113.201", "web")
	// Every change was saved for the next start.
	state, err := config.Load(filepath.Join(dir, "lb1.toml.state"))
	if err != nil {
		t.Fatal(err)
	}
	if g := state.ServerGroup("web"); g == nil || len(g.Servers) != 2 || state.ServerGroup("spare") != nil {
		t.Errorf("the saved state's groups: %+v", state.ServerGroups)
	}
}

// TestVRRPVerbs: vrrpadm's verbs on two running ulbd nodes: create-router brings an
// instance up on each (the higher priority master), modify-router lowers the master's
// priority so that the other preempts, delete-router on the new master hands back at
// once (its priority-0 advert), each saved as the node's run-time state.
func TestVRRPVerbs(t *testing.T) {
	dir := copyFiles(t, "testdata/vrrp", "bench.toml", "lb1.toml", "lb2.toml")
	upBench(t, filepath.Join(dir, "bench.toml"))
	waitState(t, vrSocket1, "v4", control.RouterMaster, 5*time.Second)
	adm := func(socket string, args ...string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "ulbadm"), append([]string{"-s", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ulbadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	create := func(socket, prio string) {
		adm(socket, "create-router", "-V", "2", "-l", "lan", "-A", "inet", "-a", "198.51.100.101", "-p", prio, "-i", "500",
			"-o", "preempt,accept", "v4b")
	}
	create(vrSocket1, "150")
	create(vrSocket2, "100")
	waitState(t, vrSocket1, "v4b", control.RouterMaster, 5*time.Second)
	waitState(t, vrSocket2, "v4b", control.RouterBackup, 5*time.Second)

	adm(vrSocket1, "modify-router", "-p", "50", "v4b")
	waitState(t, vrSocket2, "v4b", control.RouterMaster, 5*time.Second)
	waitState(t, vrSocket1, "v4b", control.RouterBackup, 5*time.Second)
	var infos []control.RouterInfo
	ulbadm(t, vrSocket1, &infos, "show-router", "v4b")
	if len(infos) != 1 || infos[0].Priority != 50 {
		t.Errorf("after modify-router -p 50: %+v", infos)
	}
	// disable-router: the master says goodbye, stays configured (show-router: disabled,
	// and so it is saved); enable-router: it starts again and, preempting, is master.
	adm(vrSocket2, "disable-router", "v4b")
	waitState(t, vrSocket1, "v4b", control.RouterMaster, 3*time.Second)
	ulbadm(t, vrSocket2, &infos, "show-router", "v4b")
	if len(infos) != 1 || infos[0].State != control.RouterDisabled || infos[0].VRID != 2 || infos[0].Priority != 100 {
		t.Errorf("show-router after disable-router: %+v", infos)
	}
	if c, err := config.Load(filepath.Join(dir, "lb2.toml.state")); err != nil || c.VRRPInstance("v4b") == nil || c.VRRPInstance("v4b").Enabled {
		t.Errorf("the saved state after disable-router: %v", err)
	}
	if out, err := exec.Command(filepath.Join(binDir, "ulbadm"), "-s", vrSocket2, "disable-router", "v4b").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "disabled already") {
		t.Errorf("disable-router twice: %v, %s", err, out)
	}
	adm(vrSocket2, "enable-router", "v4b")
	waitState(t, vrSocket2, "v4b", control.RouterMaster, 5*time.Second)
	waitState(t, vrSocket1, "v4b", control.RouterBackup, 5*time.Second)

	start := time.Now()
	adm(vrSocket2, "delete-router", "v4b")
	took := waitState(t, vrSocket1, "v4b", control.RouterMaster, 3*time.Second)
	t.Logf("takeover after delete-router on the master: %v (from the verb)", time.Since(start))
	if took > vrMasterDown-vrInterval {
		t.Errorf("takeover after delete-router took %v: no goodbye advert?", took)
	}
	ulbadm(t, vrSocket2, &infos, "show-router")
	for _, in := range infos {
		if in.Name == "v4b" {
			t.Error("show-router still lists the deleted instance")
		}
	}
	for _, f := range []string{"lb1.toml.state", "lb2.toml.state"} {
		if _, err := config.Load(filepath.Join(dir, f)); err != nil {
			t.Errorf("the run-time state %s: %v", f, err)
		}
	}
}

// copyFiles copies files of the directory src into a directory of the test's, and
// returns it: a bench whose ulbd configuration the test rewrites, and beside which ulbd
// saves its run-time state, must not be the checkout's.
func copyFiles(t *testing.T, src string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// withThreeServers adds 203.0.113.203 to the server line of testdata/reload/lb1.toml.
func withThreeServers(t *testing.T, conf string) string {
	t.Helper()
	const two = `server = ["203.0.113.201", "203.0.113.202"] # SERVERS`
	if !strings.Contains(conf, two) {
		t.Fatalf("the configuration lacks the line %q the test rewrites", two)
	}
	return strings.Replace(conf, two, `server = ["203.0.113.201", "203.0.113.202", "203.0.113.203"] # SERVERS`, 1)
}

// reloadWith writes data as ulbd's configuration file conf and has ulbd reload it.
func reloadWith(t *testing.T, socket, conf string, data []byte) control.ReloadInfo {
	t.Helper()
	if err := os.WriteFile(conf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var info control.ReloadInfo
	ulbadm(t, socket, &info, "reload")
	return info
}
