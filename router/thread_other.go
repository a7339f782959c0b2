//go:build !linux

package router

import "errors"

// tuneThread is Linux's only.
func tuneThread(nice, cpu int) (restore func(), err error) {
	if nice != 0 || cpu >= 0 {
		return func() {}, errors.New("thread priority and CPU affinity need Linux")
	}
	return func() {}, nil
}
