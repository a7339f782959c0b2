// Package synproxy is the balancer's stateless defence against SYN floods: the router
// answers a VIP's SYNs itself with SYN cookies (RFC 4987 §3.6) and creates a flow, and
// the server-side handshake, only for an ACK that carries a valid cookie. A flood of
// spoofed SYNs then costs one keyed hash and one SYN-ACK each, and no state.
//
// # What a cookie keeps
//
// The 32-bit initial sequence number of the SYN-ACK is the cookie. It holds a 5-bit time
// counter (Period; a cookie is valid in the period it was made in and the next one), a
// 3-bit index into MSSTable (the largest entry not above the client's MSS) and a 24-bit
// MAC over the flow, the client's initial sequence number, the time counter and the rest,
// keyed with a secret; a sum over the flow hides the counter and the index from the
// client. When the client's SYN carries the timestamp option (RFC 7323), the low 5 bits of
// the SYN-ACK's TSval carry its window scale (4 bits, 15 for none) and SACK-permitted (1
// bit), which come back in the ACK's TSecr and are covered by the MAC. Without timestamps
// the cookie keeps only the MSS: the connection goes on without window scaling and SACK,
// the trade-off RFC 4987 §3.6 describes. Data the client sends with its SYN is not kept.
package synproxy

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"

	"ulb/router/header"
)

// Period is how long a cookie's time counter lasts. A cookie made in one period is
// accepted in it and in the next: an ACK must come back within 64 to 128 seconds.
const Period = 64 * time.Second

// MSSTable lists the MSS values a cookie can carry, in increasing order: common path
// MTUs' (1500-byte Ethernet with IPv4 and IPv6 headers, tunnels, PPPoE) and the
// defaults of RFC 9293 §3.7.1 (536 for IPv4, 1220 for IPv6).
var MSSTable = [8]uint16{536, 1200, 1220, 1300, 1380, 1400, 1440, 1460}

// Default MSS when a SYN carries none (RFC 9293 §3.7.1).
const (
	DefaultMSS4 = 536
	DefaultMSS6 = 1220
)

// MaxWScale is the largest window scale shift (RFC 7323 §2.3: larger values are used
// as 14).
const MaxWScale = 14

// Options are the TCP options of a client's SYN that matter to its connection.
type Options struct {
	// MSS is the client's maximum segment size (from Check: the one the cookie kept).
	MSS uint16
	// WScale is the window scale shift, valid when WScaleOK (the client offered it).
	WScale   uint8
	WScaleOK bool
	// SACK is SACK-permitted (RFC 2018).
	SACK bool
	// Timestamps says that the client sent the timestamp option (RFC 7323); TSval is
	// its value in the SYN (from Check: the ACK's TSval).
	Timestamps bool
	TSval      uint32
}

// ParseSYN reads the options of a SYN. MSS is the default of the family when the SYN
// has none; a window scale above MaxWScale is MaxWScale. Malformed options end the walk:
// what came before them counts.
func ParseSYN(tcp header.TCP, ipv6 bool) Options {
	o := Options{MSS: DefaultMSS4}
	if ipv6 {
		o.MSS = DefaultMSS6
	}
	it := tcp.OptionIter()
	for {
		opt, ok := it.Next()
		if !ok {
			return o
		}
		switch {
		case opt.Type == optMSS && len(opt.Data) == 2:
			o.MSS = binary.BigEndian.Uint16(opt.Data)
		case opt.Type == optWScale && len(opt.Data) == 1:
			o.WScale, o.WScaleOK = min(opt.Data[0], MaxWScale), true
		case opt.Type == optSACKPermitted && len(opt.Data) == 0:
			o.SACK = true
		case opt.Type == optTimestamps && len(opt.Data) == 8:
			o.Timestamps, o.TSval = true, binary.BigEndian.Uint32(opt.Data)
		}
	}
}

// Timestamps reads the timestamp option of a segment (RFC 7323): its TSval and TSecr,
// and false when it has none.
func Timestamps(tcp header.TCP) (tsval, tsecr uint32, ok bool) {
	it := tcp.OptionIter()
	for {
		opt, more := it.Next()
		if !more {
			return 0, 0, false
		}
		if opt.Type == optTimestamps && len(opt.Data) == 8 {
			return binary.BigEndian.Uint32(opt.Data), binary.BigEndian.Uint32(opt.Data[4:]), true
		}
	}
}

// TCP option kinds (RFC 9293, RFC 7323, RFC 2018).
const (
	optMSS           = 2
	optWScale        = 3
	optSACKPermitted = 4
	optTimestamps    = 8
)

// Flow is the connection a cookie is for.
type Flow struct {
	Client, VIP netip.AddrPort
}

// Cookies makes and checks SYN cookies under one secret. It holds no state beyond the
// secret and is safe for concurrent use.
type Cookies struct {
	k0, k1 uint64
	now    func() time.Time
}

