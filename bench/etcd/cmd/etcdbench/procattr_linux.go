package main

import "syscall"

// childProcAttr makes the kernel send an etcd member SIGTERM when the
// driver that started it dies, so that a driver killed outright leaves no
// member running.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
