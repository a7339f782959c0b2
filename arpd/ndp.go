package arpd

import (
	"net/netip"

	"ulb/router/header"
)

// HandleNDP processes one received Ethernet frame carrying an IPv6 neighbour
// solicitation or advertisement (RFC 4861 §7.1 validation, §7.2.3 and §7.2.5
// processing). It answers solicitations for our addresses with a solicited NA, answers
// duplicate address detection probes for them to all-nodes, learns from source
// link-layer options and updates entries from advertisements. Router solicitations and
// advertisements and redirects are counted and ignored. frame is not kept.
func (n *Neighbours) HandleNDP(frame []byte) {
	eth := header.Ethernet(frame)
	if !eth.IsValid() {
		n.drop(DropShort)
		return
	}
	if _, tagged := eth.VLAN(); tagged || eth.EtherType() != header.EtherTypeIPv6 {
		n.drop(DropEtherType)
		return
	}
	ip := header.IPv6(eth.Payload())
	if len(ip) < header.IPv6MinimumSize {
		n.drop(DropShort)
		return
	}
	if !ip.IsValid() {
		n.drop(DropIPv6Header)
		return
	}
	if ip.NextHeader() != header.ProtocolICMPv6 {
		n.drop(DropNotICMPv6)
		return
	}
	msg := header.ICMPv6(ip.Payload())
	if !msg.IsValid() {
		n.drop(DropShort)
		return
	}
	switch msg.Type() {
	case header.ICMPv6NeighborSolicit, header.ICMPv6NeighborAdvert:
	case header.ICMPv6RouterSolicit, header.ICMPv6RouterAdvert, header.ICMPv6Redirect:
		n.drop(DropRouterDiscovery)
		return
	default:
		n.drop(DropICMPv6Other)
		return
	}
	if ip.HopLimit() != header.NDPHopLimit {
		n.drop(DropHopLimit)
		return
	}
	src, dst := ip.SourceAddr(), ip.DestinationAddr()
	if !header.IsTransportChecksumValid(header.ProtocolICMPv6, src, dst, msg) {
		n.drop(DropChecksum)
		return
	}
	if msg.Code() != 0 {
		n.drop(DropNDPCode)
		return
	}
	if msg.Type() == header.ICMPv6NeighborSolicit {
		n.handleNS(eth, src, dst, header.NDPNeighborSolicit(msg))
	} else {
		n.handleNA(dst, header.NDPNeighborAdvert(msg))
	}
}

func (n *Neighbours) handleNS(eth header.Ethernet, src, dst netip.Addr, ns header.NDPNeighborSolicit) {
	if !ns.IsValid() || ns.Options().Validate() != nil {
		n.drop(DropNDPFormat)
		return
	}
	target := ns.TargetAddress()
	if target.IsMulticast() {
		n.drop(DropTargetMulticast)
		return
	}
	slla, hasSLLA := ns.Options().SourceLinkLayerAddress()
	dad := src.IsUnspecified()
	if dad && (dst != header.SolicitedNodeAddr(target) || hasSLLA) {
		n.drop(DropDADFormat)
		return
	}
	if !dad && !usableUnicast(src) {
		n.drop(DropBadSenderIP)
		return
	}
	if hasSLLA && (slla.IsMulticast() || slla.IsZero()) {
		n.drop(DropBadSenderMAC)
		return
	}
	n.st.nsIn.Add(1)
	as := n.addrs.Load()
	mac, ours := as.own[target]
	if !ours {
		n.drop(DropNotOurs)
		return
	}
	if dst.IsMulticast() && dst != header.SolicitedNodeAddr(target) {
		n.drop(DropNotOurs)
		return
	}
	if dad {
		n.sendNA(mac, target, allNodes, header.IPv6MulticastMAC(allNodes), false)
		return
	}
	if _, own := as.own[src]; own {
		n.conflict(src, eth.Source())
		return
	}
	if !as.onLink(src) {
		n.drop(DropOffLink)
		return
	}
	if hasSLLA {
		var out outList
		n.mu.Lock()
		n.learnLocked(n.cfg.Now(), src, slla, true, false, &out)
		n.mu.Unlock()
		n.flush(&out)
	} else {
		slla = eth.Source()
	}
	n.sendNA(mac, target, src, slla, true)
}

