package synproxy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

// clock is a manual clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newCookies() (*Cookies, *clock) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	return New([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, c.now), c
}

var (
	flow4 = Flow{Client: netip.MustParseAddrPort("192.0.2.7:40001"), VIP: netip.MustParseAddrPort("198.51.100.100:80")}
	flow6 = Flow{Client: netip.MustParseAddrPort("[2001:db8:9::7]:50000"), VIP: netip.MustParseAddrPort("[2001:db8:1::100]:443")}
)

// The ACK of a cookie's handshake gives back the options the cookie keeps: the MSS
// rounded down to MSSTable, and with timestamps the window scale and SACK.
func TestCookieRoundTrip(t *testing.T) {
	c, clk := newCookies()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		f := flow4
		if i%2 == 1 {
			f = flow6
		}
		f.Client = netip.AddrPortFrom(f.Client.Addr(), uint16(rng.IntN(65536)))
		o := Options{MSS: uint16(rng.IntN(9000)), WScale: uint8(rng.IntN(16)), WScaleOK: rng.IntN(2) == 0,
			SACK: rng.IntN(2) == 0, Timestamps: rng.IntN(2) == 0, TSval: rng.Uint32()}
		isn := rng.Uint32()
		cookie, tsval := c.Make(f, isn, o)
		// The ACK may come in the next period.
		clk.t = clk.t.Add(time.Duration(rng.Int64N(int64(Period))))
		ackTS := rng.Uint32()
		got, ok := c.Check(f, isn+1, cookie+1, o.Timestamps, ackTS, tsval)
		if !ok {
			t.Fatalf("%d: cookie of %+v refused", i, o)
		}
		want := Options{MSS: MSSTable[mssIndex(o.MSS)]}
		if o.Timestamps {
			want.Timestamps, want.TSval, want.SACK = true, ackTS, o.SACK
			if o.WScaleOK {
				want.WScale, want.WScaleOK = min(o.WScale, MaxWScale), true
			}
		}
		if got != want {
			t.Fatalf("%d: options %+v came back as %+v, want %+v", i, o, got, want)
		}
		if want.MSS > o.MSS && o.MSS >= MSSTable[0] {
			t.Fatalf("%d: MSS %d kept as %d, above the client's", i, o.MSS, want.MSS)
		}
	}
}

// A cookie is bound to its flow, the client's ISN, its time and its timestamp bits.
func TestCookieRefused(t *testing.T) {
	c, clk := newCookies()
	o := Options{MSS: 1460, WScale: 7, WScaleOK: true, SACK: true, Timestamps: true, TSval: 1000}
	const isn = 0x12345678
	cookie, tsval := c.Make(flow4, isn, o)
	if _, ok := c.Check(flow4, isn+1, cookie+1, true, 5, tsval); !ok {
		t.Fatal("valid cookie refused")
	}
	other := func(s string) Flow { f := flow4; f.Client = netip.MustParseAddrPort(s); return f }
	vip := flow4
	vip.VIP = netip.MustParseAddrPort("198.51.100.100:81")
	for _, tc := range []struct {
		name           string
		f              Flow
		seq, ack, tsec uint32
		hasTS          bool
	}{
		{"client port", other("192.0.2.7:40002"), isn + 1, cookie + 1, tsval, true},
		{"client address", other("192.0.2.8:40001"), isn + 1, cookie + 1, tsval, true},
		{"VIP port", vip, isn + 1, cookie + 1, tsval, true},
		{"client ISN", flow4, isn + 2, cookie + 1, tsval, true},
		{"cookie", flow4, isn + 1, cookie + 2, tsval, true},
		{"window scale bits", flow4, isn + 1, cookie + 1, tsval ^ 1, true},
		{"SACK bit", flow4, isn + 1, cookie + 1, tsval ^ 1<<4, true},
		{"timestamps dropped", flow4, isn + 1, cookie + 1, 0, false},
	} {
		if got, ok := c.Check(tc.f, tc.seq, tc.ack, tc.hasTS, 5, tc.tsec); ok {
			t.Errorf("%s: accepted as %+v", tc.name, got)
		}
	}
	// Another secret does not accept it.
	if _, ok := New([16]byte{9}, clk.now).Check(flow4, isn+1, cookie+1, true, 5, tsval); ok {
		t.Error("accepted under another secret")
	}
	// Valid until the end of the next period, not after.
	start := clk.t.Truncate(Period)
	clk.t = start.Add(2*Period - time.Second)
	if _, ok := c.Check(flow4, isn+1, cookie+1, true, 5, tsval); !ok {
		t.Error("refused in the next period")
	}
	clk.t = start.Add(2 * Period)
	if _, ok := c.Check(flow4, isn+1, cookie+1, true, 5, tsval); ok {
		t.Error("accepted two periods later")
	}
	// Nor 32 periods later, when the 5-bit counter comes round again.
	clk.t = start.Add(32 * Period)
	if _, ok := c.Check(flow4, isn+1, cookie+1, true, 5, tsval); ok {
		t.Error("accepted 32 periods later")
	}
}

