package fsm

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

// requireCatalogMatchesStore checks the FSM's in-memory catalog against one
// loaded afresh from its store: the cache must never drift from the truth
// (a drift would let a revoked token in, or check a quota against the wrong
// usage).
func requireCatalogMatchesStore(t *testing.T, h *fsmHarness) {
	t.Helper()
	fresh, err := loadCatalog(h.store)
	require.NoError(t, err)
	got := h.fsm.cat
	got.mu.RLock()
	defer got.mu.RUnlock()
	require.Equal(t, len(fresh.tenants), len(got.tenants), "tenants")
	for id, want := range fresh.tenants {
		e := got.tenants[id]
		require.NotNil(t, e, "tenant %d missing from the catalog", id)
		require.Equal(t, *want.rec, *e.rec, "tenant %d record", id)
		require.Equal(t, want.usage, e.usage, "tenant %d usage", id)
		require.Equal(t, want.ver, e.ver, "tenant %d version state", id)
		requireSameHistory(t, want.hist, e.hist, id)
	}
	require.Equal(t, fresh.names, got.names, "name index")
	require.Equal(t, fresh.tokens, got.tokens, "tokens")
	require.Equal(t, fresh.byTenant, got.byTenant, "tokens by tenant")
}

func TestCatalogFollowsTheStore(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	h := newFSMHarness(t)
	at := time.Unix(1700000000, 0)
	names := []string{"a", "b", "c", "d", "e"}
	ids := map[string]keyspace.TenantID{} // what the test believes exists
	refresh := func() {
		clear(ids)
		ts, err := h.fsm.ListTenants("", 0)
		require.NoError(t, err)
		for _, tn := range ts {
			ids[tn.Name] = tn.ID
		}
	}
	anyTenant := func() (string, keyspace.TenantID) {
		n := names[r.IntN(len(names))]
		if id, ok := ids[n]; ok {
			return n, id
		}
		return n, keyspace.TenantID(1 + r.IntN(12)) // may not exist: refused
	}
	randomCommand := func() command.Command {
		n, id := anyTenant()
		key := func() []byte { return fmt.Appendf(nil, "k%d", r.IntN(8)) }
		switch r.IntN(12) {
		case 0:
			return &command.CreateTenant{Name: n, CreatedAt: at, Limits: keyspace.Limits{MaxKeys: uint64(r.IntN(6))}}
		case 1:
			return &command.DeleteTenant{ID: id}
		case 2:
			s := keyspace.StateActive
			if r.IntN(3) == 0 {
				s = keyspace.StateReadOnly
			}
			labels := map[string]string{"x": n}
			if r.IntN(3) == 0 {
				labels = map[string]string{} // clears them
			}
			return &command.UpdateTenant{ID: id, State: &s, Labels: labels}
		case 3:
			nn := names[r.IntN(len(names))] + "x"
			return &command.UpdateTenant{ID: id, NewName: &nn}
		case 4:
			return &command.PutToken{Token: command.TokenRecord{ID: fmt.Sprintf("t%d", r.IntN(10)), Hash: tokenHash(n), TenantID: id, CreatedAt: at}}
		case 5:
			return &command.PutToken{Token: command.TokenRecord{ID: fmt.Sprintf("op%d", r.IntN(3)), Hash: tokenHash("op"), CreatedAt: at}}
		case 6:
			return &command.DeleteToken{ID: fmt.Sprintf("t%d", r.IntN(10))}
		case 7:
			return &command.TenantWrite{TenantID: id, TenantName: n, At: at.UnixNano(), Ops: []command.Op{{Kind: command.OpDeleteRange, Key: []byte("k"), End: []byte("l")}}}
		case 8:
			return &command.TxnCommit{TenantID: id, TenantName: n, At: at.UnixNano(), Ops: []command.Op{{Kind: command.OpAdd, Key: key(), Value: le(1)}}}
		default:
			return &command.TenantWrite{TenantID: id, TenantName: n, At: at.UnixNano(), Ops: []command.Op{
				{Kind: command.OpSet, Key: key(), Value: key()}, {Kind: command.OpDelete, Key: key()},
			}}
		}
	}
	applied := 0
	for round := range 60 {
		cmds := make([]command.Command, 1+r.IntN(10))
		for i := range cmds {
			cmds[i] = randomCommand()
			at = at.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		}
		for _, res := range h.apply(cmds...) {
			if res.Err == nil {
				applied++
			}
		}
		refresh()
		requireCatalogMatchesStore(t, h)
		if round%20 == 19 {
			forked := h.fork() // restored from a snapshot
			requireCatalogMatchesStore(t, forked)
			h.reopen() // restarted
			requireCatalogMatchesStore(t, h)
		}
	}
	require.Greater(t, applied, 80, "too few commands applied to exercise the catalog")
	// The read helpers answer from the catalog.
	for n, id := range ids {
		byName, err := h.fsm.LookupTenant(n)
		require.NoError(t, err)
		byID, err := h.fsm.TenantByID(id)
		require.NoError(t, err)
		require.Equal(t, byName, byID)
		if byName.Labels != nil {
			byName.Labels["x"] = "changed" // a copy: the catalog keeps its own
			again, err := h.fsm.LookupTenant(n)
			require.NoError(t, err)
			require.NotEqual(t, "changed", again.Labels["x"])
		}
	}
}

// A deleted tenant's tokens go with it, and a re-created tenant of the same
// name is a new tenant that the old tokens do not reach.
func TestCatalogDeleteTenantDropsTokens(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "tok", Hash: tokenHash("s"), TenantID: id}})
	require.True(t, h.fsm.HasToken("tok"))
	// Delete and re-create in one batch: the batch sees its own changes.
	res := h.apply(&command.DeleteTenant{ID: id}, &command.CreateTenant{Name: "acme"}, &command.PutToken{Token: command.TokenRecord{ID: "tok2", Hash: tokenHash("s"), TenantID: id}})
	require.NoError(t, res[0].Err)
	require.NoError(t, res[1].Err)
	require.ErrorIs(t, res[2].Err, ErrTenantNotFound, "a token for the deleted ID")
	require.False(t, h.fsm.HasToken("tok"))
	tn, err := h.fsm.LookupTenant("acme")
	require.NoError(t, err)
	require.NotEqual(t, id, tn.ID)
	requireCatalogMatchesStore(t, h)
}

// requireSameHistory checks a tenant's history image against one loaded
// from the store: the same heads, transaction IDs, index cost and conflict
// answers (the index compared as its canonical step function).
func requireSameHistory(t *testing.T, want, got *history, id keyspace.TenantID) {
	t.Helper()
	if want == nil || got == nil {
		require.True(t, want == nil || want.count() == 0, "tenant %d: history image missing", id)
		require.True(t, got == nil || got.count() == 0, "tenant %d: history image where the store has none", id)
		return
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	require.Equal(t, want.first, got.first, "tenant %d history first", id)
	require.Equal(t, want.floor, got.floor, "tenant %d history floor", id)
	require.Equal(t, want.heads[want.off:], got.heads[got.off:], "tenant %d history heads", id)
	require.Equal(t, want.cost, got.cost, "tenant %d index cost", id)
	require.Equal(t, len(want.txns), len(got.txns), "tenant %d transaction IDs", id)
	for k, vs := range want.txns {
		require.Equal(t, vs, got.txns[k], "tenant %d transaction %x", id, k)
	}
	require.Equal(t, want.idx.boundaries(want.floor), got.idx.boundaries(got.floor), "tenant %d conflict index", id)
}
