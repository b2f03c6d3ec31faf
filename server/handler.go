package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/store"
)

// maxScanPage caps the pairs one scan request returns; the client pages.
const maxScanPage = 1000

// maxScanBytes caps the bytes one scan page carries.
const maxScanBytes = 4 << 20

// principal is who a connection authenticated as.
type principal struct {
	tokenID  string
	operator bool
	tenantID keyspace.TenantID // for tenant tokens
	readOnly bool
	expires  time.Time
	// secret is an operator's token, kept for the connection's life: the
	// leader asks the members for their own figures with it (cluster.go).
	secret string
}

// verifyToken judges a token on this node's state alone. Every bad token
// (malformed, unknown ID, wrong secret, expired) is ErrPermissionDenied,
// at the same cost; fsm.ErrRestoring means this node cannot judge any
// token now.
func (s *Server) verifyToken(secret string) (*principal, error) {
	if s.node.FSM().Restoring() {
		tokenMatches(secret, nil)
		return nil, fsm.ErrRestoring
	}
	id, err := tokenID(secret)
	var rec *command.TokenRecord
	if err == nil {
		rec, err = s.node.FSM().Token(id)
	}
	if err != nil {
		tokenMatches(secret, nil)
		if errors.Is(err, fsm.ErrRestoring) {
			return nil, err
		}
		return nil, ErrPermissionDenied
	}
	if !tokenMatches(secret, rec.Hash) {
		return nil, ErrPermissionDenied
	}
	p := &principal{tokenID: id, operator: rec.TenantID == 0, tenantID: rec.TenantID, readOnly: rec.ReadOnly, expires: rec.ExpiresAt}
	if err := s.stillValid(p); err != nil {
		return nil, err
	}
	// An operator's secret asks the members for cluster status; a
	// tenant token's reports its refused requests from a follower to
	// the leader (audit.go).
	p.secret = secret
	return p, nil
}

// authenticate checks a token against the replicated token records. Every
// bad token gets the same verdict, ErrPermissionDenied, on every node: the
// leader judges from its state; a follower that refuses a token from its
// own state (it may not have applied a token the leader just created)
// catches up, and if it still refuses it asks the leader, for every bad
// token alike, so that its answer and its cost tell nothing about which
// token IDs exist. With localOnly (a hello forwarded by a follower) a node
// that is not the leader does not judge a token it refuses: it answers
// errNotReady. Any other error says that this node cannot judge now, the
// same for every token.
func (s *Server) authenticate(ctx context.Context, secret string, localOnly bool) (*principal, error) {
	p, err := s.verifyToken(secret)
	if err == nil || !errors.Is(err, ErrPermissionDenied) || s.node.IsLeader() {
		return p, err
	}
	if localOnly {
		return nil, errNotReady
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = s.node.CatchUp(cctx)
	cancel()
	if p, err = s.verifyToken(secret); err == nil || !errors.Is(err, ErrPermissionDenied) {
		return p, err
	}
	valid, err := s.askLeader(ctx, secret) // hello.go
	if err != nil {
		s.logger.Debug("hello: the leader could not judge a token this node refuses", "error", err)
		return nil, errNotReady
	}
	if !valid {
		return nil, ErrPermissionDenied
	}
	// The leader accepts it: it reaches this node with the next entries.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, errValidElsewhere
		case <-tick.C:
		}
		_ = s.node.CatchUp(ctx)
		if p, err = s.verifyToken(secret); err == nil || !errors.Is(err, ErrPermissionDenied) {
			return p, err
		}
	}
}

// caughtUp returns nil once this node has been ready since it started
// (servable, ready.go), so that it serves no stale read from state older
// than what the cluster had committed when it came up. A connection's
// hello already required it. A node not yet ready answers ErrNotLeader:
// the client goes to the leader or another node.
func (s *Server) caughtUp() error {
	if err := s.servable(); err != nil {
		return fmt.Errorf("%w: %w", raft.ErrNotLeader, err)
	}
	return nil
}

// stillValid re-checks a principal on every request, so that revocation and
// expiry take effect at once on a connection that is already open.
func (s *Server) stillValid(p *principal) error {
	if !p.expires.IsZero() && time.Now().After(p.expires) {
		return ErrPermissionDenied
	}
	if !s.node.FSM().HasToken(p.tokenID) {
		if s.node.FSM().Restoring() {
			return fsm.ErrRestoring // not a verdict on the token
		}
		return ErrPermissionDenied
	}
	// A cancelled tenant's tokens are kept (a restore brings them back)
	// but refused exactly as a revoked one is (lifecycle.go).
	if !p.operator {
		if st, ok := s.node.FSM().TenantState(p.tenantID); ok && st == keyspace.StateCancelled {
			return ErrPermissionDenied
		}
	}
	return nil
}

