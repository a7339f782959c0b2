// Package fakeulbd serves canned answers on a real control socket, for ulbadm's tests.
package fakeulbd

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"ulb/router/control"
)

// Ports, Routes and Neighs are the canned answers.
var (
	Ports = []control.PortInfo{
		{Name: "outside", Device: "eth1", Kind: "afpacket", MAC: "02:00:00:00:00:01", MTU: 1500,
			Addresses: []string{"198.51.100.10/24", "2001:db8:1::10/64"}, Up: true},
		{Name: "inside", Device: "eth2", Kind: "afpacket", MAC: "02:00:00:00:00:02", MTU: 9000,
			Addresses: []string{"203.0.113.10/24"}, Up: true},
	}
	Routes = []control.RouteInfo{
		{Prefix: "0.0.0.0/0", Via: "198.51.100.1", Port: "outside", Kind: "static"},
		{Prefix: "198.51.100.0/24", Port: "outside", Kind: "connected"},
		{Prefix: "203.0.113.10/32", Port: "inside", Kind: "local"},
	}
	Neighs = []control.NeighInfo{
		{Port: "outside", Address: "198.51.100.1", MAC: "02:00:00:00:01:01", State: "reachable", Age: 4},
		{Port: "inside", Address: "203.0.113.200", State: "incomplete", Age: 0},
	}
)

// Stats returns the n-th canned stats snapshot (n from 1): after n seconds of uptime,
// each port has received and sent 1000 packets of 1250 bytes per second and the router
// dropped 10 per second: 2000 pps and 20 Mbit/s each way in all, 10 drops/s.
func Stats(n int) control.StatsInfo {
	k := uint64(n)
	c := control.PortCounters{RxPackets: 1000 * k, RxBytes: 1_250_000 * k, TxPackets: 1000 * k, TxBytes: 1_250_000 * k}
	return control.StatsInfo{
		Uptime:    int64(n) * int64(time.Second),
		Ports:     []control.PortStats{{Name: "outside", PortCounters: c}, {Name: "inside", PortCounters: c}},
		Drops:     map[string]uint64{"no-route": 6 * k, "ttl-exceeded": 4 * k},
		Forwarded: 2000 * k,
		Local:     5 * k,
		ICMPSent:  4 * k,
	}
}

func filter[T any](args json.RawMessage, key func(T) string, all []T, what string) (any, error) {
	var a struct {
		Name string `json:"name"`
		Port string `json:"port"`
	}
	if len(args) > 0 {
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, fmt.Errorf("bad arguments: %w", err)
		}
	}
	want := a.Name + a.Port
	if want == "" {
		return all, nil
	}
	var out []T
	for _, v := range all {
		if key(v) == want {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s named %q", what, want)
	}
	return out, nil
}

// Start serves the canned answers on a socket in a fresh temporary directory until the
// test ends, and returns the socket's path.
func Start(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ulbd.sock")
	s := control.NewServer(path, nil)
	s.Handle(control.VerbShowPort, func(_ context.Context, args json.RawMessage) (any, error) {
		return filter(args, func(p control.PortInfo) string { return p.Name }, Ports, "port")
	})
	s.Handle(control.VerbShowRoute, func(context.Context, json.RawMessage) (any, error) { return Routes, nil })
	s.Handle(control.VerbShowNeigh, func(_ context.Context, args json.RawMessage) (any, error) {
		return filter(args, func(n control.NeighInfo) string { return n.Port }, Neighs, "port")
	})
	var mu sync.Mutex
	calls := 0
	s.Handle(control.VerbShowStats, func(context.Context, json.RawMessage) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return Stats(calls), nil
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}
