//go:build linux || darwin || freebsd

package server

import "golang.org/x/sys/unix"

// diskSpace returns the capacity of the file system holding dir and the
// bytes an unprivileged writer may still use there (what the node, not
// root, can fill), with ok false when the file system cannot be asked.
func diskSpace(dir string) (capacity, available uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	bsize := uint64(st.Bsize)
	return uint64(st.Blocks) * bsize, uint64(st.Bavail) * bsize, true
}
