package raft

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Which store holds the raft log (Config.RaftLog, `serve --raft-log`).
//
// raft.db (raft-boltdb) is always there: it is the stable store, the
// current term and the last vote, written a few times per election. The log
// itself is in raft.db too (RaftLogBolt, every data directory made before
// the choice existed) or in a Pebble instance of its own under Dir/log
// (RaftLogPebble), where one append is one WAL write and one fdatasync
// instead of bbolt's two fsyncs per transaction (raft/DESIGN.md).
//
// A directory keeps the log it was made with: the choice is written to
// Dir/raft-log when the directory is made, and a later Config.RaftLog that
// names the other one is refused rather than starting with an empty log
// beside the real one.
const (
	RaftLogBolt   = "bolt"
	RaftLogPebble = "pebble"
	// DefaultRaftLog is the log of a new directory when Config.RaftLog
	// is empty: the one measured faster (docs/PERFORMANCE.md).
	DefaultRaftLog = RaftLogPebble
)

const (
	logKindFile  = "raft-log" // holds "bolt\n" or "pebble\n"
	pebbleLogDir = "log"
	stableFile   = "raft.db"
)

// ValidRaftLog reports whether kind names a log store ("" is the default).
func ValidRaftLog(kind string) error {
	switch kind {
	case "", RaftLogBolt, RaftLogPebble:
		return nil
	}
	return fmt.Errorf("raft: unknown raft log %q: want %s or %s", kind, RaftLogBolt, RaftLogPebble)
}

// resolveLogKind returns the log store of dir: the one recorded in it, or
// for a directory made before the record existed (raft.db present, no
// record) bolt, or for a new directory want (DefaultRaftLog if empty),
// which it then records, synced, before any log is written. A want that
// contradicts the directory's log is an error.
func resolveLogKind(dir, want string) (string, error) {
	if err := ValidRaftLog(want); err != nil {
		return "", err
	}
	recorded, err := os.ReadFile(filepath.Join(dir, logKindFile))
	var kind string
	switch {
	case err == nil:
		kind = string(bytes.TrimSpace(recorded))
		if kind != RaftLogBolt && kind != RaftLogPebble {
			return "", fmt.Errorf("raft: %s names an unknown raft log %q", filepath.Join(dir, logKindFile), recorded)
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("raft: read %s: %w", logKindFile, err)
	default:
		if _, statErr := os.Stat(filepath.Join(dir, stableFile)); statErr == nil {
			kind = RaftLogBolt // made before the choice: its log is in raft.db
		} else if !errors.Is(statErr, os.ErrNotExist) {
			return "", fmt.Errorf("raft: %w", statErr)
		}
	}
	if kind != "" {
		if want != "" && want != kind {
			return "", fmt.Errorf("raft: %s holds a %s raft log; it cannot start with --raft-log %s (leave the flag out to keep the directory's log, or make a new node with an empty data directory and let it join)", dir, kind, want)
		}
		return kind, nil
	}
	kind = want
	if kind == "" {
		kind = DefaultRaftLog
	}
	if err := writeSynced(filepath.Join(dir, logKindFile), []byte(kind+"\n")); err != nil {
		return "", fmt.Errorf("raft: record the raft log: %w", err)
	}
	return kind, nil
}

// writeSynced writes a small file and syncs it and its directory.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// raftStores is what raft is given as its log and stable store.
type raftStores interface {
	hraft.LogStore
	hraft.StableStore
}

// splitStores is the log of one store and the stable store of another.
type splitStores struct {
	hraft.LogStore
	hraft.StableStore
}

// openRaftStores opens the stable store (raft.db) and the log of kind in
// dir. close closes both.
func openRaftStores(dir, kind string, logger *slog.Logger) (stores raftStores, close func() error, err error) {
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, stableFile),
		BoltOptions: &bbolt.Options{
			Timeout:        time.Second,
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("raft: open stable store in %s: %w", dir, err)
	}
	if kind == RaftLogBolt {
		return bolt, bolt.Close, nil
	}
	logs, err := openPebbleLogStore(filepath.Join(dir, pebbleLogDir), logger)
	if err != nil {
		_ = bolt.Close()
		return nil, nil, err
	}
	closeBoth := func() error { return errors.Join(logs.Close(), bolt.Close()) }
	return splitStores{LogStore: logs, StableStore: bolt}, closeBoth, nil
}
