package fib

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// refLookup is the slow reference: a linear scan for the longest containing prefix.
func refLookup(routes []NextHop, a netip.Addr) (NextHop, bool) {
	a = a.WithZone("")
	best, found := NextHop{}, false
	for _, h := range routes {
		if h.Prefix.Contains(a) && (!found || h.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = h, true
		}
	}
	return best, found
}

func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return netip.AddrFrom4(b)
}

// randIn returns a random address inside p.
func randIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	a := randAddr(r, p.Addr().Is6())
	pb := prefixBytes(p)
	ab := prefixBytes(netip.PrefixFrom(a, a.BitLen()))
	for i := range p.Bits() {
		bit := byte(0x80) >> (i % 8)
		ab[i/8] = ab[i/8]&^bit | pb[i/8]&bit
	}
	if len(ab) == 4 {
		return netip.AddrFrom4([4]byte(ab))
	}
	return netip.AddrFrom16([16]byte(ab))
}

// randPrefixes makes n prefixes of both families that overlap a lot: clusters of
// prefixes of several lengths around shared base addresses, plus /0, host routes and
// prefixes in the IPv4-mapped range.
func randPrefixes(r *rand.Rand, n int) []netip.Prefix {
	ps := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),
		netip.MustParsePrefix("::/0"),
		netip.MustParsePrefix("::ffff:0:0/96"),
		netip.MustParsePrefix("::ffff:192.0.2.0/120"),
		netip.MustParsePrefix("192.0.2.1/32"),
		netip.MustParsePrefix("2001:db8::1/128"),
	}
	for len(ps) < n {
		v6 := r.IntN(2) == 1
		base := randAddr(r, v6)
		k := 1 + r.IntN(6)
		for range k {
			l := r.IntN(base.BitLen() + 1)
			if r.IntN(4) == 0 {
				l = base.BitLen() - r.IntN(3) // many long prefixes and host routes
			}
			ps = append(ps, netip.PrefixFrom(base, l))
		}
	}
	return ps
}

func TestLookupMatchesLinearScan(t *testing.T) {
	for _, n := range []int{1, 2, 10, 100, 1000, 2500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 7))
			var b Builder
			for i, p := range randPrefixes(r, n) {
				gw := netip.Addr{}
				if i%3 == 0 {
					gw = randAddr(r, p.Addr().Is6())
				}
				if err := b.Insert(p, NextHop{Port: i, Gateway: gw, Kind: Kind(i % 3)}); err != nil {
					t.Fatal(err)
				}
			}
			tab := b.Build()
			routes := tab.Routes()
			if len(routes) != b.Len() || tab.Len() != b.Len() {
				t.Fatalf("table has %d routes, builder %d", len(routes), b.Len())
			}
			check := func(a netip.Addr) {
				t.Helper()
				got, gok := tab.Lookup(a)
				want, wok := refLookup(routes, a)
				if got != want || gok != wok {
					t.Fatalf("Lookup(%v) = %+v %v, want %+v %v", a, got, gok, want, wok)
				}
			}
			for _, h := range routes {
				p := h.Prefix
				check(p.Addr())
				check(randIn(r, p))
				// Last address of the prefix.
				last := randIn(r, p)
				lb := prefixBytes(netip.PrefixFrom(last, last.BitLen()))
				for i := p.Bits(); i < len(lb)*8; i++ {
					lb[i/8] |= 0x80 >> (i % 8)
				}
				if len(lb) == 4 {
					check(netip.AddrFrom4([4]byte(lb)))
				} else {
					check(netip.AddrFrom16([16]byte(lb)))
				}
			}
			for range 10000 {
				check(randAddr(r, r.IntN(2) == 1))
			}
		})
	}
}

