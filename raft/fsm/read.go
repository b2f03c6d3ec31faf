package fsm

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// The read helpers below read the local store as it is now. They are safe
// for concurrent use. For a linearizable answer call Node.ReadBarrier first;
// without it the answer may be stale (on a follower, or a deposed leader).
// Every returned value is a fresh copy owned by the caller.

// LookupTenant returns the tenant named name, or ErrTenantNotFound.
func (f *Machine) LookupTenant(name string) (*keyspace.Tenant, error) {
	if err := keyspace.ValidateName(name); err != nil {
		return nil, err
	}
	if err := f.checkReadable(); err != nil {
		return nil, err
	}
	e := f.cat.lookup(name)
	if e == nil {
		return nil, fmt.Errorf("%w: %q", ErrTenantNotFound, name)
	}
	return copyTenant(e.rec), nil
}

// TenantByID returns the tenant with the given ID, or ErrTenantNotFound.
func (f *Machine) TenantByID(id keyspace.TenantID) (*keyspace.Tenant, error) {
	if err := id.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTenantNotFound, err)
	}
	if err := f.checkReadable(); err != nil {
		return nil, err
	}
	e := f.cat.tenant(id)
	if e == nil {
		return nil, fmt.Errorf("%w: id %d", ErrTenantNotFound, id)
	}
	return copyTenant(e.rec), nil
}

func tenantByID(sys *store.SystemView, id keyspace.TenantID) (*keyspace.Tenant, error) {
	v, err := sys.Get(keyspace.TenantRecordKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: id %d", ErrTenantNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("raft: read tenant %d: %w", id, err)
	}
	return keyspace.DecodeTenant(v)
}

// ListTenants returns up to limit tenants in name order, starting after the
// name after ("" starts at the beginning). A limit <= 0 means no limit. The
// page is read from one consistent snapshot.
func (f *Machine) ListTenants(after string, limit int) ([]*keyspace.Tenant, error) {
	sn := f.store.NewSnapshot()
	defer sn.Close()
	sys := sn.System()
	start, end := keyspace.TenantNameSpan()
	if after != "" {
		start, end = keyspace.TenantNamesAfter(after)
	}
	var ids []keyspace.TenantID
	var decodeErr error
	err := sys.Scan(start, end, func(_, v []byte) bool {
		id, err := keyspace.DecodeTenantID(v)
		if err != nil {
			decodeErr = err
			return false
		}
		ids = append(ids, id)
		return limit <= 0 || len(ids) < limit
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("raft: list tenants: %w", err)
	}
	out := make([]*keyspace.Tenant, 0, len(ids))
	for _, id := range ids {
		t, err := tenantByID(sys, id)
		if err != nil {
			return nil, fmt.Errorf("raft: list tenants: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Token returns the token record with the given ID, or ErrTokenNotFound. It
// does not check expiry: that is the caller's policy.
func (f *Machine) Token(id string) (*command.TokenRecord, error) {
	if err := f.checkReadable(); err != nil {
		return nil, err
	}
	t := f.cat.token(id)
	if t == nil {
		return nil, fmt.Errorf("%w: %q", ErrTokenNotFound, id)
	}
	cp := *t
	cp.Hash = bytes.Clone(t.Hash)
	return &cp, nil
}

// HasToken reports whether token id exists (expired or not): the cheap
// check a server makes on every request of an open connection. It reports
// false while the node is restoring a snapshot; check Restoring to tell
// the two apart.
func (f *Machine) HasToken(id string) bool { return !f.restoring.Load() && f.cat.token(id) != nil }

// ListTokens returns the tokens bound to tenant id in token ID order, or, for
// id 0, every token (operator and tenant tokens alike; filter on
// TokenRecord.TenantID == 0 for operator tokens only).
func (f *Machine) ListTokens(id keyspace.TenantID) ([]*command.TokenRecord, error) {
	start, end := keyspace.TokenSpan()
	var out []*command.TokenRecord
	var decodeErr error
	err := f.store.System().Scan(start, end, func(_, v []byte) bool {
		t, err := decodeToken(v)
		if err != nil {
			decodeErr = err
			return false
		}
		if id == 0 || t.TenantID == id {
			out = append(out, t)
		}
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("raft: list tokens: %w", err)
	}
	return out, nil
}

// MemberInfo returns the replicated metadata of node id, or
// ErrMemberNotFound.
func (f *Machine) MemberInfo(id string) (*command.SetMember, error) {
	v, err := f.store.System().Get(keyspace.MemberKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrMemberNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("raft: read member %q: %w", id, err)
	}
	return decodeMember(v)
}

// MemberInfos returns the replicated metadata of every node that published
// some, keyed by node ID. It may include nodes no longer in the raft
// configuration; Node.Members joins it with the configuration.
func (f *Machine) MemberInfos() (map[string]*command.SetMember, error) {
	start, end := keyspace.MemberSpan()
	out := make(map[string]*command.SetMember)
	var decodeErr error
	err := f.store.System().Scan(start, end, func(_, v []byte) bool {
		m, err := decodeMember(v)
		if err != nil {
			decodeErr = err
			return false
		}
		out[m.NodeID] = m
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("raft: list members: %w", err)
	}
	return out, nil
}