// tenantOfToken returns the tenant a tenant token is bound to.
func (s *Server) tenantOfToken(p *principal) (*keyspace.Tenant, error) {
	t, err := s.node.FSM().TenantByID(p.tenantID)
	if errors.Is(err, fsm.ErrRestoring) {
		return nil, err
	}
	if err != nil {
		return nil, ErrPermissionDenied
	}
	return t, nil
}

// resolveTenant maps the tenant named in a request to its record, enforcing
// that a tenant token reaches only its own tenant. For a tenant token every
// refusal is ErrPermissionDenied, whether or not the named tenant exists, so
// the answer reveals nothing about other tenants.
func (s *Server) resolveTenant(p *principal, name string) (*keyspace.Tenant, error) {
	if !p.operator {
		own, err := s.tenantOfToken(p)
		if err != nil {
			return nil, err
		}
		if name != "" && name != own.Name {
			s.refusals.note(own.ID, p.tokenID, p.secret) // audit.go
			return nil, ErrPermissionDenied
		}
		return own, nil
	}
	if name == "" {
		return nil, fmt.Errorf("%w: no tenant named", ErrBadRequest)
	}
	if err := keyspace.ValidateName(name); err != nil {
		return nil, err
	}
	return s.node.FSM().LookupTenant(name)
}

// handle serves one authenticated request.
func (s *Server) handle(ctx context.Context, p *principal, req *wire.Request) *wire.Response {
	if err := s.stillValid(p); err != nil {
		return s.errorResponse(err)
	}
	var resp *wire.Response
	var err error
	switch req.Op {
	case wire.OpPing:
		resp = &wire.Response{NodeID: s.cfg.NodeID}
	case wire.OpFormat:
		return s.formatAnswer(req.ID)
	case wire.OpGet, wire.OpScan:
		resp, err = s.handleRead(ctx, p, req)
	case wire.OpSet, wire.OpDelete, wire.OpDeleteRange, wire.OpBatch:
		resp, err = s.handleWrite(ctx, p, req)
	case wire.OpReadVersion, wire.OpCommit, wire.OpCompareAndSwap:
		return s.handleTxn(ctx, p, req) // txn.go
	case wire.OpWatch:
		return s.handleWatch(ctx, p, req) // watch.go
	case wire.OpGetTenant:
		if p.operator {
			resp, err = s.handleAdmin(ctx, p, req)
			break
		}
		// A tenant may see its own record and usage, nobody else's.
		var t *keyspace.Tenant
		if t, err = s.resolveTenant(p, req.Name); err == nil {
			resp = &wire.Response{Tenant: s.tenantInfo(t)}
		}
	case wire.OpAuditRefusals:
		resp, err = s.refusalReport(p, req) // audit.go
	case wire.OpTenantAudit:
		if p.operator {
			resp, err = s.handleAdmin(ctx, p, req)
			break
		}
		// A tenant reads its own trail; naming another tenant is refused
		// exactly as naming a missing one (audit.go).
		var t *keyspace.Tenant
		if t, err = s.resolveTenant(p, req.Name); err == nil {
			resp, err = s.tenantAudit(ctx, p, t, req)
		}
	case wire.OpSnapshotSave:
		if !p.operator {
			err = ErrPermissionDenied
			break
		}
		resp, err = s.saveSnapshot(ctx, req) // snapshot.go
	case wire.OpHello:
		err = fmt.Errorf("%w: already authenticated", ErrBadRequest)
	default:
		if !req.Op.Known() {
			return &wire.Response{Code: wire.CodeUnknownOp, Msg: fmt.Sprintf("unknown operation %d", uint8(req.Op))}
		}
		if !p.operator {
			err = ErrPermissionDenied
			break
		}
		resp, err = s.handleAdmin(ctx, p, req)
	}
	if err != nil {
		return s.errorResponse(err)
	}
	return resp
}

