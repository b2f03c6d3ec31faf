package fsm

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// The controlled clock of these tests: t0 is when tenants are created, and
// every lifecycle command carries a time derived from it. Nothing reads a
// real clock.
var t0 = time.Unix(1_800_000_000, 0)

const (
	testTrial     = 14 * 24 * time.Hour
	testRetention = 90 * 24 * time.Hour
)

// lifecycleHarness is an FSM at cluster format 4.
func lifecycleHarness(t *testing.T) *fsmHarness {
	h := newFSMHarness(t)
	h.must(&command.SetFormat{Version: uint32(command.Format4)})
	return h
}

func (h *fsmHarness) act(id keyspace.TenantID, name string, a keyspace.Action, at time.Time, retention time.Duration) *Result {
	return h.apply(&command.Lifecycle{ID: id, Name: name, Action: a, At: at.UnixNano(), Retention: int64(retention), Actor: "op-1"})[0]
}

// tenantIn creates tenant name, holding k=v, in state st through the
// commands an operator would use.
func (h *fsmHarness) tenantIn(name string, st keyspace.State) keyspace.TenantID {
	h.t.Helper()
	if st == keyspace.StateTrial {
		id := h.must(&command.CreateTrialTenant{Name: name, CreatedAt: t0, TrialEnds: t0.Add(testTrial)}).TenantID
		h.must(set(id, name, "k", "v"))
		return id
	}
	id := h.must(&command.CreateTenant{Name: name, CreatedAt: t0}).TenantID
	h.must(set(id, name, "k", "v"))
	switch st {
	case keyspace.StateSuspended:
		require.NoError(h.t, h.act(id, name, keyspace.ActionSuspend, t0, 0).Err)
	case keyspace.StateCancelled:
		require.NoError(h.t, h.act(id, name, keyspace.ActionCancel, t0, testRetention).Err)
	case keyspace.StateLocked:
		h.must(&command.UpdateTenant{ID: id, State: ptr(keyspace.StateLocked)})
	}
	got, err := h.fsm.TenantByID(id)
	require.NoError(h.t, err)
	require.Equal(h.t, st, got.State)
	return id
}

// TestLifecycleEveryTransition applies every action to a tenant in every
// state, at a time past every deadline, and checks the outcome against
// the table, written out here independently of keyspace's: the
// allowed ones move the tenant (or purge it), the refused ones name the
// allowed actions and change nothing, byte for byte.
func TestLifecycleEveryTransition(t *testing.T) {
	const purged keyspace.State = 0
	const refused keyspace.State = 255
	want := map[keyspace.State]map[keyspace.Action]keyspace.State{
		keyspace.StateTrial: {
			keyspace.ActionActivate: keyspace.StateActive, keyspace.ActionSuspend: keyspace.StateSuspended,
			keyspace.ActionCancel: keyspace.StateCancelled, keyspace.ActionRestore: refused,
			keyspace.ActionExpire: keyspace.StateSuspended, keyspace.ActionPurge: refused,
		},
		keyspace.StateActive: {
			keyspace.ActionActivate: refused, keyspace.ActionSuspend: keyspace.StateSuspended,
			keyspace.ActionCancel: keyspace.StateCancelled, keyspace.ActionRestore: refused,
			keyspace.ActionExpire: refused, keyspace.ActionPurge: refused,
		},
		keyspace.StateSuspended: {
			keyspace.ActionActivate: keyspace.StateActive, keyspace.ActionSuspend: refused,
			keyspace.ActionCancel: keyspace.StateCancelled, keyspace.ActionRestore: refused,
			keyspace.ActionExpire: refused, keyspace.ActionPurge: refused,
		},
		keyspace.StateCancelled: {
			keyspace.ActionActivate: refused, keyspace.ActionSuspend: refused,
			keyspace.ActionCancel: refused, keyspace.ActionRestore: keyspace.StateSuspended,
			keyspace.ActionExpire: refused, keyspace.ActionPurge: purged,
		},
		keyspace.StateLocked: {
			keyspace.ActionActivate: refused, keyspace.ActionSuspend: refused,
			keyspace.ActionCancel: refused, keyspace.ActionRestore: refused,
			keyspace.ActionExpire: refused, keyspace.ActionPurge: refused,
		},
	}
	actions := []keyspace.Action{keyspace.ActionActivate, keyspace.ActionSuspend, keyspace.ActionCancel,
		keyspace.ActionRestore, keyspace.ActionExpire, keyspace.ActionPurge}
	for _, from := range keyspace.States() {
		for _, a := range actions {
			to, ok := want[from][a]
			require.True(t, ok, "the table lacks %s/%s", from, a)
			t.Run(fmt.Sprintf("%s-%s", from, a), func(t *testing.T) {
				h := lifecycleHarness(t)
				id := h.tenantIn("acme", from)
				before, err := h.fsm.TenantByID(id)
				require.NoError(t, err)
				sum := h.checksum()
				// A time past both deadlines, but restore needs one before
				// the retention ends: the restore cases use t0.
				at := t0.Add(testRetention + testTrial)
				if a == keyspace.ActionRestore {
					at = t0.Add(time.Hour)
				}
				retention := time.Duration(0)
				if a == keyspace.ActionCancel {
					retention = testRetention
				}
				res := h.act(id, "acme", a, at, retention)
				switch to {
				case refused:
					require.ErrorIs(t, res.Err, keyspace.ErrTransition)
					require.Contains(t, res.Err.Error(), "allowed: ", "the refusal names the allowed actions")
					require.Equal(t, sum, h.checksum(), "a refused transition changes nothing")
					after, err := h.fsm.TenantByID(id)
					require.NoError(t, err)
					require.Equal(t, before, after)
				case purged:
					require.NoError(t, res.Err)
					_, err := h.fsm.TenantByID(id)
					require.ErrorIs(t, err, ErrTenantNotFound)
					_, err = h.fsm.LookupTenant("acme")
					require.ErrorIs(t, err, ErrTenantNotFound)
					_, err = h.get(id, "k")
					require.ErrorIs(t, err, store.ErrNotFound, "the purge removed the data")
				default:
					require.NoError(t, res.Err)
					after, err := h.fsm.TenantByID(id)
					require.NoError(t, err)
					require.Equal(t, to, after.State)
					require.Equal(t, to == keyspace.StateCancelled, !after.PurgeAt.IsZero(), "purge_at is set exactly in cancelled")
					require.True(t, after.TrialEnds.IsZero(), "only a trial has trial_ends")
					if to == keyspace.StateCancelled {
						require.True(t, after.PurgeAt.Equal(at.Add(testRetention)))
					}
					v, err := h.get(id, "k")
					require.NoError(t, err, "a transition keeps the data")
					require.Equal(t, "v", string(v))
				}
			})
		}
	}
}

