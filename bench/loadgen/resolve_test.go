package loadgen

import (
	"errors"
	"net/netip"
	"testing"

	"ulb/router/header"
)

func TestParseRouteGet(t *testing.T) {
	for _, tc := range []struct {
		out     string
		want    Route
		wantErr bool
	}{
		{out: `[{"dst":"198.51.100.2","gateway":"192.0.2.1","dev":"eth0","prefsrc":"192.0.2.2","flags":[],"uid":0,"cache":[]}]`,
			want: Route{Dev: "eth0", Src: netip.MustParseAddr("192.0.2.2"), Gateway: netip.MustParseAddr("192.0.2.1")}},
		{out: `[{"dst":"192.0.2.1","dev":"eth0","prefsrc":"192.0.2.2","flags":[],"uid":0,"cache":[]}]`,
			want: Route{Dev: "eth0", Src: netip.MustParseAddr("192.0.2.2")}},
		{out: `[]`, wantErr: true},
		{out: `[{"dst":"192.0.2.1"}]`, wantErr: true},
		{out: `[{"dev":"eth0","gateway":"nonsense"}]`, wantErr: true},
		{out: `[{"dev":"eth0","prefsrc":"x"}]`, wantErr: true},
		{out: `RTNETLINK answers: Network is unreachable`, wantErr: true},
	} {
		got, err := ParseRouteGet([]byte(tc.out))
		if tc.wantErr {
			if !errors.Is(err, ErrResolve) {
				t.Errorf("%s: err %v, want ErrResolve", tc.out, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.out, got, err, tc.want)
		}
	}
	gw := Route{Gateway: netip.MustParseAddr("192.0.2.1")}
	dst := netip.MustParseAddr("198.51.100.2")
	if gw.NextHop(dst) != gw.Gateway || (Route{}).NextHop(dst) != dst {
		t.Error("NextHop: want the gateway, else the destination")
	}
}

func TestParseNeigh(t *testing.T) {
	mac := header.MAC{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	for _, tc := range []struct {
		out     string
		ok      bool
		wantErr bool
	}{
		{out: `[{"dst":"192.0.2.1","dev":"eth0","lladdr":"02:aa:bb:cc:dd:ee","state":["REACHABLE"]}]`, ok: true},
		{out: `[{"dst":"192.0.2.1","dev":"eth0","lladdr":"02:aa:bb:cc:dd:ee","router":null,"state":["STALE"]}]`, ok: true},
		{out: `[{"dst":"192.0.2.1","dev":"eth0","state":["INCOMPLETE"]}]`},
		{out: `[{"dst":"192.0.2.1","dev":"eth0","lladdr":"02:aa:bb:cc:dd:ee","state":["FAILED"]}]`},
		{out: `[]`},
		{out: `[{"lladdr":"zz","state":["REACHABLE"]}]`, wantErr: true},
		{out: `not json`, wantErr: true},
	} {
		got, ok, err := ParseNeigh([]byte(tc.out))
		if tc.wantErr {
			if !errors.Is(err, ErrResolve) {
				t.Errorf("%s: err %v, want ErrResolve", tc.out, err)
			}
			continue
		}
		if err != nil || ok != tc.ok || (ok && got != mac) {
			t.Errorf("%s: %v %v %v; want ok=%v", tc.out, got, ok, err, tc.ok)
		}
	}
	if _, err := ParseMAC("02:00:00:00:00:01"); err != nil {
		t.Error(err)
	}
	if _, err := ParseMAC("02:00:00:00:00:00:00:01"); err == nil {
		t.Error("ParseMAC accepted an EUI-64")
	}
}
