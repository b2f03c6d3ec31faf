package raft

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Workaround for hashicorp/raft #697 (InstallSnapshot livelock), present in
// v1.7.3.
//
// After a follower installs a snapshot ending at index S (term T), raft only
// compacts its log up to min(S, last-TrailingLogs). If the follower still
// holds a stale suffix from an older leader (uncommitted entries past S), its
// cached last log index stays past S, so the leader's next AppendEntries with
// PrevLogEntry=S is checked against the log entry at S: missing (a gap) or of
// another term. The follower refuses, the leader backs off below its first
// log entry and sends the same snapshot again, forever, until the leader
// happens to snapshot past the follower's stale suffix (never, on a quiet
// cluster). TestSnapshotInstallOverStaleSuffix reproduces it.
//
// The Raft paper (figure 13, rule 7) says: if the log does not hold the
// snapshot's last entry (same index and term), discard the entire log. We do
// that from the FSM's Restore, while raft's main loop waits for it, and then
// store a no-op entry at S with term T. Raft's own compaction right after the
// install would delete that entry again (it trims up to S), so the log store
// wrapper keeps it through exactly that deletion. The entry is never applied
// (raft applies only past its applied index, S) and never sent to another
// node (sending entry S needs entry S-1 as the previous entry, which is gone,
// so raft sends a snapshot instead); it only lets the follower answer
// "PrevLogEntry=S, term T" truthfully. The stale suffix past S is kept: the
// next AppendEntries compares its terms with the leader's and clears it with
// raft's own conflict handling.

// snapshotTracker remembers the metadata of the last snapshot opened, so
// that the FSM's Restore knows which snapshot it is reading (raft opens it by
// ID right before calling Restore, on the same goroutine). Leaders also open
// snapshots to send them but never restore; Restore still checks that the
// last one opened is the newest before trusting it.
type snapshotTracker struct {
	hraft.SnapshotStore
	mu     sync.Mutex
	opened *hraft.SnapshotMeta
}

func (s *snapshotTracker) Open(id string) (*hraft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err == nil {
		s.mu.Lock()
		m := *meta
		s.opened = &m
		s.mu.Unlock()
	}
	return meta, rc, err
}

func (s *snapshotTracker) lastOpened() *hraft.SnapshotMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

// Restore restores the store, then makes the log agree with the snapshot.
func (f nodeFSM) Restore(rc io.ReadCloser) error {
	defer f.n.meters.restores.ObserveSince(time.Now())
	defer rc.Close()
	if err := f.m.Restore(rc); err != nil {
		return err
	}
	meta := f.n.snaps.lastOpened()
	if meta == nil {
		return errors.New("raft: restore: no snapshot was opened")
	}
	// Raft restores the newest snapshot (on start) or the one it just
	// received (which is then the newest). If the last one opened is not
	// the newest, a sender opened another concurrently: do not guess.
	metas, err := f.n.snaps.List()
	if err != nil {
		return fmt.Errorf("raft: restore: list snapshots: %w", err)
	}
	if len(metas) == 0 || metas[0].ID != meta.ID {
		f.n.logger.Warn("raft: restore: cannot tell which snapshot was restored; log repair skipped", "opened", meta.ID)
		return nil
	}
	return f.n.logs.repairAfterRestore(meta.Index, meta.Term, f.n.logger)
}

// repairingLogStore is the log store raft uses: the log cache over bolt,
// plus the repair above. It is safe for concurrent use.
type repairingLogStore struct {
	hraft.LogStore
	mu sync.Mutex
	// keep is the index of a marker entry stored by the repair, to be kept
	// through the compaction that ends exactly at it; 0 when none.
	keep uint64
}

// DeleteRange deletes [lo, hi], except the marker entry when hi is its index
// (raft's compaction right after the install).
func (s *repairingLogStore) DeleteRange(lo, hi uint64) error {
	s.mu.Lock()
	keep := s.keep
	if keep != 0 && lo <= keep && keep <= hi {
		s.keep = 0
		if hi == keep {
			hi--
		}
	}
	s.mu.Unlock()
	if hi < lo {
		return nil
	}
	return s.LogStore.DeleteRange(lo, hi)
}

// repairAfterRestore applies Raft's rule for a snapshot whose last entry
// (index, term) the log lacks: discard the log up to index and store a
// no-op (index, term) in its place. A log that holds the entry is left
// alone.
func (s *repairingLogStore) repairAfterRestore(index, term uint64, logger interface {
	Warn(msg string, args ...any)
}) error {
	logs := s.LogStore
	var l hraft.Log
	err := logs.GetLog(index, &l)
	if err == nil && l.Term == term {
		return nil
	}
	if err != nil && !errors.Is(err, hraft.ErrLogNotFound) {
		return fmt.Errorf("raft: restore: read log entry %d: %w", index, err)
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft: restore: first log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("raft: restore: last log index: %w", err)
	}
	if first != 0 && first <= index {
		if err := logs.DeleteRange(first, min(index, last)); err != nil {
			return fmt.Errorf("raft: restore: discard log up to %d: %w", index, err)
		}
	}
	if err := logs.StoreLog(&hraft.Log{Index: index, Term: term, Type: hraft.LogNoop}); err != nil {
		return fmt.Errorf("raft: restore: store snapshot marker entry %d: %w", index, err)
	}
	s.mu.Lock()
	s.keep = index
	s.mu.Unlock()
	logger.Warn("raft: log lacked the installed snapshot's last entry; discarded the log up to it (Raft rule 7, hashicorp/raft#697)",
		"snapshot_index", index, "snapshot_term", term, "log_first", first, "log_last", last)
	return nil
}
