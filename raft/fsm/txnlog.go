package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// # Versions and the write history
//
// Every tenant has a version counter, starting at 0, which every applied
// command that writes to the tenant (TenantWrite, a TxnCommit with
// mutations, a CompareAndSwap that swapped) raises by one. Versions are
// numbered per tenant and say nothing about other tenants.
//
// Each such write also appends one entry to the tenant's write history, in
// the same batch as the data: the version, the proposer's timestamp, the
// transaction ID (if any) and the write set (point sets with their values,
// point deletes, delete-range bounds). The history is what the conflict
// check of TxnCommit and the watches go by. It is replicated state: it lives
// in the system keyspace, is covered by snapshots and checksums, and so
// every replica, one that restarted or one rebuilt from a snapshot alike,
// makes the same decisions.
//
// Watches read the stored history. The conflict check does not: it asks
// the tenant's in-memory image of its retained history (historymem.go,
// with the conflict index of conflictindex.go), which is built from the
// stored history when the FSM opens and after a restore, and changed with
// it by the applier, so that a check costs O(log n) per read range instead
// of a scan of everything written since the read version.
//
// Layout: keyspace owns the keys (see its package doc), all inside the
// tenant's metadata span, and the state machine reaches them only through
// the tenant's store.TenantMetaView, made from its ID:
//
//	keyspace.TenantVersionKey(id)          versionState (5 x u64 big-endian)
//	keyspace.HistoryKey(id, version, i)    chunk i of the entry at version
//
// An entry is split into chunks of about logChunkTarget bytes, so that no
// stored value exceeds what a snapshot restore accepts. Chunk 0 (the head)
// carries the entry's metadata:
//
//	head         0x01 uvarint(version) uvarint(chunks) varint(at)
//	             uvarint(size) uvarint(len(txnID)) txnID record*
//	continuation 0x02 uvarint(version) uvarint(i) record*
//	record       kind:u8 uvarint(len(key)) key
//	             [set: uvarint(len(value)) value]
//	             [delete-range: uvarint(len(end)) end]
//
// # Retention
//
// Entries are pruned oldest first, at apply time, deterministically, and
// the newest entry always stays (appendHistory, expireHistories):
//
//   - by age, at most prunePerWrite per write: an entry goes when its
//     timestamp is more than HistoryWindow older than the newest timestamp
//     the tenant has seen; and on every write, of any tenant, up to
//     prunePerWrite entries of any tenants go that are more than
//     HistoryWindow older than that write's timestamp, oldest first (then
//     by tenant ID), so that a tenant gone quiet loses its expired history
//     too;
//   - by size: at most prunePerWrite per write while the tenant holds more
//     than HistoryMaxEntries entries, up to prunePerWriteMax while it holds
//     more than HistoryMaxBytes bytes of records or HistoryMaxIndexBytes of
//     conflict index.
//
// Both depend only on the commands and the replicated state, never on how
// raft batched the entries. The versions in the history are contiguous,
// from versionState.First to versionState.Version. A read version R can be
// checked when every entry after it is still there: R >= First-1.
const (
	// HistoryWindow is how long, in proposer time, the history keeps a write.
	HistoryWindow = int64(10e9) // 10 s in nanoseconds
	// HistoryMaxEntries caps the entries kept per tenant.
	HistoryMaxEntries = 100_000
	// HistoryMaxBytes caps the record bytes kept per tenant.
	HistoryMaxBytes = 64 << 20
	// HistoryMaxIndexBytes caps the memory of a tenant's conflict index,
	// as recordCost counts it: the history is pruned to stay within it.
	HistoryMaxIndexBytes = 16 << 20

	prunePerWrite    = 8
	prunePerWriteMax = 1024
	logChunkTarget   = 256 << 10

	chunkHead         = 0x01
	chunkContinuation = 0x02
)

