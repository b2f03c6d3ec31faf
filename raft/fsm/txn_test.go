package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// fork returns a new harness whose store is restored from a snapshot of
// h's, positioned at the same log index: a replica rebuilt from a snapshot.
func (h *fsmHarness) fork() *fsmHarness {
	h.t.Helper()
	snap, err := h.fsm.Snapshot()
	require.NoError(h.t, err)
	var sink bytes.Buffer
	_, err = snap.WriteTo(&sink)
	require.NoError(h.t, err)
	snap.Close()
	twin := newFSMHarness(h.t)
	require.NoError(h.t, twin.fsm.Restore(bytes.NewReader(sink.Bytes())))
	twin.next = h.next
	return twin
}

func le(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

func point(k string) command.KeyRange {
	return command.KeyRange{Start: []byte(k), End: []byte(k + "\x00")}
}

func rng(s, e string) command.KeyRange { return command.KeyRange{Start: []byte(s), End: []byte(e)} }

func (h *fsmHarness) versioned(id keyspace.TenantID, key string) ([]byte, uint64, error) {
	v, err := h.store.Tenant(id)
	require.NoError(h.t, err)
	return v.GetVersioned([]byte(key))
}

func (h *fsmHarness) version(id keyspace.TenantID) VersionInfo {
	vi, err := h.fsm.TenantVersion(id)
	require.NoError(h.t, err)
	return vi
}

func TestVersionsArePerTenant(t *testing.T) {
	h := newFSMHarness(t)
	a := h.createTenant("a")
	b := h.createTenant("b")
	require.Equal(t, VersionInfo{Version: 0, Oldest: 0}, h.version(a))

	r := h.must(set(a, "a", "k1", "v1", "k2", "v2"))
	require.Equal(t, uint64(1), r.Version)
	r = h.must(set(a, "a", "k1", "v1b"))
	require.Equal(t, uint64(2), r.Version)
	// Another tenant's writes start at 1 and do not move a's counter.
	r = h.must(set(b, "b", "k1", "x"))
	require.Equal(t, uint64(1), r.Version)
	require.Equal(t, uint64(2), h.version(a).Version)

	val, ver, err := h.versioned(a, "k1")
	require.NoError(t, err)
	require.Equal(t, "v1b", string(val))
	require.Equal(t, uint64(2), ver)
	_, ver, err = h.versioned(a, "k2")
	require.NoError(t, err)
	require.Equal(t, uint64(1), ver)

	// A refused write and an empty one change no version.
	h.must(&command.UpdateTenant{ID: b, State: ptr(keyspace.StateReadOnly)})
	require.ErrorIs(t, h.apply(set(b, "b", "k", "v"))[0].Err, ErrTenantReadOnly)
	require.Equal(t, uint64(1), h.version(b).Version)
	r = h.must(&command.TenantWrite{TenantID: a, TenantName: "a"})
	require.Equal(t, uint64(0), r.Version)
	require.Equal(t, uint64(2), h.version(a).Version)

	// Usage counts user keys and values, not the version envelope.
	u, err := h.fsm.Usage(a)
	require.NoError(t, err)
	require.Equal(t, Usage{Bytes: uint64(len("k1v1b") + len("k2v2")), Keys: 2}, u)

	// Deleting the tenant removes its versions and history with it.
	h.must(&command.DeleteTenant{ID: a})
	require.Equal(t, VersionInfo{Version: 0, Oldest: 0}, h.version(a))
	ms, me := keyspace.TenantMetaSpan(a)
	require.NoError(t, tenantMeta(t, h.store, a).Scan(ms, me, func(k, _ []byte) bool {
		t.Errorf("metadata key %q of a deleted tenant", k)
		return true
	}))
}

func TestTxnConflicts(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	h.must(set(id, "acme", "a", "1", "b", "2", "m", "3", "y", "4"))
	rv := h.version(id).Version // 1

	commit := func(reads []command.KeyRange, ops ...command.Op) *Result {
		return h.apply(&command.TxnCommit{TenantID: id, TenantName: "acme", ReadVersion: rv, Reads: reads, Ops: ops})[0]
	}
	// Nothing was written after rv: anything commits.
	r := commit([]command.KeyRange{point("a")}, command.Op{Kind: command.OpSet, Key: []byte("a"), Value: []byte("10")})
	require.NoError(t, r.Err)
	require.Equal(t, uint64(2), r.Version)

	// The commit above wrote a at version 2. Reads at rv=1 that cover a
	// conflict; reads that do not, commit.
	for _, tc := range []struct {
		name  string
		reads []command.KeyRange
		want  error
	}{
		{"point read of the written key", []command.KeyRange{point("a")}, ErrConflict},
		{"range read covering it", []command.KeyRange{rng("", "b")}, ErrConflict},
		{"range to the end of the tenant", []command.KeyRange{{Start: []byte("0")}}, ErrConflict},
		{"whole tenant", []command.KeyRange{{}}, ErrConflict},
		{"point read of another key", []command.KeyRange{point("b")}, nil},
		{"range just after", []command.KeyRange{rng("a\x00", "z")}, nil},
		{"range ending at the key", []command.KeyRange{rng("0", "a")}, nil},
		{"several, one hit", []command.KeyRange{point("m"), rng("0", "1"), point("a")}, ErrConflict},
		{"no reads (blind write)", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := commit(tc.reads, command.Op{Kind: command.OpSet, Key: []byte("zzz"), Value: []byte("x")})
			if tc.want != nil {
				require.ErrorIs(t, r.Err, tc.want)
				return
			}
			require.NoError(t, r.Err)
		})
	}

	// A delete-range write conflicts with a point read inside it and with
	// an overlapping range read, not with reads outside.
	rv = h.version(id).Version
	h.must(&command.TenantWrite{TenantID: id, TenantName: "acme", Ops: []command.Op{{Kind: command.OpDeleteRange, Key: []byte("x"), End: []byte("z")}}})
	require.ErrorIs(t, commit([]command.KeyRange{point("y")}).Err, ErrConflict)
	require.ErrorIs(t, commit([]command.KeyRange{rng("w", "x\x00")}).Err, ErrConflict)
	require.ErrorIs(t, commit([]command.KeyRange{rng("y", "zz")}).Err, ErrConflict)
	require.NoError(t, commit([]command.KeyRange{rng("z", "zz")}).Err)
	require.NoError(t, commit([]command.KeyRange{rng("a", "x")}).Err)

	// A delete-range to the end of the tenant conflicts with anything after its start.
	rv = h.version(id).Version
	h.must(&command.TenantWrite{TenantID: id, TenantName: "acme", Ops: []command.Op{{Kind: command.OpDeleteRange, Key: []byte("q")}}})
	require.ErrorIs(t, commit([]command.KeyRange{point("\xff\xff")}).Err, ErrConflict)
	require.NoError(t, commit([]command.KeyRange{point("p")}).Err)

	// A read version from the future is refused, like a conflict.
	rv = h.version(id).Version + 5
	require.ErrorIs(t, commit(nil).Err, ErrConflict)

	// Read-only validation without a log entry gives the same answers.
	cur := h.version(id).Version
	_, err := h.fsm.ValidateReads(id, cur-1, []command.KeyRange{point("q")})
	require.ErrorIs(t, err, ErrConflict)
	v, err := h.fsm.ValidateReads(id, cur-1, []command.KeyRange{point("p")})
	require.NoError(t, err)
	require.Equal(t, cur, v)
}

