package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

func (h *fsmHarness) audited(actor string, at time.Time, cmd command.Command) *Result {
	h.t.Helper()
	c, err := command.NewAudited(actor, at, cmd)
	require.NoError(h.t, err)
	return h.apply(c)[0]
}

func (h *fsmHarness) trail(id keyspace.TenantID) []AuditEvent {
	h.t.Helper()
	evs, err := h.fsm.AuditTrail(id, time.Time{}, 0, 0)
	require.NoError(h.t, err)
	return evs
}

func (h *fsmHarness) requireVerified(id keyspace.TenantID, events uint64) {
	h.t.Helper()
	v, err := h.fsm.VerifyAudit(id)
	require.NoError(h.t, err)
	require.True(h.t, v.OK, "%+v", v)
	require.Equal(h.t, events, v.Events)
}

type kindActor struct{ kind, actor, before, after string }

func kindsOf(evs []AuditEvent) []kindActor {
	out := make([]kindActor, len(evs))
	for i, e := range evs {
		out[i] = kindActor{e.Kind, e.Actor, e.Before, e.After}
	}
	return out
}

// auditedTenant makes tenant acme with a trail of seven events.
func auditedTenant(t *testing.T) (*fsmHarness, keyspace.TenantID) {
	h := lifecycleHarness(t)
	r := h.audited("op-1", t0, &command.CreateTrialTenant{Name: "acme", CreatedAt: t0, TrialEnds: t0.Add(testTrial),
		Labels: map[string]string{"plan": "trial"}})
	require.NoError(t, r.Err)
	id := r.TenantID
	require.NoError(t, h.audited("op-1", t0.Add(time.Minute), &command.UpdateTenant{ID: id,
		Limits: &keyspace.Limits{MaxKeys: 10}, Labels: map[string]string{"plan": "pro"}}).Err)
	require.NoError(t, h.audited("op-2", t0.Add(2*time.Minute), &command.PutToken{Token: command.TokenRecord{
		ID: "tok-a", Hash: tokenHash("secret"), TenantID: id, ReadOnly: true}}).Err)
	require.NoError(t, h.audited("op-2", t0.Add(3*time.Minute), &command.DeleteToken{ID: "tok-a"}).Err)
	require.NoError(t, h.apply(&command.Lifecycle{ID: id, Name: "acme", Action: keyspace.ActionExpire,
		At: t0.Add(testTrial).UnixNano(), Actor: command.ActorSystem})[0].Err)
	require.NoError(t, h.apply(&command.AuditNote{ID: id, Name: "acme", At: t0.Add(testTrial + time.Minute).UnixNano(),
		Actor: "tok-b", Kind: "refused-cross-tenant", After: "3 attempts"})[0].Err)
	return h, id
}

// TestAuditTrailRecordsChanges: each audited change appends one event, in
// order, with the command's time and actor, before and after; refused
// commands and other tenants' changes append nothing; the chain verifies.
func TestAuditTrailRecordsChanges(t *testing.T) {
	h, id := auditedTenant(t)
	other := h.audited("op-1", t0, &command.CreateTenant{Name: "beta", CreatedAt: t0})
	require.NoError(t, other.Err)
	// Refused: nothing recorded.
	require.Error(t, h.audited("op-1", t0, &command.UpdateTenant{ID: id, NewName: ptr("beta")}).Err)
	require.Error(t, h.act(id, "acme", keyspace.ActionSuspend, t0.Add(testTrial), 0).Err)

	evs := h.trail(id)
	require.Equal(t, []kindActor{
		{"create", "op-1", "", "name=acme state=trial trial_ends=" + t0.Add(testTrial).UTC().Format(time.RFC3339) + " limits=none labels=plan:trial"},
		{"limits", "op-1", "none", "max_keys:10"},
		{"labels", "op-1", "plan:trial", "plan:pro"},
		{"token-minted", "op-2", "", "id=tok-a read-only"},
		{"token-revoked", "op-2", "id=tok-a read-only", ""},
		{"expire", "system", "state=trial", "state=suspended"},
		{"refused-cross-tenant", "tok-b", "", "3 attempts"},
	}, kindsOf(evs))
	for i, e := range evs {
		require.Equal(t, uint64(i+1), e.Seq)
		if i > 0 {
			require.Equal(t, evs[i-1].Hash, e.Prev, "event %d names its predecessor's hash", e.Seq)
		}
	}
	require.True(t, evs[0].At.Equal(t0))
	require.True(t, evs[5].At.Equal(t0.Add(testTrial)), "the time is the command's")
	h.requireVerified(id, 7)
	require.Len(t, h.trail(other.TenantID), 1)

	since, err := h.fsm.AuditTrail(id, t0.Add(2*time.Minute), 0, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"token-minted", "token-revoked"}, []string{since[0].Kind, since[1].Kind})
	page, err := h.fsm.AuditTrail(id, time.Time{}, 5, 0)
	require.NoError(t, err)
	require.Len(t, page, 2, "after seq 5")

	// The trail survives a restart and a snapshot restore, and is purged
	// with the tenant.
	h.reopen()
	h.requireVerified(id, 7)
	snap, err := h.fsm.Snapshot()
	require.NoError(t, err)
	var sink bytes.Buffer
	_, err = snap.WriteTo(&sink)
	require.NoError(t, err)
	snap.Close()
	dst := newFSMHarness(t)
	require.NoError(t, dst.fsm.Restore(bytes.NewReader(sink.Bytes())))
	require.Equal(t, kindsOf(evs), kindsOf(dst.trail(id)))
	dst.requireVerified(id, 7)

	h.must(&command.DeleteTenant{ID: id})
	require.Empty(t, h.trail(id))
}

