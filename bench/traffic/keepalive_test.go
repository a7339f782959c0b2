package traffic

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestKeepAliveReusesConnections(t *testing.T) {
	addrs := startServers(t, "srv-k")
	res, err := KeepAlive(context.Background(), addrs["http"][0], 3, 300*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 10 || res.Failed != 0 || res.Seconds <= 0 {
		t.Errorf("KeepAlive = %+v", res)
	}
	// Keep-alive: three connections carry every request.
	if res.Dials != 3 {
		t.Errorf("%d dials for %d requests over 3 connections", res.Dials, res.Requests)
	}
}

func TestKeepAliveCountsFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	res, err := KeepAlive(context.Background(), addr, 2, 200*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Failed < 2 || res.FirstErr == "" {
		t.Errorf("KeepAlive to a closed port = %+v", res)
	}
	for _, bad := range []struct {
		conns int
		d     time.Duration
	}{{0, time.Second}, {MaxKeepAliveConns + 1, time.Second}, {1, 0}} {
		if _, err := KeepAlive(context.Background(), addr, bad.conns, bad.d, time.Second); err == nil {
			t.Errorf("KeepAlive(%d conns, %v) passed", bad.conns, bad.d)
		}
	}
}
