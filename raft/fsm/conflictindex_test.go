package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// testSeed returns the seed of a randomized test: TENANTKV_SEED if
// set, else the clock. It is logged so that a failure can be replayed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TENANTKV_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TENANTKV_SEED")
		seed = v
	}
	t.Logf("seed %d (replay with TENANTKV_SEED=%d)", seed, seed)
	return seed
}

// scanCheck is the conflict check as it was before the index: a scan of
// every stored history entry after readVersion. It is the reference of the
// model test. A retained entry with the transaction's ID wins over a
// conflict (checkHistory's documented precedence).
func scanCheck(m *store.TenantMetaView, id keyspace.TenantID, st *versionState, readVersion uint64, reads []command.KeyRange, txnID []byte) (uint64, error) {
	if readVersion > st.Version {
		return 0, ErrConflict
	}
	if readVersion < st.minReadVersion() {
		return 0, ErrTxTooOld
	}
	if readVersion == st.Version {
		return 0, nil
	}
	var dup, conflict uint64
	err := scanHistory(m, id, readVersion, st.Version, func(version uint64, head *entryHead, body []byte) (bool, error) {
		if head != nil && len(txnID) > 0 && dup == 0 && bytes.Equal(head.TxnID, txnID) {
			dup = version
		}
		return true, eachRecord(body, func(r *logRecord) bool {
			if conflict == 0 && intersects(reads, r) {
				conflict = version
			}
			return true
		})
	})
	if err != nil {
		return 0, err
	}
	if dup != 0 {
		return dup, nil
	}
	if conflict != 0 {
		return 0, ErrConflict
	}
	return 0, nil
}

// outcome reduces a commit's result to what every replica must agree on.
func outcome(r *Result) string {
	switch {
	case errors.Is(r.Err, ErrConflict):
		return "conflict"
	case errors.Is(r.Err, ErrTxTooOld):
		return "too old"
	case r.Err != nil:
		return "error: " + r.Err.Error()
	}
	return fmt.Sprintf("ok at %d", r.Version)
}

