package conntrack

import (
	"net/netip"
	"testing"
	"unsafe"
)

func TestTupleRoundTrip(t *testing.T) {
	cases := []struct {
		src, dst     string
		sport, dport uint16
		proto        uint8
		str          string
	}{
		{"192.0.2.1", "198.51.100.100", 40000, 80, ProtoTCP, "tcp 192.0.2.1:40000->198.51.100.100:80"},
		{"2001:db8::1", "2001:db8:1::100", 5353, 53, ProtoUDP, "udp [2001:db8::1]:5353->[2001:db8:1::100]:53"},
		{"203.0.113.9", "198.51.100.1", 7, 7, ProtoICMP, "icmp 203.0.113.9:7->198.51.100.1:7"},
		{"2001:db8::2", "2001:db8::3", 9, 9, 132, "132 [2001:db8::2]:9->[2001:db8::3]:9"},
	}
	for _, c := range cases {
		src, dst := netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst)
		tu := MakeTuple(src, dst, c.sport, c.dport, c.proto)
		if tu.Src() != src || tu.Dst() != dst || tu.SrcPort != c.sport || tu.DstPort != c.dport || tu.Proto != c.proto {
			t.Errorf("%s: fields %+v", c.str, tu)
		}
		if got := tu.String(); got != c.str {
			t.Errorf("String = %q, want %q", got, c.str)
		}
		r := tu.Reply()
		if r.Src() != dst || r.Dst() != src || r.SrcPort != c.dport || r.DstPort != c.sport || r.Proto != c.proto {
			t.Errorf("%s: Reply %v", c.str, r)
		}
		if r.Reply() != tu {
			t.Errorf("%s: Reply().Reply() != tuple", c.str)
		}
		if tu.IsZero() || !(Tuple{}).IsZero() {
			t.Errorf("IsZero wrong")
		}
	}
	if src := MakeTuple(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), 1, 2, 6).SrcAddr; src[10] != 0xff || src[11] != 0xff || src[12] != 192 {
		t.Errorf("IPv4 not stored IPv4-mapped: %x", src)
	}
}

func TestTupleLayout(t *testing.T) {
	if s := unsafe.Sizeof(Tuple{}); s != 38 {
		t.Errorf("Tuple is %d bytes, want 38 (packed)", s)
	}
	if s := unsafe.Sizeof(slot{}); s != 128 {
		t.Errorf("slot is %d bytes, want 128 (two cache lines)", s)
	}
	if s := unsafe.Sizeof(chunk{}); s%4096 != 0 {
		t.Errorf("chunk is %d bytes, not whole pages", s)
	}
	if s := unsafe.Sizeof(entry{}); s != 8 {
		t.Errorf("entry is %d bytes, want 8", s)
	}
}

func TestHashSpreads(t *testing.T) {
	// Tuples differing in one field only must land on many positions and shards.
	var sd seed
	for i := range sd {
		sd[i] = uint64(i)*0x9e3779b97f4a7c15 + 1
	}
	base := MakeTuple(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1"), 0, 80, ProtoTCP)
	low := map[uint64]bool{}
	high := map[uint64]bool{}
	for p := range 4096 {
		tu := base
		tu.SrcPort = uint16(p)
		h := sd.hash(&tu)
		low[h&1023] = true
		high[h>>58] = true
	}
	if len(low) < 900 || len(high) < 64 {
		t.Errorf("poor spread: %d of 1024 low buckets, %d of 64 shards", len(low), len(high))
	}
	r := base.Reply()
	if sd.hash(&base) == sd.hash(&r) {
		t.Errorf("tuple and its reply hash equal")
	}
}

// TestTopologyWireValues pins the values ctsync sends on the wire.
func TestTopologyWireValues(t *testing.T) {
	for _, c := range []struct {
		t    Topology
		v    uint8
		name string
	}{{HalfNAT, 0, "half-nat"}, {FullNAT, 1, "full-nat"}, {DSR, 2, "dsr"}} {
		if uint8(c.t) != c.v || c.t.String() != c.name || !c.t.Balanced() {
			t.Errorf("%v = %d, want %s = %d, balanced", c.t, uint8(c.t), c.name, c.v)
		}
	}
	for _, o := range []Topology{Masquerade, HostPort} {
		if o.Balanced() {
			t.Errorf("%v is not the balancer's", o)
		}
	}
}
