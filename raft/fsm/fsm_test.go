package fsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// fsmHarness drives an FSM directly, as raft would, with log indexes it
// hands out itself.
type fsmHarness struct {
	t     *testing.T
	dir   string
	store *store.Store
	fsm   *Machine
	next  uint64
	fatal atomic.Int32
}

func newFSMHarness(t *testing.T) *fsmHarness {
	h := &fsmHarness{t: t, dir: t.TempDir()}
	h.open()
	t.Cleanup(func() { h.store.Close() })
	return h
}

func (h *fsmHarness) open() {
	st, err := store.Open(h.dir, nil)
	require.NoError(h.t, err)
	f, err := New(st, nil, func(error) { h.fatal.Add(1) })
	require.NoError(h.t, err)
	h.store, h.fsm = st, f
	h.next = f.AppliedIndex() + 1
}

// reopen closes and reopens the store and FSM, as a restart would.
func (h *fsmHarness) reopen() {
	require.NoError(h.t, h.store.Close())
	h.open()
}

// entries encodes cmds as command logs at the next indexes.
func (h *fsmHarness) entries(cmds ...command.Command) []Entry {
	logs := make([]Entry, len(cmds))
	for i, c := range cmds {
		b, err := command.Encode(c)
		require.NoError(h.t, err)
		logs[i] = Entry{Index: h.next, Command: true, Data: b}
		h.next++
	}
	return logs
}

// apply applies cmds as one batch and returns each command's error.
func (h *fsmHarness) apply(cmds ...command.Command) []*Result {
	out := h.fsm.ApplyBatch(h.entries(cmds...))
	res := make([]*Result, len(out))
	for i, o := range out {
		res[i] = o.(*Result)
	}
	return res
}

// must applies one command and requires it to succeed.
func (h *fsmHarness) must(cmd command.Command) *Result {
	r := h.apply(cmd)[0]
	require.NoError(h.t, r.Err)
	return r
}

func (h *fsmHarness) createTenant(name string) keyspace.TenantID {
	return h.must(&command.CreateTenant{Name: name, CreatedAt: time.Unix(1700000000, 0)}).TenantID
}

func (h *fsmHarness) checksum() uint64 {
	sum, err := h.store.Checksum()
	require.NoError(h.t, err)
	return sum
}

func (h *fsmHarness) get(id keyspace.TenantID, key string) ([]byte, error) {
	v, err := h.store.Tenant(id)
	require.NoError(h.t, err)
	return v.Get([]byte(key))
}

