package format

import (
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
