package raft

import (
	"path/filepath"
	"sync/atomic"
	"testing"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/store"
)

// TestLogGuardStopsOnWriteErrors checks failStopLogStore alone, over raft's
// in-memory store with every operation failing in turn: each failed write
// (StoreLog, StoreLogs, DeleteRange, Set, SetUint64) reaches stop with the
// operation named and the disk's error wrapped, and is returned to raft
// unchanged; failed reads and successful operations do not reach stop.
func TestLogGuardStopsOnWriteErrors(t *testing.T) {
	var failing LogOpKind
	var stops []error
	s := &failStopLogStore{
		inner: &faultyLogStore{inner: hraft.NewInmemStore(), hook: func(op LogOp) error {
			if op.Kind == failing && !op.Done {
				return errLogDisk
			}
			return nil
		}},
		stop: func(err error) { stops = append(stops, err) },
	}
	entry := func(i uint64) *hraft.Log { return &hraft.Log{Index: i, Term: 1, Type: hraft.LogCommand} }
	var got hraft.Log
	for _, tc := range []struct {
		kind  LogOpKind
		name  string // LogOp.String() of the failed write; "" for a read
		call  func() error
		write bool
	}{
		{LogOpStore, "store-logs [1, 1]", func() error { return s.StoreLog(entry(1)) }, true},
		{LogOpStore, "store-logs [2, 3]", func() error { return s.StoreLogs([]*hraft.Log{entry(2), entry(3)}) }, true},
		{LogOpDelete, "delete-range [2, 3]", func() error { return s.DeleteRange(2, 3) }, true},
		{LogOpSetStable, "set-stable LastVoteCand", func() error { return s.Set([]byte("LastVoteCand"), []byte("n1")) }, true},
		{LogOpSetStable, "set-stable CurrentTerm", func() error { return s.SetUint64([]byte("CurrentTerm"), 7) }, true},
		{LogOpGet, "", func() error { return s.GetLog(1, &got) }, false},
		{LogOpIndex, "", func() error { _, err := s.FirstIndex(); return err }, false},
		{LogOpIndex, "", func() error { _, err := s.LastIndex(); return err }, false},
		{LogOpGetStable, "", func() error { _, err := s.Get([]byte("LastVoteCand")); return err }, false},
		{LogOpGetStable, "", func() error { _, err := s.GetUint64([]byte("CurrentTerm")); return err }, false},
	} {
		// Healthy first: it works and stop is not called. The writes
		// also set up what the reads below read.
		failing, stops = 0, nil
		require.NoError(t, tc.call(), "%s on a healthy disk", tc.kind)
		require.Empty(t, stops, "%s succeeded, yet stop was called", tc.kind)

		failing = tc.kind
		err := tc.call()
		require.Same(t, errLogDisk, err, "%s: raft must get the disk's error unchanged", tc.kind)
		if !tc.write {
			require.Empty(t, stops, "a failed read (%s) stopped the node", tc.kind)
			continue
		}
		require.Len(t, stops, 1, "%s failed", tc.name)
		require.ErrorIs(t, stops[0], errLogDisk)
		require.Equal(t, "raft: raft log: "+tc.name+": "+errLogDisk.Error(), stops[0].Error())
	}
	failing, stops = 0, nil
	require.NoError(t, s.StoreLog(entry(9)), "healthy again")
	require.Empty(t, stops)
}

// TestLogGuardFailedStartFailsNewNode starts a new node whose first append
// (the bootstrap configuration) fails. The failure must fail NewNode with
// the disk's error, not stop a node that was never returned (Config.OnFatal
// is for running nodes), and release raft.db to a healthy retry.
func TestLogGuardFailedStartFailsNewNode(t *testing.T) {
	c := &testCluster{t: t, kind: builtinTCP, base: t.TempDir()}
	t.Cleanup(func() {
		for _, n := range c.live() {
			_ = stopFaulty(c, n)
		}
	})
	n := c.addNode()
	st, err := store.Open(filepath.Join(n.dir, "store"), nil)
	require.NoError(t, err)
	var fatals atomic.Int64
	cfg := c.config(n, true)
	cfg.Store, cfg.RaftAddr = st, "127.0.0.1:0"
	cfg.LogFaults = func(op LogOp) error {
		if op.Kind == LogOpStore {
			return errLogDisk
		}
		return nil
	}
	cfg.OnFatal = func(error) { fatals.Add(1) }
	_, err = NewNode(cfg)
	require.ErrorIs(t, err, errLogDisk)
	require.Contains(t, err.Error(), "raft: bootstrap: raft: raft log: store-logs [1, 1]")
	require.NoError(t, st.Close())

	// raft.db was closed again: a retry on a healthy disk opens it.
	startFaulty(c, n, true, nil)
	node := c.nodeOf(n)
	require.NoError(t, node.raft.GetConfiguration().Error())
	servers := len(node.raft.GetConfiguration().Configuration().Servers)
	if servers == 0 {
		// hashicorp/raft's bootstrap writes the term before the
		// configuration entry, and a term counts as existing state.
		t.Logf("KNOWN (docs/RELIABILITY.md): the retry does not bootstrap: raft.db holds term %d and no configuration",
			node.raft.CurrentTerm())
	}
	require.NoError(t, node.Shutdown())
	require.Zero(t, fatals.Load(), "Config.OnFatal called for a node NewNode never returned")
}
