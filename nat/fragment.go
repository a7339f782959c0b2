package nat

import "ulb/router/header"

// ApplyAddrs rewrites only the addresses of the IPv4 or IPv6 packet ip as r says (its
// ports are ignored), updating the IPv4 header checksum. It is the rewrite of a
// fragment other than the first of a flow's datagram: such a fragment holds no
// transport header, and the transport checksum, which covers the whole datagram and its
// pseudo-header, lives in the first fragment, where Apply updated it for the same
// address change (RFC 1624, RFC 791 section 3.2, RFC 8200 section 4.5). It reports false
// and changes nothing for a malformed IP header or an address of the other family.
func ApplyAddrs(ip []byte, r Rewrite) bool {
	if len(ip) == 0 {
		return false
	}
	switch ip[0] >> 4 {
	case 4:
		v := header.IPv4(ip)
		if !v.IsValid() || !fitsFamily(r.Src, true) || !fitsFamily(r.Dst, true) {
			return false
		}
		if r.Src.IsValid() {
			v.SetSourceAddrWithChecksumUpdate(r.Src.Unmap())
		}
		if r.Dst.IsValid() {
			v.SetDestinationAddrWithChecksumUpdate(r.Dst.Unmap())
		}
		return true
	case 6:
		v := header.IPv6(ip)
		if !v.IsValid() || !fitsFamily(r.Src, false) || !fitsFamily(r.Dst, false) {
			return false
		}
		if r.Src.IsValid() {
			v.SetSourceAddr(r.Src)
		}
		if r.Dst.IsValid() {
			v.SetDestinationAddr(r.Dst)
		}
		return true
	}
	return false
}
