package traffic

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// KeepAliveResult is the outcome of a keep-alive load.
type KeepAliveResult struct {
	Requests int     `json:"requests"` // answered with 200
	Failed   int     `json:"failed"`
	Dials    int64   `json:"dials"` // TCP connections opened; == connections when none broke
	FirstErr string  `json:"first_err,omitempty"`
	Seconds  float64 `json:"seconds"`
}

// MaxKeepAliveConns bounds the connections of one keep-alive load.
const MaxKeepAliveConns = 256

// keepAliveRetry is the pause after a failed request, so that a refused connection does
// not turn the client into a busy loop.
const keepAliveRetry = 10 * time.Millisecond

// KeepAlive sends HTTP GETs to addr back to back over conns persistent connections (HTTP
// keep-alive, RFC 9112 section 9.3) for d, each request bounded by reqTimeout, and
// counts the answers. A connection that breaks is dialled again (Dials counts them). It
// returns after d, or earlier when ctx ends.
func KeepAlive(ctx context.Context, addr string, conns int, d, reqTimeout time.Duration) (KeepAliveResult, error) {
	if conns < 1 || conns > MaxKeepAliveConns {
		return KeepAliveResult{}, fmt.Errorf("keep-alive: %d connections, want 1..%d", conns, MaxKeepAliveConns)
	}
	if d <= 0 || reqTimeout <= 0 {
		return KeepAliveResult{}, fmt.Errorf("keep-alive: want a duration and a request timeout above 0")
	}
	var dials atomic.Int64
	var res KeepAliveResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var dialer net.Dialer
			// One transport per worker: its one idle connection is this worker's.
			tr := &http.Transport{
				Proxy:               nil,
				MaxIdleConnsPerHost: 1,
				MaxConnsPerHost:     1,
				DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
					dials.Add(1)
					return dialer.DialContext(ctx, network, a)
				},
			}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: reqTimeout}
			var ok, failed int
			var firstErr string
			for ctx.Err() == nil {
				err := get(ctx, cl, "http://"+addr+"/")
				if ctx.Err() != nil {
					break // the request the end of d cut short is not counted
				}
				if err == nil {
					ok++
					continue
				}
				failed++
				if firstErr == "" {
					firstErr = err.Error()
				}
				select {
				case <-ctx.Done():
				case <-time.After(keepAliveRetry):
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Requests += ok
			res.Failed += failed
			if res.FirstErr == "" {
				res.FirstErr = firstErr
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Dials = dials.Load()
	return res, nil
}

// get sends one GET and reads the whole body, so that the connection can carry the next.
func get(ctx context.Context, cl *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
