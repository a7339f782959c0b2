//go:build !linux

package hostcheck

import (
	"errors"
	"fmt"
)

// Check is implemented on Linux only, where ulbd's AF_PACKET ports run.
func Check(devices []string, opt Options) ([]Finding, error) {
	return nil, fmt.Errorf("hostcheck: %w", errors.ErrUnsupported)
}

// SetIPv6 is implemented on Linux only.
func SetIPv6(dev string, on bool) error {
	return fmt.Errorf("hostcheck: %w", errors.ErrUnsupported)
}
