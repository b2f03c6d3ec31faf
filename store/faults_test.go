package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// These tests inject I/O errors into Pebble through Options.Faults. The
// promise they check is the store's part of "never acknowledge a write that
// was not made durable": a synced commit on a failing disk never reports
// success, and whatever the store holds once it is reopened on a healthy
// disk is a prefix of the commits made, with the applied index matching the
// data (so that raft can replay the rest), including every commit that was
// synced before the fault.

var errInjected = errors.New("injected: EIO")

// faultSwitch fails every operation of one kind while it is on.
type faultSwitch struct {
	op       FileOp
	on       atomic.Bool
	injected atomic.Int64
}

func (f *faultSwitch) hook(op FileOp, path string) error {
	if op == f.op && f.on.Load() {
		f.injected.Add(1)
		return fmt.Errorf("%s %s: %w", op, path, errInjected)
	}
	return nil
}

// outcome runs fn and returns the value it panicked with, or its error.
func outcome(fn func() error) (panicked any, err error) {
	defer func() { panicked = recover() }()
	return nil, fn()
}

// faultDisk is where a test store lives: a directory, or a MemFS shared by
// every Open (through the unexported fs field) so that a reopen sees what
// the previous instance wrote.
type faultDisk struct {
	name string
	dir  string
	fs   vfs.FS
}

var faultDiskKinds = []string{"disk", "mem"}

func newFaultDisk(t *testing.T, kind string) faultDisk {
	if kind == "disk" {
		return faultDisk{name: kind, dir: t.TempDir()}
	}
	return faultDisk{name: kind, dir: "db", fs: vfs.NewMem()}
}

func (d faultDisk) open(t *testing.T, faults func(FileOp, string) error) *Store {
	t.Helper()
	s, err := Open(d.dir, &Options{Faults: faults, fs: d.fs})
	if err != nil {
		t.Fatalf("open %s: %v", d.name, err)
	}
	return s
}

// commitKeys commits one batch setting each key to value in tenant 1, with
// applied index idx.
func commitKeys(t *testing.T, s *Store, idx uint64, sync bool, value string, keys ...string) error {
	t.Helper()
	b := s.NewBatch()
	v, err := b.Tenant(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := v.Set([]byte(k), []byte(value)); err != nil {
			t.Fatalf("batch set %q: %v", k, err)
		}
	}
	return b.Commit(idx, sync)
}

// has reports whether tenant 1 holds k with value want; any other value or
// error fails the test.
func has(t *testing.T, s *Store, k, want string) bool {
	t.Helper()
	got, err := mustTenant(t, s, 1).Get([]byte(k))
	if errors.Is(err, ErrNotFound) {
		return false
	}
	if err != nil || string(got) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q or not found", k, got, err, want)
	}
	return true
}

func TestFileOpCoversErrorfs(t *testing.T) {
	seen := map[FileOp]bool{}
	for k := errorfs.OpCreate; k <= errorfs.OpFileFlush; k++ {
		op, ok := fileOpOf(k)
		if k == errorfs.OpFileClose {
			// errorfs never injects into Close.
			continue
		}
		if !ok || op.String() == fmt.Sprintf("FileOp(%d)", uint8(op)) {
			t.Errorf("errorfs op kind %d maps to no FileOp (%v, %v)", k, op, ok)
		}
		seen[op] = true
	}
	for op := FileCreate; op <= FileStat; op++ {
		if !seen[op] {
			t.Errorf("%v: no errorfs operation maps to it", op)
		}
	}
	if got := FileOp(200).String(); got != "FileOp(200)" {
		t.Errorf("FileOp(200).String() = %q", got)
	}
}