// TestAuditVerifyFindsATamperedEvent changes one stored event on disk, and
// then deletes one: VerifyAudit names the first bad event either way.
func TestAuditVerifyFindsATamperedEvent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		seq    uint64
		change func(b []byte) []byte // nil: delete the event
		bad    uint64
	}{
		{"changed in the middle", 3, func(b []byte) []byte { return bytes.Replace(b, []byte("op-1"), []byte("op-9"), 1) }, 3},
		{"changed first", 1, func(b []byte) []byte { return bytes.Replace(b, []byte("op-1"), []byte("op-7"), 1) }, 1},
		{"changed last", 7, func(b []byte) []byte { return bytes.Replace(b, []byte("3 attempts"), []byte("0 attempts"), 1) }, 7},
		{"deleted", 4, nil, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, id := auditedTenant(t)
			h.requireVerified(id, 7)
			require.NoError(t, h.store.Close())
			h.openStoreOnly(func(b *storeBatch) {
				m, err := b.TenantMeta(id)
				require.NoError(t, err)
				k := keyspace.AuditEventKey(id, tc.seq)
				if tc.change == nil {
					require.NoError(t, m.Delete(k))
					return
				}
				v, err := m.Get(k)
				require.NoError(t, err)
				nv := tc.change(v)
				require.NotEqual(t, v, nv)
				require.NoError(t, m.Set(k, nv))
			})
			v, err := h.fsm.VerifyAudit(id)
			require.NoError(t, err)
			require.False(t, v.OK)
			require.Equal(t, tc.bad, v.BadSeq, v.Reason)
			require.Contains(t, v.Reason, "event")
		})
	}
}

// TestAuditPrune drops the oldest events in bounded batches; the kept
// trail still verifies from the hash the state keeps, and new events
// chain on.
func TestAuditPrune(t *testing.T) {
	h, id := auditedTenant(t)
	cutoff := t0.Add(testTrial) // events 1-5 are older
	require.Equal(t, []keyspace.TenantID{id}, h.fsm.AuditTenants(cutoff, 10))
	require.NoError(t, h.apply(&command.AuditPrune{ID: id, Before: cutoff.UnixNano(), Max: 3})[0].Err)
	evs := h.trail(id)
	require.Equal(t, uint64(4), evs[0].Seq, "a bounded batch: three dropped")
	h.requireVerified(id, 4)
	require.NoError(t, h.apply(&command.AuditPrune{ID: id, Before: cutoff.UnixNano(), Max: 3})[0].Err)
	evs = h.trail(id)
	require.Equal(t, uint64(6), evs[0].Seq, "only the older ones")
	h.requireVerified(id, 2)
	require.Empty(t, h.fsm.AuditTenants(cutoff, 10), "nothing older is left")
	require.NoError(t, h.apply(&command.AuditPrune{ID: id, Before: cutoff.UnixNano(), Max: 3})[0].Err, "pruning nothing is no error")
	h.requireVerified(id, 2)

	require.NoError(t, h.act(id, "acme", keyspace.ActionActivate, t0.Add(testTrial+time.Hour), 0).Err)
	h.requireVerified(id, 3)
	h.reopen()
	h.requireVerified(id, 3)
	v, err := h.fsm.VerifyAudit(id)
	require.NoError(t, err)
	require.Equal(t, uint64(6), v.First)
	require.Equal(t, uint64(8), v.Last)
}

// TestAuditNeedsFormat4: the audit entry types are refused below format 4.
func TestAuditNeedsFormat4(t *testing.T) {
	h := newFSMHarness(t)
	c, err := command.NewAudited("op", t0, &command.CreateTenant{Name: "acme", CreatedAt: t0})
	require.NoError(t, err)
	require.ErrorIs(t, h.apply(c)[0].Err, ErrFormatNotEnabled)
	_, err = h.fsm.LookupTenant("acme")
	require.ErrorIs(t, err, ErrTenantNotFound)
}

type storeBatch = store.Batch

// openStoreOnly opens the harness's store directory without a machine,
// as a tool editing the disk would, lets edit change it in one batch,
// then reopens store and machine.
func (h *fsmHarness) openStoreOnly(edit func(b *storeBatch)) {
	h.t.Helper()
	st, err := store.Open(h.dir, nil)
	require.NoError(h.t, err)
	applied, err := st.AppliedIndex()
	require.NoError(h.t, err)
	b := st.NewBatch()
	edit(b)
	require.NoError(h.t, b.Commit(applied, true))
	require.NoError(h.t, st.Close())
	h.open()
}
