package arpd

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"ulb/router/header"
)

// fuzzNeighbours returns a table with an INCOMPLETE, a REACHABLE and a STALE entry of
// each family and a virtual address, so that fuzzed frames reach every update path.
func fuzzNeighbours(f *testing.F) *harness {
	h := newHarness(f, nil)
	h.n.AddVirtual(netip.MustParseAddr("198.51.100.100"), vrrpMAC)
	for _, a := range []netip.Addr{peer4, peer6} {
		h.n.Enqueue(a, dataFrame(1, header.EtherTypeIPv4, 0), off)
	}
	h.n.Enqueue(other4, dataFrame(1, header.EtherTypeIPv4, 0), off)
	h.n.HandleARP(arpFrame(f, layers.ARPReply, portMAC, peerMAC, other4, portMAC, own4.Addr()))
	h.n.AddStatic(other6, peer2MAC)
	h.out.take()
	return h
}

// The seed corpus is in testdata/fuzz; these two are built here so that they follow any
// change of the test addresses.
func addARPSeeds(f *testing.F) {
	f.Add(arpFrame(f, layers.ARPRequest, header.BroadcastMAC, peerMAC, peer4, header.MAC{}, own4.Addr()))
	f.Add(arpFrame(f, layers.ARPReply, portMAC, peerMAC, peer4, portMAC, own4.Addr()))
}

func addNDPSeeds(f *testing.F) {
	target := own6.Addr()
	f.Add(nsFrame(f, peerMAC, header.SolicitedNodeMAC(target), peer6, header.SolicitedNodeAddr(target), target, peerMAC, 255), true)
	f.Add(naFrame(f, peerMAC, portMAC, peer6, own6.Addr(), peer6, header.NDPNASolicitedFlag|header.NDPNAOverrideFlag, peerMAC), false)
}

// check runs the invariants after a fuzzed frame: no panic (implicit), every frame sent
// is a well-formed ARP or NDP frame that gopacket decodes, and Lookup still works.
func check(t *testing.T, h *harness) {
	for _, s := range h.out.take() {
		if header.Ethernet(s.frame).EtherType() == header.EtherTypeARP {
			gotARP(t, s.frame)
		} else if header.Ethernet(s.frame).EtherType() == header.EtherTypeIPv6 {
			gotNDP(t, s.frame)
		} else {
			// Released data frames carry the type they were queued with.
			if header.Ethernet(s.frame).EtherType() != header.EtherTypeIPv4 {
				t.Fatalf("sent an unexpected frame %x", s.frame)
			}
		}
	}
	h.n.Lookup(peer4)
	h.n.Tick()
}

func FuzzHandleARP(f *testing.F) {
	addARPSeeds(f)
	h := fuzzNeighbours(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		h.n.HandleARP(frame)
		check(t, h)
	})
}

// FuzzHandleNDP also takes fix: when set, a frame that holds an IPv6 header and an
// ICMPv6 header gets its checksum corrected first, so mutations reach the NS and NA
// processing behind the checksum gate.
func FuzzHandleNDP(f *testing.F) {
	addNDPSeeds(f)
	h := fuzzNeighbours(f)
	f.Fuzz(func(t *testing.T, frame []byte, fix bool) {
		if fix {
			frame = append([]byte(nil), frame...)
			fixFuzzedChecksum(frame)
		}
		h.n.HandleNDP(frame)
		check(t, h)
	})
}

func fixFuzzedChecksum(frame []byte) {
	eth := header.Ethernet(frame)
	if !eth.IsValid() || eth.HeaderLen() != header.EthernetMinimumSize {
		return
	}
	ip := header.IPv6(eth.Payload())
	if !ip.IsValid() || ip.PayloadLength() < header.ICMPv6MinimumSize {
		return
	}
	fixICMPv6(frame)
}
