// Package conntrack is ulb's connection table: packed pointer-free tuples, both directions of
// a flow indexed, an IPVS-compatible TCP state machine with per-state idle timeouts, UDP and
// ICMP-echo flows, a capacity limit with eviction, and expiry driven by an injected clock.
//
// # Layout
//
// The table is split into shards chosen by the tuple's hash. A flow is stored once, in a slot
// of the shard its original tuple hashes to (its home shard). Each shard has an open-addressing
// index of 8-byte entries (a 32-bit hash tag and a 32-bit reference: direction, home shard,
// slot). The reply tuple is indexed in the shard it hashes to, which may differ from the home
// shard. Lookup locks only the shard of the tuple it is given: the immutable parts of a slot
// (tuples, rule, server) are stable while any index entry points at it, and the per-packet
// parts (state, last seen, counters) are atomics, so a reply packet never takes the home
// shard's lock. Slots live in fixed-size chunks of pointer-free structs and the index is a
// pointer-free slice, so the garbage collector does not scan a million flows.
//
// A flow leaves the table in three steps that never hold two locks: it is marked dying
// (Lookup then misses it), its index entries are removed, and only then its slot is freed for
// reuse. OnExpire is called after that, outside every lock.
package conntrack