// TestFaultsHookSeesEngineFiles checks that the hook sees Pebble's file
// operations, with paths, on disk, in memory and over the test file system,
// and that an error it returns fails the operation and reaches the caller.
func TestFaultsHookSeesEngineFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  string
		opts Options
	}{
		{"disk", t.TempDir(), Options{}},
		{"memory", "", Options{InMemory: true}},
		{"fs", "db", Options{fs: vfs.NewMem()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]bool{} // "op base-name-kind"
			opts := tc.opts
			opts.Faults = func(op FileOp, path string) error {
				kind := filepath.Base(path)
				switch {
				case strings.HasSuffix(kind, ".log"):
					if filepath.Dir(path) != filepath.Clean(tc.dir) && tc.dir != "" {
						t.Errorf("%v on the log %q, outside %q", op, path, tc.dir)
					}
					kind = "wal"
				case strings.HasPrefix(kind, "MANIFEST-"):
					kind = "manifest"
				}
				mu.Lock()
				seen[op.String()+" "+kind] = true
				mu.Unlock()
				return nil
			}
			s, err := Open(tc.dir, &opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := commitKeys(t, s, 1, true, "v", "k"); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, want := range []string{"lock LOCK", "create wal", "write wal", "sync wal", "create manifest", "sync manifest"} {
				if !seen[want] {
					t.Errorf("hook never saw %q; saw %v", want, seen)
				}
			}

			opts.Faults = func(op FileOp, path string) error {
				if op == FileLock {
					return errInjected
				}
				return nil
			}
			if s, err := Open(tc.dir, &opts); !errors.Is(err, errInjected) {
				if err == nil {
					_ = s.Close()
				}
				t.Fatalf("Open with a failing lock = %v; want the injected error", err)
			}
		})
	}
}

// TestFaultsFailSyncedCommit fails writes or syncs under a store that has
// committed and synced some data, then commits a synced batch. The commit
// must not report success; after the fault is lifted and the store
// reopened, the data synced before is there, and the failed batch is either
// absent (a failed write never reached the file) or, for a failed sync,
// present whole with its applied index (its bytes reached the file; only the
// sync failed, so the outcome was unknown): never half of it.
//
// Pebble v2.1.7 does not return the error: a failed synced commit makes it
// call Logger.Fatalf ("pebble: fatal commit error"), which panics
// (pebbleLogger). The test accepts the panic as a failure report, provided
// it carries the injected error, and logs it.
func TestFaultsFailSyncedCommit(t *testing.T) {
	for _, kind := range faultDiskKinds {
		for _, op := range []FileOp{FileWrite, FileSync} {
			t.Run(kind+"/"+op.String(), func(t *testing.T) {
				d := newFaultDisk(t, kind)
				sw := &faultSwitch{op: op}
				s := d.open(t, sw.hook)
				if err := commitKeys(t, s, 1, true, "old", "before"); err != nil {
					t.Fatalf("commit before the fault: %v", err)
				}
				sw.on.Store(true)

				p, err := outcome(func() error { return commitKeys(t, s, 2, true, "new", "a", "b") })
				checkFailed(t, "synced Batch.Commit", err, p)
				p, err = outcome(s.Sync)
				checkFailed(t, "Store.Sync", err, p)
				if sw.injected.Load() == 0 {
					t.Fatal("no fault was injected")
				}
				sw.on.Store(false)
				if p, err := outcome(s.Close); p != nil {
					t.Fatalf("Close panicked: %v", p)
				} else {
					t.Logf("Close: %v", err)
				}

				s = d.open(t, nil)
				defer s.Close()
				if !has(t, s, "before", "old") {
					t.Fatal("data committed and synced before the fault is lost")
				}
				idx, err := s.AppliedIndex()
				if err != nil {
					t.Fatal(err)
				}
				a, b := has(t, s, "a", "new"), has(t, s, "b", "new")
				switch {
				case idx == 1 && !a && !b:
				case idx == 2 && a && b && op == FileSync:
					t.Logf("the batch whose sync failed is present whole (its bytes reached the file)")
				default:
					t.Fatalf("after reopen: applied index %d, a=%v b=%v; want index 1 and neither (or, for a failed sync, index 2 and both)", idx, a, b)
				}
			})
		}
	}
}

// checkFailed requires a call on a failing disk to have reported failure:
// an error, or a panic that names the injected error.
func checkFailed(t *testing.T, what string, err error, panicked any) {
	t.Helper()
	switch {
	case panicked != nil:
		if !strings.Contains(fmt.Sprint(panicked), errInjected.Error()) {
			t.Fatalf("%s panicked with %v, not with the injected error", what, panicked)
		}
		t.Logf("%s panicked (Pebble's Fatalf): %v", what, panicked)
	case err == nil:
		t.Fatalf("%s succeeded on a failing disk", what)
	case !errors.Is(err, errInjected):
		t.Fatalf("%s: %v; want the injected error", what, err)
	default:
		t.Logf("%s: %v", what, err)
	}
}

