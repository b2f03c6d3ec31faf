package server

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
)

// maxListPage caps the tenants one list request returns.
const maxListPage = 1000

// handleAdmin serves operator requests. The caller has checked that the
// principal p is an operator.
func (s *Server) handleAdmin(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	switch req.Op {
	case wire.OpCreateTenant:
		return s.createTenant(ctx, p, req)
	case wire.OpDeleteTenant:
		t, err := s.lookupLinearizable(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		if _, err := s.node.Propose(ctx, &command.DeleteTenant{ID: t.ID}); err != nil {
			return nil, err
		}
		s.limits.forget(t.ID)
		s.usage.forget(t.ID)
		return &wire.Response{}, nil
	case wire.OpGetTenant:
		t, err := s.lookupLinearizable(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		return &wire.Response{Tenant: s.tenantInfo(t)}, nil
	case wire.OpListTenants:
		return s.listTenants(ctx, req)
	case wire.OpUpdateTenant:
		return s.updateTenant(ctx, p, req)
	case wire.OpNewToken:
		return s.newTenantToken(ctx, p, req)
	case wire.OpListTokens:
		return s.listTokens(ctx, req)
	case wire.OpRevokeToken:
		if _, err := s.proposeAudited(ctx, p, &command.DeleteToken{ID: req.Name}); err != nil {
			return nil, err
		}
		return &wire.Response{}, nil
	case wire.OpClusterStatus:
		return s.clusterStatusFor(ctx, p, req)
	case wire.OpClusterRemove:
		return s.removeNode(ctx, req)
	case wire.OpClusterJoin:
		return s.join(ctx, req)
	case wire.OpClusterAdd:
		return s.addNode(ctx, req)
	case wire.OpClusterPromote:
		return s.promoteNode(ctx, req)
	case wire.OpClusterTransferLeader:
		return s.transferLeader(ctx, req)
	case wire.OpExportTenant:
		return s.exportTenant(ctx, p, req)
	case wire.OpTenantAudit:
		t, err := s.lookupLinearizable(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		return s.tenantAudit(ctx, p, t, req) // audit.go
	case wire.OpTenantLifecycle:
		return s.tenantLifecycle(ctx, p, req) // lifecycle.go
	}
	return nil, fmt.Errorf("%w: operation %s", ErrBadRequest, req.Op)
}

// lookupLinearizable resolves a tenant name on the leader after a read
// barrier, so the answer reflects every acknowledged change.
func (s *Server) lookupLinearizable(ctx context.Context, name string) (*keyspace.Tenant, error) {
	if err := keyspace.ValidateName(name); err != nil {
		return nil, err
	}
	if err := s.node.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return s.node.FSM().LookupTenant(name)
}

func limitsFrom(base keyspace.Limits, cfg *wire.TenantConfig) keyspace.Limits {
	if cfg == nil {
		return base
	}
	set := func(dst *uint64, src *uint64) {
		if src != nil {
			*dst = *src
		}
	}
	set(&base.MaxBytes, cfg.MaxBytes)
	set(&base.MaxKeys, cfg.MaxKeys)
	set(&base.OpsPerSec, cfg.OpsPerSec)
	set(&base.Burst, cfg.Burst)
	set(&base.MaxConcurrent, cfg.MaxConcurrent)
	set(&base.MaxWatches, cfg.MaxWatches)
	set(&base.MaxConnections, cfg.MaxConnections)
	return base
}

func (s *Server) createTenant(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if err := keyspace.ValidateName(req.Name); err != nil {
		return nil, err
	}
	cmd := &command.CreateTenant{
		Name:      req.Name,
		Limits:    limitsFrom(keyspace.Limits{}, req.Config),
		CreatedAt: time.Now().UTC(),
	}
	if req.Config != nil {
		cmd.Labels = req.Config.Labels
	}
	var create command.Command = cmd
	if req.Config != nil && req.Config.Trial != 0 {
		if req.Config.Trial < 0 || req.Config.Trial > command.MaxRetention {
			return nil, fmt.Errorf("%w: trial of %v (above 0, up to %v)", ErrBadRequest, req.Config.Trial, command.MaxRetention)
		}
		create = &command.CreateTrialTenant{
			Name: cmd.Name, Limits: cmd.Limits, Labels: cmd.Labels,
			CreatedAt: cmd.CreatedAt, TrialEnds: cmd.CreatedAt.Add(req.Config.Trial),
		}
	}
	if _, err := s.proposeAudited(ctx, p, create); err != nil {
		return nil, err
	}
	t, err := s.node.FSM().LookupTenant(req.Name)
	if err != nil {
		return nil, err
	}
	return &wire.Response{Tenant: s.tenantInfo(t)}, nil
}

func (s *Server) updateTenant(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	t, err := s.lookupLinearizable(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	cmd := &command.UpdateTenant{ID: t.ID}
	if req.NewName != "" && req.NewName != t.Name {
		if err := keyspace.ValidateName(req.NewName); err != nil {
			return nil, err
		}
		n := req.NewName
		cmd.NewName = &n
	}
	if req.State != "" {
		st, err := keyspace.ParseState(req.State)
		if err != nil {
			return nil, err
		}
		cmd.State = &st
	}
	if req.Config != nil {
		l := limitsFrom(t.Limits, req.Config)
		cmd.Limits = &l
		// A non-nil map, even empty, replaces every label.
		cmd.Labels, _ = req.Config.LabelsUpdate()
	}
	if _, err := s.proposeAudited(ctx, p, cmd); err != nil {
		return nil, err
	}
	nt, err := s.node.FSM().TenantByID(t.ID)
	if err != nil {
		return nil, err
	}
	return &wire.Response{Tenant: s.tenantInfo(nt)}, nil
}

func (s *Server) listTenants(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	if err := s.node.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	var filter keyspace.State
	if req.State != "" {
		st, err := keyspace.ParseState(req.State)
		if err != nil {
			return nil, err
		}
		filter = st
	}
	limit := req.Limit
	if limit <= 0 || limit > maxListPage {
		limit = maxListPage
	}
	resp := &wire.Response{}
	after := req.After
	for {
		page, err := s.node.FSM().ListTenants(after, limit)
		if err != nil {
			return nil, err
		}
		for _, t := range page {
			after = t.Name
			if filter != 0 && t.State != filter {
				continue
			}
			resp.Tenants = append(resp.Tenants, *s.tenantInfo(t))
			if len(resp.Tenants) == limit {
				// Full page: the client continues after this tenant.
				resp.Next = t.Name
				return resp, nil
			}
		}
		if len(page) < limit {
			return resp, nil // the end of the tenant map
		}
	}
}

func (s *Server) tenantInfo(t *keyspace.Tenant) *wire.TenantInfo {
	info := &wire.TenantInfo{
		ID: uint64(t.ID), Name: t.Name, State: t.State.String(), CreatedAt: t.CreatedAt,
		Labels: t.Labels, TrialEnds: t.TrialEnds, PurgeAt: t.PurgeAt,
		Limits: wire.Limits{
			MaxBytes: t.Limits.MaxBytes, MaxKeys: t.Limits.MaxKeys, OpsPerSec: t.Limits.OpsPerSec,
			Burst: t.Limits.Burst, MaxConcurrent: t.Limits.MaxConcurrent, MaxWatches: t.Limits.MaxWatches,
			MaxConnections: t.Limits.MaxConnections,
		},
	}
	if n, err := s.store.EstimateTenantDiskUsage(t.ID); err == nil {
		info.Usage.DiskBytes = n
	}
	info.Usage.LogicalBytes, info.Usage.Keys = s.exactUsage(t.ID)
	u := &info.Usage
	u.Reads, u.Writes, u.BytesRead, u.BytesWritten, u.Throttled, u.Errors = s.usage.snapshotFor(t.ID)
	return info
}

func (s *Server) newTenantToken(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	rec := command.TokenRecord{ReadOnly: req.ReadOnly, CreatedAt: time.Now().UTC()}
	if req.TTL < 0 {
		return nil, fmt.Errorf("%w: negative ttl", ErrBadRequest)
	}
	if req.TTL > 0 {
		rec.ExpiresAt = rec.CreatedAt.Add(req.TTL)
	}
	if req.Name != "" {
		t, err := s.lookupLinearizable(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		rec.TenantID = t.ID
	}
	secret, id, hash, err := newToken()
	if err != nil {
		return nil, err
	}
	rec.ID, rec.Hash = id, hash
	if _, err := s.proposeAudited(ctx, p, &command.PutToken{Token: rec}); err != nil {
		return nil, err
	}
	return &wire.Response{Token: secret, TokenID: id}, nil
}

func (s *Server) listTokens(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	if err := s.node.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	var tid keyspace.TenantID
	name := ""
	if req.Name != "" {
		t, err := s.node.FSM().LookupTenant(req.Name)
		if err != nil {
			return nil, err
		}
		tid, name = t.ID, t.Name
	}
	recs, err := s.node.FSM().ListTokens(tid)
	if err != nil {
		return nil, err
	}
	resp := &wire.Response{}
	for _, r := range recs {
		resp.Tokens = append(resp.Tokens, wire.TokenInfo{ID: r.ID, Tenant: name, ReadOnly: r.ReadOnly, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt})
	}
	return resp, nil
}
