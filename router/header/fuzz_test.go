package header

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The fuzz targets assert that no parser panics on any input, that views agree with
// gopacket where both accept a packet, and that checksum-updating setters agree with a
// full recomputation. Their seeds live in testdata/fuzz/<FuzzName>/.

func FuzzEthernet(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		e := Ethernet(b)
		if !e.IsValid() {
			return
		}
		id, tagged := e.VLAN()
		if hl := e.HeaderLen(); len(e.Payload()) != len(b)-hl || (tagged && hl != 18) || (!tagged && hl != 14) || id > 0xfff {
			t.Fatalf("header length %d tagged %v id %d", hl, tagged, id)
		}
		p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: false, NoCopy: true})
		g, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !ok {
			t.Fatalf("gopacket refuses a valid Ethernet header: %v", p.ErrorLayer())
		}
		if g.SrcMAC.String() != e.Source().String() || g.DstMAC.String() != e.Destination().String() {
			t.Fatalf("MACs: gopacket %v>%v, view %v>%v", g.SrcMAC, g.DstMAC, e.Source(), e.Destination())
		}
		if binary.BigEndian.Uint16(b[12:]) < 0x0600 {
			return // an 802.3 length, which gopacket decodes as LLC
		}
		if tagged {
			q, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
			if !ok {
				t.Fatalf("gopacket finds no 802.1Q tag")
			}
			if q.VLANIdentifier != id || uint16(q.Type) != e.EtherType() {
				t.Fatalf("802.1Q: gopacket vlan %d type %#x, view %d %#x", q.VLANIdentifier, uint16(q.Type), id, e.EtherType())
			}
		} else if uint16(g.EthernetType) != e.EtherType() {
			t.Fatalf("EtherType: gopacket %#x, view %#x", uint16(g.EthernetType), e.EtherType())
		}
	})
}

func FuzzARP(f *testing.F) {
	seed := make([]byte, 28)
	BuildARP(seed, ARPRequest, macA, v4A, MAC{}, v4B)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		a := ARP(b)
		if !a.IsValid() {
			return
		}
		p := gopacket.NewPacket(b, layers.LayerTypeARP, gopacket.NoCopy)
		g, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		if !ok {
			t.Fatalf("gopacket refuses a valid ARP packet: %v", p.ErrorLayer())
		}
		sha, tha := a.SenderMAC(), a.TargetMAC()
		if g.Operation != a.Op() || addrOf(g.SourceProtAddress) != a.SenderIP() || addrOf(g.DstProtAddress) != a.TargetIP() ||
			!bytes.Equal(g.SourceHwAddress, sha[:]) || !bytes.Equal(g.DstHwAddress, tha[:]) {
			t.Fatalf("gopacket %+v, view op %d %v %v %v %v", g, a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
		}
		// Rebuilding from the view's fields gives back the same 28 bytes.
		again := make([]byte, 28)
		BuildARP(again, a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
		if !bytes.Equal(again, b[:28]) {
			t.Fatalf("rebuilt %x, input %x", again, b[:28])
		}
	})
}

func FuzzIPv4(f *testing.F) {
	seed := make([]byte, 24)
	EncodeIPv4(seed, IPv4Fields{TotalLength: 24, TTL: 64, Protocol: 17, Src: v4A, Dst: v4B})
	f.Add(seed, []byte{192, 0, 2, 99})
	f.Fuzz(func(t *testing.T, b []byte, addr []byte) {
		v := IPv4(b)
		if !v.IsValid() {
			return
		}
		hl := v.HeaderLength()
		if hl < 20 || hl > 60 || len(v.Payload()) != int(v.TotalLength())-hl {
			t.Fatalf("header length %d payload %d", hl, len(v.Payload()))
		}
		it := v.Options().Iter()
		seen := 0
		for n := 0; n <= 40; n++ {
			o, ok := it.Next()
			if !ok {
				break
			}
			seen += 2 + len(o.Data)
		}
		if seen > hl-20 {
			t.Fatalf("options cover %d bytes of %d", seen, hl-20)
		}
		if v.IsChecksumValid() != (refChecksum(b[:hl], 0) == 0xffff) {
			t.Fatal("IsChecksumValid disagrees with the reference sum")
		}

		p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.NoCopy)
		if g, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			if addrOf(g.SrcIP) != v.SourceAddr() || addrOf(g.DstIP) != v.DestinationAddr() || g.TTL != v.TTL() ||
				uint8(g.Protocol) != v.Protocol() || int(g.IHL)*4 != hl || g.Length != v.TotalLength() ||
				g.Id != v.ID() || uint8(g.Flags) != v.Flags() || g.FragOffset*8 != v.FragmentOffset() || g.Checksum != v.Checksum() {
				t.Fatalf("gopacket %+v disagrees with the view", g)
			}
		}

		// Incremental updates keep a correct checksum correct.
		v.SetChecksum(v.CalculateChecksum())
		v.DecTTL()
		if len(addr) >= 4 {
			a := netip.AddrFrom4([4]byte(addr[:4]))
			v.SetSourceAddrWithChecksumUpdate(a)
			v.SetDestinationAddrWithChecksumUpdate(a)
		}
		v.SetTTLWithChecksumUpdate(v.TTL() ^ 0x5a)
		if v.Checksum() != v.CalculateChecksum() {
			t.Fatalf("incremental %#x, recomputed %#x", v.Checksum(), v.CalculateChecksum())
		}
	})
}

