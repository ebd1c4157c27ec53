package supervise

import "syscall"

// childAttr puts a child in a process group of its own, so that a Ctrl-C
// at the terminal reaches the supervisor only, which then stops the
// children in order rather than all at once; and it makes the child die
// with the supervisor, even one killed with SIGKILL, so that none is left
// orphaned holding its port and its files. (Linux sends Pdeathsig when the
// thread that started the child ends; Go ends a thread only with a
// goroutine locked to it, and none here is.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
