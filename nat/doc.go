// Package nat rewrites IPv4 and IPv6 packets in place for the load balancer's half-NAT
// and full-NAT topologies (addresses, TCP/UDP ports, ICMP echo identifiers) with
// incremental checksum updates (RFC 1624), translates ICMP errors about translated flows,
// and hands out full-NAT source ports.
//
// DSR needs nothing here: only the destination MAC changes, which is the router's.
//
// Every function works on the IP packet (no link-layer header), never allocates and
// never panics on malformed input: what it cannot rewrite is reported with false and
// left unchanged.
//
// Checksum fields come in two forms. A complete packet carries real checksums, updated
// as checksums (HC' = ~(~HC - old + new)). A frame read from AF_PACKET with
// CHECKSUM_PARTIAL (virtio-net NEEDS_CSUM) carries in its TCP/UDP/ICMPv6 checksum field
// the uncomplemented sum of the pseudo-header only; the sender's NIC (or the kernel)
// sums the segment itself later. Apply's partial argument selects that form: the field
// then follows the pseudo-header's addresses as a plain ones'-complement sum
// (P' = P - old + new) and ignores port changes, which the final sum will cover.
package nat
