package header

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// ipv4WithOptions returns a valid IPv4 header with opts as its options (cut at 40
// bytes, padded with end-of-list octets) and 8 bytes of payload.
func ipv4WithOptions(opts []byte) IPv4 {
	opts = opts[:min(len(opts), 40)]
	n := (len(opts) + 3) &^ 3
	b := make([]byte, IPv4MinimumSize+n+8)
	EncodeIPv4(b, IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: ProtocolUDP,
		Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("198.51.100.2")})
	copy(b[IPv4MinimumSize:], opts)
	ip := IPv4(b)
	ip[0] = 0x40 | byte((IPv4MinimumSize+n)/4)
	ip.SetChecksum(ip.CalculateChecksum())
	return ip
}

var optionSeeds = []struct {
	name string
	opts []byte
	bad  int
}{
	{"none", nil, 0},
	{"nops and end", []byte{1, 1, 0, 0x99}, 0},
	{"record route", []byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0}, 0},
	{"record route full", []byte{7, 7, 8, 1, 2, 3, 4}, 0},
	{"timestamp flag 0", []byte{68, 12, 5, 0, 8: 0, 0, 0, 0}, 0},
	{"timestamp flag 1", []byte{68, 12, 5, 1, 8: 0, 0, 0, 0}, 0},
	{"timestamp flag 3", []byte{68, 12, 5, 3, 198, 51, 100, 1, 0, 0, 0, 0}, 0},
	{"timestamp full", []byte{68, 8, 9, 0xe0, 0, 0, 0, 1}, 0},
	{"timestamp full, prespecified, count 15", []byte{68, 12, 13, 0xf3, 8: 0, 0, 0, 0}, 0},
	{"loose source route", []byte{1, 131, 7, 4, 198, 51, 100, 2}, 0},
	{"strict source route done", []byte{1, 137, 7, 8, 198, 51, 100, 2}, 0},
	{"router alert", []byte{148, 4, 0, 0}, 0},
	{"unknown, length 2", []byte{0x9e, 2, 1, 0}, 0},
	{"length 0", []byte{0x88, 0, 0, 0}, 21},
	{"length past the header", []byte{1, 0x88, 9, 0}, 22},
	{"type last, no length", []byte{1, 1, 1, 7}, 23},
	{"record route pointer 3", []byte{7, 7, 3, 0, 0, 0, 0}, 22},
	{"record route no room", []byte{7, 9, 8, 0, 0, 0, 0, 0, 0}, 22},
	{"record route length 2", []byte{7, 2, 0, 0}, 21},
	{"source route pointer 0", []byte{131, 7, 0, 0, 0, 0, 0}, 22},
	{"two source routes", []byte{131, 3, 4, 137, 3, 4, 0, 0}, 23},
	{"two timestamps", []byte{68, 4, 5, 0, 68, 4, 5, 0}, 24},
	{"timestamp length 3", []byte{68, 3, 5, 0}, 21},
	{"timestamp pointer 4", []byte{68, 8, 4, 0, 0, 0, 0, 0}, 22},
	{"timestamp flag 2", []byte{68, 8, 5, 2, 0, 0, 0, 0}, 23},
	{"timestamp overflow overflows", []byte{68, 8, 9, 0xf1, 0, 0, 0, 0}, 23},
	{"timestamp flag 3 half a slot", []byte{68, 8, 5, 3, 0, 0, 0, 0}, 22},
	{"router alert length 6", []byte{148, 6, 0, 0, 0, 0}, 21},
}

func TestCheckOptions(t *testing.T) {
	for _, tc := range optionSeeds {
		ip := ipv4WithOptions(tc.opts)
		if _, bad := ip.CheckOptions(); bad != tc.bad {
			t.Errorf("%s: bad octet %d, want %d", tc.name, bad, tc.bad)
		}
	}
	ip := ipv4WithOptions([]byte{1, 7, 7, 4, 0, 0, 0, 0, 68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 131, 3, 4})
	set, bad := ip.CheckOptions()
	if bad != 0 || set != (IPv4OptionSet{RecordRoute: 21, Timestamp: 28, SourceRoute: 40}) {
		t.Errorf("CheckOptions = %+v, %d", set, bad)
	}
}

