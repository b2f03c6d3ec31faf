package store

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// pebbleIterAll iterates every key tenantkv writes. Its LowerBound is nil,
// not empty: under -race Pebble enables invariant checks that read the first
// byte of a non-nil seek key (testingDisableSeekOpt), and panic on []byte{}.
var pebbleIterAll = pebble.IterOptions{LowerBound: nil, UpperBound: allKeysEnd}

// restoreMarker is set while Restore runs. A store found with it set holds a
// partial restore and must be restored again before use.
var restoreMarker = keyspace.MetaKey("restore-in-progress").Bytes()

// restoreChunk is how many bytes of records a restore commits at a time.
const restoreChunk = 4 << 20

// restoreRate bounds how fast a restore writes into the store. A restore
// writes every byte of the snapshot to Pebble's WAL and then again when the
// memtables flush; unpaced, a node installing a snapshot of a few hundred
// MB saturates the disk it shares with the voters (three nodes on one
// machine in tests, or co-located data directories), whose fsyncs then wait
// behind it. The node restoring serves nothing until it is done, so
// slowing it costs only its own catch-up time.
const restoreRate = 64 << 20 // bytes per second

// restorePacer spaces a restore's chunks to at most rate bytes a second
// on average; the first chunks of a burst pass at once.
type restorePacer struct {
	rate  float64
	start time.Time
	sent  float64
}

func newRestorePacer(rate int) *restorePacer {
	return &restorePacer{rate: float64(rate), start: time.Now()}
}

// wait records n more bytes written and sleeps until the average rate
// since the start is back within the bound.
func (p *restorePacer) wait(n int) {
	p.sent += float64(n)
	due := p.start.Add(time.Duration(p.sent / p.rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

// Restore replaces the whole content of the store with a store stream written
// by Snapshot.WriteTo. It first records a marker and clears everything, then
// loads the records in chunks, and removes the marker only when the stream's
// checksum has been verified. If Restore fails or the process dies midway,
// RestoreIncomplete reports true until a later Restore succeeds.
func (s *Store) Restore(r io.Reader) error {
	sr, err := newStoreStreamReader(r)
	if err != nil {
		return err
	}
	s.sizes.reset()
	defer s.sizes.reset()
	b := s.db.NewBatch()
	// The clear starts at allKeysStart, not at the empty key. Pebble's
	// iterator that merges the range deletions of several tables or
	// levels (compactions, table stats) ends the iteration after a span
	// whose start is nil, and an empty start can reach it as nil, copied
	// into a buffer not yet allocated: in every build by the table-stats
	// collector's defragmenting iterator (which then skipped the table's
	// later range deletions: stats and deletion hints only), and by the
	// span-invalidating wrapper that builds with Pebble's invariants on
	// (-race) put around range deletion iterators at random. There, a
	// compaction of the restore's table with a later one holding a deleted
	// tenant's range deletion skipped that deletion and kept the tenant's
	// keys: a restored replica, restarted, served a deleted tenant's data
	// (TestRestoreThenClearSurvivesCompaction; found by the fsm model
	// test's restarts of its restored twin).
	if err := b.DeleteRange(allKeysStart, allKeysEnd, nil); err != nil {
		return err
	}
	if err := b.Set(restoreMarker, []byte{1}, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: restore: clear: %w", err)
	}
	b.Close()
	b = s.db.NewBatch()
	defer func() { b.Close() }()
	pace := newRestorePacer(restoreRate)
	for {
		k, v, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := checkStoreRecord(k, v); err != nil {
			return err
		}
		if string(k) == string(restoreMarker) {
			continue
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() >= restoreChunk {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
			b.Close()
			b = s.db.NewBatch()
			pace.wait(restoreChunk)
		}
	}
	if err := b.Delete(restoreMarker, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	return nil
}

// newStoreStreamReader reads the header of a whole-store stream, with the
// bounds on records that Restore applies.
func newStoreStreamReader(r io.Reader) (*StreamReader, error) {
	sr, err := NewStreamReader(r, keyspace.MaxKeySize+keyspace.PrefixLen+64, keyspace.MaxValueSize+1<<20)
	if err != nil {
		return nil, err
	}
	if sr.Kind() != StreamStore {
		return nil, corrupt("restore needs a store stream, got kind %q", sr.Kind())
	}
	return sr, nil
}

// checkStoreRecord accepts a record of a whole-store stream only if its key
// is a well-formed tenant or system key and a tenant key's value a
// well-formed envelope.
func checkStoreRecord(k, v []byte) error {
	if err := checkPhysicalKey(k); err != nil {
		return err
	}
	if !keyspace.IsSystemKey(k) {
		if _, _, err := decodeEnvelope(v); err != nil {
			return corrupt("key %q: %v", k, err)
		}
	}
	return nil
}

// RestoreIncomplete reports whether a Restore was started and not finished.
func (s *Store) RestoreIncomplete() (bool, error) {
	_, err := get(s.db, restoreMarker)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
