package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

// TestRefusedAttemptsAggregated: refused cross-tenant attempts of tenant
// tokens become one event per token in the caller's own trail, naming
// only the count, and at most maxRefusalEventsPerTenant events per tenant
// and round whatever the number of tokens.
func TestRefusedAttemptsAggregated(t *testing.T) {
	s := startInternal(t)
	ctx := t.Context()
	deadline := time.Now().Add(20 * time.Second)
	for s.node.FSM().ClusterFormat() < command.Format4 {
		require.False(t, time.Now().After(deadline), "the cluster format never reached 4")
		time.Sleep(50 * time.Millisecond)
	}
	var ids []keyspace.TenantID
	for _, n := range []string{"caller", "victim", "many"} {
		res, err := s.node.Propose(ctx, &command.CreateTenant{Name: n, CreatedAt: time.Now()})
		require.NoError(t, err)
		ids = append(ids, res.TenantID)
	}
	caller, victim, many := ids[0], ids[1], ids[2]

	// Through the real path: a tenant token naming another tenant.
	p := &principal{tokenID: "tok-caller", tenantID: caller}
	s.refusals.note(caller, "tok-other", "") // noted elsewhere in the same minute
	for range 3 {
		_, err := s.resolveTenant(p, "victim")
		require.ErrorIs(t, err, ErrPermissionDenied)
	}
	_, err := s.resolveTenant(p, "no-such-tenant")
	require.ErrorIs(t, err, ErrPermissionDenied)
	for i := range 20 {
		s.refusals.note(many, fmt.Sprintf("tok-%02d", i), "")
	}
	s.flushRefusals(ctx, s.refusals.take())

	evs, err := s.node.FSM().AuditTrail(caller, time.Time{}, 0, 0)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, "tok-caller", evs[0].Actor)
	require.Equal(t, "refused-cross-tenant", evs[0].Kind)
	require.Equal(t, "4 refused requests for other tenants in the last minute", evs[0].After)
	require.Equal(t, "tok-other", evs[1].Actor)
	for _, e := range evs {
		require.NotContains(t, e.After, "victim")
		require.NotContains(t, e.Before, "victim")
	}
	evs, err = s.node.FSM().AuditTrail(victim, time.Time{}, 0, 0)
	require.NoError(t, err)
	require.Empty(t, evs, "nothing lands in the other tenant's trail")

	evs, err = s.node.FSM().AuditTrail(many, time.Time{}, 0, 0)
	require.NoError(t, err)
	require.Len(t, evs, maxRefusalEventsPerTenant, "bounded per tenant and round")
	last := evs[len(evs)-1]
	require.Equal(t, command.ActorSystem, last.Actor)
	require.True(t, strings.HasPrefix(last.After, "16 refused requests for other tenants by 16 tokens"), last.After)
	require.Empty(t, s.refusals.take(), "the counts start again")
}

// TestAuditRetentionPrunes: the leader's round drops the events older than
// the audit retention, through AuditPrune, and the kept trail verifies.
func TestAuditRetentionPrunes(t *testing.T) {
	s := startInternal(t)
	ctx := t.Context()
	deadline := time.Now().Add(20 * time.Second)
	for s.node.FSM().ClusterFormat() < command.Format4 {
		require.False(t, time.Now().After(deadline), "the cluster format never reached 4")
		time.Sleep(50 * time.Millisecond)
	}
	op := &principal{tokenID: "op-1", operator: true}
	res, err := s.proposeAudited(ctx, op, &command.CreateTenant{Name: "acme", CreatedAt: time.Now()})
	require.NoError(t, err)
	id := res.TenantID
	for i := range 3 {
		_, err := s.proposeAudited(ctx, op, &command.UpdateTenant{ID: id, Labels: map[string]string{"n": fmt.Sprint(i)}})
		require.NoError(t, err)
	}
	evs, err := s.node.FSM().AuditTrail(id, time.Time{}, 0, 0)
	require.NoError(t, err)
	require.Len(t, evs, 4)

	s.pruneAudit(ctx, time.Now()) // nothing is older than 400 days
	evs, err = s.node.FSM().AuditTrail(id, time.Time{}, 0, 0)
	require.NoError(t, err)
	require.Len(t, evs, 4)

	// A round 400 days and a moment after the second event drops the
	// first two.
	s.pruneAudit(ctx, evs[1].At.Add(s.cfg.AuditRetention+time.Nanosecond))
	kept, err := s.node.FSM().AuditTrail(id, time.Time{}, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{3, 4}, []uint64{kept[0].Seq, kept[1].Seq})
	v, err := s.node.FSM().VerifyAudit(id)
	require.NoError(t, err)
	require.True(t, v.OK, "%+v", v)
	require.Equal(t, uint64(2), v.Events)
}
