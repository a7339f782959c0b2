//go:build unix

package health

import (
	"os/exec"
	"syscall"
)

// killGroup runs cmd in a process group of its own and makes its cancellation kill the
// whole group, so a shell script's children (a hanging curl, a sleep) die with it.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
