package store

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Errors returned by store.
var (
	// ErrNotFound is returned by Get for a missing key.
	ErrNotFound = errors.New("tenantkv: key not found")
	// ErrReadOnly is returned by writes through a snapshot view or a live
	// view of the store: only a Batch writes.
	ErrReadOnly = errors.New("tenantkv: view is read-only")
	// ErrIsolation is returned if the engine ever hands back a key outside
	// the view's span. It means a bug or corruption, and the read is aborted.
	ErrIsolation = errors.New("tenantkv: isolation violation: key outside tenant span")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("tenantkv: store closed")
	// ErrCorruptStream is returned when an export stream fails to decode or
	// its checksum does not match.
	ErrCorruptStream = errors.New("tenantkv: corrupt export stream")
	// ErrSystemKey is returned when a system view is given a key outside the
	// system keyspace.
	ErrSystemKey = errors.New("tenantkv: key outside system keyspace")
)

// FormatVersion is the Pebble format major version tenantkv writes. It is
// pinned so that an upgrade of the Pebble module never changes the on-disk
// format without a deliberate change here.
const FormatVersion = pebble.FormatTableFormatV6

// Options configures Open. A nil *Options means defaults.
type Options struct {
	// InMemory keeps the database in memory (for tests); dir is ignored.
	InMemory bool
	// CacheSize is the block cache size in bytes; 0 means 64 MiB. It is
	// what the cache holds for sstable blocks: the memtables' memory comes
	// on top (see memTableReserve).
	CacheSize int64
	// MemTableSize is the memtable size in bytes; 0 means 32 MiB. The
	// store's memory is about CacheSize + memTablesReserved*MemTableSize.
	MemTableSize uint64
	// Logger receives Pebble's log lines at debug level; nil discards them.
	Logger *slog.Logger
	// Faults is a test hook for injecting I/O errors; production code leaves
	// it nil. When set, every file system operation of the engine (on disk,
	// or in memory with InMemory) is first offered to it, with the kind of
	// operation and the file's path; a non-nil error fails that operation
	// with that error, as a failing disk would. It is called from many
	// goroutines at once, on the engine's hot paths, so it must be safe for
	// concurrent use, fast, and must not call into the Store.
	//
	// Pebble (v2.1.7) takes a failure of its write-ahead log as fatal and
	// does not return it: a synced commit or Sync on a failed log calls its
	// logger's Fatalf, which panics (pebbleLogger); an unsynced commit
	// succeeds until the log writer's error surfaces, then panics inside
	// Pebble; a memtable rotation onto a failed log panics while holding a
	// mutex, a fatal runtime error no recover catches. A test that fails
	// log writes or syncs under a running store should run it in a child
	// process (raft/faults_test.go does).
	Faults func(op FileOp, path string) error
	// fs, when set by tests in this package, replaces the file system.
	fs vfs.FS
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	if o.CacheSize < 0 {
		return fmt.Errorf("store: negative cache size %d", o.CacheSize)
	}
	return nil
}

// memTableStopWrites is how many memtables may be queued (the mutable one
// included) before Pebble stops writes: Pebble's default, stated so that
// memTablesReserved follows it.
const memTableStopWrites = 2

// memTablesReserved is how many memtables Pebble may hold reserved against
// the block cache at once: the queued ones and one kept for recycling.
const memTablesReserved = memTableStopWrites + 1

// Store is an open database. It is safe for concurrent use.
type Store struct {
	db     *pebble.DB
	cache  *pebble.Cache
	logger *slog.Logger
	sys    *SystemView
	sizes  sizeCache
}

