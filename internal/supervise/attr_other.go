//go:build unix && !linux

package supervise

import "syscall"

// childAttr puts a child in a process group of its own, so that a Ctrl-C
// at the terminal reaches the supervisor only, which then stops the
// children in order rather than all at once. Only Linux can also tie a
// child's life to the supervisor's: here a supervisor killed with SIGKILL
// leaves its children running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
