package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Errors returned by raftlog.
var (
	// ErrNotFound is returned by Get for an index the log does not hold.
	ErrNotFound = errors.New("tenantkv: raft log entry not found")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("tenantkv: raft log closed")
	// ErrCorrupt is returned when the log's contents on disk are not what
	// this package (or, wrapped, its caller's decoder) writes.
	ErrCorrupt = errors.New("tenantkv: raft log corrupt")
)

// FormatVersion is the Pebble format major version the log writes, pinned
// so that an upgrade of the Pebble module never changes the on-disk format
// without a deliberate change here.
const FormatVersion = pebble.FormatTableFormatV6

// MaxValueSize is the largest entry value Append accepts (1 GiB). Pebble
// refuses batches of 4 GiB or more, by panicking; the bound keeps any one
// entry far below that.
const MaxValueSize = 1 << 30

const (
	// entryPrefix starts the key of every entry; other prefixes are free
	// for records the log may need later (a format marker, say).
	entryPrefix = 0x01
	keyLen      = 1 + 8
	// recordOverhead bounds what a batch adds to each Set: the kind byte
	// and the uvarint lengths of key and value.
	recordOverhead = 1 + 2*binary.MaxVarintLen32
	// batchHeaderLen is a Pebble batch's header (sequence number, count).
	batchHeaderLen = 12
	// maxBatchBytes is where Append starts a new Pebble batch: a huge
	// append (raft hands over up to MaxAppendEntries entries at once, each
	// of them possibly megabytes) is written as several batches, the last
	// one synced, rather than one that could reach Pebble's 4 GiB limit.
	maxBatchBytes = 256 << 20
)

// Defaults for Options.
const (
	// DefaultMemTableSize is 16 MiB. Recent entries are read from raft's
	// own cache, not from here, so the memtable only has to absorb writes
	// while the previous one flushes. A log's keys only grow, so each
	// flush makes a table above all earlier ones, which compactions move
	// down without rewriting: a larger memtable would save little write
	// amplification, and would cost memory and a longer WAL replay at
	// Open.
	DefaultMemTableSize = 16 << 20
	// DefaultCacheSize is 4 MiB of block cache. The log is read back only
	// when a follower catches up from entries no longer in raft's cache,
	// or at start; those reads are sequential and seldom repeated.
	DefaultCacheSize = 4 << 20
)

// Options configures Open. The zero value means defaults.
type Options struct {
	// FS is the file system; nil means the real disk. Tests pass
	// vfs.NewCrashableMem() to simulate power loss.
	FS vfs.FS
	// Logger receives Pebble's log lines (info at debug level); nil
	// discards them.
	Logger *slog.Logger
	// MemTableSize is the memtable size in bytes; 0 means
	// DefaultMemTableSize. Tests set it small to make flushes frequent.
	MemTableSize uint64
	// CacheSize is the block cache size in bytes; 0 means
	// DefaultCacheSize.
	CacheSize int64
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.CacheSize < 0 {
		return fmt.Errorf("raftlog: negative cache size %d", o.CacheSize)
	}
	if o.MemTableSize >= 4<<30 {
		return fmt.Errorf("raftlog: memtable size %d not below 4 GiB", o.MemTableSize)
	}
	return nil
}

// Entries is a sequence of entries for Append to write. Append calls Len
// once, then Index, Size and Encode for each entry, Size possibly more than
// once (it must return the same each time). Encode fills dst, which is
// exactly Size(i) bytes long; an error from it abandons the Append.
// Encoding straight into Pebble's batch is what spares Append a copy or an
// allocation per entry.
type Entries interface {
	Len() int
	Index(i int) uint64
	Size(i int) int
	Encode(i int, dst []byte) error
}

// Run is a run of entries at consecutive indexes from First, the simplest
// Entries.
type Run struct {
	First  uint64
	Values [][]byte
}

var _ Entries = (*Run)(nil)

// Len returns the number of entries.
func (r *Run) Len() int { return len(r.Values) }

// Index returns the index of entry i: First+i.
func (r *Run) Index(i int) uint64 { return r.First + uint64(i) }

// Size returns the length of entry i's value.
func (r *Run) Size(i int) int { return len(r.Values[i]) }

// Encode copies entry i's value into dst.
func (r *Run) Encode(i int, dst []byte) error {
	copy(dst, r.Values[i])
	return nil
}

