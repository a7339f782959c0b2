package arpd

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

// manualClock is a clock that moves only when told to.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sent is one frame captured from Send or OnUnreachable, copied.
type sent struct {
	frame []byte
	vnet  []byte
}

type capture struct {
	mu     sync.Mutex
	frames []sent
}

func (c *capture) send(buf []byte, offset int) {
	s := sent{frame: bytes.Clone(buf[offset:]), vnet: bytes.Clone(buf[offset-header.VnetHdrLen : offset])}
	// Scribble over the buffer: arpd must not rely on it after the call.
	for i := range buf[offset:] {
		buf[offset+i] = 0xee
	}
	c.mu.Lock()
	c.frames = append(c.frames, s)
	c.mu.Unlock()
}

// take returns the frames captured so far and forgets them.
func (c *capture) take() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frames
	c.frames = nil
	return f
}

var (
	portMAC  = header.MAC{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	peerMAC  = header.MAC{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}
	peer2MAC = header.MAC{0x02, 0x00, 0x5e, 0x10, 0x00, 0x03}
	vrrpMAC  = header.MAC{0x00, 0x00, 0x5e, 0x00, 0x01, 0x07}

	own4     = netip.MustParsePrefix("198.51.100.10/24")
	own6     = netip.MustParsePrefix("2001:db8:1::10/64")
	peer4    = netip.MustParseAddr("198.51.100.20")
	peer6    = netip.MustParseAddr("2001:db8:1::20")
	peerLL   = netip.MustParseAddr("fe80::20")
	other4   = netip.MustParseAddr("198.51.100.30")  // on-link, not ours
	offLink4 = netip.MustParseAddr("203.0.113.7")    // another network
	other6   = netip.MustParseAddr("2001:db8:1::30") // on-link, not ours
	offLink6 = netip.MustParseAddr("2001:db8:9::7")  // another network
)

type harness struct {
	n       *Neighbours
	out     *capture
	unreach *capture
	clk     *manualClock
}

func newHarness(t testing.TB, mut func(*Config)) *harness {
	t.Helper()
	h := &harness{out: &capture{}, unreach: &capture{}, clk: &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	cfg := Config{
		Port:          "test",
		MAC:           portMAC,
		Addresses:     []netip.Prefix{own4, own6},
		Send:          h.out.send,
		OnUnreachable: h.unreach.send,
		Now:           h.clk.Now,
	}
	if mut != nil {
		mut(&cfg)
	}
	h.n = New(cfg)
	return h
}

func hw(m header.MAC) net.HardwareAddr { return net.HardwareAddr(m[:]) }

func ipOf(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// arpFrame builds an ARP frame with gopacket.
func arpFrame(t testing.TB, op uint16, ethDst, sha header.MAC, spa netip.Addr, tha header.MAC, tpa netip.Addr) []byte {
	t.Helper()
	return serialize(t,
		&layers.Ethernet{SrcMAC: hw(sha), DstMAC: hw(ethDst), EthernetType: layers.EthernetTypeARP},
		&layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
			SourceHwAddress: hw(sha), SourceProtAddress: ipOf(spa),
			DstHwAddress: hw(tha), DstProtAddress: ipOf(tpa),
		})
}

func llOption(typ layers.ICMPv6Opt, m header.MAC) layers.ICMPv6Option {
	return layers.ICMPv6Option{Type: typ, Data: bytes.Clone(m[:])}
}

// nsFrame builds a neighbour solicitation with gopacket; slla zero means no option.
func nsFrame(t testing.TB, ethSrc, ethDst header.MAC, src, dst, target netip.Addr, slla header.MAC, hop uint8) []byte {
	t.Helper()
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: ipOf(target)}
	if !slla.IsZero() {
		ns.Options = layers.ICMPv6Options{llOption(layers.ICMPv6OptSourceAddress, slla)}
	}
	return icmp6Frame(t, ethSrc, ethDst, src, dst, hop, layers.ICMPv6TypeNeighborSolicitation, ns)
}

// naFrame builds a neighbour advertisement with gopacket; tlla zero means no option.
func naFrame(t testing.TB, ethSrc, ethDst header.MAC, src, dst, target netip.Addr, flags uint8, tlla header.MAC) []byte {
	t.Helper()
	na := &layers.ICMPv6NeighborAdvertisement{TargetAddress: ipOf(target), Flags: flags}
	if !tlla.IsZero() {
		na.Options = layers.ICMPv6Options{llOption(layers.ICMPv6OptTargetAddress, tlla)}
	}
	return icmp6Frame(t, ethSrc, ethDst, src, dst, 255, layers.ICMPv6TypeNeighborAdvertisement, na)
}

func icmp6Frame(t testing.TB, ethSrc, ethDst header.MAC, src, dst netip.Addr, hop uint8, typ uint8, body gopacket.SerializableLayer) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: hop, SrcIP: ipOf(src), DstIP: ipOf(dst)}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, &layers.Ethernet{SrcMAC: hw(ethSrc), DstMAC: hw(ethDst), EthernetType: layers.EthernetTypeIPv6}, ip, icmp, body)
}

