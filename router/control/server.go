// Package control is ulbd's control socket: a unix stream socket carrying
// newline-delimited JSON requests and responses, the server that dispatches them to
// handlers by verb, the client ulbadm uses, and the API types both sides share.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// MaxRequest is the largest request line the server reads, in bytes.
const MaxRequest = 1 << 20

// writeTimeout bounds how long a response may wait for a client that does not read.
const writeTimeout = 10 * time.Second

// probeTimeout bounds the check for another ulbd on an existing socket file.
const probeTimeout = time.Second

// Errors of Listen and Serve.
var (
	// ErrInUse means another process answers on the socket path.
	ErrInUse = errors.New("control socket in use")
	// ErrServed means Serve was called twice.
	ErrServed = errors.New("control server already served")
)

// HandlerFunc answers one verb. args is the request's raw "args" (nil when absent); the
// result is marshalled as the response's data, an error becomes the response's error
// message. ctx is cancelled when the server stops.
type HandlerFunc func(ctx context.Context, args json.RawMessage) (any, error)

// Stream is the open stream of a streaming verb: Next returns each value to send, as one
// JSON line, until it returns an error (ctx's when the client closed the connection or
// the server stops); Close releases it.
type Stream interface {
	Next(ctx context.Context) (any, error)
	Close()
}

// StreamFunc opens a streaming verb's stream. An error refuses the request (the response
// carries it as for a HandlerFunc); otherwise the server answers OK without data, then
// writes the stream's values on the connection, which serves no other request after.
type StreamFunc func(ctx context.Context, args json.RawMessage) (Stream, error)

// Server answers requests on a unix socket. Register handlers with Handle and
// HandleStream, then call Serve (or Listen then Serve).
type Server struct {
	path   string
	logger *slog.Logger

	mu       sync.Mutex
	handlers map[string]HandlerFunc
	streams  map[string]StreamFunc
	ln       *net.UnixListener
	file     fs.FileInfo // the socket file, to remove it only if it is still ours
	served   bool
}

// NewServer returns a server for the socket at path. A nil logger discards logs.
func NewServer(path string, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{path: path, logger: logger, handlers: make(map[string]HandlerFunc), streams: make(map[string]StreamFunc)}
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Handle registers fn for verb, replacing any earlier handler. It may be called while the
// server runs.
func (s *Server) Handle(verb string, fn HandlerFunc) {
	s.mu.Lock()
	s.handlers[verb] = fn
	delete(s.streams, verb)
	s.mu.Unlock()
}

// HandleStream registers fn for the streaming verb, replacing any earlier handler of
// verb (streaming or not). It may be called while the server runs.
func (s *Server) HandleStream(verb string, fn StreamFunc) {
	s.mu.Lock()
	s.streams[verb] = fn
	delete(s.handlers, verb)
	s.mu.Unlock()
}

func (s *Server) handler(verb string) (HandlerFunc, StreamFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlers[verb], s.streams[verb]
}

// Listen creates the socket: it makes the directory if missing, removes a stale socket
// file left by a dead ulbd, refuses (ErrInUse) when another process answers on it or the
// path is not a socket, and creates the socket with mode 0600. The socket is bound under
// a temporary name, restricted, then linked into place, so the path never exists with a
// wider mode and two servers cannot both take it. Serve calls Listen if it was not
// called; calling it first reports these errors before serving starts.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := removeStale(s.path); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", s.path, os.Getpid())
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	err = os.Chmod(tmp, 0o600)
	if err == nil {
		err = os.Link(tmp, s.path)
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%w: %s was created by another process", ErrInUse, s.path)
		}
	}
	if err == nil {
		s.file, err = os.Lstat(tmp)
	}
	os.Remove(tmp)
	if err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	s.ln = ln
	return nil
}

// removeStale removes path if it is a socket nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: %s exists and is not a socket", ErrInUse, path)
	}
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: another ulbd answers on %s", ErrInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket: probing %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: removing stale %s: %w", path, err)
	}
	return nil
}

// Serve accepts connections until ctx is cancelled, one goroutine per connection, then
// closes every connection, waits for their goroutines, removes the socket file and
// returns nil. It returns an error if the socket cannot be created or accepting fails.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return ErrServed
	}
	s.served = true
	ln := s.ln
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	var err error
	for {
		c, aerr := ln.AcceptUnix()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("control socket: accept: %w", aerr)
				ln.Close()
			}
			break
		}
		wg.Go(func() { s.serveConn(ctx, c) })
	}
	wg.Wait()
	// Remove the socket only if it is still ours: someone may have deleted it and another
	// ulbd taken the path.
	if fi, serr := os.Lstat(s.path); serr == nil && os.SameFile(fi, s.file) {
		os.Remove(s.path)
	}
	return err
}

func (s *Server) serveConn(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 4096), MaxRequest)
	w := bufio.NewWriter(c)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		resp, stream := s.dispatch(ctx, line)
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		err := enc.Encode(resp)
		if err == nil {
			err = w.Flush()
		}
		if stream != nil {
			if err == nil {
				s.serveStream(ctx, c, stream, enc, w)
			}
			stream.Close()
			return
		}
		if err != nil {
			return
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		enc.Encode(Response{Error: fmt.Sprintf("bad request: longer than %d bytes", MaxRequest)})
		w.Flush()
	}
}

// serveStream writes the stream's values until it ends, the client closes its end (or
// sends anything: a streaming connection takes no more requests) or a write fails.
func (s *Server) serveStream(ctx context.Context, c *net.UnixConn, stream Stream, enc *json.Encoder, w *bufio.Writer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var b [64]byte
		c.Read(b[:]) // returns on EOF, data or the connection's close
		cancel()
	}()
	defer func() {
		c.Close() // ends the reader
		<-readerDone
	}()
	for {
		v, err := s.next(ctx, stream)
		if err != nil {
			return
		}
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := enc.Encode(v); err != nil {
			return
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// next calls stream.Next, turning a panic into an error.
func (s *Server) next(ctx context.Context, stream Stream) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("control stream panicked", "panic", p)
			err = errors.New("internal error")
		}
	}()
	return stream.Next(ctx)
}

// dispatch answers one request line; for a streaming verb it also returns the opened
// stream, which the caller serves after the response.
func (s *Server) dispatch(ctx context.Context, line []byte) (resp Response, stream Stream) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Response{Error: "bad request: " + err.Error()}, nil
	}
	if req.Verb == "" {
		return Response{Error: "bad request: no verb"}, nil
	}
	fn, sfn := s.handler(req.Verb)
	if fn == nil && sfn == nil {
		return Response{Error: fmt.Sprintf("unknown verb %q", req.Verb)}, nil
	}
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("control handler panicked", "verb", req.Verb, "panic", p)
			resp, stream = Response{Error: req.Verb + ": internal error"}, nil
		}
	}()
	if sfn != nil {
		st, err := sfn(ctx, req.Args)
		if err != nil {
			return Response{Error: err.Error()}, nil
		}
		if st == nil {
			return Response{Error: req.Verb + ": internal error: no stream"}, nil
		}
		return Response{OK: true}, st
	}
	data, err := fn(ctx, req.Args)
	if err != nil {
		return Response{Error: err.Error()}, nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		s.logger.Error("control handler result not encodable", "verb", req.Verb, "err", err)
		return Response{Error: req.Verb + ": internal error: " + err.Error()}, nil
	}
	return Response{OK: true, Data: raw}, nil
}
