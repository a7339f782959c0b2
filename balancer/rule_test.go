package balancer

import (
	"errors"
	"net/netip"
	"testing"
)

func TestSetValidation(t *testing.T) {
	ok := rule("web", RoundRobin, servers(1, 1))
	tests := []struct {
		name string
		edit func(rs []RuleConfig) []RuleConfig
		want error
	}{
		{"empty name", func(rs []RuleConfig) []RuleConfig { rs[0].Name = ""; return rs }, ErrName},
		{"duplicate name", func(rs []RuleConfig) []RuleConfig {
			o := rs[0]
			o.PortLo, o.PortHi = 81, 81
			return append(rs, o)
		}, ErrName},
		{"no VIP", func(rs []RuleConfig) []RuleConfig { rs[0].VIP = netip.Addr{}; return rs }, ErrVIP},
		{"mapped VIP", func(rs []RuleConfig) []RuleConfig {
			rs[0].VIP = netip.AddrFrom16(vip4.As16())
			return rs
		}, ErrVIP},
		{"port 0", func(rs []RuleConfig) []RuleConfig { rs[0].PortLo = 0; return rs }, ErrPortRange},
		{"lo > hi", func(rs []RuleConfig) []RuleConfig { rs[0].PortLo, rs[0].PortHi = 90, 80; return rs }, ErrPortRange},
		{"server range past 65535", func(rs []RuleConfig) []RuleConfig {
			rs[0].PortLo, rs[0].PortHi = 8000, 8099
			rs[0].Servers[0].Port = 65500
			return rs
		}, ErrPortRange},
		{"icmp", func(rs []RuleConfig) []RuleConfig { rs[0].Proto = 1; return rs }, ErrProto},
		{"algorithm", func(rs []RuleConfig) []RuleConfig { rs[0].Algorithm = "random"; return rs }, ErrAlgorithm},
		{"topology", func(rs []RuleConfig) []RuleConfig { rs[0].Topology = 7; return rs }, ErrTopology},
		{"full-nat without proxy", func(rs []RuleConfig) []RuleConfig { rs[0].Topology = FullNAT; return rs }, ErrProxySource},
		{"proxy family", func(rs []RuleConfig) []RuleConfig {
			rs[0].Topology = FullNAT
			rs[0].ProxySource = []netip.Addr{netip.MustParseAddr("2001:db8::50")}
			return rs
		}, ErrFamily},
		{"server family", func(rs []RuleConfig) []RuleConfig {
			rs[0].Servers[1].Addr = netip.MustParseAddr("2001:db8::1")
			return rs
		}, ErrFamily},
		{"dsr port translation", func(rs []RuleConfig) []RuleConfig {
			rs[0].Topology = DSR
			rs[0].Servers[0].Port = 8080
			return rs
		}, ErrDSRPort},
		{"pmask v4", func(rs []RuleConfig) []RuleConfig { rs[0].PMask = 33; return rs }, ErrPMask},
		{"pmask negative", func(rs []RuleConfig) []RuleConfig { rs[0].PMask = -2; return rs }, ErrPMask},
		{"weight", func(rs []RuleConfig) []RuleConfig { rs[0].Servers[0].Weight = -1; return rs }, ErrServer},
		{"weight too big", func(rs []RuleConfig) []RuleConfig { rs[0].Servers[0].Weight = MaxWeight + 1; return rs }, ErrServer},
		{"max conns", func(rs []RuleConfig) []RuleConfig { rs[0].Servers[0].MaxConns = -1; return rs }, ErrServer},
		{"server twice", func(rs []RuleConfig) []RuleConfig {
			rs[0].Servers[1] = rs[0].Servers[0]
			return rs
		}, ErrServer},
		{"server address", func(rs []RuleConfig) []RuleConfig {
			rs[0].Servers[1].Addr = netip.IPv4Unspecified()
			return rs
		}, ErrServer},
		{"overlapping ranges", func(rs []RuleConfig) []RuleConfig {
			rs[0].PortLo, rs[0].PortHi = 8000, 8099
			o := rule("other", RoundRobin, servers(1))
			o.PortLo, o.PortHi = 8099, 8100
			return append(rs, o)
		}, ErrOverlap},
		{"group mismatch", func(rs []RuleConfig) []RuleConfig {
			rs[0].Group = "g"
			o := rule("other", RoundRobin, servers(1))
			o.PortLo, o.PortHi, o.Group = 443, 443, "g"
			return append(rs, o)
		}, ErrGroup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := ok
			base.Servers = servers(1, 1)
			b, _ := setup(t, base)
			rs := tt.edit([]RuleConfig{base})
			err := b.Set(rs)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Set = %v, want %v", err, tt.want)
			}
			// A refused Set changes nothing.
			if r, found := b.Snapshot().RuleByName("web"); !found || len(r.members) != 2 {
				t.Fatalf("refused Set changed the snapshot")
			}
		})
	}
	// The same VIP and ports with another protocol, or another VIP, is fine; so is a
	// group shared by two rules with the same servers.
	a := rule("a", RoundRobin, servers(1))
	a.Group = "g"
	u := rule("u", RoundRobin, servers(1))
	u.Proto, u.Group = ProtoUDP, "g"
	v := v6rule(rule("v", RoundRobin, servers(1)))
	v.PMask = 128
	b := New(Config{})
	if err := b.Set([]RuleConfig{a, u, v}); err != nil {
		t.Fatalf("Set of valid rules: %v", err)
	}
}