// gotARP decodes a frame arpd sent as Ethernet + ARP with gopacket.
func gotARP(t *testing.T, frame []byte) (*layers.Ethernet, *layers.ARP) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if eth == nil || a == nil {
		t.Fatalf("not an ARP frame: %v", p)
	}
	return eth, a
}

// ndpMsg is a decoded NS or NA arpd sent.
type ndpMsg struct {
	eth *layers.Ethernet
	ip  *layers.IPv6
	ns  *layers.ICMPv6NeighborSolicitation
	na  *layers.ICMPv6NeighborAdvertisement
	lla header.MAC // the source or target link-layer option
}

// gotNDP decodes a frame arpd sent with gopacket and checks what every NDP message must
// satisfy: hop limit 255, code 0, a correct checksum, one link-layer option.
func gotNDP(t *testing.T, frame []byte) ndpMsg {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	var m ndpMsg
	m.eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	m.ip, _ = p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	icmp, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	m.ns, _ = p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	m.na, _ = p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if m.eth == nil || m.ip == nil || icmp == nil || (m.ns == nil) == (m.na == nil) {
		t.Fatalf("not an NS or NA frame: %v", p)
	}
	if m.ip.HopLimit != 255 || m.ip.NextHeader != layers.IPProtocolICMPv6 {
		t.Errorf("hop limit %d next header %v", m.ip.HopLimit, m.ip.NextHeader)
	}
	if icmp.TypeCode.Code() != 0 {
		t.Errorf("code %d", icmp.TypeCode.Code())
	}
	msg := frame[14+40 : 14+40+int(m.ip.Length)]
	if s := refChecksum(m.ip.SrcIP, m.ip.DstIP, msg); s != 0xffff && s != 0 {
		t.Errorf("ICMPv6 checksum does not verify: sum %#04x", s)
	}
	opts := layers.ICMPv6Options(nil)
	want := layers.ICMPv6OptSourceAddress
	if m.ns != nil {
		opts = m.ns.Options
	} else {
		opts, want = m.na.Options, layers.ICMPv6OptTargetAddress
	}
	if len(opts) != 1 || opts[0].Type != want || len(opts[0].Data) != 6 {
		t.Fatalf("options %v, want one %v", opts, want)
	}
	m.lla = header.MAC(opts[0].Data)
	return m
}

// refChecksum is a plain RFC 1071 sum over the IPv6 pseudo-header and msg, written
// independently of package header: it is 0xffff for a message with a valid checksum.
func refChecksum(src, dst net.IP, msg []byte) uint16 {
	var b []byte
	b = append(b, src.To16()...)
	b = append(b, dst.To16()...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	b = append(b, 0, 0, 0, 58)
	b = append(b, msg...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	var s uint32
	for i := 0; i < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// entryOf returns the table entry for a, if any.
func (h *harness) entryOf(a netip.Addr) (Entry, bool) {
	for _, e := range h.n.Entries() {
		if e.Address == a {
			return e, true
		}
	}
	return Entry{}, false
}

func (h *harness) wantState(t *testing.T, a netip.Addr, state string) {
	t.Helper()
	e, ok := h.entryOf(a)
	switch {
	case state == "" && ok:
		t.Fatalf("%v: entry %+v, want none", a, e)
	case state == "":
	case !ok:
		t.Fatalf("%v: no entry, want %s", a, state)
	case e.State != state:
		t.Fatalf("%v: state %s, want %s", a, e.State, state)
	}
}

// dataFrame builds a frame for Enqueue in a port-sized buffer: payload tag is written
// after the Ethernet header, and the virtio-net header carries vnetFlag.
func dataFrame(tag byte, etherType uint16, vnetFlag byte) []byte {
	buf := make([]byte, header.Headroom+64)
	f := buf[header.Headroom:]
	header.EncodeEthernet(f, header.MAC{}, portMAC, etherType)
	for i := 14; i < len(f); i++ {
		f[i] = tag
	}
	buf[header.Headroom-header.VnetHdrLen] = vnetFlag
	return buf
}
