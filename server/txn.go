package server

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft"
)

// This file serves transactions: read versions, commits and
// compare-and-swap. See docs/TRANSACTIONS.md for the model.

// txnErrorResponse is errorResponse; the transaction errors are in the one
// table of errors.go like every other.
func (s *Server) txnErrorResponse(err error) *wire.Response { return s.errorResponse(err) }

// handleTxn serves OpReadVersion, OpCommit and OpCompareAndSwap.
func (s *Server) handleTxn(ctx context.Context, p *principal, req *wire.Request) *wire.Response {
	var resp *wire.Response
	var err error
	switch req.Op {
	case wire.OpReadVersion:
		resp, err = s.readVersion(ctx, p, req)
	case wire.OpCommit:
		if len(req.Muts) == 0 {
			resp, err = s.validateReads(ctx, p, req)
		} else {
			resp, err = s.commit(ctx, p, req)
		}
	case wire.OpCompareAndSwap:
		resp, err = s.compareAndSwap(ctx, p, req)
	default:
		err = fmt.Errorf("%w: operation %s", ErrBadRequest, req.Op)
	}
	if err != nil {
		return s.txnErrorResponse(err)
	}
	return resp
}

// readTenant admits a read-like request on the leader, runs a read barrier
// and resolves the tenant again after it. The caller must call release.
func (s *Server) readTenant(ctx context.Context, p *principal, req *wire.Request, op int) (t *keyspace.Tenant, release func(), throttled *wire.Response, err error) {
	if !s.node.IsLeader() {
		return nil, nil, nil, raft.ErrNotLeader
	}
	t, release, throttled, err = s.admitData(p, req, op)
	if err != nil || throttled != nil {
		return nil, nil, throttled, err
	}
	if err := s.node.ReadBarrier(ctx); err != nil {
		release()
		return nil, nil, nil, err
	}
	if t, err = s.resolveTenant(p, req.Tenant); err != nil {
		release()
		return nil, nil, nil, err
	}
	if !t.State.AllowsReads() {
		release()
		return nil, nil, nil, fsm.ErrTenantLocked
	}
	return t, release, nil, nil
}

// readVersion answers the tenant's current version, after a read barrier:
// every write acknowledged before the request has a version at or below it.
func (s *Server) readVersion(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	start := time.Now()
	t, release, throttled, err := s.readTenant(ctx, p, req, opGet)
	if err != nil || throttled != nil {
		return throttled, err
	}
	defer release()
	vi, err := s.node.FSM().TenantVersion(t.ID)
	s.usage.record(t.ID, opGet, outcomeOf(err), time.Since(start), 0, 0)
	if err != nil {
		return nil, err
	}
	return &wire.Response{DataVersion: vi.Version, TenantID: uint64(t.ID)}, nil
}

// sameTenant refuses a commit whose read version belongs to another tenant
// ID than the name now resolves to: the tenant was deleted and re-created
// since, so everything the transaction read is gone.
func sameTenant(req *wire.Request, t *keyspace.Tenant) error {
	if req.TenantID != 0 && req.TenantID != uint64(t.ID) {
		return fmt.Errorf("%w: tenant %q was re-created since the read version", fsm.ErrConflict, t.Name)
	}
	return nil
}

func wireReads(in []wire.KeyRange) ([]command.KeyRange, error) {
	out := make([]command.KeyRange, len(in))
	for i, r := range in {
		if err := keyspace.CheckRange(r.Start, r.End); err != nil {
			return nil, fmt.Errorf("read range %d: %w", i, err)
		}
		out[i] = command.KeyRange{Start: r.Start, End: r.End}
	}
	return out, nil
}

