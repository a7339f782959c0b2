package reassembly

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"ulb/router/header"
)

// FuzzReassemble drives a Reassembler with a sequence of fragments read from the input:
// each 5-byte step picks the family, the ID (from a few), the offset, the length and the
// M flag of a fragment cut from one fixed datagram, and a step of the clock. Whatever
// the order, overlaps or gaps, nothing panics, the limits hold, and a datagram reported
// Done is exactly the start of that datagram. The input after the steps is also fed raw
// as an IPv4 and an IPv6 packet.
func FuzzReassemble(f *testing.F) {
	// In order, two fragments of 1232 bytes then the rest (IPv6).
	f.Add([]byte{1, 0, 0, 154, 1, 1, 0, 154, 154, 1, 1, 0, 0xff, 40, 0})
	// The same for IPv4, reversed.
	f.Add([]byte{0, 0, 0xff, 40, 0, 0, 0, 154, 154, 1, 0, 0, 0, 154, 1})
	// Overlap then the missing piece; a duplicate; a timeout in between.
	f.Add([]byte{1, 2, 0, 10, 1, 1, 2, 5, 10, 1, 1, 2, 0, 10, 1, 0x81, 2, 10, 10, 0})
	// Raw input: an IPv6 packet with a fragment header.
	raw := make([]byte, 48+16)
	header.EncodeIPv6(raw, header.IPv6Fields{PayloadLength: 24, NextHeader: header.ProtocolFragment, Src: src6, Dst: dst6})
	header.EncodeIPv6Fragment(raw[40:], header.ProtocolUDP, 8, true, 1)
	f.Add(append([]byte{0xff}, raw...))
	f.Fuzz(func(t *testing.T, in []byte) {
		const maxData = 16 * 1024
		data := payload(maxData, 0x5a)
		r := New(Config{MaxDatagrams: 4, MaxFragments: 16, MaxBytes: 1})
		out := make([]byte, MaxDatagram)
		now := t0
		i := 0
		for ; i+5 <= len(in) && in[i] != 0xff; i += 5 {
			op := in[i]
			v6 := op&1 != 0
			if op&0x80 != 0 {
				now = now.Add(DefaultTimeout)
				r.Expire(now, func(q []byte, _ int) {
					if len(q) < header.IPv4MinimumSize {
						t.Fatalf("quote of %d bytes", len(q))
					}
				})
			}
			id := uint32(in[i+1] & 3)
			off := int(in[i+2]) * 8 * 8 // up to 16 KiB, multiples of 64
			n := int(in[i+3]) * 8
			more := in[i+4]&1 != 0
			if in[i+4]&2 != 0 {
				n += int(in[i+4] >> 2) // odd lengths
			}
			if off > maxData {
				off = maxData
			}
			end := min(off+n, maxData)
			var res Result
			if v6 {
				b := make([]byte, 48+end-off)
				header.EncodeIPv6(b, header.IPv6Fields{PayloadLength: uint16(len(b) - 40), NextHeader: header.ProtocolFragment, Src: src6, Dst: dst6})
				header.EncodeIPv6Fragment(b[40:], header.ProtocolUDP, off, more, id)
				copy(b[48:], data[off:end])
				res = r.AddIPv6(now, b, 0, out)
			} else {
				b := make([]byte, 20+end-off)
				var flags uint8
				if more {
					flags = header.IPv4FlagMoreFragments
				}
				header.EncodeIPv4(b, header.IPv4Fields{TotalLength: uint16(len(b)), ID: uint16(id), Flags: flags,
					FragmentOffset: uint16(off), Protocol: header.ProtocolUDP, Src: src4, Dst: dst4})
				copy(b[20:], data[off:end])
				res = r.AddIPv4(now, b, 0, out)
			}
			if res.Status == Done {
				var got []byte
				if v6 {
					ip := header.IPv6(out[:res.Len])
					if !ip.IsValid() || ip.NextHeader() != header.ProtocolUDP {
						t.Fatalf("reassembled IPv6 header invalid")
					}
					got = ip.Payload()
				} else {
					ip := header.IPv4(out[:res.Len])
					if !ip.IsValid() || !ip.IsChecksumValid() || ip.IsFragment() {
						t.Fatalf("reassembled IPv4 header invalid")
					}
					got = ip.Payload()
				}
				if !bytes.Equal(got, data[:len(got)]) {
					t.Fatalf("reassembled data is not the datagram's start (%d bytes)", len(got))
				}
			}
			if st := r.Stats(); st.InProgress > 4 || st.Bytes > 2*MaxDatagram+4*(60+8) {
				t.Fatalf("limits exceeded: %+v", st)
			}
		}
		// Raw packets: no panic, whatever they hold.
		if i < len(in) {
			rest := in[i:]
			if len(rest) > 0 && rest[0] == 0xff {
				rest = rest[1:]
			}
			if ip := header.IPv4(rest); ip.IsValid() {
				r.AddIPv4(now, ip[:ip.TotalLength()], 0, out)
			}
			if ip := header.IPv6(rest); ip.IsValid() {
				r.AddIPv6(now, ip[:40+int(binary.BigEndian.Uint16(ip[4:]))], 0, out)
			}
		}
		r.Expire(now.Add(time.Hour), func([]byte, int) {})
		if st := r.Stats(); st.InProgress != 0 || st.Bytes != 0 {
			t.Fatalf("after expiry: %+v", st)
		}
	})
}