// errorResponse turns an error into a response with its stable code. A
// not-leader answer carries the leader's client address.
func (s *Server) errorResponse(err error) *wire.Response {
	code := codeOf(err)
	resp := &wire.Response{Code: code, Msg: err.Error()}
	switch code {
	case wire.CodeNotLeader:
		resp.Leader = s.leaderClientAddr()
		if resp.Leader == "" {
			resp.Code = wire.CodeUnavailable
			resp.Msg = "no leader known"
		}
	case wire.CodeInternal:
		s.logger.Error("request failed", "error", err)
		resp.Msg = "internal error"
	case wire.CodePermissionDenied:
		resp.Msg = "permission denied"
	}
	return resp
}

// admitData resolves the tenant of a data request from local state and
// charges it against the tenant's rate and concurrency limits, before any
// raft or storage work.
func (s *Server) admitData(p *principal, req *wire.Request, op int) (*keyspace.Tenant, func(), *wire.Response, error) {
	t, err := s.resolveTenant(p, req.Tenant)
	if err != nil {
		return nil, nil, nil, err
	}
	release, th, err := s.limits.admit(t)
	if err != nil {
		s.usage.record(t.ID, op, outcomeThrottled, 0, 0, 0)
		resp := s.errorResponse(err)
		resp.RetryAfter, resp.RateLimit, resp.RateBurst = th.retryAfter, th.rate, th.burst
		return nil, nil, resp, nil
	}
	return t, release, nil, nil
}

func dataOp(o wire.Op) int {
	switch o {
	case wire.OpGet:
		return opGet
	case wire.OpSet:
		return opSet
	case wire.OpDelete:
		return opDelete
	case wire.OpDeleteRange:
		return opDeleteRange
	case wire.OpBatch:
		return opBatch
	default:
		return opScan
	}
}

func outcomeOf(err error) int {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, store.ErrNotFound):
		return outcomeNotFound
	default:
		return outcomeError
	}
}

func (s *Server) handleRead(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if !req.Stale && !s.node.IsLeader() {
		return nil, raft.ErrNotLeader
	}
	if err := s.caughtUp(); err != nil {
		return nil, err
	}
	op := dataOp(req.Op)
	t, release, throttled, err := s.admitData(p, req, op)
	if err != nil || throttled != nil {
		return throttled, err
	}
	defer release()
	start := time.Now()
	resp, n, err := s.read(ctx, p, req, t)
	s.usage.record(t.ID, op, outcomeOf(err), time.Since(start), n, 0)
	return resp, err
}

// read serves a get or scan for tenant t, after a read barrier unless the
// request accepts stale data. It returns the bytes it read.
func (s *Server) read(ctx context.Context, p *principal, req *wire.Request, t *keyspace.Tenant) (*wire.Response, int, error) {
	if !req.Stale {
		if err := s.node.ReadBarrier(ctx); err != nil {
			return nil, 0, err
		}
		// Check and resolve again: the barrier may have applied a
		// revocation or a state change.
		if err := s.stillValid(p); err != nil {
			return nil, 0, err
		}
		var err error
		if t, err = s.resolveTenant(p, req.Tenant); err != nil {
			return nil, 0, err
		}
	} else if req.ReadVersion > 0 {
		// A transaction's read: any state at or after its read version.
		var err error
		if t, err = s.readAtVersion(ctx, p, req, t); err != nil {
			return nil, 0, err
		}
	}
	if !t.State.AllowsReads() {
		return nil, 0, fsm.ErrTenantLocked
	}
	view, err := s.store.Tenant(t.ID)
	if err != nil {
		return nil, 0, err
	}
	if req.Op == wire.OpGet {
		v, ver, err := view.GetVersioned(req.Key)
		if err != nil {
			return nil, 0, err
		}
		return &wire.Response{Value: v, DataVersion: ver}, len(req.Key) + len(v), nil
	}
	it, err := view.NewIterator(req.Key, req.End, req.Reverse)
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	resp := &wire.Response{}
	size, err := fillPage(resp, it, req.Limit)
	if err != nil {
		return nil, 0, err
	}
	return resp, size, nil
}

// fillPage appends to resp the pairs of it, at most limit of them (capped
// at maxScanPage) and about maxScanBytes, and sets More when some remain.
// It returns the bytes of keys and values it copied.
func fillPage(resp *wire.Response, it *store.Iterator, limit int) (int, error) {
	if limit <= 0 || limit > maxScanPage {
		limit = maxScanPage
	}
	size := 0
	for it.Next() {
		if len(resp.KVs) == limit || size >= maxScanBytes {
			resp.More = true
			break
		}
		kv := wire.KV{Key: append([]byte(nil), it.Key()...), Value: append([]byte(nil), it.Value()...), Version: it.Version()}
		size += len(kv.Key) + len(kv.Value)
		resp.KVs = append(resp.KVs, kv)
	}
	return size, it.Err()
}

