package conntrack

import (
	"runtime"
	"syscall"
	"unsafe"
)

const hugePage = 2 << 20

// adviseHuge asks the kernel to back [p, p+n), rounded out to whole 2 MiB pages, with
// transparent huge pages (MADV_HUGEPAGE; honoured when THP is "always" or "madvise"). At a
// million flows the table spans ~170 MB touched at random: with 4 KiB pages nearly every
// lookup misses the TLB, and in a VM each miss is a two-level page walk; on the development
// VM huge pages took Lookup at 1M flows from ~500 to ~250 ns in an A/B run. Memory fresh from
// the OS is not touched before the table writes it, so its first faults take huge pages;
// memory the Go heap reuses is left to khugepaged. Rounding out lets consecutive blocks share
// the huge pages that straddle them; the hint only widens THP to neighbouring heap memory.
// Errors (THP disabled) are ignored.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	start := uintptr(p) &^ (hugePage - 1)
	end := (uintptr(p) + n + hugePage - 1) &^ (hugePage - 1)
	// Raw addresses: the range extends past the object, so no Go pointer may be made of it.
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, start, end-start, syscall.MADV_HUGEPAGE)
	runtime.KeepAlive(p)
}
