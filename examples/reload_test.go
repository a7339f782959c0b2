package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/bench"
	"ulb/router/control"
)

// TestReloadKeepsFlows: a transfer through a VIP runs while ulbd reloads its file 21
// times (ulbadm reload), the server group alternating between two servers and three: the
// transfer completes intact, show-conn keeps its flow on the same server after every
// reload, a file that fails validation is refused with FILE:LINE and changes nothing,
// and the server added by the reloads takes new flows only.
func TestReloadKeepsFlows(t *testing.T) {
	const socket = "/run/ulb/ulbt-rl.sock"
	dir := t.TempDir()
	for _, f := range []string{"bench.toml", "lb1.toml"} {
		data, err := os.ReadFile(filepath.Join("testdata/reload", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "lb1.toml")
	two, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	const serversLine = `server = ["203.0.113.201", "203.0.113.202"] # SERVERS`
	if !strings.Contains(string(two), serversLine) {
		t.Fatalf("lb1.toml lacks the line %q the test rewrites", serversLine)
	}
	three := []byte(strings.Replace(string(two), serversLine,
		`server = ["203.0.113.201", "203.0.113.202", "203.0.113.203"] # SERVERS`, 1))
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
		if err := os.WriteFile(conf, file, 0o644); err != nil {
			t.Fatal(err)
		}
		var info control.ReloadInfo
		ulbadm(t, socket, &info, "reload")
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
}