func TestTxnAllOrNothingAndTenantChecks(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	h.must(&command.UpdateTenant{ID: id, Limits: &keyspace.Limits{MaxKeys: 2}})
	ok := &command.TxnCommit{TenantID: id, TenantName: "acme", Ops: []command.Op{
		{Kind: command.OpSet, Key: []byte("a"), Value: []byte("1")},
		{Kind: command.OpSet, Key: []byte("b"), Value: []byte("2")},
	}}
	h.must(ok)
	sum := h.checksum()
	for name, c := range map[string]*command.TxnCommit{
		"over quota": {TenantID: id, TenantName: "acme", ReadVersion: 1, Ops: []command.Op{
			{Kind: command.OpDelete, Key: []byte("a")}, {Kind: command.OpSet, Key: []byte("c"), Value: []byte("3")}, {Kind: command.OpSet, Key: []byte("d"), Value: []byte("4")}}},
		"wrong name":   {TenantID: id, TenantName: "other", ReadVersion: 1, Ops: ok.Ops},
		"bad atomic":   {TenantID: id, TenantName: "acme", ReadVersion: 1, Ops: []command.Op{{Kind: command.OpAdd, Key: []byte("a"), Value: []byte("short")}}},
		"unknown kind": {TenantID: id, TenantName: "acme", ReadVersion: 1, Ops: []command.Op{{Kind: 99, Key: []byte("a")}}},
		"long id":      {TenantID: id, TenantName: "acme", ReadVersion: 1, TxnID: make([]byte, 33)},
	} {
		r := h.apply(c)[0]
		require.Error(t, r.Err, name)
		require.Equal(t, sum, h.checksum(), "%s left a trace", name)
	}
	require.ErrorIs(t, h.apply(&command.TxnCommit{TenantID: id, TenantName: "acme", ReadVersion: 1, Ops: slices.Repeat([]command.Op{
		{Kind: command.OpSet, Key: []byte("k"), Value: make([]byte, keyspace.MaxValueSize)}}, command.MaxTxnBytes/keyspace.MaxValueSize+1)})[0].Err, command.ErrTxTooLarge)

	// A read-only tenant validates read-only transactions but refuses
	// writes; a locked one too (the server refuses its reads earlier).
	h.must(&command.UpdateTenant{ID: id, State: ptr(keyspace.StateReadOnly)})
	h.must(&command.TxnCommit{TenantID: id, TenantName: "acme", ReadVersion: 1, Reads: []command.KeyRange{point("a")}})
	require.ErrorIs(t, h.apply(ok)[0].Err, ErrTenantReadOnly)
}

