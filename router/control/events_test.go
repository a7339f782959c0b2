package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// manualClock returns a clock that a test moves by hand.
func manualClock(start time.Time) (now func() time.Time, advance func(time.Duration)) {
	var mu sync.Mutex
	t := start
	return func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return t
		}, func(d time.Duration) {
			mu.Lock()
			t = t.Add(d)
			mu.Unlock()
		}
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func vrrpEvent(name, from, to string) Event {
	return Event{Kind: EventVRRP, Name: name, From: from, To: to}
}

// next reads one event or fails after a second.
func next(t *testing.T, s *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func TestEventsPublishAndFilter(t *testing.T) {
	now, advance := manualClock(t0)
	e := NewEvents(now)
	all := e.Subscribe(WatchArgs{}, 0)
	vip := e.Subscribe(WatchArgs{Name: "vip"}, 0)
	other := e.Subscribe(WatchArgs{Kind: "server"}, 0)
	defer all.Close()
	defer vip.Close()
	defer other.Close()
	if n := e.Subscribers(); n != 3 {
		t.Fatalf("Subscribers() = %d, want 3", n)
	}

	got := e.Publish(vrrpEvent("vip", RouterInit, RouterBackup))
	if got.Seq != 1 || !got.Time.Equal(t0) {
		t.Errorf("Publish returned %+v, want Seq 1 at the clock's time", got)
	}
	advance(time.Second)
	e.Publish(vrrpEvent("gw", RouterInit, RouterBackup))
	stamped := t0.Add(time.Hour)
	ev := vrrpEvent("vip", RouterBackup, RouterMaster)
	ev.Time, ev.Reason = stamped, "master down"
	e.Publish(ev)

	for i, want := range []Event{
		{Seq: 1, Time: t0, Kind: EventVRRP, Name: "vip", From: RouterInit, To: RouterBackup},
		{Seq: 2, Time: t0.Add(time.Second), Kind: EventVRRP, Name: "gw", From: RouterInit, To: RouterBackup},
		{Seq: 3, Time: stamped, Kind: EventVRRP, Name: "vip", From: RouterBackup, To: RouterMaster, Reason: "master down"},
	} {
		if got := next(t, all); got != want {
			t.Errorf("all, event %d = %+v, want %+v", i, got, want)
		}
	}
	if got := next(t, vip); got.Seq != 1 {
		t.Errorf("vip's first event = %+v, want seq 1", got)
	}
	if got := next(t, vip); got.Seq != 3 {
		t.Errorf("vip's second event = %+v, want seq 3 (gw's left out)", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if ev, err := other.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a server-kind subscriber got %+v, %v; want nothing until its context ends", ev, err)
	}
}

func TestEventsSlowSubscriberIsToldOfTheLoss(t *testing.T) {
	now, _ := manualClock(t0)
	e := NewEvents(now)
	s := e.Subscribe(WatchArgs{}, 2)
	defer s.Close()
	for i := range 5 {
		e.Publish(vrrpEvent(fmt.Sprint("vr", i), RouterBackup, RouterMaster))
	}
	if ev := next(t, s); ev.Seq != 1 {
		t.Fatalf("first = %+v", ev)
	}
	// Room in the buffer now, but the loss comes first: events after a gap are dropped
	// until the subscriber has read the EventLost.
	e.Publish(vrrpEvent("vr5", RouterBackup, RouterMaster))
	if ev := next(t, s); ev.Seq != 2 {
		t.Fatalf("second = %+v", ev)
	}
	if ev := next(t, s); ev.Kind != EventLost || ev.Missed != 4 || ev.Seq != 0 || !ev.Time.Equal(t0) {
		t.Fatalf("third = %+v, want an EventLost of 4 events", ev)
	}
	e.Publish(vrrpEvent("vr6", RouterBackup, RouterMaster))
	if ev := next(t, s); ev.Seq != 7 || ev.Name != "vr6" {
		t.Fatalf("after the loss = %+v, want seq 7", ev)
	}
}

func TestEventsClose(t *testing.T) {
	e := NewEvents(nil)
	s := e.Subscribe(WatchArgs{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		done <- err
	}()
	s.Close()
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSubscriptionClosed) {
			t.Errorf("Next after Close: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Next did not return after Close")
	}
	if n := e.Subscribers(); n != 0 {
		t.Errorf("Subscribers() = %d after Close", n)
	}
	if ev := e.Publish(vrrpEvent("vip", RouterMaster, RouterBackup)); ev.Seq != 1 || ev.Time.IsZero() {
		t.Errorf("Publish with no subscriber = %+v", ev)
	}
}

// TestEventsConcurrent accounts for every event: each subscriber receives it or counts
// it in an EventLost.
func TestEventsConcurrent(t *testing.T) {
	e := NewEvents(nil)
	const publishers, each = 4, 500
	subs := []*Subscription{e.Subscribe(WatchArgs{}, 1), e.Subscribe(WatchArgs{}, 0)}
	var wg sync.WaitGroup
	totals := make([]uint64, len(subs))
	ctx, cancel := context.WithCancel(context.Background())
	for i, s := range subs {
		wg.Go(func() {
			var last uint64
			for {
				ev, err := s.Next(ctx)
				if err != nil {
					return
				}
				if ev.Kind == EventLost {
					totals[i] += ev.Missed
					continue
				}
				if ev.Seq <= last {
					t.Errorf("subscriber %d: seq %d after %d", i, ev.Seq, last)
				}
				last = ev.Seq
				totals[i]++
			}
		})
	}
	var pub sync.WaitGroup
	for p := range publishers {
		pub.Go(func() {
			for range each {
				e.Publish(vrrpEvent(fmt.Sprint("p", p), RouterBackup, RouterMaster))
			}
		})
	}
	pub.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		// Drained: nothing buffered, and no loss left to report.
		drained := true
		for _, s := range subs {
			e.mu.Lock()
			drained = drained && len(s.ch) == 0 && s.missed == 0
			e.mu.Unlock()
		}
		if drained {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	for i, n := range totals {
		if n != publishers*each {
			t.Errorf("subscriber %d accounted for %d events, want %d", i, n, publishers*each)
		}
	}
}

// watchServer serves show-port and watch on a fresh socket.
func watchServer(t *testing.T) (string, *Events, func() error) {
	e := NewEvents(nil)
	path, stop := startServer(t, func(s *Server) { s.HandleStream(VerbWatch, e.Watch) })
	return path, e, stop
}

// waitSubscribers waits until e has n subscribers.
func waitSubscribers(t *testing.T, e *Events, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", e.Subscribers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchStream(t *testing.T) {
	path, e, _ := watchServer(t)
	c := dial(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, WatchArgs{Kind: EventVRRP}, func(ev Event) error {
			got <- ev
			return nil
		})
	}()
	waitSubscribers(t, e, 1)

	// The request/response protocol goes on on other connections meanwhile.
	var ports []PortInfo
	if err := dial(t, path).Call(ctx, VerbShowPort, nil, &ports); err != nil || len(ports) != 2 {
		t.Fatalf("show-port during a watch: %v, %+v", err, ports)
	}

	e.Publish(Event{Kind: "server", Name: "web"}) // filtered out
	want := e.Publish(Event{Kind: EventVRRP, Name: "vip", From: RouterBackup, To: RouterMaster,
		Reason: "master down", Master: "198.51.100.10", Priority: 200})
	select {
	case ev := <-got:
		if !ev.Time.Equal(want.Time) {
			t.Errorf("time %v, want %v", ev.Time, want.Time)
		}
		ev.Time = want.Time
		if ev != want {
			t.Errorf("event %+v, want %+v", ev, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
	if err := c.Call(context.Background(), VerbShowPort, nil, nil); !errors.Is(err, ErrStreamed) {
		t.Errorf("Call after a stream: %v, want ErrStreamed", err)
	}
	c.Close()
	waitSubscribers(t, e, 0) // the server saw the client go and closed the subscription
}

func TestWatchCallbackErrorAndRefusal(t *testing.T) {
	path, e, _ := watchServer(t)
	stopErr := errors.New("enough")
	done := make(chan error, 1)
	go func() {
		c, err := Dial(path)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.Watch(context.Background(), WatchArgs{}, func(Event) error { return stopErr })
	}()
	waitSubscribers(t, e, 1)
	e.Publish(vrrpEvent("vip", RouterMaster, RouterFault))
	if err := <-done; err != stopErr {
		t.Errorf("Watch = %v, want the callback's error", err)
	}
	waitSubscribers(t, e, 0)

	// Bad arguments are refused like any request's.
	err := dial(t, path).Stream(context.Background(), VerbWatch, map[string]int{"kind": 1}, func(json.RawMessage) error { return nil })
	var re *RemoteError
	if !errors.As(err, &re) || re.Verb != VerbWatch {
		t.Errorf("watch with bad args: %v", err)
	}
	// A request verb cannot be streamed, nor a stream verb called.
	err = dial(t, path).Stream(context.Background(), "show-frobs", nil, func(json.RawMessage) error { return nil })
	if !errors.As(err, &re) || re.Message != `unknown verb "show-frobs"` {
		t.Errorf("stream of an unknown verb: %v", err)
	}
}

func TestWatchEndsWhenServerStops(t *testing.T) {
	before := runtime.NumGoroutine()
	path, e, stop := watchServer(t)
	c := dial(t, path)
	done := make(chan error, 1)
	go func() { done <- c.Watch(context.Background(), WatchArgs{}, func(Event) error { return nil }) }()
	waitSubscribers(t, e, 1)
	// A raw client that sends a second request on a stream's connection: the server
	// takes it as the end of the stream.
	raw, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte(`{"verb":"watch"}` + "\n"))
	waitSubscribers(t, e, 2)
	raw.Write([]byte(`{"verb":"show-port"}` + "\n"))
	waitSubscribers(t, e, 1)

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamEnded) {
			t.Errorf("Watch when the server stops: %v, want ErrStreamEnded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end with the server")
	}
	waitSubscribers(t, e, 0)
	c.Close()
	raw.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after shutdown, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestWatchStreamsEventsInOrder sends many events through the socket: all arrive, in
// order, or are accounted for by an EventLost.
func TestWatchStreamsEventsInOrder(t *testing.T) {
	path, e, _ := watchServer(t)
	c := dial(t, path)
	const n = 2000
	var count uint64
	var last uint64
	done := make(chan error, 1)
	stop := errors.New("all seen")
	go func() {
		done <- c.Watch(context.Background(), WatchArgs{}, func(ev Event) error {
			switch {
			case ev.Kind == EventLost:
				count += ev.Missed
			case ev.Seq <= last:
				return fmt.Errorf("seq %d after %d", ev.Seq, last)
			default:
				last = ev.Seq
				count++
			}
			if count == n {
				return stop
			}
			return nil
		})
	}()
	waitSubscribers(t, e, 1)
	for i := range n {
		e.Publish(vrrpEvent(fmt.Sprint("vr", i), RouterBackup, RouterMaster))
	}
	select {
	case err := <-done:
		if err != stop {
			t.Fatalf("Watch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d events accounted for", count, n)
	}
}