func TestFamiliesAndMapped(t *testing.T) {
	var b Builder
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Insert(netip.MustParsePrefix("0.0.0.0/0"), NextHop{Port: 1}))
	tab := b.Build()
	if _, ok := tab.Lookup(netip.MustParseAddr("::ffff:192.0.2.1")); ok {
		t.Error("IPv4-mapped address matched an IPv4 route")
	}
	if _, ok := tab.Lookup(netip.MustParseAddr("2001:db8::1")); ok {
		t.Error("IPv6 address matched an IPv4 default route")
	}
	must(b.Insert(netip.MustParsePrefix("::ffff:0:0/96"), NextHop{Port: 2}))
	must(b.Insert(netip.MustParsePrefix("fe80::/10"), NextHop{Port: 3}))
	tab = b.Build()
	if h, ok := tab.Lookup(netip.MustParseAddr("::ffff:192.0.2.1")); !ok || h.Port != 2 {
		t.Errorf("mapped address: got %+v %v, want the ::ffff:0:0/96 route", h, ok)
	}
	if h, ok := tab.Lookup(netip.MustParseAddr("192.0.2.1")); !ok || h.Port != 1 {
		t.Errorf("IPv4 address: got %+v %v, want the IPv4 default", h, ok)
	}
	if h, ok := tab.Lookup(netip.MustParseAddr("fe80::1%eth0")); !ok || h.Port != 3 {
		t.Errorf("zoned address: got %+v %v, want fe80::/10", h, ok)
	}
	if _, ok := tab.Lookup(netip.Addr{}); ok {
		t.Error("invalid address matched")
	}
}

func TestInsertNormalizesAndReplaces(t *testing.T) {
	var b Builder
	p := netip.MustParsePrefix("198.51.100.77/24")
	if err := b.Insert(p, NextHop{Port: 1, Prefix: netip.MustParsePrefix("10.0.0.0/8")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Insert(netip.MustParsePrefix("198.51.100.0/24"), NextHop{Port: 2, Kind: Connected}); err != nil {
		t.Fatal(err)
	}
	tab := b.Build()
	want := NextHop{Port: 2, Kind: Connected, Prefix: netip.MustParsePrefix("198.51.100.0/24")}
	if got := tab.Routes(); !slices.Equal(got, []NextHop{want}) {
		t.Fatalf("Routes() = %+v, want [%+v]", got, want)
	}
	if got, ok := tab.Lookup(netip.MustParseAddr("198.51.100.200")); !ok || got != want {
		t.Fatalf("Lookup = %+v %v, want %+v", got, ok, want)
	}
	if !b.Delete(netip.MustParsePrefix("198.51.100.9/24")) {
		t.Fatal("Delete of a present (unmasked) prefix reported false")
	}
	if b.Delete(netip.MustParsePrefix("198.51.100.0/24")) {
		t.Fatal("second Delete reported true")
	}
	if _, ok := b.Build().Lookup(netip.MustParseAddr("198.51.100.200")); ok {
		t.Fatal("deleted route still matches")
	}
	if _, ok := tab.Lookup(netip.MustParseAddr("198.51.100.200")); !ok {
		t.Fatal("a built table changed after a Delete on its builder")
	}
}

func TestInsertErrors(t *testing.T) {
	var b Builder
	if err := b.Insert(netip.Prefix{}, NextHop{}); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("invalid prefix: err = %v", err)
	}
	err := b.Insert(netip.MustParsePrefix("192.0.2.0/24"), NextHop{Gateway: netip.MustParseAddr("2001:db8::1")})
	if !errors.Is(err, ErrGatewayFamily) {
		t.Errorf("IPv6 gateway for IPv4 prefix: err = %v", err)
	}
	err = b.Insert(netip.MustParsePrefix("192.0.2.0/24"), NextHop{Gateway: netip.MustParseAddr("::ffff:198.51.100.1")})
	if !errors.Is(err, ErrGatewayFamily) {
		t.Errorf("mapped gateway for IPv4 prefix: err = %v", err)
	}
	if b.Len() != 0 {
		t.Errorf("failed inserts left %d routes", b.Len())
	}
}

func TestRoutesOrderAndTableBuilder(t *testing.T) {
	var b Builder
	for _, s := range []string{"2001:db8::/32", "198.51.100.0/24", "0.0.0.0/0", "198.51.100.0/25", "::/0", "192.0.2.1/32"} {
		if err := b.Insert(netip.MustParsePrefix(s), NextHop{}); err != nil {
			t.Fatal(err)
		}
	}
	tab := b.Build()
	var got []string
	for _, h := range tab.Routes() {
		got = append(got, h.Prefix.String())
	}
	want := []string{"0.0.0.0/0", "192.0.2.1/32", "198.51.100.0/24", "198.51.100.0/25", "::/0", "2001:db8::/32"}
	if !slices.Equal(got, want) {
		t.Fatalf("Routes() = %v, want %v", got, want)
	}
	b2 := tab.Builder()
	b2.Delete(netip.MustParsePrefix("::/0"))
	if tab.Len() != 6 || b2.Build().Len() != 5 {
		t.Fatalf("derived builder: lens %d and %d, want 6 and 5", tab.Len(), b2.Build().Len())
	}
}

func TestNilAndEmptyTable(t *testing.T) {
	var nilTab *Table
	if _, ok := nilTab.Lookup(netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("nil table matched")
	}
	if nilTab.Len() != 0 || nilTab.Routes() != nil || nilTab.Builder().Len() != 0 {
		t.Error("nil table is not empty")
	}
	var b Builder
	if _, ok := b.Build().Lookup(netip.MustParseAddr("2001:db8::1")); ok {
		t.Error("empty table matched")
	}
}

func TestViaAndKind(t *testing.T) {
	dst := netip.MustParseAddr("203.0.113.9")
	gw := netip.MustParseAddr("198.51.100.1")
	if got := (NextHop{}).Via(dst); got != dst {
		t.Errorf("connected Via = %v", got)
	}
	if got := (NextHop{Gateway: gw}).Via(dst); got != gw {
		t.Errorf("gateway Via = %v", got)
	}
	for k, s := range map[Kind]string{Static: "static", Connected: "connected", Local: "local", 9: "kind(9)"} {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), s)
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var b Builder
	for i, p := range randPrefixes(r, 1000) {
		b.Insert(p, NextHop{Port: i, Gateway: randAddr(r, p.Addr().Is6())})
	}
	tab := b.Build()
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("fe80::1%eth0"), randAddr(r, false), randAddr(r, true),
	}
	sink := 0
	allocs := testing.AllocsPerRun(1000, func() {
		for _, a := range addrs {
			h, _ := tab.Lookup(a)
			sink += h.Port
		}
	})
	if allocs != 0 {
		t.Fatalf("Lookup allocates %v times per run", allocs)
	}
	_ = sink
}

