package examples

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ulb/bench"
	"ulb/router/control"
)

const synSocket = "/run/ulb/ulbt-syn.sock"

// TestSYNProxy: with syn_cookies = "always", real Linux clients reach real servers
// through half-NAT (IPv4, IPv6) and full-NAT rules whose every handshake ulbd answered
// with a SYN cookie: short connections, HTTP, and bulk transfers (window scaling, SACK
// and timestamps translated for the whole transfer); show-stats counts the cookies.
func TestSYNProxy(t *testing.T) {
	b := upBench(t, "testdata/synproxy/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, c := range []bench.Check{
		{Type: bench.CheckTCP, From: "client", To: "198.51.100.100:80", ExpectNames: []string{"s1", "s2"}},
		{Type: bench.CheckTCP, From: "client", To: "[2001:db8:1::100]:80", ExpectNames: []string{"s1", "s2"}},
		{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 200, ExpectNames: []string{"s1", "s2"}},
		{Type: bench.CheckHTTP, From: "client", To: "198.51.100.101:8080", ExpectNames: []string{"s1", "s2"}},
		{Type: bench.CheckTransfer, From: "client", To: "198.51.100.100:9000", Bytes: 32 << 20, Timeout: 2 * time.Minute},
		{Type: bench.CheckTransfer, From: "client", To: "198.51.100.101:9000", Bytes: 32 << 20, Timeout: 2 * time.Minute},
	} {
		r := b.Check(ctx, c)
		t.Log(r)
		if !r.Pass {
			t.Errorf("%s", r)
		}
	}
	var s control.StatsInfo
	ulbadm(t, synSocket, &s, "show-stats")
	sp := s.SYNProxy
	if sp == nil || sp.CookiesSent < 200 || sp.CookiesValid < 200 || sp.Established < 200 || sp.ServerRefused != 0 {
		t.Errorf("show-stats syn_proxy %+v, want every connection's handshake through a cookie", sp)
	}
	t.Logf("syn proxy: %+v", sp)

	// Servers without TCP timestamps behind a client that has them: the client was told
	// timestamps are on (its cookie carries its window scale and SACK), the servers'
	// segments reach it without any. RFC 7323 §3.2 lets a receiver drop those; Linux
	// clients take them, and the connections work.
	for _, s := range []string{"s1", "s2"} {
		if out, err := b.Exec(ctx, s, "sysctl", "-qw", "net.ipv4.tcp_timestamps=0"); err != nil {
			t.Fatalf("%s: sysctl: %v: %s", s, err, out)
		}
	}
	for _, c := range []bench.Check{
		{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 50, ExpectNames: []string{"s1", "s2"}},
		{Type: bench.CheckTransfer, From: "client", To: "198.51.100.100:9000", Bytes: 32 << 20, Timeout: 2 * time.Minute},
	} {
		r := b.Check(ctx, c)
		t.Log("servers without timestamps:", r)
		if !r.Pass {
			t.Errorf("servers without timestamps: %s", r)
		}
	}

	// [dataplane]: ulbd's two port loops run at nice -5, one on each CPU.
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", benchPID(t, b, "ulbd")))
	if err != nil {
		t.Fatal(err)
	}
	var cpus []string
	for _, d := range tasks {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if f[16] != "-5" { // nice, the 19th field of stat
			continue
		}
		status, _ := os.ReadFile(filepath.Join(d, "status"))
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				cpus = append(cpus, strings.TrimSpace(v))
			}
		}
	}
	slices.Sort(cpus)
	if !slices.Equal(cpus, []string{"0", "1"}) {
		t.Errorf("ulbd's threads at nice -5 run on CPUs %v, want one loop on 0 and one on 1", cpus)
	}
}

