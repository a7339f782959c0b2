// Package header provides zero-copy views over wire formats (Ethernet, ARP, IPv4, IPv6,
// ICMPv4, ICMPv6/NDP, TCP, UDP), Internet checksum helpers, and builders that write
// packets into a caller's buffer without allocating.
//
// A view is a byte slice type (for example `type IPv4 []byte`) with offset constants, one
// IsValid gate, getters and setters. Call IsValid before any other method: getters index
// the slice directly and assume the minimum size IsValid checked. Setters that change a
// covered field and are named ...WithChecksumUpdate fix the checksum in the same call
// with the incremental update of RFC 1624.
//
// The package imports nothing of ulb so that every other package may import it.
package header