func TestRecordRouteAndTimestamp(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.1")
	ip := ipv4WithOptions([]byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	set, _ := ip.CheckOptions()
	for i := 0; i < 3; i++ {
		recorded := ip.RecordRouteWithChecksumUpdate(set.RecordRoute, a)
		if recorded != (i < 2) || !ip.IsChecksumValid() {
			t.Fatalf("record %d: %v, checksum valid %v", i, recorded, ip.IsChecksumValid())
		}
	}
	if want := []byte{7, 11, 12, 198, 51, 100, 1, 198, 51, 100, 1}; !bytes.Equal(ip[20:31], want) {
		t.Errorf("record route % x, want % x", ip[20:31], want)
	}
	for i := 0; i < 3; i++ {
		if !ip.TimestampWithChecksumUpdate(set.Timestamp, a, 0x01020304) || !ip.IsChecksumValid() {
			t.Fatalf("stamp %d refused or bad checksum", i)
		}
	}
	// One slot, then two overflows.
	if want := []byte{68, 12, 13, 0x21, 198, 51, 100, 1, 1, 2, 3, 4}; !bytes.Equal(ip[31:43], want) {
		t.Errorf("timestamp % x, want % x", ip[31:43], want)
	}
	// gopacket reads the result as the same options.
	var g layers.IPv4
	if err := g.DecodeFromBytes(ip, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	if len(g.Options) < 2 || g.Options[0].OptionType != 7 || g.Options[1].OptionType != 68 || g.Options[1].OptionData[1] != 0x21 {
		t.Errorf("gopacket: %+v", g.Options)
	}
}

// FuzzIPv4Options checks the options of arbitrary headers: the offending octet, when
// there is one, lies in the options; and processing the options CheckOptions accepts
// keeps the header checksum right, changes nothing outside the option it processes
// and moves its pointer by a whole slot.
func FuzzIPv4Options(f *testing.F) {
	for _, s := range optionSeeds {
		f.Add(s.opts)
	}
	a := netip.MustParseAddr("198.51.100.1")
	f.Fuzz(func(t *testing.T, opts []byte) {
		ip := ipv4WithOptions(opts)
		hl := ip.HeaderLength()
		set, bad := ip.CheckOptions()
		if bad != 0 {
			if bad < IPv4MinimumSize || bad >= hl {
				t.Fatalf("bad octet %d outside the options (header %d)", bad, hl)
			}
			return
		}
		for _, c := range []struct {
			off int
			typ []uint8
		}{{set.RecordRoute, []uint8{IPv4OptionRecordRoute}}, {set.Timestamp, []uint8{IPv4OptionTimestamp}},
			{set.SourceRoute, []uint8{IPv4OptionLSRR, IPv4OptionSSRR}}} {
			if c.off != 0 && (c.off < IPv4MinimumSize || c.off+2 >= hl || !bytes.Contains(c.typ, ip[c.off:c.off+1])) {
				t.Fatalf("option at %d is of type %d, want one of %v", c.off, ip[c.off], c.typ)
			}
		}
		check := func(what string, before IPv4, off int, changed bool, step int) {
			t.Helper()
			if !ip.IsChecksumValid() {
				t.Fatalf("%s: header checksum wrong", what)
			}
			l := int(before[off+1])
			for i := range ip {
				if (i < off || i >= off+l) && i != 10 && i != 11 && ip[i] != before[i] {
					t.Fatalf("%s changed octet %d outside its option", what, i)
				}
			}
			if changed && step != 0 && int(ip[off+2]) != int(before[off+2])+step {
				t.Fatalf("%s: pointer %d -> %d, want a step of %d", what, before[off+2], ip[off+2], step)
			}
			if !changed && !bytes.Equal(ip, before) {
				t.Fatalf("%s: reported no change but changed the header", what)
			}
		}
		if set.RecordRoute != 0 {
			before := bytes.Clone(ip)
			check("record route", before, set.RecordRoute, ip.RecordRouteWithChecksumUpdate(set.RecordRoute, a), 4)
		}
		if set.Timestamp != 0 {
			before := bytes.Clone(ip)
			step := 8
			if ip[set.Timestamp+3]&0xf == IPv4TimestampOnly {
				step = 4
			}
			if ip[set.Timestamp+2] > ip[set.Timestamp+1] {
				step = 0 // full: the overflow count grows instead
			}
			me := a
			if pre, ok := ip.TimestampPrespecified(set.Timestamp); ok && len(opts) > 0 && opts[0]&1 == 1 {
				me = pre
			}
			check("timestamp", before, set.Timestamp, ip.TimestampWithChecksumUpdate(set.Timestamp, me, 0xdeadbeef), step)
		}
	})
}