// TestConflictIndexMatchesScan applies random writes and commits to three
// replicas: one that applies every command in a batch of its own, one that
// restarts now and then and groups commands in random batches, and one
// rebuilt from a snapshot midway. Every commit must get the same answer on
// all three, and the answer of the old scan of the stored history; every
// replica's history image must equal one loaded afresh from its store.
func TestConflictIndexMatchesScan(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 7))
	live := newFSMHarness(t)
	grouped := newFSMHarness(t)
	var forked *fsmHarness
	names := []string{"a", "b"}
	var ids []keyspace.TenantID
	for _, n := range names {
		id := live.createTenant(n)
		require.Equal(t, id, grouped.createTenant(n))
		ids = append(ids, id)
	}
	keys := []string{"", "a", "a\x00", "ab", "b", "ba", "c", "d", "da", "e", "f", "g"}
	key := func() []byte { return []byte(keys[1+r.IntN(len(keys)-1)]) }
	anyRange := func() command.KeyRange {
		s, e := keys[r.IntN(len(keys))], keys[r.IntN(len(keys))]
		if s > e {
			s, e = e, s
		}
		if r.IntN(5) == 0 {
			e = "" // to the end of the tenant
		} else if s == e {
			e = s + "\x00"
		}
		return command.KeyRange{Start: []byte(s), End: []byte(e)}
	}
	txnIDs := [][]byte{[]byte("t1"), []byte("t2"), []byte("t3")}
	clock := time.Unix(1700000000, 0).UnixNano()
	var pendingGroup []command.Command
	var pendingWant []string
	flush := func() {
		if len(pendingGroup) == 0 {
			return
		}
		for _, h := range []*fsmHarness{grouped} {
			res := h.apply(pendingGroup...)
			for i := range res {
				require.Equal(t, pendingWant[i], outcome(res[i]), "grouped replica, command %d of its batch: %+v", i, pendingGroup[i])
			}
		}
		pendingGroup, pendingWant = nil, nil
	}
	tally := map[string]int{}
	defer func() { t.Logf("commits: %v", tally) }()
	steps := 3000
	if testing.Short() {
		steps = 600
	}
	for step := range steps {
		clock += int64(r.IntN(300)) * int64(time.Millisecond)
		if r.IntN(200) == 0 {
			clock += int64(11 * time.Second) // everything so far expires
		}
		i := r.IntN(len(ids))
		id, name := ids[i], names[i]
		var cmd command.Command
		want := ""
		if r.IntN(2) == 0 {
			w := &command.TenantWrite{TenantID: id, TenantName: name, At: clock}
			for range 1 + r.IntN(3) {
				switch r.IntN(5) {
				case 0:
					w.Ops = append(w.Ops, command.Op{Kind: command.OpDelete, Key: key()})
				case 1:
					kr := anyRange()
					if len(kr.Start) == 0 {
						kr.Start = []byte("a")
					}
					if len(kr.End) > 0 && bytes.Compare(kr.Start, kr.End) >= 0 {
						kr.End = nil
					}
					w.Ops = append(w.Ops, command.Op{Kind: command.OpDeleteRange, Key: kr.Start, End: kr.End})
				default:
					w.Ops = append(w.Ops, command.Op{Kind: command.OpSet, Key: key(), Value: []byte("v")})
				}
			}
			cmd = w
			res := live.apply(w)[0]
			require.NoError(t, res.Err)
			want = outcome(res)
		} else {
			vi := live.version(id)
			lo := int64(vi.Oldest) - 2
			rv := uint64(max(0, lo+r.Int64N(int64(vi.Version)-lo+2)))
			c := &command.TxnCommit{TenantID: id, TenantName: name, ReadVersion: rv, At: clock}
			for range r.IntN(3) {
				c.Reads = append(c.Reads, anyRange())
			}
			if r.IntN(2) == 0 {
				c.TxnID = txnIDs[r.IntN(len(txnIDs))]
			}
			if r.IntN(3) > 0 {
				c.Ops = []command.Op{{Kind: command.OpSet, Key: key(), Value: []byte("t")}}
			}
			st, err := readVersionState(tenantMeta(t, live.store, id), id)
			require.NoError(t, err)
			dup, refErr := scanCheck(tenantMeta(t, live.store, id), id, st, rv, normalizeRanges(c.Reads), c.TxnID)
			if refErr == nil && c.TxnID == nil {
				// A read-only check off the log must agree too.
				_, vErr := live.fsm.ValidateReads(id, rv, c.Reads)
				require.NoError(t, vErr, "step %d: ValidateReads at %d", step, rv)
			}
			res := live.apply(c)[0]
			want = outcome(res)
			switch {
			case dup != 0:
				tally["duplicate"]++
			case refErr != nil:
				tally[outcome(res)]++
			default:
				tally["committed"]++
			}
			switch {
			case refErr != nil:
				require.ErrorIs(t, res.Err, refErr, "step %d: commit at %d of %+v", step, rv, c)
			case dup != 0:
				require.Equal(t, fmt.Sprintf("ok at %d", dup), want, "step %d: commit at %d of %+v: the earlier commit of its ID", step, rv, c)
			default:
				require.NoError(t, res.Err, "step %d: commit at %d of %+v", step, rv, c)
			}
			cmd = c
		}
		pendingGroup = append(pendingGroup, cmd)
		pendingWant = append(pendingWant, want)
		if forked != nil {
			require.Equal(t, want, outcome(forked.apply(cmd)[0]), "step %d: replica restored from a snapshot", step)
		}
		if r.IntN(4) == 0 {
			flush()
		}
		if r.IntN(300) == 0 {
			flush()
			grouped.reopen()
			requireCatalogMatchesStore(t, grouped)
		}
		if step == steps/3 {
			forked = live.fork()
			requireCatalogMatchesStore(t, forked)
		}
	}
	flush()
	for _, h := range []*fsmHarness{live, grouped, forked} {
		requireCatalogMatchesStore(t, h)
	}
	require.Equal(t, live.checksum(), grouped.checksum(), "stores of the live and the grouped, restarted replicas")
	require.Equal(t, live.checksum(), forked.checksum(), "stores of the live and the restored replicas")
}