// TestSYNFloodWithCookies: while a SYN flood from spoofed sources hits the VIP, a bulk
// transfer through the same VIP completes intact and new connections succeed; the flood
// leaves no state (its SYNs got cookies, no ACK came back) and nothing was lost to it
// but counted drops.
func TestSYNFloodWithCookies(t *testing.T) {
	b := upBench(t, "testdata/synproxy/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var before control.StatsInfo
	ulbadm(t, synSocket, &before, "show-stats")
	duringFlood(t, ctx, b, 20000, 8*time.Second,
		bench.Check{Type: bench.CheckTransfer, From: "client", To: "198.51.100.100:9000", Bytes: 64 << 20, Timeout: 2 * time.Minute},
		bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 100, ExpectNames: []string{"s1", "s2"}})
	var s control.StatsInfo
	ulbadm(t, synSocket, &s, "show-stats")
	sp, ct := s.SYNProxy, s.Conntrack
	if sp == nil || ct == nil {
		t.Fatalf("show-stats without syn_proxy or conntrack: %+v", s)
	}
	sent := sp.CookiesSent - before.SYNProxy.CookiesSent
	t.Logf("flood: %d cookies sent, %d valid, %d flows now, %d inserted", sent, sp.CookiesValid, ct.Flows, ct.Inserted)
	if sent < 100_000 {
		t.Errorf("%d cookies sent during an 8 s flood of 20000 SYNs/s", sent)
	}
	// The flood made no flows: the table holds the test's own connections at most.
	if ct.Inserted-before.Conntrack.Inserted > 1000 {
		t.Errorf("%d flows entered during the flood", ct.Inserted-before.Conntrack.Inserted)
	}
	// [defence] new_flow_ring is on by default: the flood's SYNs came through the
	// outside port's ring for new flows, and whatever it shed is among the port's drops.
	for _, p := range s.Ports {
		if p.Name != "outside" {
			continue
		}
		var syns uint64
		for _, q := range before.Ports {
			if q.Name == p.Name {
				syns = p.RxNewFlow - q.RxNewFlow
			}
		}
		t.Logf("outside: %d SYNs through the new-flow ring, %d shed, %d rx drops", syns, p.RxShedNewFlow, p.RxDrops)
		if !p.NewFlowRing || syns < 100_000 || p.RxShedNewFlow > p.RxDrops {
			t.Errorf("outside port %+v: want the flood's SYNs read through the new-flow ring", p)
		}
	}
}

// TestSourceRateLimit: with [defence] source_rate a flood from one client prefix has its
// new flows dropped past the prefix's allowance (counted, lb-source-limit) and makes
// few flows, while a client of another prefix connects and transfers as usual.
func TestSourceRateLimit(t *testing.T) {
	const socket = "/run/ulb/ulbt-sl.sock"
	b := upBench(t, "testdata/srclimit/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var before control.StatsInfo
	ulbadm(t, socket, &before, "show-stats")
	// The client's own prefix gets 20 at once, then 50 a second: 15 connections fit.
	duringFlood(t, ctx, b, 5000, 6*time.Second,
		bench.Check{Type: bench.CheckTransfer, From: "client", To: "198.51.100.100:9000", Bytes: 32 << 20, Timeout: 2 * time.Minute},
		bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 15, ExpectNames: []string{"s1", "s2"}})
	var s control.StatsInfo
	ulbadm(t, socket, &s, "show-stats")
	limited := s.Drops["lb-source-limit"] - before.Drops["lb-source-limit"]
	flows := s.Conntrack.Inserted - before.Conntrack.Inserted
	t.Logf("flood: %d new flows dropped by the source limit, %d flows entered", limited, flows)
	// 30000 SYNs in 6 s from one /24: its allowance is 20 + 50/s, about 320.
	if limited < 25_000 {
		t.Errorf("%d of the flood's 30000 SYNs dropped by the source limit", limited)
	}
	if flows > 600 {
		t.Errorf("%d flows entered during the flood: the limit let the flood through", flows)
	}
}

