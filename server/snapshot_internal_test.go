package server

import (
	"context"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// startInternal starts a one-node server in a temporary directory.
func startInternal(t *testing.T) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, Config{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
		Raft: RaftTuning{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (m *snapshotSaves) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// A save left without a request for its next chunk releases its snapshot
// after the idle timeout, and a node that closes with saves in progress
// releases theirs before its store closes (Pebble refuses to close a store
// with a snapshot open).
func TestSnapshotSaveSessionsEnd(t *testing.T) {
	s := startInternal(t)
	s.saves.idle.Store(int64(40 * time.Millisecond))
	resp, err := s.saveSnapshot(t.Context(), &wire.Request{Op: wire.OpSnapshotSave, Limit: 1})
	if err != nil || !resp.More {
		t.Fatalf("first chunk: %v, %+v", err, resp)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.saves.count() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("an idle save still holds its snapshot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.saveSnapshot(t.Context(), &wire.Request{Op: wire.OpSnapshotSave, Cursor: resp.Next}); err == nil {
		t.Fatal("an expired save went on")
	}

	s.saves.idle.Store(0)
	for range maxSnapshotSaves {
		if _, err := s.saveSnapshot(t.Context(), &wire.Request{Op: wire.OpSnapshotSave, Limit: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close with saves in progress: %v", err)
	}
}
