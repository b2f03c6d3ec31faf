package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"
)

// # The audit trail on the server
//
// Operator changes are proposed inside command.Audited (proposeAudited),
// with the operator token's ID and the node's time, once the cluster
// format is 4; the state machine records the events (raft/fsm/audit.go).
// OpTenantAudit reads a trail, or checks its chain, from this node's
// copy. A tenant token reaches its own tenant's trail and no other: asked
// for another, it gets the answer a missing tenant gets.
//
// Refused attempts of a tenant's token to reach other tenants are counted
// per token in memory (refusalCounts); once a minute a follower reports its
// counts to the leader, each with its token's own secret (OpAuditRefusals),
// and the leader proposes one aggregated event per token in the CALLER's
// trail, naming
// only the count, never the tenants it tried: at most
// maxRefusalEventsPerTenant events per tenant and minute, the rest folded
// into the last one, so nobody can grow a trail faster than that.
//
// The leader also drops events older than Config.AuditRetention, at most
// auditPruneBatch per tenant and round, every auditPruneInterval.

const (
	// DefaultAuditRetention keeps audit events for 400 days: SOC 2
	// Type II looks at a 12-month window, and a margin covers a late audit.
	DefaultAuditRetention = 400 * 24 * time.Hour
	auditPruneInterval    = 10 * time.Minute
	auditPruneBatch       = 256
	auditPruneTenants     = 64
	// maxAuditPage bounds the events one OpTenantAudit answer carries.
	maxAuditPage = 1000
	// refusalInterval is the aggregation period of refused attempts.
	refusalInterval           = time.Minute
	maxRefusalEventsPerTenant = 5
	// maxRefusalReports bounds a follower's reports to the leader a
	// round (one call each); the rest wait for the next round.
	maxRefusalReports = 64
	// maxRefusalReport caps the count one report or note adds.
	maxRefusalReport = 1 << 40
)

// proposeAudited proposes an operator's command, inside command.Audited
// when the cluster format allows it.
func (s *Server) proposeAudited(ctx context.Context, p *principal, cmd command.Command) (*fsm.Result, error) {
	if s.node.FSM().ClusterFormat() >= command.Format4 {
		a, err := command.NewAudited(p.tokenID, time.Now(), cmd)
		if err != nil {
			return nil, err
		}
		cmd = a
	}
	return s.node.Propose(ctx, cmd)
}

// auditNote proposes an event that changes nothing else in t's trail. A
// failure is logged, not returned: the operation it records succeeded.
func (s *Server) auditNote(ctx context.Context, t *keyspace.Tenant, actor, kind, after string) {
	if s.node.FSM().ClusterFormat() < command.Format4 {
		return
	}
	_, err := s.node.Propose(ctx, &command.AuditNote{ID: t.ID, Name: t.Name, At: time.Now().UnixNano(), Actor: actor, Kind: kind, After: after})
	if err != nil {
		s.logger.Warn("audit: record an event", "tenant_id", uint64(t.ID), "kind", kind, "error", err)
	}
}

// tenantAudit serves OpTenantAudit for the tenant t, which the caller p
// may read.
func (s *Server) tenantAudit(ctx context.Context, p *principal, t *keyspace.Tenant, req *wire.Request) (*wire.Response, error) {
	if req.State == "import" {
		if !p.operator {
			return nil, ErrPermissionDenied
		}
		return s.importAudit(ctx, p, t, req)
	}
	if !req.Stale {
		if err := s.node.ReadBarrier(ctx); err != nil {
			return nil, err
		}
	}
	f := s.node.FSM()
	if req.State == "verify" {
		v, err := f.VerifyAudit(t.ID)
		if err != nil {
			return nil, err
		}
		return &wire.Response{Verdict: &wire.AuditVerdict{OK: v.OK, Events: v.Events, First: v.First, Last: v.Last, BadSeq: v.BadSeq, Reason: v.Reason}}, nil
	}
	if req.State != "" {
		return nil, fmt.Errorf("%w: tenant-audit: st is empty or \"verify\"", ErrBadRequest)
	}
	var since time.Time
	if req.Cursor != "" {
		var err error
		if since, err = time.Parse(time.RFC3339Nano, req.Cursor); err != nil {
			return nil, fmt.Errorf("%w: tenant-audit: since %q is not an RFC 3339 time", ErrBadRequest, req.Cursor)
		}
	}
	limit := req.Limit
	if limit <= 0 || limit > maxAuditPage {
		limit = maxAuditPage
	}
	evs, err := f.AuditTrail(t.ID, since, req.ReadVersion, limit+1)
	if err != nil {
		return nil, err
	}
	resp := &wire.Response{}
	if len(evs) > limit {
		evs, resp.More = evs[:limit], true
	}
	resp.Audit = make([]wire.AuditEvent, len(evs))
	for i, e := range evs {
		resp.Audit[i] = wire.AuditEvent{Seq: e.Seq, At: e.At.UTC(), Actor: e.Actor, Kind: e.Kind, Before: e.Before, After: e.After, Prev: e.Prev, Hash: e.Hash}
	}
	return resp, nil
}

