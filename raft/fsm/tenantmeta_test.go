package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// tenantMeta returns the view of tenant id's records of s (a store or a
// snapshot).
func tenantMeta(tb testing.TB, s interface {
	TenantMeta(keyspace.TenantID) (*store.TenantMetaView, error)
}, id keyspace.TenantID) *store.TenantMetaView {
	tb.Helper()
	m, err := s.TenantMeta(id)
	require.NoError(tb, err)
	return m
}

// twoTenants makes tenants a and b, each with a token and two writes in
// its history, and an operator token "op".
func twoTenants(t *testing.T) (h *fsmHarness, a, b keyspace.TenantID) {
	h = newFSMHarness(t)
	a, b = h.createTenant("a"), h.createTenant("b")
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "ta", Hash: tokenHash("a"), TenantID: a}})
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "tb", Hash: tokenHash("b"), TenantID: b}})
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "op", Hash: tokenHash("op")}})
	h.must(set(a, "a", "ka", "va"))
	h.must(set(b, "b", "kb1", "secret-1"))
	h.must(set(b, "b", "kb2", "secret-2"))
	return h, a, b
}

// A watch built with the wrong tenant ID, tenant B's under a token of A,
// is refused by the view of A's records the history is read through: an
// error wrapping keyspace.ErrOutsideSpan and no change at all, although B
// exists, is readable and has a history. The same call with the right ID,
// or with an operator token, reads as before.
func TestChangesAsWrongTenantRefused(t *testing.T) {
	h, a, b := twoTenants(t)

	chs, upTo, err := h.fsm.ChangesAs("ta", b, 0, command.KeyRange{}, 1<<20)
	require.ErrorIs(t, err, keyspace.ErrOutsideSpan)
	require.Empty(t, chs)
	require.Zero(t, upTo)

	chs, upTo, err = h.fsm.ChangesAs("ta", a, 0, command.KeyRange{}, 1<<20)
	require.NoError(t, err)
	require.Equal(t, uint64(1), upTo)
	require.Len(t, chs, 1)
	require.Equal(t, "ka", string(chs[0].Key))

	chs, upTo, err = h.fsm.ChangesAs("op", b, 0, command.KeyRange{}, 1<<20)
	require.NoError(t, err)
	require.Equal(t, uint64(2), upTo)
	require.Len(t, chs, 2)
}

// Every history, usage and version read of tenant B through a view bound
// to A is refused before the engine is read: the reader's callback never
// runs, and the error wraps keyspace.ErrOutsideSpan. This is what a wrong
// tenant ID in the code computing the keys meets.
func TestHistoryReadWrongTenantRefused(t *testing.T) {
	h, a, b := twoTenants(t)
	sn := h.store.NewSnapshot()
	defer sn.Close()
	ma, mb := tenantMeta(t, sn, a), tenantMeta(t, sn, b)
	stB, err := readVersionState(mb, b)
	require.NoError(t, err)
	require.Equal(t, uint64(2), stB.Version)

	_, err = readVersionState(ma, b)
	require.ErrorIs(t, err, keyspace.ErrOutsideSpan)
	_, err = readUsage(ma, b)
	require.ErrorIs(t, err, keyspace.ErrOutsideSpan)
	called := false
	err = scanHistory(ma, b, 0, stB.Version, func(uint64, *entryHead, []byte) (bool, error) {
		called = true
		return true, nil
	})
	require.ErrorIs(t, err, keyspace.ErrOutsideSpan)
	require.False(t, called, "the scan yielded a chunk of B's history through A's view")
	_, err = loadHistory(ma, b, stB)
	require.ErrorIs(t, err, keyspace.ErrOutsideSpan)
	chs, _, err := readChanges(ma, b, 0, command.KeyRange{}, 1<<20)
	require.ErrorIs(t, err, keyspace.ErrOutsideSpan)
	require.Empty(t, chs)

	// The right view reads B's history whole.
	chs, upTo, err := readChanges(mb, b, 0, command.KeyRange{}, 1<<20)
	require.NoError(t, err)
	require.Equal(t, uint64(2), upTo)
	require.Len(t, chs, 2)
}

// A write of B's records through the applier's view of A is refused as a
// storage failure (the machine would stop), and B's records are unchanged.
func TestHistoryWriteWrongTenantRefused(t *testing.T) {
	h, a, b := twoTenants(t)
	before, err := tenantMeta(t, h.store, b).Get(keyspace.HistoryKey(b, 1, 0))
	require.NoError(t, err)

	batch := h.store.NewBatch()
	defer batch.Close()
	ap := newApplier(batch, h.fsm.cat)
	ma, err := ap.meta(a)
	require.NoError(t, err)
	err = setRecord(ma, keyspace.HistoryKey(b, 1, 0), []byte("forged"))
	require.ErrorIs(t, err, keyspace.ErrOutsideSpan)
	var fe *fatalError
	require.ErrorAs(t, err, &fe)
	require.ErrorIs(t, deleteRecord(ma, keyspace.TenantVersionKey(b)), keyspace.ErrOutsideSpan)
	require.True(t, batch.Empty(), "a refused write reached the batch")

	after, err := tenantMeta(t, h.store, b).Get(keyspace.HistoryKey(b, 1, 0))
	require.NoError(t, err)
	require.Equal(t, before, after)
}
