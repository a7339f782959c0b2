package header

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// decodeIP decodes an IP packet with gopacket, checking every checksum it carries.
func decodeIP(t *testing.T, b []byte) gopacket.Packet {
	t.Helper()
	first := layers.LayerTypeIPv4
	if b[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(b, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	return p
}

// TestOriginate checks the builders of the router's own packets against gopacket: the
// fields, and the checksums against a full recomputation.
func TestOriginate(t *testing.T) {
	for _, fam := range []struct{ src, dst netip.Addr }{
		{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")},
		{netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:2::7")},
	} {
		b := make([]byte, 256)
		n := BuildTCPSegment(b, fam.src, fam.dst, TCPFields{SrcPort: 40001, DstPort: 80, Seq: 7, Ack: 9,
			Flags: TCPFlagSYN, Window: 65535}, 1460)
		p := decodeIP(t, b[:n])
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || tcp.SrcPort != 40001 || tcp.DstPort != 80 || tcp.Seq != 7 || !tcp.SYN || tcp.ACK ||
			len(tcp.Options) != 1 || tcp.Options[0].OptionType != layers.TCPOptionKindMSS {
			t.Fatalf("%v: TCP segment decodes as %+v", fam.src, tcp)
		}
		if !IsTransportChecksumValid(ProtocolTCP, fam.src, fam.dst, b[ipHeaderLen(fam.src):n]) {
			t.Errorf("%v: TCP checksum", fam.src)
		}

		n = BuildUDPDatagram(b, fam.src, fam.dst, 8848, 8849, []byte("hello"))
		p = decodeIP(t, b[:n])
		udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || udp.SrcPort != 8848 || udp.DstPort != 8849 || string(udp.Payload) != "hello" {
			t.Fatalf("%v: UDP datagram decodes as %+v", fam.src, udp)
		}
		if !IsTransportChecksumValid(ProtocolUDP, fam.src, fam.dst, b[ipHeaderLen(fam.src):n]) {
			t.Errorf("%v: UDP checksum", fam.src)
		}

		for i := range b {
			b[i] = 0xff // the payload is cleared
		}
		n = BuildEchoRequest(b, fam.src, fam.dst, 0x1234, 1, 16)
		p = decodeIP(t, b[:n])
		if fam.src.Is4() {
			icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if !ok || icmp.TypeCode.Type() != layers.ICMPv4TypeEchoRequest || icmp.Id != 0x1234 || icmp.Seq != 1 ||
				len(icmp.Payload) != 16 || icmp.Payload[0] != 0 || Checksum(b[IPv4MinimumSize:n], 0) != 0xffff {
				t.Fatalf("echo request decodes as %+v", icmp)
			}
			ip := IPv4(b[:n])
			if !ip.IsValid() || !ip.IsChecksumValid() || ip.TTL() != DefaultTTL {
				t.Error("echo request: bad IPv4 header")
			}
		} else {
			echo, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
			if !ok || echo.Identifier != 0x1234 || echo.SeqNumber != 1 ||
				!IsTransportChecksumValid(ProtocolICMPv6, fam.src, fam.dst, b[IPv6MinimumSize:n]) {
				t.Fatalf("echo request decodes as %+v", echo)
			}
		}
	}
}