func (n *Neighbours) handleNA(dst netip.Addr, na header.NDPNeighborAdvert) {
	if !na.IsValid() || na.Options().Validate() != nil {
		n.drop(DropNDPFormat)
		return
	}
	target := na.TargetAddress()
	if target.IsMulticast() {
		n.drop(DropTargetMulticast)
		return
	}
	if dst.IsMulticast() && na.SolicitedFlag() {
		n.drop(DropNASolicitedMcast)
		return
	}
	tlla, hasTLLA := na.Options().TargetLinkLayerAddress()
	if hasTLLA && (tlla.IsMulticast() || tlla.IsZero()) {
		n.drop(DropBadSenderMAC)
		return
	}
	n.st.naIn.Add(1)
	as := n.addrs.Load()
	if _, own := as.own[target]; own {
		n.conflict(target, tlla)
		return
	}
	var out outList
	n.mu.Lock()
	e := n.entries[target]
	if e == nil {
		n.mu.Unlock()
		n.drop(DropNoEntry)
		return
	}
	n.advertLocked(e, hasTLLA, tlla, na.Flags(), &out)
	n.mu.Unlock()
	n.flush(&out)
}

// advertLocked applies a neighbour advertisement to e (RFC 4861 §7.2.5).
func (n *Neighbours) advertLocked(e *entry, hasTLLA bool, tlla header.MAC, flags uint8, out *outList) {
	solicited := flags&header.NDPNASolicitedFlag != 0
	override := flags&header.NDPNAOverrideFlag != 0
	now := n.cfg.Now()
	switch st := e.State(); st {
	case StatePermanent:
		return
	case StateIncomplete, StateFailed:
		if !hasTLLA {
			return
		}
		e.mac = tlla
		e.updated = now
		e.probes = 0
		if solicited {
			e.setState(StateReachable)
		} else {
			e.setState(StateStale)
		}
		n.releaseLocked(e, out)
	default:
		differs := hasTLLA && tlla != e.mac
		if !override && differs {
			if st == StateReachable {
				e.setState(StateStale)
				e.updated = now
			}
			return
		}
		if differs {
			e.mac = tlla
		}
		switch {
		case solicited:
			e.setState(StateReachable)
			e.updated = now
		case differs:
			e.setState(StateStale)
			e.updated = now
		}
	}
	e.isRouter = flags&header.NDPNARouterFlag != 0
}

// sendNA sends a neighbour advertisement for our address target with R=1 and O=1.
func (n *Neighbours) sendNA(mac header.MAC, target, dst netip.Addr, ethDst header.MAC, solicited bool) {
	var out outList
	out.add(n.buildNA(mac, target, dst, ethDst, target, solicited))
	n.flush(&out)
}

// buildNA builds a neighbour advertisement from mac/src to ethDst/dst for target, with
// R=1 (a router), O=1, S as given and a target link-layer option holding mac.
func (n *Neighbours) buildNA(mac header.MAC, src, dst netip.Addr, ethDst header.MAC, target netip.Addr, solicited bool) *frameBuf {
	flags := header.NDPNARouterFlag | header.NDPNAOverrideFlag
	if solicited {
		flags |= header.NDPNASolicitedFlag
	}
	f := getBuf()
	b := f.b[header.Headroom:]
	header.EncodeEthernet(b, ethDst, mac, header.EtherTypeIPv6)
	l := header.BuildNDPNeighborAdvert(b[header.EthernetMinimumSize:], src, dst, target, flags, mac)
	if l == 0 {
		putBuf(f)
		return nil
	}
	f.b = f.b[:header.Headroom+header.EthernetMinimumSize+l]
	n.st.naOut.Add(1)
	return f
}

// buildNS builds a neighbour solicitation from src for target, with a source
// link-layer option holding the port's MAC: to its solicited-node group, or to target
// at mac when unicast.
func (n *Neighbours) buildNS(src, target netip.Addr, mac header.MAC, unicast bool) *frameBuf {
	dst, ethDst := header.SolicitedNodeAddr(target), header.SolicitedNodeMAC(target)
	if unicast {
		dst, ethDst = target, mac
	}
	f := getBuf()
	b := f.b[header.Headroom:]
	header.EncodeEthernet(b, ethDst, n.cfg.MAC, header.EtherTypeIPv6)
	l := header.BuildNDPNeighborSolicit(b[header.EthernetMinimumSize:], src, dst, target, n.cfg.MAC)
	if l == 0 {
		putBuf(f)
		return nil
	}
	f.b = f.b[:header.Headroom+header.EthernetMinimumSize+l]
	n.st.nsOut.Add(1)
	return f
}
