package loadgen

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

func synSpec(sources, dst string) SYNSpec {
	return SYNSpec{
		DstMAC:  header.MAC{0x02, 0, 0, 0, 0, 1},
		SrcMAC:  header.MAC{0x02, 0, 0, 0, 0, 2},
		Sources: netip.MustParsePrefix(sources),
		Dst:     netip.MustParseAddr(dst),
		DstPort: 80,
	}
}

// decodeSYN decodes a frame with gopacket, the independent oracle, and checks everything
// a SYN of spec must be; it returns the source address and port and the sequence number.
func decodeSYN(t *testing.T, spec SYNSpec, f []byte) (netip.Addr, uint16, uint32) {
	t.Helper()
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if [6]byte(eth.DstMAC) != spec.DstMAC || [6]byte(eth.SrcMAC) != spec.SrcMAC {
		t.Fatalf("MACs %v -> %v", eth.SrcMAC, eth.DstMAC)
	}
	var src, dst netip.Addr
	var tcpBytes []byte
	if spec.Dst.Is4() {
		ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatal("no IPv4 layer")
		}
		src, dst = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4()))
		if ip.Protocol != layers.IPProtocolTCP || ip.TTL != frameTTL || ip.Length != 44 || ip.Flags != layers.IPv4DontFragment {
			t.Fatalf("IPv4 header %+v", ip)
		}
		if !header.IPv4(f[header.EthernetMinimumSize:]).IsChecksumValid() {
			t.Fatal("bad IPv4 header checksum")
		}
		want := ip.Checksum
		ip.Checksum = 0
		buf := gopacket.NewSerializeBuffer()
		if err := ip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
			t.Fatal(err)
		}
		if got := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv4, gopacket.Lazy).Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; got != want {
			t.Fatalf("IPv4 checksum %#04x, gopacket computes %#04x", want, got)
		}
		tcpBytes = ip.Payload
	} else {
		ip, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !ok {
			t.Fatal("no IPv6 layer")
		}
		src, dst = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP))
		if ip.NextHeader != layers.IPProtocolTCP || ip.HopLimit != frameTTL || ip.Length != synTCPLen {
			t.Fatalf("IPv6 header %+v", ip)
		}
		tcpBytes = ip.Payload
	}
	if dst != spec.Dst || !spec.Sources.Contains(src) {
		t.Fatalf("%v -> %v, want from %v to %v", src, dst, spec.Sources, spec.Dst)
	}
	tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatal("no TCP layer")
	}
	if !tcp.SYN || tcp.ACK || tcp.RST || tcp.FIN || tcp.PSH || tcp.URG || tcp.DstPort != 80 || tcp.SrcPort < firstFloodSrc || tcp.Ack != 0 {
		t.Fatalf("TCP header %+v", tcp)
	}
	if len(tcp.Options) != 1 || tcp.Options[0].OptionType != layers.TCPOptionKindMSS || len(tcp.Payload) != 0 {
		t.Fatalf("TCP options %v, payload %d bytes", tcp.Options, len(tcp.Payload))
	}
	if !header.IsTransportChecksumValid(header.ProtocolTCP, src, dst, tcpBytes) {
		t.Fatal("bad TCP checksum")
	}
	// gopacket's own checksum of the same segment.
	want := tcp.Checksum
	var nl gopacket.NetworkLayer
	if spec.Dst.Is4() {
		nl = pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	} else {
		nl = pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	}
	if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := tcp.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		t.Fatal(err)
	}
	if got := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeTCP, gopacket.Lazy).Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum; got != want {
		t.Fatalf("TCP checksum %#04x, gopacket computes %#04x", want, got)
	}
	return src, uint16(tcp.SrcPort), tcp.Seq
}