// Open opens (creating if needed) the database in dir.
func Open(dir string, opts *Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 32 << 20
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Pebble charges every memtable it allocates, and the one obsolete
	// memtable it keeps for reuse, against the block cache's capacity
	// (Cache.Reserve). A cache of CacheSize alone was empty: two 32 MiB
	// memtables reserved all of its 64 MiB from the first memtable
	// rotation on, so every read went to the file and decompressed its
	// blocks again (a cache hit rate of 0%, issue 15; a third of a
	// follower's CPU under writes, in the old-value read for the quota).
	// The cache is therefore made larger by what the memtables may
	// reserve, which leaves CacheSize for blocks at worst.
	cache := pebble.NewCache(o.CacheSize + int64(memTablesReserved)*int64(o.MemTableSize))
	po := &pebble.Options{
		Cache:                       cache,
		FormatMajorVersion:          FormatVersion,
		MemTableSize:                o.MemTableSize,
		MemTableStopWritesThreshold: memTableStopWrites,
		// Sync the WAL in the background every MiB: commits are not
		// synced (the raft log is the durable record), so without this a
		// memtable rotation synced a whole memtable's worth of WAL at
		// once, stalling every write for it (issue 18: with three nodes
		// on one machine, victim p99 135-213 ms under heavy writes, 113
		// ms with it).
		WALBytesPerSync: 1 << 20,
		Logger:          pebbleLogger{logger},
	}
	// Bloom filters on every level, L0 included: almost every write reads
	// its key first (the old value's size, for the exact quota), and most
	// of those keys are new, so a lookup would otherwise open every table
	// on its path to find nothing. 10 bits per key: about 1% false
	// positives for 1.2 bytes per key.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	switch {
	case o.fs != nil:
		po.FS = o.fs
	case o.InMemory:
		po.FS = vfs.NewMem()
		dir = ""
	}
	if o.Faults != nil {
		base := po.FS
		if base == nil {
			base = vfs.Default
		}
		po.FS = newFaultFS(base, o.Faults)
	}
	db, err := pebble.Open(dir, po)
	cache.Unref()
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s := &Store{db: db, logger: logger}
	// The live views only read: every write goes through a Batch, which
	// the state machine commits with the raft index that produced it.
	s.sys = &SystemView{r: db, w: readOnlyWriter{}}
	return s, nil
}

// Close closes the database. Views, iterators and snapshots must be closed
// or abandoned first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Tenant returns a reader of tenant id over the live database. It fails only
// for an invalid ID. Writes go through a Batch (NewBatch).
func (s *Store) Tenant(id keyspace.TenantID) (*TenantReader, error) {
	return newTenantReader(id, s.db)
}

// System returns the view of the system keyspace over the live database.
// Its writes return ErrReadOnly; write through a Batch's System view.
func (s *Store) System() *SystemView { return s.sys }

// AppliedIndex returns the last applied raft index recorded by Batch.Commit,
// or 0 if none was recorded.
func (s *Store) AppliedIndex() (uint64, error) {
	v, err := s.sys.Get(keyspace.AppliedIndexKey())
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return keyspace.DecodeUint64(v)
}

// EstimateTenantDiskUsage estimates the bytes on disk used by tenant id's
// span. Data still in memtables is not counted.
func (s *Store) EstimateTenantDiskUsage(id keyspace.TenantID) (uint64, error) {
	if err := id.Check(); err != nil {
		return 0, err
	}
	sp := keyspace.TenantSpan(id)
	n, err := s.db.EstimateDiskUsage(sp.Start, sp.End)
	if err != nil {
		return 0, fmt.Errorf("store: estimate disk usage of tenant %d: %w", id, err)
	}
	return n, nil
}

// Flush flushes memtables to disk. It is meant for tests and benchmarks.
func (s *Store) Flush() error { return s.db.Flush() }

// Metrics returns a one-line summary of engine metrics for logs.
func (s *Store) Metrics() string { return s.db.Metrics().StringForTests() }

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble calls Fatalf on invariant violations; it panics after logging.
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble", "fatal", true)
	panic(fmt.Sprintf(format, args...))
}

// Sync makes every write committed so far durable, including those committed
// without sync. The replication layer calls it before a snapshot lets raft
// truncate its log.
func (s *Store) Sync() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}