// maxImportAuditBody bounds the body of an import request.
const maxImportAuditBody = 1 << 20

// importAuditBody is the body of an OpTenantAudit "import" request, as
// client.ImportTenant sends it (client/transfer.go).
type importAuditBody struct {
	SourceName string `json:"source_name"`
	SourceID   uint64 `json:"source_id"`
	Dropped    uint64 `json:"dropped"`
	Events     []struct {
		Seq    uint64    `json:"seq"`
		At     time.Time `json:"at"`
		Actor  string    `json:"actor"`
		Kind   string    `json:"kind"`
		Before string    `json:"before"`
		After  string    `json:"after"`
		Hash   []byte    `json:"hash"`
	} `json:"events"`
	Last bool `json:"last"`
}

// importAudit records the events of an export file's trail in tenant t's
// trail (command.ImportAudit); the last request adds the "import" event.
func (s *Server) importAudit(ctx context.Context, p *principal, t *keyspace.Tenant, req *wire.Request) (*wire.Response, error) {
	if s.node.FSM().ClusterFormat() < command.Format4 {
		return &wire.Response{}, nil // no trails yet: nothing to record into
	}
	if len(req.Value) > maxImportAuditBody {
		return nil, fmt.Errorf("%w: audit import of %d bytes (at most %d)", ErrBadRequest, len(req.Value), maxImportAuditBody)
	}
	var body importAuditBody
	if err := json.Unmarshal(req.Value, &body); err != nil {
		return nil, fmt.Errorf("%w: audit import: %v", ErrBadRequest, err)
	}
	if len(body.Events) > command.MaxImportedEvents {
		return nil, fmt.Errorf("%w: audit import of %d events (at most %d)", ErrBadRequest, len(body.Events), command.MaxImportedEvents)
	}
	cmd := &command.ImportAudit{ID: t.ID, Name: t.Name, At: time.Now().UnixNano(), Actor: p.tokenID}
	for _, e := range body.Events {
		cmd.Events = append(cmd.Events, command.ImportedEvent{At: e.At.UnixNano(), Actor: e.Actor, Kind: e.Kind, Before: e.Before, After: e.After})
	}
	if body.Last {
		src := fmt.Sprintf("from an export of tenant %s (id %d)", body.SourceName, body.SourceID)
		if n := len(body.Events); n > 0 {
			last := body.Events[n-1]
			src += fmt.Sprintf(": its trail up to event %d, hash %s", last.Seq, hex.EncodeToString(last.Hash))
		}
		if body.Dropped > 0 {
			src += fmt.Sprintf(" (%d older events were not in the file)", body.Dropped)
		}
		cmd.Source = src
	}
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	if _, err := s.node.Propose(ctx, cmd); err != nil {
		return nil, err
	}
	return &wire.Response{}, nil
}

// refusalCounts counts, per tenant and token, the requests of a tenant's
// token that named another tenant, since the last flush, with the token's
// secret, with which a follower reports its counts to the leader. Its size
// is bounded by the number of tokens, which operators create.
type refusalCounts struct {
	mu sync.Mutex
	m  map[keyspace.TenantID]map[string]*refusals
}

// refusals is one token's count, and its secret ("" when it was counted
// on the leader from a follower's report).
type refusals struct {
	n      uint64
	secret string
}

func (r *refusalCounts) note(tenant keyspace.TenantID, token, secret string) {
	r.add(tenant, token, secret, 1)
}

// add counts n refusals of token; n is capped so that a sum of reports
// never wraps.
func (r *refusalCounts) add(tenant keyspace.TenantID, token, secret string, n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[keyspace.TenantID]map[string]*refusals{}
	}
	byToken := r.m[tenant]
	if byToken == nil {
		byToken = map[string]*refusals{}
		r.m[tenant] = byToken
	}
	c := byToken[token]
	if c == nil {
		c = &refusals{}
		byToken[token] = c
	}
	c.n = min(c.n+min(n, maxRefusalReport), 1<<62)
	if secret != "" {
		c.secret = secret
	}
}

func (r *refusalCounts) take() map[keyspace.TenantID]map[string]*refusals {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m
	r.m = nil
	return m
}