// New returns Cookies keyed with secret; now is the clock (nil: time.Now). Nodes that
// share a secret (and roughly the time) accept each other's cookies.
func New(secret [16]byte, now func() time.Time) *Cookies {
	if now == nil {
		now = time.Now
	}
	return &Cookies{k0: binary.LittleEndian.Uint64(secret[:8]), k1: binary.LittleEndian.Uint64(secret[8:]), now: now}
}

// NewRandom returns Cookies keyed with a random secret.
func NewRandom(now func() time.Time) *Cookies {
	var secret [16]byte
	rand.Read(secret[:]) // crypto/rand.Read does not fail on Linux
	return New(secret, now)
}

// counter is the time counter of t.
func counter(t time.Time) uint32 { return uint32(t.Unix() / int64(Period/time.Second)) }

// tsBits are the 5 low bits of the SYN-ACK's TSval: window scale (15: none) and SACK.
func tsBits(o Options) uint32 {
	b := uint32(15)
	if o.WScaleOK {
		b = uint32(min(o.WScale, MaxWScale))
	}
	if o.SACK {
		b |= 1 << 4
	}
	return b
}

const (
	tsMask   = 1<<5 - 1
	macBits  = 24
	macMask  = 1<<macBits - 1
	noTSBits = 1 << 5 // in the MAC's input: the handshake carries no timestamps
)

// Make returns the initial sequence number of the SYN-ACK that answers a SYN of f with
// the client's initial sequence number isn and options o, and the TSval the SYN-ACK
// carries when o.Timestamps (its TSecr is o.TSval).
func (c *Cookies) Make(f Flow, isn uint32, o Options) (cookie, tsval uint32) {
	now := c.now()
	ctr := counter(now)
	idx := mssIndex(o.MSS)
	bits := uint32(noTSBits)
	if o.Timestamps {
		bits = tsBits(o)
		// Milliseconds (RFC 7323 §5.4: a tick of 1 ms to 1 s), the low bits replaced.
		tsval = uint32(now.UnixMilli())&^tsMask | bits
	}
	raw := ctr%32<<27 | uint32(idx)<<24 | c.mac(f, isn, ctr, idx, bits)&macMask
	return raw + c.hide(f), tsval
}

// Check validates the ACK that completes a handshake of f: seq and ack are its sequence
// and acknowledgment numbers, tsecr its TSecr when it carries timestamps (hasTS). It
// returns the options the cookie kept, with TSval the ACK's when tsval is given.
func (c *Cookies) Check(f Flow, seq, ack uint32, hasTS bool, tsval, tsecr uint32) (Options, bool) {
	isn, cookie := seq-1, ack-1
	raw := cookie - c.hide(f)
	ctr := counter(c.now())
	got := raw >> 27
	// The counter the cookie was made with: this period's or the one before.
	var made uint32
	switch got {
	case ctr % 32:
		made = ctr
	case (ctr - 1) % 32:
		made = ctr - 1
	default:
		return Options{}, false
	}
	idx := uint8(raw >> 24 & 7)
	bits := uint32(noTSBits)
	if hasTS {
		bits = tsecr & tsMask
	}
	if c.mac(f, isn, made, idx, bits)&macMask != raw&macMask {
		return Options{}, false
	}
	o := Options{MSS: MSSTable[idx]}
	if hasTS {
		o.Timestamps, o.TSval = true, tsval
		if w := bits & 15; w != 15 {
			o.WScale, o.WScaleOK = uint8(w), true
		}
		o.SACK = bits&(1<<4) != 0
	}
	return o, true
}

// mssIndex is the index of the largest MSSTable entry not above mss (0 below them all).
func mssIndex(mss uint16) uint8 {
	i := uint8(0)
	for j, v := range MSSTable {
		if v <= mss {
			i = uint8(j)
		}
	}
	return i
}

// flowBytes writes f's addresses and ports into m (36 bytes).
func flowBytes(m []byte, f Flow) {
	ca, va := f.Client.Addr().As16(), f.VIP.Addr().As16()
	copy(m, ca[:])
	copy(m[16:], va[:])
	binary.BigEndian.PutUint16(m[32:], f.Client.Port())
	binary.BigEndian.PutUint16(m[34:], f.VIP.Port())
}

// mac is the keyed hash over what the cookie vouches for.
func (c *Cookies) mac(f Flow, isn, ctr uint32, idx uint8, bits uint32) uint32 {
	var m [1 + 36 + 4 + 4 + 1 + 1]byte
	m[0] = 1 // domain: the MAC
	flowBytes(m[1:], f)
	binary.BigEndian.PutUint32(m[37:], isn)
	binary.BigEndian.PutUint32(m[41:], ctr)
	m[45] = idx
	m[46] = byte(bits)
	return uint32(sipHash(c.k0, c.k1, m[:]))
}

// hide is the per-flow sum that makes the cookie look random to the client.
func (c *Cookies) hide(f Flow) uint32 {
	var m [1 + 36]byte
	m[0] = 2 // domain: the sum
	flowBytes(m[1:], f)
	return uint32(sipHash(c.k0, c.k1, m[:]) >> 32)
}
