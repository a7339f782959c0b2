package arpd

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

// mutate returns a copy of b changed by f.
func mutate(b []byte, f func([]byte) []byte) []byte {
	return f(append([]byte(nil), b...))
}

// fixICMPv6 recomputes the checksum of an NDP frame after a mutation, so that the
// mutation is what gets the frame dropped.
func fixICMPv6(f []byte) []byte {
	ip := header.IPv6(f[14:])
	msg := f[14+40 : 14+40+int(ip.PayloadLength())]
	binary.BigEndian.PutUint16(msg[2:], 0)
	binary.BigEndian.PutUint16(msg[2:], ^refChecksum(ip.SourceAddr().AsSlice(), ip.DestinationAddr().AsSlice(), msg))
	return f
}

func TestMalformedARPCounted(t *testing.T) {
	good := arpFrame(t, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, own4.Addr())
	tests := []struct {
		name  string
		frame []byte
		drop  string
	}{
		{"empty", nil, "short"},
		{"half ethernet", good[:7], "short"},
		{"truncated ARP", good[:14+27], "short"},
		{"IPv4 ethertype", mutate(good, func(b []byte) []byte { b[13] = 0x00; return b }), "ethertype"},
		{"VLAN tagged", mutate(good, func(b []byte) []byte {
			return append(append(append([]byte(nil), b[:12]...), 0x81, 0x00, 0x00, 0x05), b[12:]...)
		}), "ethertype"},
		{"hardware type", mutate(good, func(b []byte) []byte { b[15] = 6; return b }), "arp-format"},
		{"protocol type", mutate(good, func(b []byte) []byte { b[16] = 0x86; b[17] = 0xdd; return b }), "arp-format"},
		{"hardware length", mutate(good, func(b []byte) []byte { b[18] = 8; return b }), "arp-format"},
		{"protocol length", mutate(good, func(b []byte) []byte { b[19] = 16; return b }), "arp-format"},
		{"opcode 3", mutate(good, func(b []byte) []byte { b[21] = 3; return b }), "arp-opcode"},
		{"multicast sender MAC", mutate(good, func(b []byte) []byte { b[22] |= 1; return b }), "bad-sender-mac"},
		{"zero sender MAC", mutate(good, func(b []byte) []byte { clear(b[22:28]); return b }), "bad-sender-mac"},
		{"loopback sender", mutate(good, func(b []byte) []byte { copy(b[28:32], []byte{127, 0, 0, 1}); return b }), "bad-sender-ip"},
		{"limited broadcast sender", mutate(good, func(b []byte) []byte { copy(b[28:32], []byte{255, 255, 255, 255}); return b }), "bad-sender-ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.n.HandleARP(tt.frame)
			if out := h.out.take(); len(out) != 0 {
				t.Fatalf("answered a malformed frame")
			}
			if d := h.n.Stats().Drops; d[tt.drop] != 1 || len(d) != 1 {
				t.Fatalf("drops %v, want %s=1", d, tt.drop)
			}
			if len(h.n.Entries()) != 0 {
				t.Fatalf("learned from a malformed frame")
			}
		})
	}
	t.Run("trailing padding accepted", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.HandleARP(append(append([]byte(nil), good...), make([]byte, 18)...))
		if len(h.out.take()) != 1 {
			t.Fatal("padded request not answered")
		}
	})
}

func TestMalformedNDPCounted(t *testing.T) {
	target := own6.Addr()
	good := nsFrame(t, peerMAC, header.SolicitedNodeMAC(target), peer6, header.SolicitedNodeAddr(target), target, peerMAC, 255)
	goodNA := naFrame(t, peerMAC, portMAC, peer6, own6.Addr(), peer6, header.NDPNASolicitedFlag, peerMAC)
	tests := []struct {
		name  string
		frame []byte
		drop  string
	}{
		{"empty", nil, "short"},
		{"no IPv6 header", good[:14+39], "short"},
		{"ARP ethertype", mutate(good, func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }), "ethertype"},
		{"IPv4 version", mutate(good, func(b []byte) []byte { b[14] = 0x40; return b }), "ipv6-header"},
		{"payload length past frame", mutate(good, func(b []byte) []byte { b[18] = 0x10; return b }), "ipv6-header"},
		{"UDP", mutate(good, func(b []byte) []byte { b[20] = 17; return b }), "not-icmpv6"},
		{"hop-by-hop header", mutate(good, func(b []byte) []byte { b[20] = 0; return b }), "not-icmpv6"},
		{"ICMPv6 truncated", mutate(good, func(b []byte) []byte { b[19] = 4; return b[:14+44] }), "short"},
		{"echo request", fixICMPv6(mutate(good, func(b []byte) []byte { b[54] = 128; return b })), "icmpv6-other"},
		{"hop limit 64", fixICMPv6(mutate(good, func(b []byte) []byte { b[21] = 64; return b })), "hop-limit"},
		{"bad checksum", mutate(good, func(b []byte) []byte { b[57] ^= 0x55; return b }), "checksum"},
		{"code 1", fixICMPv6(mutate(good, func(b []byte) []byte { b[55] = 1; return b })), "ndp-code"},
		{"NS too short", fixICMPv6(mutate(good, func(b []byte) []byte { b[19] = 20; return b[:14+40+20] })), "ndp-format"},
		{"zero-length option", fixICMPv6(mutate(good, func(b []byte) []byte { b[14+40+25] = 0; return b })), "ndp-format"},
		{"option past end", fixICMPv6(mutate(good, func(b []byte) []byte { b[14+40+25] = 2; return b })), "ndp-format"},
		{"multicast target", fixICMPv6(mutate(good, func(b []byte) []byte { b[14+40+8] = 0xff; return b })), "target-multicast"},
		{"multicast source", fixICMPv6(mutate(good, func(b []byte) []byte { b[22] = 0xff; return b })), "bad-sender-ip"},
		{"NA solicited to multicast", fixICMPv6(mutate(goodNA, func(b []byte) []byte {
			dst := netip.MustParseAddr("ff02::1").As16()
			copy(b[14+24:], dst[:])
			return b
		})), "na-solicited-multicast"},
		{"NA multicast TLLA", fixICMPv6(mutate(goodNA, func(b []byte) []byte { b[14+40+26] = 0x01; return b })), "bad-sender-mac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.n.HandleNDP(tt.frame)
			if out := h.out.take(); len(out) != 0 {
				t.Fatalf("answered a malformed frame")
			}
			if d := h.n.Stats().Drops; d[tt.drop] != 1 || len(d) != 1 {
				t.Fatalf("drops %v, want %s=1", d, tt.drop)
			}
			if len(h.n.Entries()) != 0 {
				t.Fatalf("learned from a malformed frame")
			}
		})
	}
	t.Run("good frames pass", func(t *testing.T) {
		h := newHarness(t, nil)
		h.n.HandleNDP(append(append([]byte(nil), good...), 0, 0, 0, 0)) // with Ethernet padding
		if len(h.out.take()) != 1 {
			t.Fatalf("good NS not answered, drops %v", h.n.Stats().Drops)
		}
	})
}