func TestAtomicOps(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	h.must(set(id, "acme", "short", "\x05", "long", "\x01\x00\x00\x00\x00\x00\x00\x00\xff\xff", "cac", "same"))
	txn := func(ops ...command.Op) *Result {
		rv := h.version(id).Version
		return h.must(&command.TxnCommit{TenantID: id, TenantName: "acme", ReadVersion: rv, Ops: ops})
	}
	get := func(k string) []byte {
		v, err := h.get(id, k)
		if err != nil {
			return nil
		}
		return v
	}
	txn(
		command.Op{Kind: command.OpAdd, Key: []byte("missing"), Value: le(7)},
		command.Op{Kind: command.OpAdd, Key: []byte("short"), Value: le(1)},
		command.Op{Kind: command.OpAdd, Key: []byte("long"), Value: le(-2)},
		command.Op{Kind: command.OpMin, Key: []byte("min-missing"), Value: le(-3)},
		command.Op{Kind: command.OpMax, Key: []byte("max-missing"), Value: le(4)},
	)
	require.Equal(t, le(7), get("missing"))
	require.Equal(t, le(6), get("short"), "a short value is zero-extended")
	require.Equal(t, le(-1), get("long"), "a long value is truncated to 8 bytes")
	require.Equal(t, le(-3), get("min-missing"))
	require.Equal(t, le(4), get("max-missing"))

	txn(
		command.Op{Kind: command.OpMin, Key: []byte("min-missing"), Value: le(-10)},
		command.Op{Kind: command.OpMin, Key: []byte("max-missing"), Value: le(100)},
		command.Op{Kind: command.OpMax, Key: []byte("missing"), Value: le(math.MinInt64)},
		command.Op{Kind: command.OpAdd, Key: []byte("missing"), Value: le(math.MaxInt64)},
	)
	require.Equal(t, le(-10), get("min-missing"), "signed comparison")
	require.Equal(t, le(4), get("max-missing"))
	require.Equal(t, le(math.MinInt64+6), get("missing"), "overflow wraps")

	// Atomic ops see the transaction's own earlier mutations.
	txn(
		command.Op{Kind: command.OpSet, Key: []byte("ctr"), Value: le(40)},
		command.Op{Kind: command.OpAdd, Key: []byte("ctr"), Value: le(2)},
		command.Op{Kind: command.OpSet, Key: []byte("gone"), Value: le(1)},
		command.Op{Kind: command.OpDeleteRange, Key: []byte("g"), End: []byte("h")},
		command.Op{Kind: command.OpAdd, Key: []byte("gone"), Value: le(5)},
		command.Op{Kind: command.OpCompareAndClear, Key: []byte("cac"), Value: []byte("other")},
	)
	require.Equal(t, le(42), get("ctr"))
	require.Equal(t, le(5), get("gone"), "a cleared key counts as missing")
	require.Equal(t, []byte("same"), get("cac"), "no match, no clear")
	r := txn(command.Op{Kind: command.OpCompareAndClear, Key: []byte("cac"), Value: []byte("same")})
	require.Nil(t, get("cac"))
	// A compare-and-clear that matched nothing still commits a version.
	r2 := txn(command.Op{Kind: command.OpCompareAndClear, Key: []byte("cac"), Value: []byte("same")})
	require.Equal(t, r.Version+1, r2.Version)

	// The history records what the atomic ops became.
	chs, _, err := h.fsm.Changes(id, r.Version-1, command.KeyRange{}, 1<<20)
	require.NoError(t, err)
	require.Len(t, chs, 1)
	require.Equal(t, Change{Version: r.Version, Kind: command.OpDelete, Key: []byte("cac")}, chs[0])

	// Atomic ops add no read conflicts: concurrent adds at one read version
	// all commit.
	rv := h.version(id).Version
	for range 5 {
		h.must(&command.TxnCommit{TenantID: id, TenantName: "acme", ReadVersion: rv, Ops: []command.Op{{Kind: command.OpAdd, Key: []byte("hits"), Value: le(1)}}})
	}
	require.Equal(t, le(5), get("hits"))
}

