package ctsync

import (
	"context"
	"iter"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wire collects what a Syncer sends.
type wire struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (w *wire) send(msg []byte) int {
	w.mu.Lock()
	w.msgs = append(w.msgs, append([]byte(nil), msg...))
	w.mu.Unlock()
	return 0
}

// wait returns the messages once there are n, or fails.
func (w *wire) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		got := slices.Clone(w.msgs)
		w.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages sent, want %d", len(got), n)
		}
	}
}

// TestSyncer runs the transport over a fake wire: the start-up request, queued records
// sent in one message, a peer's records applied with their outcomes counted, a
// stranger's datagram dropped, a peer's request answered with the flows, and a master
// that steps down sending them at once.
func TestSyncer(t *testing.T) {
	peer := netip.MustParseAddr("198.51.100.3")
	recs := sample()
	var w wire
	var applied []Record
	var appliedMu sync.Mutex
	var master atomic.Bool
	master.Store(true)
	s, err := NewSyncer(Config{
		Peers: []netip.Addr{peer}, Port: DefaultPort, Refresh: time.Hour,
		Master: master.Load,
		Send:   w.send,
		Flows:  func() iter.Seq[Record] { return slices.Values(recs[:2]) },
		Apply: func(r Record) Outcome {
			appliedMu.Lock()
			defer appliedMu.Unlock()
			applied = append(applied, r)
			return Outcome(len(applied) - 1) // adopted, refreshed, unknown
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if req, err := Decode(w.wait(t, 1)[0], func(Record) {}); err != nil || !req {
		t.Fatalf("the first message is not a request: %v %v", req, err)
	}
	for !s.Sending() { // the first follow: master
		time.Sleep(time.Millisecond)
	}
	// Becoming master sends the flows made before it followed.
	if got := decodeAll(t, w.wait(t, 2)[1]); !slices.Equal(got, recs[:2]) {
		t.Fatalf("becoming master sends %+v, want the node's flows", got)
	}
	for _, r := range recs {
		s.Queue(r)
	}
	if got := decodeAll(t, w.wait(t, 3)[2]); !slices.Equal(got, recs) {
		t.Fatalf("queued records sent as %+v", got)
	}

	s.Receive(netip.MustParseAddr("198.51.100.99"), Append(nil, recs))
	s.Receive(peer, Append(nil, recs))
	s.Receive(peer, []byte("not a message"))
	for st := s.Stats(); st.ReceivedMessages < 2; st = s.Stats() {
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	if st.FromStranger != 1 || st.Malformed != 1 || st.ReceivedRecords != 3 ||
		st.Adopted != 1 || st.Refreshed != 1 || st.Unknown != 1 {
		t.Fatalf("stats after a stranger's, a peer's and a malformed message: %+v", st)
	}

	s.Receive(peer, AppendRequest(nil))
	if got := decodeAll(t, w.wait(t, 4)[3]); !slices.Equal(got, recs[:2]) {
		t.Fatalf("a request is answered with %+v, want the node's flows", got)
	}
	master.Store(false)
	if got := decodeAll(t, w.wait(t, 5)[4]); !slices.Equal(got, recs[:2]) {
		t.Fatalf("stepping down sends %+v, want the node's flows", got)
	}
	if s.Sending() {
		t.Error("a backup still sends")
	}
	if st := s.Stats(); st.SentMessages != 4 || st.SentRecords != 9 || st.Requests != 1 {
		t.Errorf("stats: %+v", st)
	}
}
