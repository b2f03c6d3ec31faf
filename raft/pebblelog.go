package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/tenantkv/tenantkv/store/raftlog"
)

// The raft log on Pebble (store/raftlog): one append is one WAL write and
// one fdatasync, where raft-boltdb's bbolt commit syncs twice, and a
// truncation is one range deletion (raft/DESIGN.md, "The raft log: a
// Pebble of its own").
//
// pebbleLogStore is hashicorp/raft's LogStore over a *raftlog.Log, whose
// values are hraft.Log entries in the encoding below. It keeps no term or
// vote: the stable store stays raft-boltdb.
//
// # Encoding of an entry (format 1)
//
//	byte     format (1)
//	uvarint  Index
//	uvarint  Term
//	byte     Type
//	uvarint  len(Data), then Data
//	uvarint  len(Extensions), then Extensions
//	varint   AppendedAt as Unix nanoseconds; 0 for the zero time
//
// Every varint is in its shortest form and nothing follows the last field,
// so an entry has exactly one encoding. A value that breaks any of this, or
// whose Index is not the index it is stored under, is corrupt: GetLog
// returns an error wrapping raftlog.ErrCorrupt. Lengths are checked against
// what is left of the value before anything is sliced, and decoding
// allocates nothing: Data and Extensions are slices of the value read (a
// copy owned by the caller). AppendedAt keeps wall time only (raft reads it for a metric); a time
// of exactly the Unix epoch reads back as the zero time.
type pebbleLogStore struct {
	log *raftlog.Log
	// batches holds *logBatch values, so that StoreLogs allocates nothing:
	// entries are encoded straight into Pebble's batch.
	batches sync.Pool
}

var _ hraft.LogStore = (*pebbleLogStore)(nil)

// logFormat is the first byte of every encoded entry. A new encoding is a
// new format byte; decodeLog refuses the ones it does not know.
const logFormat = 1

// openPebbleLogStore opens (creating if needed) the raft log in dir, a
// directory of its own.
func openPebbleLogStore(dir string, logger *slog.Logger) (*pebbleLogStore, error) {
	l, err := raftlog.Open(dir, raftlog.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("raft: open log store: %w", err)
	}
	return newPebbleLogStore(l), nil
}

// newPebbleLogStore returns the LogStore over l, which it then owns.
func newPebbleLogStore(l *raftlog.Log) *pebbleLogStore {
	s := &pebbleLogStore{log: l}
	s.batches.New = func() any { return new(logBatch) }
	return s
}

// Close closes the log.
func (s *pebbleLogStore) Close() error { return s.log.Close() }

// FirstIndex returns the first index in the log, 0 if it is empty.
func (s *pebbleLogStore) FirstIndex() (uint64, error) { return s.log.FirstIndex(), nil }

// LastIndex returns the last index in the log, 0 if it is empty.
func (s *pebbleLogStore) LastIndex() (uint64, error) { return s.log.LastIndex(), nil }

