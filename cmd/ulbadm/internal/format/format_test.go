package format

import (
	"bytes"
	"strings"
	"testing"

	"ulb/router/control"
)

func check(t *testing.T, got *bytes.Buffer, want string) {
	t.Helper()
	want = strings.TrimPrefix(want, "\n")
	if got.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestPorts(t *testing.T) {
	var b bytes.Buffer
	err := Ports(&b, []control.PortInfo{
		{Name: "outside", Device: "eth1", Kind: "afpacket", MAC: "02:00:00:00:00:01", MTU: 1500,
			Addresses: []string{"198.51.100.10/24", "2001:db8:1::10/64"}, Up: true},
		{Name: "in", Kind: "tun", MTU: 9000},
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
NAME     DEVICE  KIND      MAC                MTU   STATE  ADDRESSES
outside  eth1    afpacket  02:00:00:00:00:01  1500  up     198.51.100.10/24,2001:db8:1::10/64
in       -       tun       -                  9000  down   -
`)
}

func TestRoutes(t *testing.T) {
	var b bytes.Buffer
	err := Routes(&b, []control.RouteInfo{
		{Prefix: "0.0.0.0/0", Via: "198.51.100.1", Port: "outside", Kind: "static"},
		{Prefix: "203.0.113.0/24", Port: "inside", Kind: "connected"},
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
PREFIX          VIA           PORT     KIND
0.0.0.0/0       198.51.100.1  outside  static
203.0.113.0/24  -             inside   connected
`)
}

func TestNeighs(t *testing.T) {
	var b bytes.Buffer
	err := Neighs(&b, []control.NeighInfo{
		{Port: "inside", Address: "203.0.113.200", MAC: "02:00:00:00:00:c8", State: "reachable", Age: 12},
		{Port: "outside", Address: "2001:db8:1::1", State: "incomplete"},
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
PORT     ADDRESS        MAC                STATE       AGE
inside   203.0.113.200  02:00:00:00:00:c8  reachable   12s
outside  2001:db8:1::1  -                  incomplete  0s
`)
}

func TestEmptyTablesHaveHeaders(t *testing.T) {
	var b bytes.Buffer
	if err := Routes(&b, nil); err != nil {
		t.Fatal(err)
	}
	check(t, &b, "PREFIX  VIA  PORT  KIND\n")
}

func TestStats(t *testing.T) {
	var b bytes.Buffer
	s := &control.StatsInfo{
		Uptime: 5e9,
		Ports: []control.PortStats{
			{Name: "outside", PortCounters: control.PortCounters{RxPackets: 100, RxBytes: 64000, TxPackets: 90, TxBytes: 57600, RxDrops: 2, TxErrors: 1}},
			{Name: "inside", PortCounters: control.PortCounters{RxPackets: 90, RxBytes: 57600, TxPackets: 100, TxBytes: 64000}},
		},
		Drops:     map[string]uint64{"ttl-exceeded": 3, "bad-checksum": 5},
		Forwarded: 180, Local: 7, ICMPSent: 3,
	}
	if err := Stats(&b, s); err != nil {
		t.Fatal(err)
	}
	check(t, &b, `
PORT     RX-PKTS  RX-BYTES  TX-PKTS  TX-BYTES  RX-DROPS  TX-ERRORS
outside  100      64000     90       57600     2         1
inside   90       57600     100      64000     0         0

FORWARDED  LOCAL  ICMP-SENT  DROPS
180        7      3          10

DROP-REASON   PACKETS
bad-checksum  5
ttl-exceeded  3
`)
	b.Reset()
	s.Sync = &control.SyncInfo{Peers: []string{"203.0.113.12"}, Port: 8848, Sending: true, SentRecords: 40,
		ReceivedRecords: 2, Adopted: 1, Refreshed: 1, Malformed: 1, FromStranger: 2}
	if err := Stats(&b, s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `
SYNC-PEERS    SENDING  SENT-RECORDS  RECV-RECORDS  ADOPTED  REFRESHED  UNKNOWN  REFUSED  DROPPED-MSGS
203.0.113.12  yes      40            2             1        1          0        0        3
`) {
		t.Errorf("with sync:\n%s", &b)
	}
	s.Sync = nil
	b.Reset()
	s.Drops = nil
	if err := Stats(&b, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "DROP-REASON") || !strings.HasSuffix(b.String(), "180        7      3          2\n") {
		t.Errorf("without drop reasons:\n%s", &b)
	}
}

func stats(uptimeSec int64, rxPkts, rxBytes, txPkts, txBytes, drops uint64) *control.StatsInfo {
	return &control.StatsInfo{
		Uptime: uptimeSec * 1e9,
		Ports: []control.PortStats{
			{Name: "a", PortCounters: control.PortCounters{RxPackets: rxPkts, RxBytes: rxBytes}},
			{Name: "b", PortCounters: control.PortCounters{TxPackets: txPkts, TxBytes: txBytes}},
		},
		Drops: map[string]uint64{"no-route": drops},
	}
}

func TestComputeRates(t *testing.T) {
	first := stats(10, 1000, 1_250_000, 500, 250_000, 20)
	second := stats(12, 3000, 3_750_000, 900, 500_000, 30)
	tests := []struct {
		name      string
		prev, cur *control.StatsInfo
		want      Rates
	}{
		{"since start", nil, first, Rates{RxPPS: 100, TxPPS: 50, RxMbps: 1, TxMbps: 0.2, DropsPS: 2}},
		{"interval", first, second, Rates{RxPPS: 1000, TxPPS: 200, RxMbps: 10, TxMbps: 1, DropsPS: 5}},
		{"restarted", second, stats(2, 200, 250_000, 0, 0, 0), Rates{RxPPS: 100, RxMbps: 1}},
		{"no time", first, first, Rates{RxPPS: 100, TxPPS: 50, RxMbps: 1, TxMbps: 0.2, DropsPS: 2}},
		{"zero uptime", nil, stats(0, 1, 1, 1, 1, 1), Rates{}},
	}
	for _, tt := range tests {
		if got := ComputeRates(tt.prev, tt.cur); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestRateWriterRepeatsHeader(t *testing.T) {
	var b bytes.Buffer
	rw := NewRateWriter(&b)
	for i := range HeaderEvery + 2 {
		if err := rw.Write(Rates{RxPPS: float64(i), TxMbps: 1.5}); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	header := "      RX-PPS       TX-PPS  RX-MBIT/S  TX-MBIT/S    DROPS/S"
	if len(lines) != HeaderEvery+4 || lines[0] != header || lines[HeaderEvery+1] != header {
		t.Fatalf("%d lines:\n%s", len(lines), &b)
	}
	if want := "           3            0       0.00       1.50          0"; lines[4] != want {
		t.Errorf("line 4 = %q, want %q", lines[4], want)
	}
}

// TestReload: the counts, the ports a reload added, removed and changed, what needs a
// restart.
func TestReload(t *testing.T) {
	var b bytes.Buffer
	Reload(&b, control.ReloadInfo{File: "lb1.toml", Ports: 3, Routes: 1, Rules: 2, HealthChecks: 1,
		PortsAdded: []string{"extra"}, PortsChanged: []string{"inside", "outside"}, Restart: []string{"[dataplane]"}})
	check(t, &b, `
reloaded lb1.toml: 3 ports, 1 routes, 2 rules, 1 health checks
ports added: extra
ports changed: inside, outside
changed, but taking effect only after a restart: [dataplane]
`)
}