// TestConflictIndexBounded writes more than HistoryMaxIndexBytes of records
// and checks that the history is pruned to stay within it (the newest entry
// excepted), that the index holds few boundaries beyond those of the
// retained records, and that a read version the pruning passed is too old.
func TestConflictIndexBounded(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("big")
	at := time.Unix(1700000000, 0).UnixNano()
	const perWrite = command.MaxMutations
	rv := h.version(id).Version
	written := 0
	for w := 0; uint64(written)*recordCost([]byte("k/00000000"), nil) < 2*HistoryMaxIndexBytes; w++ {
		tw := &command.TenantWrite{TenantID: id, TenantName: "big", At: at}
		for i := range perWrite {
			tw.Ops = append(tw.Ops, command.Op{Kind: command.OpSet, Key: fmt.Appendf(nil, "k/%08d", w*perWrite+i), Value: []byte("v")})
		}
		h.must(tw)
		written += perWrite
	}
	e := h.fsm.cat.tenant(id)
	hist := e.hist
	hist.mu.Lock()
	cost, nodes, retained := hist.cost, hist.idx.nodes, 0
	for _, hd := range hist.heads[hist.off:] {
		retained += int(hd.records)
	}
	hist.mu.Unlock()
	t.Logf("%d records written; %d retained in %d entries, index cost %d bytes (cap %d), %d boundaries",
		written, retained, e.ver.Count, cost, HistoryMaxIndexBytes, nodes)
	require.LessOrEqual(t, cost, uint64(HistoryMaxIndexBytes))
	require.Less(t, retained, written)
	require.LessOrEqual(t, nodes, 3*2*retained+16, "boundaries beyond the retained records'")
	res := h.apply(&command.TxnCommit{TenantID: id, TenantName: "big", ReadVersion: rv, Reads: []command.KeyRange{point("zz")}, At: at})[0]
	require.ErrorIs(t, res.Err, ErrTxTooOld)
	requireCatalogMatchesStore(t, h)

	// Time prunes too, by any tenant's write: the idle tenant's history
	// goes down to its newest entry, and its index with it.
	other := h.createTenant("other")
	for i := range 2 * HistoryMaxEntries / prunePerWrite / 100 {
		h.must(&command.TenantWrite{TenantID: other, TenantName: "other", At: at + int64(11*time.Second) + int64(i),
			Ops: []command.Op{{Kind: command.OpSet, Key: []byte("x"), Value: []byte("y")}}})
		if h.fsm.cat.tenant(id).ver.Count == 1 {
			break
		}
	}
	e = h.fsm.cat.tenant(id)
	require.Equal(t, uint64(1), e.ver.Count, "the idle tenant's expired history")
	// Its dead boundaries go a few at a time, on the writes of others.
	for i := range 1000 {
		e.hist.mu.Lock()
		nodes = e.hist.idx.nodes
		e.hist.mu.Unlock()
		if nodes <= 3*2*perWrite+16 {
			break
		}
		h.must(&command.TenantWrite{TenantID: other, TenantName: "other", At: at + int64(12*time.Second) + int64(i),
			Ops: []command.Op{{Kind: command.OpSet, Key: []byte("x"), Value: []byte("y")}}})
	}
	require.LessOrEqual(t, nodes, 3*2*perWrite+16, "boundaries of the idle tenant's index")
	requireCatalogMatchesStore(t, h)
}

// TestConflictIndexRanges checks the step function's answers on a few
// hand-made cases, delete-ranges over earlier points among them.
func TestConflictIndexRanges(t *testing.T) {
	var x conflictIndex
	pt := func(k string, v uint64) { x.assign([]byte(k), []byte(k+"\x00"), v) }
	pt("b", 1)
	pt("d", 2)
	require.Equal(t, uint64(0), x.maxOver([]byte("a"), []byte("b")))
	require.Equal(t, uint64(1), x.maxOver([]byte("a"), []byte("c")))
	require.Equal(t, uint64(2), x.maxOver([]byte("a"), nil))
	require.Equal(t, uint64(0), x.maxOver([]byte("b\x00"), []byte("d")))
	x.assign([]byte("a"), []byte("c"), 3) // a delete-range over b
	require.Equal(t, uint64(3), x.maxOver([]byte("b"), []byte("b\x00")))
	require.Equal(t, uint64(0), x.maxOver([]byte("c"), []byte("d")))
	require.Equal(t, uint64(2), x.maxOver([]byte("c"), []byte("e")))
	x.assign([]byte("c"), nil, 4) // to the end of the tenant
	require.Equal(t, uint64(4), x.maxOver([]byte("zzz"), nil))
	require.Equal(t, uint64(3), x.maxOver([]byte(""), []byte("c")))
	require.Equal(t, []boundary{{"a", 3}, {"c", 4}}, x.boundaries(0))
	x.sweep(3, 100) // versions up to 3 no longer matter
	require.Equal(t, []boundary{{"c", 4}}, x.boundaries(3))
	require.LessOrEqual(t, x.nodes, 2)
	x.sweep(4, 1)
	require.Equal(t, 0, x.nodes)
}