// TestLifecycleSetState checks `tenant set --state` (UpdateTenant) from
// every state to every state: active, suspended and locked move freely as
// before the lifecycle; trial and cancelled are entered and a cancelled
// tenant left only by lifecycle actions.
func TestLifecycleSetState(t *testing.T) {
	for _, from := range keyspace.States() {
		for _, to := range keyspace.States() {
			t.Run(fmt.Sprintf("%s-%s", from, to), func(t *testing.T) {
				h := lifecycleHarness(t)
				id := h.tenantIn("acme", from)
				sum := h.checksum()
				res := h.apply(&command.UpdateTenant{ID: id, State: ptr(to)})[0]
				ok := from == to || (from != keyspace.StateCancelled && to != keyspace.StateTrial && to != keyspace.StateCancelled)
				if !ok {
					require.ErrorIs(t, res.Err, keyspace.ErrTransition)
					require.Equal(t, sum, h.checksum())
					return
				}
				require.NoError(t, res.Err)
				got, err := h.fsm.TenantByID(id)
				require.NoError(t, err)
				require.Equal(t, to, got.State)
				require.Equal(t, to == keyspace.StateTrial, !got.TrialEnds.IsZero())
			})
		}
	}
}

// TestLifecycleTrialExpiry drives a trial's end with the controlled clock:
// the leader's index lists it once due, an expiry carrying an earlier time
// is refused, one at the deadline suspends, and a stale expiry (replayed,
// or after an activation) changes nothing.
func TestLifecycleTrialExpiry(t *testing.T) {
	h := lifecycleHarness(t)
	id := h.tenantIn("acme", keyspace.StateTrial)
	other := h.tenantIn("beta", keyspace.StateTrial)
	ends := t0.Add(testTrial)

	require.Empty(t, h.fsm.DueActions(ends.Add(-time.Nanosecond), 10))
	next, ok := h.fsm.NextDeadline()
	require.True(t, ok)
	require.True(t, next.Equal(ends))
	due := h.fsm.DueActions(ends, 10)
	require.Len(t, due, 2)
	require.Equal(t, Due{ID: id, Name: "acme", Action: keyspace.ActionExpire, At: due[0].At}, due[0])
	require.True(t, due[0].At.Equal(ends))
	require.Len(t, h.fsm.DueActions(ends, 1), 1, "a batch is bounded")

	sum := h.checksum()
	res := h.act(id, "acme", keyspace.ActionExpire, ends.Add(-time.Nanosecond), 0)
	require.ErrorIs(t, res.Err, keyspace.ErrTransition, "the apply checks the deadline against the command's time")
	require.Equal(t, sum, h.checksum())

	require.NoError(t, h.act(id, "acme", keyspace.ActionExpire, ends, 0).Err)
	got, err := h.fsm.TenantByID(id)
	require.NoError(t, err)
	require.Equal(t, keyspace.StateSuspended, got.State)
	require.Equal(t, []Due{{ID: other, Name: "beta", Action: keyspace.ActionExpire, At: due[1].At}}, h.fsm.DueActions(ends, 10))

	// A replayed expiry finds no trial.
	sum = h.checksum()
	require.ErrorIs(t, h.act(id, "acme", keyspace.ActionExpire, ends.Add(time.Hour), 0).Err, keyspace.ErrTransition)
	require.Equal(t, sum, h.checksum())

	// beta is activated before the leader's expiry lands: the stale expiry
	// is refused and beta stays active.
	require.NoError(t, h.act(other, "beta", keyspace.ActionActivate, ends.Add(-time.Minute), 0).Err)
	require.Empty(t, h.fsm.DueActions(ends.Add(time.Hour), 10))
	require.ErrorIs(t, h.act(other, "beta", keyspace.ActionExpire, ends.Add(time.Hour), 0).Err, keyspace.ErrTransition)
	got, err = h.fsm.TenantByID(other)
	require.NoError(t, err)
	require.Equal(t, keyspace.StateActive, got.State)
}

