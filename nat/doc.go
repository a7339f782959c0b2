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
//
// How the router uses it. A flow's forward rewrite sets the packet to the reply tuple
// reversed (half-NAT: Dst/DstPort = server; full-NAT: also Src/SrcPort = proxy address
// and a port from Pools); its reply rewrite sets the packet to the original tuple
// reversed (Src/SrcPort = VIP, and for full-NAT Dst/DstPort = client). For an ICMP
// error, ErrorInner and Parse give the quoted packet's endpoints; the quote travelled
// against the error, so its flow is found by the reversed tuple. With r the rewrite of
// the direction the error travels, TranslateICMPError(ip, r, r.Reversed()) gives the
// error the flow's outer addresses (the client sees it come from the VIP, as with
// Linux NAT) and restores the quote to the packet its receiver sent.
package nat
