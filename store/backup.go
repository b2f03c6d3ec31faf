package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// # Backups
//
// A backup of the whole replicated state is the store stream of one
// snapshot (the format Snapshot.WriteTo writes and Restore reads), pulled
// by a reader in pieces of its choosing (StoreStream), so that a node can
// hand it out over the network page by page without holding more than a
// page of it. VerifyStoreStream reads such a stream to its end and checks
// every record as Restore would, writing nothing: a restore tool checks a
// whole file with it before it creates anything.

// errPartialRestore is why a stream of a store that holds a partial
// restore is refused: its records are not the state at any applied index.
var errPartialRestore = errors.New("store: the snapshot holds a partial restore")

// StoreStream is the whole-store stream of one snapshot, encoded as it is
// read: Read encodes records only until it can fill the caller's buffer,
// so memory stays at the stream writer's buffer (256 KiB) and one record,
// whatever the size of the store. It also computes the snapshot's Checksum
// over the same records, in the same pass. A store holding a partial
// restore (the marker Restore sets) fails the stream instead of being
// copied as if it were whole.
//
// It is not safe for concurrent use. Close releases its iterator; the
// snapshot must stay open until then.
type StoreStream struct {
	it    *pebble.Iterator
	valid bool         // it is positioned on a record not yet encoded
	out   bytes.Buffer // encoded bytes not read yet
	sw    *StreamWriter
	sum   *checksum
	done  bool  // the trailer is in out
	err   error // sticky
}

// NewStoreStream returns a stream of every key of the snapshot, tenants and
// system keyspace alike. The caller must Close it before the snapshot.
func (sn *Snapshot) NewStoreStream() (*StoreStream, error) {
	it, err := sn.s.NewIter(&pebbleIterAll)
	if err != nil {
		return nil, fmt.Errorf("store: backup stream: %w", err)
	}
	s := &StoreStream{it: it, sum: newChecksum()}
	if s.sw, err = NewStreamWriter(&s.out, StreamStore); err != nil {
		it.Close()
		return nil, err
	}
	s.valid = it.First()
	return s, nil
}

// Read fills p with the next bytes of the stream. It returns io.EOF after
// the trailer, and the first error met (storage, or a partial restore)
// once the bytes before it were read.
func (s *StoreStream) Read(p []byte) (int, error) {
	for s.out.Len() < len(p) && !s.done && s.err == nil {
		s.step()
	}
	if s.out.Len() > 0 {
		return s.out.Read(p)
	}
	if s.err != nil {
		return 0, s.err
	}
	return 0, io.EOF
}

// step encodes one record, or the trailer after the last one.
func (s *StoreStream) step() {
	if !s.valid {
		if err := s.it.Error(); err != nil {
			s.err = fmt.Errorf("store: backup stream: %w", err)
			return
		}
		if err := s.sw.Close(); err != nil {
			s.err = fmt.Errorf("store: backup stream: %w", err)
			return
		}
		s.done = true
		return
	}
	k := s.it.Key()
	if string(k) == string(restoreMarker) {
		s.err = errPartialRestore
		return
	}
	v, err := s.it.ValueAndErr()
	if err != nil {
		s.err = fmt.Errorf("store: backup stream: %w", err)
		return
	}
	s.sum.add(k, v)
	if err := s.sw.Write(k, v); err != nil {
		s.err = fmt.Errorf("store: backup stream: %w", err)
		return
	}
	s.valid = s.it.Next()
}

// Records returns the number of records encoded so far.
func (s *StoreStream) Records() uint64 { return s.sw.Count() }

// Checksum returns the snapshot's Checksum, computed over the records
// streamed; it fails until the stream has been read to its end.
func (s *StoreStream) Checksum() (uint64, error) {
	if !s.done || s.out.Len() > 0 {
		return 0, errors.New("store: backup stream: checksum asked before the end")
	}
	return s.sum.sum(), nil
}

// Close releases the stream's iterator. It is idempotent.
func (s *StoreStream) Close() error {
	if s.it == nil {
		return nil
	}
	err := s.it.Close()
	s.it = nil
	s.valid = false
	s.out.Reset()
	s.done = false
	s.err = errStreamClosed
	return err
}

var errStreamClosed = errors.New("store: backup stream: closed")

// StreamSummary describes a whole-store stream read to its end.
type StreamSummary struct {
	// Records counts the stream's records.
	Records uint64
	// AppliedIndex is the applied raft index the stream records (0 when
	// it records none).
	AppliedIndex uint64
	// Checksum is the Checksum a store restored from the stream has.
	Checksum uint64
	// Bytes is the stream's length.
	Bytes uint64
}

// VerifyStoreStream reads a whole-store stream from r to its end and checks
// it as Restore would (its header, every record's key and value, its record
// count and CRC), and more strictly: keys strictly ascending, as
// Snapshot.WriteTo writes them, no restore marker, and nothing after the
// trailer in what it has read (it reads ahead: a caller that must know r
// ends there reads r on). It writes nothing.
// A stream it accepts restores to a store whose Checksum is the summary's
// Checksum; it returns an error matching ErrCorruptStream for any stream it
// refuses.
func VerifyStoreStream(r io.Reader) (StreamSummary, error) {
	var out StreamSummary
	cr := &countingReader{r: r}
	sr, err := newStoreStreamReader(cr)
	if err != nil {
		return out, err
	}
	sum := newChecksum()
	applied := keyspace.AppliedIndexKey().Bytes()
	var last []byte
	for {
		k, v, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		if err := checkStoreRecord(k, v); err != nil {
			return out, err
		}
		if string(k) == string(restoreMarker) {
			return out, corrupt("the stream holds a partial restore")
		}
		if out.Records > 0 && bytes.Compare(k, last) <= 0 {
			return out, corrupt("record %d: key %q does not follow %q", out.Records+1, k, last)
		}
		last = append(last[:0], k...)
		if string(k) == string(applied) {
			if out.AppliedIndex, err = keyspace.DecodeUint64(v); err != nil {
				return out, corrupt("applied index %x: %v", v, err)
			}
		}
		sum.add(k, v)
		out.Records++
	}
	if n := sr.r.Buffered(); n > 0 {
		return out, corrupt("%d or more bytes follow the trailer", n)
	}
	out.Checksum = sum.sum()
	out.Bytes = cr.n
	return out, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

// EstimateSize estimates the bytes of the whole store: its tables on disk
// and its memtables. A store stream of it is about as large when its data
// compresses little; it is meant for progress bars.
func (r *ReadOnly) EstimateSize() (uint64, error) {
	n, err := r.s.db.EstimateDiskUsage([]byte{0}, allKeysEnd)
	if err != nil {
		return 0, fmt.Errorf("store: estimate size: %w", err)
	}
	return n + r.s.db.Metrics().MemTable.Size, nil
}
