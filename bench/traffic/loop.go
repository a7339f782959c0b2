package traffic

import (
	"context"
	"sync"
	"time"
)

// Attempt is one connection of a Loop. Start and End are wall-clock Unix nanoseconds, so
// that another process can place them against its own events.
type Attempt struct {
	Start int64  `json:"start"`
	End   int64  `json:"end"`
	Name  string `json:"name,omitempty"` // the server's answer; empty when Err is set
	Err   string `json:"err,omitempty"`
}

// LoopResult lists a Loop's attempts in the order they started.
type LoopResult struct {
	Attempts []Attempt `json:"attempts"`
}

// MaxLoopAttempts bounds the attempts of one Loop, whatever its duration and interval.
const MaxLoopAttempts = 10000

// Loop starts a TCP connection to addr (AskTCP) every interval during d, each bounded by
// attemptTimeout, whether the earlier ones have finished or not, like clients that keep
// coming whatever the service does. It returns once the last attempt has ended, at most
// d+attemptTimeout after it started, or earlier when ctx ends.
func Loop(ctx context.Context, addr string, d, interval, attemptTimeout time.Duration) LoopResult {
	n := min(MaxLoopAttempts, max(1, int(d/interval)))
	res := LoopResult{Attempts: make([]Attempt, 0, n)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				continue
			}
		}
		mu.Lock()
		res.Attempts = append(res.Attempts, Attempt{Start: time.Now().UnixNano()})
		mu.Unlock()
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			defer cancel()
			name, err := AskTCP(actx, addr)
			mu.Lock()
			defer mu.Unlock()
			a := &res.Attempts[i]
			a.End, a.Name = time.Now().UnixNano(), name
			if err != nil {
				a.Err = err.Error()
			}
		})
	}
	wg.Wait()
	return res
}
