// Package store is the storage layer of tenantkv and the only package that
// imports Pebble (with its subpackages).
//
// # The raft log
//
// The raft log lives in a Pebble instance of its own, in package
// store/raftlog: one append there is one WAL write and one fdatasync (a
// raft-boltdb commit syncs twice, bbolt's pages and then its meta page),
// and a truncation is one range deletion. It shares nothing with this
// package's database, which commits without syncing because the raft log
// is the durable record.
//
// # Isolation by construction
//
// Callers never handle physical keys. They hold a *TenantView or a
// *TenantReader, made only from a tenant ID, whose methods take user keys;
// or the *SystemView, which reaches
// only the system keyspace (keys starting with 0xFF). Every iterator a view
// opens carries Pebble LowerBound and UpperBound set inside the tenant's span,
// and every key that comes back is checked once more against the tenant
// prefix before it is returned. There is no exported way to read or write a
// raw engine key.
//
// # A tenant's records in the system keyspace
//
// The state machine keeps records per tenant in the system keyspace: its
// usage counters, its version state and its write history, which copies
// the tenant's keys and values. They are reached only through a
// *TenantMetaView (Store.TenantMeta, Batch.TenantMeta, Snapshot.TenantMeta),
// made from a tenant ID, not through the SystemView. Its keys are computed
// by keyspace (TenantUsageKey, TenantVersionKey, HistoryKey, HistorySpan),
// and the view refuses with keyspace.ErrOutsideSpan any key or range outside
// the metadata span of its own tenant, so a wrong ID in the computing code
// reaches nothing of another tenant; its scans carry Pebble bounds inside
// that span, and every key they return is checked against it once more
// (ErrIsolation). In a Batch it reads and writes the indexed part, as the
// SystemView does. A keyspace.SystemKey can be made only by keyspace: the
// views take no raw bytes.
//
// # Views
//
//   - Store.Tenant (a TenantReader) and Store.System read the live database
//     and write nothing: there is no writer onto the live database, so
//     every write is part of a Batch.
//   - ReadOnly (Store.ReadOnly) is what readers of replicated state hold:
//     live TenantReaders, SnapshotReaders whose tenant views are
//     TenantReaders too, disk usage and metrics. Nothing reachable from it
//     writes.
//   - Batch.Tenant and Batch.System read through the batch (they see its own
//     writes) and write into it; Batch.Commit makes all of them durable
//     atomically together with an applied index.
//   - Batch.TenantUnindexed reads the store as last committed (not the
//     batch's own writes) and writes into an unindexed part of the batch,
//     whose range deletions no read ever fragments; the raft applier
//     overlays its own writes.
//   - Snapshot.Tenant and Snapshot.System read a consistent point in time and
//     refuse writes.
//   - TenantMeta on a Store, Batch or Snapshot is the view of one tenant's
//     records, with the reads and writes of the same receiver's System.
//
// # Versions
//
// Every tenant value on disk carries the tenant version at which its key
// last changed, in an envelope only this package reads or writes (see
// version.go). TenantView.SetVersioned records it (Set records 0);
// GetVersioned and Iterator.Version report it; everything else returns the
// user value alone.
//
// # Sizes of recently written values
//
// TenantView.CommittedSize answers, for a view of Batch.TenantUnindexed,
// the size of a key's committed value (or that it has none) from memory
// when a committed batch wrote the key recently: the raft applier's exact
// quota needs the size of every value a write replaces. Committed batches
// keep it exact; delete-ranges, restores and failed commits make it forget
// (sizecache.go).
//
// # Ownership
//
// Every slice returned by this package is a copy owned by the caller. Slices
// passed in may be reused by the caller once a call returns.
//
// # Concurrency
//
// A Store, its live views and Snapshots are safe for concurrent use. A Batch
// and the views made from it are not: one goroutine at a time. An Iterator is
// not safe for concurrent use and must be closed.
package store
