package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"ulb/cmd/ulbadm/internal/fakeulbd"
	"ulb/router/control"
)

func TestShowRouter(t *testing.T) {
	env := map[string]string{SocketEnv: fakeulbd.Start(t)}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"show-router"}, `
NAME  VRID  PORT     AF    PRIO     ADV_INTV  MODE  STATE   VMAC               MASTER
vip   1     outside  IPv4  150/200  1s        -pa   MASTER  00:00:5e:00:01:01  198.51.100.10
gw    2     inside   IPv4  100      100ms     ---   BACKUP  00:00:5e:00:01:02  203.0.113.11
vip6  1     outside  IPv6  255      1s        op-   FAULT   00:00:5e:00:02:01  -
`},
		{[]string{"show-router", "gw"}, `
NAME  VRID  PORT    AF    PRIO  ADV_INTV  MODE  STATE   VMAC               MASTER
gw    2     inside  IPv4  100   100ms     ---   BACKUP  00:00:5e:00:01:02  203.0.113.11
`},
		{[]string{"show-router", "-f"}, `
ROUTER:          vip
VRID:            1
PORT:            outside
FAMILY:          IPv4, VRRPv3
STATE:           MASTER
PRIORITY:        200, 150 with tracking
ADVER-INTERVAL:  1s
PREEMPT:         yes, after 30s
ACCEPT:          yes
VMAC:            00:00:5e:00:01:01
MASTER:          198.51.100.10 (priority 150)
ADDRESSES:       198.51.100.100
SYNC-GROUP:      pair
ADVERTS:         1200 sent, 3 received
TRANSITIONS:     2 (1 to master), last 2025-01-02T03:04:05.000Z
DROPS:           ttl=1 vrid=2

ROUTER:          gw
VRID:            2
PORT:            inside
FAMILY:          IPv4, VRRPv3
STATE:           BACKUP
PRIORITY:        100
ADVER-INTERVAL:  100ms, master's 2s
PREEMPT:         no
ACCEPT:          no
VMAC:            00:00:5e:00:01:02
MASTER:          203.0.113.11 (priority 200)
ADDRESSES:       203.0.113.1
SYNC-GROUP:      pair
ADVERTS:         0 sent, 600 received
TRANSITIONS:     1 (0 to master), last 2025-01-02T03:04:04.000Z
DROPS:           none

ROUTER:          vip6
VRID:            1
PORT:            outside
FAMILY:          IPv6, VRRPv3
STATE:           FAULT (tracking reports a failure)
PRIORITY:        255 (address owner)
ADVER-INTERVAL:  1s
PREEMPT:         yes
ACCEPT:          no
VMAC:            00:00:5e:00:02:01
MASTER:          -
ADDRESSES:       fe80::1,2001:db8:1::10
SYNC-GROUP:      -
ADVERTS:         0 sent, 0 received
TRANSITIONS:     0 (0 to master)
DROPS:           none
`},
	}
	for _, tt := range tests {
		out, errOut, code := run(t, env, tt.args...)
		if want := strings.TrimPrefix(tt.want, "\n"); out != want || errOut != "" || code != ExitOK {
			t.Errorf("ulbadm %v: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", tt.args, code, errOut, out, want)
		}
	}

	vipInfo := []control.RouterInfo{{Name: "vip", VRID: 1, Port: "outside", Family: control.FamilyIPv4, Version: 3,
		Priority: 200, EffectivePriority: 150, AdverInterval: 1000, MasterAdverInterval: 1000, Preempt: true,
		PreemptDelay: 30000, Accept: true, State: control.RouterMaster, VMAC: "00:00:5e:00:01:01", Master: "198.51.100.10",
		MasterPriority: 150, Addresses: []string{"198.51.100.100"}, SyncGroup: "pair",
		Counters: control.VRRPCounters{AdvertsSent: 1200, AdvertsReceived: 3, Drops: map[string]uint64{"vrid": 2, "ttl": 1},
			Transitions: 2, BecameMaster: 1, LastTransition: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}}}
	out, errOut, code := run(t, env, "-o", "json", "show-router", "vip")
	var got []control.RouterInfo
	if code != ExitOK || errOut != "" || json.Unmarshal([]byte(out), &got) != nil || !reflect.DeepEqual(got, vipInfo) {
		t.Errorf("-o json show-router vip: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	out, errOut, code = run(t, env, "show-router", "nope")
	if code != ExitError || out != "" || errOut != "ulbadm: show-router: no vrrp instance \"nope\"\n" {
		t.Errorf("show-router nope: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = run(t, env, "show-router", "a", "b")
	if code != ExitUsage || out != "" || !strings.HasPrefix(errOut, "ulbadm: show-router: unexpected argument \"b\"\n") {
		t.Errorf("show-router a b: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// watchRun runs ulbadm with args until it returns, publishing events once it watches.
func watchRun(t *testing.T, ctx context.Context, f *fakeulbd.Fake, args []string, events ...control.Event) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"-s", f.Path}, args...), &o, &e, func(string) string { return "" })
	}()
	f.WaitWatchers(t, 1)
	for _, ev := range events {
		f.Events.Publish(ev)
	}
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("ulbadm %v did not end; stdout so far:\n%s", args, o.String())
	}
	f.WaitWatchers(t, 0)
	return o.String(), e.String(), code
}