// validateReads commits a transaction without mutations. It writes nothing,
// so it needs no log entry: after a read barrier the leader checks the
// write history after the read version. If no later write touched a read
// range, every read returned the state at the current version, which lies
// within the transaction's lifetime: it is serializable there.
func (s *Server) validateReads(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	reads, err := wireReads(req.Reads)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	t, release, throttled, err := s.readTenant(ctx, p, req, opGet)
	if err != nil || throttled != nil {
		return throttled, err
	}
	defer release()
	if err := sameTenant(req, t); err != nil {
		return nil, err
	}
	v, err := s.node.FSM().ValidateReads(t.ID, req.ReadVersion, reads)
	s.usage.record(t.ID, opGet, outcomeOf(err), time.Since(start), 0, 0)
	if err != nil {
		return nil, err
	}
	return &wire.Response{DataVersion: v, TenantID: uint64(t.ID)}, nil
}

// txnOp validates one mutation of a commit and turns it into a raft op.
func txnOp(m *wire.Mutation) (command.Op, error) {
	var kind command.OpKind
	switch m.Kind {
	case wire.MutSet, wire.MutDelete, wire.MutDeleteRange:
		return mutationOp(m.Kind, m.Key, m.Value, m.End)
	case wire.MutAdd:
		kind = command.OpAdd
	case wire.MutMin:
		kind = command.OpMin
	case wire.MutMax:
		kind = command.OpMax
	case wire.MutCompareAndClear:
		kind = command.OpCompareAndClear
	default:
		return command.Op{}, fmt.Errorf("%w: unknown mutation kind %d", ErrBadRequest, m.Kind)
	}
	if err := keyspace.CheckKey(m.Key); err != nil {
		return command.Op{}, err
	}
	if len(m.End) != 0 {
		return command.Op{}, fmt.Errorf("%w: atomic operation with a range end", ErrBadRequest)
	}
	if kind == command.OpCompareAndClear {
		if err := keyspace.CheckValue(m.Value); err != nil {
			return command.Op{}, err
		}
	} else if len(m.Value) != 8 {
		return command.Op{}, fmt.Errorf("%w: atomic operand of %d bytes, want 8", ErrBadRequest, len(m.Value))
	}
	return command.Op{Kind: kind, Key: m.Key, Value: m.Value}, nil
}

// maxTxnIDLen mirrors the raft limit on transaction IDs.
const maxTxnIDLen = 32

// commit proposes a transaction with mutations as one TxnCommit. The FSM
// does the conflict check at apply time, against the replicated history.
func (s *Server) commit(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if p.readOnly {
		return nil, ErrPermissionDenied
	}
	if len(req.TxnID) > maxTxnIDLen {
		return nil, fmt.Errorf("%w: transaction id of %d bytes, limit %d", ErrBadRequest, len(req.TxnID), maxTxnIDLen)
	}
	if len(req.Muts) > command.MaxMutations {
		return nil, fmt.Errorf("%w: %d mutations, limit %d", command.ErrTxTooLarge, len(req.Muts), command.MaxMutations)
	}
	reads, err := wireReads(req.Reads)
	if err != nil {
		return nil, err
	}
	ops := make([]command.Op, len(req.Muts))
	for i := range req.Muts {
		if ops[i], err = txnOp(&req.Muts[i]); err != nil {
			return nil, fmt.Errorf("mutation %d: %w", i, err)
		}
	}
	size := command.TxnSize(reads, ops)
	if size > command.MaxTxnBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", command.ErrTxTooLarge, size, command.MaxTxnBytes)
	}
	if !s.node.IsLeader() {
		return nil, raft.ErrNotLeader
	}
	t, release, throttled, err := s.admitData(p, req, opBatch)
	if err != nil || throttled != nil {
		return throttled, err
	}
	defer release()
	if err := sameTenant(req, t); err != nil {
		return nil, err
	}
	// No early state check: the FSM first recognises a resent commit that
	// already took effect, whatever the tenant's state is now.
	start := time.Now()
	res, err := s.node.Propose(ctx, &command.TxnCommit{
		TenantID: t.ID, TenantName: t.Name, ReadVersion: req.ReadVersion, TxnID: req.TxnID,
		Reads: reads, Ops: ops, At: time.Now().UnixNano(),
	})
	s.usage.record(t.ID, opBatch, outcomeOf(err), time.Since(start), 0, size)
	if err != nil {
		return nil, err
	}
	return &wire.Response{DataVersion: res.Version, TenantID: uint64(t.ID)}, nil
}

