package loadgen

import (
	"context"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"ulb/bench/netns"
)

// tcpSNMP returns the Tcp counters of /proc/net/snmp in namespace ns.
func tcpSNMP(t *testing.T, ns string) map[string]int64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		m := map[string]int64{}
		for i, v := range f[1:] {
			m[names[i]], _ = strconv.ParseInt(v, 10, 64)
		}
		return m
	}
	t.Fatalf("no Tcp counters in\n%s", out)
	return nil
}

// TestFloodReachesTheKernel floods a listener's namespace over a veth pair at a low rate:
// the receiving kernel takes every SYN the sender's kernel accepted as a TCP segment
// (InSegs) and finds no checksum error (InCsumErrors), though the sources are spoofed.
func TestFloodReachesTheKernel(t *testing.T) {
	a, b := vethPair(t)
	before := tcpSNMP(t, b)
	const rate = 2000
	cfg := FloodConfig{Dst: netip.MustParseAddrPort("192.0.2.2:80"), Sources: netip.MustParsePrefix("198.51.100.0/24"),
		Duration: 300 * time.Millisecond, Rate: rate}
	var rep FloodReport
	if err := netns.Do(a, func() error {
		var err error
		rep, err = Flood(context.Background(), cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("flood %+v", rep)
	if rep.Sent == 0 || rep.Accepted+rep.TxErrors != rep.Sent || rep.Device != "eth0" || rep.FrameLen != SYNFrameLen4 ||
		rep.Sources != "198.51.100.0/24" || rep.EndNS <= rep.StartNS {
		t.Fatalf("report %+v", rep)
	}
	if limit := uint64(float64(rate)*time.Duration(rep.ElapsedNS).Seconds()) + 1; rep.Sent > limit {
		t.Errorf("sent %d SYNs in %v at %d/s: more than %d", rep.Sent, time.Duration(rep.ElapsedNS), rate, limit)
	}
	var after map[string]int64
	for range 50 {
		after = tcpSNMP(t, b)
		if after["InSegs"]-before["InSegs"] >= int64(rep.Accepted) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := after["InSegs"] - before["InSegs"]; got < int64(rep.Accepted) {
		t.Errorf("the receiver took %d TCP segments of %d SYNs", got, rep.Accepted)
	}
	if e := after["InCsumErrors"] - before["InCsumErrors"]; e != 0 {
		t.Errorf("%d checksum errors", e)
	}

	// IPv6: the next hop is resolved by neighbour discovery.
	for ns, addr := range map[string]string{a: "2001:db8:9::1/64", b: "2001:db8:9::2/64"} {
		if out, err := exec.Command("ip", "-n", ns, "addr", "add", addr, "dev", "eth0", "nodad").CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v: %s", addr, err, out)
		}
	}
	before = tcpSNMP(t, b)
	cfg6 := FloodConfig{Dst: netip.MustParseAddrPort("[2001:db8:9::2]:80"), Sources: netip.MustParsePrefix("2001:db8:ff::/48"),
		Duration: 200 * time.Millisecond, Rate: rate}
	var rep6 FloodReport
	if err := netns.Do(a, func() error {
		var err error
		rep6, err = Flood(context.Background(), cfg6)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("IPv6 flood %+v", rep6)
	if rep6.Sent == 0 || rep6.FrameLen != SYNFrameLen6 || rep6.DstMAC != rep.DstMAC {
		t.Fatalf("IPv6 report %+v", rep6)
	}
	for range 50 {
		after = tcpSNMP(t, b)
		if after["InSegs"]-before["InSegs"] >= int64(rep6.Accepted) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := after["InSegs"] - before["InSegs"]; got < int64(rep6.Accepted) {
		t.Errorf("the receiver took %d TCP segments of %d IPv6 SYNs", got, rep6.Accepted)
	}
	if e := after["InCsumErrors"] - before["InCsumErrors"]; e != 0 {
		t.Errorf("%d checksum errors over IPv6", e)
	}

	// A source prefix outside the documentation ranges is refused before anything is sent.
	cfg.Sources = netip.MustParsePrefix("10.0.0.0/24")
	if err := netns.Do(a, func() error { _, err := Flood(context.Background(), cfg); return err }); err == nil ||
		!strings.Contains(err.Error(), "outside the documentation prefixes") {
		t.Errorf("flood from 10.0.0.0/24: %v", err)
	}
}
