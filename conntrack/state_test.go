package conntrack

import (
	"strings"
	"testing"

	"ulb/router/header"
)

// ipvsTable is IPVS's default tcp_states table (net/netfilter/ipvs/ip_vs_proto_tcp.c) as
// written there, all eleven columns, including LISTEN and SYNACK which ulb does not model.
const ipvsTable = `
/*	INPUT */
/*        sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA	*/
/*syn*/ {{sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR }},
/*fin*/ {{sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW }},
/*ack*/ {{sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES }},
/*rst*/ {{sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR }},

/*	OUTPUT */
/*        sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA	*/
/*syn*/ {{sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR }},
/*fin*/ {{sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW }},
/*ack*/ {{sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES }},
/*rst*/ {{sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL }},

/*	INPUT-ONLY */
/*        sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA	*/
/*syn*/ {{sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR }},
/*fin*/ {{sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW }},
/*ack*/ {{sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES }},
/*rst*/ {{sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL }},
`

var ipvsNames = map[string]string{
	"sNO": "NONE", "sES": "ESTABLISHED", "sSS": "SYN_SENT", "sSR": "SYN_RECV", "sFW": "FIN_WAIT",
	"sTW": "TIME_WAIT", "sCL": "CLOSE", "sCW": "CLOSE_WAIT", "sLA": "LAST_ACK", "sLI": "LISTEN",
	"sSA": "SYNACK",
}

// TestNextStateMatchesIPVS compares every transition from the nine modelled states with the
// table above, by name.
func TestNextStateMatchesIPVS(t *testing.T) {
	flags := map[string]uint8{
		"syn": header.TCPFlagSYN, "fin": header.TCPFlagFIN | header.TCPFlagACK,
		"ack": header.TCPFlagACK, "rst": header.TCPFlagRST | header.TCPFlagACK,
	}
	var columns []string
	tbl := -1
	rows := 0
	for line := range strings.SplitSeq(ipvsTable, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.Contains(line, "INPUT-ONLY"), strings.Contains(line, "OUTPUT"), strings.Contains(line, "INPUT"):
			tbl++
		case strings.HasPrefix(line, "/*        sNO"):
			columns = strings.Fields(strings.NewReplacer(",", " ", "/*", " ", "*/", " ").Replace(line))
		case strings.HasPrefix(line, "/*syn*/"), strings.HasPrefix(line, "/*fin*/"), strings.HasPrefix(line, "/*ack*/"), strings.HasPrefix(line, "/*rst*/"):
			ev := line[2:5]
			body := line[strings.Index(line, "{{")+2 : strings.Index(line, "}}")]
			next := strings.Fields(strings.ReplaceAll(body, ",", " "))
			if len(next) != len(columns) {
				t.Fatalf("row %q: %d entries, %d columns", line, len(next), len(columns))
			}
			for i, from := range columns {
				var st State
				for st = 0; st <= StateLastAck && st.String() != ipvsNames[from]; st++ {
				}
				if st > StateLastAck {
					continue // LISTEN, SYNACK: not modelled
				}
				dir, inputOnly := Original, false
				switch tbl {
				case 1:
					dir = Reply
				case 2:
					inputOnly = true
				}
				got := NextState(st, dir, inputOnly, flags[ev])
				if got.String() != ipvsNames[next[i]] {
					t.Errorf("table %d %s in %s: got %s, IPVS %s", tbl, ev, st, got, ipvsNames[next[i]])
				}
				rows++
			}
		}
	}
	if rows != 3*4*9 {
		t.Fatalf("checked %d transitions, want %d", rows, 3*4*9)
	}
}

func TestNextStateRules(t *testing.T) {
	// No flags at all: CLOSE, as IPVS.
	if got := NextState(StateEstablished, Original, false, header.TCPFlagPSH); got != StateClose {
		t.Errorf("flagless segment: %s", got)
	}
	// RST wins over SYN, SYN over FIN, FIN over ACK.
	all := header.TCPFlagRST | header.TCPFlagSYN | header.TCPFlagFIN | header.TCPFlagACK
	if got := NextState(StateEstablished, Original, false, all); got != StateClose {
		t.Errorf("RST|SYN: %s", got)
	}
	if got := NextState(StateSynRecv, Original, false, header.TCPFlagSYN|header.TCPFlagFIN); got != StateSynRecv {
		t.Errorf("SYN|FIN: %s", got)
	}
	if got := NextState(StateEstablished, Original, false, header.TCPFlagFIN|header.TCPFlagACK); got != StateCloseWait {
		t.Errorf("FIN|ACK: %s", got)
	}
	// Non-TCP states never move.
	for _, s := range []State{StateUDP, StateICMP} {
		if got := NextState(s, Original, false, header.TCPFlagRST); got != s {
			t.Errorf("%s moved to %s", s, got)
		}
	}
}

func TestTCPLifecycles(t *testing.T) {
	const (
		S = header.TCPFlagSYN
		A = header.TCPFlagACK
		F = header.TCPFlagFIN | header.TCPFlagACK
		R = header.TCPFlagRST
	)
	type step struct {
		dir   Direction
		flags uint8
		want  State
	}
	cases := []struct {
		name      string
		inputOnly bool
		steps     []step
	}{
		{"handshake and client close", false, []step{
			{Original, S, StateSynRecv}, {Reply, S | A, StateSynRecv}, {Original, A, StateEstablished},
			{Original, F, StateCloseWait}, {Reply, F, StateTimeWait}, {Original, A, StateTimeWait},
		}},
		{"server closes first", false, []step{
			{Original, S, StateSynRecv}, {Reply, S | A, StateSynRecv}, {Original, A, StateEstablished},
			{Reply, F, StateFinWait}, {Original, F, StateTimeWait},
		}},
		{"reset", false, []step{
			{Original, S, StateSynRecv}, {Reply, R, StateClose},
		}},
		{"SYN restarts a TIME_WAIT flow", false, []step{
			{Original, S, StateSynRecv}, {Original, A, StateEstablished}, {Original, F, StateCloseWait},
			{Reply, F, StateTimeWait}, {Original, S, StateSynRecv}, {Original, A, StateEstablished},
		}},
		{"DSR input only", true, []step{
			{Original, S, StateSynRecv}, {Original, A, StateEstablished}, {Original, F, StateFinWait},
			{Original, A, StateFinWait}, {Original, R, StateClose}, {Original, S, StateSynRecv},
		}},
		{"stray ACK", false, []step{{Original, A, StateClose}}},
	}
	for _, c := range cases {
		s := StateNone
		for i, st := range c.steps {
			s = NextState(s, st.dir, c.inputOnly, st.flags)
			if s != st.want {
				t.Errorf("%s: step %d: %s, want %s", c.name, i, s, st.want)
				break
			}
		}
	}
}

func TestTimeoutsDefaults(t *testing.T) {
	d := DefaultTimeouts()
	var zero Timeouts
	if zero.withDefaults() != d {
		t.Errorf("zero timeouts do not take the defaults")
	}
	custom := Timeouts{Established: 1}
	if got := custom.withDefaults(); got.Established != 1 || got.UDP != d.UDP {
		t.Errorf("withDefaults overrode a set field: %+v", got)
	}
	for s := State(0); s < NumStates; s++ {
		if d.Of(s) <= 0 {
			t.Errorf("no default timeout for %s", s)
		}
	}
	if State(200).String() != "INVALID" || d.Of(State(200)) != 0 {
		t.Errorf("out-of-range state")
	}
}
