package vrrp

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

// FuzzAdvert decodes arbitrary payloads: nothing panics; a valid advert's fields
// rebuild the same bytes when its checksum is good; an instance and a mux take any
// payload without panicking and count what they drop. Seeds: keepalived's captures
// and adverts this package builds.
func FuzzAdvert(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.pcap"))
	for _, name := range files {
		for _, c := range readPcap(f, filepath.Base(name)) {
			f.Add(c.payload, c.src.Is6(), uint8(255))
		}
	}
	buf := make([]byte, MaxAdvertSize)
	n := BuildAdvert(buf, AdvertFields{Version: 2, VRID: 1, Priority: 100, Interval: time.Second,
		Addresses: addrs("192.0.2.100"), Src: ours4, Dst: GroupIPv4})
	f.Add(append([]byte(nil), buf[:n]...), false, uint8(255))
	n = BuildAdvert(buf, AdvertFields{Version: 3, VRID: 1, Priority: 0, Interval: 40950 * time.Millisecond,
		Addresses: addrs("192.0.2.100", "192.0.2.101"), Checksum: NoPseudoHeader, Src: ours4, Dst: GroupIPv4})
	f.Add(append([]byte(nil), buf[:n]...), false, uint8(255))
	f.Add([]byte{0x31, 1, 100, 0, 0, 100, 0, 0}, false, uint8(255)) // count 0
	f.Add([]byte{0x21}, true, uint8(255))

	src4, src6 := higher4, netip.MustParseAddr("fe80::9")
	f.Fuzz(func(t *testing.T, payload []byte, ipv6 bool, ttl uint8) {
		src, dst := src4, GroupIPv4
		if ipv6 {
			src, dst = src6, GroupIPv6
		}
		p := Advert(payload)
		if p.IsValid(ipv6) {
			_ = p.Type()
			_ = p.AuthType()
			_ = p.AdverInt()
			_ = p.MaxAdverInt()
			as := p.AppendAddresses(nil, ipv6)
			if len(as) != int(p.CountIPAddrs()) {
				t.Fatalf("%d addresses for count %d", len(as), p.CountIPAddrs())
			}
			ok, mode := p.IsChecksumValid(src, dst)
			// BuildAdvert writes zero in the fields it does not take: version 2's auth type
			// and data, version 3's reserved bits.
			var zeros [AuthDataSize]byte
			canonical := p.Version() == 3 && payload[4]&0xf0 == 0 ||
				p.Version() == 2 && p.AuthType() == AuthNone && bytes.Equal(payload[len(payload)-AuthDataSize:], zeros[:])
			rebuildable := ok && canonical && p.Type() == TypeAdvertisement && len(as) > 0 && p.Interval() > 0
			if rebuildable {
				out := make([]byte, MaxAdvertSize)
				n := BuildAdvert(out, AdvertFields{Version: p.Version(), VRID: p.VRID(), Priority: p.Priority(),
					Interval: p.Interval(), Addresses: as, Checksum: mode, Src: src, Dst: dst})
				if n == 0 {
					t.Fatalf("cannot rebuild % x", payload)
				}
				rebuilt := Advert(out[:n])
				// 0x0000 and 0xffff are the same checksum; compare the rest exactly.
				if !bytes.Equal(rebuilt[:6], payload[:6]) || !bytes.Equal(rebuilt[8:], payload[8:]) ||
					!xsumEqual(rebuilt.Checksum(), p.Checksum()) {
					t.Fatalf("rebuilt\n% x\nfrom\n% x", out[:n], payload)
				}
			}
		}
		for _, version := range []uint8{2, 3} {
			if ipv6 && version == 2 {
				continue
			}
			cfg := baseConfig()
			cfg.Version, cfg.Out = version, discard{}
			if ipv6 {
				cfg.Primary, cfg.Addresses = netip.MustParseAddr("fe80::2"), addrs("2001:db8::100")
			}
			in, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			in.Start(t0)
			in.ReceiveTo(t0, src, dst, ttl, payload)
			// A valid advert is received, and may then be ignored (lower priority).
			c := in.Counters()
			if c.AdvertsReceived+c.Drops.Total()-c.Drops[DropLowerPriority] != 1 {
				t.Fatalf("advert neither taken nor dropped: %+v", c)
			}
			var m Mux
			if err := m.Add(in); err != nil {
				t.Fatal(err)
			}
			m.Receive(t0, src, dst, ttl, payload)
			c2 := in.Counters()
			md := m.Drops()
			if c2.AdvertsReceived+c2.Drops.Total()-c2.Drops[DropLowerPriority]+md.Total() != 2 {
				t.Fatalf("mux lost an advert: %+v %v", c2, md)
			}
		}
	})
}