func FuzzIPv6ExtHeaders(f *testing.F) {
	seed, _ := ipv6WithChain([]uint8{ProtocolHopByHop, ProtocolRouting, ProtocolFragment, ProtocolAH, ProtocolDstOpts}, []int{0, 2, 0, 1, 1})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		v := IPv6(b)
		if !v.IsValid() {
			return
		}
		end := 40 + int(v.PayloadLength())
		proto, off, ok := v.TransportProtocol()
		if off < 40 || off > end {
			t.Fatalf("offset %d outside [40, %d]", off, end)
		}
		// The three readers of the chain agree: a packet with a fragment header has one
		// where FragmentHeader says, naming it from the field it reports.
		at, prev, isFrag := v.FragmentHeader()
		if isFrag && (b[prev] != ProtocolFragment || at < 40 || at+8 > end) {
			t.Fatalf("fragment header at %d named by %d (%d)", at, prev, b[prev])
		}
		if !ok {
			if !isFrag && off+8 <= end && proto == ProtocolFragment {
				t.Fatalf("UpperLayer stopped at a fragment header at %d that FragmentHeader misses", off)
			}
			return
		}
		if c := v.Chain(); c.Fragment != isFrag || b[c.NextHeaderField] != proto {
			t.Fatalf("Chain %+v, FragmentHeader %v, upper layer %d", c, isFrag, proto)
		}
		if IsExtensionHeader(proto) {
			t.Fatalf("walk ended on extension header %d", proto)
		}
		if proto != ProtocolUDP && proto != ProtocolTCP {
			return
		}
		// Where gopacket decodes the same transport header cleanly, it must sit at the
		// same offset. gopacket stops at fragment headers and knows jumbograms.
		p := gopacket.NewPacket(b[:end], layers.LayerTypeIPv6, gopacket.NoCopy)
		if p.ErrorLayer() != nil || p.Layer(layers.LayerTypeIPv6Fragment) != nil {
			return
		}
		lt := layers.LayerTypeUDP
		if proto == ProtocolTCP {
			lt = layers.LayerTypeTCP
		}
		gOff := 0
		for _, l := range p.Layers() {
			if l.LayerType() == lt {
				if gOff != off {
					t.Fatalf("gopacket finds protocol %d at %d, view at %d", proto, gOff, off)
				}
				break
			}
			gOff += len(l.LayerContents())
		}
	})
}

