package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Batch collects mutations to several tenants and the system keyspace and
// commits them atomically. Reads through its views see the batch's own
// writes. A Batch is not safe for concurrent use.
type Batch struct {
	b   *pebble.Batch
	sys *SystemView
}

// NewBatch starts an empty batch.
func (s *Store) NewBatch() *Batch {
	pb := s.db.NewIndexedBatch()
	return &Batch{b: pb, sys: &SystemView{r: pb, w: batchWriter{pb}}}
}

// Tenant returns a view of tenant id that reads through the batch and writes
// into it. It fails only for an invalid ID.
func (b *Batch) Tenant(id keyspace.TenantID) (*TenantView, error) {
	return newTenantView(id, b.b, batchWriter{b.b})
}

// System returns the system view of the batch.
func (b *Batch) System() *SystemView { return b.sys }

// Empty reports whether the batch holds no mutations.
func (b *Batch) Empty() bool { return b.b.Empty() }

// Len returns the encoded size of the batch in bytes.
func (b *Batch) Len() int { return b.b.Len() }

// Commit writes the batch atomically. If appliedIndex is not zero it is
// recorded in the same write, so that the data and the index that produced it
// are never out of step. With sync the write is durable when Commit returns;
// without it, it survives a process crash but not a machine crash. The batch
// is closed afterwards, whatever the outcome.
func (b *Batch) Commit(appliedIndex uint64, sync bool) error {
	defer b.b.Close()
	if appliedIndex != 0 {
		if err := b.b.Set(keyspace.AppliedIndexKey(), keyspace.EncodeUint64(appliedIndex), nil); err != nil {
			return fmt.Errorf("store: record applied index: %w", err)
		}
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := b.b.Commit(wo); err != nil {
		return fmt.Errorf("store: commit batch: %w", err)
	}
	return nil
}

// Close discards an uncommitted batch. Closing a committed batch is a no-op.
func (b *Batch) Close() { _ = b.b.Close() }

// Snapshot is a consistent, read-only point-in-time view of the store. It is
// safe for concurrent use and must be closed.
type Snapshot struct {
	s   *pebble.Snapshot
	sys *SystemView
}

// NewSnapshot captures the current state of the store.
func (s *Store) NewSnapshot() *Snapshot {
	ps := s.db.NewSnapshot()
	return &Snapshot{s: ps, sys: &SystemView{r: ps, w: readOnlyWriter{}}}
}

// Tenant returns a read-only view of tenant id at the snapshot.
func (sn *Snapshot) Tenant(id keyspace.TenantID) (*TenantView, error) {
	return newTenantView(id, sn.s, readOnlyWriter{})
}

// System returns a read-only view of the system keyspace at the snapshot.
func (sn *Snapshot) System() *SystemView { return sn.sys }

// AppliedIndex returns the applied index recorded at the snapshot.
func (sn *Snapshot) AppliedIndex() (uint64, error) {
	v, err := sn.sys.Get(keyspace.AppliedIndexKey())
	if err == ErrNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return keyspace.DecodeUint64(v)
}

// Close releases the snapshot.
func (sn *Snapshot) Close() error { return sn.s.Close() }
