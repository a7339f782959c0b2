// Package conntrack is ulb's connection table: packed pointer-free tuples, both directions of
// a flow indexed, an IPVS-compatible TCP state machine with per-state idle timeouts, UDP and
// ICMP-echo flows, a capacity limit with eviction, and expiry driven by an injected clock.
//
// # Layout
//
// The table is split into shards chosen by the top bits of the tuple's hash (a keyed,
// wyhash-style mix of all 37 bytes). A flow is stored once, in a 128-byte slot (two cache
// lines) of the shard its original tuple hashes to, its home shard. Each shard has an
// open-addressing index of 8-byte entries: the hash's low 32 bits as a tag and a 32-bit
// reference (direction, home shard, slot). The reply tuple is indexed in the shard it hashes
// to, which may differ from the home shard. Lookup locks only the shard of the tuple it is
// given: the immutable parts of a slot (tuples, rule, server, created) are stable while any
// index entry points at it, and the per-packet parts (state, last seen, counters) are atomics,
// so a reply never takes the home shard's lock. Slots live in chunks of pointer-free structs
// and the indexes in pointer-free slices, so the garbage collector never scans the flows; for
// big tables that memory is advised as transparent huge pages.
//
// At a million flows the table takes about 168 bytes per flow (128 for the slot, 32 for two
// index entries at a load near one half, the rest headroom).
//
// A flow leaves the table in three steps that never hold two locks: it is marked dying
// (Lookup then misses it), its index entries are removed, and only then its slot is freed for
// reuse. OnExpire is called after that, outside every lock.
package conntrack