func FuzzNDPOptions(f *testing.F) {
	f.Add([]byte{1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 5, 1, 0, 0, 0, 0, 5, 0xdc})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ours []Option
		it := NDPOptions(b).Iter()
		for n := 0; n <= len(b)/8; n++ {
			o, ok := it.Next()
			if !ok {
				break
			}
			ours = append(ours, o)
		}
		if _, ok := it.Next(); ok {
			t.Fatal("iterator yields more options than 8-byte units")
		}
		var theirs layers.ICMPv6Options
		gErr := theirs.DecodeFromBytes(b, gopacket.NilDecodeFeedback)
		if (gErr == nil) != (it.Err() == nil) || (it.Err() == nil) != (NDPOptions(b).Validate() == nil) {
			t.Fatalf("errors: gopacket %v, iterator %v, Validate %v", gErr, it.Err(), NDPOptions(b).Validate())
		}
		if gErr != nil {
			return
		}
		if len(ours) != len(theirs) {
			t.Fatalf("%d options, gopacket %d", len(ours), len(theirs))
		}
		for i := range ours {
			if ours[i].Type != uint8(theirs[i].Type) || !bytes.Equal(ours[i].Data, theirs[i].Data) {
				t.Fatalf("option %d: %+v, gopacket %+v", i, ours[i], theirs[i])
			}
		}
		for _, typ := range []uint8{NDPOptionSourceLinkLayerAddress, NDPOptionTargetLinkLayerAddress} {
			var want MAC
			found := false
			for _, o := range theirs {
				if uint8(o.Type) == typ && len(o.Data) >= 6 {
					want, found = MAC(o.Data[:6]), true
					break
				}
			}
			got, ok := NDPOptions(b).linkLayerAddress(typ)
			if ok != found || got != want {
				t.Fatalf("link-layer option %d: %v %v, want %v %v", typ, got, ok, want, found)
			}
		}
		// NDP views over arbitrary messages must not panic either.
		msg := append(make([]byte, 24), b...)
		_ = NDPNeighborAdvert(msg).Options().Validate()
		_ = NDPRouterAdvert(msg).Options().Validate()
		_ = NDPRouterSolicit(msg).Options().Validate()
		_ = NDPNeighborSolicit(msg).Options().Validate()
	})
}

func FuzzTCPOptions(f *testing.F) {
	f.Add([]byte{1, 2, 4, 5, 0xb4, 3, 3, 7, 4, 2, 0, 0}, uint16(1400))
	f.Fuzz(func(t *testing.T, opts []byte, clamp uint16) {
		if len(opts) > 40 {
			opts = opts[:40]
		}
		opts = append(opts, make([]byte, (4-len(opts)%4)%4)...)
		b := make([]byte, 20+len(opts)+4)
		EncodeTCP(b, TCPFields{SrcPort: 1, DstPort: 2, DataOffset: uint8(20 + len(opts)), Flags: TCPFlagSYN})
		copy(b[20:], opts)
		copy(b[20+len(opts):], "data")
		seg := TCP(b)
		if !seg.IsValid() {
			t.Fatal("constructed segment invalid")
		}
		var ours []Option
		it := seg.OptionIter()
		for n := 0; n <= 40; n++ {
			o, ok := it.Next()
			if !ok {
				break
			}
			ours = append(ours, o)
		}
		// The MSS helpers agree with the iterator: the first well-formed MSS option.
		var wantMSS uint16
		hasMSS := false
		for _, o := range ours {
			if o.Type == TCPOptionMSS && len(o.Data) == 2 {
				wantMSS, hasMSS = binary.BigEndian.Uint16(o.Data), true
				break
			}
		}
		if mss, ok := seg.MSS(); ok != hasMSS || mss != wantMSS {
			t.Fatalf("MSS %d %v, iterator says %d %v", mss, ok, wantMSS, hasMSS)
		}
		// gopacket agrees on the options when it accepts them.
		var g layers.TCP
		if err := g.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err == nil && it.Err() == nil {
			var theirs []layers.TCPOption
			for _, o := range g.Options {
				if o.OptionType == layers.TCPOptionKindEndList {
					break
				}
				if o.OptionType != layers.TCPOptionKindNop {
					theirs = append(theirs, o)
				}
			}
			if len(theirs) != len(ours) {
				t.Fatalf("%d options, gopacket %d", len(ours), len(theirs))
			}
			for i := range ours {
				if ours[i].Type != uint8(theirs[i].OptionType) || !bytes.Equal(ours[i].Data, theirs[i].OptionData) {
					t.Fatalf("option %d: %+v, gopacket %+v", i, ours[i], theirs[i])
				}
			}
		}
		// MSS clamping keeps the checksum right.
		SetTransportChecksum(ProtocolTCP, v4A, v4B, b)
		changed := seg.ClampMSSWithChecksumUpdate(clamp)
		if changed != (hasMSS && wantMSS > clamp) {
			t.Fatalf("clamp to %d changed=%v with MSS %d %v", clamp, changed, wantMSS, hasMSS)
		}
		if !IsTransportChecksumValid(ProtocolTCP, v4A, v4B, b) {
			t.Fatal("checksum invalid after MSS clamp")
		}
	})
}

