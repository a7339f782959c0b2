package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ErrUnreachable matches (errors.Is) an UnreachableError.
var ErrUnreachable = errors.New("ulbd unreachable")

// UnreachableError means no ulbd answers on the control socket.
type UnreachableError struct {
	Path string
	Err  error // the dial error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach ulbd at %s: is it running?", e.Path)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// RemoteError is an error response from ulbd: the call reached it and it refused.
type RemoteError struct {
	Verb    string
	Message string // the server's error message
}

func (e *RemoteError) Error() string { return e.Message }

// Client calls ulbd over one control-socket connection. Its methods are safe for
// concurrent use; calls are sent one at a time.
type Client struct {
	mu       sync.Mutex
	conn     net.Conn
	rd       *bufio.Reader
	path     string
	streamed bool // a stream took the connection over
}

// ErrStreamed is returned by a call on a client whose connection a stream took over.
var ErrStreamed = errors.New("control client: the connection carried a stream; dial another")

// ErrStreamEnded means ulbd closed a stream's connection (it stopped, or dropped a
// client that read too slowly).
var ErrStreamEnded = errors.New("ulbd ended the stream")

// Dial connects to the control socket at path. When nothing listens there the error is
// an *UnreachableError.
func Dial(path string) (*Client, error) {
	return DialContext(context.Background(), path)
}

// DialContext is Dial with a context bounding the connect.
func DialContext(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, &UnreachableError{Path: path, Err: err}
	}
	return &Client{conn: c, rd: bufio.NewReaderSize(c, 64<<10), path: path}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Call sends verb with args (marshalled to JSON; nil sends none) and decodes the response's
// data into out (a pointer, or nil to discard; a *json.RawMessage keeps it raw). An error
// response is returned as a *RemoteError; a broken connection as a wrapped I/O error,
// after which the client is unusable. ctx bounds the whole call.
func (c *Client) Call(ctx context.Context, verb string, args any, out any) error {
	line, err := requestLine(verb, args)
	if err != nil {
		return err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streamed {
		return ErrStreamed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// ctx ending (cancel or deadline) interrupts a blocked read or write by moving the
	// connection's deadline to now.
	c.conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()

	resp, err := c.roundTrip(line)
	if err != nil {
		return c.ioError(ctx, verb, err)
	}
	if !resp.OK {
		return &RemoteError{Verb: verb, Message: resp.Error}
	}
	if out == nil || len(resp.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("%s: decoding response: %w", verb, err)
	}
	return nil
}

// requestLine encodes a request for verb with args (nil: none) as one line of JSON.
func requestLine(verb string, args any) ([]byte, error) {
	req := Request{Verb: verb}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return nil, fmt.Errorf("%s: encoding arguments: %w", verb, err)
		}
		req.Args = raw
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding request: %w", verb, err)
	}
	return append(line, '\n'), nil
}

// ioError words a failed read or write of verb: ctx's error when ctx ended.
func (c *Client) ioError(ctx context.Context, verb string, err error) error {
	var op *net.OpError
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case errors.As(err, &op):
		err = op.Err // its addresses name the server's temporary bind path
	}
	return fmt.Errorf("%s: talking to ulbd at %s: %w", verb, c.path, err)
}

// Stream sends a streaming verb (see Server.HandleStream) with args and calls fn with
// each value ulbd sends, as raw JSON, until fn returns an error (returned as is), ctx
// ends (its error), or ulbd closes the connection (ErrStreamEnded, wrapped). A refusal
// is a *RemoteError. The connection carries nothing else afterwards: later calls fail
// with ErrStreamed.
func (c *Client) Stream(ctx context.Context, verb string, args any, fn func(json.RawMessage) error) error {
	line, err := requestLine(verb, args)
	if err != nil {
		return err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streamed {
		return ErrStreamed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.streamed = true
	c.conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()

	resp, err := c.roundTrip(line)
	if err != nil {
		return c.ioError(ctx, verb, err)
	}
	if !resp.OK {
		return &RemoteError{Verb: verb, Message: resp.Error}
	}
	for {
		item, err := c.rd.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && ctx.Err() == nil {
				return fmt.Errorf("%s: %w", verb, ErrStreamEnded)
			}
			return c.ioError(ctx, verb, err)
		}
		if !json.Valid(item) {
			return fmt.Errorf("%s: bad data from ulbd: %q", verb, item)
		}
		if err := fn(item); err != nil {
			return err
		}
	}
}

// Watch streams the events that pass args (VerbWatch) to fn, as Stream does.
func (c *Client) Watch(ctx context.Context, args WatchArgs, fn func(Event) error) error {
	var send any
	if args != (WatchArgs{}) {
		send = args
	}
	return c.Stream(ctx, VerbWatch, send, func(raw json.RawMessage) error {
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("%s: bad event from ulbd: %w", VerbWatch, err)
		}
		return fn(ev)
	})
}

func (c *Client) roundTrip(line []byte) (Response, error) {
	var resp Response
	if _, err := c.conn.Write(line); err != nil {
		return resp, err
	}
	reply, err := c.rd.ReadBytes('\n')
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(reply, &resp); err != nil {
		return resp, fmt.Errorf("bad response: %w", err)
	}
	if !resp.OK && resp.Error == "" {
		return resp, errors.New("bad response: neither ok nor an error")
	}
	return resp, nil
}
