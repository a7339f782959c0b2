package vrrp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"ulb/internal/testenv"
	"ulb/router/header"
)

// captured is one VRRP packet of a pcap file: the IP addresses, TTL and payload.
type captured struct {
	src, dst netip.Addr
	ttl      uint8
	payload  []byte
}

// readPcap reads the protocol-112 packets of a pcap file in testdata.
func readPcap(t testing.TB, name string) []captured {
	t.Helper()
	return readPcapIn(t, "testdata", name)
}

// readPcapIn reads the protocol-112 packets of a pcap file in dir.
func readPcapIn(t testing.TB, dir, name string) []captured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	out, err := parsePcap(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

// parsePcap returns the protocol-112 packets of a little-endian Ethernet pcap file.
func parsePcap(b []byte) ([]captured, error) {
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		return nil, errors.New("not a little-endian Ethernet pcap file")
	}
	var out []captured
	for b = b[24:]; len(b) >= 16; {
		n := int(binary.LittleEndian.Uint32(b[8:]))
		if len(b) < 16+n {
			return nil, errors.New("truncated record")
		}
		frame := b[16 : 16+n]
		b = b[16+n:]
		if len(frame) < header.EthernetMinimumSize {
			continue
		}
		l3 := frame[header.EthernetMinimumSize:]
		switch binary.BigEndian.Uint16(frame[12:]) {
		case header.EtherTypeIPv4:
			ip := header.IPv4(l3)
			if ip.IsValid() && ip.Protocol() == header.ProtocolVRRP {
				out = append(out, captured{ip.SourceAddr(), ip.DestinationAddr(), ip.TTL(), ip.Payload()})
			}
		case header.EtherTypeIPv6:
			ip := header.IPv6(l3)
			if ip.IsValid() && ip.NextHeader() == header.ProtocolVRRP {
				out = append(out, captured{ip.SourceAddr(), ip.DestinationAddr(), ip.HopLimit(), ip.Payload()})
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no VRRP packet")
	}
	return out, nil
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// TestKeepalivedGolden decodes adverts that Debian's keepalived 2.2.7 sent (see
// testdata/capture.sh) and checks that BuildAdvert with the same fields writes the same
// bytes: the interoperability proof of the codec.
func TestKeepalivedGolden(t *testing.T) { checkKeepalivedCaptures(t, "testdata") }

// TestKeepalivedLive captures the keepalived installed here afresh (as
// testdata/capture.sh does, in namespaces of its own) and checks its adverts as
// TestKeepalivedGolden checks the stored ones.
func TestKeepalivedLive(t *testing.T) {
	if testing.Short() {
		t.Skip("takes half a minute")
	}
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "keepalived", "tcpdump", "ip")
	dir := t.TempDir()
	tag := fmt.Sprintf("t%d", os.Getpid()%1000000)
	t.Cleanup(func() {
		for n := 1; n <= 3; n++ {
			for _, side := range []string{"a", "b"} {
				exec.Command("ip", "netns", "del", fmt.Sprintf("ulbt-vk%s-%s-%d", side, tag, n)).Run()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", filepath.Join("testdata", "capture.sh"), dir, tag).CombinedOutput()
	if err != nil {
		t.Fatalf("capture.sh: %v\n%s", err, out)
	}
	checkKeepalivedCaptures(t, dir)
}

func checkKeepalivedCaptures(t *testing.T, dir string) {
	tests := []struct {
		file      string
		version   uint8
		vrid      uint8
		prio      uint8
		interval  time.Duration
		addresses []netip.Addr
		mode      ChecksumMode
	}{
		{"keepalived-v2-ipv4.pcap", 2, 51, 150, time.Second, addrs("192.0.2.100", "192.0.2.101"), NoPseudoHeader},
		{"keepalived-v3-ipv4.pcap", 3, 51, 150, time.Second, addrs("192.0.2.100", "192.0.2.101"), PseudoHeader},
		{"keepalived-v3-ipv6.pcap", 3, 52, 200, 500 * time.Millisecond, addrs("2001:db8::100", "2001:db8::101"), PseudoHeader},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pkts := readPcapIn(t, dir, tt.file)
			sawStop := false
			for i, c := range pkts {
				ipv6 := c.src.Is6()
				p := Advert(c.payload)
				if !p.IsValid(ipv6) {
					t.Fatalf("packet %d: not valid: % x", i, c.payload)
				}
				if c.ttl != 255 {
					t.Errorf("packet %d: TTL %d", i, c.ttl)
				}
				if ipv6 && !c.src.IsLinkLocalUnicast() {
					t.Errorf("packet %d: IPv6 source %v is not link-local", i, c.src)
				}
				want := GroupIPv4
				if ipv6 {
					want = GroupIPv6
				}
				if c.dst != want {
					t.Errorf("packet %d: destination %v", i, c.dst)
				}
				if p.Version() != tt.version || p.Type() != TypeAdvertisement || p.VRID() != tt.vrid {
					t.Errorf("packet %d: version %d type %d VRID %d", i, p.Version(), p.Type(), p.VRID())
				}
				if p.Interval() != tt.interval {
					t.Errorf("packet %d: interval %v, want %v", i, p.Interval(), tt.interval)
				}
				if tt.version == 2 && (p.AuthType() != AuthNone || p.AdverInt() != uint8(tt.interval/time.Second)) {
					t.Errorf("packet %d: auth %d adver int %d", i, p.AuthType(), p.AdverInt())
				}
				if tt.version == 3 && p.MaxAdverInt() != uint16(tt.interval/centisecond) {
					t.Errorf("packet %d: max adver int %d", i, p.MaxAdverInt())
				}
				got := p.AppendAddresses(nil, ipv6)
				if len(got) != len(tt.addresses) || int(p.CountIPAddrs()) != len(got) {
					t.Fatalf("packet %d: addresses %v", i, got)
				}
				for j := range got {
					if got[j] != tt.addresses[j] {
						t.Errorf("packet %d: address %d = %v, want %v", i, j, got[j], tt.addresses[j])
					}
				}
				ok, mode := p.IsChecksumValid(c.src, c.dst)
				if !ok || mode != tt.mode {
					t.Errorf("packet %d: checksum valid %v mode %v, want mode %v", i, ok, mode, tt.mode)
				}
				prio := p.Priority()
				if prio == PriorityStop {
					sawStop = true
				} else if prio != tt.prio {
					t.Errorf("packet %d: priority %d", i, prio)
				}
				buf := make([]byte, MaxAdvertSize)
				n := BuildAdvert(buf, AdvertFields{
					Version: tt.version, VRID: tt.vrid, Priority: prio, Interval: tt.interval,
					Addresses: tt.addresses, Checksum: tt.mode, Src: c.src, Dst: c.dst,
				})
				if !bytes.Equal(buf[:n], c.payload) {
					t.Errorf("packet %d: BuildAdvert\n got % x\nwant % x", i, buf[:n], c.payload)
				}
			}
			if !sawStop {
				t.Error("no priority-0 advert in the capture (keepalived's SIGTERM)")
			}
		})
	}
}

// TestKeepalivedGoldenIntoInstance feeds keepalived's adverts to a backup instance
// configured like keepalived: they are accepted, and its priority-0 advert makes the
// backup master after Skew_Time.
func TestKeepalivedGoldenIntoInstance(t *testing.T) {
	for _, f := range []struct {
		file    string
		version uint8
		vrid    uint8
		primary string
		addrs   []netip.Addr
		iv      time.Duration
	}{
		{"keepalived-v2-ipv4.pcap", 2, 51, "192.0.2.2", addrs("192.0.2.100", "192.0.2.101"), time.Second},
		{"keepalived-v3-ipv4.pcap", 3, 51, "192.0.2.2", addrs("192.0.2.100", "192.0.2.101"), time.Second},
		{"keepalived-v3-ipv6.pcap", 3, 52, "fe80::2", addrs("2001:db8::100", "2001:db8::101"), 500 * time.Millisecond},
	} {
		t.Run(f.file, func(t *testing.T) {
			out := &recorder{}
			in, err := New(Config{Name: "ka", VRID: f.vrid, Version: f.version, Priority: 100, Interval: f.iv,
				Preempt: true, Primary: netip.MustParseAddr(f.primary), Addresses: f.addrs, Out: out})
			if err != nil {
				t.Fatal(err)
			}
			now := t0
			in.Start(now)
			for _, c := range readPcap(t, f.file) {
				now = now.Add(10 * time.Millisecond)
				in.ReceiveTo(now, c.src, c.dst, c.ttl, c.payload)
			}
			cn := in.Counters()
			if cn.Drops.Total() != 0 || cn.AdvertsReceived == 0 || cn.PriorityZeroReceived != 1 {
				t.Fatalf("counters %+v", cn)
			}
			if in.State() != Backup {
				t.Fatalf("state %v", in.State())
			}
			in.Tick(in.NextTimeout())
			if in.State() != Master {
				t.Fatalf("after skew: state %v", in.State())
			}
		})
	}
}

func TestBuildAdvertRejects(t *testing.T) {
	buf := make([]byte, MaxAdvertSize)
	v4, v6 := addrs("192.0.2.1"), addrs("2001:db8::1")
	src4, dst4 := netip.MustParseAddr("192.0.2.2"), GroupIPv4
	src6, dst6 := netip.MustParseAddr("fe80::1"), GroupIPv6
	good := AdvertFields{Version: 3, VRID: 1, Priority: 100, Interval: time.Second, Addresses: v4, Src: src4, Dst: dst4}
	if BuildAdvert(buf, good) != 12 {
		t.Fatal("good fields refused")
	}
	bad := map[string]func(f *AdvertFields){
		"version 4":         func(f *AdvertFields) { f.Version = 4 },
		"no address":        func(f *AdvertFields) { f.Addresses = nil },
		"mixed families":    func(f *AdvertFields) { f.Addresses = append(addrs("192.0.2.1"), v6...) },
		"v2 IPv6":           func(f *AdvertFields) { f.Version, f.Addresses, f.Src, f.Dst = 2, v6, src6, dst6 },
		"v2 half second":    func(f *AdvertFields) { f.Version, f.Interval = 2, 1500*time.Millisecond },
		"v2 256 s":          func(f *AdvertFields) { f.Version, f.Interval = 2, 256*time.Second },
		"v3 5 ms":           func(f *AdvertFields) { f.Interval = 5 * time.Millisecond },
		"v3 41 s":           func(f *AdvertFields) { f.Interval = 41 * time.Second },
		"v3 15 ms":          func(f *AdvertFields) { f.Interval = 15 * time.Millisecond },
		"source family":     func(f *AdvertFields) { f.Src = src6 },
		"no source":         func(f *AdvertFields) { f.Src = netip.Addr{} },
		"256 addresses":     func(f *AdvertFields) { f.Addresses = make([]netip.Addr, 256) },
		"invalid address":   func(f *AdvertFields) { f.Addresses = []netip.Addr{{}} },
		"4in6 address":      func(f *AdvertFields) { f.Addresses = addrs("::ffff:192.0.2.1") },
		"short buffer only": func(f *AdvertFields) {},
	}
	for name, mod := range bad {
		f := good
		mod(&f)
		b := buf
		if name == "short buffer only" {
			b = buf[:11]
		}
		if n := BuildAdvert(b, f); n != 0 {
			t.Errorf("%s: BuildAdvert = %d, want 0", name, n)
		}
	}
}

// refChecksum is the checksum by the RFCs' definition, written independently: the
// ones'-complement sum of 16-bit words of pseudo-header (when used) and message.
func refChecksum(msg []byte, pseudo bool, src, dst netip.Addr) uint16 {
	var data []byte
	if pseudo {
		data = append(data, src.AsSlice()...)
		data = append(data, dst.AsSlice()...)
		if src.Is4() {
			data = append(data, 0, header.ProtocolVRRP, byte(len(msg)>>8), byte(len(msg)))
		} else {
			data = append(data, 0, 0, byte(len(msg)>>8), byte(len(msg)), 0, 0, 0, header.ProtocolVRRP)
		}
	}
	m := append([]byte(nil), msg...)
	m[6], m[7] = 0, 0
	data = append(data, m...)
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	var s uint32
	for i := 0; i < len(data); i += 2 {
		s += uint32(data[i])<<8 | uint32(data[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// TestChecksumAgainstReference builds random adverts of every kind and compares the
// checksum with the reference, and checks both v3 IPv4 variants are accepted.
func TestChecksumAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, MaxAdvertSize)
	for i := range 2000 {
		version := uint8(2 + i%2)
		ipv6 := version == 3 && i%4 == 1
		n := 1 + rng.IntN(20)
		as := make([]netip.Addr, n)
		for j := range as {
			if ipv6 {
				var b [16]byte
				b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
				for k := 4; k < 16; k++ {
					b[k] = byte(rng.Uint32())
				}
				as[j] = netip.AddrFrom16(b)
			} else {
				as[j] = netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.Uint32())})
			}
		}
		src, dst := netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.Uint32())}), GroupIPv4
		if ipv6 {
			src, dst = netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(rng.Uint32())}), GroupIPv6
		}
		iv := time.Duration(1+rng.IntN(255)) * time.Second
		if version == 3 {
			iv = time.Duration(1+rng.IntN(MaxAdverIntV3)) * centisecond
		}
		mode := ChecksumMode(rng.IntN(2))
		f := AdvertFields{Version: version, VRID: uint8(rng.Uint32()), Priority: uint8(rng.Uint32()),
			Interval: iv, Addresses: as, Checksum: mode, Src: src, Dst: dst}
		size := BuildAdvert(buf, f)
		if size != AdvertSize(version, n, ipv6) {
			t.Fatalf("size %d", size)
		}
		p := Advert(buf[:size])
		pseudo := version == 3 && (ipv6 || mode == PseudoHeader)
		if want := refChecksum(p, pseudo, src, dst); !xsumEqual(p.Checksum(), want) {
			t.Fatalf("case %d: checksum %#04x, reference %#04x", i, p.Checksum(), want)
		}
		ok, got := p.IsChecksumValid(src, dst)
		wantMode := mode
		if version == 2 {
			wantMode = NoPseudoHeader
		} else if ipv6 {
			wantMode = PseudoHeader
		}
		if !ok || got != wantMode {
			t.Fatalf("case %d: valid %v mode %v, want %v", i, ok, got, wantMode)
		}
		if p.Interval() != iv || p.VRID() != f.VRID || p.Priority() != f.Priority {
			t.Fatalf("case %d: fields differ", i)
		}
		// One flipped bit anywhere is caught.
		bit := rng.IntN(size * 8)
		p[bit/8] ^= 1 << (bit % 8)
		if ok, _ := p.IsChecksumValid(src, dst); ok {
			// A flip in the version 3 IPv4 header could by chance match the other mode;
			// that is a 1 in 65536 event per case, not expected with this seed.
			t.Fatalf("case %d: bit %d flipped and still valid", i, bit)
		}
	}
}

func TestVirtualMAC(t *testing.T) {
	if got := virtualMAC(7, false); got != (header.MAC{0, 0, 0x5e, 0, 1, 7}) {
		t.Errorf("IPv4 VMAC %v", got)
	}
	if got := virtualMAC(255, true); got != (header.MAC{0, 0, 0x5e, 0, 2, 255}) {
		t.Errorf("IPv6 VMAC %v", got)
	}
}
