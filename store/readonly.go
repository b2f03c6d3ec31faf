package store

import (
	"io"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// ReadOnly is the store as a reader of replicated state sees it: the server
// serves clients from it, while every write reaches the store only through
// a Batch committed by the state machine as raft applies the log. Nothing
// reachable from a ReadOnly, including the values its methods return, can
// write. It is safe for concurrent use and valid until its Store is closed.
type ReadOnly struct{ s *Store }

// ReadOnly returns the read-only view of s.
func (s *Store) ReadOnly() *ReadOnly { return &ReadOnly{s: s} }

// Tenant returns a reader of tenant id over the live database. It fails only
// for an invalid ID.
func (r *ReadOnly) Tenant(id keyspace.TenantID) (*TenantReader, error) { return r.s.Tenant(id) }

// NewSnapshot captures the current state of the store, for reads that must
// all come from one point in time. The caller must Close it.
func (r *ReadOnly) NewSnapshot() *SnapshotReader { return &SnapshotReader{sn: r.s.NewSnapshot()} }

// AppliedIndex returns the last applied raft index recorded in the store.
func (r *ReadOnly) AppliedIndex() (uint64, error) { return r.s.AppliedIndex() }

// EstimateTenantDiskUsage estimates the bytes on disk used by tenant id's
// span. Data still in memtables is not counted.
func (r *ReadOnly) EstimateTenantDiskUsage(id keyspace.TenantID) (uint64, error) {
	return r.s.EstimateTenantDiskUsage(id)
}

// Metrics returns a one-line summary of engine metrics for logs.
func (r *ReadOnly) Metrics() string { return r.s.Metrics() }

// SnapshotReader is a consistent point-in-time view of the store that hands
// out only readers. It is safe for concurrent use and must be closed.
type SnapshotReader struct{ sn *Snapshot }

// Tenant returns a reader of tenant id at the snapshot.
func (sr *SnapshotReader) Tenant(id keyspace.TenantID) (*TenantReader, error) {
	return newTenantReader(id, sr.sn.s)
}

// AppliedIndex returns the applied index recorded at the snapshot.
func (sr *SnapshotReader) AppliedIndex() (uint64, error) { return sr.sn.AppliedIndex() }

// Close releases the snapshot.
func (sr *SnapshotReader) Close() error { return sr.sn.Close() }

// TenantReader reads the keys of exactly one tenant, in user keys. It is a
// TenantView without the writes: it can only be made from a tenant ID, no
// method reaches outside the tenant's span, and none changes anything. It
// is safe for concurrent use when made over the live store or a snapshot.
type TenantReader struct {
	// v does the reading; its writer refuses, so even a write that found
	// its way to v would change nothing.
	v *TenantView
}

func newTenantReader(id keyspace.TenantID, r pebble.Reader) (*TenantReader, error) {
	v, err := newTenantView(id, r, readOnlyWriter{})
	if err != nil {
		return nil, err
	}
	return &TenantReader{v: v}, nil
}

// ID returns the tenant the reader is bound to.
func (tr *TenantReader) ID() keyspace.TenantID { return tr.v.ID() }

// Get returns a copy of the value of key, or ErrNotFound.
func (tr *TenantReader) Get(key []byte) ([]byte, error) { return tr.v.Get(key) }

// GetVersioned returns a copy of the value of key and the version at which
// the key last changed, or ErrNotFound.
func (tr *TenantReader) GetVersioned(key []byte) ([]byte, uint64, error) {
	return tr.v.GetVersioned(key)
}

// Scan returns the pairs in [start, end) in order (or reverse order), at most
// opts.Limit of them, and whether more pairs remain in the range.
func (tr *TenantReader) Scan(start, end []byte, opts *ScanOptions) ([]KV, bool, error) {
	return tr.v.Scan(start, end, opts)
}

// NewIterator returns an iterator over [start, end) of the tenant's user
// keys. The caller must Close it.
func (tr *TenantReader) NewIterator(start, end []byte, reverse bool) (*Iterator, error) {
	return tr.v.NewIterator(start, end, reverse)
}

// ExportTenant writes every key of the tenant, in order, as a tenant stream
// (user keys), and returns the number of records written. Use a
// SnapshotReader's reader for a consistent export.
func (tr *TenantReader) ExportTenant(w io.Writer) (uint64, error) { return tr.v.ExportTenant(w) }