// BenchmarkConflictCheck measures the conflict check of a one-key commit
// whose read version lies before a history of n records (entries of 100
// sets of 1000-byte values), by the index and by the scan it replaced.
//
//	go test -run '^$' -bench BenchmarkConflictCheck -benchtime 200x ./raft/
func BenchmarkConflictCheck(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 50_000} {
		st, err := store.Open(b.TempDir(), nil)
		require.NoError(b, err)
		f, err := New(st, nil, nil)
		require.NoError(b, err)
		index := uint64(1)
		apply := func(c command.Command) *Result {
			data, err := command.Encode(c)
			require.NoError(b, err)
			out := f.ApplyBatch([]Entry{{Index: index, Command: true, Data: data}})
			index++
			r := out[0].(*Result)
			require.NoError(b, r.Err)
			return r
		}
		id := apply(&command.CreateTenant{Name: "bench", CreatedAt: time.Unix(1700000000, 0)}).TenantID
		at := time.Unix(1700000000, 0).UnixNano()
		apply(&command.TenantWrite{TenantID: id, TenantName: "bench", At: at, Ops: []command.Op{{Kind: command.OpSet, Key: []byte("read"), Value: []byte("v")}}})
		value := bytes.Repeat([]byte("h"), 1000)
		for w := 0; w < n/100; w++ {
			tw := &command.TenantWrite{TenantID: id, TenantName: "bench", At: at}
			for i := range 100 {
				tw.Ops = append(tw.Ops, command.Op{Kind: command.OpSet, Key: fmt.Appendf(nil, "flood/%06d/%03d", w, i), Value: value})
			}
			apply(tw)
		}
		e := f.cat.tenant(id)
		reads := []command.KeyRange{point("read")}
		b.Run(fmt.Sprintf("records=%d/index", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := checkHistory(e.hist, &e.ver, 1, reads, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("records=%d/scan", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := scanCheck(tenantMeta(b, st, id), id, &e.ver, 1, reads, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		require.NoError(b, st.Close())
	}
}

// BenchmarkHistoryAppend measures the apply cost of a TenantWrite of 1,000
// sets of 100-byte values (data, version, history entry and its image,
// pruning), per write.
//
//	go test -run '^$' -bench BenchmarkHistoryAppend ./raft/
func BenchmarkHistoryAppend(b *testing.B) {
	st, err := store.Open(b.TempDir(), nil)
	require.NoError(b, err)
	defer st.Close()
	f, err := New(st, nil, nil)
	require.NoError(b, err)
	index := uint64(1)
	apply := func(c command.Command) *Result {
		data, err := command.Encode(c)
		require.NoError(b, err)
		out := f.ApplyBatch([]Entry{{Index: index, Command: true, Data: data}})
		index++
		r := out[0].(*Result)
		require.NoError(b, r.Err)
		return r
	}
	id := apply(&command.CreateTenant{Name: "bench", CreatedAt: time.Unix(1700000000, 0)}).TenantID
	at := time.Now().UnixNano()
	value := make([]byte, 100)
	n := 0
	for b.Loop() {
		at += int64(time.Millisecond)
		tw := &command.TenantWrite{TenantID: id, TenantName: "bench", At: at}
		for i := range 1000 {
			tw.Ops = append(tw.Ops, command.Op{Kind: command.OpSet, Key: fmt.Appendf(nil, "k%07d", (n*1000+i)%1_000_000), Value: value})
		}
		n++
		apply(tw)
	}
}

// TestQuietTenantHistoryExpires checks that a tenant's expired history goes
// on another tenant's write, not only on its own next one, and that its
// watches and transactions then get "too old" while the newest entry still
// serves them.
func TestQuietTenantHistoryExpires(t *testing.T) {
	h := newFSMHarness(t)
	quiet, busy := h.createTenant("quiet"), h.createTenant("busy")
	t0 := time.Unix(1700000000, 0).UnixNano()
	for i := range 5 {
		w := set(quiet, "quiet", fmt.Sprint("k", i), "v")
		w.At = t0
		h.must(w)
	}
	require.Equal(t, VersionInfo{Version: 5, Oldest: 0}, h.version(quiet))
	// Within the window, another tenant's write prunes nothing.
	w := set(busy, "busy", "x", "1")
	w.At = t0 + int64(9*time.Second)
	h.must(w)
	require.Equal(t, uint64(0), h.version(quiet).Oldest)
	// Past it, the quiet tenant keeps only its newest entry.
	w = set(busy, "busy", "x", "2")
	w.At = t0 + int64(11*time.Second)
	h.must(w)
	require.Equal(t, VersionInfo{Version: 5, Oldest: 4}, h.version(quiet))
	_, _, err := h.fsm.Changes(quiet, 0, command.KeyRange{}, 1<<20)
	require.ErrorIs(t, err, ErrWatchTooOld)
	chs, upTo, err := h.fsm.Changes(quiet, 4, command.KeyRange{}, 1<<20)
	require.NoError(t, err)
	require.Equal(t, uint64(5), upTo)
	require.Len(t, chs, 1)
	r := h.apply(&command.TxnCommit{TenantID: quiet, TenantName: "quiet", ReadVersion: 3, Reads: []command.KeyRange{point("zz")}})[0]
	require.ErrorIs(t, r.Err, ErrTxTooOld)
	_, err = h.fsm.ValidateReads(quiet, 3, []command.KeyRange{point("zz")})
	require.ErrorIs(t, err, ErrTxTooOld)
	r = h.apply(&command.TxnCommit{TenantID: quiet, TenantName: "quiet", ReadVersion: 4, Reads: []command.KeyRange{point("k4")}})[0]
	require.ErrorIs(t, r.Err, ErrConflict)
	h.must(&command.TxnCommit{TenantID: quiet, TenantName: "quiet", ReadVersion: 4, Reads: []command.KeyRange{point("k3")}})
	requireCatalogMatchesStore(t, h)
	h.reopen()
	requireCatalogMatchesStore(t, h)
	require.Equal(t, VersionInfo{Version: 5, Oldest: 4}, h.version(quiet))
}

// TestConflictIndexSweep checks, on random writes, that sweeping with a
// rising floor changes no answer above the floor: an index swept now and
// then and one never swept agree on every range for every read version at
// or above the floor, and as step functions.
func TestConflictIndexSweep(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 11))
	var swept, full conflictIndex
	key := func() []byte { return fmt.Appendf(nil, "%c%c", 'a'+r.IntN(8), 'a'+r.IntN(8)) }
	var floor uint64
	for ver := uint64(1); ver <= 5000; ver++ {
		s, e := key(), key()
		switch {
		case r.IntN(4) == 0 && bytes.Compare(s, e) < 0:
			swept.assign(bytes.Clone(s), bytes.Clone(e), ver)
			full.assign(bytes.Clone(s), bytes.Clone(e), ver)
		case r.IntN(20) == 0:
			swept.assign(bytes.Clone(s), nil, ver)
			full.assign(bytes.Clone(s), nil, ver)
		default:
			swept.assign(bytes.Clone(s), append(bytes.Clone(s), 0), ver)
			full.assign(bytes.Clone(s), append(bytes.Clone(s), 0), ver)
		}
		if r.IntN(10) == 0 {
			floor = max(floor, ver-min(ver, uint64(r.IntN(200))))
			swept.sweep(floor, r.IntN(50))
		}
		if r.IntN(50) == 0 {
			require.Equal(t, full.boundaries(floor), swept.boundaries(floor), "version %d, floor %d", ver, floor)
			require.Equal(t, countNodes(swept.root), swept.nodes)
		}
		s, e = key(), key()
		if bytes.Compare(s, e) > 0 {
			s, e = e, s
		}
		var end []byte
		if r.IntN(5) > 0 {
			end = append(e, 0)
		}
		rv := floor + uint64(r.Int64N(int64(ver-floor)+1))
		require.Equal(t, full.maxOver(s, end) > rv, swept.maxOver(s, end) > rv, "version %d, floor %d, read version %d, [%q, %q)", ver, floor, rv, s, end)
	}
	swept.sweep(floor, 1<<20)
	t.Logf("boundaries: %d never swept, %d swept", full.nodes, swept.nodes)
	require.LessOrEqual(t, swept.nodes, full.nodes)
	require.Equal(t, full.boundaries(floor), swept.boundaries(floor))
	// A full sweep leaves no dead boundary behind a dead one.
	var prev uint64
	var walk func(n *inode)
	walk = func(n *inode) {
		if n == nil {
			return
		}
		walk(n.left)
		require.False(t, n.ver <= floor && prev <= floor, "dead boundary %q after a dead one", n.key)
		prev = n.ver
		walk(n.right)
	}
	walk(swept.root)
}

// TestConflictIndexPointMatchesAssign applies the same random writes to two
// indexes, point writes through assignPoint in one and through the general
// assign in the other, and checks after each that both give the same
// answer over every range of a small key set and that every node's max is
// the largest version of its subtree.
func TestConflictIndexPointMatchesAssign(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 11))
	keys := []string{"", "a", "a\x00", "a\x00\x00", "ab", "b", "b\x00", "c", "d"}
	var fast, slow conflictIndex
	var checkMax func(n *inode) uint64
	checkMax = func(n *inode) uint64 {
		if n == nil {
			return 0
		}
		m := max(n.ver, checkMax(n.left), checkMax(n.right))
		require.Equal(t, m, n.max, "max of the node at %q", n.key)
		return m
	}
	for ver := uint64(1); ver <= 2000; ver++ {
		k := keys[r.IntN(len(keys))]
		if r.IntN(6) == 0 { // a delete-range, the same in both
			e := keys[r.IntN(len(keys))]
			var end []byte
			if e > k {
				end = []byte(e)
			}
			fast.assign([]byte(k), bytes.Clone(end), ver)
			slow.assign([]byte(k), bytes.Clone(end), ver)
		} else {
			fast.assignPoint([]byte(k), ver)
			slow.assign([]byte(k), []byte(k+"\x00"), ver)
		}
		if r.IntN(10) == 0 {
			floor := ver - uint64(r.IntN(int(ver)))
			fast.sweep(floor, 3)
			slow.sweep(floor, 3)
		}
		checkMax(fast.root)
		for _, s := range keys {
			require.Equal(t, slow.at([]byte(s)), fast.at([]byte(s)), "at %q after version %d", s, ver)
			require.Equal(t, slow.maxOver([]byte(s), nil), fast.maxOver([]byte(s), nil))
			for _, e := range keys {
				if e > s {
					require.Equal(t, slow.maxOver([]byte(s), []byte(e)), fast.maxOver([]byte(s), []byte(e)), "[%q, %q) after version %d", s, e, ver)
				}
			}
		}
	}
}

// BenchmarkConflictIndexPoint measures a point write of one of 10,000 keys
// written before (the common write of a steady workload), by assignPoint
// and by the general assign it falls back to.
//
//	go test -run '^$' -bench BenchmarkConflictIndexPoint -count 6 ./raft/fsm/
func BenchmarkConflictIndexPoint(b *testing.B) {
	const n = 10_000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key%08d", i*7919%n)
	}
	for _, impl := range []string{"assignPoint", "assign"} {
		b.Run(impl, func(b *testing.B) {
			var x conflictIndex
			ver := uint64(0)
			for _, k := range keys {
				ver++
				x.assignPoint(k, ver)
			}
			r := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				ver++
				k := keys[r.IntN(n)]
				if impl == "assignPoint" {
					x.assignPoint(k, ver)
				} else {
					x.assign(bytes.Clone(k), append(bytes.Clone(k), 0), ver)
				}
			}
		})
	}
}
