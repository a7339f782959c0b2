package router

import "sync/atomic"

// DropReason says why the router dropped a frame. Every drop is counted under exactly one
// reason, per port.
type DropReason uint8

const (
	DropEthernetShort   DropReason = iota // shorter than an Ethernet header
	DropNotForUs                          // unicast to another MAC
	DropOwnFrame                          // a frame this router sent, read back
	DropVLAN                              // 802.1Q tagged: no VLAN sub-ports configured
	DropEtherType                         // neither ARP, IPv4 nor IPv6
	DropIPv4Header                        // bad version, header length or total length
	DropIPv4Checksum                      // bad IPv4 header checksum
	DropIPv4Source                        // source address that must never be seen on a wire: 0/8, 127/8, multicast, class E 240/4, 255.255.255.255 (RFC 1812 §5.3.7)
	DropIPv6Header                        // bad version or payload length, broken extension headers
	DropIPv6Source                        // multicast or unspecified source forwarded
	DropTTLExceeded                       // TTL or hop limit ran out (time-exceeded sent when allowed)
	DropNoRoute                           // no route to the destination (unreachable sent when allowed)
	DropNeighbour                         // next hop did not resolve, or its queue overflowed
	DropTooBig                            // larger than the egress MTU with DF set, or IPv6 (error sent)
	DropFragment                          // could not be fragmented (no room, no buffer, a GSO frame software cannot segment)
	DropLocalUnhandled                    // addressed to the router, no service for it
	DropLinkLocal                         // a link-local destination or source that must not be forwarded
	DropMulticast                         // IP multicast that the router does not forward
	DropICMPMalformed                     // a malformed ICMP message for the router
	DropTxError                           // the port refused to send the frame
	DropLBNoFlow                          // a TCP segment other than SYN for a VIP, without a flow
	DropLBNoServer                        // no server of the rule can take a new flow
	DropLBNoProxyPort                     // full-NAT: every proxy source port is in use
	DropLBTableFull                       // the connection table is full of established flows
	DropLBRewrite                         // a packet of a flow that could not be rewritten
	DropLBTupleInUse                      // a new flow's server side (half-NAT: client address and port to the server) belongs to an open flow
	DropLinkBroadcast                     // unicast IP received in a link-layer broadcast or multicast frame, not for the router (RFC 1812 §5.3.4)
	DropBroadcast                         // an IP broadcast for the arrival network (limited or directed): never forwarded, no service takes it
	DropDirectedBcast                     // a directed broadcast to another attached network whose port does not forward them (RFC 2644)
	DropIPv4Options                       // a malformed IPv4 option (parameter problem sent)
	DropSourceRoute                       // an IPv4 loose or strict source route (RFC 7126 §4.3, §4.4: dropped by default)
	DropIPv6Routing                       // a routing header with segments left, addressed to the router (parameter problem sent)
	DropReassembly                        // a fragment for the router refused by reassembly (overlap, length, limits; see ReassemblyStats)
	DropLBSourceLimit                     // a new flow over its client prefix's limit (Config.SourceLimit)
	DropLBProxyPending                    // a segment of a SYN-proxied flow while the server's handshake is not done
	DropLBNewFlowBudget                   // a new flow past its batch's budget (Config.NewFlowBudget)
	DropLBOverloaded                      // every server that takes new flows is overloaded (max_conns, until below min_conns)
	DropTunnel                            // a tunnel flow's packet that could not be encapsulated: no source address of its family on the egress port, or an outer packet past 65535 bytes
	DropTunnelICMP                        // an ICMP error about a tunnel packet of the router's that is not relayed to the client (RFC 2003 section 4, RFC 2473 section 8): quote too short, no such flow, a type not relayed
	DropNATNoPort                         // autonat: no free source port (or identifier) on the outside address, or no outside address of the packet's family
	DropNATNoFlow                         // a TCP segment other than a SYN that would open a translated flow (autonat, static mapping)
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	DropEthernetShort:   "ethernet-short",
	DropNotForUs:        "not-for-us",
	DropOwnFrame:        "own-frame",
	DropVLAN:            "vlan",
	DropEtherType:       "ethertype",
	DropIPv4Header:      "ipv4-header",
	DropIPv4Checksum:    "ipv4-checksum",
	DropIPv4Source:      "ipv4-source",
	DropIPv6Header:      "ipv6-header",
	DropIPv6Source:      "ipv6-source",
	DropTTLExceeded:     "ttl-exceeded",
	DropNoRoute:         "no-route",
	DropNeighbour:       "neighbour",
	DropTooBig:          "too-big",
	DropFragment:        "fragment",
	DropLocalUnhandled:  "local-unhandled",
	DropLinkLocal:       "link-local",
	DropMulticast:       "multicast",
	DropICMPMalformed:   "icmp-malformed",
	DropTxError:         "tx-error",
	DropLBNoFlow:        "lb-no-flow",
	DropLBNoServer:      "lb-no-server",
	DropLBNoProxyPort:   "lb-no-proxy-port",
	DropLBTableFull:     "lb-table-full",
	DropLBRewrite:       "lb-rewrite",
	DropLBTupleInUse:    "lb-tuple-in-use",
	DropLinkBroadcast:   "link-broadcast",
	DropBroadcast:       "broadcast",
	DropDirectedBcast:   "directed-broadcast",
	DropIPv4Options:     "ipv4-options",
	DropSourceRoute:     "source-route",
	DropIPv6Routing:     "ipv6-routing-header",
	DropReassembly:      "reassembly",
	DropLBSourceLimit:   "lb-source-limit",
	DropLBProxyPending:  "lb-proxy-pending",
	DropLBNewFlowBudget: "lb-new-flow-budget",
	DropLBOverloaded:    "lb-overloaded",
	DropTunnel:          "tunnel",
	DropTunnelICMP:      "tunnel-icmp",
	DropNATNoPort:       "nat-no-port",
	DropNATNoFlow:       "nat-no-flow",
}

