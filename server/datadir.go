package server

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// makePrivate makes the data directory dir, and everything already in it,
// private to the node's user: directories 0700, files 0600, whatever modes
// an older version, a copy or a umask left. It creates dir if it is
// missing. Symbolic links are left alone (their targets are not the node's
// to change). The files the node creates later are private too: the data
// directory is 0700, and `tenantkv serve` sets the umask to 077 so that
// Pebble's and raft's new files are 0600 (an embedding program keeps its
// own umask).
func makePrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	// The data directory may be a symbolic link to the real one: walk that.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return chmodIf(path, d, 0o700)
		case d.Type().IsRegular():
			return chmodIf(path, d, 0o600)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("server: data dir %s: make private: %w", dir, err)
	}
	return nil
}

// chmodIf sets the permission bits of path to mode unless they are so.
func chmodIf(path string, d fs.DirEntry, mode fs.FileMode) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	if info.Mode().Perm() == mode {
		return nil
	}
	return os.Chmod(path, mode)
}
