package raft

import (
	"context"
	"errors"
	"fmt"

	hraft "github.com/hashicorp/raft"

	"github.com/tenantkv/tenantkv/raft/fsm"
)

// Backup is a linearizable image of the whole replicated state, for a
// backup file: an fsm.Backup (read it with NewStream, release it with
// Close) taken by the leader after a read barrier, and the raft term of its
// applied index.
type Backup struct {
	*fsm.Backup
	// Term is the term of the entry at AppliedIndex; when that entry has
	// left the log and no snapshot ends at it, the leader's term, which is
	// at least it.
	Term uint64
}

// Backup captures the replicated state on the leader. A read barrier comes
// first, so every write acknowledged before the call is in the image; the
// image is a store snapshot (fsm.Machine.Backup), which costs writes
// nothing: they go on while it is read, and are not in it. Only the leader
// can; others return a *NotLeaderError.
func (n *Node) Backup(ctx context.Context) (*Backup, error) {
	if err := n.checkOpen(); err != nil {
		return nil, err
	}
	if !n.IsLeader() {
		return nil, n.notLeader("")
	}
	if err := n.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	b, err := n.fsm.Backup()
	if err != nil {
		if errors.Is(err, fsm.ErrStopped) {
			return nil, fmt.Errorf("%w: %v", ErrShutdown, err)
		}
		return nil, fmt.Errorf("raft: backup: %w", err)
	}
	if b.AppliedIndex() == 0 {
		b.Close()
		return nil, errors.New("raft: backup: the store has applied nothing yet")
	}
	return &Backup{Backup: b, Term: n.termOf(b.AppliedIndex())}, nil
}

// termOf returns the term of the entry at index: from the log, else from a
// snapshot that ends there, else the current term (an upper bound: entries
// of the log are never of a later term than the node's).
func (n *Node) termOf(index uint64) uint64 {
	var l hraft.Log
	if err := n.logs.GetLog(index, &l); err == nil {
		return l.Term
	}
	if metas, err := n.snaps.List(); err == nil {
		for _, m := range metas {
			if m.Index == index {
				return m.Term
			}
		}
	}
	return n.raft.CurrentTerm()
}
