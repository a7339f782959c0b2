package traffic

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// udpRetry is the interval between UDP query retransmissions.
const udpRetry = 500 * time.Millisecond

// transferChunk is the size of one write of a transfer.
const transferChunk = 256 << 10

// AskTCP connects to addr and returns the line the server answers with.
func AskTCP(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	line, err := readLine(c)
	if err != nil {
		return "", fmt.Errorf("read answer from %s: %w", addr, err)
	}
	return line, nil
}

// AskUDP sends a datagram to addr every udpRetry until an answer arrives or ctx ends, and
// returns the answer.
func AskUDP(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	var refused error // an ICMP port unreachable seen on any try: said in the error
	giveUp := func(last error) error {
		if refused != nil {
			return fmt.Errorf("no answer from %s: %w (refused: %v)", addr, ctx.Err(), refused)
		}
		return fmt.Errorf("no answer from %s: %w (last: %v)", addr, ctx.Err(), last)
	}
	for {
		// An ICMP port unreachable from the previous try can fail this write; the loop
		// retries either way.
		c.Write([]byte("ulbbench?\n"))
		deadline := time.Now().Add(udpRetry)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err == nil {
			return strings.TrimRight(string(buf[:n]), "\r\n"), nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			refused = err
		}
		if ctx.Err() != nil {
			return "", giveUp(err)
		}
		if refused == err {
			// Connection refused (ICMP port unreachable): wait out the interval and retry.
			select {
			case <-ctx.Done():
				return "", giveUp(err)
			case <-time.After(time.Until(deadline)):
			}
		}
	}
}

// HTTPResult is the outcome of one GET.
type HTTPResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Server string `json:"server"` // X-Ulb-Server header
	Peer   string `json:"peer"`   // X-Ulb-Peer header: the client's address as the server saw it
}

// GetHTTP sends GET http://addr/path (no proxy, no keep-alive) and returns the status and
// up to 64 KiB of body.
func GetHTTP(ctx context.Context, addr, path string) (HTTPResult, error) {
	if path == "" {
		path = "/"
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return HTTPResult{}, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return HTTPResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return HTTPResult{}, fmt.Errorf("read body: %w", err)
	}
	return HTTPResult{Status: resp.StatusCode, Body: strings.TrimRight(string(body), "\r\n"), Server: resp.Header.Get("X-Ulb-Server"),
		Peer: resp.Header.Get("X-Ulb-Peer")}, nil
}

// TransferResult is the outcome of one transfer to a sink.
type TransferResult struct {
	Bytes      int64   `json:"bytes"`       // sent
	SHA256     string  `json:"sha256"`      // of what was sent
	SinkBytes  int64   `json:"sink_bytes"`  // received, as the sink reports
	SinkSHA256 string  `json:"sink_sha256"` // of what the sink received
	Server     string  `json:"server"`
	Seconds    float64 `json:"seconds"`
	Mbps       float64 `json:"mbps"` // megabits per second of payload
}

// ErrMismatch means the sink received something other than what was sent.
var ErrMismatch = errors.New("sink received different data")

// Transfer sends n pseudo-random bytes over one TCP connection to a sink at addr, closes
// its write side, and compares the sink's byte count and SHA-256 with its own. A
// mismatch returns the result and an error wrapping ErrMismatch.
func Transfer(ctx context.Context, addr string, n int64) (TransferResult, error) {
	var res TransferResult
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return res, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return res, fmt.Errorf("dial %s: not a TCP connection", addr)
	}
	start := time.Now()
	src := rand.NewChaCha8([32]byte{'u', 'l', 'b'})
	h := sha256.New()
	buf := make([]byte, transferChunk)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		src.Read(buf[:k])
		h.Write(buf[:k])
		if _, err := tc.Write(buf[:k]); err != nil {
			return res, fmt.Errorf("send after %d bytes: %w", n-left, err)
		}
		left -= k
	}
	if err := tc.CloseWrite(); err != nil {
		return res, fmt.Errorf("close write: %w", err)
	}
	line, err := readLine(tc)
	if err != nil {
		return res, fmt.Errorf("read sink answer: %w", err)
	}
	el := time.Since(start)
	res.Bytes, res.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	res.SinkBytes, res.SinkSHA256, res.Server, err = parseSinkAnswer(line)
	if err != nil {
		return res, err
	}
	res.Seconds = el.Seconds()
	if res.Seconds > 0 {
		res.Mbps = float64(n) * 8 / res.Seconds / 1e6
	}
	if res.SinkBytes != res.Bytes || res.SinkSHA256 != res.SHA256 {
		return res, fmt.Errorf("%w: sent %d bytes sha256 %.12s, sink got %d bytes sha256 %.12s",
			ErrMismatch, res.Bytes, res.SHA256, res.SinkBytes, res.SinkSHA256)
	}
	return res, nil
}

// ConnsResult is the outcome of many short connections.
type ConnsResult struct {
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Names    map[string]int `json:"names"`               // answers by server name
	FirstErr string         `json:"first_err,omitempty"` // the first failure
	Seconds  float64        `json:"seconds"`
}

// Conns opens n TCP connections to addr, at most concurrency at a time (default 8), and
// counts the answers by name. It stops early when ctx ends; unstarted connections count as
// failed.
func Conns(ctx context.Context, addr string, n, concurrency int) ConnsResult {
	if concurrency <= 0 {
		concurrency = 8
	}
	res := ConnsResult{Names: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	start := time.Now()
	for range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			mu.Lock()
			res.Failed++
			if res.FirstErr == "" {
				res.FirstErr = ctx.Err().Error()
			}
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			name, err := AskTCP(ctx, addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				if res.FirstErr == "" {
					res.FirstErr = err.Error()
				}
				return
			}
			res.OK++
			res.Names[name]++
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return res
}