// refusalReport takes a follower's report (OpAuditRefusals) of the
// requests of the hello's tenant token that it refused for naming another
// tenant, into the leader's own counts, which the next flush records in
// that token's own tenant's trail: a token can only ever add to its own
// trail, by at most maxRefusalEventsPerTenant events a minute, what it
// could add by making refused requests itself.
func (s *Server) refusalReport(p *principal, req *wire.Request) (*wire.Response, error) {
	switch {
	case p.operator:
		return nil, fmt.Errorf("%w: refusals are reported with the tenant token that made them", ErrBadRequest)
	case req.Limit <= 0:
		return nil, fmt.Errorf("%w: a refusal report needs a count", ErrBadRequest)
	case !s.node.IsLeader():
		return nil, raft.ErrNotLeader
	}
	s.refusals.add(p.tenantID, p.tokenID, "", uint64(req.Limit))
	return &wire.Response{}, nil
}

// reportRefusals sends a follower's counts to the leader, one call per
// token with the token's own secret, at most maxRefusalReports a round;
// what it could not send (the leader unknown or unreachable, over the
// bound) is counted again for the next round. A token the leader refuses
// (revoked since) is dropped.
func (s *Server) reportRefusals(ctx context.Context, counts map[keyspace.TenantID]map[string]*refusals) {
	addr := s.leaderClientAddr()
	sent := 0
	for id, byToken := range counts {
		for tok, c := range byToken {
			if addr == "" || addr == s.Addr() || sent >= maxRefusalReports || c.secret == "" {
				if c.secret != "" {
					s.refusals.add(id, tok, c.secret, c.n)
				}
				continue
			}
			sent++
			cctx, cancel := context.WithTimeout(ctx, reportTimeout)
			resp, err := s.callPeerWith(cctx, addr, c.secret, &wire.Request{Op: wire.OpAuditRefusals, Limit: int(min(c.n, maxRefusalReport))})
			cancel()
			switch {
			case err == nil && resp.Code == wire.CodeOK:
			case err == nil && resp.Code == wire.CodePermissionDenied:
				s.logger.Debug("audit: the leader refuses a token whose refusals this node counted", "token", tok)
			default:
				s.refusals.add(id, tok, c.secret, c.n) // next round
			}
		}
	}
}

// auditLoop flushes the refused attempts every minute and prunes old
// events every auditPruneInterval, while this node leads.
func (s *Server) auditLoop() {
	defer s.wg.Done()
	every := s.cfg.refusalInterval
	if every == 0 {
		every = refusalInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastPrune time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.node.Done():
			return
		case <-t.C:
		}
		if s.node.FSM().ClusterFormat() < command.Format4 {
			s.refusals.take() // nothing can record them yet
			continue
		}
		counts := s.refusals.take()
		if !s.node.IsLeader() {
			s.reportRefusals(s.ctx, counts) // the leader records them
			continue
		}
		s.flushRefusals(s.ctx, counts)
		if now := time.Now(); now.Sub(lastPrune) >= auditPruneInterval {
			lastPrune = now
			s.pruneAudit(s.ctx, now)
		}
	}
}

// flushRefusals records the counted refusals: one event per token, at most
// maxRefusalEventsPerTenant per tenant, the last one folding the rest.
func (s *Server) flushRefusals(ctx context.Context, counts map[keyspace.TenantID]map[string]*refusals) {
	for id, byToken := range counts {
		t, err := s.node.FSM().TenantByID(id)
		if err != nil {
			continue
		}
		tokens := make([]string, 0, len(byToken))
		for tok := range byToken {
			tokens = append(tokens, tok)
		}
		slices.Sort(tokens)
		for i, tok := range tokens {
			if i == maxRefusalEventsPerTenant-1 && len(tokens) > maxRefusalEventsPerTenant {
				var n uint64
				for _, rest := range tokens[i:] {
					n += byToken[rest].n
				}
				s.auditNote(ctx, t, command.ActorSystem, "refused-cross-tenant",
					fmt.Sprintf("%d refused requests for other tenants by %d tokens in the last minute", n, len(tokens)-i))
				break
			}
			s.auditNote(ctx, t, tok, "refused-cross-tenant",
				fmt.Sprintf("%d refused requests for other tenants in the last minute", byToken[tok].n))
		}
	}
}

// pruneAudit drops the events older than the audit retention.
func (s *Server) pruneAudit(ctx context.Context, now time.Time) {
	before := now.Add(-s.cfg.AuditRetention)
	for _, id := range s.node.FSM().AuditTenants(before, auditPruneTenants) {
		if _, err := s.node.Propose(ctx, &command.AuditPrune{ID: id, Before: before.UnixNano(), Max: auditPruneBatch}); err != nil {
			s.logger.Warn("audit: drop old events", "tenant_id", uint64(id), "error", err)
			return
		}
	}
}
