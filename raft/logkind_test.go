package raft

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

func TestResolveLogKind(t *testing.T) {
	t.Run("new directory gets the default, recorded", func(t *testing.T) {
		dir := t.TempDir()
		kind, err := resolveLogKind(dir, "")
		require.NoError(t, err)
		require.Equal(t, DefaultRaftLog, kind)
		b, err := os.ReadFile(filepath.Join(dir, logKindFile))
		require.NoError(t, err)
		require.Equal(t, DefaultRaftLog+"\n", string(b))
	})
	t.Run("new directory gets the one asked for", func(t *testing.T) {
		dir := t.TempDir()
		kind, err := resolveLogKind(dir, RaftLogBolt)
		require.NoError(t, err)
		require.Equal(t, RaftLogBolt, kind)
		kind, err = resolveLogKind(dir, "")
		require.NoError(t, err)
		require.Equal(t, RaftLogBolt, kind, "a recorded kind is kept")
	})
	t.Run("directory made before the choice holds a bolt log", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, stableFile), nil, 0o600))
		kind, err := resolveLogKind(dir, "")
		require.NoError(t, err)
		require.Equal(t, RaftLogBolt, kind)
		_, err = resolveLogKind(dir, RaftLogPebble)
		require.ErrorContains(t, err, "holds a bolt raft log; it cannot start with --raft-log pebble")
	})
	t.Run("the other kind is refused", func(t *testing.T) {
		dir := t.TempDir()
		_, err := resolveLogKind(dir, RaftLogPebble)
		require.NoError(t, err)
		_, err = resolveLogKind(dir, RaftLogBolt)
		require.ErrorContains(t, err, "holds a pebble raft log; it cannot start with --raft-log bolt")
	})
	t.Run("unknown kinds are refused", func(t *testing.T) {
		dir := t.TempDir()
		_, err := resolveLogKind(dir, "rocks")
		require.ErrorContains(t, err, `unknown raft log "rocks"`)
		require.NoError(t, os.WriteFile(filepath.Join(dir, logKindFile), []byte("rocks\n"), 0o600))
		_, err = resolveLogKind(dir, "")
		require.ErrorContains(t, err, "names an unknown raft log")
		c := Config{ID: "n1", Dir: dir, RaftAddr: "127.0.0.1:0", StoreDir: dir, RaftLog: "rocks"}
		require.ErrorContains(t, c.Validate(), `unknown raft log "rocks"`)
	})
}

// TestNodeKeepsItsRaftLog restarts nodes on each kind of log, and on a
// directory laid out as before the choice existed (its log in raft.db and
// no record of the kind), and checks the state is all there each time.
func TestNodeKeepsItsRaftLog(t *testing.T) {
	for _, tc := range []struct {
		name, made string
		legacy     bool // remove the record: a directory of an older release
	}{
		{"pebble", RaftLogPebble, false},
		{"bolt", RaftLogBolt, false},
		{"legacy bolt", RaftLogBolt, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := store.Open(filepath.Join(dir, "store"), nil)
			require.NoError(t, err)
			defer st.Close()
			start := func(kind string) *Node {
				n, err := NewNode(crashNodeConfig(dir, kind, st))
				require.NoError(t, err)
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				require.Eventually(t, func() bool { return n.ReadBarrier(ctx) == nil }, 20*time.Second, time.Millisecond)
				return n
			}
			n := start(tc.made)
			require.Equal(t, tc.made, n.logKind)
			_, err = n.Propose(t.Context(), &command.CreateTenant{Name: "kept"})
			require.NoError(t, err)
			last := n.raft.LastIndex()
			require.NoError(t, n.Shutdown())
			_, err = os.Stat(filepath.Join(dir, "raft", pebbleLogDir))
			require.Equal(t, tc.made == RaftLogPebble, err == nil, "a Pebble log directory exactly for the pebble log")
			if tc.legacy {
				require.NoError(t, os.Remove(filepath.Join(dir, "raft", logKindFile)))
			}

			other := RaftLogPebble
			if tc.made == RaftLogPebble {
				other = RaftLogBolt
			}
			_, err = NewNode(crashNodeConfig(dir, other, st))
			require.ErrorContains(t, err, "cannot start with --raft-log "+other)

			n = start("")
			defer n.Shutdown()
			require.Equal(t, tc.made, n.logKind)
			require.GreaterOrEqual(t, n.raft.LastIndex(), last, "the log survived the restart")
			_, err = n.FSM().LookupTenant("kept")
			require.NoError(t, err)
			_, err = n.Propose(t.Context(), &command.CreateTenant{Name: "after"})
			require.NoError(t, err)
		})
	}
}
