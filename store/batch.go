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
	b *pebble.Batch
	// data holds the writes of TenantUnindexed views: a plain batch, never
	// read, so that its range deletions are never fragmented by a read
	// (Pebble re-fragments every range deletion of an indexed batch on
	// each Get). Created on first use.
	data *pebble.Batch
	db   *pebble.DB
	// done is set once the batch is committed or closed. Pebble recycles a
	// closed batch through a pool, so after that b.b may belong to another
	// Batch and must never be touched again: not by a second Close or
	// Commit, and not by a view made from this batch (see batchReader).
	done bool
	sys  *SystemView
	// sizes is the store's size cache; dataNotes and notes are what the
	// writes of the unindexed and the indexed part do to it (sizecache.go).
	sizes            *sizeCache
	dataNotes, notes []sizeNote
}

// NewBatch starts an empty batch.
func (s *Store) NewBatch() *Batch {
	b := &Batch{b: s.db.NewIndexedBatch(), db: s.db, sizes: &s.sizes}
	b.sys = &SystemView{r: batchReader{b}, w: batchWriter{b}}
	return b
}

// Tenant returns a view of tenant id that reads through the batch and writes
// into it. It fails only for an invalid ID. Once the batch is committed or
// closed, the view's methods return ErrClosed.
func (b *Batch) Tenant(id keyspace.TenantID) (*TenantView, error) {
	return newTenantView(id, batchReader{b}, batchWriter{b})
}

// TenantUnindexed returns a view of tenant id that reads the store as last
// committed, NOT this batch's own writes, and writes into a separate,
// unindexed part of the batch. A caller that needs its earlier writes must
// overlay them itself (the raft applier does). Reads through it cost what
// reads of the store cost, however many range deletions the batch holds.
// At Commit, the writes of TenantUnindexed views come before those of every
// other view of the batch; do not write one tenant through both kinds of
// view. It fails only for an invalid ID.
func (b *Batch) TenantUnindexed(id keyspace.TenantID) (*TenantView, error) {
	return newTenantView(id, committedReader{b}, dataWriter{b})
}

// System returns the system view of the batch.
func (b *Batch) System() *SystemView { return b.sys }

// Empty reports whether the batch holds no mutations. A committed or closed
// batch is empty.
func (b *Batch) Empty() bool { return b.done || (b.b.Empty() && (b.data == nil || b.data.Empty())) }

// Len returns the encoded size of the batch in bytes, 0 once it is committed
// or closed.
func (b *Batch) Len() int {
	if b.done {
		return 0
	}
	n := b.b.Len()
	if b.data != nil {
		n += b.data.Len()
	}
	return n
}

// Commit writes the batch atomically. If appliedIndex is not zero it is
// recorded in the same write, so that the data and the index that produced it
// are never out of step. With sync the write is durable when Commit returns;
// without it, it survives a process crash but not a machine crash. The batch
// is closed afterwards, whatever the outcome; committing it again returns
// ErrClosed.
func (b *Batch) Commit(appliedIndex uint64, sync bool) error {
	if b.done {
		return ErrClosed
	}
	defer b.Close()
	pb := b.b
	if b.data != nil {
		// The unindexed part first, then the indexed one, in one batch.
		if err := b.data.Apply(b.b, nil); err != nil {
			return fmt.Errorf("store: join batch parts: %w", err)
		}
		pb = b.data
	}
	if appliedIndex != 0 {
		if err := pb.Set(keyspace.AppliedIndexKey().Bytes(), keyspace.EncodeUint64(appliedIndex), nil); err != nil {
			return fmt.Errorf("store: record applied index: %w", err)
		}
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := pb.Commit(wo); err != nil {
		b.sizes.reset() // whatever Pebble took, the cache cannot tell
		return fmt.Errorf("store: commit batch: %w", err)
	}
	// Pebble applied the unindexed part first.
	b.sizes.apply(b.dataNotes)
	b.sizes.apply(b.notes)
	return nil
}

// Close discards an uncommitted batch. Closing a committed or closed batch is
// a no-op.
func (b *Batch) Close() {
	if b.done {
		return
	}
	b.done = true
	_ = b.b.Close()
	if b.data != nil {
		_ = b.data.Close()
	}
}

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