var (
	evTime = time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	evs    = []control.Event{
		{Time: evTime, Kind: "server", Name: "web"},
		{Time: evTime, Kind: control.EventVRRP, Name: "gw", From: control.RouterInit, To: control.RouterBackup},
		{Time: evTime.Add(time.Second), Kind: control.EventVRRP, Name: "vip", From: control.RouterBackup,
			To: control.RouterMaster, Reason: "master down timer", Master: "198.51.100.10", Priority: 200},
		{Time: evTime.Add(2 * time.Second), Kind: control.EventVRRP, Name: "vip", From: control.RouterMaster, To: control.RouterFault},
	}
)

func TestWatch(t *testing.T) {
	f := fakeulbd.Run(t)
	ctx := context.Background()
	out, errOut, code := watchRun(t, ctx, f, []string{"watch", "-n", "3"}, evs...)
	want := "2025-01-02T03:04:05.006Z server web\n" +
		"2025-01-02T03:04:05.006Z vrrp gw: init -> backup\n" +
		"2025-01-02T03:04:06.006Z vrrp vip: backup -> master (master down timer) master 198.51.100.10 priority 200\n"
	if code != ExitOK || errOut != "" || out != want {
		t.Errorf("watch -n 3: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}

	out, errOut, code = watchRun(t, ctx, f, []string{"watch", "-k", "vrrp", "-n", "2", "vip"}, evs...)
	want = "2025-01-02T03:04:06.006Z vrrp vip: backup -> master (master down timer) master 198.51.100.10 priority 200\n" +
		"2025-01-02T03:04:07.006Z vrrp vip: master -> fault\n"
	if code != ExitOK || errOut != "" || out != want {
		t.Errorf("watch -k vrrp -n 2 vip: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}

	out, errOut, code = watchRun(t, ctx, f, []string{"-o", "json", "watch", "-n", "1", "gw"}, evs...)
	var ev control.Event
	if code != ExitOK || errOut != "" || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &ev) != nil ||
		ev.Name != "gw" || ev.To != control.RouterBackup || ev.Seq == 0 || !ev.Time.Equal(evTime) {
		t.Errorf("-o json watch -n 1 gw: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}

	// Interrupted (SIGINT cancels the context): exit 0 with what was printed.
	cctx, cancel := context.WithCancel(ctx)
	var o syncBuffer
	var e bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Run(cctx, []string{"-s", f.Path, "watch"}, &o, &e, func(string) string { return "" }) }()
	f.WaitWatchers(t, 1)
	f.Events.Publish(evs[1])
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(o.String(), "init -> backup") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if code := <-done; code != ExitOK || e.Len() != 0 || o.String() != "2025-01-02T03:04:05.006Z vrrp gw: init -> backup\n" {
		t.Errorf("interrupted watch: exit %d, stderr %q, stdout %q", code, e.String(), o.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while another goroutine writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWatchErrors(t *testing.T) {
	env := map[string]string{SocketEnv: fakeulbd.Start(t)}
	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"watch", "-n", "0"}, ExitUsage, "ulbadm: watch: bad count \"0\": want a positive integer\n"},
		{[]string{"watch", "-x"}, ExitUsage, "ulbadm: watch: flag provided but not defined: -x\n"},
		{[]string{"watch", "a", "b"}, ExitUsage, "ulbadm: watch: unexpected argument \"b\"\n"},
	} {
		out, errOut, code := run(t, env, tt.args...)
		if code != tt.code || out != "" || !strings.HasPrefix(errOut, tt.err) {
			t.Errorf("ulbadm %v: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, code, out, errOut, tt.code, tt.err)
		}
	}
	missing := t.TempDir() + "/none.sock"
	out, errOut, code := run(t, nil, "-s", missing, "watch")
	if code != ExitError || out != "" || errOut != "ulbadm: cannot reach ulbd at "+missing+": is it running?\n" {
		t.Errorf("watch without ulbd: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