func set(id keyspace.TenantID, name string, kv ...string) *command.TenantWrite {
	w := &command.TenantWrite{TenantID: id, TenantName: name}
	for i := 0; i+1 < len(kv); i += 2 {
		w.Ops = append(w.Ops, command.Op{Kind: command.OpSet, Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return w
}

func tokenHash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func TestFSMAppliesAndRecordsIndex(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	require.Equal(t, keyspace.FirstID, id)
	r := h.must(set(id, "acme", "k1", "v1", "k2", "v2"))
	require.Equal(t, uint64(2), r.Index)
	v, err := h.get(id, "k2")
	require.NoError(t, err)
	require.Equal(t, "v2", string(v))
	applied, err := h.store.AppliedIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(2), applied)
	require.Equal(t, uint64(2), h.fsm.AppliedIndex())
}

func TestFSMBatchSeesEarlierEntries(t *testing.T) {
	h := newFSMHarness(t)
	// The tenant is created and written in the same raft batch.
	res := h.apply(
		&command.CreateTenant{Name: "acme"},
		set(keyspace.FirstID, "acme", "k", "v"),
		&command.UpdateTenant{ID: keyspace.FirstID, State: ptr(keyspace.StateReadOnly)},
		set(keyspace.FirstID, "acme", "k2", "v2"),
	)
	require.NoError(t, res[0].Err)
	require.NoError(t, res[1].Err)
	require.NoError(t, res[2].Err)
	require.ErrorIs(t, res[3].Err, ErrTenantReadOnly)
	_, err := h.get(keyspace.FirstID, "k")
	require.NoError(t, err)
	_, err = h.get(keyspace.FirstID, "k2")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestFSMNonCommandEntries(t *testing.T) {
	h := newFSMHarness(t)
	cmds := h.entries(&command.CreateTenant{Name: "a"})
	conf := Entry{Index: h.next, Data: []byte("opaque")}
	h.next++
	out := h.fsm.ApplyBatch(append(cmds, conf))
	require.Len(t, out, 2)
	require.NotNil(t, out[0])
	require.Nil(t, out[1])
	applied, err := h.store.AppliedIndex()
	require.NoError(t, err)
	require.Equal(t, conf.Index, applied, "applied index is the batch's last entry, whatever its type")
}

// Malformed entries of known types are refused identically on every
// replica. (An unknown type or envelope version stops the machine instead:
// format_test.go.)
func TestFSMRefusesMalformedCommandsDeterministically(t *testing.T) {
	bad := map[string][]byte{
		"body":    {command.Version, byte(command.TypeCreateTenant), 0xc1},
		"empty":   {},
		"short":   {command.Version},
		"field":   {command.Version, byte(command.TypeSetFormat), 0x81, 0xa1, 'x', 0x01},
		"format0": {command.Version, byte(command.TypeSetFormat), 0x81, 0xa1, 'v', 0x00},
	}
	want := map[string]error{"body": command.ErrBadCommand, "empty": command.ErrBadCommand, "short": command.ErrBadCommand,
		"field": command.ErrBadCommand, "format0": command.ErrBadCommand}
	var sums []uint64
	for range 2 { // two replicas apply the same log
		h := newFSMHarness(t)
		h.createTenant("x")
		before := h.checksum()
		for name, data := range bad {
			out := h.fsm.ApplyBatch([]Entry{{Index: h.next, Command: true, Data: data}})
			h.next++
			require.ErrorIs(t, out[0].(*Result).Err, want[name], name)
		}
		require.Equal(t, before, h.checksum(), "refused entries write nothing")
		require.Equal(t, h.next-1, h.fsm.AppliedIndex(), "refused entries still advance the applied index")
		sums = append(sums, h.checksum())
	}
	require.Equal(t, sums[0], sums[1])
}

func TestFSMTenantWriteRefusals(t *testing.T) {
	h := newFSMHarness(t)
	active := h.createTenant("active")
	ro := h.createTenant("ro")
	locked := h.createTenant("locked")
	renamed := h.createTenant("old-name")
	deleted := h.createTenant("deleted")
	h.must(&command.UpdateTenant{ID: ro, State: ptr(keyspace.StateReadOnly)})
	h.must(&command.UpdateTenant{ID: locked, State: ptr(keyspace.StateLocked)})
	h.must(&command.UpdateTenant{ID: renamed, NewName: ptr("new-name")})
	h.must(&command.DeleteTenant{ID: deleted})
	// A tenant re-created under the deleted one's name gets a new ID; a
	// write aimed at the old ID must not land in either.
	recreated := h.createTenant("deleted")
	require.NotEqual(t, deleted, recreated)

	// Create the tenant's usage counters, so that the checksums below
	// compare like with like (a refused write must not change them).
	h.must(set(active, "active", "warm-up", "1"))
	h.must(&command.TenantWrite{TenantID: active, TenantName: "active", Ops: []command.Op{{Kind: command.OpDelete, Key: []byte("warm-up")}}})

	big := bytes.Repeat([]byte("x"), keyspace.MaxValueSize+1)
	for _, tc := range []struct {
		name string
		cmd  *command.TenantWrite
		want error
	}{
		{"missing", set(99, "nobody", "k", "v"), ErrTenantNotFound},
		{"renamed", set(renamed, "old-name", "k", "v"), ErrTenantNotFound},
		{"wrong name for id", set(active, "ro", "k", "v"), ErrTenantNotFound},
		{"deleted", set(deleted, "deleted", "k", "v"), ErrTenantNotFound},
		{"read-only", set(ro, "ro", "k", "v"), ErrTenantReadOnly},
		{"locked", set(locked, "locked", "k", "v"), ErrTenantLocked},
		{"empty key", set(active, "active", "", "v"), keyspace.ErrInvalidKey},
		{"value too large", &command.TenantWrite{TenantID: active, TenantName: "active",
			Ops: []command.Op{{Kind: command.OpSet, Key: []byte("k"), Value: big}}}, keyspace.ErrValueTooLarge},
		{"bad range", &command.TenantWrite{TenantID: active, TenantName: "active",
			Ops: []command.Op{{Kind: command.OpDeleteRange, Key: []byte("z"), End: []byte("a")}}}, keyspace.ErrInvalidRange},
		{"valid op then invalid op", &command.TenantWrite{TenantID: active, TenantName: "active", Ops: []command.Op{
			{Kind: command.OpSet, Key: []byte("first"), Value: []byte("v")},
			{Kind: command.OpSet, Key: nil, Value: []byte("v")},
		}}, keyspace.ErrInvalidKey},
		{"invalid id", set(0, "active", "k", "v"), keyspace.ErrInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A twin applies the same commands without the refused one;
			// both must end byte-identical, versions and write history
			// included (see fork in txn_test.go).
			twin := h.fork()
			// A good command before and after, in the same batch: the
			// refused one must leave no trace between them.
			res := h.apply(set(active, "active", "before", "1"), tc.cmd, set(active, "active", "after", "1"))
			require.NoError(t, res[0].Err)
			require.ErrorIs(t, res[1].Err, tc.want)
			require.NoError(t, res[2].Err)
			_, err := h.get(active, "first")
			require.ErrorIs(t, err, store.ErrNotFound)
			for _, id := range []keyspace.TenantID{ro, locked, renamed, recreated} {
				v, err := h.store.Tenant(id)
				require.NoError(t, err)
				kvs, _, err := v.Scan(nil, nil, nil)
				require.NoError(t, err)
				require.Empty(t, kvs, "tenant %d was written", id)
			}
			twin.apply(set(active, "active", "before", "1"), set(active, "active", "after", "1"))
			require.Equal(t, twin.checksum(), h.checksum())
			h.must(&command.TenantWrite{TenantID: active, TenantName: "active", Ops: []command.Op{
				{Kind: command.OpDelete, Key: []byte("before")}, {Kind: command.OpDelete, Key: []byte("after")}}})
		})
	}
}

func TestFSMTenantWriteOps(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("a")
	h.must(set(id, "a", "a1", "1", "a2", "2", "b1", "3", "c1", "4"))
	h.must(&command.TenantWrite{TenantID: id, TenantName: "a", Ops: []command.Op{
		{Kind: command.OpDelete, Key: []byte("c1")},
		{Kind: command.OpDeleteRange, Key: []byte("a"), End: []byte("b")},
		{Kind: command.OpSet, Key: []byte("empty"), Value: nil},
	}})
	v, err := h.store.Tenant(id)
	require.NoError(t, err)
	kvs, _, err := v.Scan(nil, nil, nil)
	require.NoError(t, err)
	require.Len(t, kvs, 2)
	require.Equal(t, "b1", string(kvs[0].Key))
	require.Equal(t, "empty", string(kvs[1].Key))
	require.Empty(t, kvs[1].Value)
}

func TestFSMRestartSkipsAppliedEntries(t *testing.T) {
	h := newFSMHarness(t)
	// Create and delete "a", then create "b". Applied twice, the first
	// pair would allocate a second ID (the name is free again when the
	// create is replayed), and "b" would get a third.
	logs := h.entries(&command.CreateTenant{Name: "a"}, &command.DeleteTenant{ID: 1}, &command.CreateTenant{Name: "b"})
	h.fsm.ApplyBatch(logs[:2])
	h.fsm.ApplyBatch(logs[2:])
	sum := h.checksum()
	h.reopen()
	require.Equal(t, uint64(3), h.fsm.AppliedIndex())

	// Raft replays from its last snapshot: every entry again, in batches
	// that straddle the applied index, followed by a new one.
	next := h.entries(&command.CreateTenant{Name: "c"})
	out := h.fsm.ApplyBatch(logs[:1])
	require.True(t, out[0].(*Result).Replayed)
	out = h.fsm.ApplyBatch(append(logs[1:], next...))
	require.True(t, out[0].(*Result).Replayed)
	require.True(t, out[1].(*Result).Replayed)
	require.NoError(t, out[2].(*Result).Err)
	require.Equal(t, keyspace.TenantID(3), out[2].(*Result).TenantID, "c gets the ID after b's: nothing was re-applied")

	b, err := h.fsm.LookupTenant("b")
	require.NoError(t, err)
	require.Equal(t, keyspace.TenantID(2), b.ID)
	_, err = h.fsm.LookupTenant("a")
	require.ErrorIs(t, err, ErrTenantNotFound)
	require.NotEqual(t, sum, h.checksum())
}

func TestFSMTenantIDsNeverReused(t *testing.T) {
	h := newFSMHarness(t)
	seen := map[keyspace.TenantID]bool{}
	for i := range 5 {
		id := h.createTenant("same")
		require.False(t, seen[id], "id %d reused", id)
		seen[id] = true
		require.Equal(t, keyspace.FirstID+keyspace.TenantID(i), id)
		h.must(set(id, "same", "k", "v"))
		h.must(&command.DeleteTenant{ID: id})
	}
	_, err := h.fsm.TenantByID(keyspace.FirstID)
	require.ErrorIs(t, err, ErrTenantNotFound)
	res := h.apply(&command.CreateTenant{Name: "dup"}, &command.CreateTenant{Name: "dup"})
	require.NoError(t, res[0].Err)
	require.ErrorIs(t, res[1].Err, ErrTenantExists)
	require.Equal(t, keyspace.TenantID(7), h.createTenant("after-dup"), "a refused create allocates nothing")
}

func TestFSMDeleteTenantPurges(t *testing.T) {
	h := newFSMHarness(t)
	a := h.createTenant("a")
	b := h.createTenant("b")
	h.must(set(a, "a", "k1", "v", "k2", "v"))
	h.must(set(b, "b", "k1", "v"))
	for _, tok := range []command.TokenRecord{
		{ID: "ta1", Hash: tokenHash("1"), TenantID: a},
		{ID: "ta2", Hash: tokenHash("2"), TenantID: a, ReadOnly: true},
		{ID: "tb", Hash: tokenHash("3"), TenantID: b},
		{ID: "op", Hash: tokenHash("4")},
	} {
		h.must(&command.PutToken{Token: tok})
	}
	// Per-tenant metadata the FSM will maintain (usage counters).
	// Written in a batch, as every write reaches the store.
	seed := h.store.NewBatch()
	require.NoError(t, tenantMeta(t, seed, a).Set(keyspace.TenantUsageKey(a), []byte{1}))
	require.NoError(t, tenantMeta(t, seed, b).Set(keyspace.TenantUsageKey(b), []byte{2}))
	require.NoError(t, seed.Commit(0, true))

	r := h.must(&command.DeleteTenant{ID: a})
	require.Equal(t, a, r.TenantID)

	va, err := h.store.Tenant(a)
	require.NoError(t, err)
	kvs, _, err := va.Scan(nil, nil, nil)
	require.NoError(t, err)
	require.Empty(t, kvs)
	_, err = h.get(b, "k1")
	require.NoError(t, err)
	_, err = h.fsm.LookupTenant("a")
	require.ErrorIs(t, err, ErrTenantNotFound)
	_, err = h.fsm.TenantByID(a)
	require.ErrorIs(t, err, ErrTenantNotFound)
	for _, id := range []string{"ta1", "ta2"} {
		_, err := h.fsm.Token(id)
		require.ErrorIs(t, err, ErrTokenNotFound)
	}
	all, err := h.fsm.ListTokens(0)
	require.NoError(t, err)
	require.Len(t, all, 2)
	_, err = tenantMeta(t, h.store, a).Get(keyspace.TenantUsageKey(a))
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = tenantMeta(t, h.store, b).Get(keyspace.TenantUsageKey(b))
	require.NoError(t, err)

	res := h.apply(&command.DeleteTenant{ID: a})
	require.ErrorIs(t, res[0].Err, ErrTenantNotFound)
	// The name is free again, under a new ID.
	require.Equal(t, keyspace.TenantID(3), h.createTenant("a"))
}

func TestFSMUpdateTenant(t *testing.T) {
	h := newFSMHarness(t)
	a := h.createTenant("a")
	h.createTenant("b")
	h.must(&command.UpdateTenant{ID: a, Labels: map[string]string{"x": "1", "y": "2"}, Limits: &keyspace.Limits{MaxKeys: 5}})

	res := h.apply(&command.UpdateTenant{ID: a, NewName: ptr("b")})
	require.ErrorIs(t, res[0].Err, ErrTenantExists)
	res = h.apply(&command.UpdateTenant{ID: 42, State: ptr(keyspace.StateLocked)})
	require.ErrorIs(t, res[0].Err, ErrTenantNotFound)

	r := h.must(&command.UpdateTenant{ID: a, NewName: ptr("c"), State: ptr(keyspace.StateReadOnly)})
	require.Equal(t, "c", r.Tenant.Name)
	got, err := h.fsm.LookupTenant("c")
	require.NoError(t, err)
	require.Equal(t, a, got.ID)
	require.Equal(t, keyspace.StateReadOnly, got.State)
	require.Equal(t, map[string]string{"x": "1", "y": "2"}, got.Labels, "nil labels leave them unchanged")
	require.Equal(t, uint64(5), got.Limits.MaxKeys)
	_, err = h.fsm.LookupTenant("a")
	require.ErrorIs(t, err, ErrTenantNotFound)

	h.must(&command.UpdateTenant{ID: a, Labels: map[string]string{}})
	got, err = h.fsm.TenantByID(a)
	require.NoError(t, err)
	require.Empty(t, got.Labels, "empty labels clear them")

	// Renaming to its own name is a no-op, not a conflict.
	h.must(&command.UpdateTenant{ID: a, NewName: ptr("c")})

	list, err := h.fsm.ListTenants("", 0)
	require.NoError(t, err)
	require.Equal(t, []string{"b", "c"}, names(list))
	list, err = h.fsm.ListTenants("b", 10)
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, names(list))
	list, err = h.fsm.ListTenants("", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, names(list))
}

func names(ts []*keyspace.Tenant) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func TestFSMTokens(t *testing.T) {
	h := newFSMHarness(t)
	a := h.createTenant("a")
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "t1", Hash: tokenHash("s1"), TenantID: a, ExpiresAt: exp}})
	h.must(&command.PutToken{Token: command.TokenRecord{ID: "op", Hash: tokenHash("s2")}})
	res := h.apply(&command.PutToken{Token: command.TokenRecord{ID: "t2", Hash: tokenHash("s3"), TenantID: 77}})
	require.ErrorIs(t, res[0].Err, ErrTenantNotFound)

	tok, err := h.fsm.Token("t1")
	require.NoError(t, err)
	require.Equal(t, a, tok.TenantID)
	require.Equal(t, tokenHash("s1"), tok.Hash)
	require.True(t, tok.ExpiresAt.Equal(exp))
	list, err := h.fsm.ListTokens(a)
	require.NoError(t, err)
	require.Len(t, list, 1)

	h.must(&command.DeleteToken{ID: "t1"})
	res = h.apply(&command.DeleteToken{ID: "t1"})
	require.ErrorIs(t, res[0].Err, ErrTokenNotFound)
	_, err = h.fsm.Token("t1")
	require.ErrorIs(t, err, ErrTokenNotFound)
}

