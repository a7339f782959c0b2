package conntrack

import (
	"time"

	"ulb/router/header"
)

// State is a flow's protocol state: one of the TCP states of IPVS, or StateUDP / StateICMP.
// The TCP states are numbered as in IPVS (ip_vs_proto_tcp.c). IPVS's LISTEN and SYNACK are
// left out: LISTEN belongs to its sync daemon and SYNACK to its secure_tcp table, neither of
// which ulb has; no transition of the default table leads to them.
type State uint8

// Flow states.
const (
	StateNone        State = iota // TCP flow created by no packet yet
	StateEstablished              // handshake completed
	StateSynSent                  // SYN seen from the server side
	StateSynRecv                  // SYN seen from the client
	StateFinWait                  // FIN seen, from the server side or input-only
	StateTimeWait                 // FIN seen from both sides
	StateClose                    // RST seen, or a segment without flags
	StateCloseWait                // FIN seen from the client
	StateLastAck                  // FIN seen in CLOSE_WAIT
	StateUDP                      // a UDP flow (also any protocol other than TCP and ICMP)
	StateICMP                     // an ICMP or ICMPv6 echo flow
	NumStates        = 11         // number of states, for arrays indexed by State
)

var stateNames = [NumStates]string{
	"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT", "CLOSE",
	"CLOSE_WAIT", "LAST_ACK", "UDP", "ICMP",
}

// String returns the IPVS name of the state ("ESTABLISHED", "SYN_RECV", ...).
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "INVALID"
}

// IsTCP reports whether s is one of the TCP states.
func (s State) IsTCP() bool { return s <= StateLastAck }

// Direction says which of a flow's two tuples a packet carried.
type Direction uint8

// Directions.
const (
	Original Direction = iota // the client's direction, as the first packet was received
	Reply                     // the answers' direction: the flow's Reply tuple
)

func (d Direction) String() string {
	if d == Original {
		return "original"
	}
	return "reply"
}

// Timeouts are the idle timeouts per state: a flow leaves the table when it has seen no packet
// for the timeout of its current state. A zero field takes its default (DefaultTimeouts).
type Timeouts struct {
	None        time.Duration // IPVS NONE: 2s
	Established time.Duration // 15m
	SynSent     time.Duration // 2m
	SynRecv     time.Duration // 1m
	FinWait     time.Duration // 2m
	TimeWait    time.Duration // 2m
	Close       time.Duration // 10s
	CloseWait   time.Duration // 60s
	LastAck     time.Duration // 30s
	UDP         time.Duration // 5m
	ICMP        time.Duration // 1m
}

// DefaultTimeouts returns the defaults, which are those of IPVS (tcp_timeouts in
// ip_vs_proto_tcp.c, udp_timeouts in ip_vs_proto_udp.c, icmp 1m): `ipvsadm --set` tunes the
// ESTABLISHED, FIN_WAIT and UDP ones (15m, 2m, 5m by default).
func DefaultTimeouts() Timeouts {
	return Timeouts{
		None:        2 * time.Second,
		Established: 15 * time.Minute,
		SynSent:     2 * time.Minute,
		SynRecv:     time.Minute,
		FinWait:     2 * time.Minute,
		TimeWait:    2 * time.Minute,
		Close:       10 * time.Second,
		CloseWait:   60 * time.Second,
		LastAck:     30 * time.Second,
		UDP:         5 * time.Minute,
		ICMP:        time.Minute,
	}
}

// Of returns the timeout of state s.
func (t Timeouts) Of(s State) time.Duration {
	switch s {
	case StateNone:
		return t.None
	case StateEstablished:
		return t.Established
	case StateSynSent:
		return t.SynSent
	case StateSynRecv:
		return t.SynRecv
	case StateFinWait:
		return t.FinWait
	case StateTimeWait:
		return t.TimeWait
	case StateClose:
		return t.Close
	case StateCloseWait:
		return t.CloseWait
	case StateLastAck:
		return t.LastAck
	case StateUDP:
		return t.UDP
	case StateICMP:
		return t.ICMP
	}
	return 0
}

// withDefaults fills zero fields from DefaultTimeouts.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	fill := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	fill(&t.None, d.None)
	fill(&t.Established, d.Established)
	fill(&t.SynSent, d.SynSent)
	fill(&t.SynRecv, d.SynRecv)
	fill(&t.FinWait, d.FinWait)
	fill(&t.TimeWait, d.TimeWait)
	fill(&t.Close, d.Close)
	fill(&t.CloseWait, d.CloseWait)
	fill(&t.LastAck, d.LastAck)
	fill(&t.UDP, d.UDP)
	fill(&t.ICMP, d.ICMP)
	return t
}

// Transition tables, as IPVS's tcp_states (the default, non-secure_tcp table): [table][event]
// [current state] -> next state. Tables: input (client to balancer), output (server to
// client), input-only (flows whose replies bypass the balancer: DSR). Events by priority: RST,
// then SYN, then FIN, then ACK, as IPVS's tcp_state_idx.
const (
	tblInput = iota
	tblOutput
	tblInputOnly
)

const (
	evSYN = iota
	evFIN
	evACK
	evRST
)

const (
	sNO = StateNone
	sES = StateEstablished
	sSS = StateSynSent
	sSR = StateSynRecv
	sFW = StateFinWait
	sTW = StateTimeWait
	sCL = StateClose
	sCW = StateCloseWait
	sLA = StateLastAck
)

var tcpNext = [3][4][StateLastAck + 1]State{
	tblInput: {
		//      sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA
		evSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR},
		evFIN: {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA},
		evACK: {sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL},
		evRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA},
	},
	tblOutput: {
		evSYN: {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS},
		evFIN: {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA},
		evACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA},
		evRST: {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL},
	},
	tblInputOnly: {
		evSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR},
		evFIN: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA},
		evACK: {sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL},
		evRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA},
	},
}

// NextState returns the TCP state after a segment with tcpFlags (header.TCPFlag*) in direction
// dir. inputOnly selects IPVS's input-only table, for flows whose replies the table never sees
// (DSR: a flow inserted without a Reply tuple). As in IPVS, a segment with none of RST, SYN, FIN
// and ACK moves the flow to CLOSE, and a SYN from the client on a TIME_WAIT or CLOSE flow
// restarts it (SYN_RECV). Non-TCP states are returned unchanged.
func NextState(s State, dir Direction, inputOnly bool, tcpFlags uint8) State {
	if !s.IsTCP() {
		return s
	}
	var ev int
	switch {
	case tcpFlags&header.TCPFlagRST != 0:
		ev = evRST
	case tcpFlags&header.TCPFlagSYN != 0:
		ev = evSYN
	case tcpFlags&header.TCPFlagFIN != 0:
		ev = evFIN
	case tcpFlags&header.TCPFlagACK != 0:
		ev = evACK
	default:
		return StateClose
	}
	tbl := tblInput
	if dir == Reply {
		tbl = tblOutput
	} else if inputOnly {
		tbl = tblInputOnly
	}
	return tcpNext[tbl][ev][s]
}

// initialState is the state of a new flow of protocol proto before any packet.
func initialState(proto uint8) State {
	switch proto {
	case ProtoTCP:
		return StateNone
	case ProtoICMP, ProtoICMPv6:
		return StateICMP
	}
	return StateUDP
}
