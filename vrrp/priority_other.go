//go:build !linux

package vrrp

// raiseThreadPriority is a no-op where threads have no priority of their own.
func raiseThreadPriority() error { return nil }