func FuzzTransport(f *testing.F) {
	f.Add(uint8(ProtocolUDP), []byte{0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4}, uint16(80), true)
	f.Fuzz(func(t *testing.T, proto uint8, b []byte, port uint16, v6 bool) {
		src, dst := v4A, v4B
		if v6 {
			src, dst = v6A, v6B
		}
		_, _ = TransportChecksum(proto, src, dst, b)
		if u := UDP(b); u.IsValid() {
			_ = u.Payload()
			if SetTransportChecksum(ProtocolUDP, src, dst, b) {
				u.SetDestinationPortWithChecksumUpdate(port)
				u.UpdateChecksumPseudoHeaderAddress(dst, src)
				if !IsTransportChecksumValid(ProtocolUDP, src, src, b) {
					t.Fatal("UDP checksum invalid after updates")
				}
			}
		}
		if s := TCP(b); s.IsValid() {
			_ = s.Payload()
			if SetTransportChecksum(ProtocolTCP, src, dst, b) {
				s.SetSourcePortWithChecksumUpdate(port)
				_ = s.SetMSSWithChecksumUpdate(port)
				if !IsTransportChecksumValid(ProtocolTCP, src, dst, b) {
					t.Fatal("TCP checksum invalid after updates")
				}
			}
		}
		if i := ICMPv4(b); i.IsValid() {
			_, _, _, _, _ = i.MTU(), i.Ident(), i.Sequence(), i.Payload(), i.IsError()
		}
		if i := ICMPv6(b); i.IsValid() {
			_, _, _ = i.MTU(), i.Payload(), i.CalculateChecksum(src, dst)
		}
		_ = NDPNeighborSolicit(b).IsValid() && NDPNeighborSolicit(b).TargetAddress().IsValid()
		_ = NDPNeighborAdvert(b).IsValid() && NDPNeighborAdvert(b).TargetAddress().IsValid()
		if ra := NDPRouterAdvert(b); ra.IsValid() {
			_, _, _ = ra.RouterLifetime(), ra.ReachableTime(), ra.RetransTimer()
		}
	})
}

func FuzzICMPErrorBuilders(f *testing.F) {
	f.Add(echoV4Seed(), 600)
	f.Fuzz(func(t *testing.T, orig []byte, size int) {
		size = max(0, min(size, 2000))
		b := make([]byte, size)
		if n := BuildICMPv4Error(b, v4C, v4A, ICMPv4TimeExceeded, 0, 0, orig); n > 0 {
			v := IPv4(b[:n])
			if n > ICMPv4MaxErrorSize || !v.IsValid() || !v.IsChecksumValid() || ICMPv4(v.Payload()).CalculateChecksum() != ICMPv4(v.Payload()).Checksum() {
				t.Fatalf("bad ICMPv4 error of %d bytes", n)
			}
			if o := IPv4(orig); o.IsValid() {
				_ = ShouldSendICMPv4Error(o)
				_ = EchoReplyIPv4InPlace(IPv4(append([]byte(nil), orig...)), netip.Addr{})
			}
		} else if size >= 28 {
			t.Fatalf("BuildICMPv4Error refused a %d-byte buffer", size)
		}
		if n := BuildICMPv6Error(b, v6C, v6A, ICMPv6ParamProblem, 0, 40, orig); n > 0 {
			v := IPv6(b[:n])
			if n > ICMPv6MaxErrorSize || !v.IsValid() || !IsTransportChecksumValid(ProtocolICMPv6, v6C, v6A, v.Payload()) {
				t.Fatalf("bad ICMPv6 error of %d bytes", n)
			}
			if o := IPv6(orig); o.IsValid() {
				_ = ShouldSendICMPv6Error(o, ICMPv6TimeExceeded, 0)
				c := append([]byte(nil), orig...)
				if EchoReplyIPv6InPlace(IPv6(c), netip.Addr{}) {
					o2 := IPv6(c)
					if !IsTransportChecksumValid(ProtocolICMPv6, o2.SourceAddr(), o2.DestinationAddr(), o2.Payload()) &&
						IsTransportChecksumValid(ProtocolICMPv6, o.SourceAddr(), o.DestinationAddr(), o.Payload()) {
						t.Fatal("echo reply broke a valid checksum")
					}
				}
			}
		} else if size >= 48 {
			t.Fatalf("BuildICMPv6Error refused a %d-byte buffer", size)
		}
	})
}

func echoV4Seed() []byte {
	b := make([]byte, 36)
	EncodeIPv4(b, IPv4Fields{TotalLength: 36, TTL: 64, Protocol: ProtocolICMPv4, Src: v4A, Dst: v4B})
	b[20] = ICMPv4Echo
	ICMPv4(b[20:]).SetChecksum(ICMPv4(b[20:]).CalculateChecksum())
	return b
}
