package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// applier applies the commands of one raft batch into one store batch. A
// command sees the writes of the commands before it in the same batch:
// system keys are read through the batch, tenant data through the
// committed store and this batch's overlay of it (applyset.go).
//
// Every apply function follows one rule: read and check everything first,
// then write. A check that fails returns a plain error, which becomes the
// command's result; nothing has been written yet, so the shared batch holds
// no trace of the refused command. Once writing starts, any error is a
// storage failure (*fatalError), which stops the FSM: the batch is discarded
// whole, never committed with half a command in it.
//
// Per-command bookkeeping that must stay consistent with the data (the usage
// counters of the quota, versions, the write history) belongs here too: it
// is read from the catalog during the checks and written with the data,
// through the tenant's own metadata view (meta), never through a.sys.
type applier struct {
	b   *store.Batch
	sys *store.SystemView
	// cat is the FSM's catalog as of the last committed batch and p this
	// batch's changes to it (catalog.go): tenant records, usage, version
	// states and tokens are read from them, never from the store.
	cat *catalog
	p   pending
	// touched collects the tenants whose data, version, state or existence
	// changed, for the FSM's observer (txnapply.go).
	touched map[keyspace.TenantID]struct{}
	// data is this batch's access to each tenant's data it touched: the
	// committed store plus the batch's own writes (applyset.go). Tenant
	// data is never read through b.
	data map[keyspace.TenantID]*tenantData
}

func newApplier(b *store.Batch, cat *catalog) *applier {
	return &applier{b: b, sys: b.System(), cat: cat}
}

// apply decodes and applies one command entry. The returned error is non-nil
// only for storage failures and for entries of a newer release
// (format.go); a refusal is carried in the Result.
func (a *applier) apply(index uint64, data []byte) (*Result, error) {
	cmd, err := command.Decode(data)
	if err == nil {
		err = a.checkFormat(index, cmd) // format.go
	}
	if err == nil {
		err = cmd.Validate()
	}
	if err != nil {
		if stop := applyStop(index, data, err); stop != nil {
			return nil, stop
		}
		return &Result{Index: index, Err: err}, nil
	}
	res := &Result{Index: index}
	switch c := cmd.(type) {
	case *command.TenantWrite:
		err = a.tenantWrite(c, res)
	case *command.TxnCommit:
		err = a.txnCommit(c, res)
	case *command.CompareAndSwap:
		err = a.compareAndSwap(c, res)
	case *command.CreateTenant:
		err = a.createTenant(c, res)
	case *command.UpdateTenant:
		err = a.updateTenant(c, res)
	case *command.DeleteTenant:
		err = a.deleteTenant(c, res)
	case *command.PutToken:
		err = a.putToken(c)
	case *command.DeleteToken:
		err = a.deleteToken(c)
	case *command.SetMember:
		err = a.setMember(c)
	case *command.RemoveMember:
		err = a.removeMember(c)
	case *command.Noop:
	case *command.SetFormat:
		err = a.setFormat(c)
	case *command.HoldNonvoter:
		err = a.holdNonvoter(c) // hold.go
	case *command.Lifecycle:
		err = a.lifecycle(c, res) // lifecycle.go
	case *command.CreateTrialTenant:
		err = a.createTrialTenant(c, res) // lifecycle.go
	case *command.Audited:
		err = a.audited(c, res) // audit.go
	case *command.AuditNote:
		err = a.auditNote(c)
	case *command.AuditPrune:
		err = a.auditPrune(c)
	case *command.ImportAudit:
		err = a.importAudit(c)
	default:
		// newCommand and this switch are out of step: a programming error,
		// but still refused identically on every replica.
		err = fmt.Errorf("%w: no apply function for %T", command.ErrUnknownCommand, cmd)
	}
	var fe *fatalError
	if errors.As(err, &fe) {
		return nil, err
	}
	if err != nil {
		return &Result{Index: index, Err: err}, nil
	}
	return res, nil
}

// get reads a system key. A missing key is (nil, false, nil); any other
// error is fatal.
func (a *applier) get(k keyspace.SystemKey) ([]byte, bool, error) {
	v, err := a.sys.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fatal("read %s: %w", k, err)
	}
	return v, true, nil
}

func (a *applier) set(k keyspace.SystemKey, v []byte) error {
	if err := a.sys.Set(k, v); err != nil {
		return fatal("write %s: %w", k, err)
	}
	return nil
}

func (a *applier) del(k keyspace.SystemKey) error {
	if err := a.sys.Delete(k); err != nil {
		return fatal("delete %s: %w", k, err)
	}
	return nil
}

// meta returns the view of tenant id's records (usage, version state,
// write history) in this batch. Like a.sys it reads through the batch and
// writes into its indexed part; unlike a.sys it reaches nothing of another
// tenant, whatever key it is handed.
func (a *applier) meta(id keyspace.TenantID) (*store.TenantMetaView, error) {
	m, err := a.b.TenantMeta(id)
	if err != nil {
		return nil, fatal("records of tenant %d: %w", id, err)
	}
	return m, nil
}