// TestLifecycleRetention cancels, restores and purges with the controlled
// clock: a restore before the retention ends keeps everything, a purge
// before it is refused, one at it removes the tenant, and the name can be
// created again under a new ID.
func TestLifecycleRetention(t *testing.T) {
	h := lifecycleHarness(t)
	id := h.tenantIn("acme", keyspace.StateActive)
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "tok", Hash: tokenHash("s"), TenantID: id}})

	require.NoError(t, h.act(id, "acme", keyspace.ActionCancel, t0, testRetention).Err)
	purgeAt := t0.Add(testRetention)
	got, err := h.fsm.TenantByID(id)
	require.NoError(t, err)
	require.True(t, got.PurgeAt.Equal(purgeAt))
	require.True(t, h.fsm.HasToken("tok"), "a cancelled tenant keeps its tokens")
	res := h.apply(set(id, "acme", "k2", "v"))[0]
	require.ErrorIs(t, res.Err, ErrTenantLocked, "a cancelled tenant refuses writes")

	// Restore, cancel again, and let the retention run out.
	require.NoError(t, h.act(id, "acme", keyspace.ActionRestore, purgeAt.Add(-time.Nanosecond), 0).Err)
	got, err = h.fsm.TenantByID(id)
	require.NoError(t, err)
	require.Equal(t, keyspace.StateSuspended, got.State)
	require.True(t, got.PurgeAt.IsZero())
	require.Empty(t, h.fsm.DueActions(purgeAt.Add(time.Hour), 10), "a restored tenant has no deadline")

	t1 := t0.Add(time.Hour)
	require.NoError(t, h.act(id, "acme", keyspace.ActionCancel, t1, testRetention).Err)
	purgeAt = t1.Add(testRetention)
	require.ErrorIs(t, h.act(id, "acme", keyspace.ActionPurge, purgeAt.Add(-time.Nanosecond), 0).Err, keyspace.ErrTransition)
	require.ErrorIs(t, h.act(id, "acme", keyspace.ActionRestore, purgeAt, 0).Err, keyspace.ErrTransition,
		"no restore once the retention ended")
	require.Equal(t, []Due{{ID: id, Name: "acme", Action: keyspace.ActionPurge, At: purgeAt}}, h.fsm.DueActions(purgeAt, 10))
	require.NoError(t, h.act(id, "acme", keyspace.ActionPurge, purgeAt, 0).Err)
	_, err = h.fsm.TenantByID(id)
	require.ErrorIs(t, err, ErrTenantNotFound)
	require.False(t, h.fsm.HasToken("tok"), "the purge revokes the tokens")
	require.Empty(t, h.fsm.DueActions(purgeAt.Add(time.Hour), 10))
	_, err = h.get(id, "k")
	require.ErrorIs(t, err, store.ErrNotFound)

	again := h.createTenant("acme")
	require.Greater(t, again, id, "the name comes back under a new ID")
	_, err = h.get(again, "k")
	require.ErrorIs(t, err, store.ErrNotFound)

	// Retention 0 purges at once.
	b := h.tenantIn("beta", keyspace.StateTrial)
	require.NoError(t, h.act(b, "beta", keyspace.ActionCancel, t0, 0).Err)
	_, err = h.fsm.LookupTenant("beta")
	require.ErrorIs(t, err, ErrTenantNotFound)
}