// ACKs that guess: a cookie's 24-bit MAC lets about one in 2^24 x 16 through.
func TestCookieGuesses(t *testing.T) {
	c, _ := newCookies()
	rng := rand.New(rand.NewPCG(3, 4))
	accepted := 0
	for range 200000 {
		if _, ok := c.Check(flow4, rng.Uint32(), rng.Uint32(), rng.IntN(2) == 0, 0, rng.Uint32()); ok {
			accepted++
		}
	}
	if accepted > 0 {
		t.Errorf("%d of 200000 random ACKs accepted", accepted)
	}
}

// synFrame builds a SYN with gopacket and returns its TCP header.
func synFrame(t testing.TB, f Flow, opts []layers.TCPOption) header.TCP {
	tcp := &layers.TCP{SrcPort: layers.TCPPort(f.Client.Port()), DstPort: layers.TCPPort(f.VIP.Port()), Seq: 7, SYN: true,
		Window: 64240, Options: opts}
	var ip gopacket.NetworkLayer
	if f.Client.Addr().Is4() {
		ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP,
			SrcIP: f.Client.Addr().AsSlice(), DstIP: f.VIP.Addr().AsSlice()}
	} else {
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: f.Client.Addr().AsSlice(), DstIP: f.VIP.Addr().AsSlice()}
	}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, tcp); err != nil {
		t.Fatal(err)
	}
	return header.TCP(buf.Bytes())
}

func TestParseSYN(t *testing.T) {
	linux := []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0x30, 0x39, 0, 0, 0, 0}},
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}
	if got, want := ParseSYN(synFrame(t, flow4, linux), false), (Options{MSS: 1460, WScale: 7, WScaleOK: true, SACK: true,
		Timestamps: true, TSval: 12345}); got != want {
		t.Errorf("Linux SYN: %+v, want %+v", got, want)
	}
	if v, e, ok := Timestamps(synFrame(t, flow4, linux)); !ok || v != 12345 || e != 0 {
		t.Errorf("Timestamps of the Linux SYN: %d %d %v", v, e, ok)
	}
	if _, _, ok := Timestamps(synFrame(t, flow4, nil)); ok {
		t.Error("Timestamps of a SYN without the option")
	}
	if got, want := ParseSYN(synFrame(t, flow6, nil), true), (Options{MSS: DefaultMSS6}); got != want {
		t.Errorf("bare IPv6 SYN: %+v, want %+v", got, want)
	}
	if got, want := ParseSYN(synFrame(t, flow4, nil), false), (Options{MSS: DefaultMSS4}); got != want {
		t.Errorf("bare IPv4 SYN: %+v, want %+v", got, want)
	}
	big := []layers.TCPOption{{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{20}}}
	if got := ParseSYN(synFrame(t, flow4, big), false); got.WScale != MaxWScale || !got.WScaleOK {
		t.Errorf("window scale 20: %+v, want %d (RFC 7323 §2.3)", got, MaxWScale)
	}
	// A truncated option ends the walk; what came before counts.
	bad := synFrame(t, flow4, []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1}, {OptionType: layers.TCPOptionKindNop, OptionLength: 1},
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1}, {OptionType: layers.TCPOptionKindNop, OptionLength: 1}})
	bad[header.TCPMinimumSize+4], bad[header.TCPMinimumSize+5] = optTimestamps, 30 // longer than the header
	if got := ParseSYN(bad, false); got != (Options{MSS: 1460}) {
		t.Errorf("truncated timestamps: %+v", got)
	}
}