// setRecord writes a record of m's tenant; any error is fatal.
func setRecord(m *store.TenantMetaView, k keyspace.SystemKey, v []byte) error {
	if err := m.Set(k, v); err != nil {
		return fatal("tenant %d: write %s: %w", m.ID(), k, err)
	}
	return nil
}

// deleteRecord deletes a record of m's tenant; any error is fatal.
func deleteRecord(m *store.TenantMetaView, k keyspace.SystemKey) error {
	if err := m.Delete(k); err != nil {
		return fatal("tenant %d: delete %s: %w", m.ID(), k, err)
	}
	return nil
}

// tenant returns the record of id as this batch sees it, or
// ErrTenantNotFound. The record is shared: copy it before changing it.
func (a *applier) tenant(id keyspace.TenantID) (*keyspace.Tenant, error) {
	e := a.entry(id)
	if e == nil {
		return nil, fmt.Errorf("%w: id %d", ErrTenantNotFound, id)
	}
	return e.rec, nil
}

// nameTaken reports whether the name index holds name.
func (a *applier) nameTaken(name string) bool { return a.nameOwner(name) != 0 }

func (a *applier) tenantWrite(c *command.TenantWrite, res *Result) error {
	t, err := a.checkTenant(c.TenantID, c.TenantName, true)
	if err != nil {
		return err
	}
	res.TenantID = c.TenantID
	if len(c.Ops) == 0 {
		return nil
	}
	d, err := a.tenantData(c.TenantID)
	if err != nil {
		return err
	}
	st := a.versionState(c.TenantID)
	// Quota check, then the data at the next version, the usage counters
	// and the write history, all in this batch (txnapply.go).
	return a.commitOps(t, d, st, c.Ops, c.At, nil, res)
}

// labelsOf returns a copy of labels, nil when there are none: what a
// record decoded from the store holds (the field is omitted when empty), so
// the catalog and a fresh load agree.
func labelsOf(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	return maps.Clone(labels)
}

// writable maps a tenant's state to the error a write gets. A cancelled
// tenant's writes get ErrTenantLocked, whose code clients already know.
func writable(t *keyspace.Tenant) error {
	switch {
	case t.State.AllowsWrites():
		return nil
	case t.State == keyspace.StateSuspended:
		return fmt.Errorf("%w: %q", ErrTenantReadOnly, t.Name)
	case t.State == keyspace.StateCancelled:
		return fmt.Errorf("%w: %q is cancelled", ErrTenantLocked, t.Name)
	default:
		return fmt.Errorf("%w: %q", ErrTenantLocked, t.Name)
	}
}

func (a *applier) createTenant(c *command.CreateTenant, res *Result) error {
	return a.create(&keyspace.Tenant{
		Name: c.Name, State: keyspace.StateActive,
		Limits: c.Limits, Labels: labelsOf(c.Labels), CreatedAt: c.CreatedAt,
	}, res)
}

// create stores the new tenant t (all but its ID) under the next ID.
func (a *applier) create(t *keyspace.Tenant, res *Result) error {
	if a.nameTaken(t.Name) {
		return fmt.Errorf("%w: %q", ErrTenantExists, t.Name)
	}
	next := uint64(keyspace.FirstID)
	if v, ok, err := a.get(keyspace.NextIDKey()); err != nil {
		return err
	} else if ok {
		if next, err = keyspace.DecodeUint64(v); err != nil {
			return fatal("next tenant id: %w", err)
		}
	}
	id := keyspace.TenantID(next)
	if !id.Valid() {
		return fmt.Errorf("%w: next id %d", keyspace.ErrIDsExhausted, next)
	}
	t.ID = id
	rec, err := keyspace.EncodeTenant(t)
	if err != nil {
		return err
	}
	// Checks are done: write. The stored counter is the next ID to hand
	// out, so IDs only grow, even across deletes.
	if err := a.set(keyspace.TenantRecordKey(id), rec); err != nil {
		return err
	}
	if err := a.set(keyspace.TenantNameKey(t.Name), keyspace.EncodeUint64(uint64(id))); err != nil {
		return err
	}
	if err := a.set(keyspace.NextIDKey(), keyspace.EncodeUint64(next+1)); err != nil {
		return err
	}
	a.stage(id, &tenantState{rec: t, ver: versionState{First: 1}})
	a.stageName(t.Name, id)
	res.TenantID, res.Tenant = id, copyTenant(t)
	return nil
}

