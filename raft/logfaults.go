package raft

import (
	"fmt"

	hraft "github.com/hashicorp/raft"
)

// Fault injection into the raft log and stable store (the Pebble log or
// raft.db, and raft.db), the node's durable record. Config.LogFaults is a
// test hook, like store.Options.Faults for Pebble's files: production code
// leaves it nil and then the stores are not wrapped for it. When set, its
// wrapper sits right above the stores, beneath the fail-stop wrapper
// (logguard.go), which therefore meets an injected error exactly as it
// would meet one of the disk.

// LogOpKind is the kind of an operation on the raft log or stable store.
type LogOpKind uint8

const (
	// LogOpStore appends entries (StoreLog, StoreLogs): raft's durable
	// write of new entries: one Pebble batch and fdatasync, or one bbolt
	// transaction.
	LogOpStore LogOpKind = iota + 1
	// LogOpDelete deletes a range of entries (DeleteRange): a follower
	// clearing a conflicting suffix, or compaction after a snapshot.
	LogOpDelete
	// LogOpGet reads one entry from the log store (GetLog). Reads served
	// by the node's log cache never reach it and are not offered.
	LogOpGet
	// LogOpIndex reads the first or last index (FirstIndex, LastIndex).
	LogOpIndex
	// LogOpSetStable writes a stable-store key (Set, SetUint64): the
	// current term, the last vote's term and candidate.
	LogOpSetStable
	// LogOpGetStable reads a stable-store key (Get, GetUint64).
	LogOpGetStable
)

func (k LogOpKind) String() string {
	switch k {
	case LogOpStore:
		return "store-logs"
	case LogOpDelete:
		return "delete-range"
	case LogOpGet:
		return "get-log"
	case LogOpIndex:
		return "log-index"
	case LogOpSetStable:
		return "set-stable"
	case LogOpGetStable:
		return "get-stable"
	}
	return fmt.Sprintf("LogOpKind(%d)", uint8(k))
}

// LogOp describes one operation on the log or stable store, as offered to Config.LogFaults.
type LogOp struct {
	Kind LogOpKind
	// First and Last are the log indexes concerned (LogOpStore,
	// LogOpDelete, LogOpGet); zero otherwise.
	First, Last uint64
	// Key is hashicorp/raft's stable-store key (LogOpSetStable,
	// LogOpGetStable): "CurrentTerm", "LastVoteTerm" or "LastVoteCand".
	Key string
	// Done is false when the operation is offered before it runs: an error
	// fails it and the store is left untouched. Writes (LogOpStore,
	// LogOpDelete, LogOpSetStable) that succeeded are offered once more
	// with Done true: an error is then returned although the write took
	// effect, as when an fsync fails after the pages reached the file.
	Done bool
}

func (op LogOp) String() string {
	s := op.Kind.String()
	switch {
	case op.Key != "":
		s += " " + op.Key
	case op.First != 0 || op.Last != 0:
		s += fmt.Sprintf(" [%d, %d]", op.First, op.Last)
	}
	if op.Done {
		s += " (done)"
	}
	return s
}

// faultyLogStore offers every operation to a LogFaults hook before handing
// it to the real store (and writes once more after). The hook's error is
// returned as it is, as a disk's would be. It is safe for concurrent use if
// the hook is.
type faultyLogStore struct {
	inner raftStores
	hook  func(LogOp) error
}

var (
	_ hraft.LogStore    = (*faultyLogStore)(nil)
	_ hraft.StableStore = (*faultyLogStore)(nil)
)

// run offers op to the hook, runs do if the hook lets it, and for writes
// offers op again once do succeeded.
func (s *faultyLogStore) run(op LogOp, write bool, do func() error) error {
	if err := s.hook(op); err != nil {
		return err
	}
	if err := do(); err != nil || !write {
		return err
	}
	op.Done = true
	return s.hook(op)
}

func (s *faultyLogStore) FirstIndex() (idx uint64, err error) {
	err = s.run(LogOp{Kind: LogOpIndex}, false, func() (err error) {
		idx, err = s.inner.FirstIndex()
		return err
	})
	return idx, err
}

func (s *faultyLogStore) LastIndex() (idx uint64, err error) {
	err = s.run(LogOp{Kind: LogOpIndex}, false, func() (err error) {
		idx, err = s.inner.LastIndex()
		return err
	})
	return idx, err
}

func (s *faultyLogStore) GetLog(index uint64, log *hraft.Log) error {
	return s.run(LogOp{Kind: LogOpGet, First: index, Last: index}, false, func() error {
		return s.inner.GetLog(index, log)
	})
}

func (s *faultyLogStore) StoreLog(log *hraft.Log) error {
	return s.StoreLogs([]*hraft.Log{log})
}

func (s *faultyLogStore) StoreLogs(logs []*hraft.Log) error {
	op := LogOp{Kind: LogOpStore}
	if len(logs) > 0 {
		op.First, op.Last = logs[0].Index, logs[len(logs)-1].Index
	}
	return s.run(op, true, func() error { return s.inner.StoreLogs(logs) })
}

func (s *faultyLogStore) DeleteRange(lo, hi uint64) error {
	return s.run(LogOp{Kind: LogOpDelete, First: lo, Last: hi}, true, func() error {
		return s.inner.DeleteRange(lo, hi)
	})
}

func (s *faultyLogStore) Set(key, val []byte) error {
	return s.run(LogOp{Kind: LogOpSetStable, Key: string(key)}, true, func() error {
		return s.inner.Set(key, val)
	})
}

func (s *faultyLogStore) Get(key []byte) (val []byte, err error) {
	err = s.run(LogOp{Kind: LogOpGetStable, Key: string(key)}, false, func() (err error) {
		val, err = s.inner.Get(key)
		return err
	})
	return val, err
}

func (s *faultyLogStore) SetUint64(key []byte, val uint64) error {
	return s.run(LogOp{Kind: LogOpSetStable, Key: string(key)}, true, func() error {
		return s.inner.SetUint64(key, val)
	})
}

func (s *faultyLogStore) GetUint64(key []byte) (val uint64, err error) {
	err = s.run(LogOp{Kind: LogOpGetStable, Key: string(key)}, false, func() (err error) {
		val, err = s.inner.GetUint64(key)
		return err
	})
	return val, err
}
