package hostcheck

import (
	"net/netip"
	"strings"
	"testing"
)

func TestFindingString(t *testing.T) {
	addr := netip.MustParsePrefix("2001:db8::10/64")
	tests := []struct {
		f    Finding
		want []string // substrings the message must hold
	}{
		{Finding{Kind: DeviceOK, Severity: Info, Device: "eth1"}, []string{"device eth1 is ready"}},
		{Finding{Kind: DeviceMissing, Severity: Fatal, Device: "eth1"}, []string{"device eth1 does not exist"}},
		{Finding{Kind: DeviceDown, Severity: Warning, Device: "eth1"}, []string{"device eth1 is down", "ip link set eth1 up"}},
		{Finding{Kind: IPv4Address, Severity: Fatal, Device: "eth1", Address: netip.MustParsePrefix("198.51.100.10/24")},
			[]string{"device eth1 carries kernel IPv4 address 198.51.100.10/24: the kernel would answer ARP for it", "`ip addr flush dev eth1`"}},
		{Finding{Kind: IPv6Address, Severity: Fatal, Device: "eth1", Address: addr},
			[]string{"kernel IPv6 address 2001:db8::10/64", "net.ipv6.conf.eth1.disable_ipv6=1"}},
		{Finding{Kind: IPv6Enabled, Severity: Warning, Device: "eth1"}, []string{"has IPv6 enabled", "sysctl -w net.ipv6.conf.eth1.disable_ipv6=1"}},
		{Finding{Kind: IPv6Enabled, Severity: Fixed, Device: "eth1"}, []string{"had IPv6 enabled: disabled it"}},
		{Finding{Kind: IPv4Forwarding, Severity: Fatal}, []string{"net.ipv4.ip_forward=1", "sysctl -w net.ipv4.ip_forward=0"}},
		{Finding{Kind: IPv6Forwarding, Severity: Fatal}, []string{"net.ipv6.conf.all.forwarding=1", "sysctl -w net.ipv6.conf.all.forwarding=0"}},
		{Finding{Kind: Kind(99), Device: "x"}, []string{"finding kind 99"}},
	}
	for _, tt := range tests {
		msg := tt.f.String()
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%+v: message %q lacks %q", tt.f, msg, w)
			}
		}
	}
}

func TestSeverity(t *testing.T) {
	for s, want := range map[Severity]string{Info: "info", Fixed: "fixed", Warning: "warning", Fatal: "fatal", Severity(7): "severity(7)"} {
		if got := s.String(); got != want {
			t.Errorf("Severity(%d).String() = %q, want %q", int(s), got, want)
		}
	}
	if AnyFatal([]Finding{{Severity: Info}, {Severity: Fixed}, {Severity: Warning}}) {
		t.Error("AnyFatal without a fatal finding")
	}
	if !AnyFatal([]Finding{{Severity: Info}, {Severity: Fatal}}) {
		t.Error("AnyFatal missed a fatal finding")
	}
}
