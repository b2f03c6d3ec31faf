package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// gateReader hands out the first n bytes, then blocks until gate closes.
type gateReader struct {
	r    io.Reader
	n    int
	gate chan struct{}
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.n > 0 {
		if len(p) > g.n {
			p = p[:g.n]
		}
		k, err := g.r.Read(p)
		g.n -= k
		return k, err
	}
	<-g.gate
	return g.r.Read(p)
}

// While a snapshot is being restored the store is partial and the catalog
// still describes the state before: the read helpers must answer
// ErrRestoring, not describe a tenant whose data is gone (a transaction
// reading at an old version would take "not found" for the truth).
func TestReadHelpersRefuseDuringRestore(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	h.must(set(id, "acme", "k", "v"))
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "tok", Hash: tokenHash("s"), TenantID: id}})
	snap, err := h.fsm.Snapshot()
	require.NoError(t, err)
	var sink bytes.Buffer
	_, err = snap.WriteTo(&sink)
	require.NoError(t, err)
	snap.Close()

	gate, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- h.fsm.Restore(&gateReader{r: bytes.NewReader(sink.Bytes()), n: 6, gate: gate})
	}()
	require.Eventually(t, func() bool {
		_, err := h.get(id, "k")
		return errors.Is(err, store.ErrNotFound)
	}, 5*time.Second, time.Millisecond, "the restore should have cleared the store")

	require.True(t, h.fsm.Restoring())
	_, err = h.fsm.LookupTenant("acme")
	require.ErrorIs(t, err, ErrRestoring)
	_, err = h.fsm.TenantByID(id)
	require.ErrorIs(t, err, ErrRestoring)
	_, err = h.fsm.TenantVersion(id)
	require.ErrorIs(t, err, ErrRestoring)
	_, err = h.fsm.Token("tok")
	require.ErrorIs(t, err, ErrRestoring)
	require.False(t, h.fsm.HasToken("tok"))
	_, err = h.fsm.Usage(id)
	require.ErrorIs(t, err, ErrRestoring)

	close(gate)
	require.NoError(t, <-done)
	require.False(t, h.fsm.Restoring())
	tn, err := h.fsm.LookupTenant("acme")
	require.NoError(t, err)
	require.Equal(t, id, tn.ID)
	require.True(t, h.fsm.HasToken("tok"))
	v, err := h.get(id, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
}