// Log is an open log. It is safe for concurrent use.
type Log struct {
	db *pebble.DB

	// life is held shared by every call and exclusively by Close, so no
	// call reaches a closed Pebble (which panics).
	life   sync.RWMutex
	closed bool
	// trunc is held shared by Append and exclusively by DeleteRange.
	// DeleteRange finds the new bounds by seeking after its deletion; an
	// Append committed before the deletion but not yet counted in the
	// bounds would otherwise widen them again over entries just deleted.
	trunc sync.RWMutex
	// boundsMu serializes the read-modify-write of first and last by
	// concurrent Appends; readers load them without it.
	boundsMu    sync.Mutex
	first, last atomic.Uint64 // 0, 0 when empty
	// maxBatch is maxBatchBytes; tests lower it.
	maxBatch int
}

// Open opens (creating if needed) the log in dir, which belongs to the log
// alone. It finds the first and last index with two seeks.
func Open(dir string, opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	po := &pebble.Options{
		FS:                 opts.FS,
		Cache:              cache,
		FormatMajorVersion: FormatVersion,
		MemTableSize:       opts.MemTableSize,
		Logger:             pebbleLogger{logger},
		// Every commit is synced, so background syncs of the WAL
		// (WALBytesPerSync) would only add syncs, and a minimum interval
		// between syncs (WALMinSyncInterval) would only add latency:
		// concurrent commits already share a sync. Both stay off. WAL
		// files are recycled (Pebble's default), which is what lets a
		// sync skip the file's metadata.
		//
		// No bloom filters: almost every Get is for an index present,
		// and a table's index block already rules out the rest.
		//
		// Table stats stay on (the default): they are how Pebble finds
		// tables wholly covered by a range deletion and drops them
		// without rewriting, which is how a truncated log gives its
		// space back.
	}
	if po.FS == nil {
		po.FS = vfs.Default
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	l := &Log{db: db, maxBatch: maxBatchBytes}
	first, last, err := l.seekBounds()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	l.first.Store(first)
	l.last.Store(last)
	return l, nil
}

// Close closes the log. Calls made after it return ErrClosed; calls in
// flight finish first.
func (l *Log) Close() error {
	l.life.Lock()
	defer l.life.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.closed = true
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("raftlog: close: %w", err)
	}
	return nil
}

// FirstIndex returns the lowest index in the log, or 0 if it is empty.
// Under concurrent writes, FirstIndex and LastIndex are each exact at some
// moment during the call, not necessarily the same moment.
func (l *Log) FirstIndex() uint64 { return l.first.Load() }

// LastIndex returns the highest index in the log, or 0 if it is empty.
func (l *Log) LastIndex() uint64 { return l.last.Load() }

// Get copies the value of entry index into buf[:0] (a new slice if buf is
// too small) and returns it, non-nil even when empty; the result is the
// caller's. It returns ErrNotFound if the log does not hold index.
func (l *Log) Get(index uint64, buf []byte) ([]byte, error) {
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	var k [keyLen]byte
	putKey(k[:], index)
	v, closer, err := l.db.Get(k[:])
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: get %d: %w", index, err)
	}
	if cap(buf) < len(v) || buf == nil {
		buf = make([]byte, 0, len(v)) // non-nil even when empty
	}
	buf = append(buf[:0], v...)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("raftlog: get %d: %w", index, err)
	}
	return buf, nil
}

// Append writes es, each entry under its own index, and returns once they
// are synced: one WAL write and one fdatasync, shared with concurrent
// Appends. An entry at an index already present replaces it; entries at
// other indexes are not touched (see the package documentation on gaps and
// overwrites). Index 0 and values over MaxValueSize are refused before
// anything is written. An append of more than 256 MiB is written as
// several Pebble batches, the last one synced; if one of them fails, the
// ones before it may or may not survive a crash. An empty es is a no-op.
func (l *Log) Append(es Entries) error {
	n := es.Len()
	if n == 0 {
		return nil
	}
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed {
		return ErrClosed
	}
	for i := range n {
		if es.Index(i) == 0 {
			return fmt.Errorf("raftlog: append: entry %d of %d has index 0", i, n)
		}
		if s := es.Size(i); s < 0 || s > MaxValueSize {
			return fmt.Errorf("raftlog: append: entry %d (index %d) is %d bytes, over %d", i, es.Index(i), s, MaxValueSize)
		}
	}
	l.trunc.RLock()
	defer l.trunc.RUnlock()
	for i := 0; i < n; {
		// Entries [i, j) go in this batch, size bytes of it.
		j, size := i, batchHeaderLen
		for j < n {
			rec := keyLen + es.Size(j) + recordOverhead
			if j > i && size+rec > l.maxBatch {
				break
			}
			size += rec
			j++
		}
		lo, hi, err := l.commit(es, i, j, size, j == n)
		if err != nil {
			return err
		}
		l.widen(lo, hi)
		i = j
	}
	return nil
}

