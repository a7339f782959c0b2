package arpd

import (
	"net/netip"
	"time"

	"ulb/router/header"
)

var ipv4Unspecified = netip.IPv4Unspecified()

// HandleARP processes one received Ethernet frame of EtherType ARP (RFC 826): it learns
// the sender as RFC 826 says (an existing entry is updated from any ARP; a new one is
// created only from a request for one of our addresses, replies completing our own
// requests through their INCOMPLETE entries) and answers requests for our addresses.
// Malformed frames are dropped and counted by reason. frame is not kept.
func (n *Neighbours) HandleARP(frame []byte) {
	eth := header.Ethernet(frame)
	if !eth.IsValid() {
		n.drop(DropShort)
		return
	}
	if _, tagged := eth.VLAN(); tagged || eth.EtherType() != header.EtherTypeARP {
		n.drop(DropEtherType)
		return
	}
	a := header.ARP(eth.Payload())
	if len(a) < header.ARPSize {
		n.drop(DropShort)
		return
	}
	if !a.IsValid() {
		n.drop(DropARPFormat)
		return
	}
	op := a.Op()
	if op != header.ARPRequest && op != header.ARPReply {
		n.drop(DropARPOpcode)
		return
	}
	sha := a.SenderMAC()
	if sha.IsMulticast() || sha.IsZero() {
		n.drop(DropBadSenderMAC)
		return
	}
	if op == header.ARPRequest {
		n.st.arpReqIn.Add(1)
	} else {
		n.st.arpRepIn.Add(1)
	}
	spa, tpa := a.SenderIP(), a.TargetIP()
	as := n.addrs.Load()
	answerMAC, ours := as.own[tpa]

	if spa == ipv4Unspecified {
		// An ARP probe (RFC 5227 §2.1): answer it so the prober sees the address is
		// taken, learn nothing.
		if op == header.ARPRequest && ours {
			n.reply(answerMAC, tpa, sha, spa)
			return
		}
		n.drop(DropBadSenderIP)
		return
	}
	if !usableUnicast(spa) {
		n.drop(DropBadSenderIP)
		return
	}
	if _, own := as.own[spa]; own {
		n.conflict(spa, sha)
		return
	}
	if !as.onLink(spa) {
		n.drop(DropOffLink)
		return
	}

	// A reply sent to us (not broadcast) confirms reachability; a request, a broadcast
	// reply or a gratuitous ARP only tells the address (STALE).
	confirm := op == header.ARPReply && !eth.Destination().IsMulticast()
	var out outList
	n.mu.Lock()
	known := n.learnLocked(n.cfg.Now(), spa, sha, ours && op == header.ARPRequest, confirm, &out)
	n.mu.Unlock()
	n.flush(&out)

	switch {
	case op == header.ARPRequest && ours:
		n.reply(answerMAC, tpa, sha, spa)
	case op == header.ARPRequest:
		n.drop(DropNotOurs)
	case !known:
		n.drop(DropNoEntry)
	}
}

// reply sends an ARP reply from mac/spa to tha/tpa.
func (n *Neighbours) reply(mac header.MAC, spa netip.Addr, tha header.MAC, tpa netip.Addr) {
	var out outList
	out.add(n.buildARP(header.ARPReply, tha, mac, spa, tha, tpa))
	n.st.arpRepOut.Add(1)
	n.flush(&out)
}

// conflict counts and logs a neighbour that uses one of our addresses.
func (n *Neighbours) conflict(addr netip.Addr, mac header.MAC) {
	n.st.conflicts.Add(1)
	n.drop(DropOwnAddress)
	now := n.cfg.Now().UnixNano()
	last := n.lastConflictLog.Load()
	if now-last >= int64(conflictLogInterval) && n.lastConflictLog.CompareAndSwap(last, now) {
		n.cfg.Logger.Warn("address conflict: a neighbour uses our address", "address", addr, "mac", mac,
			"conflicts", n.st.conflicts.Load())
	}
}

// conflictLogInterval is the least time between two address-conflict log lines.
const conflictLogInterval = 10 * time.Second

// learnLocked applies a link-layer address heard from ip in an ARP packet or an NS
// source link-layer option. An existing entry takes the new MAC and becomes STALE (or
// REACHABLE when confirm) if the MAC changed; an unchanged MAC leaves its state unless
// confirm. An INCOMPLETE entry resolves and its queue goes to out. A missing entry is
// created when create is set. It reports whether ip has an entry afterwards.
func (n *Neighbours) learnLocked(now time.Time, ip netip.Addr, mac header.MAC, create, confirm bool, out *outList) bool {
	next := StateStale
	if confirm {
		next = StateReachable
	}
	e := n.entries[ip]
	if e == nil {
		if !create {
			return false
		}
		if !n.roomLocked() {
			n.drop(DropTableFull)
			return false
		}
		e = &entry{addr: ip, mac: mac, updated: now}
		e.setState(next)
		n.entries[ip] = e
		return true
	}
	switch e.State() {
	case StatePermanent:
	case StateIncomplete, StateFailed:
		e.mac = mac
		e.updated = now
		e.probes = 0
		e.setState(next)
		n.releaseLocked(e, out)
	default:
		if e.mac != mac || confirm {
			e.mac = mac
			e.updated = now
			e.setState(next)
		}
	}
	return true
}

// buildARP builds an ARP packet in an Ethernet frame from src to ethDst.
func (n *Neighbours) buildARP(op uint16, ethDst, src header.MAC, spa netip.Addr, tha header.MAC, tpa netip.Addr) *frameBuf {
	f := getBuf()
	b := f.b[header.Headroom:]
	header.EncodeEthernet(b, ethDst, src, header.EtherTypeARP)
	if header.BuildARP(b[header.EthernetMinimumSize:], op, src, spa, tha, tpa) == 0 {
		putBuf(f)
		return nil
	}
	f.b = f.b[:header.Headroom+header.EthernetMinimumSize+header.ARPSize]
	return f
}

// buildGratuitousARP builds a gratuitous ARP request (sender = target = a) to broadcast.
func (n *Neighbours) buildGratuitousARP(a netip.Addr, mac header.MAC) *frameBuf {
	n.st.arpReqOut.Add(1)
	return n.buildARP(header.ARPRequest, header.BroadcastMAC, mac, a, header.MAC{}, a)
}

// solicit builds a solicitation for e: broadcast ARP or an NS to the solicited-node
// group, or, when unicast (PROBE), one sent to e's cached MAC.
func (n *Neighbours) solicit(as *addrSet, e *entry, unicast bool) *frameBuf {
	src, ok := as.source(e.addr)
	if e.addr.Is6() {
		return n.buildNS(src, e.addr, e.mac, unicast)
	}
	if !ok {
		src = ipv4Unspecified
	}
	n.st.arpReqOut.Add(1)
	if unicast {
		return n.buildARP(header.ARPRequest, e.mac, n.cfg.MAC, src, e.mac, e.addr)
	}
	return n.buildARP(header.ARPRequest, header.BroadcastMAC, n.cfg.MAC, src, header.MAC{}, e.addr)
}
