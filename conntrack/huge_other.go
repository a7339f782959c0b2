//go:build !linux

package conntrack

import "unsafe"

// adviseHuge does nothing where transparent huge pages do not exist.
func adviseHuge(unsafe.Pointer, uintptr) {}
