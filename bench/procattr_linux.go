package bench

import "syscall"

// nodeProcAttr makes the kernel send a node SIGTERM when the process that
// started it dies, so that a bench killed outright (SIGKILL, a broken
// pipe) leaves no node running. The signal follows the death of the
// starting thread, which the Go runtime keeps alive as long as the process
// runs (bench locks no goroutine to a thread).
func nodeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