// TestLifecycleDeadlinesSurviveRestartAndRestore: the deadline index is
// rebuilt from the records when the machine opens and after a snapshot
// restore, so a cluster that was down when a deadline passed finds it due
// when it comes back.
func TestLifecycleDeadlinesSurviveRestartAndRestore(t *testing.T) {
	h := lifecycleHarness(t)
	trial := h.tenantIn("acme", keyspace.StateTrial)
	gone := h.tenantIn("beta", keyspace.StateCancelled)
	h.tenantIn("gamma", keyspace.StateActive)
	late := t0.Add(testRetention + testTrial) // "the cluster was down until then"
	want := []Due{
		{ID: trial, Name: "acme", Action: keyspace.ActionExpire, At: t0.Add(testTrial)},
		{ID: gone, Name: "beta", Action: keyspace.ActionPurge, At: t0.Add(testRetention)},
	}
	norm := func(ds []Due) []Due {
		for i := range ds {
			ds[i].At = ds[i].At.UTC()
		}
		return ds
	}
	for i := range want {
		want[i].At = want[i].At.UTC()
	}
	require.Equal(t, want, norm(h.fsm.DueActions(late, 10)))
	h.reopen()
	require.Equal(t, want, norm(h.fsm.DueActions(late, 10)), "after a restart")

	snap, err := h.fsm.Snapshot()
	require.NoError(t, err)
	var sink bytes.Buffer
	_, err = snap.WriteTo(&sink)
	require.NoError(t, err)
	snap.Close()
	dst := newFSMHarness(t)
	dst.tenantIn("unrelated", keyspace.StateActive)
	require.NoError(t, dst.fsm.Restore(bytes.NewReader(sink.Bytes())))
	require.Equal(t, want, norm(dst.fsm.DueActions(late, 10)), "after a restore")

	// Acting on them after the restart: the expiry and the purge apply.
	for _, d := range h.fsm.DueActions(late, 10) {
		require.NoError(t, h.act(d.ID, d.Name, d.Action, late, 0).Err)
	}
	got, err := h.fsm.TenantByID(trial)
	require.NoError(t, err)
	require.Equal(t, keyspace.StateSuspended, got.State)
	_, err = h.fsm.TenantByID(gone)
	require.ErrorIs(t, err, ErrTenantNotFound)
	require.Empty(t, h.fsm.DueActions(late, 10))
}

// TestLifecycleNeedsFormat4: the lifecycle's entry types are refused, by
// every replica alike, until the cluster format reached 4.
func TestLifecycleNeedsFormat4(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	res := h.apply(
		&command.Lifecycle{ID: id, Name: "acme", Action: keyspace.ActionSuspend, At: t0.UnixNano()},
		&command.CreateTrialTenant{Name: "beta", CreatedAt: t0, TrialEnds: t0.Add(time.Hour)},
	)
	require.ErrorIs(t, res[0].Err, ErrFormatNotEnabled)
	require.ErrorIs(t, res[1].Err, ErrFormatNotEnabled)
	got, err := h.fsm.TenantByID(id)
	require.NoError(t, err)
	require.Equal(t, keyspace.StateActive, got.State)
	_, err = h.fsm.LookupTenant("beta")
	require.ErrorIs(t, err, ErrTenantNotFound)
}

// TestLifecycleNameMustMatch: a lifecycle command for a tenant that was
// renamed, or deleted and re-created, misses, like a stale write.
func TestLifecycleNameMustMatch(t *testing.T) {
	h := lifecycleHarness(t)
	id := h.tenantIn("acme", keyspace.StateTrial)
	h.must(&command.UpdateTenant{ID: id, NewName: ptr("acme-2")})
	res := h.act(id, "acme", keyspace.ActionExpire, t0.Add(testTrial), 0)
	require.ErrorIs(t, res.Err, ErrTenantNotFound)
	res = h.act(id+100, "acme-2", keyspace.ActionExpire, t0.Add(testTrial), 0)
	require.ErrorIs(t, res.Err, ErrTenantNotFound)
}
