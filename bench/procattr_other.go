//go:build !linux

package bench

import "syscall"

// nodeProcAttr has nothing to add outside Linux: a bench killed outright
// may leave its nodes running there.
func nodeProcAttr() *syscall.SysProcAttr { return nil }
