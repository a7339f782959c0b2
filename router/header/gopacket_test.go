package header

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
)

// serialize builds a packet with gopacket, fixing lengths and computing checksums.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// serializeChecksums builds a packet with gopacket, computing checksums but keeping the
// lengths given.
func serializeChecksums(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	if a.Is4In6() {
		a = a.Unmap()
	}
	return a
}

func ipOf(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func hwOf(m MAC) net.HardwareAddr { return net.HardwareAddr(m[:]) }

var (
	macA = MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	macB = MAC{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	v4A  = netip.MustParseAddr("192.0.2.1")
	v4B  = netip.MustParseAddr("198.51.100.7")
	v4C  = netip.MustParseAddr("203.0.113.9")
	v6A  = netip.MustParseAddr("2001:db8::1")
	v6B  = netip.MustParseAddr("2001:db8:1::bbbb")
	v6C  = netip.MustParseAddr("2001:db8:2::c")
)