func (a *applier) updateTenant(c *command.UpdateTenant, res *Result) error {
	cur, err := a.tenant(c.ID)
	if err != nil {
		return err
	}
	t := copyTenant(cur)
	oldName := t.Name
	rename := c.NewName != nil && *c.NewName != oldName
	if rename {
		if a.nameTaken(*c.NewName) {
			return fmt.Errorf("%w: %q", ErrTenantExists, *c.NewName)
		}
		t.Name = *c.NewName
	}
	if c.State != nil {
		if err := keyspace.CheckSetState(t, *c.State); err != nil {
			return err
		}
		if *c.State != t.State {
			// Leaving trial by hand ends the trial: only a trial has a
			// trial deadline (lifecycle.go).
			t.State, t.TrialEnds = *c.State, time.Time{}
		}
	}
	if c.Limits != nil {
		t.Limits = *c.Limits
	}
	if c.Labels != nil {
		t.Labels = labelsOf(c.Labels)
	}
	rec, err := keyspace.EncodeTenant(t)
	if err != nil {
		return err
	}
	// Checks are done: write.
	if rename {
		if err := a.del(keyspace.TenantNameKey(oldName)); err != nil {
			return err
		}
		if err := a.set(keyspace.TenantNameKey(t.Name), keyspace.EncodeUint64(uint64(t.ID))); err != nil {
			return err
		}
	}
	if err := a.set(keyspace.TenantRecordKey(t.ID), rec); err != nil {
		return err
	}
	if rename {
		a.stageName(oldName, 0)
		a.stageName(t.Name, t.ID)
	}
	a.mutable(t.ID).rec = t
	res.TenantID, res.Tenant = t.ID, copyTenant(t)
	a.touch(t.ID)
	return nil
}

func (a *applier) deleteTenant(c *command.DeleteTenant, res *Result) error {
	t, err := a.tenant(c.ID)
	if err != nil {
		return err
	}
	return a.purge(t, res)
}

// purge removes tenant t whole: its data with one range deletion, its
// record, name, per-tenant metadata and tokens. DeleteTenant does it at
// once, a Lifecycle purge when the retention ended.
func (a *applier) purge(t *keyspace.Tenant, res *Result) error {
	tokens := a.tokensOf(t.ID)
	d, err := a.tenantData(t.ID)
	if err != nil {
		return err
	}
	// Checks are done: write. The data goes with one range deletion, and
	// no walk: the usage record goes with the tenant's other records.
	if err := d.v.Clear(); err != nil {
		return fatal("clear tenant %d: %w", t.ID, err)
	}
	d.clearAll()
	if err := a.del(keyspace.TenantRecordKey(t.ID)); err != nil {
		return err
	}
	if err := a.del(keyspace.TenantNameKey(t.Name)); err != nil {
		return err
	}
	m, err := a.meta(t.ID)
	if err != nil {
		return err
	}
	if err := m.Clear(); err != nil {
		return fatal("delete the records of tenant %d: %w", t.ID, err)
	}
	for _, tid := range tokens {
		if err := a.del(keyspace.TokenKey(tid)); err != nil {
			return err
		}
		a.stageToken(tid, nil)
	}
	a.stage(t.ID, nil)
	a.stageName(t.Name, 0)
	res.TenantID = t.ID
	a.touch(t.ID)
	return nil
}

func (a *applier) putToken(c *command.PutToken) error {
	if c.Token.TenantID != 0 {
		if _, err := a.tenant(c.Token.TenantID); err != nil {
			return err
		}
	}
	rec, err := command.Marshal(&c.Token)
	if err != nil {
		return fmt.Errorf("%w: encode token: %v", command.ErrBadCommand, err)
	}
	if err := a.set(keyspace.TokenKey(c.Token.ID), rec); err != nil {
		return err
	}
	tok := c.Token
	tok.Hash = bytes.Clone(c.Token.Hash)
	a.stageToken(tok.ID, &tok)
	return nil
}

func (a *applier) deleteToken(c *command.DeleteToken) error {
	if a.tokenRecord(c.ID) == nil {
		return fmt.Errorf("%w: %q", ErrTokenNotFound, c.ID)
	}
	if err := a.del(keyspace.TokenKey(c.ID)); err != nil {
		return err
	}
	a.stageToken(c.ID, nil)
	return nil
}

func (a *applier) setMember(c *command.SetMember) error {
	rec, err := command.Marshal(c)
	if err != nil {
		return fmt.Errorf("%w: encode member: %v", command.ErrBadCommand, err)
	}
	return a.set(keyspace.MemberKey(c.NodeID), rec)
}

func (a *applier) removeMember(c *command.RemoveMember) error {
	return a.del(keyspace.MemberKey(c.NodeID))
}

func decodeToken(b []byte) (*command.TokenRecord, error) {
	var t command.TokenRecord
	if err := command.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("token record: %w", err)
	}
	return &t, nil
}

func decodeMember(b []byte) (*command.SetMember, error) {
	var m command.SetMember
	if err := command.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("member record: %w", err)
	}
	return &m, nil
}
