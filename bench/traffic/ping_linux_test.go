package traffic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"ulb/bench/netns"
	"ulb/internal/testenv"
)

// pingPair creates two namespaces joined by a veth pair, a (192.0.2.1, 2001:db8::1) and
// b (192.0.2.2, 2001:db8::2). b forwards, and answers for 198.51.100.0/24 and
// 2001:db8:ff::/64 with unreachable routes, which a routes to b. The namespaces are
// removed when the test ends, whatever its outcome.
func pingPair(t *testing.T) (a, b string) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "ip")
	var rnd [3]byte
	rand.Read(rnd[:])
	a, b = "ulbtp-"+hex.EncodeToString(rnd[:])+"a", "ulbtp-"+hex.EncodeToString(rnd[:])+"b"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{a, b} {
		run("netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	// Without duplicate address detection the link-local addresses, and so NDP, work at
	// once (as bench.Up does it).
	sysctls := []string{"ipv6/conf/default/accept_dad", "ipv6/conf/all/accept_dad"}
	for _, ns := range []string{a, b} {
		if ns == b {
			sysctls = append(sysctls, "ipv4/ip_forward", "ipv6/conf/all/forwarding")
		}
		if err := netns.Do(ns, func() error {
			for _, k := range sysctls {
				v := map[bool]string{true: "0", false: "1"}[strings.HasSuffix(k, "accept_dad")]
				if err := os.WriteFile("/proc/sys/net/"+k, []byte(v), 0); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	run("-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	for i, ns := range []string{a, b} {
		host := string(rune('1' + i))
		run("-n", ns, "addr", "add", "192.0.2."+host+"/24", "dev", "eth0")
		run("-n", ns, "addr", "add", "2001:db8::"+host+"/64", "dev", "eth0", "nodad")
		run("-n", ns, "link", "set", "lo", "up")
		run("-n", ns, "link", "set", "eth0", "up")
	}
	// The kernel drops what a device sends before it reports the link operationally up
	// (the first neighbour solicitation would be lost and retried a second later).
	for _, ns := range []string{a, b} {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			out, err := exec.Command("ip", "-n", ns, "-br", "link", "show", "dev", "eth0").Output()
			if f := strings.Fields(string(out)); err == nil && len(f) > 1 && f[1] == "UP" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("eth0 in %s not up: %s", ns, out)
			}
		}
	}
	run("-n", a, "route", "add", "198.51.100.0/24", "via", "192.0.2.2")
	run("-n", a, "route", "add", "2001:db8:ff::/64", "via", "2001:db8::2")
	run("-n", b, "route", "add", "unreachable", "198.51.100.0/24")
	run("-n", b, "route", "add", "unreachable", "2001:db8:ff::/64")
	return a, b
}

// pingIn runs Ping with its socket opened in namespace ns.
func pingIn(t *testing.T, ns, to string, count int, timeout time.Duration) (PingResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var res PingResult
	var perr error
	if err := netns.Do(ns, func() error {
		res, perr = Ping(ctx, netip.MustParseAddr(to), count)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ping %s: %s (err %v)", to, res, perr)
	return res, perr
}

func TestPingNamespaces(t *testing.T) {
	a, _ := pingPair(t)
	for _, to := range []string{"192.0.2.2", "2001:db8::2"} {
		t.Run("answered "+to, func(t *testing.T) {
			res, err := pingIn(t, a, to, 3, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			// The first request may be lost while the link comes up, never a reply counted twice.
			if res.Received != 3 || res.Sent < 3 || res.Sent > 5 {
				t.Errorf("%d/%d replies, want 3 of 3 to 5", res.Received, res.Sent)
			}
			if res.RTTMin <= 0 || res.RTTMin > res.RTTAvg || res.RTTAvg > res.RTTMax || res.RTTMax > time.Second {
				t.Errorf("rtt min/avg/max %v/%v/%v", res.RTTMin, res.RTTAvg, res.RTTMax)
			}
			if !strings.HasPrefix(res.String(), "3/") || !strings.Contains(res.String(), "rtt min/avg/max") {
				t.Errorf("String() = %q", res)
			}
		})
	}
	for _, to := range []string{"192.0.2.99", "2001:db8::99"} {
		t.Run("nobody at "+to, func(t *testing.T) {
			start := time.Now()
			res, err := pingIn(t, a, to, 1, time.Second)
			if !errors.Is(err, ErrTooFewReplies) {
				t.Fatalf("err = %v, want ErrTooFewReplies", err)
			}
			if took := time.Since(start); took > 1500*time.Millisecond {
				t.Errorf("ping took %v with a 1s deadline", took)
			}
			// One request per PingInterval during the deadline: 5, give or take one.
			if res.Received != 0 || res.Sent < 4 || res.Sent > 6 {
				t.Errorf("%d/%d replies, want 0 of about 5", res.Received, res.Sent)
			}
		})
	}
	for _, c := range []struct{ to, from string }{{"198.51.100.7", "192.0.2.2"}, {"2001:db8:ff::7", "2001:db8::2"}} {
		t.Run("unreachable "+c.to, func(t *testing.T) {
			res, err := pingIn(t, a, c.to, 2, time.Second)
			if !errors.Is(err, ErrTooFewReplies) || res.Received != 0 {
				t.Fatalf("%s, err %v; want no reply", res, err)
			}
			if !strings.Contains(res.Error, "destination unreachable") || !strings.HasSuffix(res.Error, "from "+c.from) {
				t.Errorf("Error = %q, want destination unreachable from %s", res.Error, c.from)
			}
		})
	}
	// Two pings at once from one namespace each count only their own replies.
	t.Run("concurrent", func(t *testing.T) {
		errs := make(chan error, 2)
		for _, to := range []string{"192.0.2.2", "192.0.2.99"} {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				var res PingResult
				var perr error
				err := netns.Do(a, func() error { res, perr = Ping(ctx, netip.MustParseAddr(to), 5); return nil })
				switch {
				case err != nil:
					errs <- err
				case to == "192.0.2.2" && (perr != nil || res.Received != 5):
					errs <- errors.New("answered ping: " + res.String())
				case to == "192.0.2.99" && res.Received != 0:
					errs <- errors.New("unanswered ping counted replies: " + res.String())
				default:
					errs <- nil
				}
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

// TestEchoError: an ICMP error counts only when it quotes an echo request of ours.
func TestEchoError(t *testing.T) {
	req := func(typ icmp.Type, id int) []byte {
		b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("x")}}).Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ip4 := make([]byte, 20)
	ip4[0] = 0x45
	ip6 := make([]byte, 40)
	ip6[0] = 0x60
	cases := []struct {
		name  string
		m     icmp.Message
		proto int
		want  string
	}{
		{"v4 ours", icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 1,
			Body: &icmp.DstUnreach{Data: append(ip4, req(ipv4.ICMPTypeEcho, 77)...)}}, protoICMP, "destination unreachable (code 1)"},
		{"v4 other id", icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 1,
			Body: &icmp.DstUnreach{Data: append(ip4, req(ipv4.ICMPTypeEcho, 78)...)}}, protoICMP, ""},
		{"v4 quotes a reply", icmp.Message{Type: ipv4.ICMPTypeTimeExceeded,
			Body: &icmp.TimeExceeded{Data: append(ip4, req(ipv4.ICMPTypeEchoReply, 77)...)}}, protoICMP, ""},
		{"v4 truncated", icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable,
			Body: &icmp.DstUnreach{Data: ip4[:10]}}, protoICMP, ""},
		{"v6 ours", icmp.Message{Type: ipv6.ICMPTypeTimeExceeded,
			Body: &icmp.TimeExceeded{Data: append(ip6, req(ipv6.ICMPTypeEchoRequest, 77)...)}}, protoICMPv6, "time exceeded (code 0)"},
		{"v6 echo reply is no error", icmp.Message{Type: ipv6.ICMPTypeEchoReply, Body: &icmp.Echo{ID: 77}}, protoICMPv6, ""},
	}
	for _, c := range cases {
		if got := echoError(&c.m, c.proto, 77); got != c.want {
			t.Errorf("%s: echoError = %q, want %q", c.name, got, c.want)
		}
	}
}
