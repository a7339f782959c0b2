package router

import (
	"context"
	"errors"

	"ulb/router/port"
)

// loop is one port's receive loop. It owns its buffers: a batch of receive buffers, a
// set of scratch buffers for the packets it generates (ICMP replies and errors, IPv4
// fragments), and per egress port the list of frames to write at the end of the batch.
type loop struct {
	r       *Router
	in      *routerPort
	bufs    [][]byte
	sizes   []int
	scratch [][]byte
	nused   int        // scratch buffers used in this batch
	out     [][][]byte // per egress port index
	bc      batchCounters
	// l2mcast says the frame being handled came as a link-layer broadcast or multicast.
	l2mcast bool
	gso     gsoBuffers // for GSO frames cut into segments in software (rare)
	// reasm holds a packet reassembled from fragments for the router (made on first
	// use); reasmBusy says a frame queued in this batch points into it.
	reasm     []byte
	reasmBusy bool
	early     [][]byte // fragments rebuilt by releaseEarly
	// newFlows counts this batch's new-flow work (flows made, cookies answered) against
	// Config.NewFlowBudget.
	newFlows int
}

const headroom = port.Headroom

// scratchPerFrame is how many generated packets a batch may hold per received frame.
const scratchPerFrame = 2

func (r *Router) newLoop(in *routerPort) *loop {
	n := in.p.BatchSize()
	if n < 1 {
		n = 1
	}
	l := &loop{
		r:       r,
		in:      in,
		bufs:    make([][]byte, n),
		sizes:   make([]int, n),
		scratch: make([][]byte, n*scratchPerFrame),
		out:     make([][][]byte, len(r.ports())),
	}
	for i := range l.bufs {
		l.bufs[i] = make([]byte, port.BufSize)
	}
	for i := range l.scratch {
		l.scratch[i] = make([]byte, headroom+r.maxFrame)
	}
	for i := range l.out {
		l.out[i] = make([][]byte, 0, n*(1+scratchPerFrame))
	}
	return l
}

func (l *loop) run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := l.in.p.Read(l.bufs, l.sizes, headroom)
		if err != nil {
			if errors.Is(err, port.ErrClosed) {
				return nil
			}
			return err
		}
		l.batch(n)
	}
	return nil
}

// batch handles n received frames and writes what they produced.
func (l *loop) batch(n int) {
	l.newFlows = 0
	for i := 0; i < n; i++ {
		l.bc.rxFrames++
		l.bc.rxBytes += uint64(l.sizes[i])
		l.handle(l.bufs[i][:headroom+l.sizes[i]])
	}
	l.flush()
}

// flush writes the frames queued per egress port and the batch's counters.
func (l *loop) flush() {
	for _, ep := range l.r.ports() {
		l.flushPort(ep)
	}
	l.nused = 0
	l.reasmBusy = false
	l.bc.flush(&l.in.counters)
}

// growOut makes room in out for the ports added since the loop started (SetPorts): it
// allocates once per added port, not per frame.
func (l *loop) growOut() {
	n := cap(l.out[0])
	for len(l.out) < len(l.r.ports()) {
		l.out = append(l.out, make([][]byte, 0, n))
	}
}

// flushPort writes the frames queued on ep so far.
func (l *loop) flushPort(ep *routerPort) {
	if ep.idx >= len(l.out) {
		return // added since the loop started, nothing queued on it yet
	}
	frames := l.out[ep.idx]
	if len(frames) == 0 {
		return
	}
	sent, err := ep.p.Write(frames, headroom)
	if err != nil && sent < len(frames) {
		l.bc.drops[DropTxError] += uint64(len(frames) - sent)
		l.bc.anyDrop = true
	}
	clear(frames)
	l.out[ep.idx] = frames[:0]
}

// newScratch returns a scratch buffer for a generated packet, or nil when the batch used
// them all.
func (l *loop) newScratch() []byte {
	if l.nused == len(l.scratch) {
		return nil
	}
	b := l.scratch[l.nused]
	l.nused++
	port.Hdr(b, headroom).Clear()
	return b
}

// newFlowWork takes one unit of the batch's new-flow budget; false, counted, when the
// batch has spent it: the frame is shed before any work for it, so that a flood of new
// flows cannot take a batch's time from the frames of established ones.
func (l *loop) newFlowWork() bool {
	if b := int(l.r.newFlowBudget.Load()); b > 0 {
		if l.newFlows >= b {
			l.bc.drop(DropLBNewFlowBudget)
			return false
		}
		l.newFlows++
	}
	return true
}
