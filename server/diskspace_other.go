//go:build !(linux || darwin || freebsd)

package server

// diskSpace reports no figures where statfs is not available (the builds
// other than Linux, macOS and FreeBSD): /metrics then leaves the disk space
// series out, as docs/METRICS.md says.
func diskSpace(string) (capacity, available uint64, ok bool) { return 0, 0, false }
