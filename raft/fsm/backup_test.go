package fsm

import (
	"bytes"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// A backup is the state at its applied index, whatever is applied while it
// is read, and carries the cluster format; restored, it is that state.
func TestBackupIsTheStateAtItsIndex(t *testing.T) {
	src := newFSMHarness(t)
	a := src.createTenant("a")
	src.must(set(a, "a", "k", "v"))
	src.must(&command.PutToken{Token: command.TokenRecord{ID: "t", Hash: tokenHash("x")}})
	b0, err := src.fsm.Backup()
	require.NoError(t, err)
	require.Equal(t, command.Format1, b0.Format())
	b0.Close()
	src.must(&command.SetFormat{Version: 2})
	want := src.checksum()
	index := src.fsm.AppliedIndex()

	b, err := src.fsm.Backup()
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, index, b.AppliedIndex())
	require.Equal(t, command.Format2, b.Format())
	st, err := b.NewStream()
	require.NoError(t, err)
	defer st.Close()

	// Applies go on concurrently, from another goroutine, as raft's would.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			src.must(set(a, "a", "later", "v"))
		}
	}()
	data, err := io.ReadAll(st)
	require.NoError(t, err)
	wg.Wait()
	sum, err := st.Checksum()
	require.NoError(t, err)
	require.Equal(t, want, sum, "the stream's checksum is the state's at the backup")

	dst := newFSMHarness(t)
	require.NoError(t, dst.fsm.Restore(bytes.NewReader(data)))
	require.Equal(t, want, dst.checksum())
	require.Equal(t, index, dst.fsm.AppliedIndex())
	require.Equal(t, command.Format2, dst.fsm.ClusterFormat())
	_, err = dst.get(a, "later")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.True(t, dst.fsm.HasToken("t"))
}

// No backup of a machine that stopped or holds a partial restore.
func TestBackupRefusesABrokenMachine(t *testing.T) {
	h := newFSMHarness(t)
	h.createTenant("a")
	require.Error(t, h.fsm.Restore(bytes.NewReader([]byte("TKVS\x01S"))))
	_, err := h.fsm.Backup()
	require.ErrorIs(t, err, ErrStopped)

	h2 := newFSMHarness(t)
	h2.fsm.Stop()
	_, err = h2.fsm.Backup()
	require.ErrorIs(t, err, ErrStopped)
}