// versionState is a tenant's version counter and the extent of its history.
type versionState struct {
	// Version is the tenant's current version.
	Version uint64
	// First is the version of the oldest entry kept, Version+1 when the
	// history is empty.
	First uint64
	// Count and Bytes measure the history: entries and record bytes.
	Count uint64
	Bytes uint64
	// LastAt is the newest proposer timestamp seen (Unix nanoseconds).
	LastAt int64
}

// minReadVersion is the oldest read version whose conflicts can be checked.
func (s *versionState) minReadVersion() uint64 { return s.First - 1 }

func encodeVersionState(s *versionState) []byte {
	b := make([]byte, 0, 40)
	b = binary.BigEndian.AppendUint64(b, s.Version)
	b = binary.BigEndian.AppendUint64(b, s.First)
	b = binary.BigEndian.AppendUint64(b, s.Count)
	b = binary.BigEndian.AppendUint64(b, s.Bytes)
	return binary.BigEndian.AppendUint64(b, uint64(s.LastAt))
}

func decodeVersionState(b []byte) (*versionState, error) {
	if len(b) != 40 {
		return nil, fmt.Errorf("%w: version record of %d bytes", keyspace.ErrInvalidRecord, len(b))
	}
	s := &versionState{
		Version: binary.BigEndian.Uint64(b),
		First:   binary.BigEndian.Uint64(b[8:]),
		Count:   binary.BigEndian.Uint64(b[16:]),
		Bytes:   binary.BigEndian.Uint64(b[24:]),
		LastAt:  int64(binary.BigEndian.Uint64(b[32:])),
	}
	if s.First == 0 || s.First > s.Version+1 || s.Count != s.Version+1-s.First {
		return nil, fmt.Errorf("%w: version record %+v", keyspace.ErrInvalidRecord, *s)
	}
	return s, nil
}