// TestFaultsKeepUnsyncedCommitsAPrefix commits a stream of unsynced batches,
// as the raft FSM does, each recording its applied index; one of them early
// on is synced. Half way, writes or syncs start failing. Unsynced commits do
// not wait for the disk, so they may still report success (the error stays
// in Pebble's log writer), but they must not panic (these few stay within
// one log block; past it, the next commit panics inside Pebble: see
// Options.Faults), and a sync afterwards must not succeed. Reopened on a healthy disk, the store must hold exactly
// the batches up to its applied index, at least up to the synced one: a
// prefix that raft can complete by replaying its log.
func TestFaultsKeepUnsyncedCommitsAPrefix(t *testing.T) {
	const total, synced, faultFrom = 20, 5, 11
	for _, kind := range faultDiskKinds {
		for _, op := range []FileOp{FileWrite, FileSync} {
			t.Run(kind+"/"+op.String(), func(t *testing.T) {
				d := newFaultDisk(t, kind)
				sw := &faultSwitch{op: op}
				s := d.open(t, sw.hook)
				var failed int
				for i := uint64(1); i <= total; i++ {
					if i == faultFrom {
						sw.on.Store(true)
					}
					p, err := outcome(func() error { return commitKeys(t, s, i, i == synced, fmt.Sprint(i), fmt.Sprintf("k%02d", i)) })
					if p != nil {
						t.Fatalf("unsynced commit %d panicked: %v", i, p)
					}
					if err != nil {
						if i < faultFrom {
							t.Fatalf("commit %d before the fault: %v", i, err)
						}
						failed++
					}
				}
				p, err := outcome(s.Sync)
				checkFailed(t, "Store.Sync after the fault", err, p)
				if sw.injected.Load() == 0 {
					t.Fatal("no fault was injected")
				}
				sw.on.Store(false)
				if p, _ := outcome(s.Close); p != nil {
					t.Fatalf("Close panicked: %v", p)
				}

				s = d.open(t, nil)
				defer s.Close()
				idx, err := s.AppliedIndex()
				if err != nil {
					t.Fatal(err)
				}
				if idx < synced || idx > total {
					t.Fatalf("applied index %d after reopen; want %d..%d", idx, synced, total)
				}
				for i := uint64(1); i <= total; i++ {
					if got := has(t, s, fmt.Sprintf("k%02d", i), fmt.Sprint(i)); got != (i <= idx) {
						t.Errorf("batch %d present=%v with applied index %d: not a prefix", i, got, idx)
					}
				}
				if op == FileWrite && idx == total {
					t.Errorf("every batch survived although writes failed from batch %d on", faultFrom)
				}
				t.Logf("%d of %d unsynced commits under the fault reported an error; %d batches survived", failed, total-faultFrom+1, idx)
			})
		}
	}
}

// TestFaultsReachRecycledLog checks that the hook still sees the
// write-ahead log after Pebble recycles an old log file for a new one
// (errorfs alone hands the recycled file out unwrapped).
func TestFaultsReachRecycledLog(t *testing.T) {
	for _, kind := range faultDiskKinds {
		t.Run(kind, func(t *testing.T) {
			d := newFaultDisk(t, kind)
			sw := &faultSwitch{op: FileSync}
			var mu sync.Mutex
			created := map[string]bool{}
			s := d.open(t, func(op FileOp, path string) error {
				if op == FileCreate && strings.HasSuffix(path, ".log") {
					mu.Lock()
					created[filepath.Base(path)] = true
					mu.Unlock()
				}
				return sw.hook(op, path)
			})
			// Each flush rotates the log; once a flushed log is obsolete,
			// the next rotation reuses its file. The hook names a reused
			// file by its new name, so four distinct names mean the
			// rotations went through the hook.
			for i := range 4 {
				if err := commitKeys(t, s, uint64(i+1), true, "v", fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			logs := len(created)
			mu.Unlock()
			if logs < 4 {
				t.Fatalf("only %d log files created or reused: %v", logs, created)
			}
			sw.on.Store(true)
			p, err := outcome(func() error { return commitKeys(t, s, 9, true, "v", "x") })
			checkFailed(t, "synced commit on a recycled log", err, p)
			sw.on.Store(false)
			_, _ = outcome(s.Close)
		})
	}
}
