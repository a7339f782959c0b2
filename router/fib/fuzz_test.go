package fib

import (
	"net/netip"
	"testing"
)

// FuzzLookup builds a table from prefixes read out of the input and compares lookups of
// addresses near them with the linear scan. Each record is a header byte (bit 7: IPv6;
// the rest with the next byte: the length), then 4 or 16 address bytes.
func FuzzLookup(f *testing.F) {
	f.Add([]byte{0x00, 0, 192, 0, 2, 1, 0x00, 24, 192, 0, 2, 1})
	f.Add([]byte{0x80, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x80, 128, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0x00, 9, 255, 255, 255, 255, 0x00, 8, 255, 0, 0, 0, 0x00, 16, 255, 128, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Builder
		var addrs []netip.Addr
		for len(data) >= 2 {
			v6 := data[0]&0x80 != 0
			n := 4
			if v6 {
				n = 16
			}
			l := (int(data[0]&0x7f)<<8 | int(data[1])) % (8*n + 1)
			data = data[2:]
			if len(data) < n {
				break
			}
			var a netip.Addr
			if v6 {
				a = netip.AddrFrom16([16]byte(data[:n]))
			} else {
				a = netip.AddrFrom4([4]byte(data[:n]))
			}
			data = data[n:]
			if err := b.Insert(netip.PrefixFrom(a, l), NextHop{Port: len(addrs)}); err != nil {
				t.Fatal(err)
			}
			addrs = append(addrs, a, a.Next(), a.Prev())
		}
		tab := b.Build()
		routes := tab.Routes()
		for _, a := range addrs {
			got, gok := tab.Lookup(a)
			want, wok := refLookup(routes, a)
			if got != want || gok != wok {
				t.Fatalf("Lookup(%v) = %+v %v, want %+v %v", a, got, gok, want, wok)
			}
		}
	})
}