// The SYN-ACK decodes as gopacket sees it: flags, cookie, options, checksum.
func TestBuildSYNACK(t *testing.T) {
	c, _ := newCookies()
	for _, tc := range []struct {
		f        Flow
		o        Options
		wantOpts []layers.TCPOptionKind
	}{
		{flow4, Options{MSS: 1460, WScale: 7, WScaleOK: true, SACK: true, Timestamps: true, TSval: 99},
			[]layers.TCPOptionKind{layers.TCPOptionKindMSS, layers.TCPOptionKindSACKPermitted, layers.TCPOptionKindTimestamps,
				layers.TCPOptionKindNop, layers.TCPOptionKindWindowScale}},
		{flow6, Options{MSS: 1440, WScale: 7, WScaleOK: true, Timestamps: true, TSval: 99},
			[]layers.TCPOptionKind{layers.TCPOptionKindMSS, layers.TCPOptionKindNop, layers.TCPOptionKindNop,
				layers.TCPOptionKindTimestamps, layers.TCPOptionKindNop, layers.TCPOptionKindWindowScale}},
		// Without timestamps the cookie cannot keep window scaling or SACK: not offered.
		{flow4, Options{MSS: 1460, WScale: 7, WScaleOK: true, SACK: true}, []layers.TCPOptionKind{layers.TCPOptionKindMSS}},
	} {
		const isn = 1000
		cookie, tsval := c.Make(tc.f, isn, tc.o)
		b := make([]byte, MaxSYNACK)
		n := BuildSYNACK(b, tc.f, isn, tc.o, cookie, tsval, SYNACK{Window: 65535, MSS: 1400, WScale: 9})
		first := layers.LayerTypeIPv4
		if tc.f.VIP.Addr().Is6() {
			first = layers.LayerTypeIPv6
		}
		p := gopacket.NewPacket(b[:n], first, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("%+v: %v", tc.o, el.Error())
		}
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !tcp.SYN || !tcp.ACK || tcp.Seq != cookie || tcp.Ack != isn+1 || tcp.Window != 65535 ||
			uint16(tcp.SrcPort) != tc.f.VIP.Port() || uint16(tcp.DstPort) != tc.f.Client.Port() {
			t.Errorf("%+v: SYN-ACK %+v", tc.o, tcp)
		}
		var kinds []layers.TCPOptionKind
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindEndList {
				break
			}
			kinds = append(kinds, o.OptionType)
			switch o.OptionType {
			case layers.TCPOptionKindMSS:
				if o.OptionData[0] != 1400>>8 || o.OptionData[1] != 1400&0xff {
					t.Errorf("MSS option %v", o.OptionData)
				}
			case layers.TCPOptionKindWindowScale:
				if o.OptionData[0] != 9 {
					t.Errorf("window scale option %v", o.OptionData)
				}
			case layers.TCPOptionKindTimestamps:
				if got := header.TCP(tcp.Contents).Seq(); got != cookie {
					t.Errorf("seq %d", got)
				}
				if v := uint32(o.OptionData[0])<<24 | uint32(o.OptionData[1])<<16 | uint32(o.OptionData[2])<<8 | uint32(o.OptionData[3]); v != tsval {
					t.Errorf("TSval %d, want %d", v, tsval)
				}
				if e := o.OptionData[7]; e != 99 {
					t.Errorf("TSecr %v, want the client's 99", o.OptionData[4:])
				}
			}
		}
		if len(kinds) != len(tc.wantOpts) {
			t.Errorf("%+v: options %v, want %v", tc.o, kinds, tc.wantOpts)
		}
		for i := range min(len(kinds), len(tc.wantOpts)) {
			if kinds[i] != tc.wantOpts[i] {
				t.Errorf("%+v: options %v, want %v", tc.o, kinds, tc.wantOpts)
				break
			}
		}
		// The checksum: gopacket recomputes it over the same pseudo-header.
		var ipl gopacket.NetworkLayer
		if l := p.Layer(layers.LayerTypeIPv4); l != nil {
			ipl = l.(*layers.IPv4)
		} else {
			ipl = p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		}
		want := tcp.Checksum
		tcp.SetNetworkLayerForChecksum(ipl)
		buf := gopacket.NewSerializeBuffer()
		if err := tcp.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
			t.Fatal(err)
		}
		if got := header.TCP(buf.Bytes()).Checksum(); got != want {
			t.Errorf("%+v: checksum %#x, gopacket computes %#x", tc.o, want, got)
		}
	}
}

func TestCookieAllocs(t *testing.T) {
	c, _ := newCookies()
	o := Options{MSS: 1460, Timestamps: true}
	b := make([]byte, MaxSYNACK)
	if n := testing.AllocsPerRun(100, func() {
		cookie, tsval := c.Make(flow6, 1, o)
		BuildSYNACK(b, flow6, 1, o, cookie, tsval, SYNACK{Window: 65535, MSS: 1440})
		c.Check(flow6, 2, cookie+1, true, 0, tsval)
	}); n != 0 {
		t.Errorf("%v allocations per SYN and ACK", n)
	}
}

func BenchmarkMake(b *testing.B) {
	c, _ := newCookies()
	o := Options{MSS: 1460, Timestamps: true}
	for i := 0; b.Loop(); i++ {
		c.Make(flow4, uint32(i), o)
	}
}

func BenchmarkCheck(b *testing.B) {
	c, _ := newCookies()
	cookie, tsval := c.Make(flow4, 1, Options{MSS: 1460, Timestamps: true})
	for b.Loop() {
		c.Check(flow4, 2, cookie+1, true, 0, tsval)
	}
}

func FuzzParseSYN(f *testing.F) {
	f.Add([]byte{0x9c, 0x41, 0, 80, 0, 0, 0, 7, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
		2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7})
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x02, 0, 0, 0, 0, 0, 0, 8, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		tcp := header.TCP(b)
		if !tcp.IsValid() {
			return
		}
		o := ParseSYN(tcp, len(b)%2 == 0)
		if o.WScale > MaxWScale {
			t.Fatalf("window scale %d", o.WScale)
		}
	})
}
