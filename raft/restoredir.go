package raft

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	hraft "github.com/hashicorp/raft"

	"github.com/tenantkv/tenantkv/raft/fsm"
	"github.com/tenantkv/tenantkv/store"
)

// # A raft directory restored from a backup
//
// A node restored from a backup starts as the only voter of a new cluster
// whose state machine already holds the backup. Its raft directory is
// written as raft itself would leave it after installing a snapshot: the
// snapshot (the backup's whole-store stream, which is what a raft snapshot
// of this state machine holds) at the backup's applied index and term, with
// the configuration this node alone, an empty log, and the term in raft.db,
// so that its first election is of a later term than the snapshot's. The
// store beside it is restored from the same stream, so
// that the node starts without restoring anything (restoreOnStart: the
// store is at the snapshot's index), and a node that joins later is sent
// the snapshot.

// RestoreTarget describes the raft state a restore writes.
type RestoreTarget struct {
	// Dir is the raft directory to create (a data directory's "raft"); it
	// must not exist or be empty.
	Dir string
	// ID and RaftAddr are the node's raft ID and the raft address others
	// dial (its --raft, or --raft-advertise): the configuration's only
	// server.
	ID, RaftAddr string
	// Index and Term are the backup's applied index and that entry's term.
	Index, Term uint64
	// RaftLog names the raft log's store, as Config.RaftLog; empty means
	// DefaultRaftLog.
	RaftLog string
	// StoreDir is the store to create (a data directory's "store"), with
	// StoreOptions, as Config has them.
	StoreDir     string
	StoreOptions *store.Options
	// Logger receives the state machine's logs; nil discards them.
	Logger *slog.Logger
}

// RestoredState describes the state a restore wrote.
type RestoredState struct {
	// AppliedIndex is the store's applied index, Checksum its
	// store.Checksum.
	AppliedIndex uint64
	Checksum     uint64
}

// RestoreNode writes the raft directory and the store of a node restored
// from a backup, from the backup's whole-store stream. r must end where
// the stream does (a caller bounds it by the stream's length): bytes after
// the trailer that the stream reader read ahead would go into the raft
// snapshot unnoticed, and those it did not read are refused. The store is restored by the state machine
// as raft's own snapshot installs are (so its cluster format is checked and
// its catalog loads), the same bytes become the raft snapshot, and the
// result is synced. It returns what the store holds, for the caller to
// check against what it expected; on an error, the caller removes both
// directories.
func RestoreNode(t RestoreTarget, r io.Reader) (RestoredState, error) {
	var out RestoredState
	w, err := createRestore(t)
	if err != nil {
		return out, err
	}
	defer w.abort() // after commit, a no-op
	st, err := store.Open(t.StoreDir, t.StoreOptions)
	if err != nil {
		return out, err
	}
	out, err = restoreStore(st, io.TeeReader(r, w), t.Logger)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return out, err
	}
	return out, w.commit()
}

// restoreStore restores st from the stream in r through a state machine.
func restoreStore(st *store.Store, r io.Reader, logger *slog.Logger) (RestoredState, error) {
	var out RestoredState
	m, err := fsm.New(st, logger, nil)
	if err != nil {
		return out, fmt.Errorf("raft: restore: %w", err)
	}
	defer m.Stop()
	if err := m.Restore(r); err != nil {
		return out, fmt.Errorf("raft: restore: %w", err)
	}
	// What the stream reader read ahead of the trailer, or left after it.
	if n, err := io.Copy(io.Discard, r); err != nil || n > 0 {
		return out, fmt.Errorf("raft: restore: %w: %d bytes follow the store stream (%v)", store.ErrCorruptStream, n, err)
	}
	if err := st.Sync(); err != nil {
		return out, fmt.Errorf("raft: restore: %w", err)
	}
	out.AppliedIndex = m.AppliedIndex()
	if out.Checksum, err = st.Checksum(); err != nil {
		return out, fmt.Errorf("raft: restore: %w", err)
	}
	return out, nil
}

// restoreWriter receives the content of the snapshot a restored node
// starts from: the backup's whole-store stream. commit makes the directory
// whole; until then it is not a raft directory a node would start from.
type restoreWriter struct {
	t    RestoreTarget
	kind string
	sink hraft.SnapshotSink
	done bool
}

// createRestore starts writing the raft directory of a restored node.
func createRestore(t RestoreTarget) (*restoreWriter, error) {
	if t.ID == "" {
		return nil, errors.New("raft: restore: empty node ID")
	}
	if host, port, err := net.SplitHostPort(t.RaftAddr); err != nil || host == "" || port == "" || port == "0" {
		return nil, fmt.Errorf("raft: restore: raft address %q is not a host:port peers can dial", t.RaftAddr)
	}
	if t.Index == 0 || t.Term == 0 {
		return nil, fmt.Errorf("raft: restore: snapshot at index %d, term %d", t.Index, t.Term)
	}
	if err := ValidRaftLog(t.RaftLog); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(t.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("raft: restore: %s is not empty", t.Dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("raft: restore: %w", err)
	}
	if err := os.MkdirAll(t.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft: restore: %w", err)
	}
	kind, err := resolveLogKind(t.Dir, t.RaftLog)
	if err != nil {
		return nil, err
	}
	hlog := newHCLogAdapter(slog.New(slog.DiscardHandler), "raft")
	files, err := hraft.NewFileSnapshotStoreWithLogger(t.Dir, snapshotsRetained, hlog)
	if err != nil {
		return nil, fmt.Errorf("raft: restore: open snapshot store in %s: %w", t.Dir, err)
	}
	// The snapshot's metadata encodes the peers through a transport; raft's
	// TCP transport encodes an address as its bytes, as the in-memory one
	// does, so a throwaway in-memory transport writes the same metadata.
	_, trans := hraft.NewInmemTransport(hraft.ServerAddress(t.RaftAddr))
	defer trans.Close()
	conf := hraft.Configuration{Servers: []hraft.Server{{
		Suffrage: hraft.Voter, ID: hraft.ServerID(t.ID), Address: hraft.ServerAddress(t.RaftAddr),
	}}}
	sink, err := files.Create(1, t.Index, t.Term, conf, t.Index, trans)
	if err != nil {
		return nil, fmt.Errorf("raft: restore: create snapshot: %w", err)
	}
	return &restoreWriter{t: t, kind: kind, sink: sink}, nil
}

// Write appends to the snapshot's content.
func (w *restoreWriter) Write(p []byte) (int, error) { return w.sink.Write(p) }

// commit finishes the snapshot (synced), then creates the log and the
// stable store with the snapshot's term as the current one.
func (w *restoreWriter) commit() error {
	if w.done {
		return errors.New("raft: restore: already finished")
	}
	w.done = true
	if err := w.sink.Close(); err != nil {
		return fmt.Errorf("raft: restore: finish snapshot: %w", err)
	}
	stores, closeStores, err := openRaftStores(w.t.Dir, w.kind, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	// raft's key of the current term (hashicorp/raft keeps it unexported);
	// TestRestoreTargetStarts fails if it ever changes.
	err = stores.SetUint64([]byte("CurrentTerm"), w.t.Term)
	if cerr := closeStores(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raft: restore: write the term: %w", err)
	}
	return nil
}

// abort gives up: the snapshot is discarded. The caller removes the
// directory.
func (w *restoreWriter) abort() {
	if !w.done {
		w.done = true
		_ = w.sink.Cancel()
	}
}