func benchmarkLookup(b *testing.B, n int, v6 bool) {
	r := rand.New(rand.NewPCG(uint64(n), 99))
	var bld Builder
	ps := make([]netip.Prefix, 0, n)
	for len(ps) < n {
		a := randAddr(r, v6)
		var l int
		if v6 {
			l = 16 + r.IntN(49) // /16 .. /64, as in real IPv6 tables
		} else {
			l = 8 + r.IntN(25) // /8 .. /32
		}
		p := netip.PrefixFrom(a, l).Masked()
		bld.Insert(p, NextHop{Port: len(ps)})
		ps = append(ps, p)
	}
	tab := bld.Build()
	// Half of the addresses fall in a route (deep walks), half are uniform.
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		if i%2 == 0 {
			addrs[i] = randIn(r, ps[r.IntN(len(ps))])
		} else {
			addrs[i] = randAddr(r, v6)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	sink := 0
	for i := 0; b.Loop(); i++ {
		h, _ := tab.Lookup(addrs[i&4095])
		sink += h.Port
	}
	_ = sink
}

func BenchmarkLookup(b *testing.B) {
	for _, fam := range []string{"v4", "v6"} {
		for _, n := range []int{10, 1000, 100000} {
			b.Run(fmt.Sprintf("%s/%d", fam, n), func(b *testing.B) { benchmarkLookup(b, n, fam == "v6") })
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	var bld Builder
	for _, p := range randPrefixes(r, 100000) {
		bld.Insert(p, NextHop{})
	}
	b.ResetTimer()
	for b.Loop() {
		bld.Build()
	}
}