func TestParseTopology(t *testing.T) {
	for _, tp := range []Topology{HalfNAT, FullNAT, DSR} {
		got, err := ParseTopology(tp.String())
		if err != nil || got != tp {
			t.Errorf("ParseTopology(%q) = %v, %v", tp.String(), got, err)
		}
	}
	if _, err := ParseTopology("nat"); !errors.Is(err, ErrTopology) {
		t.Errorf("ParseTopology(nat) = %v", err)
	}
}

func TestMatch(t *testing.T) {
	web := rule("web", RoundRobin, servers(1))
	rng := rule("range", RoundRobin, servers(1))
	rng.PortLo, rng.PortHi = 8000, 8099
	dns := rule("dns", RoundRobin, servers(1))
	dns.Proto, dns.PortLo, dns.PortHi = ProtoUDP, 53, 53
	off := rule("off", RoundRobin, servers(1))
	off.PortLo, off.PortHi, off.Enabled = 443, 443, false
	six := v6rule(rule("six", RoundRobin, servers(1)))
	b, _ := setup(t, web, rng, dns, off, six)
	s := b.Snapshot()
	tests := []struct {
		proto uint8
		vip   netip.Addr
		port  uint16
		want  string
	}{
		{ProtoTCP, vip4, 80, "web"},
		{ProtoTCP, vip4, 81, ""},
		{ProtoUDP, vip4, 80, ""},
		{ProtoTCP, vip4, 7999, ""},
		{ProtoTCP, vip4, 8000, "range"},
		{ProtoTCP, vip4, 8042, "range"},
		{ProtoTCP, vip4, 8099, "range"},
		{ProtoTCP, vip4, 8100, ""},
		{ProtoUDP, vip4, 53, "dns"},
		{ProtoTCP, vip4, 443, ""}, // disabled
		{ProtoTCP, netip.MustParseAddr("198.51.100.101"), 80, ""},
		{ProtoTCP, vip6, 80, "six"},
		{ProtoTCP, netip.AddrFrom16(vip4.As16()), 80, ""}, // ::ffff:VIP is not the IPv4 VIP
	}
	for _, tt := range tests {
		r, ok := s.Match(tt.proto, tt.vip, tt.port)
		got := ""
		if ok {
			got = r.Name()
		}
		if got != tt.want {
			t.Errorf("Match(%d, %v, %d) = %q, want %q", tt.proto, tt.vip, tt.port, got, tt.want)
		}
	}
	if a := testing.AllocsPerRun(1000, func() { s.Match(ProtoTCP, vip4, 8042) }); a != 0 {
		t.Errorf("Match allocates %v times", a)
	}
	if err := b.EnableRule("off"); err != nil {
		t.Fatal(err)
	}
	if r, ok := b.Snapshot().Match(ProtoTCP, vip4, 443); !ok || r.Name() != "off" {
		t.Errorf("enabled rule does not match")
	}
	if err := b.DisableRule("web"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Snapshot().Match(ProtoTCP, vip4, 80); ok {
		t.Errorf("disabled rule matches")
	}
	if err := b.DisableRule("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DisableRule(nope) = %v", err)
	}
}

func TestPortRangeOffset(t *testing.T) {
	srv := []ServerConfig{{Addr: srv4(1), Port: 9000, Weight: 1}}
	r1 := rule("range", RoundRobin, srv)
	r1.PortLo, r1.PortHi = 8000, 8099
	same := rule("same", RoundRobin, []ServerConfig{{Addr: srv4(2), Weight: 1}})
	same.PortLo, same.PortHi = 7000, 7099
	one := rule("one", RoundRobin, []ServerConfig{{Addr: srv4(3), Port: 8080, Weight: 1}})
	b, _ := setup(t, r1, same, one)
	c := clientN(1, false)
	for _, tt := range []struct {
		rule  string
		dport uint16
		want  uint16
	}{
		{"range", 8000, 9000}, {"range", 8005, 9005}, {"range", 8099, 9099},
		{"same", 7000, 7000}, {"same", 7042, 7042},
		{"one", 80, 8080},
	} {
		p := mustPick(t, mustRule(t, b, tt.rule), c, 40000, tt.dport)
		if p.Port != tt.want {
			t.Errorf("%s: dport %d -> server port %d, want %d", tt.rule, tt.dport, p.Port, tt.want)
		}
	}
}
