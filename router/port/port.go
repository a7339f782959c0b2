// Package port is the batch-shaped frame I/O the router runs on: AF_PACKET and TUN
// ports for real NICs, and an in-memory pair (package porttest) for tests.
package port

import (
	"encoding/binary"
	"errors"
	"net"

	"ulb/router/header"
)

// Headroom is the number of bytes a caller leaves in front of every frame it hands to
// Read or Write (the offset argument must be at least Headroom). A port uses the last
// VnetHdrLen bytes of it for the frame's offload metadata (see VnetHdr); the rest lets
// the router prepend headers in place.
const Headroom = header.Headroom

// MaxFrame is the largest frame a port reads: a GSO frame of up to 64 KiB of payload
// with its headers.
const MaxFrame = header.MaxFrame

// BufSize is the size of a buffer that holds Headroom plus the largest frame.
const BufSize = header.BufSize

// ErrClosed is returned by Read and Write after Close.
var ErrClosed = errors.New("port closed")

// Port reads and writes Ethernet frames in batches.
//
// Frame i of a batch is bufs[i][offset:offset+sizes[i]] on Read and bufs[i][offset:] on
// Write. The VnetHdrLen bytes just before offset hold the frame's virtio-net header:
// Read always fills it (all zero when the frame is complete and not GSO), and Write
// honours it, handing it to the kernel when the port can, else completing the checksum
// and segmenting in software.
//
// A layer-3 port (TUN) has no Ethernet on the wire: Read synthesizes an Ethernet header
// (destination = HardwareAddr, EtherType from the IP version) and Write strips it, so the
// router sees Ethernet frames on every port.
type Port interface {
	Name() string
	// HardwareAddr is the port's MAC address (a locally administered one for a layer-3
	// port).
	HardwareAddr() net.HardwareAddr
	// MTU is the largest IP packet the link carries, in bytes.
	MTU() int
	// Layer3 reports whether the link is point-to-point with no Ethernet (TUN): no
	// neighbour resolution happens on it.
	Layer3() bool
	// BatchSize is the largest useful len(bufs) for Read and Write.
	BatchSize() int
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	Write(bufs [][]byte, offset int) (n int, err error)
	Close() error
}

// UnicastFilter is implemented by ports that can receive frames for extra unicast MAC
// addresses (VRRP's virtual MACs) without promiscuous mode.
type UnicastFilter interface {
	AddUnicast(mac net.HardwareAddr) error
	RemoveUnicast(mac net.HardwareAddr) error
}

// MulticastFilter is implemented by ports that can join Ethernet multicast groups (the
// IPv6 solicited-node and all-nodes groups, the VRRP group).
type MulticastFilter interface {
	AddMulticast(mac net.HardwareAddr) error
	RemoveMulticast(mac net.HardwareAddr) error
}

// VnetHdrLen is the size of struct virtio_net_hdr (without num_buffers).
const VnetHdrLen = header.VnetHdrLen

// Flags of VnetHdr.Flags.
const (
	VnetHdrFNeedsCsum = 1 // the L4 checksum must be completed: csum_start/csum_offset are valid
	VnetHdrFDataValid = 2 // the checksum is known to be good
)

// GSO types of VnetHdr.GSOType.
const (
	VnetGSONone  = 0
	VnetGSOTCPv4 = 1
	VnetGSOUDP   = 3
	VnetGSOTCPv6 = 4
	VnetGSOUDPL4 = 5
	VnetGSOECN   = 0x80
)

// VnetHdr is a view of a virtio_net_hdr, in host byte order (little-endian on every
// platform Linux runs virtio on as used here):
//
//	0      1      2        4        6           8            10
//	+------+------+--------+--------+-----------+------------+
//	|flags |gso   |hdr_len |gso_size|csum_start |csum_offset |
//	+------+------+--------+--------+-----------+------------+
type VnetHdr []byte

func (h VnetHdr) Flags() uint8      { return h[0] }
func (h VnetHdr) GSOType() uint8    { return h[1] }
func (h VnetHdr) HdrLen() uint16    { return binary.LittleEndian.Uint16(h[2:]) }
func (h VnetHdr) GSOSize() uint16   { return binary.LittleEndian.Uint16(h[4:]) }
func (h VnetHdr) CsumStart() uint16 { return binary.LittleEndian.Uint16(h[6:]) }
func (h VnetHdr) CsumOffset() uint16 {
	return binary.LittleEndian.Uint16(h[8:])
}

func (h VnetHdr) SetFlags(v uint8)       { h[0] = v }
func (h VnetHdr) SetGSOType(v uint8)     { h[1] = v }
func (h VnetHdr) SetHdrLen(v uint16)     { binary.LittleEndian.PutUint16(h[2:], v) }
func (h VnetHdr) SetGSOSize(v uint16)    { binary.LittleEndian.PutUint16(h[4:], v) }
func (h VnetHdr) SetCsumStart(v uint16)  { binary.LittleEndian.PutUint16(h[6:], v) }
func (h VnetHdr) SetCsumOffset(v uint16) { binary.LittleEndian.PutUint16(h[8:], v) }
func (h VnetHdr) Clear()                 { clear(h[:VnetHdrLen]) }
func (h VnetHdr) IsGSO() bool            { return h[1]&^VnetGSOECN != VnetGSONone }
func (h VnetHdr) NeedsCsum() bool        { return h[0]&VnetHdrFNeedsCsum != 0 }

// Hdr returns the virtio-net header of the frame at buf[offset:].
func Hdr(buf []byte, offset int) VnetHdr { return VnetHdr(buf[offset-VnetHdrLen : offset]) }
