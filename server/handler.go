package server

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft"
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
}

// authenticate checks a token against the replicated token records. Every
// failure looks the same to the caller.
func (s *Server) authenticate(secret string) (*principal, error) {
	id, err := tokenID(secret)
	if err != nil {
		tokenMatches(secret, nil)
		return nil, ErrPermissionDenied
	}
	rec, err := s.node.FSM().Token(id)
	if err != nil {
		tokenMatches(secret, nil)
		return nil, ErrPermissionDenied
	}
	if !tokenMatches(secret, rec.Hash) {
		return nil, ErrPermissionDenied
	}
	p := &principal{tokenID: id, operator: rec.TenantID == 0, tenantID: rec.TenantID, readOnly: rec.ReadOnly, expires: rec.ExpiresAt}
	if err := s.stillValid(p); err != nil {
		return nil, err
	}
	return p, nil
}

// stillValid re-checks a principal on every request, so that revocation and
// expiry take effect at once on a connection that is already open.
func (s *Server) stillValid(p *principal) error {
	if !p.expires.IsZero() && time.Now().After(p.expires) {
		return ErrPermissionDenied
	}
	if _, err := s.node.FSM().Token(p.tokenID); err != nil {
		return ErrPermissionDenied
	}
	return nil
}

// tenantOfToken returns the tenant a tenant token is bound to.
func (s *Server) tenantOfToken(p *principal) (*keyspace.Tenant, error) {
	t, err := s.node.FSM().TenantByID(p.tenantID)
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
	case wire.OpGet, wire.OpScan:
		resp, err = s.handleRead(ctx, p, req)
	case wire.OpSet, wire.OpDelete, wire.OpDeleteRange:
		resp, err = s.handleWrite(ctx, p, req)
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
		resp, err = s.handleAdmin(ctx, req)
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

func (s *Server) handleRead(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if !req.Stale {
		if err := s.node.ReadBarrier(ctx); err != nil {
			return nil, err
		}
	}
	t, err := s.resolveTenant(p, req.Tenant)
	if err != nil {
		return nil, err
	}
	if !t.State.AllowsReads() {
		return nil, raft.ErrTenantLocked
	}
	view, err := s.store.Tenant(t.ID)
	if err != nil {
		return nil, err
	}
	switch req.Op {
	case wire.OpGet:
		v, err := view.Get(req.Key)
		if err != nil {
			return nil, err
		}
		return &wire.Response{Value: v}, nil
	default: // OpScan
		limit := req.Limit
		if limit <= 0 || limit > maxScanPage {
			limit = maxScanPage
		}
		it, err := view.NewIterator(req.Key, req.End, req.Reverse)
		if err != nil {
			return nil, err
		}
		defer it.Close()
		resp := &wire.Response{}
		size := 0
		for it.Next() {
			if len(resp.KVs) == limit || size >= maxScanBytes {
				resp.More = true
				break
			}
			kv := wire.KV{Key: append([]byte(nil), it.Key()...), Value: append([]byte(nil), it.Value()...)}
			size += len(kv.Key) + len(kv.Value)
			resp.KVs = append(resp.KVs, kv)
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
		return resp, nil
	}
}

func (s *Server) handleWrite(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if p.readOnly {
		return nil, ErrPermissionDenied
	}
	var op raft.Op
	switch req.Op {
	case wire.OpSet:
		if err := keyspace.CheckKey(req.Key); err != nil {
			return nil, err
		}
		if err := keyspace.CheckValue(req.Value); err != nil {
			return nil, err
		}
		val := req.Value
		if val == nil {
			val = []byte{}
		}
		op = raft.Op{Kind: raft.OpSet, Key: req.Key, Value: val}
	case wire.OpDelete:
		if err := keyspace.CheckKey(req.Key); err != nil {
			return nil, err
		}
		op = raft.Op{Kind: raft.OpDelete, Key: req.Key}
	default: // OpDeleteRange
		if err := keyspace.CheckRange(req.Key, req.End); err != nil {
			return nil, err
		}
		op = raft.Op{Kind: raft.OpDeleteRange, Key: req.Key, End: req.End}
	}
	if !s.node.IsLeader() {
		return nil, raft.ErrNotLeader
	}
	t, err := s.resolveTenant(p, req.Tenant)
	if err != nil {
		return nil, err
	}
	if !t.State.AllowsWrites() {
		if t.State == keyspace.StateReadOnly {
			return nil, raft.ErrTenantReadOnly
		}
		return nil, raft.ErrTenantLocked
	}
	cmd := &raft.TenantWrite{TenantID: t.ID, TenantName: t.Name, Ops: []raft.Op{op}}
	if _, err := s.node.Propose(ctx, cmd); err != nil {
		return nil, err
	}
	return &wire.Response{}, nil
}
