package examples

import (
	"context"
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
}
