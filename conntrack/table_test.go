package conntrack

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ulb/router/header"
)

// clock is a manual clock for tests.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// expiries records OnExpire calls.
type expiries struct {
	mu    sync.Mutex
	flows []Flow
}

func (e *expiries) add(f Flow) { e.mu.Lock(); e.flows = append(e.flows, f); e.mu.Unlock() }
func (e *expiries) len() int   { e.mu.Lock(); defer e.mu.Unlock(); return len(e.flows) }

var (
	client = netip.MustParseAddr("192.0.2.10")
	vip    = netip.MustParseAddr("198.51.100.100")
	server = netip.MustParseAddr("203.0.113.20")
	proxy  = netip.MustParseAddr("203.0.113.50")
)

// halfNAT returns a half-NAT flow of client port cport.
func halfNAT(cport uint16, proto uint8) Flow {
	return Flow{
		Orig:  MakeTuple(client, vip, cport, 80, proto),
		Reply: MakeTuple(server, client, 8080, cport, proto),
		Rule:  3, Server: 7, Topology: 1,
	}
}

func newTable(t testing.TB, cfg Config) (*Table, *clock, *expiries) {
	c := newClock()
	e := &expiries{}
	cfg.Now = c.Now
	cfg.OnExpire = e.add
	return New(cfg), c, e
}

func TestInsertLookupBothDirections(t *testing.T) {
	for _, shards := range []int{1, 64} {
		tb, clk, _ := newTable(t, Config{Capacity: 100, Shards: shards})
		f := halfNAT(40000, ProtoTCP)
		f.Account(Original, header.TCPFlagSYN, 60)
		if f.State != StateSynRecv || f.OrigPackets != 1 || f.OrigBytes != 60 {
			t.Fatalf("Account: %+v", f)
		}
		if err := tb.Insert(f); err != nil {
			t.Fatal(err)
		}
		t0 := clk.ns.Load()
		clk.Advance(time.Second)
		g, dir, ok := tb.Lookup(f.Reply, header.TCPFlagSYN|header.TCPFlagACK, 60)
		if !ok || dir != Reply || g.State != StateSynRecv || g.ReplyPackets != 1 || g.ReplyBytes != 60 {
			t.Fatalf("reply lookup: %+v %v %v", g, dir, ok)
		}
		g, dir, ok = tb.Lookup(f.Orig, header.TCPFlagACK, 52)
		if !ok || dir != Original || g.State != StateEstablished || g.OrigPackets != 2 || g.OrigBytes != 112 {
			t.Fatalf("orig lookup: %+v %v %v", g, dir, ok)
		}
		if g.Rule != 3 || g.Server != 7 || g.Topology != 1 || g.Orig != f.Orig || g.Reply != f.Reply {
			t.Fatalf("fields lost: %+v", g)
		}
		if g.Created != t0 || g.LastSeen != t0+int64(time.Second) {
			t.Fatalf("times: created %d lastseen %d, want %d %d", g.Created, g.LastSeen, t0, t0+int64(time.Second))
		}
		if _, _, ok := tb.Lookup(f.Orig.Reply(), 0, 0); ok {
			t.Fatalf("the VIP->client tuple must not match")
		}
		if h, d, ok := tb.Get(f.Reply); !ok || d != Reply || h != g {
			t.Fatalf("Get changed or missed the flow: %+v %v", h, ok)
		}
		st := tb.Stats()
		if st.Len != 1 || st.Inserted != 1 || st.States[StateEstablished] != 1 || st.Hits != 2 || st.Misses != 1 {
			t.Fatalf("stats: %+v", st)
		}
	}
}

