package vrrp

import (
	"net/netip"
	"time"

	"ulb/router/header"
)

// State is the state of a virtual router instance (RFC 9568 section 6.4, with
// keepalived's FAULT).
type State uint8

const (
	// Initialize is the state before Start and after Shutdown.
	Initialize State = iota
	// Backup watches the master's adverts and takes over when they stop.
	Backup
	// Master owns the virtual MAC and addresses and sends adverts.
	Master
	// Fault is entered when tracking reports a failure (or a sync group member did):
	// the instance neither sends nor answers until the failure clears.
	Fault
)

// String returns the state as show-router prints it.
func (s State) String() string {
	switch s {
	case Initialize:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	case Fault:
		return "FAULT"
	}
	return "UNKNOWN"
}

// DropReason says why a received advert was discarded.
type DropReason uint8

// Drop reasons, in the order of the receive checks (RFC 9568 section 7.1, RFC 3768
// section 7.1), then the state machine's own discards.
const (
	DropTTL           DropReason = iota // IPv4 TTL or IPv6 hop limit is not 255
	DropVersion                         // version is not the instance's
	DropType                            // type is not advertisement
	DropLength                          // IP payload shorter or longer than the address count says
	DropCount                           // address count is zero (RFC 9568 erratum 8299)
	DropChecksum                        // bad checksum
	DropVRID                            // no instance with this VRID on the port
	DropOwner                           // this router is the address owner (priority 255)
	DropSelf                            // our own advert, looped back (source is our primary address)
	DropAuthType                        // version 2: authentication type is not 0
	DropInterval                        // version 2: interval differs from ours; version 3: interval 0
	DropAddressList                     // version 2: address list differs, sender not the owner
	DropLowerPriority                   // backup with preempt: lower-priority master ignored
	DropNotRunning                      // instance in Initialize or Fault
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	"ttl", "version", "type", "length", "count", "checksum", "vrid", "owner", "self",
	"auth-type", "interval", "address-list", "lower-priority", "not-running",
}

// String returns the reason's short name, as counters are labelled.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Drops counts discarded adverts by reason.
type Drops [NumDropReasons]uint64

// Total returns the sum over all reasons.
func (d *Drops) Total() uint64 {
	var n uint64
	for _, v := range d {
		n += v
	}
	return n
}

// Counters are an instance's statistics.
type Counters struct {
	AdvertsSent          uint64 // including priority-0 adverts
	AdvertsReceived      uint64 // adverts that passed the receive checks
	PriorityZeroSent     uint64
	PriorityZeroReceived uint64
	// AddressListMismatch counts accepted version 3 adverts (and adverts from the
	// owner) whose address list differs from ours: logged, not dropped.
	AddressListMismatch uint64
	// ChecksumNoPseudoHeader counts accepted version 3 IPv4 adverts whose checksum
	// left out the pseudo-header.
	ChecksumNoPseudoHeader uint64
	Drops                  Drops
	Transitions            uint64
	BecameMaster           uint64
	LastTransition         time.Time
}

// Info is a snapshot of an instance for show-router.
type Info struct {
	Name                string
	VRID                uint8
	Version             uint8
	IPv6                bool
	Priority            uint8 // effective: configured plus tracking adjustment
	BasePriority        uint8 // configured
	Interval            time.Duration
	MasterAdverInterval time.Duration // learned from the master (version 3)
	Preempt             bool
	PreemptDelay        time.Duration
	Accept              bool
	State               State
	Fault               bool // tracking reports a failure (own or via the sync group)
	VirtualMAC          header.MAC
	Primary             netip.Addr
	Addresses           []netip.Addr
	// Master is the current master's primary address: ours when master, the last
	// accepted advert's source when backup, invalid otherwise.
	Master         netip.Addr
	MasterPriority uint8
	SyncGroup      string
	Counters       Counters
	// Links are the per-link counters: [0] the instance's own port, then its extra
	// links (Config.Links), in order.
	Links []LinkCounters
	// LinkPrimaries are the router's addresses on the extra links (Config.Links).
	LinkPrimaries []netip.Addr
}

// LinkCounters count an instance's adverts on one of its links.
type LinkCounters struct {
	// Name is the extra link's Link.Name; "" for the own port.
	Name            string
	AdvertsSent     uint64
	AdvertsReceived uint64 // passed the receive checks
	Drops           uint64 // failed them (by reason in Counters.Drops)
	// LastAdvert is when the last accepted advert came by this link (from the master,
	// or from a rival while master), and LastFrom its source; zero before any.
	LastAdvert time.Time
	LastFrom   netip.Addr
}
