package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// FileOp is a kind of file system operation of the storage engine, as seen
// by Options.Faults. It exists so that tests outside this package can inject
// I/O errors without importing Pebble.
type FileOp uint8

// File operations. Every operation Pebble performs through its file system
// maps to exactly one of them.
const (
	// FileCreate creates a file, or reuses an old write-ahead log file under
	// a new name (the path is then the new name).
	FileCreate FileOp = iota + 1
	// FileOpen opens a file or a directory.
	FileOpen
	// FileRead reads from an open file.
	FileRead
	// FileWrite writes to an open file, or preallocates space for it: what
	// fails when the disk is full.
	FileWrite
	// FileSync makes an open file durable: fsync, fdatasync, or a sync of a
	// range. The write-ahead log, sstables, the MANIFEST and the data
	// directory are all synced this way.
	FileSync
	// FileRename renames a file.
	FileRename
	// FileRemove removes a file or a directory tree.
	FileRemove
	// FileLink makes a hard link.
	FileLink
	// FileMkdir creates a directory and its parents.
	FileMkdir
	// FileLock takes the database's lock file.
	FileLock
	// FileStat reads metadata: stat of a path or an open file, a directory
	// listing, or the disk's free space.
	FileStat
)

var fileOpNames = [...]string{
	FileCreate: "create",
	FileOpen:   "open",
	FileRead:   "read",
	FileWrite:  "write",
	FileSync:   "sync",
	FileRename: "rename",
	FileRemove: "remove",
	FileLink:   "link",
	FileMkdir:  "mkdir",
	FileLock:   "lock",
	FileStat:   "stat",
}

// String returns the operation's name, such as "sync".
func (op FileOp) String() string {
	if op > 0 && int(op) < len(fileOpNames) {
		return fileOpNames[op]
	}
	return fmt.Sprintf("FileOp(%d)", uint8(op))
}

// fileOpOf maps an errorfs operation kind onto a FileOp. The second result
// is false for a kind this package does not know (a newer Pebble), which is
// then never failed; TestFileOpCoversErrorfs keeps the table complete.
func fileOpOf(k errorfs.OpKind) (FileOp, bool) {
	switch k {
	case errorfs.OpCreate, errorfs.OpReuseForWrite:
		return FileCreate, true
	case errorfs.OpOpen, errorfs.OpOpenDir:
		return FileOpen, true
	case errorfs.OpFileRead, errorfs.OpFileReadAt:
		return FileRead, true
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFilePreallocate:
		return FileWrite, true
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo, errorfs.OpFileFlush:
		return FileSync, true
	case errorfs.OpRename:
		return FileRename, true
	case errorfs.OpRemove, errorfs.OpRemoveAll:
		return FileRemove, true
	case errorfs.OpLink:
		return FileLink, true
	case errorfs.OpMkdirAll:
		return FileMkdir, true
	case errorfs.OpLock:
		return FileLock, true
	case errorfs.OpStat, errorfs.OpList, errorfs.OpGetDiskUsage, errorfs.OpFileStat:
		return FileStat, true
	}
	// errorfs never injects into OpFileClose.
	return 0, false
}

// faultInjector adapts Options.Faults to errorfs.
type faultInjector struct {
	faults func(op FileOp, path string) error
	// path, if set, names the file of operations that come without one
	// (files wrapped by errorfs.WrapFile).
	path string
}

var _ errorfs.Injector = faultInjector{}

func (f faultInjector) String() string { return "store.Options.Faults" }

func (f faultInjector) MaybeError(op errorfs.Op) error {
	fop, ok := fileOpOf(op.Kind)
	if !ok {
		return nil
	}
	path := op.Path
	if path == "" {
		path = f.path
	}
	return f.faults(fop, path)
}

// faultFS is errorfs over a base file system, with one gap closed: errorfs
// hands out a recycled write-ahead log file (ReuseForWrite) unwrapped, so
// that writes and syncs to it would escape the hook once Pebble recycles its
// first log.
type faultFS struct {
	*errorfs.FS
	faults func(op FileOp, path string) error
}

// newFaultFS wraps base so that every operation is first offered to faults;
// a non-nil error from it fails the operation with that error.
func newFaultFS(base vfs.FS, faults func(op FileOp, path string) error) vfs.FS {
	return &faultFS{FS: errorfs.Wrap(base, faultInjector{faults: faults}), faults: faults}
}

// ReuseForWrite implements vfs.FS.
func (fs *faultFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.faults(FileCreate, newname); err != nil {
		return nil, err
	}
	f, err := fs.Unwrap().ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, err
	}
	return errorfs.WrapFile(f, faultInjector{faults: fs.faults, path: newname}), nil
}
