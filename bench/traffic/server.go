// Package traffic holds the bench's built-in servers and the clients its checks use: TCP
// and UDP servers that answer with a name, an HTTP server, and a sink that reports the byte
// count and SHA-256 of what it received.
package traffic

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// connTimeout bounds how long a server keeps one answering connection.
const connTimeout = 30 * time.Second

// sinkIdle bounds the silence the sink tolerates inside one transfer.
const sinkIdle = 60 * time.Second

// Config lists the listen addresses of each server kind.
type Config struct {
	Name string // the answer: each server replies with it
	TCP  []string
	UDP  []string
	HTTP []string
	Sink []string
}

// Servers are bound listeners ready to serve.
type Servers struct {
	name  string
	tcp   []net.Listener
	udp   []net.PacketConn
	http  []net.Listener
	sink  []net.Listener
	errMu sync.Mutex
	errs  []error
}

// Listen binds every address of cfg. On error, what was bound is closed again.
func Listen(cfg Config) (*Servers, error) {
	if cfg.Name == "" {
		return nil, errors.New("traffic: server needs a name")
	}
	s := &Servers{name: cfg.Name}
	var lc net.ListenConfig
	ctx := context.Background()
	listen := func(addrs []string, dst *[]net.Listener) error {
		for _, a := range addrs {
			ln, err := lc.Listen(ctx, "tcp", a)
			if err != nil {
				return fmt.Errorf("traffic: listen tcp %s: %w", a, err)
			}
			*dst = append(*dst, ln)
		}
		return nil
	}
	err := listen(cfg.TCP, &s.tcp)
	if err == nil {
		err = listen(cfg.HTTP, &s.http)
	}
	if err == nil {
		err = listen(cfg.Sink, &s.sink)
	}
	if err == nil {
		for _, a := range cfg.UDP {
			pc, lerr := lc.ListenPacket(ctx, "udp", a)
			if lerr != nil {
				err = fmt.Errorf("traffic: listen udp %s: %w", a, lerr)
				break
			}
			s.udp = append(s.udp, pc)
		}
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *Servers) close() {
	for _, l := range s.http {
		l.Close()
	}
	s.closeRaw()
}

// closeRaw closes every listener but the HTTP ones, which http.Server.Shutdown closes.
func (s *Servers) closeRaw() {
	for _, l := range s.tcp {
		l.Close()
	}
	for _, l := range s.sink {
		l.Close()
	}
	for _, p := range s.udp {
		p.Close()
	}
}

// Addrs returns the bound addresses by kind ("tcp", "udp", "http", "sink"), useful when
// listening on port 0.
func (s *Servers) Addrs() map[string][]string {
	m := map[string][]string{}
	for _, l := range s.tcp {
		m["tcp"] = append(m["tcp"], l.Addr().String())
	}
	for _, l := range s.http {
		m["http"] = append(m["http"], l.Addr().String())
	}
	for _, l := range s.sink {
		m["sink"] = append(m["sink"], l.Addr().String())
	}
	for _, p := range s.udp {
		m["udp"] = append(m["udp"], p.LocalAddr().String())
	}
	return m
}

func (s *Servers) fail(err error) {
	s.errMu.Lock()
	s.errs = append(s.errs, err)
	s.errMu.Unlock()
}

// Serve answers until ctx is done, then closes every listener and waits for the serving
// goroutines. It returns the listeners' unexpected errors, if any.
func (s *Servers) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, l := range s.tcp {
		wg.Go(func() { s.acceptLoop(l, s.answerTCP) })
	}
	for _, l := range s.sink {
		wg.Go(func() { s.acceptLoop(l, s.answerSink) })
	}
	for _, p := range s.udp {
		wg.Go(func() { s.serveUDP(p) })
	}
	var servers []*http.Server
	for _, l := range s.http {
		hs := &http.Server{Handler: s, ReadHeaderTimeout: connTimeout}
		servers = append(servers, hs)
		wg.Go(func() {
			if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.fail(err)
			}
		})
	}
	<-ctx.Done()
	s.closeRaw()
	for _, hs := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		hs.Shutdown(sctx)
		cancel()
	}
	wg.Wait()
	return errors.Join(s.errs...)
}

func (s *Servers) acceptLoop(l net.Listener, answer func(net.Conn)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.fail(err)
			}
			return
		}
		wg.Go(func() {
			defer c.Close()
			answer(c)
		})
	}
}

// answerTCP writes the name and a newline, then closes.
func (s *Servers) answerTCP(c net.Conn) {
	c.SetDeadline(time.Now().Add(connTimeout))
	io.WriteString(c, s.name+"\n")
}

// answerSink reads to EOF and answers "BYTES SHA256HEX NAME\n".
func (s *Servers) answerSink(c net.Conn) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		c.SetReadDeadline(time.Now().Add(sinkIdle))
		k, err := c.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	c.SetWriteDeadline(time.Now().Add(connTimeout))
	fmt.Fprintf(c, "%d %s %s\n", n, hex.EncodeToString(h.Sum(nil)), s.name)
}

func (s *Servers) serveUDP(p net.PacketConn) {
	buf := make([]byte, 65535)
	answer := []byte(s.name + "\n")
	for {
		_, from, err := p.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.fail(err)
			}
			return
		}
		p.WriteTo(answer, from)
	}
}

// ServeHTTP answers every GET or HEAD with 200 (or NNN for /status/NNN) and the name (headers X-Ulb-Server: the name,
// X-Ulb-Peer: the client's address and port as seen here); other methods get 405.
func (s *Servers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Ulb-Server", s.name)
	// /status/NNN answers with that status, for health checks that must see a failure.
	if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
		var n int
		if _, err := fmt.Sscan(code, &n); err == nil && n >= 200 && n <= 599 {
			w.WriteHeader(n)
			io.WriteString(w, s.name+"\n")
			return
		}
	}
	// The client's address as this server sees it: behind a full-NAT balancer, a proxy
	// source; behind half-NAT or DSR, the client's own.
	w.Header().Set("X-Ulb-Peer", r.RemoteAddr)
	io.WriteString(w, s.name+"\n")
}

// parseSinkAnswer parses "BYTES SHA256HEX NAME".
func parseSinkAnswer(line string) (n int64, sum, name string, err error) {
	f := strings.SplitN(strings.TrimSpace(line), " ", 3)
	if len(f) != 3 {
		return 0, "", "", fmt.Errorf("traffic: bad sink answer %q", line)
	}
	if _, err := fmt.Sscan(f[0], &n); err != nil || n < 0 || len(f[1]) != 2*sha256.Size {
		return 0, "", "", fmt.Errorf("traffic: bad sink answer %q", line)
	}
	return n, f[1], f[2], nil
}

// readLine reads one line of at most 4 KiB.
func readLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, 4096), 4096)
	line, err := br.ReadString('\n')
	if err != nil && !(err == io.EOF && line != "") {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
