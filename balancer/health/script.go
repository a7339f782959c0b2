package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// maxScriptOutput bounds what is kept of a script's standard output and error.
const maxScriptOutput = 4096

// scriptWaitDelay is how long a killed script's output pipes may stay open (held by a
// grandchild that escaped the kill) before the engine stops waiting for them.
const scriptWaitDelay = 200 * time.Millisecond

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// scriptArgs are the arguments after the check's Command, in Solaris ILB's order: VIP,
// server address, protocol, port, timeout in whole seconds (rounded up, at least 1).
func scriptArgs(c *Check, t Target, port uint16) []string {
	vip := ""
	if t.VIP.IsValid() {
		vip = t.VIP.String()
	}
	secs := int64(math.Ceil(c.Timeout.Seconds()))
	return []string{vip, t.Addr.String(), protoName(t.Proto), strconv.Itoa(int(port)), strconv.FormatInt(max(secs, 1), 10)}
}

// runScript runs a script check: the program prints a round-trip time in microseconds,
// 0 (none measured: RTT 0), or -1 for a failure, and exits 0. ctx's deadline kills it and its process group.
func runScript(ctx context.Context, c *Check, t Target, port uint16) outcome {
	args := append(append([]string(nil), c.Command[1:]...), scriptArgs(c, t, port)...)
	cmd := exec.CommandContext(ctx, c.Command[0], args...)
	stdout := &limitedBuffer{max: maxScriptOutput}
	stderr := &limitedBuffer{max: maxScriptOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = scriptWaitDelay
	killGroup(cmd)
	err := cmd.Run()
	if ctx.Err() != nil {
		return fail("timeout")
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg := strings.TrimSpace(stderr.String())
			if i := strings.IndexByte(msg, '\n'); i >= 0 {
				msg = msg[:i]
			}
			if msg != "" {
				return fail(fmt.Sprintf("%v: %s", ee, msg))
			}
			return fail(ee.String())
		}
		return fail(err.Error())
	}
	f := strings.Fields(stdout.String())
	if len(f) == 0 {
		return fail("script printed nothing")
	}
	us, err := strconv.ParseInt(f[0], 10, 64)
	switch {
	case err != nil || us < -1:
		return fail(fmt.Sprintf("script printed %q, want microseconds, 0 or -1", truncate(f[0], 32)))
	case us == -1:
		return fail("script reported failure")
	}
	return outcome{ok: true, rtt: time.Duration(min(us, math.MaxInt64/1000)) * time.Microsecond, load: -1}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
