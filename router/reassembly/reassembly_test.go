package reassembly

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"ulb/router/header"
)

var (
	src4 = netip.MustParseAddr("192.0.2.1")
	dst4 = netip.MustParseAddr("198.51.100.10")
	src6 = netip.MustParseAddr("2001:db8:1::1")
	dst6 = netip.MustParseAddr("2001:db8:2::10")
	t0   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// payload returns n bytes of a recognisable pattern.
func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// frag4 builds an IPv4 fragment of the datagram whose fragmentable part is data: the
// bytes [off, end), MF set unless end is len(data).
func frag4(id uint16, data []byte, off, end int) header.IPv4 {
	b := make([]byte, header.IPv4MinimumSize+end-off)
	var flags uint8
	if end < len(data) {
		flags = header.IPv4FlagMoreFragments
	}
	header.EncodeIPv4(b, header.IPv4Fields{TotalLength: uint16(len(b)), ID: id, Flags: flags,
		FragmentOffset: uint16(off), TTL: 64, Protocol: header.ProtocolUDP, Src: src4, Dst: dst4})
	copy(b[header.IPv4MinimumSize:], data[off:end])
	return header.IPv4(b)
}

// frag6 builds an IPv6 fragment (fixed header, fragment header) of data [off, end).
func frag6(id uint32, data []byte, off, end int) header.IPv6 {
	b := make([]byte, header.IPv6MinimumSize+header.IPv6FragmentSize+end-off)
	header.EncodeIPv6(b, header.IPv6Fields{PayloadLength: uint16(len(b) - header.IPv6MinimumSize),
		NextHeader: header.ProtocolFragment, HopLimit: 64, Src: src6, Dst: dst6})
	header.EncodeIPv6Fragment(b[header.IPv6MinimumSize:], header.ProtocolUDP, off, end < len(data), id)
	copy(b[header.IPv6MinimumSize+header.IPv6FragmentSize:], data[off:end])
	return header.IPv6(b)
}

// cuts returns the offsets splitting n bytes into pieces of size (a multiple of 8).
func cuts(n, size int) [][2]int {
	var c [][2]int
	for off := 0; off < n; off += size {
		c = append(c, [2]int{off, min(off+size, n)})
	}
	return c
}

func check4(t *testing.T, out []byte, data []byte) {
	t.Helper()
	ip := header.IPv4(out)
	if !ip.IsValid() || !ip.IsChecksumValid() || ip.IsFragment() || int(ip.TotalLength()) != len(out) {
		t.Fatalf("reassembled header: valid %v checksum %v fragment %v length %d/%d", ip.IsValid(),
			ip.IsValid() && ip.IsChecksumValid(), ip.IsFragment(), ip.TotalLength(), len(out))
	}
	if ip.SourceAddr() != src4 || ip.DestinationAddr() != dst4 || ip.Protocol() != header.ProtocolUDP {
		t.Fatalf("reassembled addresses %s > %s proto %d", ip.SourceAddr(), ip.DestinationAddr(), ip.Protocol())
	}
	if !bytes.Equal(ip.Payload(), data) {
		t.Fatalf("reassembled payload differs (%d bytes, want %d)", len(ip.Payload()), len(data))
	}
}

func check6(t *testing.T, out []byte, data []byte) {
	t.Helper()
	ip := header.IPv6(out)
	if !ip.IsValid() || int(ip.PayloadLength())+header.IPv6MinimumSize != len(out) || ip.NextHeader() != header.ProtocolUDP {
		t.Fatalf("reassembled header: valid %v payload length %d/%d next %d", ip.IsValid(), ip.PayloadLength(), len(out), ip.NextHeader())
	}
	if !bytes.Equal(ip.Payload(), data) {
		t.Fatalf("reassembled payload differs (%d bytes, want %d)", len(ip.Payload()), len(data))
	}
}

// TestInOrderOutOfOrder reassembles datagrams of both families from fragments in order,
// reversed and shuffled.
func TestInOrderOutOfOrder(t *testing.T) {
	for _, n := range []int{9, 560, 1400, 3000, 65000} {
		data := payload(n, byte(n))
		for _, order := range []string{"in-order", "reversed", "shuffled"} {
			pieces := cuts(n, 1232)
			if n < 1232 {
				pieces = cuts(n, 8*((n+15)/16))
			}
			switch order {
			case "reversed":
				for i, j := 0, len(pieces)-1; i < j; i, j = i+1, j-1 {
					pieces[i], pieces[j] = pieces[j], pieces[i]
				}
			case "shuffled":
				rand.New(rand.NewPCG(uint64(n), 1)).Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
			}
			for _, v6 := range []bool{false, true} {
				if !v6 && n > 65000 {
					continue
				}
				r := New(Config{})
				out := make([]byte, MaxDatagram)
				var res Result
				for i, c := range pieces {
					if v6 {
						res = r.AddIPv6(t0, frag6(7, data, c[0], c[1]), 0, out)
					} else {
						res = r.AddIPv4(t0, frag4(7, data, c[0], c[1]), 0, out)
					}
					if i < len(pieces)-1 && res.Status != Held {
						t.Fatalf("n=%d %s v6=%v: fragment %d: %v, want held", n, order, v6, i, res.Status)
					}
				}
				if res.Status != Done {
					t.Fatalf("n=%d %s v6=%v: last fragment: %v, want done", n, order, v6, res.Status)
				}
				if v6 {
					check6(t, out[:res.Len], data)
				} else {
					check4(t, out[:res.Len], data)
				}
				if st := r.Stats(); st.Reassembled != 1 || st.InProgress != 0 || st.Bytes != 0 {
					t.Fatalf("stats after: %+v", st)
				}
			}
		}
	}
}

// TestExtensionHeadersKept: the IPv6 headers in front of the fragment header (the
// unfragmentable part) stay, the fragment header goes, and the Next Header before it
// takes the fragment header's.
func TestExtensionHeadersKept(t *testing.T) {
	data := payload(2000, 3)
	mk := func(off, end int) header.IPv6 {
		f := frag6(9, data, off, end)
		// Insert an 8-byte destination options header (Pad6) before the fragment header.
		b := make([]byte, 0, len(f)+8)
		b = append(b, f[:header.IPv6MinimumSize]...)
		b = append(b, header.ProtocolFragment, 0, 1, 4, 0, 0, 0, 0)
		b = append(b, f[header.IPv6MinimumSize:]...)
		ip := header.IPv6(b)
		ip.SetNextHeader(header.ProtocolDstOpts)
		ip.SetPayloadLength(uint16(len(b) - header.IPv6MinimumSize))
		return ip
	}
	r := New(Config{})
	out := make([]byte, MaxDatagram)
	if res := r.AddIPv6(t0, mk(1232, 2000), 0, out); res.Status != Held {
		t.Fatalf("second: %v", res.Status)
	}
	res := r.AddIPv6(t0, mk(0, 1232), 0, out)
	if res.Status != Done {
		t.Fatalf("first: %v", res.Status)
	}
	ip := header.IPv6(out[:res.Len])
	if ip.NextHeader() != header.ProtocolDstOpts || ip[header.IPv6MinimumSize] != header.ProtocolUDP {
		t.Fatalf("next headers %d, %d", ip.NextHeader(), ip[header.IPv6MinimumSize])
	}
	if proto, off, ok := ip.TransportProtocol(); !ok || proto != header.ProtocolUDP || off != 48 || !bytes.Equal(ip[off:], data) {
		t.Fatalf("upper layer %d at %d ok %v", proto, off, ok)
	}
}

// TestDuplicates: an exact duplicate is dropped and the datagram completes; RFC 8200
// section 4.5.
func TestDuplicates(t *testing.T) {
	data := payload(3000, 1)
	r := New(Config{})
	out := make([]byte, MaxDatagram)
	for _, c := range [][2]int{{0, 1480}, {0, 1480}, {1480, 2960}, {1480, 2960}} {
		r.AddIPv4(t0, frag4(1, data, c[0], c[1]), 0, out)
	}
	res := r.AddIPv4(t0, frag4(1, data, 2960, 3000), 0, out)
	if res.Status != Done {
		t.Fatalf("last: %v", res.Status)
	}
	check4(t, out[:res.Len], data)
	if st := r.Stats(); st.Duplicates != 2 || st.Overlaps != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOverlaps: any overlap (partial, or the same range with other bytes) discards the
// datagram and its later fragments, silently (RFC 5722 section 4); IPv4 likewise.
func TestOverlaps(t *testing.T) {
	data := payload(3000, 1)
	other := payload(3000, 99)
	cases := []struct {
		name  string
		first [2]int
		then  [2]int
		bytes []byte
	}{
		{"partial", [2]int{0, 1480}, [2]int{1472, 2952}, data},
		{"inside", [2]int{0, 1480}, [2]int{8, 16}, data},
		{"covering", [2]int{8, 16}, [2]int{0, 1480}, data},
		{"same-range-other-bytes", [2]int{0, 1480}, [2]int{0, 1480}, other},
	}
	for _, c := range cases {
		for _, v6 := range []bool{false, true} {
			r := New(Config{})
			out := make([]byte, MaxDatagram)
			add := func(d []byte, s [2]int) Result {
				if v6 {
					return r.AddIPv6(t0, frag6(5, d, s[0], s[1]), 0, out)
				}
				return r.AddIPv4(t0, frag4(5, d, s[0], s[1]), 0, out)
			}
			add(data, c.first)
			if res := add(c.bytes, c.then); res.Status != Overlap {
				t.Fatalf("%s v6=%v: %v, want overlap", c.name, v6, res.Status)
			}
			// The rest of the datagram is discarded too, even fragments that would fit.
			for _, s := range [][2]int{{1480, 2960}, {2960, 3000}, {0, 1480}} {
				if res := add(data, s); res.Status != Discarded {
					t.Fatalf("%s v6=%v: later fragment %v: %v, want discarded", c.name, v6, s, res.Status)
				}
			}
			st := r.Stats()
			if st.Overlaps != 1 || st.Discarded != 3 || st.Bytes != 0 {
				t.Fatalf("%s v6=%v: stats %+v", c.name, v6, st)
			}
			// Until it times out; then the same ID makes a new datagram. Nothing is
			// reported for a discarded datagram.
			r.Expire(t0.Add(DefaultTimeout), func([]byte, int) { t.Fatalf("%s: time exceeded for a discarded datagram", c.name) })
			if res := add(data, [2]int{0, 1480}); res.Status != Held {
				t.Fatalf("%s v6=%v: after expiry: %v", c.name, v6, res.Status)
			}
		}
	}
}

// TestTimeout: an incomplete datagram expires after the timeout on a manual clock; the
// first fragment, when it was received, is handed back for the time exceeded message.
func TestTimeout(t *testing.T) {
	data := payload(3000, 4)
	for _, v6 := range []bool{false, true} {
		r := New(Config{})
		out := make([]byte, MaxDatagram)
		var first header.IPv4
		var first6 header.IPv6
		if v6 {
			first6 = frag6(1, data, 0, 1232)
			r.AddIPv6(t0, first6, 3, out)
			r.AddIPv6(t0.Add(time.Second), frag6(2, data, 1232, 2464), 4, out) // no first fragment
		} else {
			first = frag4(1, data, 0, 1480)
			r.AddIPv4(t0, first, 3, out)
			r.AddIPv4(t0.Add(time.Second), frag4(2, data, 1480, 2960), 4, out)
		}
		var got [][]byte
		var tags []int
		report := func(q []byte, tag int) {
			got = append(got, append([]byte(nil), q...))
			tags = append(tags, tag)
		}
		r.Expire(t0.Add(DefaultTimeout-time.Millisecond), report)
		if len(got) != 0 || r.Stats().InProgress != 2 {
			t.Fatalf("v6=%v: expired early", v6)
		}
		r.Expire(t0.Add(DefaultTimeout), report)
		if len(got) != 1 || tags[0] != 3 || r.Stats().InProgress != 1 {
			t.Fatalf("v6=%v: at the timeout: %d reports, tags %v", v6, len(got), tags)
		}
		want := []byte(first)
		if v6 {
			want = first6
		}
		if !bytes.Equal(got[0], want) {
			t.Fatalf("v6=%v: quoted first fragment differs:\n%x\n%x", v6, got[0], want)
		}
		r.Expire(t0.Add(DefaultTimeout+time.Second), report)
		if len(got) != 1 {
			t.Fatalf("v6=%v: time exceeded for a datagram without its first fragment", v6)
		}
		if st := r.Stats(); st.Timeouts != 2 || st.InProgress != 0 || st.Bytes != 0 {
			t.Fatalf("v6=%v: stats %+v", v6, st)
		}
		// A fragment arriving after the timeout but before Expire starts afresh.
		r.AddIPv4(t0, frag4(9, data, 0, 1480), 0, out)
		if res := r.AddIPv4(t0.Add(2*DefaultTimeout), frag4(9, data, 1480, 2960), 0, out); res.Status != Held {
			t.Fatalf("late fragment: %v", res.Status)
		}
		if st := r.Stats(); st.Timeouts != 3 || st.InProgress != 1 {
			t.Fatalf("v6=%v: stats after a lazy expiry %+v", v6, st)
		}
	}
}

// TestLimits: lengths (RFC 8200 section 4.5, RFC 791), the end of the datagram, and the
// memory bounds.
func TestLimits(t *testing.T) {
	out := make([]byte, MaxDatagram)
	data := payload(3000, 0)
	t.Run("ipv6-not-multiple-of-8", func(t *testing.T) {
		r := New(Config{})
		res := r.AddIPv6(t0, frag6(1, data, 0, 1001), 0, out)
		if res.Status != BadLength || res.Pointer != 4 {
			t.Fatalf("%v pointer %d, want bad-length pointer 4", res.Status, res.Pointer)
		}
		// The last fragment may have any length.
		if res := r.AddIPv6(t0, frag6(1, data[:2999], 2000, 2999), 0, out); res.Status == BadLength {
			t.Fatalf("last fragment refused: %v", res.Status)
		}
	})
	t.Run("ipv6-over-65535", func(t *testing.T) {
		r := New(Config{})
		big := payload(0xffff, 0)
		f := frag6(1, append(big, 0, 0, 0, 0, 0, 0, 0, 0, 0), 65528, 65536)
		res := r.AddIPv6(t0, f, 0, out)
		if res.Status != TooBig || res.Pointer != 42 {
			t.Fatalf("%v pointer %d, want too-big pointer 42", res.Status, res.Pointer)
		}
		// 65535 bytes of payload exactly (fragment header removed) is fine: the
		// fragmentable part is 65535 bytes.
		r2 := New(Config{})
		var last Result
		for _, c := range cuts(len(big), 1232) {
			last = r2.AddIPv6(t0, frag6(2, big, c[0], c[1]), 0, out)
		}
		if last.Status != Done || last.Len != MaxDatagram {
			t.Fatalf("65535-byte payload: %v len %d", last.Status, last.Len)
		}
	})
	t.Run("ipv4-over-65535", func(t *testing.T) {
		r := New(Config{})
		big := payload(0xffff, 0)
		if res := r.AddIPv4(t0, frag4(1, big, 65512, 0xffff), 0, out); res.Status != TooBig {
			t.Fatalf("%v, want too-big", res.Status)
		}
		if res := r.AddIPv4(t0, frag4(1, data, 0, 1001), 0, out); res.Status != BadLength {
			t.Fatalf("MF with 1001 bytes: %v", res.Status)
		}
	})
	t.Run("end-inconsistent", func(t *testing.T) {
		r := New(Config{})
		r.AddIPv4(t0, frag4(1, data, 1480, 3000), 0, out) // last: ends at 3000
		short := data[:2000]
		if res := r.AddIPv4(t0, frag4(1, short, 1480, 2000), 0, out); res.Status != Malformed {
			t.Fatalf("a second end: %v", res.Status)
		}
		r.AddIPv4(t0, frag4(2, data, 0, 2960), 0, out)
		if res := r.AddIPv4(t0, frag4(2, data[:1480], 0, 1480)[:0], 0, out); res.Status != Malformed {
			t.Fatalf("empty view: %v", res.Status)
		}
	})
	t.Run("not-a-fragment", func(t *testing.T) {
		r := New(Config{})
		if res := r.AddIPv4(t0, frag4(1, data[:100], 0, 100), 0, out); res.Status != Malformed {
			t.Fatalf("whole IPv4 packet: %v", res.Status)
		}
		atomic := frag6(1, data[:100], 0, 100)
		if res := r.AddIPv6(t0, atomic, 0, out); res.Status != Malformed {
			t.Fatalf("atomic fragment: %v", res.Status)
		}
	})
	t.Run("max-datagrams", func(t *testing.T) {
		r := New(Config{MaxDatagrams: 4})
		for id := range uint16(10) {
			r.AddIPv4(t0.Add(time.Duration(id)*time.Millisecond), frag4(id, data, 0, 1480), 0, out)
		}
		st := r.Stats()
		if st.InProgress != 4 || st.Evicted != 6 {
			t.Fatalf("stats %+v", st)
		}
		// The newest survive: the datagram with ID 9 completes.
		r.AddIPv4(t0, frag4(9, data, 1480, 2960), 0, out)
		if res := r.AddIPv4(t0, frag4(9, data, 2960, 3000), 0, out); res.Status != Done {
			t.Fatalf("newest datagram: %v", res.Status)
		}
		if res := r.AddIPv4(t0, frag4(0, data, 1480, 2960), 0, out); res.Status != Held {
			t.Fatalf("oldest datagram was evicted, a fragment of it starts afresh: %v", res.Status)
		}
	})
	t.Run("max-bytes", func(t *testing.T) {
		r := New(Config{MaxBytes: 1}) // raised to two datagrams of MaxDatagram
		big := payload(65000, 0)
		for id := range uint16(50) {
			r.AddIPv4(t0, frag4(id, big, 63992, 65000), 0, out) // each needs a 64 KiB buffer
			if st := r.Stats(); st.Bytes > 2*MaxDatagram {
				t.Fatalf("held %d bytes, limit %d", st.Bytes, 2*MaxDatagram)
			}
		}
		if st := r.Stats(); st.Evicted < 48 || st.InProgress > 2 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("max-fragments", func(t *testing.T) {
		r := New(Config{MaxFragments: 3})
		for i, c := range cuts(3000, 8)[:4] {
			res := r.AddIPv4(t0, frag4(1, data, c[0], c[1]), 0, out)
			if want := map[bool]Status{true: TooMany, false: Held}[i == 3]; res.Status != want {
				t.Fatalf("fragment %d: %v, want %v", i, res.Status, want)
			}
		}
		if st := r.Stats(); st.InProgress != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("buffer-too-small", func(t *testing.T) {
		r := New(Config{})
		r.AddIPv4(t0, frag4(1, data, 0, 1480), 0, out)
		if res := r.AddIPv4(t0, frag4(1, data, 1480, 3000), 0, out[:100]); res.Status != NoRoom {
			t.Fatalf("%v", res.Status)
		}
	})
}

// TestFlood: many datagrams from many sources never hold more than the limits, and the
// buffers are reused (no unbounded growth).
func TestFlood(t *testing.T) {
	r := New(Config{MaxDatagrams: 64, MaxBytes: 1 << 20})
	out := make([]byte, MaxDatagram)
	rng := rand.New(rand.NewPCG(1, 2))
	data := payload(8000, 0)
	for i := range 20000 {
		off := rng.IntN(6) * 1232
		f := frag6(rng.Uint32N(1000), data, off, min(off+1232, len(data)))
		r.AddIPv6(t0.Add(time.Duration(i)*time.Millisecond), f, 0, out)
		if st := r.Stats(); st.InProgress > 64 || st.Bytes > 1<<20 {
			t.Fatalf("after %d fragments: %+v", i, st)
		}
		if i%1000 == 0 {
			r.Expire(t0.Add(time.Duration(i)*time.Millisecond), func([]byte, int) {})
		}
	}
	r.Expire(t0.Add(time.Hour), func([]byte, int) {})
	if st := r.Stats(); st.InProgress != 0 || st.Bytes != 0 {
		t.Fatalf("after expiry: %+v", st)
	}
}

// TestTake: the fragments held for a datagram are handed back in offset order with
// their M flags, and the datagram is gone; the offset-zero one is not handed.
func TestTake(t *testing.T) {
	data := payload(4000, 2)
	r := New(Config{})
	out := make([]byte, MaxDatagram)
	for _, c := range [][2]int{{2960, 4000}, {0, 1480}, {1480, 2960}} {
		if c[0] == 0 {
			// Another datagram's first fragment, and this one's via another ID.
			r.AddIPv4(t0, frag4(2, data, 0, 1480), 0, out)
			continue
		}
		r.AddIPv4(t0, frag4(1, data, c[0], c[1]), 0, out)
	}
	type piece struct {
		off  int
		more bool
		data []byte
	}
	var got []piece
	n := r.Take(KeyIPv4(src4, dst4, 1, header.ProtocolUDP), func(off int, more bool, d []byte) {
		got = append(got, piece{off, more, append([]byte(nil), d...)})
	})
	if n != 2 || len(got) != 2 || got[0].off != 1480 || !got[0].more || got[1].off != 2960 || got[1].more ||
		!bytes.Equal(got[0].data, data[1480:2960]) || !bytes.Equal(got[1].data, data[2960:]) {
		t.Fatalf("took %d: %+v", n, got)
	}
	if st := r.Stats(); st.InProgress != 1 {
		t.Fatalf("stats after take %+v", st)
	}
	if n := r.Take(KeyIPv4(src4, dst4, 1, header.ProtocolUDP), func(int, bool, []byte) {}); n != 0 {
		t.Fatalf("took %d again", n)
	}
	if n := r.Take(KeyIPv4(src4, dst4, 2, header.ProtocolUDP), func(int, bool, []byte) { t.Fatal("handed a first fragment") }); n != 0 {
		t.Fatalf("took %d of a datagram holding only its first fragment", n)
	}
	// IPv6, without the last fragment: M set on everything.
	r.AddIPv6(t0, frag6(3, data, 1232, 2464), 0, out)
	var more []bool
	r.Take(KeyIPv6(src6, dst6, 3), func(_ int, m bool, _ []byte) { more = append(more, m) })
	if len(more) != 1 || !more[0] {
		t.Fatalf("IPv6 take: %v", more)
	}
}

// TestIncompleteChain: an IPv6 first fragment that stops inside its upper-layer header
// or an extension header is refused (RFC 8200 section 4.5, RFC 7112).
func TestIncompleteChain(t *testing.T) {
	out := make([]byte, MaxDatagram)
	data := payload(64, 0)
	for _, c := range []struct {
		name  string
		next  uint8
		first []byte
		want  Status
	}{
		{"udp-whole", header.ProtocolUDP, data[:8], Held},
		{"udp-cut", header.ProtocolUDP, data[:0], BadLength},
		{"tcp-cut", header.ProtocolTCP, data[:16], IncompleteChain},
		{"tcp-options-cut", header.ProtocolTCP, append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0}, make([]byte, 19)...), IncompleteChain},
		{"dstopts-cut", header.ProtocolDstOpts, append([]byte{header.ProtocolUDP, 1}, make([]byte, 14)...), IncompleteChain},
		{"dstopts-then-udp", header.ProtocolDstOpts, append([]byte{header.ProtocolUDP, 0}, make([]byte, 14)...), Held},
		{"icmpv6", header.ProtocolICMPv6, data[:8], Held},
	} {
		r := New(Config{})
		b := make([]byte, 48+len(c.first))
		header.EncodeIPv6(b, header.IPv6Fields{PayloadLength: uint16(len(b) - 40), NextHeader: header.ProtocolFragment, Src: src6, Dst: dst6})
		header.EncodeIPv6Fragment(b[40:], c.next, 0, true, 1)
		copy(b[48:], c.first)
		if res := r.AddIPv6(t0, b, 0, out); res.Status != c.want {
			t.Errorf("%s: %v, want %v", c.name, res.Status, c.want)
		}
	}
}
