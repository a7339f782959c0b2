package header

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestMAC(t *testing.T) {
	for _, tc := range []struct {
		m                  MAC
		str                string
		bcast, mcast, zero bool
	}{
		{BroadcastMAC, "ff:ff:ff:ff:ff:ff", true, true, false},
		{MAC{0x33, 0x33, 0, 0, 0, 1}, "33:33:00:00:00:01", false, true, false},
		{MAC{0x01, 0x00, 0x5e, 0, 0, 0x12}, "01:00:5e:00:00:12", false, true, false},
		{macA, "52:54:00:12:34:56", false, false, false},
		{MAC{}, "00:00:00:00:00:00", false, false, true},
	} {
		if got := tc.m.String(); got != tc.str {
			t.Errorf("String = %q, want %q", got, tc.str)
		}
		if tc.m.IsBroadcast() != tc.bcast || tc.m.IsMulticast() != tc.mcast || tc.m.IsZero() != tc.zero {
			t.Errorf("%s: broadcast %v multicast %v zero %v", tc.str, tc.m.IsBroadcast(), tc.m.IsMulticast(), tc.m.IsZero())
		}
	}
}

func TestIPv6MulticastHelpers(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::12:3456:789a")
	if got, want := SolicitedNodeAddr(a), netip.MustParseAddr("ff02::1:ff56:789a"); got != want {
		t.Errorf("SolicitedNodeAddr = %v, want %v", got, want)
	}
	want := MAC{0x33, 0x33, 0xff, 0x56, 0x78, 0x9a}
	if got := SolicitedNodeMAC(a); got != want {
		t.Errorf("SolicitedNodeMAC = %v, want %v", got, want)
	}
	if got := SolicitedNodeMAC(SolicitedNodeAddr(a)); got != want {
		t.Errorf("SolicitedNodeMAC(solicited-node addr) = %v, want %v", got, want)
	}
	if got, want := IPv6MulticastMAC(netip.MustParseAddr("ff02::1")), (MAC{0x33, 0x33, 0, 0, 0, 1}); got != want {
		t.Errorf("IPv6MulticastMAC(ff02::1) = %v, want %v", got, want)
	}
	// Modified EUI-64: U/L bit flipped, ff:fe inserted.
	if got, want := LinkLocalFromMAC(macA), netip.MustParseAddr("fe80::5054:ff:fe12:3456"); got != want {
		t.Errorf("LinkLocalFromMAC = %v, want %v", got, want)
	}
	if got, want := LinkLocalFromMAC(macB), netip.MustParseAddr("fe80::5eff:fe10:1"); got != want {
		t.Errorf("LinkLocalFromMAC = %v, want %v", got, want)
	}
}

func TestEthernetAgainstGopacket(t *testing.T) {
	payload := gopacket.Payload([]byte{1, 2, 3, 4})
	untagged := serialize(t, &layers.Ethernet{SrcMAC: hwOf(macA), DstMAC: hwOf(macB), EthernetType: layers.EthernetTypeIPv6}, payload)
	tagged := serialize(t,
		&layers.Ethernet{SrcMAC: hwOf(macA), DstMAC: hwOf(BroadcastMAC), EthernetType: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{Priority: 5, VLANIdentifier: 1234, Type: layers.EthernetTypeARP}, payload)
	for _, tc := range []struct {
		name   string
		b      []byte
		dst    MAC
		typ    uint16
		vlan   uint16
		tagged bool
		hdrLen int
	}{
		{"untagged", untagged, macB, EtherTypeIPv6, 0, false, 14},
		{"tagged", tagged, BroadcastMAC, EtherTypeARP, 1234, true, 18},
	} {
		e := Ethernet(tc.b)
		if !e.IsValid() {
			t.Fatalf("%s: not valid", tc.name)
		}
		id, tg := e.VLAN()
		if e.Source() != macA || e.Destination() != tc.dst || e.EtherType() != tc.typ || id != tc.vlan ||
			tg != tc.tagged || e.HeaderLen() != tc.hdrLen || string(e.Payload()[:len(payload)]) != string(payload) || len(e.Payload()) != len(tc.b)-tc.hdrLen {
			t.Errorf("%s: src %v dst %v type %#x vlan %d/%v hl %d payload %x", tc.name, e.Source(), e.Destination(),
				e.EtherType(), id, tg, e.HeaderLen(), e.Payload())
		}
		// Rewrite MACs and type through the view; gopacket must see the change.
		e.SetSource(macB)
		e.SetDestination(macA)
		e.SetEtherType(EtherTypeIPv4)
		p := gopacket.NewPacket(tc.b, layers.LayerTypeEthernet, gopacket.NoCopy)
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if eth.SrcMAC.String() != macB.String() || eth.DstMAC.String() != macA.String() {
			t.Errorf("%s: gopacket sees src %v dst %v after rewrite", tc.name, eth.SrcMAC, eth.DstMAC)
		}
		gotType := eth.EthernetType
		if d, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
			gotType = d.Type
		}
		if gotType != layers.EthernetTypeIPv4 {
			t.Errorf("%s: gopacket sees type %v after SetEtherType", tc.name, gotType)
		}
	}
}

func TestEthernetIsValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"empty", nil, false},
		{"13 bytes", make([]byte, 13), false},
		{"14 bytes", make([]byte, 14), true},
		{"tagged 17 bytes", append(make([]byte, 12), 0x81, 0x00, 0, 0, 0), false},
		{"tagged 18 bytes", append(make([]byte, 12), 0x81, 0x00, 0, 0, 0, 0), true},
	} {
		if got := Ethernet(tc.b).IsValid(); got != tc.want {
			t.Errorf("%s: IsValid = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEncodeEthernet(t *testing.T) {
	b := make([]byte, 20)
	if EncodeEthernet(b[:13], macA, macB, EtherTypeIPv4) != 0 {
		t.Error("EncodeEthernet wrote into 13 bytes")
	}
	if n := EncodeEthernet(b, macA, macB, EtherTypeARP); n != 14 {
		t.Fatalf("EncodeEthernet = %d", n)
	}
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth.DstMAC.String() != macA.String() || eth.SrcMAC.String() != macB.String() || eth.EthernetType != layers.EthernetTypeARP {
		t.Errorf("gopacket decodes %v %v %v", eth.DstMAC, eth.SrcMAC, eth.EthernetType)
	}
}

func TestARPAgainstGopacket(t *testing.T) {
	b := serialize(t, &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPReply, SourceHwAddress: hwOf(macA), SourceProtAddress: ipOf(v4A).To4(),
		DstHwAddress: hwOf(macB), DstProtAddress: ipOf(v4B).To4(),
	})
	a := ARP(b)
	if !a.IsValid() || a.Op() != ARPReply || a.SenderMAC() != macA || a.SenderIP() != v4A || a.TargetMAC() != macB || a.TargetIP() != v4B {
		t.Fatalf("view: valid %v op %d %v %v %v %v", a.IsValid(), a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
	}

	frame := make([]byte, 64)
	n := BuildARPRequest(frame, macA, v4A, v4C)
	if n != 42 {
		t.Fatalf("BuildARPRequest = %d", n)
	}
	p := gopacket.NewPacket(frame[:n], layers.LayerTypeEthernet, gopacket.Default)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok {
		t.Fatalf("gopacket finds no ARP: %v", p)
	}
	if eth.DstMAC.String() != BroadcastMAC.String() || arp.Operation != layers.ARPRequest ||
		addrOf(arp.SourceProtAddress) != v4A || addrOf(arp.DstProtAddress) != v4C ||
		net.HardwareAddr(arp.SourceHwAddress).String() != macA.String() || net.HardwareAddr(arp.DstHwAddress).String() != (MAC{}).String() {
		t.Errorf("request decodes as %+v", arp)
	}

	n = BuildARPReply(frame, macB, v4C, macA, v4A)
	p = gopacket.NewPacket(frame[:n], layers.LayerTypeEthernet, gopacket.Default)
	eth = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp = p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if n != 42 || eth.DstMAC.String() != macA.String() || arp.Operation != layers.ARPReply ||
		addrOf(arp.SourceProtAddress) != v4C || addrOf(arp.DstProtAddress) != v4A {
		t.Errorf("reply decodes as %+v", arp)
	}
}

func TestARPRejects(t *testing.T) {
	good := make([]byte, ARPSize)
	BuildARP(good, ARPRequest, macA, v4A, MAC{}, v4B)
	if !ARP(good).IsValid() {
		t.Fatal("built ARP not valid")
	}
	for _, tc := range []struct {
		name string
		off  int
		val  byte
	}{
		{"hardware type", 1, 6},
		{"protocol type", 2, 0x86},
		{"hlen", 4, 8},
		{"plen", 5, 16},
	} {
		b := append([]byte(nil), good...)
		b[tc.off] = tc.val
		if ARP(b).IsValid() {
			t.Errorf("%s altered: still valid", tc.name)
		}
	}
	if ARP(good[:27]).IsValid() {
		t.Error("27 bytes valid")
	}
	if BuildARP(make([]byte, 27), ARPRequest, macA, v4A, MAC{}, v4B) != 0 {
		t.Error("BuildARP wrote into 27 bytes")
	}
	if BuildARP(good, ARPRequest, macA, v6A, MAC{}, v4B) != 0 || BuildARPRequest(make([]byte, 60), macA, v4A, v6A) != 0 {
		t.Error("ARP built with an IPv6 address")
	}
	if BuildARPRequest(make([]byte, 41), macA, v4A, v4B) != 0 || BuildARPReply(make([]byte, 41), macA, v4A, macB, v4B) != 0 {
		t.Error("ARP frame built into 41 bytes")
	}
}
