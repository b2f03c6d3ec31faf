//go:build !(linux || darwin || freebsd)

package server

// diskSpace is not implemented on this platform: /metrics leaves the disk
// space series out.
func diskSpace(string) (capacity, available uint64, ok bool) { return 0, 0, false }
