package bench

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulb/bench/traffic"
)

// run builds a failover run of 8s: a connection every 100ms taking 1ms when answered, the
// signal at 2s, and answer(i, start) deciding each attempt: a name, or "" for a failure.
func run(answer func(i int, start time.Duration) string) failoverRun {
	f := failoverRun{signal: syscall.SIGKILL, signalled: int64(2 * time.Second), newMaster: "lb2", takeover: 1500 * time.Millisecond}
	for i := range 80 {
		start := time.Duration(i) * 100 * time.Millisecond
		a := traffic.Attempt{Start: int64(start), End: int64(start + time.Millisecond), Name: answer(i, start)}
		if a.Name == "" {
			a.End, a.Err = int64(start+time.Second), "i/o timeout"
		}
		f.attempts = append(f.attempts, a)
	}
	return f
}

// outage answers s1 and s2 in turn, except for the attempts begun in [2s, 3.5s).
func outage(i int, start time.Duration) string {
	if start >= 2*time.Second && start < 3500*time.Millisecond {
		return ""
	}
	return fmt.Sprintf("s%d", 1+i%2)
}

func TestJudgeFailover(t *testing.T) {
	c := Check{Stop: "lb1", VRRP: "vip", Nodes: []string{"lb1", "lb2"}, ExpectNames: []string{"s1", "s2"}, MaxGap: 2 * time.Second}
	detail, err := judgeFailover(c, run(outage))
	want := "lb1 (master of vip) got SIGKILL after 20 connections, lb2 was master 1.5s later; " +
		"before: 20/20 answered (s1=10 s2=10); after: 45/60 answered (s1=22 s2=23), first answer 1.5s after the signal; " +
		"longest gap without an answer 1.6s"
	if err != nil || detail != want {
		t.Errorf("judgeFailover = %q, %v\nwant %q", detail, err, want)
	}

	fails := []struct {
		name string
		c    func(*Check)
		f    func(*failoverRun)
		want string
	}{
		{"gap", func(c *Check) { c.MaxGap = time.Second }, nil, "the longest gap 1.6s exceeds max_gap 1s"},
		{"no new master", nil, func(f *failoverRun) { f.newMaster = "" }, "no other node became master of vip"},
		{"late failure", nil, func(f *failoverRun) { f.attempts[60].Name, f.attempts[60].Err = "", "refused" },
			"1 connections failed after the service was back (first: refused)"},
		{"late failure after a slow first answer", nil, func(f *failoverRun) {
			f.attempts[35].End = f.attempts[38].Start + int64(50*time.Millisecond) // a SYN retransmitted
			f.attempts[37].Name, f.attempts[37].Err = "", "i/o timeout"            // begun before the answer came
			f.attempts[39].Name, f.attempts[39].Err = "", "refused"                // begun after it
		}, "1 connections failed after the service was back (first: refused)"},
		{"unexpected name", nil, func(f *failoverRun) { f.attempts[70].Name = "s9" }, `answered by unexpected "s9"`},
		{"never back", nil, func(f *failoverRun) {
			for i := 20; i < 80; i++ {
				f.attempts[i].Name, f.attempts[i].Err = "", "i/o timeout"
			}
		}, "no answer after the signal (first error: i/o timeout)"},
		{"never up", nil, func(f *failoverRun) {
			for i := range 20 {
				f.attempts[i].Name, f.attempts[i].Err = "", "refused"
			}
		}, "no answer before the signal (first error: refused)"},
	}
	for _, tc := range fails {
		cc, f := c, run(outage)
		if tc.c != nil {
			tc.c(&cc)
		}
		if tc.f != nil {
			tc.f(&f)
		}
		detail, err := judgeFailover(cc, f)
		if err == nil || !strings.Contains(err.Error(), tc.want) || detail != "" {
			t.Errorf("%s: judgeFailover = %q, %v; want an error with %q", tc.name, detail, err, tc.want)
		}
	}

	// Without VRRP the line tells only the client's side.
	detail, err = judgeFailover(Check{Stop: "srv"}, run(func(i int, _ time.Duration) string { return "s1" }))
	if want := "srv got SIGKILL after 20 connections; before: 20/20 answered (s1=20); after: 60/60 answered (s1=60), " +
		"first answer 1ms after the signal; longest gap without an answer 100ms"; err != nil || detail != want {
		t.Errorf("judgeFailover = %q, %v\nwant %q", detail, err, want)
	}
}

// failoverBench: a client and a server host, a built-in server and a bystander process.
const failoverBench = `name = "%s"
[[host]]
name = "c"
[[host]]
name = "s"
[[link]]
a = "c:eth0"
b = "s:eth0"
a_address = ["192.0.2.1/24"]
b_address = ["192.0.2.2/24"]
[[process]]
name = "srv"
host = "s"
serve = { tcp = [":80"] }
[[process]]
name = "bystander"
host = "s"
run = ["sleep", "600"]
ready = { delay = "100ms" }
`

// A failover check signals its process in the middle of the client loop, and fails when
// the service does not come back.
func TestFailoverCheck(t *testing.T) {
	needBench(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, _, _ := upForTest(t, ctx, fmt.Sprintf(failoverBench, uniqueName(t)))
	base := Check{Type: CheckFailover, From: "c", To: "192.0.2.2:80", StopAfter: 500 * time.Millisecond, Duration: 1500 * time.Millisecond}

	c := base
	c.Name, c.Stop, c.Signal, c.ExpectNames, c.MaxGap = "bystander", "bystander", "TERM", []string{"s"}, 500*time.Millisecond
	r := b.Check(ctx, c)
	t.Log(r)
	if !r.Pass || !strings.HasPrefix(r.Detail, "bystander got SIGTERM after ") || !strings.Contains(r.Detail, "after: 10/10 answered (s=10)") {
		t.Errorf("%s", r)
	}
	select {
	case <-b.procs["bystander"].done:
	case <-time.After(5 * time.Second):
		t.Error("the bystander still runs after SIGTERM")
	}

	c = base
	c.Name, c.Stop = "server killed", "srv"
	r = b.Check(ctx, c)
	t.Log(r)
	if r.Pass || !strings.Contains(r.Detail, "no answer after the signal") || !strings.Contains(r.Detail, "srv got SIGKILL after 5 connections") {
		t.Errorf("%s: want a FAIL with no answer after the signal", r)
	}
	r = b.Check(ctx, c)
	if r.Pass || !strings.Contains(r.Detail, `process "srv" is not running`) {
		t.Errorf("%s: want a FAIL, the process is gone", r)
	}
}
