package raftlog

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// countingFS counts the writes to WAL files and the syncs of every file.
type countingFS struct {
	vfs.FS
	walWrites, syncs atomic.Int64
}

type countingFile struct {
	vfs.File
	fs  *countingFS
	wal bool
}

func (fs *countingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: fs, wal: strings.HasSuffix(name, ".log")}, nil
}

func (fs *countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *countingFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs *countingFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (f *countingFile) Write(p []byte) (int, error) {
	if f.wal {
		f.fs.walWrites.Add(1)
	}
	return f.File.Write(p)
}

func (f *countingFile) WriteAt(p []byte, off int64) (int, error) {
	if f.wal {
		f.fs.walWrites.Add(1)
	}
	return f.File.WriteAt(p, off)
}

func (f *countingFile) Sync() error     { f.fs.syncs.Add(1); return f.File.Sync() }
func (f *countingFile) SyncData() error { f.fs.syncs.Add(1); return f.File.SyncData() }
func (f *countingFile) SyncTo(n int64) (bool, error) {
	f.fs.syncs.Add(1)
	return f.File.SyncTo(n)
}

// TestAppendIsOneWALWriteAndOneSync counts, on the real disk, what one
// synced append costs: one sync (of the WAL; no other file is synced) and
// one write to the WAL, plus one more each time the WAL crosses one of its
// 32 KiB blocks. A range deletion costs the same. Concurrent appends share
// syncs; how many depends on the scheduler, so that is only logged.
func TestAppendIsOneWALWriteAndOneSync(t *testing.T) {
	fs := &countingFS{FS: vfs.Default}
	l, err := Open(t.TempDir(), Options{FS: fs})
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Append(run(1, 1, 0))) // past the WAL's creation
	reset := func() { fs.walWrites.Store(0); fs.syncs.Store(0) }
	reset()
	const n, size = 500, 200
	v := make([]byte, size)
	for i := uint64(2); i < 2+n; i++ {
		require.NoError(t, l.Append(&Run{First: i, Values: [][]byte{v}}))
	}
	require.Equal(t, int64(n), fs.syncs.Load(), "syncs for %d appends", n)
	// Each record is the value, the key and under 30 bytes of framing.
	blocks := int64(n*(size+keyLen+30)/(32<<10) + 1)
	require.LessOrEqual(t, fs.walWrites.Load(), int64(n)+blocks, "WAL writes for %d appends", n)
	require.GreaterOrEqual(t, fs.walWrites.Load(), int64(n), "WAL writes for %d appends", n)

	reset()
	require.NoError(t, l.DeleteRange(1, 100))
	require.Equal(t, int64(1), fs.syncs.Load(), "syncs for a range deletion")
	require.Equal(t, int64(1), fs.walWrites.Load(), "WAL writes for a range deletion")

	reset()
	var wg sync.WaitGroup
	var next atomic.Uint64
	next.Store(1000)
	for range 16 {
		wg.Go(func() {
			for range n / 16 {
				i := next.Add(1)
				if err := l.Append(&Run{First: i, Values: [][]byte{v}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d appends from 16 goroutines: %d syncs, %d WAL writes", n/16*16, fs.syncs.Load(), fs.walWrites.Load())
}