func TestInsertErrors(t *testing.T) {
	tb, _, _ := newTable(t, Config{Capacity: 100, Shards: 4})
	f := halfNAT(1, ProtoTCP)
	if err := tb.Insert(f); err != nil {
		t.Fatal(err)
	}
	if err := tb.Insert(f); !errors.Is(err, ErrExists) {
		t.Errorf("same flow: %v", err)
	}
	g := halfNAT(2, ProtoTCP)
	g.Reply = f.Reply // reply tuple taken
	if err := tb.Insert(g); !errors.Is(err, ErrExists) {
		t.Errorf("reply taken: %v", err)
	}
	h := halfNAT(3, ProtoTCP)
	h.Orig = f.Reply // orig equals another flow's reply
	if err := tb.Insert(h); !errors.Is(err, ErrExists) {
		t.Errorf("orig equal to a reply: %v", err)
	}
	bad := []Flow{
		{},
		{Orig: f.Orig, Reply: f.Orig},
		{Orig: f.Orig, Reply: MakeTuple(server, client, 1, 1, ProtoUDP)},
		{Orig: f.Orig, State: StateUDP},
	}
	for i, b := range bad {
		if err := tb.Insert(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad flow %d: %v", i, err)
		}
	}
	if tb.Len() != 1 {
		t.Fatalf("Len %d after refused inserts", tb.Len())
	}
	st := tb.Stats()
	if st.Exists != 3 || st.Inserted != 1 {
		t.Errorf("stats %+v", st)
	}
	// The failed inserts left the first flow intact and indexed both ways.
	if _, d, ok := tb.Lookup(f.Reply, header.TCPFlagACK, 1); !ok || d != Reply {
		t.Errorf("first flow lost its reply index")
	}
}

func TestProtocolsAndDSR(t *testing.T) {
	tb, _, _ := newTable(t, Config{Capacity: 100})
	u := halfNAT(5353, ProtoUDP)
	u.State = StateEstablished // ignored for UDP
	if err := tb.Insert(u); err != nil {
		t.Fatal(err)
	}
	if g, _, _ := tb.Lookup(u.Orig, header.TCPFlagRST, 10); g.State != StateUDP {
		t.Errorf("udp state %s", g.State)
	}
	i := Flow{Orig: MakeTuple(client, vip, 77, 77, ProtoICMP), Reply: MakeTuple(server, client, 77, 77, ProtoICMP)}
	if err := tb.Insert(i); err != nil {
		t.Fatal(err)
	}
	if g, d, ok := tb.Lookup(i.Reply, 0, 84); !ok || d != Reply || g.State != StateICMP {
		t.Errorf("icmp: %+v %v %v", g, d, ok)
	}
	// DSR: no reply tuple; the input-only table applies (a client FIN goes to FIN_WAIT).
	d := Flow{Orig: MakeTuple(client, vip, 999, 80, ProtoTCP)}
	d.Account(Original, header.TCPFlagSYN, 60)
	if err := tb.Insert(d); err != nil {
		t.Fatal(err)
	}
	tb.Lookup(d.Orig, header.TCPFlagACK, 52)
	if g, _, _ := tb.Lookup(d.Orig, header.TCPFlagFIN|header.TCPFlagACK, 52); g.State != StateFinWait {
		t.Errorf("DSR FIN: %s, want FIN_WAIT", g.State)
	}
	// A second DSR flow: zero reply tuples do not collide.
	d2 := Flow{Orig: MakeTuple(client, vip, 1000, 80, ProtoTCP)}
	if err := tb.Insert(d2); err != nil {
		t.Fatalf("second DSR flow: %v", err)
	}
	if _, _, ok := tb.Lookup(Tuple{}, 0, 0); ok {
		t.Errorf("zero tuple found")
	}
}

func TestFullNATReplyTuple(t *testing.T) {
	tb, _, _ := newTable(t, Config{Capacity: 100})
	f := Flow{
		Orig:  MakeTuple(client, vip, 40000, 443, ProtoTCP),
		Reply: MakeTuple(server, proxy, 443, 20001, ProtoTCP),
	}
	if err := tb.Insert(f); err != nil {
		t.Fatal(err)
	}
	g, d, ok := tb.Lookup(MakeTuple(server, proxy, 443, 20001, ProtoTCP), header.TCPFlagACK, 1)
	if !ok || d != Reply || g.Orig != f.Orig {
		t.Fatalf("full-NAT reply lookup: %+v %v %v", g, d, ok)
	}
}

