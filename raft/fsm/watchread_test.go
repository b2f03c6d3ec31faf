package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

// ChangesAs returns the changes while the token and the tenant allow reads,
// and refuses from the moment the token is revoked, the tenant locked or
// deleted, whatever was written before.
func TestChangesAs(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "t1", Hash: tokenHash("s1"), TenantID: id}})
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "t2", Hash: tokenHash("s2"), TenantID: id}})
	h.must(set(id, "acme", "k", "v"))
	chs, _, err := h.fsm.ChangesAs("t1", id, 0, command.KeyRange{}, 1<<20)
	require.NoError(t, err)
	require.Len(t, chs, 1)

	h.must(&command.DeleteToken{ID: "t1"})
	_, _, err = h.fsm.ChangesAs("t1", id, 0, command.KeyRange{}, 1<<20)
	require.ErrorIs(t, err, ErrTokenNotFound)
	_, _, err = h.fsm.ChangesAs("t2", id, 0, command.KeyRange{}, 1<<20)
	require.NoError(t, err)

	h.must(&command.UpdateTenant{ID: id, State: ptr(keyspace.StateLocked)})
	_, _, err = h.fsm.ChangesAs("t2", id, 0, command.KeyRange{}, 1<<20)
	require.ErrorIs(t, err, ErrTenantLocked)
	h.must(&command.UpdateTenant{ID: id, State: ptr(keyspace.StateReadOnly)})
	_, _, err = h.fsm.ChangesAs("t2", id, 0, command.KeyRange{}, 1<<20)
	require.NoError(t, err)

	h.must(&command.DeleteTenant{ID: id})
	_, _, err = h.fsm.ChangesAs("t2", id, 0, command.KeyRange{}, 1<<20)
	require.Error(t, err) // the tenant's tokens went with it
}
