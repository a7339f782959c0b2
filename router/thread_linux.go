package router

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// tuneThread gives the calling OS thread (locked to its goroutine) the niceness nice,
// unless 0, and pins it to cpu, unless negative. restore gives the thread back its
// niceness and CPUs, before it is unlocked: a thread is not always ended with its
// goroutine (the main thread never is), and no other goroutine should inherit the tuning.
func tuneThread(nice, cpu int) (restore func(), err error) {
	tid := unix.Gettid()
	var undo []func()
	restore = func() {
		for _, f := range undo {
			f()
		}
	}
	if nice != 0 {
		// getpriority(2) returns 20 - nice.
		prev, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			return restore, fmt.Errorf("nice %d: %w", nice, err)
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
			return restore, fmt.Errorf("nice %d: %w", nice, err)
		}
		undo = append(undo, func() { unix.Setpriority(unix.PRIO_PROCESS, tid, 20-prev) })
	}
	if cpu >= 0 {
		var prev, set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &prev); err != nil {
			return restore, fmt.Errorf("cpu %d: %w", cpu, err)
		}
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return restore, fmt.Errorf("cpu %d: %w", cpu, err)
		}
		undo = append(undo, func() { unix.SchedSetaffinity(0, &prev) })
	}
	return restore, nil
}
