package loadgen

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

func testSpec() FrameSpec {
	return FrameSpec{
		DstMAC:  header.MAC{0x02, 0, 0, 0, 0, 1},
		SrcMAC:  header.MAC{0x02, 0, 0, 0, 0, 2},
		Src:     netip.MustParseAddr("192.0.2.2"),
		Dst:     netip.MustParseAddr("198.51.100.2"),
		DstPort: 9,
		Flows:   300,
	}
}

func TestBuildFramesDecodedByGopacket(t *testing.T) {
	spec := testSpec()
	const headroom = 10
	frames, err := BuildFrames(spec, headroom)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != spec.Flows {
		t.Fatalf("%d frames, want %d", len(frames), spec.Flows)
	}
	ports := map[uint16]bool{}
	for i, buf := range frames {
		if len(buf) != headroom+FrameLen {
			t.Fatalf("frame %d: buffer of %d bytes, want %d", i, len(buf), headroom+FrameLen)
		}
		for _, b := range buf[:headroom] {
			if b != 0 {
				t.Fatalf("frame %d: headroom not zero: % x", i, buf[:headroom])
			}
		}
		f := buf[headroom:]
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("frame %d: %v", i, el.Error())
		}
		eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if eth == nil || ip == nil || udp == nil {
			t.Fatalf("frame %d: not Ethernet/IPv4/UDP: %v", i, pkt)
		}
		if header.MAC(eth.DstMAC) != spec.DstMAC || header.MAC(eth.SrcMAC) != spec.SrcMAC {
			t.Errorf("frame %d: MACs %v -> %v", i, eth.SrcMAC, eth.DstMAC)
		}
		if ip.SrcIP.String() != "192.0.2.2" || ip.DstIP.String() != "198.51.100.2" || ip.TTL != frameTTL ||
			int(ip.Length) != FrameLen-14 || ip.Flags != layers.IPv4DontFragment {
			t.Errorf("frame %d: IPv4 header %+v", i, ip)
		}
		// Recompute the IPv4 checksum with gopacket as the independent encoder.
		want := *ip
		want.Checksum = 0
		sb := gopacket.NewSerializeBuffer()
		if err := want.SerializeTo(sb, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
			t.Fatal(err)
		}
		if got := header.IPv4(sb.Bytes()).Checksum(); got != ip.Checksum {
			t.Errorf("frame %d: IPv4 checksum %#04x, gopacket computes %#04x", i, ip.Checksum, got)
		}
		if int(udp.Length) != FrameLen-14-20 || uint16(udp.DstPort) != 9 || uint16(udp.SrcPort) != SrcPort(i) {
			t.Errorf("frame %d: UDP header %+v", i, udp)
		}
		ports[uint16(udp.SrcPort)] = true
		u := f[14+20:]
		if !header.IsTransportChecksumValid(header.ProtocolUDP, spec.Src, spec.Dst, u) || udp.Checksum == 0 {
			t.Errorf("frame %d: UDP checksum %#04x is not valid", i, udp.Checksum)
		}
		// Same check with gopacket's UDP checksum over the pseudo-header.
		wu := *udp
		wu.Checksum = 0
		if err := wu.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		sb = gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true}, &wu, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		if got := header.UDP(sb.Bytes()).Checksum(); got != udp.Checksum {
			t.Errorf("frame %d: UDP checksum %#04x, gopacket computes %#04x", i, udp.Checksum, got)
		}
	}
	if len(ports) != spec.Flows {
		t.Errorf("%d distinct source ports, want %d", len(ports), spec.Flows)
	}
}

func TestBuildFramesRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*FrameSpec)
	}{
		{"ipv6 source", func(s *FrameSpec) { s.Src = netip.MustParseAddr("2001:db8::1") }},
		{"no destination", func(s *FrameSpec) { s.Dst = netip.Addr{} }},
		{"zero flows", func(s *FrameSpec) { s.Flows = 0 }},
		{"too many flows", func(s *FrameSpec) { s.Flows = MaxFlows + 1 }},
		{"broadcast MAC", func(s *FrameSpec) { s.DstMAC = header.BroadcastMAC }},
		{"zero MAC", func(s *FrameSpec) { s.DstMAC = header.MAC{} }},
	} {
		spec := testSpec()
		tc.edit(&spec)
		if _, err := BuildFrames(spec, 0); !errors.Is(err, ErrBadFrameSpec) {
			t.Errorf("%s: err %v, want ErrBadFrameSpec", tc.name, err)
		}
	}
	spec := testSpec()
	spec.Flows = MaxFlows
	frames, err := BuildFrames(spec, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := header.UDP(frames[MaxFlows-1][34:]).SourcePort(); got != 65535 {
		t.Errorf("last flow's source port %d, want 65535", got)
	}
}
