package format

import (
	"strings"
	"testing"
	"time"

	"ulb/router/control"
)

func TestEventLine(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))
	for _, tt := range []struct {
		ev   control.Event
		want string
	}{
		{control.Event{Time: at, Kind: control.EventLost, Missed: 12}, "2025-01-02T03:04:05.000+01:00 lost: 12 events missed"},
		{control.Event{Time: at, Kind: control.EventVRRP, Name: "vip", To: control.RouterMaster, Priority: 255},
			"2025-01-02T03:04:05.000+01:00 vrrp vip: - -> master priority 255"},
		{control.Event{Time: at, Kind: "server", Name: "web", Reason: "all servers disabled"},
			"2025-01-02T03:04:05.000+01:00 server web (all servers disabled)"},
		{control.Event{Time: at}, "2025-01-02T03:04:05.000+01:00 -"},
	} {
		if got := Event(tt.ev); got != tt.want {
			t.Errorf("Event(%+v) = %q, want %q", tt.ev, got, tt.want)
		}
	}
}

func TestModeAndPrio(t *testing.T) {
	for _, tt := range []struct {
		r          control.RouterInfo
		mode, prio string
	}{
		{control.RouterInfo{Priority: 100, EffectivePriority: 100}, "---", "100"},
		{control.RouterInfo{Priority: 255, Preempt: true, Accept: true}, "opa", "255"}, // effective not reported
		{control.RouterInfo{Priority: 200, EffectivePriority: 1, Accept: true}, "--a", "1/200"},
	} {
		if m, p := Mode(&tt.r), Prio(&tt.r); m != tt.mode || p != tt.prio {
			t.Errorf("%+v: mode %q prio %q, want %q %q", tt.r, m, p, tt.mode, tt.prio)
		}
	}
}

// An instance with advert ports shows its links in PORT and a LINK row for each.
func TestRoutersLinks(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	r := control.RouterInfo{Name: "vip", VRID: 7, Port: "lan", Family: "ipv4", Version: 3, Priority: 100,
		State: control.RouterBackup, Links: []control.RouterLink{
			{Port: "lan", Source: "198.51.100.12", AdvertsReceived: 3, LastAdvert: at, LastFrom: "198.51.100.11"},
			{Port: "xover", Source: "192.0.2.2", Drops: 1},
		}}
	var b strings.Builder
	if err := Routers(&b, []control.RouterInfo{r}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), " lan+xover ") {
		t.Errorf("table without the links in PORT:\n%s", b.String())
	}
	b.Reset()
	if err := RoutersFull(&b, []control.RouterInfo{r}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"LINK:            lan from 198.51.100.12: 0 sent, 3 received, 0 dropped, last advert 2025-01-02T03:04:05.000Z from 198.51.100.11",
		"LINK:            xover from 192.0.2.2: 0 sent, 0 received, 1 dropped, no advert yet",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("full view without %q:\n%s", want, b.String())
		}
	}
}
