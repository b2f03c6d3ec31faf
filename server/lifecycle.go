package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

// # The tenant lifecycle on the server
//
// Operators ask for lifecycle actions with OpTenantLifecycle; the state
// machine decides them (raft/fsm/lifecycle.go). The time-driven ones, a
// trial's end and a retention's end, are proposed by the leader: every
// lifecycleInterval it takes up to lifecycleBatch due actions from the
// machine's deadline index (O(log n + batch), however many tenants) and
// proposes each with its own clock as the command's time. The machine
// checks the deadline again against that time, so a proposal that lost a
// race with an operator (activated, restored) or is replayed is refused
// and changes nothing. A cluster that was down across a deadline acts on
// it within one interval of electing a leader: the index is rebuilt from
// the records when a node opens its store.

const (
	// lifecycleInterval is how often the leader looks for due deadlines.
	lifecycleInterval = 500 * time.Millisecond
	// lifecycleBatch bounds the actions proposed per interval; more wait
	// for the next one, so a burst of deadlines (a million trials ending
	// at midnight) is spread out instead of flooding the log.
	lifecycleBatch = 64
	// DefaultRetention is what `tenant cancel` keeps a tenant's data for
	// when --retention is not given.
	DefaultRetention = 90 * 24 * time.Hour
)

// lifecycleLoop proposes the due time-driven lifecycle actions while this
// node leads.
func (s *Server) lifecycleLoop() {
	defer s.wg.Done()
	t := time.NewTicker(lifecycleInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.node.Done():
			return
		case <-t.C:
		}
		if !s.node.IsLeader() || s.node.FSM().ClusterFormat() < command.Format4 {
			continue
		}
		s.proposeDue(s.ctx, time.Now())
	}
}

// proposeDue proposes the lifecycle actions due at now, at most
// lifecycleBatch of them, and returns how many applied.
func (s *Server) proposeDue(ctx context.Context, now time.Time) int {
	applied := 0
	for _, d := range s.node.FSM().DueActions(now, lifecycleBatch) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.node.Propose(cctx, &command.Lifecycle{
			ID: d.ID, Name: d.Name, Action: d.Action, At: now.UnixNano(), Actor: command.ActorSystem,
		})
		cancel()
		switch {
		case err == nil:
			applied++
			if d.Action == keyspace.ActionPurge {
				s.limits.forget(d.ID)
				s.usage.forget(d.ID)
			}
			s.logger.Info("tenant lifecycle: deadline reached", "tenant_id", uint64(d.ID), "action", d.Action.String(), "deadline", d.At.UTC())
		case errors.Is(err, keyspace.ErrTransition):
			// An operator acted first, or the entry raced a restore: the
			// machine refused it and nothing changed.
			s.logger.Debug("tenant lifecycle: due action refused", "tenant_id", uint64(d.ID), "action", d.Action.String(), "error", err)
		default:
			s.logger.Warn("tenant lifecycle: propose a due action; retrying next round", "tenant_id", uint64(d.ID), "action", d.Action.String(), "error", err)
			return applied
		}
	}
	return applied
}

// tenantLifecycle serves OpTenantLifecycle for an operator.
func (s *Server) tenantLifecycle(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	action, err := keyspace.ParseAction(req.State)
	if err != nil {
		return nil, err
	}
	if req.TTL < 0 || req.TTL > command.MaxRetention {
		return nil, fmt.Errorf("%w: retention %v (0 to %v)", ErrBadRequest, req.TTL, command.MaxRetention)
	}
	if req.TTL != 0 && action != keyspace.ActionCancel {
		return nil, fmt.Errorf("%w: a retention is for cancel only", ErrBadRequest)
	}
	t, err := s.lookupLinearizable(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	res, err := s.node.Propose(ctx, &command.Lifecycle{
		ID: t.ID, Name: t.Name, Action: action, At: time.Now().UnixNano(),
		Retention: int64(req.TTL), Actor: p.tokenID,
	})
	if err != nil {
		return nil, err
	}
	if res.Tenant == nil { // purged: a cancel with no retention
		s.limits.forget(t.ID)
		s.usage.forget(t.ID)
		return &wire.Response{}, nil
	}
	return &wire.Response{Tenant: s.tenantInfo(res.Tenant)}, nil
}
