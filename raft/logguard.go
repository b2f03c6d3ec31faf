package raft

import (
	"fmt"

	hraft "github.com/hashicorp/raft"
)

// Fail-stop on a failed write to the raft log and stable store.
//
// hashicorp/raft v1.7.3 survives a failed write of its log in ways that
// leave the node running but useless: a leader whose append fails steps
// down, and a lone node then re-elects itself and fails again, forever; a
// follower whose append fails right after it deleted a conflicting suffix
// keeps a stale last index in memory and stops replicating until it
// restarts. A failed write is a disk the node can no longer trust, so the
// node treats it like a storage failure of its FSM: it stops itself (Err,
// Done, Config.OnFatal), and whoever runs it restarts it once the disk is
// fixed; raft then reads its state back from the log and raft.db.
//
// One failure this cannot make clean: a failed write of the current term
// (setCurrentTerm) makes raft panic on its own goroutine as soon as the
// error is returned, before the node has had time to stop
// (docs/RELIABILITY.md).

// failStopLogStore is the log and stable store raft is given (the Pebble
// log or raft.db, and raft.db), beneath raft's log cache (which wraps append
// errors as text) and around the Config.LogFaults test hook, so that it sees
// every error of the stores, injected ones included. Reads pass through untouched. Any error of a
// write (StoreLog, StoreLogs, DeleteRange, Set, SetUint64) is handed to
// stop, with the operation named, and then returned to raft unchanged.
//
// Later writes still reach the stores until the node has shut down, which
// takes moments: refusing them would make raft panic at its next term
// write instead of stopping cleanly. It is safe for concurrent use if inner
// and stop are.
type failStopLogStore struct {
	inner raftStores
	stop  func(error) // Node.fatal: records, logs, shuts down asynchronously
}

var (
	_ hraft.LogStore    = (*failStopLogStore)(nil)
	_ hraft.StableStore = (*failStopLogStore)(nil)
)

// failed hands a write's error to stop and returns it unchanged.
func (s *failStopLogStore) failed(op LogOp, err error) error {
	if err != nil {
		s.stop(fmt.Errorf("raft: raft log: %s: %w", op, err))
	}
	return err
}

func (s *failStopLogStore) FirstIndex() (uint64, error) { return s.inner.FirstIndex() }

func (s *failStopLogStore) LastIndex() (uint64, error) { return s.inner.LastIndex() }

func (s *failStopLogStore) GetLog(index uint64, log *hraft.Log) error {
	return s.inner.GetLog(index, log)
}

func (s *failStopLogStore) StoreLog(log *hraft.Log) error {
	return s.failed(LogOp{Kind: LogOpStore, First: log.Index, Last: log.Index}, s.inner.StoreLog(log))
}

func (s *failStopLogStore) StoreLogs(logs []*hraft.Log) error {
	op := LogOp{Kind: LogOpStore}
	if len(logs) > 0 {
		op.First, op.Last = logs[0].Index, logs[len(logs)-1].Index
	}
	return s.failed(op, s.inner.StoreLogs(logs))
}

func (s *failStopLogStore) DeleteRange(lo, hi uint64) error {
	return s.failed(LogOp{Kind: LogOpDelete, First: lo, Last: hi}, s.inner.DeleteRange(lo, hi))
}

func (s *failStopLogStore) Set(key, val []byte) error {
	return s.failed(LogOp{Kind: LogOpSetStable, Key: string(key)}, s.inner.Set(key, val))
}

func (s *failStopLogStore) Get(key []byte) ([]byte, error) { return s.inner.Get(key) }

func (s *failStopLogStore) SetUint64(key []byte, val uint64) error {
	return s.failed(LogOp{Kind: LogOpSetStable, Key: string(key)}, s.inner.SetUint64(key, val))
}

func (s *failStopLogStore) GetUint64(key []byte) (uint64, error) { return s.inner.GetUint64(key) }
