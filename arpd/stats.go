package arpd

import "sync/atomic"

// DropReason says why a received frame or a frame handed to Enqueue was dropped.
type DropReason uint8

// Drop reasons, counted in Stats.Drops.
const (
	DropShort            DropReason = iota // frame shorter than its headers
	DropEtherType                          // not ARP (HandleARP) or not IPv6 (HandleNDP)
	DropARPFormat                          // ARP hardware/protocol type or lengths not Ethernet/IPv4
	DropARPOpcode                          // ARP opcode neither request nor reply
	DropBadSenderMAC                       // sender hardware address multicast, broadcast or zero
	DropBadSenderIP                        // sender address multicast, broadcast, loopback or unspecified where not allowed
	DropOwnAddress                         // a neighbour claims one of our addresses (conflict)
	DropOffLink                            // sender not in any of the port's prefixes
	DropNotOurs                            // target not one of our addresses (normal traffic on a shared link)
	DropIPv6Header                         // bad version or payload length
	DropNotICMPv6                          // next header is not ICMPv6 (extension headers are not accepted)
	DropHopLimit                           // NDP hop limit is not 255 (RFC 4861 §7.1)
	DropChecksum                           // ICMPv6 checksum wrong
	DropNDPCode                            // ICMPv6 code not 0
	DropNDPFormat                          // NS/NA shorter than its fixed part or a malformed option
	DropTargetMulticast                    // NS/NA target is multicast
	DropDADFormat                          // DAD NS not to a solicited-node group, or with a source link-layer option
	DropNASolicitedMcast                   // NA to a multicast destination with the S flag
	DropNoEntry                            // NA or ARP reply for an address not in the table
	DropTableFull                          // no room for a new entry
	DropRouterDiscovery                    // RS, RA or redirect: not handled by arpd
	DropICMPv6Other                        // ICMPv6 other than NDP handed to HandleNDP
	DropBadNextHop                         // Enqueue with an invalid or unusable next hop
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropShort:            "short",
	DropEtherType:        "ethertype",
	DropARPFormat:        "arp-format",
	DropARPOpcode:        "arp-opcode",
	DropBadSenderMAC:     "bad-sender-mac",
	DropBadSenderIP:      "bad-sender-ip",
	DropOwnAddress:       "own-address",
	DropOffLink:          "off-link",
	DropNotOurs:          "not-ours",
	DropIPv6Header:       "ipv6-header",
	DropNotICMPv6:        "not-icmpv6",
	DropHopLimit:         "hop-limit",
	DropChecksum:         "checksum",
	DropNDPCode:          "ndp-code",
	DropNDPFormat:        "ndp-format",
	DropTargetMulticast:  "target-multicast",
	DropDADFormat:        "dad-format",
	DropNASolicitedMcast: "na-solicited-multicast",
	DropNoEntry:          "no-entry",
	DropTableFull:        "table-full",
	DropRouterDiscovery:  "router-discovery",
	DropICMPv6Other:      "icmpv6-other",
	DropBadNextHop:       "bad-next-hop",
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Stats are a port's neighbour counters since New.
type Stats struct {
	ARPRequestsIn  uint64 // valid ARP requests received
	ARPRepliesIn   uint64 // valid ARP replies received
	ARPRequestsOut uint64 // ARP requests sent (resolution, probes, gratuitous)
	ARPRepliesOut  uint64 // ARP replies sent
	NSIn           uint64 // valid neighbour solicitations received
	NAIn           uint64 // valid neighbour advertisements received
	NSOut          uint64 // neighbour solicitations sent
	NAOut          uint64 // neighbour advertisements sent (solicited and unsolicited)

	Queued             uint64 // frames queued waiting for resolution
	Released           uint64 // queued frames sent after resolution
	QueueDrops         uint64 // queued frames dropped because a queue was full
	ResolutionFailures uint64 // entries that went to FAILED
	Unreachable        uint64 // frames dropped because their next hop failed
	Conflicts          uint64 // frames from a neighbour using one of our addresses

	// Drops counts dropped frames by DropReason.String().
	Drops map[string]uint64
}

type counters struct {
	arpReqIn, arpRepIn, arpReqOut, arpRepOut atomic.Uint64
	nsIn, naIn, nsOut, naOut                 atomic.Uint64
	queued, released, queueDrops             atomic.Uint64
	failures, unreachable, conflicts         atomic.Uint64
	drops                                    [numDropReasons]atomic.Uint64
}

func (n *Neighbours) drop(r DropReason) { n.st.drops[r].Add(1) }

// Stats returns a copy of the counters.
func (n *Neighbours) Stats() Stats {
	c := &n.st
	s := Stats{
		ARPRequestsIn:      c.arpReqIn.Load(),
		ARPRepliesIn:       c.arpRepIn.Load(),
		ARPRequestsOut:     c.arpReqOut.Load(),
		ARPRepliesOut:      c.arpRepOut.Load(),
		NSIn:               c.nsIn.Load(),
		NAIn:               c.naIn.Load(),
		NSOut:              c.nsOut.Load(),
		NAOut:              c.naOut.Load(),
		Queued:             c.queued.Load(),
		Released:           c.released.Load(),
		QueueDrops:         c.queueDrops.Load(),
		ResolutionFailures: c.failures.Load(),
		Unreachable:        c.unreachable.Load(),
		Conflicts:          c.conflicts.Load(),
		Drops:              make(map[string]uint64),
	}
	for r := range numDropReasons {
		if v := c.drops[r].Load(); v != 0 {
			s.Drops[r.String()] = v
		}
	}
	return s
}