func TestFSMMembers(t *testing.T) {
	h := newFSMHarness(t)
	h.must(&command.SetMember{NodeID: "n1", ClientAddr: "c1"})
	h.must(&command.SetMember{NodeID: "n2", ClientAddr: "c2", HTTPAddr: "h2"})
	h.must(&command.SetMember{NodeID: "n1", ClientAddr: "c1b"})
	h.must(&command.RemoveMember{NodeID: "n2"})
	h.must(&command.RemoveMember{NodeID: "n2"}) // idempotent
	infos, err := h.fsm.MemberInfos()
	require.NoError(t, err)
	require.Len(t, infos, 1)
	require.Equal(t, "c1b", infos["n1"].ClientAddr)
	_, err = h.fsm.MemberInfo("n2")
	require.ErrorIs(t, err, ErrMemberNotFound)
}

func TestFSMSnapshotRestore(t *testing.T) {
	src := newFSMHarness(t)
	a := src.createTenant("a")
	src.must(set(a, "a", "k", "v"))
	src.must(&command.PutToken{Token: command.TokenRecord{ID: "t", Hash: tokenHash("x"), TenantID: a}})
	snap, err := src.fsm.Snapshot()
	require.NoError(t, err)
	// Writes after the snapshot must not be in it.
	src.must(set(a, "a", "later", "v"))
	var sink bytes.Buffer
	_, err = snap.WriteTo(&sink)
	require.NoError(t, err)
	snap.Close()

	dst := newFSMHarness(t)
	b := dst.createTenant("unrelated")
	dst.must(set(b, "unrelated", "k", "v"))
	require.NoError(t, dst.fsm.Restore(bytes.NewReader(sink.Bytes())))
	require.Equal(t, uint64(3), dst.fsm.AppliedIndex())
	_, err = dst.get(a, "later")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = dst.fsm.LookupTenant("unrelated")
	require.ErrorIs(t, err, ErrTenantNotFound)

	// Applying the rest of the log makes the replicas identical.
	dst.next = 4
	dst.must(set(a, "a", "later", "v"))
	require.Equal(t, src.checksum(), dst.checksum())
}