// TestFullTableUnderFlood: without SYN cookies a flood fills a 2000-flow table with
// half-open flows; new connections still get in (the half-open ones are evicted first)
// and a transfer that runs through it all completes intact (established flows are never
// evicted).
func TestFullTableUnderFlood(t *testing.T) {
	const socket = "/run/ulb/ulbt-full.sock"
	b := upBench(t, "testdata/tablefull/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The table is full a second into the flood, when the checks start.
	duringFlood(t, ctx, b, 10000, 8*time.Second,
		bench.Check{Type: bench.CheckTransfer, From: "client", To: "198.51.100.100:9000", Bytes: 64 << 20, Timeout: 2 * time.Minute},
		bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 100, ExpectNames: []string{"s1", "s2"}})
	var s control.StatsInfo
	ulbadm(t, socket, &s, "show-stats")
	ct := s.Conntrack
	if ct == nil {
		t.Fatal("show-stats has no conntrack")
	}
	t.Logf("table: %d of %d flows, evicted %v, refused %d", ct.Flows, ct.Capacity, ct.Evicted, ct.Refused)
	if ct.Evicted["unassured"] < 10_000 || ct.Evicted["idle"] != 0 || ct.Refused != 0 || ct.Flows > ct.Capacity {
		t.Errorf("table %+v: want the flood's half-open flows evicted, nothing refused", ct)
	}
}

// duringFlood floods 198.51.100.100:80 from the client with rate SYNs/s from spoofed
// sources of 192.0.2.0/24 for d, runs checks a second into it, and waits for its end.
func duringFlood(t *testing.T, ctx context.Context, b *bench.Bench, rate int, d time.Duration, checks ...bench.Check) {
	t.Helper()
	flood := make(chan error, 1)
	go func() {
		out, err := b.Exec(ctx, "client", "ulbbench", "loadgen", "flood", "-to", "198.51.100.100:80",
			"-sources", "192.0.2.0/24", "-rate", fmt.Sprint(rate), "-for", d.String())
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		flood <- err
	}()
	time.Sleep(time.Second) // the flood is under way
	for _, c := range checks {
		r := b.Check(ctx, c)
		t.Log(r)
		if !r.Pass {
			t.Errorf("during the flood: %s", r)
		}
	}
	if err := <-flood; err != nil {
		t.Fatalf("flood: %v", err)
	}
}

// TestSYNCookiesAuto: with syn_cookies = "auto" quiet connections get no cookie; a flood
// past the threshold turns the cookies on within about a second, while a transfer and
// new connections go on; once it is over they turn off again.
func TestSYNCookiesAuto(t *testing.T) {
	const socket = "/run/ulb/ulbt-sa.sock"
	b := upBench(t, "testdata/synauto/bench.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if r := b.Check(ctx, bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 50,
		ExpectNames: []string{"s1", "s2"}}); !r.Pass {
		t.Fatalf("quiet: %s", r)
	}
	var s control.StatsInfo
	ulbadm(t, socket, &s, "show-stats")
	if sp := s.SYNProxy; sp == nil || sp.Mode != "auto" || sp.Active || sp.CookiesSent != 0 {
		t.Fatalf("quiet: syn_proxy %+v, want auto, off, no cookie", sp)
	}
	inserted := s.Conntrack.Inserted
	duringFlood(t, ctx, b, 20000, 6*time.Second,
		bench.Check{Type: bench.CheckTransfer, From: "client", To: "198.51.100.100:9000", Bytes: 32 << 20, Timeout: 2 * time.Minute},
		bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 100, ExpectNames: []string{"s1", "s2"}})
	ulbadm(t, socket, &s, "show-stats")
	sp := s.SYNProxy
	flows := s.Conntrack.Inserted - inserted
	t.Logf("flood: syn_proxy %+v, %d flows entered", sp, flows)
	if !sp.Active || sp.Activations != 1 || sp.CookiesSent < 60_000 {
		t.Errorf("after the flood: %+v, want on once, most of its 120000 SYNs answered with cookies", sp)
	}
	if flows > 60_000 {
		t.Errorf("%d flows entered: the cookies came on late", flows)
	}
	// 10 s below half the threshold: off.
	deadline := time.Now().Add(20 * time.Second)
	for sp.Active && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		ulbadm(t, socket, &s, "show-stats")
		sp = s.SYNProxy
	}
	if sp.Active {
		t.Errorf("cookies still on 20 s after the flood: %+v", sp)
	}
	if r := b.Check(ctx, bench.Check{Type: bench.CheckConns, From: "client", To: "198.51.100.100:80", Count: 20,
		ExpectNames: []string{"s1", "s2"}}); !r.Pass {
		t.Errorf("after the flood: %s", r)
	}
}
