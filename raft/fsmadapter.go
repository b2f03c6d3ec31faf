package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/tenantkv/tenantkv/internal/latency"
	"github.com/tenantkv/tenantkv/raft/fsm"
)

// nodeFSM is the hraft.BatchingFSM raft drives: it hands committed entries
// to the state machine (package fsm) as plain entries, streams its
// snapshots into raft's sinks, and after a restore makes the log agree with
// the snapshot (logrepair.go). It holds no state of its own.
type nodeFSM struct {
	m *fsm.Machine
	n *Node
}

var _ hraft.BatchingFSM = nodeFSM{}

// Apply applies a single entry. Raft uses ApplyBatch; Apply exists to
// satisfy hraft.FSM.
func (f nodeFSM) Apply(l *hraft.Log) any { return f.ApplyBatch([]*hraft.Log{l})[0] }

// ApplyBatch applies committed entries; raft hands it command and
// configuration entries only (never no-ops or barriers).
func (f nodeFSM) ApplyBatch(logs []*hraft.Log) []any {
	entries := make([]fsm.Entry, len(logs))
	for i, l := range logs {
		entries[i] = fsm.Entry{Index: l.Index, Command: l.Type == hraft.LogCommand, Data: l.Data}
	}
	return f.m.ApplyBatch(entries)
}

// Snapshot captures the state machine's store; raft persists it later,
// concurrently with later applies.
func (f nodeFSM) Snapshot() (hraft.FSMSnapshot, error) {
	s, err := f.m.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("raft: %w: %v", ErrShutdown, err)
	}
	return fsmSnapshot{s: s, took: &f.n.meters.snapshots}, nil
}

// fsmSnapshot streams a state machine snapshot into a raft snapshot sink,
// timing it for Metrics.
type fsmSnapshot struct {
	s    *fsm.Snapshot
	took *latency.Histogram
}

func (s fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	defer s.took.ObserveSince(time.Now())
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raft: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("raft: persist snapshot: close sink: %w", err)
	}
	return nil
}

func (s fsmSnapshot) Release() { s.s.Close() }

// resultError is the error Propose returns for an applied entry's result:
// the refusal as it is, or ErrCommitUnknown when this replica's state
// machine stopped under the entry (its effect is unknown).
func resultError(res *fsm.Result) error {
	if res.Err != nil && errors.Is(res.Err, fsm.ErrStopped) {
		return fmt.Errorf("%w: %v", ErrCommitUnknown, res.Err)
	}
	return res.Err
}

// waitApplied waits until the state machine has applied idx, with
// ErrShutdown once it stopped.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	err := n.fsm.WaitApplied(ctx, idx)
	if err != nil && errors.Is(err, fsm.ErrStopped) {
		return fmt.Errorf("%w: %v", ErrShutdown, err)
	}
	return err
}