// commit writes entries [i, j) of es in one batch of about size bytes,
// synced if sync, and returns the lowest and highest index written.
func (l *Log) commit(es Entries, i, j, size int, sync bool) (lo, hi uint64, err error) {
	b := l.db.NewBatchWithSize(size)
	defer b.Close()
	lo, hi = es.Index(i), es.Index(i)
	for k := i; k < j; k++ {
		idx := es.Index(k)
		lo, hi = min(lo, idx), max(hi, idx)
		op := b.SetDeferred(keyLen, es.Size(k))
		putKey(op.Key, idx)
		if err := es.Encode(k, op.Value); err != nil {
			return 0, 0, fmt.Errorf("raftlog: append: encode index %d: %w", idx, err)
		}
		if err := op.Finish(); err != nil {
			return 0, 0, fmt.Errorf("raftlog: append index %d: %w", idx, err)
		}
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := b.Commit(opt); err != nil {
		return 0, 0, fmt.Errorf("raftlog: append %d..%d: %w", lo, hi, err)
	}
	return lo, hi, nil
}

// widen counts the committed entries [lo, hi] in the bounds.
func (l *Log) widen(lo, hi uint64) {
	l.boundsMu.Lock()
	defer l.boundsMu.Unlock()
	first, last := l.first.Load(), l.last.Load()
	if last == 0 {
		first, last = lo, hi
	} else {
		first, last = min(first, lo), max(last, hi)
	}
	// A reader that loads first then last while an empty log gains its
	// first entries sees 0 or the new first, never a first past last.
	l.last.Store(last)
	l.first.Store(first)
}

// DeleteRange deletes the entries from lo to hi inclusive, as one range
// deletion, and returns once it is synced. It waits for the Appends in
// flight and holds new ones back until then. It then seeks for the new
// first and last index, so they stay exact whatever range was deleted. A
// range with lo > hi deletes nothing.
func (l *Log) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.trunc.Lock()
	defer l.trunc.Unlock()
	var start, end [keyLen]byte
	putKey(start[:], lo)
	endKey := end[:]
	if hi == ^uint64(0) {
		endKey = []byte{entryPrefix + 1}
	} else {
		putKey(endKey, hi+1)
	}
	if err := l.db.DeleteRange(start[:], endKey, pebble.Sync); err != nil {
		return fmt.Errorf("raftlog: delete %d..%d: %w", lo, hi, err)
	}
	first, last, err := l.seekBounds()
	if err != nil {
		return fmt.Errorf("raftlog: delete %d..%d: %w", lo, hi, err)
	}
	l.boundsMu.Lock()
	l.first.Store(first)
	l.last.Store(last)
	l.boundsMu.Unlock()
	return nil
}

// seekBounds finds the lowest and highest index present (0, 0 if none).
func (l *Log) seekBounds() (first, last uint64, err error) {
	it, err := l.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{entryPrefix},
		UpperBound: []byte{entryPrefix + 1},
	})
	if err != nil {
		return 0, 0, err
	}
	if it.First() {
		if first, err = parseKey(it.Key()); err == nil && it.Last() {
			last, err = parseKey(it.Key())
		}
	}
	if err == nil {
		err = it.Error()
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, err
	}
	return first, last, nil
}

// putKey writes the key of index into k, which is keyLen bytes long.
func putKey(k []byte, index uint64) {
	k[0] = entryPrefix
	binary.BigEndian.PutUint64(k[1:], index)
}

// parseKey returns the index of an entry's key.
func parseKey(k []byte) (uint64, error) {
	if len(k) != keyLen || k[0] != entryPrefix {
		return 0, fmt.Errorf("%w: key %x is not an entry key", ErrCorrupt, k)
	}
	idx := binary.BigEndian.Uint64(k[1:])
	if idx == 0 {
		return 0, fmt.Errorf("%w: entry at index 0", ErrCorrupt)
	}
	return idx, nil
}

// pebbleLogger sends Pebble's log lines to a slog.Logger.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "raftlog")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "raftlog")
}

// Fatalf is called by Pebble on a failed write or sync of its WAL and on
// broken invariants. Pebble must not continue past it, so it panics after
// logging (see the package documentation).
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "raftlog", "fatal", true)
	panic("raftlog: " + msg)
}