func TestCompareAndSwap(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	cas := func(old, new []byte, oldAbsent, newAbsent bool) *Result {
		return h.must(&command.CompareAndSwap{TenantID: id, TenantName: "acme", Key: []byte("k"), Old: old, OldAbsent: oldAbsent, New: new, NewAbsent: newAbsent})
	}
	require.False(t, cas([]byte("x"), []byte("y"), false, false).Swapped, "missing key, value expected")
	r := cas(nil, []byte("v1"), true, false)
	require.True(t, r.Swapped)
	require.Equal(t, uint64(1), r.Version)
	require.False(t, cas(nil, []byte("v2"), true, false).Swapped, "present key, absence expected")
	require.False(t, cas([]byte("v0"), []byte("v2"), false, false).Swapped)
	r = cas([]byte("v1"), []byte("v2"), false, false)
	require.True(t, r.Swapped)
	require.Equal(t, uint64(2), r.Version)
	v, ver, err := h.versioned(id, "k")
	require.NoError(t, err)
	require.Equal(t, "v2", string(v))
	require.Equal(t, uint64(2), ver)
	require.True(t, cas([]byte("v2"), nil, false, true).Swapped)
	_, err = h.get(id, "k")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Equal(t, uint64(3), h.version(id).Version, "failed swaps write nothing")
	// An empty value is a value, not absence.
	require.True(t, cas(nil, []byte{}, true, false).Swapped)
	require.False(t, cas(nil, []byte("x"), true, false).Swapped)
	require.True(t, cas([]byte{}, []byte("x"), false, false).Swapped)
}

func TestTxnIDMakesCommitIdempotent(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	c := &command.TxnCommit{TenantID: id, TenantName: "acme", ReadVersion: 0, TxnID: []byte("tx-1"),
		Reads: []command.KeyRange{point("ctr")}, Ops: []command.Op{{Kind: command.OpAdd, Key: []byte("ctr"), Value: le(1)}}}
	first := h.must(c)
	h.must(set(id, "acme", "other", "x"))
	// The same commit again (an answer was lost and the client resent it):
	// reported committed at the first version, applied once. Its own write
	// to ctr is not a conflict with itself.
	again := h.must(c)
	require.Equal(t, first.Version, again.Version)
	v, _ := h.get(id, "ctr")
	require.Equal(t, le(1), v)
	require.Equal(t, uint64(2), h.version(id).Version)
	// Another ID with the same reads conflicts.
	c2 := *c
	c2.TxnID = []byte("tx-2")
	require.ErrorIs(t, h.apply(&c2)[0].Err, ErrConflict)
}

