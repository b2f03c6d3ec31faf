//go:build unix

package main

import "syscall"

// restrictUmask makes the files and directories the process creates from
// now on private to its user (0600 and 0700).
func restrictUmask() { syscall.Umask(0o077) }
