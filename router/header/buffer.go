package header

// The layout of the frame buffers the router, its ports and arpd share (router/port
// re-exports these for its callers).
const (
	// Headroom is the number of bytes left in front of every frame in a buffer: its last
	// VnetHdrLen bytes hold the frame's virtio-net header (offload metadata), the rest
	// lets headers be prepended in place.
	Headroom = 64
	// VnetHdrLen is the size of struct virtio_net_hdr (without num_buffers).
	VnetHdrLen = 10
	// MaxFrame is the largest frame a port reads: a GSO frame of up to 64 KiB of
	// payload with its headers.
	MaxFrame = 65535 + 14 + 4
	// BufSize is the size of a buffer that holds Headroom plus the largest frame.
	BufSize = Headroom + MaxFrame
)