func TestHistoryRetention(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	t0 := time.Unix(1700000000, 0).UnixNano()
	write := func(at int64, kv ...string) {
		w := set(id, "acme", kv...)
		w.At = at
		h.must(w)
	}
	write(t0, "a", "1")
	write(t0+int64(time.Second), "b", "2")
	require.Equal(t, VersionInfo{Version: 2, Oldest: 0}, h.version(id))
	// A write 11.5 s after the first makes both older entries prunable.
	write(t0+int64(11500*time.Millisecond), "c", "3")
	require.Equal(t, VersionInfo{Version: 3, Oldest: 2}, h.version(id))
	r := h.apply(&command.TxnCommit{TenantID: id, TenantName: "acme", ReadVersion: 1, Reads: []command.KeyRange{point("zz")}})[0]
	require.ErrorIs(t, r.Err, ErrTxTooOld)
	_, _, err := h.fsm.Changes(id, 1, command.KeyRange{}, 1<<20)
	require.ErrorIs(t, err, ErrWatchTooOld)
	h.must(&command.TxnCommit{TenantID: id, TenantName: "acme", ReadVersion: 2, Reads: []command.KeyRange{point("zz")}})
	// A clock that goes backwards (a new leader behind the old one) does
	// not un-prune anything or move the window back.
	write(t0, "d", "4")
	require.Equal(t, uint64(2), h.version(id).Oldest)

	// Pruning is amortised: a burst of old entries goes a few per write
	// (prunePerWrite by the tenant's own rule, as many again by the
	// expiry of any tenant's old history, expireHistories).
	for i := range 40 {
		write(t0+int64(11*time.Second), fmt.Sprint("k", i), "v")
	}
	before := h.version(id)
	write(t0+int64(30*time.Second), "late", "v")
	after := h.version(id)
	require.Equal(t, before.Oldest+2*prunePerWrite, after.Oldest)
	st, err := readVersionState(tenantMeta(t, h.store, id), id)
	require.NoError(t, err)
	require.Equal(t, st.Version-st.First+1, st.Count)

	// Entries are stored in chunks; a big one is pruned whole.
	big := &command.TenantWrite{TenantID: id, TenantName: "acme", At: t0 + int64(31*time.Second)}
	for i := range 8 {
		big.Ops = append(big.Ops, command.Op{Kind: command.OpSet, Key: fmt.Appendf(nil, "big%d", i), Value: bytes.Repeat([]byte{byte(i)}, keyspace.MaxValueSize)})
	}
	bigVer := h.must(big).Version
	chs, upTo, err := h.fsm.Changes(id, bigVer-1, command.KeyRange{}, 1<<30)
	require.NoError(t, err)
	require.Equal(t, bigVer, upTo)
	require.Len(t, chs, 8)
	for i, c := range chs {
		require.Equal(t, bytes.Repeat([]byte{byte(i)}, keyspace.MaxValueSize), c.Value)
	}
	chunks := 0
	start, end := keyspace.HistorySpan(id, bigVer-1, bigVer)
	m := tenantMeta(t, h.store, id)
	require.NoError(t, m.Scan(start, end, func(k, _ []byte) bool {
		chunks++
		return true
	}))
	require.Greater(t, chunks, 1, "an 800 KB entry spans chunks")
	for i := range 20 {
		write(t0+int64(60*time.Second), fmt.Sprint("after", i), "v")
	}
	require.GreaterOrEqual(t, h.version(id).Oldest, bigVer)
	require.NoError(t, m.Scan(start, end, func(k, _ []byte) bool {
		t.Errorf("chunk %q of a pruned entry left behind", k)
		return true
	}))
}

func TestChangesForWatches(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	h.must(set(id, "acme", "p/1", "a", "q/1", "b"))                                                                                                      // 1
	h.must(&command.TenantWrite{TenantID: id, TenantName: "acme", Ops: []command.Op{{Kind: command.OpDelete, Key: []byte("p/1")}}})                      // 2
	h.must(set(id, "acme", "q/2", "c"))                                                                                                                  // 3
	h.must(&command.TenantWrite{TenantID: id, TenantName: "acme", Ops: []command.Op{{Kind: command.OpDeleteRange, Key: []byte("a"), End: []byte("z")}}}) // 4
	h.must(set(id, "acme", "p/2", ""))                                                                                                                   // 5

	chs, upTo, err := h.fsm.Changes(id, 0, rng("p/", "p0"), 1<<20)
	require.NoError(t, err)
	require.Equal(t, uint64(5), upTo)
	require.Equal(t, []Change{
		{Version: 1, Kind: command.OpSet, Key: []byte("p/1"), Value: []byte("a")},
		{Version: 2, Kind: command.OpDelete, Key: []byte("p/1")},
		{Version: 4, Kind: command.OpDeleteRange, Key: []byte("p/"), End: []byte("p0")},
		{Version: 5, Kind: command.OpSet, Key: []byte("p/2"), Value: []byte{}},
	}, chs)
	chs, upTo, err = h.fsm.Changes(id, 4, rng("q/", "q0"), 1<<20)
	require.NoError(t, err)
	require.Equal(t, uint64(5), upTo)
	require.Empty(t, chs)
	// Paged by size at version boundaries.
	chs, upTo, err = h.fsm.Changes(id, 0, command.KeyRange{}, 1)
	require.NoError(t, err)
	require.Equal(t, uint64(1), upTo)
	require.Len(t, chs, 2)
}