// GetLog reads entry index into out. It returns hraft.ErrLogNotFound if the
// log does not hold it. out.Data and out.Extensions are the caller's.
func (s *pebbleLogStore) GetLog(index uint64, out *hraft.Log) error {
	v, err := s.log.Get(index, nil)
	if errors.Is(err, raftlog.ErrNotFound) {
		return hraft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	if err := decodeLog(v, out); err != nil {
		return fmt.Errorf("raft: log entry %d: %w", index, err)
	}
	if out.Index != index {
		return fmt.Errorf("raft: log entry %d: %w: holds index %d", index, raftlog.ErrCorrupt, out.Index)
	}
	return nil
}

// StoreLog stores one entry, synced.
func (s *pebbleLogStore) StoreLog(l *hraft.Log) error {
	b := s.batches.Get().(*logBatch)
	b.one[0] = l
	b.logs = b.one[:]
	err := s.log.Append(b)
	b.one[0], b.logs = nil, nil
	s.batches.Put(b)
	return err
}

// StoreLogs stores logs as one append: one synced Pebble batch (several
// for appends over 256 MiB).
func (s *pebbleLogStore) StoreLogs(logs []*hraft.Log) error {
	b := s.batches.Get().(*logBatch)
	b.logs = logs
	err := s.log.Append(b)
	b.logs = nil
	s.batches.Put(b)
	return err
}

// DeleteRange deletes the entries from lo to hi inclusive, as one range
// deletion, synced.
func (s *pebbleLogStore) DeleteRange(lo, hi uint64) error { return s.log.DeleteRange(lo, hi) }

// logBatch presents entries to raftlog.Append.
type logBatch struct {
	logs []*hraft.Log
	one  [1]*hraft.Log // StoreLog's entry, without a slice to allocate
}

func (b *logBatch) Len() int           { return len(b.logs) }
func (b *logBatch) Index(i int) uint64 { return b.logs[i].Index }
func (b *logBatch) Size(i int) int     { return encodedLogSize(b.logs[i]) }

func (b *logBatch) Encode(i int, dst []byte) error {
	if n := encodeLog(dst, b.logs[i]); n != len(dst) {
		return fmt.Errorf("raft: encode log entry %d: %d bytes, sized %d", b.logs[i].Index, n, len(dst))
	}
	return nil
}

// uvarintLen is the length of x as a uvarint.
func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendedAtNanos is l.AppendedAt as encoded: Unix nanoseconds, 0 for the
// zero time.
func appendedAtNanos(l *hraft.Log) int64 {
	if l.AppendedAt.IsZero() {
		return 0
	}
	return l.AppendedAt.UnixNano()
}

// encodedLogSize returns the length of l's encoding.
func encodedLogSize(l *hraft.Log) int {
	at := appendedAtNanos(l)
	zz := uint64(at<<1) ^ uint64(at>>63) // the varint's zigzag form
	return 1 + uvarintLen(l.Index) + uvarintLen(l.Term) + 1 +
		uvarintLen(uint64(len(l.Data))) + len(l.Data) +
		uvarintLen(uint64(len(l.Extensions))) + len(l.Extensions) +
		uvarintLen(zz)
}

// encodeLog writes l's encoding into dst, which must hold
// encodedLogSize(l) bytes, and returns the number of bytes written.
func encodeLog(dst []byte, l *hraft.Log) int {
	dst[0] = logFormat
	n := 1
	n += binary.PutUvarint(dst[n:], l.Index)
	n += binary.PutUvarint(dst[n:], l.Term)
	dst[n] = byte(l.Type)
	n++
	n += binary.PutUvarint(dst[n:], uint64(len(l.Data)))
	n += copy(dst[n:], l.Data)
	n += binary.PutUvarint(dst[n:], uint64(len(l.Extensions)))
	n += copy(dst[n:], l.Extensions)
	n += binary.PutVarint(dst[n:], appendedAtNanos(l))
	return n
}

// logDecoder reads the fields of an encoded entry, in order, remembering
// the first failure.
type logDecoder struct {
	p   []byte
	err error
}

func (d *logDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", raftlog.ErrCorrupt, what)
	}
}

func (d *logDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.p)
	if n <= 0 || n != uvarintLen(x) {
		d.fail(what)
		return 0
	}
	d.p = d.p[n:]
	return x
}

func (d *logDecoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.p) == 0 {
		d.fail(what)
		return 0
	}
	c := d.p[0]
	d.p = d.p[1:]
	return c
}

// bytes returns a length-prefixed field, aliasing the value (nil if
// empty). The length is checked against what is left before anything is
// sliced.
func (d *logDecoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.p)) {
		d.fail(what + " length")
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	if n == 0 {
		return nil
	}
	return b
}

func (d *logDecoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.p)
	zz := uint64(x<<1) ^ uint64(x>>63)
	if n <= 0 || n != uvarintLen(zz) {
		d.fail(what)
		return 0
	}
	d.p = d.p[n:]
	return x
}

// decodeLog decodes an entry's value into out. Data and Extensions alias
// v. An error wraps raftlog.ErrCorrupt; out is then left untouched.
func decodeLog(v []byte, out *hraft.Log) error {
	d := logDecoder{p: v}
	if f := d.byte("format"); d.err == nil && f != logFormat {
		return fmt.Errorf("%w: unknown entry format %d", raftlog.ErrCorrupt, f)
	}
	var l hraft.Log
	l.Index = d.uvarint("index")
	l.Term = d.uvarint("term")
	l.Type = hraft.LogType(d.byte("type"))
	l.Data = d.bytes("data")
	l.Extensions = d.bytes("extensions")
	if at := d.varint("appended-at time"); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.p) != 0 {
		return fmt.Errorf("%w: %d bytes after the entry", raftlog.ErrCorrupt, len(d.p))
	}
	*out = l
	return nil
}
