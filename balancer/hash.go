package balancer

import (
	"encoding/binary"
	"net/netip"
)

// Seeds of the deterministic hashes. They are fixed so that every node of an
// active-active pair, and a restarted ulbd, hash the same flow to the same server.
const (
	seedIP      = 0x243f6a8885a308d3
	seedIPPort  = 0x13198a2e03707344
	seedIPVIP   = 0xa4093822299f31d0
	seedFlow    = 0x082efa98ec4e6c89
	seedMaglev1 = 0x452821e638d01377
	seedMaglev2 = 0xbe5466cf34e90c6c
	seedPersist = 0xc0ac29b7c97c50dd
)

// mix is the splitmix64 finalizer: every input bit affects every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hash16 folds a 16-byte address into h.
func hash16(h uint64, a *[16]byte) uint64 {
	h = mix(h ^ binary.LittleEndian.Uint64(a[:8]))
	return mix(h ^ binary.LittleEndian.Uint64(a[8:]))
}

// flowHash hashes a flow's 5-tuple (for Maglev).
func flowHash(client *[16]byte, cport uint16, vip *[16]byte, dport uint16, proto uint8) uint64 {
	h := hash16(seedFlow, client)
	h = hash16(h, vip)
	return mix(h ^ uint64(cport)<<24 ^ uint64(dport)<<8 ^ uint64(proto))
}

// maglevParams are a server's offset and skip in a Maglev table of size m (the paper's
// h1 and h2 over the server's name, here its address and port).
func maglevParams(addr netip.Addr, port uint16, m uint64) (offset, skip uint64) {
	a := addr.As16()
	offset = mix(hash16(seedMaglev1, &a)^uint64(port)) % m
	skip = mix(hash16(seedMaglev2, &a)^uint64(port))%(m-1) + 1
	return offset, skip
}

// maskBits clears every bit of a after the first bits.
func maskBits(a *[16]byte, bits int) {
	for i := range a {
		switch {
		case bits >= 8:
			bits -= 8
		case bits <= 0:
			a[i] = 0
		default:
			a[i] &^= 0xff >> bits
			bits = 0
		}
	}
}