func TestFSMPartialRestoreBlocksApply(t *testing.T) {
	src := newFSMHarness(t)
	src.createTenant("a")
	snap, err := src.fsm.Snapshot()
	require.NoError(t, err)
	var sink bytes.Buffer
	_, err = snap.WriteTo(&sink)
	require.NoError(t, err)
	snap.Close()

	dst := newFSMHarness(t)
	truncated := sink.Bytes()[:sink.Len()-3]
	require.Error(t, dst.fsm.Restore(bytes.NewReader(truncated)))
	out := dst.fsm.ApplyBatch(dst.entries(&command.CreateTenant{Name: "b"}))
	require.ErrorIs(t, out[0].(*Result).Err, ErrStopped)
	require.Equal(t, int32(1), dst.fatal.Load(), "applying onto a partial restore stops the node")
}

func TestFSMStorageFailureStops(t *testing.T) {
	h := newFSMHarness(t)
	h.createTenant("a")
	sum := h.checksum()
	injected := errors.New("injected: disk on fire")
	h.fsm.mu.Lock()
	h.fsm.commit = func(b *store.Batch, _ uint64) error { b.Close(); return injected }
	h.fsm.mu.Unlock()

	res := h.apply(set(1, "a", "k", "v"), &command.CreateTenant{Name: "b"})
	for _, r := range res {
		require.ErrorIs(t, r.Err, ErrStopped)
	}
	require.Equal(t, int32(1), h.fatal.Load())
	require.Equal(t, uint64(1), h.fsm.AppliedIndex())
	require.ErrorIs(t, h.fsm.WaitApplied(t.Context(), 5), ErrStopped)

	// Everything after is refused too, even with a healthy store, and the
	// fatal callback is not called again.
	h.fsm.mu.Lock()
	h.fsm.commit = func(b *store.Batch, i uint64) error { return b.Commit(i, false) }
	h.fsm.mu.Unlock()
	res = h.apply(&command.CreateTenant{Name: "c"})
	require.ErrorIs(t, res[0].Err, ErrStopped)
	require.Equal(t, int32(1), h.fatal.Load())
	require.Equal(t, sum, h.checksum())
	_, err := h.fsm.Snapshot()
	require.ErrorIs(t, err, ErrStopped)
}

func TestFSMWaitApplied(t *testing.T) {
	h := newFSMHarness(t)
	done := make(chan error, 1)
	go func() { done <- h.fsm.WaitApplied(t.Context(), 2) }()
	h.createTenant("a")
	select {
	case err := <-done:
		t.Fatalf("returned before index 2 was applied: %v", err)
	default:
	}
	h.createTenant("b")
	require.NoError(t, <-done)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, h.fsm.WaitApplied(ctx, 100), context.Canceled)
}
func ptr[T any](v T) *T { return &v }