// compareAndSwap proposes a CompareAndSwap, evaluated by the FSM in log
// order: linearizable, and never a conflict.
func (s *Server) compareAndSwap(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if p.readOnly {
		return nil, ErrPermissionDenied
	}
	cmd := &command.CompareAndSwap{
		Key: req.Key, Old: req.Expect, New: req.Value,
		OldAbsent: req.Flags&wire.FlagExpectAbsent != 0, NewAbsent: req.Flags&wire.FlagDelete != 0,
	}
	if err := keyspace.CheckKey(cmd.Key); err != nil {
		return nil, err
	}
	if err := keyspace.CheckValue(cmd.Old); err != nil {
		return nil, err
	}
	if err := keyspace.CheckValue(cmd.New); err != nil {
		return nil, err
	}
	if (cmd.OldAbsent && len(cmd.Old) != 0) || (cmd.NewAbsent && len(cmd.New) != 0) || req.Flags&^(wire.FlagExpectAbsent|wire.FlagDelete) != 0 {
		return nil, fmt.Errorf("%w: compare-and-swap flags contradict its values", ErrBadRequest)
	}
	if !s.node.IsLeader() {
		return nil, raft.ErrNotLeader
	}
	t, release, throttled, err := s.admitData(p, req, opSet)
	if err != nil || throttled != nil {
		return throttled, err
	}
	defer release()
	if err := writable(t); err != nil {
		return nil, err
	}
	cmd.TenantID, cmd.TenantName, cmd.At = t.ID, t.Name, time.Now().UnixNano()
	start := time.Now()
	res, err := s.node.Propose(ctx, cmd)
	s.usage.record(t.ID, opSet, outcomeOf(err), time.Since(start), 0, len(cmd.Key)+len(cmd.New))
	if err != nil {
		return nil, err
	}
	return &wire.Response{Swapped: res.Swapped, DataVersion: res.Version, TenantID: uint64(t.ID)}, nil
}

// readAtVersion prepares a transaction's read (a get or scan with Stale
// and ReadVersion set): it may be served from any state that includes
// every write of the tenant up to the read version, without a read
// barrier. That is enough for serializability, because the commit checks
// that no write after the read version touched what was read: a read that
// missed a later write conflicts at commit. A node that has not applied
// the read version yet catches up with a read barrier if it leads, and
// sends the client to the leader otherwise.
func (s *Server) readAtVersion(ctx context.Context, p *principal, req *wire.Request, t *keyspace.Tenant) (*keyspace.Tenant, error) {
	if err := sameTenant(req, t); err != nil {
		return nil, err
	}
	vi, err := s.node.FSM().TenantVersion(t.ID)
	if err != nil {
		return nil, err
	}
	if vi.Version >= req.ReadVersion {
		return t, nil
	}
	if !s.node.IsLeader() {
		return nil, raft.ErrNotLeader
	}
	if err := s.node.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	if t, err = s.resolveTenant(p, req.Tenant); err != nil {
		return nil, err
	}
	if err := sameTenant(req, t); err != nil {
		return nil, err
	}
	if vi, err = s.node.FSM().TenantVersion(t.ID); err != nil {
		return nil, err
	}
	if vi.Version < req.ReadVersion {
		return nil, versionAhead(s, t, req.ReadVersion, vi.Version)
	}
	return t, nil
}

// versionAhead is the error for a request naming a version the tenant has
// not reached. A tenant deleted since it was resolved reads as version 0:
// then the answer is that it does not exist (a tenant that exists now
// existed then, since IDs are never reused).
func versionAhead(s *Server, t *keyspace.Tenant, asked, have uint64) error {
	if _, err := s.node.FSM().TenantByID(t.ID); err != nil {
		return err
	}
	return fmt.Errorf("%w: version %d is ahead of the tenant's version %d", ErrBadRequest, asked, have)
}
