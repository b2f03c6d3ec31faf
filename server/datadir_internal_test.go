package server

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// makePrivate turns an open data directory (0755, files 0644, reached
// through a symbolic link) into a private one, and creates a missing one.
func TestMakePrivate(t *testing.T) {
	real := filepath.Join(t.TempDir(), "real")
	if err := os.MkdirAll(filepath.Join(real, "store", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"node-id", "store/000001.log", "store/sub/x"} {
		if err := os.WriteFile(filepath.Join(real, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "data")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := makePrivate(link); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: %v, want %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "a", "b")
	if err := makePrivate(fresh); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(fresh); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("a new data directory: %v %v", info.Mode(), err)
	}
}
