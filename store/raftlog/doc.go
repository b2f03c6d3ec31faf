// Package raftlog is a replicated log's durable record: entries numbered by
// a uint64 index, kept in a Pebble instance of their own. The raft adapter
// builds hashicorp/raft's LogStore on it (raft/pebblelog.go); this package
// knows nothing of raft and treats every entry as opaque bytes.
//
// # Why a Pebble of its own
//
// Every raft entry must be durable before the node acknowledges it, so the
// log's cost per append is the cost of the write path to the disk. With
// raft-boltdb, one append is one bbolt transaction, and a bbolt commit
// writes its dirty pages and fdatasyncs, then writes its meta page and
// fdatasyncs again: two syncs in a row. A Pebble commit with pebble.Sync is
// one record appended to the write-ahead log and one fdatasync, and
// concurrent commits share that sync (group commit). Recycled WAL files are
// overwritten in place, so the sync does not have to persist a new file
// size either. Truncating the log (raft's compaction after a snapshot, or
// the removal of a conflicting suffix) is one range deletion: one small WAL
// record, whatever the number of entries, where bbolt deletes key by key.
//
// The log does not share the data's Pebble instance: the data store commits
// without syncing (the raft log is the durable record, see raft/DESIGN.md),
// is tuned for tenant reads (bloom filters, a large block cache) and is
// replaced wholesale by a snapshot restore, none of which suits a log. In a
// shared WAL, every sync of the log would also carry the data's unsynced
// writes to the disk; in its own, a sync carries the log's bytes only.
//
// # Layout
//
// An entry's key is one prefix byte (entryPrefix) and its index as 8 bytes
// big-endian, so keys sort by index; its value is the caller's bytes,
// unchanged. Index 0 is never stored: FirstIndex and LastIndex report 0 for
// an empty log.
//
// # Indexes, gaps and overwrites
//
// FirstIndex and LastIndex are the lowest and highest index present. They
// are found by two seeks at Open and kept in memory after that. Append does
// not require contiguous indexes: an entry is written under its own index,
// replacing an entry already there, and entries past the appended ones are
// left in place. A log that must stay contiguous is kept so by its caller
// (hashicorp/raft deletes a conflicting suffix before it appends in its
// place, and leaves a gap on purpose only after restoring a snapshot);
// a missing index inside [FirstIndex, LastIndex] reads as ErrNotFound.
//
// # Durability and errors
//
// Append and DeleteRange return once their write is synced to the disk. A
// read or write error of the disk is returned, wrapped with the operation.
// One class of failure is not returned, a limitation of Pebble v2.1.7: a
// failed write or sync of the write-ahead log is fatal to Pebble, which
// calls its logger's Fatalf; the logger given to Pebble panics with the
// message (after logging it), since Pebble must not continue past it.
//
// # Concurrency and ownership
//
// A *Log is safe for concurrent use. Concurrent Appends commit together
// (one WAL write and one sync for all of them); DeleteRange waits for the
// Appends in flight and holds new ones back until it has synced. Reads
// (Get, FirstIndex, LastIndex) never wait for a sync. Slices returned by Get
// belong to the caller; values handed to Append may be reused once it
// returns.
package raftlog