// TestChangesReadBoundedHistory pins the bound on what one Changes call
// reads of the history: a watch of a key nobody writes, behind entries of
// other keys larger than maxChangesScan in all, gets no changes and a
// version short of the tenant's, and reaches it over several calls.
func TestChangesReadBoundedHistory(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	const entries = 12
	value := bytes.Repeat([]byte{'v'}, keyspace.MaxValueSize)
	for i := range entries {
		w := &command.TenantWrite{TenantID: id, TenantName: "acme"}
		for j := range 5 { // 500 KB an entry: 6 MB in all
			w.Ops = append(w.Ops, command.Op{Kind: command.OpSet, Key: fmt.Appendf(nil, "big/%d/%d", i, j), Value: value})
		}
		h.must(w)
	}
	last := h.version(id).Version
	after, calls := uint64(0), 0
	for after < last {
		chs, upTo, err := h.fsm.Changes(id, after, rng("quiet/", "quiet0"), 1<<20)
		require.NoError(t, err)
		require.Empty(t, chs)
		require.Greater(t, upTo, after, "every call makes progress")
		require.LessOrEqual(t, upTo-after, uint64(maxChangesScan/(500<<10)+1), "one call read more than its bound")
		after = upTo
		calls++
	}
	require.Equal(t, last, after)
	require.Greater(t, calls, 1)
}

func TestOnApplied(t *testing.T) {
	h := newFSMHarness(t)
	var mu sync.Mutex
	var got [][]keyspace.TenantID
	h.fsm.OnApplied(func(ids []keyspace.TenantID) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ids)
	})
	a := h.createTenant("a")
	b := h.createTenant("b")
	h.apply(set(b, "b", "k", "v"), set(a, "a", "k", "v"), set(a, "a", "k2", "v"))
	h.must(&command.UpdateTenant{ID: a, State: ptr(keyspace.StateLocked)})
	h.apply(set(a, "a", "k", "v")) // refused: no notification
	h.must(&command.DeleteTenant{ID: b})
	h.fork().fsm.OnApplied(nil)
	require.Equal(t, [][]keyspace.TenantID{{a, b}, {a}, {b}}, got)
}

// TestTxnDeterminism feeds the same random log of conflicting
// transactions, atomic ops, CASes and plain writes, with a retention
// window that prunes as it goes, to a replica that applies it straight, a
// replica that restarts in between, and a replica rebuilt from a snapshot
// half way. All make the same decisions and end byte-identical.
func TestTxnDeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	key := func() []byte { return fmt.Appendf(nil, "k%02d", r.IntN(30)) }
	var cmds []command.Command
	cmds = append(cmds, &command.CreateTenant{Name: "acme", CreatedAt: time.Unix(1, 0)})
	at := time.Unix(1700000000, 0).UnixNano()
	version := uint64(0) // an upper bound of the version, to pick read versions
	for range 400 {
		at += int64(r.IntN(200)) * int64(time.Millisecond)
		switch r.IntN(4) {
		case 0:
			cmds = append(cmds, &command.TenantWrite{TenantID: 1, TenantName: "acme", At: at, Ops: []command.Op{{Kind: command.OpSet, Key: key(), Value: key()}}})
		case 1:
			c := &command.CompareAndSwap{TenantID: 1, TenantName: "acme", Key: key(), OldAbsent: r.IntN(2) == 0, New: key(), At: at}
			if !c.OldAbsent {
				c.Old = key()
			}
			cmds = append(cmds, c)
		default:
			c := &command.TxnCommit{TenantID: 1, TenantName: "acme", At: at, ReadVersion: version - min(version, uint64(r.IntN(120)))}
			for range r.IntN(3) {
				k := key()
				c.Reads = append(c.Reads, command.KeyRange{Start: k, End: append(bytes.Clone(k), byte(r.IntN(3)))})
			}
			for range 1 + r.IntN(3) {
				switch r.IntN(4) {
				case 0:
					c.Ops = append(c.Ops, command.Op{Kind: command.OpSet, Key: key(), Value: key()})
				case 1:
					c.Ops = append(c.Ops, command.Op{Kind: command.OpAdd, Key: key(), Value: le(int64(r.IntN(10)))})
				case 2:
					s := key()
					c.Ops = append(c.Ops, command.Op{Kind: command.OpDeleteRange, Key: s, End: append(bytes.Clone(s), 0xff)})
				default:
					c.Ops = append(c.Ops, command.Op{Kind: command.OpCompareAndClear, Key: key(), Value: key()})
				}
			}
			cmds = append(cmds, c)
		}
		version++
	}

	outcome := func(res []*Result) []string {
		var out []string
		for _, r := range res {
			out = append(out, fmt.Sprintf("v%d swapped=%v err=%v", r.Version, r.Swapped, r.Err))
		}
		return out
	}
	straight := newFSMHarness(t)
	var want []string
	for i := 0; i < len(cmds); i += 7 {
		want = append(want, outcome(straight.apply(cmds[i:min(i+7, len(cmds))]...))...)
	}

	restarted := newFSMHarness(t)
	var got []string
	half := len(cmds) / 2
	got = append(got, outcome(restarted.apply(cmds[:half]...))...)
	forked := restarted.fork()
	restarted.reopen()
	got = append(got, outcome(restarted.apply(cmds[half:]...))...)
	require.Equal(t, want, got, "restarted replica decided differently")

	got = got[:half]
	got = append(got, outcome(forked.apply(cmds[half:]...))...)
	require.Equal(t, want, got, "replica rebuilt from a snapshot decided differently")

	require.Equal(t, straight.checksum(), restarted.checksum())
	require.Equal(t, straight.checksum(), forked.checksum())

	// The workload exercised what it should.
	conflicts, tooOld := 0, 0
	for _, w := range want {
		if bytes.Contains([]byte(w), []byte("conflict")) {
			conflicts++
		}
		if bytes.Contains([]byte(w), []byte("too old")) {
			tooOld++
		}
	}
	t.Logf("%d commands, %d conflicts, %d too old, oldest retained %d", len(want), conflicts, tooOld, straight.version(1).Oldest)
	require.Positive(t, conflicts)
	require.Positive(t, tooOld)
}

