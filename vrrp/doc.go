// Package vrrp implements the Virtual Router Redundancy Protocol: version 3 (RFC 9568,
// which obsoletes RFC 5798) for IPv4 and IPv6 and version 2 (RFC 3768) for IPv4, with
// keepalived's additions (FAULT state, preempt_delay, tracking, sync groups).
//
// The package does no I/O and reads no clock. Advert is a zero-copy view of the wire
// format and BuildAdvert writes one; Instance is the state machine as a step function
// (Start, Receive, Tick, Shutdown with the caller's time) that acts through the narrow
// Output interface (send an advert, report a transition); Mux dispatches a port's
// adverts to its instances; Tracker turns link states, ping results and server-group
// health into a fault flag and a priority adjustment; SyncGroup makes instances change
// state together.
//
// What the router does around it: it passes every IP packet of protocol 112 of a port
// to the port's Mux with the TTL (hop limit), the source and destination addresses
// and the IP payload; it sends each advert from Instance.Send in an IP packet from
// Config.Primary (an IPv6 link-local address for IPv6) to Instance.Destination with
// TTL or hop limit 255 (keepalived also sets DSCP CS6, TOS 0xc0), in an Ethernet frame
// from Instance.VirtualMAC; on a transition to Master it takes the virtual MAC and
// addresses and sends gratuitous ARPs or unsolicited NAs, and on leaving Master it
// releases them; it calls Tick at NextTimeout. An instance with extra links
// (Config.Links, VRRP over redundant links) sends each advert on every link through
// LinkOutput.SendLink, built again with that link's address as source, and hears its
// peers on every link (a Mux per port, Mux.AddLink): an advert on any link resets the
// Master_Down_Timer.
//
// Choices where the RFCs leave room or disagree with practice, and why:
//   - A version 3 IPv4 advert is accepted with or without the pseudo-header in its
//     checksum; the default on send (PseudoHeader) is what keepalived 2.2 sends.
//   - Address-list mismatches are counted and logged but accepted in version 3 (RFC
//     9568: MAY), and dropped in version 2 unless the sender is the owner (RFC 3768).
//   - The owner drops adverts (RFC 9568 section 7.1 as published; erratum 8298 would
//     process them).
//   - The first IPv6 address is not required to be link-local (RFC 9568 erratum 8300):
//     keepalived does not send it so.
//   - A master that receives an advert it wins against (lower priority, or equal with a
//     lower address) re-announces at once instead of only discarding it (keepalived):
//     two masters that see each other settle within one round trip.
//   - Skew_Time is computed exactly in nanoseconds, not rounded to centiseconds (as
//     keepalived computes it in microseconds).
package vrrp