func (s *Server) handleWrite(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if p.readOnly {
		return nil, ErrPermissionDenied
	}
	var ops []command.Op
	var single [1]command.Op
	size := 0
	switch req.Op {
	case wire.OpBatch:
		if len(req.Muts) == 0 {
			return &wire.Response{}, nil
		}
		if len(req.Muts) > command.MaxMutations {
			return nil, fmt.Errorf("%w: batch of %d mutations, limit %d", ErrBatchTooLarge, len(req.Muts), command.MaxMutations)
		}
		ops = make([]command.Op, len(req.Muts))
		for i, m := range req.Muts {
			op, err := mutationOp(m.Kind, m.Key, m.Value, m.End)
			if err != nil {
				return nil, fmt.Errorf("mutation %d: %w", i, err)
			}
			ops[i] = op
			size += len(m.Key) + len(m.Value) + len(m.End)
		}
		if cost := size + len(req.Muts)*command.TxnOverhead; cost > maxBatchBytes {
			return nil, fmt.Errorf("%w: batch of %d bytes with %d per mutation exceeds %d", ErrBatchTooLarge, cost, command.TxnOverhead, maxBatchBytes)
		}
	default:
		kind := map[wire.Op]uint8{wire.OpSet: wire.MutSet, wire.OpDelete: wire.MutDelete, wire.OpDeleteRange: wire.MutDeleteRange}[req.Op]
		op, err := mutationOp(kind, req.Key, req.Value, req.End)
		if err != nil {
			return nil, err
		}
		single[0] = op
		ops = single[:]
		size = len(req.Key) + len(req.Value)
	}
	if !s.node.IsLeader() {
		return nil, raft.ErrNotLeader
	}
	kind := dataOp(req.Op)
	t, release, throttled, err := s.admitData(p, req, kind)
	if err != nil || throttled != nil {
		return throttled, err
	}
	defer release()
	start := time.Now()
	var version uint64
	err = writable(t)
	if err == nil {
		cmd := &command.TenantWrite{TenantID: t.ID, TenantName: t.Name, Ops: ops, At: time.Now().UnixNano()}
		var res *fsm.Result
		if res, err = s.node.Propose(ctx, cmd); err == nil {
			version = res.Version
		}
	}
	s.usage.record(t.ID, kind, outcomeOf(err), time.Since(start), 0, size)
	if err != nil {
		return nil, err
	}
	return &wire.Response{DataVersion: version, TenantID: uint64(t.ID)}, nil
}

// maxBatchBytes caps one batch like a transaction: its keys, values and
// range ends plus command.TxnOverhead per mutation. command.MaxMutations caps its
// mutations.
const maxBatchBytes = 10 << 20

// mutationOp validates one mutation and turns it into a raft operation.
func mutationOp(kind uint8, key, value, end []byte) (command.Op, error) {
	switch kind {
	case wire.MutSet:
		if err := keyspace.CheckKey(key); err != nil {
			return command.Op{}, err
		}
		if err := keyspace.CheckValue(value); err != nil {
			return command.Op{}, err
		}
		if value == nil {
			value = []byte{}
		}
		return command.Op{Kind: command.OpSet, Key: key, Value: value}, nil
	case wire.MutDelete:
		if err := keyspace.CheckKey(key); err != nil {
			return command.Op{}, err
		}
		return command.Op{Kind: command.OpDelete, Key: key}, nil
	case wire.MutDeleteRange:
		if err := keyspace.CheckRange(key, end); err != nil {
			return command.Op{}, err
		}
		return command.Op{Kind: command.OpDeleteRange, Key: key, End: end}, nil
	}
	return command.Op{}, fmt.Errorf("%w: unknown mutation kind %d", ErrBadRequest, kind)
}

// writable is the server's early copy of the FSM's state check; the FSM
// checks again at apply time.
func writable(t *keyspace.Tenant) error {
	switch t.State {
	case keyspace.StateActive, keyspace.StateTrial:
		return nil
	case keyspace.StateSuspended:
		return fsm.ErrTenantReadOnly
	default:
		return fsm.ErrTenantLocked
	}
}
