package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The agent protocol: one UDP datagram each way, in ASCII.
//
//	request:  "load? TOKEN\n"        TOKEN: 1-32 bytes of [0-9A-Za-z], optional ("load?\n")
//	reply:    "load LOAD TOKEN\n"    LOAD: 0-100 in decimal without leading zeros,
//	                                 the request's TOKEN echoed (if any)
//
// The engine sends a new decimal token with every request and takes only the reply that
// echoes it, so a late reply to an earlier request never passes for a fresh one. The
// agent answers nothing else (no reflection of arbitrary datagrams), and its reply is
// at most 3 bytes longer than the request.

// DefaultAgentPort is the agent's UDP port (ulbagent's and the agent check's default).
const DefaultAgentPort = 7777

const (
	agentRequest   = "load?"
	agentReply     = "load "
	maxAgentToken  = 32
	maxAgentPacket = 64 // longer requests are ignored
)

// ErrAgentReply is returned by ParseAgentReply for a malformed reply or a wrong token.
var ErrAgentReply = errors.New("bad agent reply")

// AppendAgentRequest appends the request carrying token to b.
func AppendAgentRequest(b []byte, token uint32) []byte {
	b = append(b, agentRequest...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(token), 10)
	return append(b, '\n')
}

// ParseAgentReply returns the load of a reply to the request carrying token.
func ParseAgentReply(b []byte, token uint32) (int, error) {
	rest, ok := bytes.CutPrefix(b, []byte(agentReply))
	if !ok {
		return 0, fmt.Errorf("%w: no %q prefix", ErrAgentReply, agentReply)
	}
	rest, ok = bytes.CutSuffix(rest, []byte{'\n'})
	if !ok {
		return 0, fmt.Errorf("%w: no newline", ErrAgentReply)
	}
	num, tok, _ := bytes.Cut(rest, []byte{' '})
	load, err := strconv.Atoi(string(num))
	if err != nil || load < 0 || load > 100 || string(num) != strconv.Itoa(load) {
		return 0, fmt.Errorf("%w: load %q", ErrAgentReply, truncate(string(num), 8))
	}
	var want [10]byte
	if !bytes.Equal(tok, strconv.AppendUint(want[:0], uint64(token), 10)) {
		return 0, fmt.Errorf("%w: token %q, want %d", ErrAgentReply, truncate(string(tok), maxAgentToken), token)
	}
	return load, nil
}

// parseAgentRequest returns a request's token ("" for none); ok is false for anything
// that is not a request.
func parseAgentRequest(b []byte) (token []byte, ok bool) {
	if len(b) > maxAgentPacket {
		return nil, false
	}
	rest, ok := bytes.CutPrefix(b, []byte(agentRequest))
	if !ok {
		return nil, false
	}
	rest, ok = bytes.CutSuffix(rest, []byte{'\n'})
	if !ok {
		return nil, false
	}
	if len(rest) == 0 {
		return nil, true
	}
	if rest[0] != ' ' || len(rest) == 1 || len(rest) > 1+maxAgentToken {
		return nil, false
	}
	for _, c := range rest[1:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return nil, false
		}
	}
	return rest[1:], true
}

// appendAgentReply appends the reply with load and token to b.
func appendAgentReply(b []byte, load int, token []byte) []byte {
	b = append(b, agentReply...)
	b = strconv.AppendInt(b, int64(load), 10)
	if len(token) > 0 {
		b = append(b, ' ')
		b = append(b, token...)
	}
	return append(b, '\n')
}

// ServeAgent answers agent requests on conn with load() until ctx is done (then it
// returns nil) or conn fails. load's result is clamped to 100; a negative result
// answers nothing, so the server's agent check fails. Datagrams that are not requests
// are ignored. conn is not closed.
func ServeAgent(ctx context.Context, conn net.PacketConn, load func() int) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, maxAgentPacket+1)
	out := make([]byte, 0, maxAgentPacket)
	for {
		n, from, err := conn.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("agent: read: %w", err)
		}
		token, ok := parseAgentRequest(buf[:n])
		if !ok {
			continue
		}
		l := load()
		if l < 0 {
			continue
		}
		out = appendAgentReply(out[:0], min(l, 100), token)
		// A failed send (the client went away) is the client's loss; go on serving.
		_, _ = conn.WriteTo(out, from)
	}
}

// FixedLoad returns a load function answering n.
func FixedLoad(n int) func() int { return func() int { return n } }

// FileLoad returns a load function reading the load from a file at every request: its
// first word, an integer (clamped to 0-100). A missing or unreadable file answers
// nothing, so removing the file takes the server out.
func FileLoad(path string) func() int {
	return func() int {
		b, err := os.ReadFile(path)
		if err != nil {
			return -1
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return -1
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return -1
		}
		return max(min(n, 100), 0)
	}
}

// AutoLoad returns a load function computing the load from the one-minute load average
// in loadavg (normally /proc/loadavg) divided by cpus (runtime.NumCPU() if 0): 100 × load
// average / CPUs, rounded, at most 100. An unreadable file answers nothing.
func AutoLoad(loadavg string, cpus int) func() int {
	if cpus <= 0 {
		cpus = runtime.NumCPU()
	}
	return func() int {
		b, err := os.ReadFile(loadavg)
		if err != nil {
			return -1
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return -1
		}
		avg, err := strconv.ParseFloat(f[0], 64)
		if err != nil || avg < 0 || avg != avg {
			return -1
		}
		return int(min(avg*100/float64(cpus)+0.5, 100))
	}
}
