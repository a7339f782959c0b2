package balancer

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestPersistSrcPort: with sessionid src+port, two sockets of one client address are two
// sessions: each keeps its own server, also after its flow ended and a new one starts
// within persist_timeout; with the default key both share the address's server.
func TestPersistSrcPort(t *testing.T) {
	for _, key := range []PersistKey{PersistSrc, PersistSrcPort} {
		rc := persistRule(RoundRobin, 32, 3)
		rc.Proto, rc.PersistKey = ProtoUDP, key
		b, clk := setup(t, rc)
		r := mustRule(t, b, "web")
		c := clientN(1, false)
		first := map[uint16]netip.Addr{}
		for _, port := range []uint16{1000, 2000} {
			p := mustPick(t, r, c, port, 80)
			first[port] = p.Addr
			b.FlowEnded(r.ID(), p.Server, c, port, 80) // the UDP flow expired
		}
		if same := first[1000] == first[2000]; same != (key == PersistSrc) {
			t.Fatalf("%v: ports 1000 and 2000 of one client went to %v and %v", key, first[1000], first[2000])
		}
		clk.Advance(30 * time.Second) // within persist_timeout 1m
		for range 3 {
			for _, port := range []uint16{2000, 1000} {
				p := mustPick(t, r, c, port, 80)
				if p.Addr != first[port] {
					t.Fatalf("%v: port %d came back to %v, had %v", key, port, p.Addr, first[port])
				}
				b.FlowEnded(r.ID(), p.Server, c, port, 80)
			}
		}
		ps := b.Persist()
		want := 2
		if key == PersistSrc {
			want = 1
		}
		if len(ps) != want {
			t.Fatalf("%v: %d entries, want %d: %+v", key, len(ps), want, ps)
		}
		if key == PersistSrcPort {
			if ps[0].Key != PersistSrcPort || ps[0].KeyPort != 1000 || ps[1].KeyPort != 2000 ||
				ps[0].Client != netip.PrefixFrom(c, 32) || ps[0].Addr != first[1000] {
				t.Errorf("Persist = %+v", ps)
			}
		}
		// After persist_timeout the entries go: a new pick, not necessarily the old server.
		clk.Advance(2 * time.Minute)
		b.Expire()
		if n := len(b.Persist()); n != 0 {
			t.Errorf("%v: %d entries after their timeout", key, n)
		}
	}
}

// TestPersistDstPort: with sessionid dst+port every client's flows to one port of a UDP
// port range reach one server, and different ports are balanced; the entry outlives the
// flows by persist_timeout.
func TestPersistDstPort(t *testing.T) {
	rc := persistRule(RoundRobin, NoPersistence, 3)
	rc.Proto, rc.PersistKey, rc.PortLo, rc.PortHi = ProtoUDP, PersistDstPort, 5060, 5063
	b, clk := setup(t, rc)
	r := mustRule(t, b, "web")
	byPort := map[uint16]netip.Addr{}
	for i := range 40 {
		c := clientN(i, false)
		dport := uint16(5060 + i%4)
		p := mustPick(t, r, c, uint16(1024+i), dport)
		if s, ok := byPort[dport]; ok && s != p.Addr {
			t.Fatalf("client %v to port %d went to %v, the port's earlier clients to %v", c, dport, p.Addr, s)
		}
		byPort[dport] = p.Addr
		b.FlowEnded(r.ID(), p.Server, c, uint16(1024+i), dport)
	}
	seen := map[netip.Addr]bool{}
	for _, s := range byPort {
		seen[s] = true
	}
	if len(seen) != 3 {
		t.Errorf("4 ports on %d servers, want 3 (round robin over the ports): %v", len(seen), byPort)
	}
	clk.Advance(30 * time.Second)
	if p := mustPick(t, r, clientN(500, false), 9999, 5061); p.Addr != byPort[5061] {
		t.Errorf("a new client to port 5061 went to %v, the port is on %v", p.Addr, byPort[5061])
	}
	ps := b.Persist()
	if len(ps) != 4 || ps[1].Key != PersistDstPort || ps[1].KeyPort != 5061 || ps[1].Client != netip.PrefixFrom(vip4, 32) ||
		ps[1].Flows != 1 || ps[1].Addr != byPort[5061] {
		t.Errorf("Persist = %+v", ps)
	}
}

func TestPersistKeyValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto uint8
		key   PersistKey
		pmask int
	}{
		{"dst+port on tcp", ProtoTCP, PersistDstPort, NoPersistence},
		{"dst+port with pmask", ProtoUDP, PersistDstPort, 32},
		{"src+port without pmask", ProtoUDP, PersistSrcPort, NoPersistence},
		{"unknown key", ProtoUDP, PersistKey(9), 32},
	} {
		rc := persistRule(RoundRobin, tc.pmask, 2)
		rc.Proto, rc.PersistKey = tc.proto, tc.key
		if err := New(Config{}).Set([]RuleConfig{rc}); !errors.Is(err, ErrPersistKey) {
			t.Errorf("%s: %v, want ErrPersistKey", tc.name, err)
		}
	}
	for _, s := range PersistKeys {
		if k, err := ParsePersistKey(s); err != nil || k.String() != s {
			t.Errorf("ParsePersistKey(%q) = %v, %v", s, k, err)
		}
	}
	if _, err := ParsePersistKey("dst"); !errors.Is(err, ErrPersistKey) {
		t.Errorf("ParsePersistKey(dst): %v", err)
	}
	// src+port on TCP is accepted: a client that binds its source port is one session.
	rc := persistRule(RoundRobin, 32, 2)
	rc.PersistKey = PersistSrcPort
	if err := New(Config{}).Set([]RuleConfig{rc}); err != nil {
		t.Errorf("src+port on tcp: %v", err)
	}
}

// TestPersistKeyChange: a rule whose key changes loses its entries.
func TestPersistKeyChange(t *testing.T) {
	rc := persistRule(RoundRobin, 32, 2)
	rc.Proto = ProtoUDP
	b, _ := setup(t, rc)
	mustPick(t, mustRule(t, b, "web"), clientN(1, false), 1000, 80)
	if len(b.Persist()) != 1 {
		t.Fatal("no entry")
	}
	rc.PersistKey = PersistSrcPort
	if err := b.Set([]RuleConfig{rc}); err != nil {
		t.Fatal(err)
	}
	if ps := b.Persist(); len(ps) != 0 {
		t.Errorf("entries after the key changed: %+v", ps)
	}
}
