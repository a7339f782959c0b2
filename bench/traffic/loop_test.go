package traffic

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestLoop(t *testing.T) {
	addrs := startServers(t, "srv-l")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := time.Now().UnixNano()
	res := Loop(ctx, addrs["tcp"][0], 500*time.Millisecond, 50*time.Millisecond, time.Second)
	if len(res.Attempts) != 10 {
		t.Errorf("%d attempts in 500ms at one per 50ms, want 10", len(res.Attempts))
	}
	last := before
	for i, a := range res.Attempts {
		if a.Name != "srv-l" || a.Err != "" || a.Start < last || a.End < a.Start {
			t.Errorf("attempt %d: %+v (previous start %d)", i, a, last)
		}
		last = a.Start
	}
	if span := time.Duration(last - res.Attempts[0].Start); span < 400*time.Millisecond || span > time.Second {
		t.Errorf("attempts started over %v, want about 450ms", span)
	}

	// A port nobody listens on: every attempt fails with its reason.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	res = Loop(ctx, closed, 200*time.Millisecond, 50*time.Millisecond, time.Second)
	if len(res.Attempts) != 4 {
		t.Errorf("%d attempts, want 4", len(res.Attempts))
	}
	for i, a := range res.Attempts {
		if a.Err == "" || a.Name != "" || a.End == 0 {
			t.Errorf("attempt %d to a closed port: %+v", i, a)
		}
	}

	// A context that ends stops the loop early.
	short, cancelShort := context.WithTimeout(ctx, 120*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	res = Loop(short, addrs["tcp"][0], 10*time.Second, 50*time.Millisecond, time.Second)
	if took := time.Since(start); took > time.Second || len(res.Attempts) > 4 {
		t.Errorf("Loop ran %v and made %d attempts after its context ended at 120ms", took, len(res.Attempts))
	}
}
