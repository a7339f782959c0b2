// Package router is ulb's data plane: it reads frames from its ports in batches, answers
// ARP and NDP through arpd, runs the balancer's flows through the connection table,
// delivers what is addressed to the router itself, and routes everything else by
// longest-prefix match, decrementing TTL or hop limit, generating ICMP errors and
// resolving next hops.
//
// # How a frame flows
//
// Each port has one receive loop (Run starts them, each on its own locked OS thread;
// SetPorts, a reload, starts the loop of a port added while Run runs and stops that of
// a removed one, ports.go). What a stage reads of a port that a reload may change (its
// addresses, error sources, broadcast addresses, MTU, options) is one immutable
// portState behind an atomic.Pointer (routerPort.state), and the ports are a portTable
// whose indexes never change (a removed port's slot stays, never matched).
// A frame passes these stages, in order:
//
//	loop.run              reads a batch from the port (port.Port.Read), headroom in front;
//	                      an afpacket port with a new-flow ring ([defence] new_flow_ring)
//	                      has had its frames sorted in the kernel, SYNs without ACK to a
//	                      ring of their own that gets a bounded share of each batch
//	                      (AFPacket.readRings)
//	loop.batch            hands each frame to handle, then flushes
//	loop.handle           L2: drops own frames, frames for other MACs (VRRP's virtual
//	                      MACs are ours while master) and VLAN tags; notes a link-layer
//	                      broadcast or multicast (l2mcast: never forwarded, no ICMP
//	                      error about it); dispatches by EtherType
//	  ARP                 → arpd (Neighbours.HandleARP)
//	  loop.ipv4, ipv6     L3: header, length and checksum, sources a wire must not carry;
//	                      IPv6 fragments found (header.IPv6.FragmentHeader), the others
//	                      than the first kept, as a router forwards them;
//	                      NDP → arpd (HandleNDP), VRRP → vrrp (Mux.Receive: the
//	                      port's instances, own or advert_ports link); IPv4
//	                      options checked (loop.options4: parameter problem, source
//	                      routes dropped), an IPv6 routing header with segments left
//	                      for the router answered (loop.routingHeader6); then
//	    loop.masquerade   from the kernel behind the host port: a masquerade flow
//	    loop.balance      TCP and UDP: the connection table (conntrack.Table.Lookup), or
//	                      for a new flow a rule's pick (loop.newFlow) within its client
//	                      prefix's limit (balancer/srclimit); with the SYN proxy on, a
//	                      SYN to a VIP answered with a cookie and an ACK's cookie checked
//	                      (loop.synCookie), the server's handshake finished
//	                      (loop.proxyPending); a new flow no rule takes, autonat or a
//	                      static mapping may translate (loop.natFlow, anat.go: source to
//	                      the outside address and a pool port, or public to private
//	                      address); then forwardFlow
//	    loop.balanceFragment a fragment: the first one balanced as above and its flow's
//	                      rewrite recorded (loop.recordFragment, a bounded table keyed by
//	                      source, destination, protocol and identification); the others
//	                      follow the record, their addresses alone rewritten
//	                      (nat.ApplyAddrs); without a record, routed as usual (to a
//	                      VIP: held by the reassembly until the first fragment comes,
//	                      then sent after it, loop.releaseEarly)
//	    loop.tunnelError  an ICMP error from inside a tunnel about a packet the router
//	                      encapsulated, relayed to the client (its MTU learnt per server)
//	    loop.icmpErrorNAT an ICMP error about a flow, translated for its other end
//	    loop.natEcho      an ICMP echo request or reply of a translated echo flow (by
//	                      identifier), or the request that opens one (loop.natFlow)
//	    fib lookup        the router's own address → loop.local4, local6 (fragments
//	                      first to loop.reassemble4, reassemble6: router/reassembly; echo
//	                      replies, answers to probes, loop.toHostPort, RSTs, port
//	                      unreachable, loop.unknownProtocol); a directed broadcast of an
//	                      attached network → loop.directedBroadcast (dropped unless its
//	                      port forwards them); a link-layer broadcast or multicast →
//	                      dropped; no route → ICMP unreachable; else transit, which,
//	                      leaving by the port it came in by, first earns its sender a
//	                      redirect (loop.redirect4, redirect6; redirect.go):
//	  loop.forward        the one egress stage of every forwarded packet (transit,
//	                      balanced flows, translated ICMP errors, the host port): TTL
//	                      check (time exceeded), MTU check (loop.oversize: fragmentation
//	                      needed, packet too big, or fragment), the flow's rewrite
//	                      (nat.Apply, nat.TranslateICMPError; a SYN-proxied flow's
//	                      sequence translation, loop.adjustSegment), IPv4 Record Route and
//	                      Timestamp (loop.transitOptions4), TTL decrement, then one of
//	    loop.tunnelOut    a tunnel flow's packet: the MTU check was against the path MTU
//	                      to the server less the outer header (loop.oversizeTunnel,
//	                      tunnelPaths); encapsulated IP-in-IP (loop.encapsulate,
//	                      header.EncapsulateIPv4, EncapsulateIPv6), a GSO frame cut into
//	                      its segments first (loop.segmentTunnel), then emitted or its
//	                      outer packet fragmented (loop.sendTunneled)
//	    loop.emit         MACs from the neighbour cache (a miss queues the frame in arpd
//	                      while it resolves), the frame queued on the egress port
//	    loop.fragment4    IPv4 fragments, each in a scratch buffer, each emitted
//	    loop.segment4     a GSO frame cut into its segments (port.SegmentTCP), each
//	                      emitted or fragmented, written at once
//	loop.flush            writes each egress port's frames (port.Port.Write) and adds the
//	                      batch's counters to the port's
//
// Packets the router originates (echo replies, ICMP errors from loop.icmpError, RSTs) go
// out through loop.route: routed and emitted (to an IPv6 link-local address: out of
// the arrival port), never TTL-decremented, fragmented (loop.fragment4, fragment6) when
// larger than the link (a reply to a reassembled request). Outside the loops, Run's
// timer ticks the neighbour caches, expires flows and the reassembly's datagrams
// (Router.reassemblyTimedOut: time exceeded, code 1); arpd sends what it releases or
// refuses (host unreachable) through routerPort.sendOne.
//
// # Fragments
//
// Transit fragments of both families are forwarded as they are (hop limit or TTL
// decremented, too big as any packet: IPv4 ones fragmented again, IPv6 ones refused
// with packet too big); only the destination reassembles (RFC 8200 section 4.5).
// Fragments of balanced flows are not reassembled on the balancer: the first fragment
// carries the ports and picks the flow, the others follow it through fragments.go's
// table for reassembly.DefaultTimeout; a non-first fragment that overtakes its first one
// finds no record: to a VIP it waits in the reassembly and follows its first one when
// that comes (loop.releaseEarly); towards a client it is routed unchanged. Fragments
// addressed to the router itself are reassembled within router/reassembly's bounds, and
// the whole packet is delivered.
//
// Beside the data plane, in the packages whose domain they are, run the VRRP instances'
// timers and tracking (vrrp.Driver), connection sync's transport (ctsync.Syncer: the
// loops queue records with Syncer.Queue and hand it sync datagrams with Syncer.Receive)
// and the health checks' probe client (probe.Client: the loops hand it the answers,
// loop.localTCP, localUDP, probeError; it sends through probeWire). internal/node
// assembles a router and these from a configuration.
package router
