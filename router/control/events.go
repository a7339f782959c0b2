package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultEventBuffer is how many events a subscriber may fall behind before it loses
// some (and is told so with an EventLost).
const DefaultEventBuffer = 256

// ErrSubscriptionClosed is returned by Subscription.Next after Close.
var ErrSubscriptionClosed = errors.New("event subscription closed")

// Events is a small publish/subscribe hub: the daemon publishes state changes, each
// watch connection subscribes. Publish never blocks: a subscriber that reads too slowly
// loses events and then receives one EventLost saying how many. It is safe for
// concurrent use.
type Events struct {
	now func() time.Time

	mu   sync.Mutex
	seq  uint64
	subs map[*Subscription]struct{}
}

// NewEvents returns a hub whose events are stamped with now (time.Now when nil) unless
// they carry a time.
func NewEvents(now func() time.Time) *Events {
	if now == nil {
		now = time.Now
	}
	return &Events{now: now, subs: make(map[*Subscription]struct{})}
}

// Publish numbers ev (Seq), stamps it when its Time is zero, hands it to every
// subscriber whose filter it passes without waiting for any, and returns it.
func (e *Events) Publish(ev Event) Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	ev.Seq = e.seq
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	for s := range e.subs {
		if !s.filter.Match(ev) {
			continue
		}
		// Once a subscriber has lost events it loses every event until it has read
		// the EventLost, so that the loss is reported where it happened.
		if s.missed > 0 {
			s.missed++
			continue
		}
		select {
		case s.ch <- ev:
		default:
			s.missed++
		}
	}
	return ev
}

// Subscribers returns the number of open subscriptions.
func (e *Events) Subscribers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// Subscribe opens a subscription to the events that pass filter, holding up to buffer
// unread events (DefaultEventBuffer when buffer <= 0). Events published after Subscribe
// returns reach it. Close it when done.
func (e *Events) Subscribe(filter WatchArgs, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	s := &Subscription{e: e, filter: filter, ch: make(chan Event, buffer), done: make(chan struct{})}
	e.mu.Lock()
	e.subs[s] = struct{}{}
	e.mu.Unlock()
	return s
}

// Subscription receives events from an Events hub.
type Subscription struct {
	e      *Events
	filter WatchArgs
	ch     chan Event
	done   chan struct{}
	once   sync.Once
	missed uint64 // guarded by e.mu
}

// Next returns the next event, waiting until one comes, ctx ends (its error) or the
// subscription is closed (ErrSubscriptionClosed). After a loss it returns the events
// received before it, then one EventLost.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		select {
		case ev := <-s.ch:
			return ev, nil
		default:
		}
		if ev, lost := s.takeLoss(); lost {
			return ev, nil
		}
		select {
		case ev := <-s.ch:
			return ev, nil
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-s.done:
			return Event{}, ErrSubscriptionClosed
		}
	}
}

// takeLoss returns the EventLost due, when events were missed, and resets the count.
func (s *Subscription) takeLoss() (Event, bool) {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if s.missed == 0 {
		return Event{}, false
	}
	ev := Event{Time: s.e.now(), Kind: EventLost, Missed: s.missed}
	s.missed = 0
	return ev, true
}

// Close ends the subscription; a waiting Next returns ErrSubscriptionClosed. It may be
// called more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.e.mu.Lock()
		delete(s.e.subs, s)
		s.e.mu.Unlock()
		close(s.done)
	})
}

// Watch is the StreamFunc of VerbWatch: register it with
// server.HandleStream(VerbWatch, events.Watch). args are WatchArgs.
func (e *Events) Watch(_ context.Context, args json.RawMessage) (Stream, error) {
	var a WatchArgs
	if len(args) > 0 {
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, fmt.Errorf("bad arguments: %w", err)
		}
	}
	return eventStream{e.Subscribe(a, 0)}, nil
}

// eventStream adapts a Subscription to Stream.
type eventStream struct{ s *Subscription }

func (es eventStream) Next(ctx context.Context) (any, error) { return es.s.Next(ctx) }
func (es eventStream) Close()                                { es.s.Close() }