func TestSYNGenFramesDecodedByGopacket(t *testing.T) {
	for _, tc := range []struct {
		sources, dst string
		frameLen     int
		minAddrs     int // distinct source addresses of 1000 frames at least
	}{
		{"192.0.2.0/24", "198.51.100.100", SYNFrameLen4, 200},
		{"203.0.113.128/25", "198.51.100.100", SYNFrameLen4, 100},
		{"198.51.100.7/32", "198.51.100.100", SYNFrameLen4, 1},
		{"2001:db8:ff00::/40", "2001:db8:1::100", SYNFrameLen6, 990},
		{"2001:db8:1:2::/64", "2001:db8:1::100", SYNFrameLen6, 990},
	} {
		t.Run(tc.sources, func(t *testing.T) {
			spec := synSpec(tc.sources, tc.dst)
			g, err := NewSYNGen(spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			if g.FrameLen() != tc.frameLen {
				t.Fatalf("frame length %d, want %d", g.FrameLen(), tc.frameLen)
			}
			addrs, ports, seqs := map[netip.Addr]bool{}, map[uint16]bool{}, map[uint32]bool{}
			buf := make([]byte, SYNFrameLen6+10)
			const n = 1000
			for range n {
				f := g.Fill(buf)
				if len(f) != tc.frameLen {
					t.Fatalf("Fill returned %d bytes", len(f))
				}
				a, p, s := decodeSYN(t, spec, f)
				addrs[a], ports[p], seqs[s] = true, true, true
			}
			if len(addrs) < tc.minAddrs {
				t.Errorf("%d distinct source addresses in %d frames, want at least %d", len(addrs), n, tc.minAddrs)
			}
			// Random ports and sequence numbers out of 64512 and 2^32: a few repeats at most.
			if len(ports) < 980 || len(seqs) < 995 {
				t.Errorf("%d distinct source ports, %d sequence numbers in %d frames: not random", len(ports), len(seqs), n)
			}
		})
	}
}

func TestSYNGenZeroAllocs(t *testing.T) {
	for _, spec := range []SYNSpec{synSpec("192.0.2.0/24", "198.51.100.100"), synSpec("2001:db8::/32", "2001:db8:1::100")} {
		g, err := NewSYNGen(spec, 7)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, SYNFrameLen6)
		if a := testing.AllocsPerRun(1000, func() { g.Fill(buf) }); a != 0 {
			t.Errorf("%v: %v allocations per frame", spec.Sources, a)
		}
	}
}

func TestCheckFloodSources(t *testing.T) {
	for _, ok := range []string{"192.0.2.0/24", "192.0.2.128/26", "198.51.100.0/24", "203.0.113.5/32", "2001:db8::/32", "2001:db8:1::/48"} {
		if err := CheckFloodSources(netip.MustParsePrefix(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"10.0.0.0/8":           "outside the documentation prefixes",
		"192.0.2.0/23":         "outside the documentation prefixes",
		"198.51.0.0/16":        "outside the documentation prefixes",
		"2001:db8::/31":        "outside the documentation prefixes",
		"2001:db9::/32":        "outside the documentation prefixes",
		"::ffff:192.0.2.0/120": "outside the documentation prefixes",
		"192.0.2.1/24":         "host bits set",
	} {
		err := CheckFloodSources(netip.MustParsePrefix(bad))
		if err == nil || !errors.Is(err, ErrBadFrameSpec) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", bad, err, want)
		}
	}
	if err := CheckFloodSources(netip.Prefix{}); err == nil {
		t.Error("the zero prefix passed")
	}
}

func TestNewSYNGenRefuses(t *testing.T) {
	for name, spec := range map[string]SYNSpec{
		"family":     synSpec("192.0.2.0/24", "2001:db8::1"),
		"outside":    synSpec("10.1.0.0/16", "198.51.100.100"),
		"port 0":     func() SYNSpec { s := synSpec("192.0.2.0/24", "198.51.100.1"); s.DstPort = 0; return s }(),
		"multicast":  func() SYNSpec { s := synSpec("192.0.2.0/24", "198.51.100.1"); s.DstMAC[0] |= 1; return s }(),
		"zero MAC":   func() SYNSpec { s := synSpec("192.0.2.0/24", "198.51.100.1"); s.DstMAC = header.MAC{}; return s }(),
		"mapped dst": synSpec("2001:db8::/32", "::ffff:198.51.100.1"),
	} {
		if _, err := NewSYNGen(spec, 1); err == nil || !errors.Is(err, ErrBadFrameSpec) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestFloodConfigValidate(t *testing.T) {
	good := FloodConfig{Dst: netip.MustParseAddrPort("198.51.100.100:80"), Sources: netip.MustParsePrefix("192.0.2.0/24"), Duration: 1e9}
	c := good
	if err := c.Validate(); err != nil || c.Batch != DefaultBatch || c.Seed == 0 {
		t.Fatalf("%v, %+v", err, c)
	}
	for want, mod := range map[string]func(*FloodConfig){
		"rate -1 out of range":        func(c *FloodConfig) { c.Rate = -1 },
		"rate 100000001 out of range": func(c *FloodConfig) { c.Rate = MaxFloodRate + 1 },
		"duration 0s out of range":    func(c *FloodConfig) { c.Duration = 0 },
		"different families":          func(c *FloodConfig) { c.Sources = netip.MustParsePrefix("2001:db8::/32") },
		"outside the documentation":   func(c *FloodConfig) { c.Sources = netip.MustParsePrefix("100.64.0.0/10") },
		"want ADDRESS:PORT":           func(c *FloodConfig) { c.Dst = netip.AddrPortFrom(c.Dst.Addr(), 0) },
		"batch 2000":                  func(c *FloodConfig) { c.Batch = 2000 },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one saying %q", err, want)
		}
	}
}