func (d DropReason) String() string {
	if d < numDropReasons {
		return dropReasonNames[d]
	}
	return "unknown"
}

// PortCounters are the router's counters of one port, summed over its receive loop.
type PortCounters struct {
	RxFrames   atomic.Uint64
	RxBytes    atomic.Uint64
	Forwarded  atomic.Uint64 // frames routed out of some port
	Local      atomic.Uint64 // frames for the router itself (ARP, NDP, echo, ...)
	ICMPErrors atomic.Uint64 // ICMP errors generated for frames received here
	ICMPLimit  atomic.Uint64 // ICMP errors suppressed by the rate limit
	Drops      [numDropReasons]atomic.Uint64
}

// batchCounters accumulates a batch's counts without atomics; flush adds them to a
// PortCounters once per batch.
type batchCounters struct {
	rxFrames, rxBytes, forwarded, local, icmpErrors, icmpLimit uint64
	drops                                                      [numDropReasons]uint64
	anyDrop                                                    bool
}

func (b *batchCounters) drop(r DropReason) {
	b.drops[r]++
	b.anyDrop = true
}

func (b *batchCounters) flush(c *PortCounters) {
	c.RxFrames.Add(b.rxFrames)
	c.RxBytes.Add(b.rxBytes)
	if b.forwarded != 0 {
		c.Forwarded.Add(b.forwarded)
	}
	if b.local != 0 {
		c.Local.Add(b.local)
	}
	if b.icmpErrors != 0 {
		c.ICMPErrors.Add(b.icmpErrors)
	}
	if b.icmpLimit != 0 {
		c.ICMPLimit.Add(b.icmpLimit)
	}
	if b.anyDrop {
		for i, n := range b.drops {
			if n != 0 {
				c.Drops[i].Add(n)
			}
		}
	}
	*b = batchCounters{}
}