// readVersionState reads tenant id's version state through m, the view of
// the tenant's records; a tenant never written is at version 0 with an
// empty history. If m is bound to another tenant than id, the read is
// refused (keyspace.ErrOutsideSpan).
func readVersionState(m *store.TenantMetaView, id keyspace.TenantID) (*versionState, error) {
	v, err := m.Get(keyspace.TenantVersionKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return &versionState{First: 1}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeVersionState(v)
}

// logRecord is one write of an entry. Kind is OpSet, OpDelete or
// OpDeleteRange; the slices alias the buffer they were decoded from.
type logRecord struct {
	Kind  command.OpKind
	Key   []byte
	Value []byte
	End   []byte
}

func appendRecord(dst []byte, op *command.Op) []byte {
	dst = append(dst, byte(op.Kind))
	dst = binary.AppendUvarint(dst, uint64(len(op.Key)))
	dst = append(dst, op.Key...)
	switch op.Kind {
	case command.OpSet:
		dst = binary.AppendUvarint(dst, uint64(len(op.Value)))
		dst = append(dst, op.Value...)
	case command.OpDeleteRange:
		dst = binary.AppendUvarint(dst, uint64(len(op.End)))
		dst = append(dst, op.End...)
	}
	return dst
}

// encodeEntry encodes the entry of ops at version as chunks, and returns
// them with the record bytes they hold. ops holds only set, delete and
// delete-range.
func encodeEntry(version uint64, at int64, txnID []byte, ops []command.Op) (chunks [][]byte, size uint64) {
	for i := range ops {
		size += uint64(recordSize(&ops[i]))
	}
	if size >= logChunkTarget {
		return encodeChunked(version, at, txnID, ops)
	}
	// One chunk (records are cut only once a chunk reaches the target),
	// written in one allocation: the head, then the records.
	c := make([]byte, 0, 1+4*binary.MaxVarintLen64+binary.MaxVarintLen32+len(txnID)+int(size))
	c = appendHead(c, version, 1, at, size, txnID)
	for i := range ops {
		c = appendRecord(c, &ops[i])
	}
	return [][]byte{c}, size
}

// recordSize is the length appendRecord gives op's record.
func recordSize(op *command.Op) int {
	n := 1 + uvarintLen(len(op.Key)) + len(op.Key)
	switch op.Kind {
	case command.OpSet:
		n += uvarintLen(len(op.Value)) + len(op.Value)
	case command.OpDeleteRange:
		n += uvarintLen(len(op.End)) + len(op.End)
	}
	return n
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// appendHead appends the head of an entry's first chunk.
func appendHead(h []byte, version, chunks uint64, at int64, size uint64, txnID []byte) []byte {
	h = append(h, chunkHead)
	h = binary.AppendUvarint(h, version)
	h = binary.AppendUvarint(h, chunks)
	h = binary.AppendVarint(h, at)
	h = binary.AppendUvarint(h, size)
	h = binary.AppendUvarint(h, uint64(len(txnID)))
	return append(h, txnID...)
}

// encodeChunked is encodeEntry for any size: it cuts the records into
// chunks of about logChunkTarget bytes.
func encodeChunked(version uint64, at int64, txnID []byte, ops []command.Op) (chunks [][]byte, size uint64) {
	var bodies [][]byte
	var cur []byte
	for i := range ops {
		before := len(cur)
		cur = appendRecord(cur, &ops[i])
		size += uint64(len(cur) - before)
		if len(cur) >= logChunkTarget {
			bodies = append(bodies, cur)
			cur = nil
		}
	}
	if len(cur) > 0 || len(bodies) == 0 {
		bodies = append(bodies, cur)
	}
	chunks = make([][]byte, len(bodies))
	for i, body := range bodies {
		var h []byte
		if i == 0 {
			h = appendHead(h, version, uint64(len(bodies)), at, size, txnID)
		} else {
			h = append(h, chunkContinuation)
			h = binary.AppendUvarint(h, version)
			h = binary.AppendUvarint(h, uint64(i))
		}
		chunks[i] = append(h, body...)
	}
	return chunks, size
}

// entryHead is the metadata of an entry, from its head chunk.
type entryHead struct {
	Version uint64
	Chunks  uint64
	At      int64
	Size    uint64
	TxnID   []byte // aliases the chunk
}

var errCorruptLog = errors.New("raft: corrupt write history")

// chunkReader decodes the fields of a chunk.
type chunkReader struct {
	b   []byte
	err error
}

func (r *chunkReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad uvarint", errCorruptLog)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *chunkReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errCorruptLog)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *chunkReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: length %d beyond the chunk", errCorruptLog, n)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// decodeChunk parses a chunk. head is nil for a continuation; body holds
// its records.
func decodeChunk(b []byte) (version uint64, index uint64, head *entryHead, body []byte, err error) {
	if len(b) == 0 {
		return 0, 0, nil, nil, fmt.Errorf("%w: empty chunk", errCorruptLog)
	}
	r := chunkReader{b: b[1:]}
	switch b[0] {
	case chunkHead:
		h := &entryHead{}
		h.Version = r.uvarint()
		h.Chunks = r.uvarint()
		h.At = r.varint()
		h.Size = r.uvarint()
		h.TxnID = r.bytes()
		if r.err == nil && h.Chunks == 0 {
			r.err = fmt.Errorf("%w: entry of no chunks", errCorruptLog)
		}
		return h.Version, 0, h, r.b, r.err
	case chunkContinuation:
		version = r.uvarint()
		index = r.uvarint()
		return version, index, nil, r.b, r.err
	}
	return 0, 0, nil, nil, fmt.Errorf("%w: chunk tag %#x", errCorruptLog, b[0])
}

// eachRecord calls fn for every record of a chunk body until fn returns
// false.
func eachRecord(body []byte, fn func(*logRecord) bool) error {
	r := chunkReader{b: body}
	var rec logRecord
	for len(r.b) > 0 {
		rec = logRecord{Kind: command.OpKind(r.b[0])}
		r.b = r.b[1:]
		rec.Key = r.bytes()
		switch rec.Kind {
		case command.OpSet:
			rec.Value = r.bytes()
		case command.OpDelete:
		case command.OpDeleteRange:
			rec.End = r.bytes()
		default:
			return fmt.Errorf("%w: record kind %d", errCorruptLog, uint8(rec.Kind))
		}
		if r.err != nil {
			return r.err
		}
		if !fn(&rec) {
			return nil
		}
	}
	return nil
}

// scanHistory calls fn for every chunk of tenant id's entries with versions
// in (after, upTo], in order, checking that the versions are contiguous and
// every entry complete. fn returns false to stop. head is set on the first
// chunk of each entry. It reads through m, the view of the tenant's
// records: if m is bound to another tenant than id, the scan is refused
// (keyspace.ErrOutsideSpan) and fn never called.
func scanHistory(m *store.TenantMetaView, id keyspace.TenantID, after, upTo uint64,
	fn func(version uint64, head *entryHead, body []byte) (bool, error)) error {
	if upTo <= after {
		return nil
	}
	want := after + 1 // the version of the next head
	var chunks, seen uint64
	var cbErr error
	stopped := false
	start, end := keyspace.HistorySpan(id, after, upTo)
	err := m.Scan(start, end, func(_, v []byte) bool {
		version, index, head, body, err := decodeChunk(v)
		switch {
		case err != nil:
			cbErr = err
			return false
		case head != nil:
			if seen != chunks || version != want {
				cbErr = fmt.Errorf("%w: tenant %d: entry %d where %d was due (%d of %d chunks seen)", errCorruptLog, id, version, want, seen, chunks)
				return false
			}
			want++
			chunks, seen = head.Chunks, 1
		default:
			if version != want-1 || index != seen || seen >= chunks {
				cbErr = fmt.Errorf("%w: tenant %d: stray chunk %d of entry %d", errCorruptLog, id, index, version)
				return false
			}
			seen++
		}
		ok, err := fn(version, head, body)
		if err != nil {
			cbErr = err
			return false
		}
		if !ok {
			stopped = true
		}
		return ok
	})
	if err == nil {
		err = cbErr
	}
	if err != nil {
		return err
	}
	if !stopped && (want != upTo+1 || seen != chunks) {
		return fmt.Errorf("%w: tenant %d: history ends at entry %d (%d of %d chunks), want %d", errCorruptLog, id, want-1, seen, chunks, upTo)
	}
	return nil
}

// normalizeRanges returns the ranges sorted by start and merged where they
// overlap or touch. An empty End (the end of the tenant) absorbs every
// range after it. The input is not modified.
func normalizeRanges(in []command.KeyRange) []command.KeyRange {
	if len(in) == 0 {
		return nil
	}
	rs := make([]command.KeyRange, len(in))
	copy(rs, in)
	sort.Slice(rs, func(i, j int) bool { return bytes.Compare(rs[i].Start, rs[j].Start) < 0 })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if len(last.End) == 0 {
			break // the last range runs to the end of the tenant
		}
		if bytes.Compare(r.Start, last.End) <= 0 {
			if len(r.End) == 0 || bytes.Compare(r.End, last.End) > 0 {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// intersects reports whether a write record touches any of the normalized
// ranges rs.
func intersects(rs []command.KeyRange, rec *logRecord) bool {
	start, end := rec.Key, rec.End
	if rec.Kind != command.OpDeleteRange {
		// A point write of k touches [k, k+"\x00").
		end = nil
	}
	// The first range whose end lies after start (ends are increasing).
	i := sort.Search(len(rs), func(i int) bool {
		return len(rs[i].End) == 0 || bytes.Compare(rs[i].End, start) > 0
	})
	if i == len(rs) {
		return false
	}
	r := &rs[i]
	if rec.Kind != command.OpDeleteRange {
		return bytes.Compare(r.Start, start) <= 0
	}
	return len(end) == 0 || bytes.Compare(r.Start, end) < 0
}
