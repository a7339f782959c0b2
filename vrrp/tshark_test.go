package vrrp

import (
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulb/internal/testenv"
	"ulb/router/header"
)

// frame wraps an advert as the router sends it: Ethernet from the virtual MAC, IP from
// the primary address to the group with TTL (hop limit) 255 and DSCP CS6.
func frame(in *Instance, advert []byte) []byte {
	b := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+len(advert))
	var n int
	if in.ipv6 {
		n = header.EncodeEthernet(b, header.IPv6MulticastMAC(in.dst), in.vmac, header.EtherTypeIPv6)
		header.EncodeIPv6(b[n:], header.IPv6Fields{TrafficClass: 0xc0, PayloadLength: uint16(len(advert)),
			NextHeader: header.ProtocolVRRP, HopLimit: 255, Src: in.cfg.Primary, Dst: in.dst})
		n += header.IPv6MinimumSize
	} else {
		g := in.dst.As4()
		n = header.EncodeEthernet(b, header.MAC{0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]}, in.vmac, header.EtherTypeIPv4)
		header.EncodeIPv4(b[n:], header.IPv4Fields{TOS: 0xc0, TotalLength: uint16(header.IPv4MinimumSize + len(advert)),
			TTL: 255, Protocol: header.ProtocolVRRP, Src: in.cfg.Primary, Dst: in.dst})
		n += header.IPv4MinimumSize
	}
	n += copy(b[n:], advert)
	return b[:n]
}

// writePcap writes frames as a little-endian Ethernet pcap file.
func writePcap(t *testing.T, path string, frames [][]byte) {
	t.Helper()
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(b[4:], 2)
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint32(b[16:], 65535)
	binary.LittleEndian.PutUint32(b[20:], 1)
	for i, f := range frames {
		var rec [16]byte
		binary.LittleEndian.PutUint32(rec[0:], uint32(1767225600+i))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(f)))
		b = append(append(b, rec[:]...), f...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTsharkDecodes has tshark, an independent decoder, read the adverts instances
// send (every kind, priority 0 included): each must be VRRP with a good checksum and
// the fields we meant.
func TestTsharkDecodes(t *testing.T) {
	testenv.NeedTool(t, "tshark")
	kinds := []struct {
		name       string
		mod        func(*Config)
		asInV2     bool // tshark's vrrp.v3_checksum_as_in_v2 preference
		wantFields string
	}{
		{"v2-ipv4", func(c *Config) { c.Version = 2 }, false, "2\t1\t7\t200\t2\t1\t"},
		{"v3-ipv4", nil, false, "3\t1\t7\t200\t2\t\t100"},
		{"v3-ipv4-nopseudo", func(c *Config) { c.Checksum = NoPseudoHeader }, true, "3\t1\t7\t200\t2\t\t100"},
		{"v3-ipv6", func(c *Config) {
			c.Primary, c.Addresses = netip.MustParseAddr("fe80::1"), addrs("2001:db8::100", "2001:db8::101")
			c.Interval = 50 * time.Millisecond
		}, false, "3\t1\t7\t200\t2\t\t5"},
	}
	dir := t.TempDir()
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			in, rec := newInst(t, func(c *Config) {
				c.VRID, c.Priority, c.Addresses = 7, 200, addrs("192.0.2.100", "192.0.2.101")
				if k.mod != nil {
					k.mod(c)
				}
			})
			in.Start(t0)
			in.Tick(in.NextTimeout())
			in.Tick(in.NextTimeout())
			in.Shutdown(in.NextTimeout())
			sent, _ := rec.take()
			if len(sent) != 3 {
				t.Fatalf("%d adverts sent", len(sent))
			}
			var frames [][]byte
			for _, a := range sent {
				frames = append(frames, frame(in, a))
			}
			path := filepath.Join(dir, k.name+".pcap")
			writePcap(t, path, frames)
			pref := "vrrp.v3_checksum_as_in_v2:FALSE"
			if k.asInV2 {
				pref = "vrrp.v3_checksum_as_in_v2:TRUE"
			}
			out, err := exec.Command("tshark", "-r", path, "-o", pref, "-T", "fields",
				"-e", "vrrp.version", "-e", "vrrp.type", "-e", "vrrp.virt_rtr_id", "-e", "vrrp.prio",
				"-e", "vrrp.addr_count", "-e", "vrrp.adver_int", "-e", "vrrp.short_adver_int",
				"-e", "vrrp.checksum.status").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 3 {
				t.Fatalf("tshark read %d adverts:\n%s", len(lines), out)
			}
			for i, l := range lines {
				want := k.wantFields + "\t1" // checksum status 1: good
				if i == 2 {
					want = strings.Replace(want, "\t200\t", "\t0\t", 1)
				}
				if l != want {
					t.Errorf("advert %d: tshark says %q, want %q", i, l, want)
				}
			}
		})
	}
}