func TestNetOps(t *testing.T) {
	set := func(k, v string) command.Op { return command.Op{Kind: command.OpSet, Key: []byte(k), Value: []byte(v)} }
	del := func(k string) command.Op { return command.Op{Kind: command.OpDelete, Key: []byte(k)} }
	dr := func(s, e string) command.Op {
		return command.Op{Kind: command.OpDeleteRange, Key: []byte(s), End: []byte(e)}
	}
	for _, tc := range []struct {
		in, want []command.Op
	}{
		{[]command.Op{set("a", "1")}, []command.Op{set("a", "1")}},
		{[]command.Op{set("a", "1"), set("b", "2"), set("a", "3")}, []command.Op{set("b", "2"), set("a", "3")}},
		{[]command.Op{set("a", "1"), del("a")}, []command.Op{del("a")}},
		{[]command.Op{set("a", "1"), set("x", "1"), dr("a", "b"), set("a", "2")}, []command.Op{set("x", "1"), dr("a", "b"), set("a", "2")}},
		{[]command.Op{set("z", "1"), dr("a", "")}, []command.Op{dr("a", "")}},
		{[]command.Op{dr("a", "b"), dr("a", "c")}, []command.Op{dr("a", "b"), dr("a", "c")}},
	} {
		require.Equal(t, tc.want, netOps(tc.in))
	}
	// The same final state either way.
	r := rand.New(rand.NewPCG(5, 1))
	for range 500 {
		var ops []command.Op
		for range 6 {
			k := string(rune('a' + r.IntN(4)))
			switch r.IntN(3) {
			case 0:
				ops = append(ops, set(k, fmt.Sprint(r.IntN(9))))
			case 1:
				ops = append(ops, del(k))
			default:
				ops = append(ops, dr(k, string(rune('a'+1+r.IntN(4)))))
			}
		}
		apply := func(ops []command.Op) map[string]string {
			m := map[string]string{}
			for _, op := range ops {
				switch op.Kind {
				case command.OpSet:
					m[string(op.Key)] = string(op.Value)
				case command.OpDelete:
					delete(m, string(op.Key))
				case command.OpDeleteRange:
					for k := range m {
						if (&command.KeyRange{Start: op.Key, End: op.End}).Contains([]byte(k)) {
							delete(m, k)
						}
					}
				}
			}
			return m
		}
		require.Equal(t, apply(ops), apply(netOps(ops)), "%v", ops)
	}
}
