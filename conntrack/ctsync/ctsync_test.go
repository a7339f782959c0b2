package ctsync

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"ulb/conntrack"
)

func sample() []Record {
	c4, vip4, s4 := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("203.0.113.201")
	c6, vip6, s6 := netip.MustParseAddr("2001:db8:1::2"), netip.MustParseAddr("2001:db8:1::100"), netip.MustParseAddr("2001:db8:2::201")
	proxy := netip.MustParseAddr("203.0.113.50")
	return []Record{
		{ // half-NAT TCP, opened by the SYN proxy
			Orig:  conntrack.MakeTuple(c4, vip4, 40000, 80, conntrack.ProtoTCP),
			Reply: conntrack.MakeTuple(s4, c4, 8080, 40000, conntrack.ProtoTCP),
			State: conntrack.StateEstablished, Topology: 1, Server: netip.AddrPortFrom(s4, 8080),
			Adjust: conntrack.Adjust{Flags: conntrack.AdjustOn | conntrack.AdjustTimestamps, Seq: 0x89abcdef, TS: 12345, WScale: -2},
		},
		{ // full-NAT UDP
			Orig:  conntrack.MakeTuple(c4, vip4, 5353, 53, conntrack.ProtoUDP),
			Reply: conntrack.MakeTuple(s4, proxy, 53, 61000, conntrack.ProtoUDP),
			State: conntrack.StateUDP, Topology: 2, Server: netip.AddrPortFrom(s4, 53),
		},
		{ // DSR over IPv6: no reply tuple
			Orig:  conntrack.MakeTuple(c6, vip6, 40001, 443, conntrack.ProtoTCP),
			State: conntrack.StateSynRecv, Topology: 3, Server: netip.AddrPortFrom(s6, 443),
		},
	}
}

func decodeAll(t *testing.T, b []byte) []Record {
	t.Helper()
	var got []Record
	if req, err := Decode(b, func(r Record) { got = append(got, r) }); err != nil || req {
		t.Fatalf("Decode: request %v, %v", req, err)
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	recs := sample()
	b := Append(nil, recs)
	if len(b) != HeaderLen+len(recs)*RecordLen || !bytes.HasPrefix(b, []byte("ULBS\x02\x00\x00\x03")) {
		t.Fatalf("message % x", b[:min(len(b), 16)])
	}
	got := decodeAll(t, b)
	if len(got) != len(recs) {
		t.Fatalf("%d records back, want %d", len(got), len(recs))
	}
	for i := range recs {
		if got[i] != recs[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], recs[i])
		}
	}
	if got := decodeAll(t, Append(nil, nil)); len(got) != 0 {
		t.Errorf("an empty message gave %d records", len(got))
	}
	full := make([]Record, MaxRecords)
	for i := range full {
		full[i] = recs[0]
	}
	if m := Append(nil, full); len(m) > 1400 {
		t.Errorf("a full message is %d bytes", len(m))
	}
}

func TestRequest(t *testing.T) {
	b := AppendRequest(nil)
	n := 0
	req, err := Decode(b, func(Record) { n++ })
	if err != nil || !req || n != 0 || !bytes.Equal(b, []byte("ULBS\x02\x01\x00\x00")) {
		t.Fatalf("request % x: Decode = %v, %v, %d records", b, req, err, n)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := Append(nil, sample()[:1])
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	rec := HeaderLen
	for name, b := range map[string][]byte{
		"short":           good[:5],
		"magic":           mutate(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":         mutate(func(b []byte) []byte { b[4] = 1; return b }),
		"flags":           mutate(func(b []byte) []byte { b[5] = 2; return b }),
		"count too high":  mutate(func(b []byte) []byte { b[7] = 2; return b }),
		"truncated":       good[:len(good)-1],
		"trailing":        append(append([]byte(nil), good...), 0),
		"protocol":        mutate(func(b []byte) []byte { b[rec] = 1; return b }),
		"TCP state":       mutate(func(b []byte) []byte { b[rec+1] = uint8(conntrack.StateUDP); return b }),
		"UDP state":       mutate(func(b []byte) []byte { b[rec] = conntrack.ProtoUDP; return b }),
		"zero client":     mutate(func(b []byte) []byte { clear(b[rec+4 : rec+20]); return b }),
		"zero port":       mutate(func(b []byte) []byte { clear(b[rec+36 : rec+38]); return b }),
		"mixed families":  mutate(func(b []byte) []byte { b[rec+4+10], b[rec+4+11] = 0, 0; return b }),
		"zero server":     mutate(func(b []byte) []byte { clear(b[rec+76 : rec+92]); return b }),
		"reserved":        mutate(func(b []byte) []byte { b[rec+95] = 1; return b }),
		"adjust reserved": mutate(func(b []byte) []byte { b[rec+99] = 1; return b }),
		"adjust flags":    mutate(func(b []byte) []byte { b[rec+96] |= uint8(conntrack.AdjustPending); return b }),
		"adjust values":   mutate(func(b []byte) []byte { b[rec+96] = 0; return b }),
	} {
		called := false
		_, err := Decode(b, func(Record) { called = true })
		if !errors.Is(err, ErrMalformed) || called {
			t.Errorf("%s: Decode = %v (records handed out: %v), want ErrMalformed and none", name, err, called)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Append(nil, sample()))
	f.Add(Append(nil, nil))
	f.Add([]byte("ULBS\x01\x00\x00\x01"))
	f.Add(AppendRequest(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []Record
		req, err := Decode(b, func(r Record) { recs = append(recs, r) })
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// What decodes encodes back to the same bytes.
		var flags uint8
		if req {
			flags = FlagRequest
		}
		if again := appendMessage(nil, flags, recs); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded % x, was % x", again, b)
		}
	})
}
