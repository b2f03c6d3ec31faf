//go:build !linux

package main

import "syscall"

// childProcAttr is nil where the kernel cannot signal a child when its
// parent dies.
func childProcAttr() *syscall.SysProcAttr { return nil }
