package vrrp

import "golang.org/x/sys/unix"

// raiseThreadPriority gives the calling OS thread nice -10.
func raiseThreadPriority() error {
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -10)
}
