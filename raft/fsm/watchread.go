package fsm

import (
	"errors"
	"fmt"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// ChangesAs is Changes for a reader that holds token tokenID: in the same
// store snapshot as the changes it reads the token's record and the
// tenant's, and returns ErrTokenNotFound when the token is gone from that
// snapshot (revoked, or purged with its tenant), ErrTenantNotFound when
// the tenant is, and ErrTenantLocked when the tenant's state forbids
// reads. The FSM applies revocations, deletions and state changes in log
// order with the writes, and a snapshot holds a prefix of the log, so
// every change returned was applied while the token was valid and the
// tenant readable: a watch can never deliver a write applied after its
// token's revocation, whenever the revocation lands.
//
// The history is read through the view of the records of the tenant the
// token is bound to (of id for an operator token), not of id: a tenant
// token asked for another tenant's changes gets keyspace.ErrOutsideSpan
// and nothing of that tenant, whatever checks its caller skipped.
func (f *Machine) ChangesAs(tokenID string, id keyspace.TenantID, after uint64, r command.KeyRange, maxBytes int) (changes []Change, upTo uint64, err error) {
	if err := id.Check(); err != nil {
		return nil, 0, err
	}
	if err := keyspace.CheckRange(r.Start, r.End); err != nil {
		return nil, 0, err
	}
	if err := f.checkReadable(); err != nil {
		return nil, 0, err
	}
	sn := f.store.NewSnapshot()
	defer sn.Close()
	sys := sn.System()
	rec, err := sys.Get(keyspace.TokenKey(tokenID))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, fmt.Errorf("%w: %q", ErrTokenNotFound, tokenID)
		}
		return nil, 0, fmt.Errorf("raft: read token %q: %w", tokenID, err)
	}
	tok, err := decodeToken(rec)
	if err != nil {
		return nil, 0, fmt.Errorf("raft: read token %q: %w", tokenID, err)
	}
	t, err := tenantByID(sys, id)
	if err != nil {
		return nil, 0, err
	}
	if !t.State.AllowsReads() {
		return nil, 0, ErrTenantLocked
	}
	bound := tok.TenantID
	if bound == 0 {
		bound = id // an operator reads any tenant
	}
	m, err := sn.TenantMeta(bound)
	if err != nil {
		return nil, 0, fmt.Errorf("raft: token %q: %w", tokenID, err)
	}
	return readChanges(m, id, after, r, maxBytes)
}