func TestDelete(t *testing.T) {
	tb, _, exp := newTable(t, Config{Capacity: 100})
	f, g := halfNAT(1, ProtoTCP), halfNAT(2, ProtoTCP)
	for _, x := range []Flow{f, g} {
		if err := tb.Insert(x); err != nil {
			t.Fatal(err)
		}
	}
	if !tb.Delete(f.Reply) {
		t.Fatal("Delete by reply tuple failed")
	}
	if tb.Delete(f.Orig) {
		t.Fatal("second Delete succeeded")
	}
	if _, _, ok := tb.Lookup(f.Orig, 0, 0); ok {
		t.Fatal("deleted flow found by orig")
	}
	if _, _, ok := tb.Lookup(f.Reply, 0, 0); ok {
		t.Fatal("deleted flow found by reply")
	}
	if _, _, ok := tb.Lookup(g.Reply, 0, 0); !ok {
		t.Fatal("other flow lost")
	}
	if exp.len() != 1 || exp.flows[0].Orig != f.Orig {
		t.Fatalf("OnExpire: %+v", exp.flows)
	}
	if err := tb.Insert(f); err != nil {
		t.Fatalf("reinsert after delete: %v", err)
	}
	st := tb.Stats()
	if st.Deleted != 1 || st.Len != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRangeAndDeleteIf(t *testing.T) {
	tb, _, exp := newTable(t, Config{Capacity: 10000, Shards: 8})
	for p := range 3000 {
		f := halfNAT(uint16(p+1), ProtoTCP)
		f.Server = uint32(p % 3)
		if err := tb.Insert(f); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint16]bool{}
	tb.Range(func(f Flow) bool { seen[f.Orig.SrcPort] = true; return true })
	if len(seen) != 3000 {
		t.Fatalf("Range saw %d flows", len(seen))
	}
	n := 0
	tb.Range(func(Flow) bool { n++; return n < 10 })
	if n != 10 {
		t.Fatalf("Range did not stop: %d", n)
	}
	if got := tb.DeleteIf(func(f Flow) bool { return f.Server == 1 }); got != 1000 {
		t.Fatalf("DeleteIf removed %d", got)
	}
	if tb.Len() != 2000 || exp.len() != 1000 {
		t.Fatalf("Len %d, expired %d", tb.Len(), exp.len())
	}
	tb.Range(func(f Flow) bool {
		if f.Server == 1 {
			t.Fatalf("server 1 flow left: %v", f.Orig)
		}
		return true
	})
}

func TestExpireByState(t *testing.T) {
	to := DefaultTimeouts()
	to.ICMP = 30 * time.Second // distinct from SYN_RECV's minute
	tb, clk, exp := newTable(t, Config{Capacity: 1000, Timeouts: Timeouts{ICMP: to.ICMP}})
	type tc struct {
		f     Flow
		flags uint8
		want  State
	}
	var cases []tc
	add := func(port uint16, proto uint8, flags uint8, want State) {
		f := halfNAT(port, proto)
		if proto == ProtoTCP {
			f.Account(Original, header.TCPFlagSYN, 0)
		}
		if err := tb.Insert(f); err != nil {
			t.Fatal(err)
		}
		if flags != 0 {
			tb.Lookup(f.Reply, flags, 0) // server side: SYN-ACK or RST
		}
		cases = append(cases, tc{f, flags, want})
	}
	add(1, ProtoTCP, 0, StateSynRecv)
	add(2, ProtoTCP, header.TCPFlagSYN|header.TCPFlagACK, StateSynRecv)
	add(3, ProtoTCP, header.TCPFlagRST, StateClose)
	add(4, ProtoUDP, 0, StateUDP)
	add(5, ProtoICMP, 0, StateICMP)
	if g, _, _ := tb.Lookup(cases[1].f.Orig, header.TCPFlagACK, 0); g.State != StateEstablished {
		t.Fatalf("handshake: %s", g.State)
	}
	for _, c := range cases {
		if g, _, ok := tb.Get(c.f.Orig); !ok || (g.State != c.want && c.f.Orig.SrcPort != 2) {
			t.Fatalf("flow %d: %s, want %s", c.f.Orig.SrcPort, g.State, c.want)
		}
	}
	// Walk the clock to each timeout in order; a flow goes exactly when its timeout passes.
	start := clk.ns.Load()
	order := []State{StateClose, StateICMP, StateSynRecv, StateUDP, StateEstablished}
	for i, s := range order {
		clk.ns.Store(start + int64(to.Of(s)) - 1)
		for range DefaultSweepCalls {
			tb.Expire()
		}
		if tb.Len() != len(order)-i {
			t.Fatalf("before %s timeout: Len %d, want %d", s, tb.Len(), len(order)-i)
		}
		clk.ns.Store(start + int64(to.Of(s)))
		n := 0
		for range DefaultSweepCalls {
			n += tb.Expire()
		}
		if n != 1 || tb.Len() != len(order)-i-1 {
			t.Fatalf("at %s timeout: expired %d, Len %d", s, n, tb.Len())
		}
		if last := exp.flows[exp.len()-1]; last.State != s {
			t.Fatalf("expired a %s flow, want %s", last.State, s)
		}
	}
	st := tb.Stats()
	if st.Expired != 5 || st.ExpiredIn[StateEstablished] != 1 || st.ExpiredIn[StateClose] != 1 {
		t.Fatalf("stats %+v", st)
	}
	for s, n := range st.States {
		if n != 0 {
			t.Fatalf("state %s count %d after all expired", State(s), n)
		}
	}
}

func TestExpireKeepsActiveFlows(t *testing.T) {
	tb, clk, _ := newTable(t, Config{Capacity: 100, Timeouts: Timeouts{UDP: 10 * time.Second}})
	a, b := halfNAT(1, ProtoUDP), halfNAT(2, ProtoUDP)
	tb.Insert(a)
	tb.Insert(b)
	for range 5 {
		clk.Advance(6 * time.Second)
		tb.Lookup(a.Reply, 0, 10) // a reply keeps a alive
		tb.Expire()
	}
	if _, _, ok := tb.Lookup(a.Orig, 0, 0); !ok {
		t.Fatal("active flow expired")
	}
	if _, _, ok := tb.Lookup(b.Orig, 0, 0); ok {
		t.Fatal("idle flow kept")
	}
}

func TestExpireManyWithinSweepCalls(t *testing.T) {
	const n = 50000
	tb, clk, exp := newTable(t, Config{Capacity: n, Shards: 16, SweepCalls: 4})
	for i := range n {
		f := Flow{
			Orig:  MakeTuple(client, vip, uint16(i), uint16(i>>16), ProtoUDP),
			Reply: MakeTuple(server, client, uint16(i>>16), uint16(i), ProtoUDP),
		}
		if err := tb.Insert(f); err != nil {
			t.Fatal(i, err)
		}
	}
	clk.Advance(DefaultTimeouts().UDP)
	total := 0
	for range 4 {
		got := tb.Expire()
		if got > n/4+16*1024 {
			t.Fatalf("one call expired %d: not incremental", got)
		}
		total += got
	}
	if total != n || tb.Len() != 0 || exp.len() != n {
		t.Fatalf("expired %d of %d in 4 calls, Len %d, callbacks %d", total, n, tb.Len(), exp.len())
	}
}

func TestEvictionOrder(t *testing.T) {
	tb, clk, exp := newTable(t, Config{Capacity: 4, Shards: 1})
	mk := func(port uint16, est bool) Flow {
		f := halfNAT(port, ProtoTCP)
		f.Account(Original, header.TCPFlagSYN, 0)
		if est {
			f.Account(Original, header.TCPFlagACK, 0)
		}
		return f
	}
	// 1, 2 established (oldest), 3 and 4 half-open; 3 older than 4.
	for _, p := range []uint16{1, 2, 3, 4} {
		if err := tb.Insert(mk(p, p <= 2)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if err := tb.Insert(mk(5, true)); err != nil {
		t.Fatalf("insert at capacity: %v", err)
	}
	if exp.len() != 1 || exp.flows[0].Orig.SrcPort != 3 {
		t.Fatalf("evicted %+v, want the flow of port 3", exp.flows)
	}
	tb.Lookup(mk(4, false).Orig, header.TCPFlagACK, 0) // 4 becomes established
	if err := tb.Insert(mk(6, false)); !errors.Is(err, ErrFull) {
		t.Fatalf("all established: %v, want ErrFull", err)
	}
	tb.Lookup(mk(1, true).Orig, header.TCPFlagRST, 0) // 1 becomes evictable
	if err := tb.Insert(mk(6, false)); err != nil {
		t.Fatalf("after RST: %v", err)
	}
	if exp.len() != 2 || exp.flows[1].Orig.SrcPort != 1 {
		t.Fatalf("second eviction %+v", exp.flows)
	}
	st := tb.Stats()
	if st.Evicted != 2 || st.Refused != 1 || st.Len != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// A full table gives up a half-open flow before a closing one, a closing one before a
// UDP flow with replies, however idle they are, and never an established one.
func TestEvictionClasses(t *testing.T) {
	tb, clk, exp := newTable(t, Config{Capacity: 5, Shards: 1})
	tcp := func(port uint16, flags ...uint8) Flow {
		f := halfNAT(port, ProtoTCP)
		for i, fl := range flags {
			d := Original
			if i%2 == 1 {
				d = Reply
			}
			f.Account(d, fl, 0)
		}
		return f
	}
	answered := halfNAT(4, ProtoUDP)
	answered.Account(Reply, 0, 100)
	const syn, ack, fin = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN
	// Oldest first: the UDP flow with replies, the closing one, the established one, an
	// unanswered UDP flow, the half-open TCP flow.
	for _, f := range []Flow{answered, tcp(2, syn, syn|ack, ack, fin), tcp(3, syn, syn|ack, ack), halfNAT(5, ProtoUDP), tcp(1, syn)} {
		if err := tb.Insert(f); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	var order []uint16
	for p := uint16(10); p < 14; p++ {
		if err := tb.Insert(tcp(p, syn, syn|ack, ack)); err != nil {
			t.Fatalf("insert %d: %v", p, err)
		}
		order = append(order, exp.flows[exp.len()-1].Orig.SrcPort)
	}
	// The unassured two (the older first), then the closing one, then the answered UDP one.
	if want := []uint16{5, 1, 2, 4}; !slices.Equal(order, want) {
		t.Errorf("evicted ports %v, want %v", order, want)
	}
	if err := tb.Insert(tcp(20, syn)); !errors.Is(err, ErrFull) {
		t.Errorf("a table of established flows: %v, want ErrFull", err)
	}
	st := tb.Stats()
	if st.EvictedBy != [numEvictClasses]uint64{EvictUnassured: 2, EvictClosing: 1, EvictIdle: 1} || st.Evicted != 4 || st.Refused != 1 {
		t.Errorf("stats: evicted %d by class %v, refused %d", st.Evicted, st.EvictedBy, st.Refused)
	}
}

func TestEvictionAcrossShards(t *testing.T) {
	// With more shards than flows, the home shard of a new flow is usually empty.
	tb, _, exp := newTable(t, Config{Capacity: 8, Shards: 64})
	for p := range 100 {
		if err := tb.Insert(halfNAT(uint16(p+1), ProtoUDP)); err != nil {
			t.Fatalf("flow %d: %v", p, err)
		}
	}
	if tb.Len() != 8 || exp.len() != 92 {
		t.Fatalf("Len %d, evicted %d", tb.Len(), exp.len())
	}
}

func TestSetTimeouts(t *testing.T) {
	tb, clk, _ := newTable(t, Config{Capacity: 10})
	f := halfNAT(1, ProtoUDP)
	if err := tb.Insert(f); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	tb.Expire()
	if tb.Len() != 1 {
		t.Fatal("expired before the default UDP timeout")
	}
	tb.SetTimeouts(Timeouts{UDP: 20 * time.Second})
	if tb.Timeout(StateUDP) != 20*time.Second || tb.Timeout(StateEstablished) != 15*time.Minute {
		t.Fatalf("timeouts %v %v", tb.Timeout(StateUDP), tb.Timeout(StateEstablished))
	}
	tb.Expire()
	if tb.Len() != 0 {
		t.Fatal("not expired by the new timeout")
	}
}

// TestRefresh: Refresh sets a TCP flow's state from either tuple, keeps the state
// counters right, marks the flow seen, and misses unknown tuples; a UDP flow keeps its
// state.
func TestRefresh(t *testing.T) {
	tb, clk, _ := newTable(t, Config{Capacity: 10, Shards: 4})
	f := halfNAT(40001, ProtoTCP)
	f.Account(Original, header.TCPFlagSYN, 60)
	if err := tb.Insert(f); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if !tb.Refresh(f.Reply, StateEstablished) {
		t.Fatal("Refresh missed the flow by its reply tuple")
	}
	g, _, _ := tb.Get(f.Orig)
	if g.State != StateEstablished || g.LastSeen != clk.ns.Load() {
		t.Fatalf("after Refresh: state %v, last seen %d (now %d)", g.State, g.LastSeen, clk.ns.Load())
	}
	st := tb.Stats()
	if st.States[StateEstablished] != 1 || st.States[StateSynRecv] != 0 {
		t.Fatalf("state counters %v", st.States)
	}
	if tb.Refresh(MakeTuple(client, vip, 1, 80, ProtoTCP), StateEstablished) {
		t.Fatal("Refresh of an unknown tuple reported true")
	}
	u := halfNAT(40002, ProtoUDP)
	if err := tb.Insert(u); err != nil {
		t.Fatal(err)
	}
	if !tb.Refresh(u.Orig, StateEstablished) {
		t.Fatal("Refresh missed the UDP flow")
	}
	if g, _, _ := tb.Get(u.Orig); g.State != StateUDP {
		t.Fatalf("a UDP flow took state %v", g.State)
	}
}
