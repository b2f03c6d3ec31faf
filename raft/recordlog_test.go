package raft

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// TestRecordLog runs a one-node cluster over TCP on 127.0.0.1 with a real
// store through a workload that puts every kind of command in the log
// (applied and refused ones, batch entries, the leader's noop, configuration
// changes), then writes the node's raft log and the store's checksum to
// $TENANTKV_RECORD_LOG, for TestReplayRecordedLog. It runs only when that
// variable names the output directory:
//
//	TENANTKV_RECORD_LOG=$PWD/raft/testdata/recorded go test -count=1 -run TestRecordLog ./raft/
//
// Every command carries its own clock, so the recording replays to the same
// checksum whenever and however it is batched; the recorder checks that
// before it writes anything.
func TestRecordLog(t *testing.T) {
	out := os.Getenv("TENANTKV_RECORD_LOG")
	if out == "" {
		t.Skip("set TENANTKV_RECORD_LOG to the output directory to record a log")
	}
	rng := rand.New(rand.NewPCG(replaySeed(t), 1))
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	require.NoError(t, err)
	defer st.Close()
	raftDir := filepath.Join(dir, "raft")

	start := func(addr string) *Node {
		n, err := NewNode(Config{
			ID: "rec0", Dir: raftDir, Store: st, Bootstrap: true, RaftAddr: addr,
			ClientAddr: "127.0.0.1:7100", HTTPAddr: "127.0.0.1:7180",
			Logger:           testLogger(),
			HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			LeaderLeaseTimeout: 100 * time.Millisecond,
			// No snapshot may truncate the log before it is read.
			SnapshotThreshold: 1 << 30, SnapshotInterval: time.Hour, TrailingLogs: 1 << 30,
		})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			return n.ReadBarrier(ctx) == nil
		}, 20*time.Second, 10*time.Millisecond, "leader ready")
		return n
	}
	n := start("127.0.0.1:0")
	addr := n.RaftAddr()
	defer func() { _ = n.Shutdown() }()

	// The proposer's clock, advanced by hand: 1 ms per command.
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	at := func() int64 { return now().UnixNano() }

	propose := func(cmd Command) *Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		res, err := n.Propose(ctx, cmd)
		require.NoError(t, err, "%T %+v", cmd, cmd)
		return res
	}
	refuse := func(want error, cmd Command) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := n.Propose(ctx, cmd)
		require.ErrorIs(t, err, want, "%T %+v", cmd, cmd)
	}
	kv := func(k, v string) Op { return Op{Kind: OpSet, Key: []byte(k), Value: []byte(v)} }
	i64 := func(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
	ptr := func(s keyspace.State) *keyspace.State { return &s }
	write := func(id keyspace.TenantID, name string, ops ...Op) *TenantWrite {
		return &TenantWrite{TenantID: id, TenantName: name, Ops: ops, At: at()}
	}
	version := func(id keyspace.TenantID) uint64 {
		v, err := n.FSM().TenantVersion(id)
		require.NoError(t, err)
		return v.Version
	}

	// Tenants.
	limits := keyspace.Limits{MaxBytes: 1 << 20, MaxKeys: 10_000, OpsPerSec: 500, Burst: 1000, MaxConcurrent: 16, MaxWatches: 8, MaxConnections: 32}
	alpha := propose(&CreateTenant{Name: "alpha", Limits: limits, Labels: map[string]string{"env": "prod", "team": "kv"}, CreatedAt: now()}).TenantID
	beta := propose(&CreateTenant{Name: "beta", CreatedAt: now()}).TenantID
	gamma := propose(&CreateTenant{Name: "gamma", Limits: keyspace.Limits{MaxKeys: 4, MaxBytes: 4096}, CreatedAt: now()}).TenantID
	delta := propose(&CreateTenant{Name: "delta", Labels: map[string]string{"doomed": "yes"}, CreatedAt: now()}).TenantID
	refuse(ErrTenantExists, &CreateTenant{Name: "alpha", CreatedAt: now()})

	// Plain writes: set, delete, delete-range, an empty write.
	var ops []Op
	for i := range 40 {
		ops = append(ops, kv(fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d-%x", i, rng.Uint64())))
	}
	propose(write(alpha, "alpha", ops...))
	propose(write(alpha, "alpha", Op{Kind: OpDelete, Key: []byte("k001")}, Op{Kind: OpDelete, Key: []byte("missing")}))
	propose(write(alpha, "alpha", Op{Kind: OpDeleteRange, Key: []byte("k010"), End: []byte("k020")}, kv("k015", "back")))
	propose(write(alpha, "alpha"))
	propose(write(delta, "delta", kv("a", "1"), kv("b", "2"), kv("c", "3")))
	propose(write(delta, "delta", Op{Kind: OpDeleteRange, Key: []byte("b")}))
	propose(write(beta, "beta", kv("x", "1"), kv("y", "2")))
	refuse(ErrTenantNotFound, write(4242, "nobody", kv("x", "1")))
	refuse(ErrTenantNotFound, write(alpha, "not-alpha", kv("x", "1")))
	refuse(ErrQuotaExceeded, write(gamma, "gamma", kv("1", "a"), kv("2", "b"), kv("3", "c"), kv("4", "d"), kv("5", "e")))

	// Tenant updates: states, limits, labels, rename.
	propose(&UpdateTenant{ID: alpha, Labels: map[string]string{"env": "staging"}})
	newLimits := limits
	newLimits.MaxKeys, newLimits.OpsPerSec = 20_000, 750
	propose(&UpdateTenant{ID: alpha, Limits: &newLimits})
	propose(&UpdateTenant{ID: beta, State: ptr(keyspace.StateReadOnly)})
	refuse(ErrTenantReadOnly, write(beta, "beta", kv("x", "2")))
	refuse(ErrTenantReadOnly, &CompareAndSwap{TenantID: beta, TenantName: "beta", Key: []byte("x"), Old: []byte("1"), New: []byte("2"), At: at()})
	propose(&UpdateTenant{ID: beta, State: ptr(keyspace.StateLocked)})
	refuse(ErrTenantLocked, write(beta, "beta", kv("x", "3")))
	refuse(ErrTenantLocked, &TxnCommit{TenantID: beta, TenantName: "beta", ReadVersion: version(beta), Ops: []Op{kv("x", "4")}, At: at()})
	propose(&UpdateTenant{ID: beta, State: ptr(keyspace.StateActive), Labels: map[string]string{}})
	betaNew := "beta-renamed"
	propose(&UpdateTenant{ID: beta, NewName: &betaNew, Labels: map[string]string{"renamed": "true"}})
	refuse(ErrTenantNotFound, write(beta, "beta", kv("x", "5")))
	propose(write(beta, betaNew, kv("x", "5")))
	propose(&UpdateTenant{ID: delta, Labels: map[string]string{}}) // clears the labels
	refuse(ErrTenantNotFound, &UpdateTenant{ID: 4242, State: ptr(keyspace.StateReadOnly)})

	// Tokens.
	hash := func(s string) []byte { return tokenHash(s) }
	propose(&PutToken{Token: TokenRecord{ID: "op-1", Hash: hash("operator secret"), CreatedAt: now()}})
	propose(&PutToken{Token: TokenRecord{ID: "alpha-ro", Hash: hash("alpha ro"), TenantID: alpha, ReadOnly: true, ExpiresAt: clock.Add(24 * time.Hour), CreatedAt: now()}})
	propose(&PutToken{Token: TokenRecord{ID: "alpha-rw", Hash: hash("alpha rw"), TenantID: alpha, CreatedAt: now()}})
	propose(&PutToken{Token: TokenRecord{ID: "alpha-rw", Hash: hash("alpha rw rotated"), TenantID: alpha, CreatedAt: now()}})
	propose(&PutToken{Token: TokenRecord{ID: "delta-1", Hash: hash("delta"), TenantID: delta, CreatedAt: now()}})
	refuse(ErrTenantNotFound, &PutToken{Token: TokenRecord{ID: "ghost", Hash: hash("ghost"), TenantID: 4242, CreatedAt: now()}})
	propose(&DeleteToken{ID: "op-1"})
	refuse(ErrTokenNotFound, &DeleteToken{ID: "op-1"})

	// Members (besides the node's own, published when it became leader).
	propose(&SetMember{NodeID: "rec1", ClientAddr: "127.0.0.1:7101", HTTPAddr: "127.0.0.1:7181"})
	propose(&SetMember{NodeID: "rec2", ClientAddr: "127.0.0.1:7102"})
	propose(&SetMember{NodeID: "rec1", ClientAddr: "127.0.0.1:7111", HTTPAddr: "127.0.0.1:7191"})
	propose(&RemoveMember{NodeID: "rec2"})
	propose(&RemoveMember{NodeID: "never-was"})

	// Transactions: atomic ops, idempotent retry, read-only, conflict,
	// quota.
	rv := version(alpha)
	txn := &TxnCommit{
		TenantID: alpha, TenantName: "alpha", ReadVersion: rv, TxnID: []byte("txn-0001"),
		Reads: []KeyRange{{Start: []byte("k000"), End: []byte("k005")}},
		Ops: []Op{
			kv("k000", "txn"),
			{Kind: OpAdd, Key: []byte("counter"), Value: i64(5)},
			{Kind: OpAdd, Key: []byte("counter"), Value: i64(-2)},
			{Kind: OpMin, Key: []byte("low"), Value: i64(10)},
			{Kind: OpMin, Key: []byte("low"), Value: i64(3)},
			{Kind: OpMax, Key: []byte("high"), Value: i64(-7)},
			{Kind: OpMax, Key: []byte("high"), Value: i64(9)},
			{Kind: OpCompareAndClear, Key: []byte("k002"), Value: []byte("no such value")},
			{Kind: OpCompareAndClear, Key: []byte("k015"), Value: []byte("back")},
			{Kind: OpDelete, Key: []byte("k003")},
			{Kind: OpDeleteRange, Key: []byte("k030"), End: []byte("k035")},
		},
		At: at(),
	}
	first := propose(txn)
	txn.At = at()
	again := propose(txn) // same TxnID: succeeds with the first commit's version
	require.Equal(t, first.Version, again.Version)
	propose(&TxnCommit{TenantID: alpha, TenantName: "alpha", ReadVersion: version(alpha), Reads: []KeyRange{{Start: []byte("k")}}, At: at()})
	rv = version(alpha)
	propose(write(alpha, "alpha", kv("k004", "changed under the txn")))
	refuse(ErrConflict, &TxnCommit{TenantID: alpha, TenantName: "alpha", ReadVersion: rv, Reads: []KeyRange{{Start: []byte("k004"), End: []byte("k005")}}, Ops: []Op{kv("k004", "lost")}, At: at()})
	propose(&TxnCommit{TenantID: alpha, TenantName: "alpha", ReadVersion: rv, Reads: []KeyRange{{Start: []byte("z")}}, Ops: []Op{kv("k006", "no conflict")}, At: at()})
	propose(&TxnCommit{TenantID: gamma, TenantName: "gamma", ReadVersion: version(gamma), Ops: []Op{kv("1", "a"), kv("2", "b"), kv("3", "c")}, At: at()})
	refuse(ErrQuotaExceeded, &TxnCommit{TenantID: gamma, TenantName: "gamma", ReadVersion: version(gamma), Ops: []Op{kv("4", "d"), kv("5", "e")}, At: at()})
	refuse(ErrTenantNotFound, &TxnCommit{TenantID: 4242, TenantName: "nobody", Ops: []Op{kv("a", "b")}, At: at()})

	// Compare-and-swap: swapped and not.
	cas := func(c CompareAndSwap, swapped bool) {
		t.Helper()
		c.TenantID, c.TenantName, c.At = alpha, "alpha", at()
		require.Equal(t, swapped, propose(&c).Swapped, "%+v", c)
	}
	cas(CompareAndSwap{Key: []byte("lock"), OldAbsent: true, New: []byte("owner-1")}, true)
	cas(CompareAndSwap{Key: []byte("lock"), OldAbsent: true, New: []byte("owner-2")}, false)
	cas(CompareAndSwap{Key: []byte("lock"), Old: []byte("owner-2"), New: []byte("owner-3")}, false)
	cas(CompareAndSwap{Key: []byte("lock"), Old: []byte("owner-1"), New: []byte("owner-3")}, true)
	cas(CompareAndSwap{Key: []byte("lock"), Old: []byte("owner-3"), NewAbsent: true}, true)
	require.True(t, propose(&CompareAndSwap{TenantID: gamma, TenantName: "gamma", Key: []byte("9"), OldAbsent: true, New: []byte("x"), At: at()}).Swapped)
	refuse(ErrQuotaExceeded, &CompareAndSwap{TenantID: gamma, TenantName: "gamma", Key: []byte("8"), OldAbsent: true, New: []byte("x"), At: at()})
	propose(&CompareAndSwap{TenantID: gamma, TenantName: "gamma", Key: []byte("1"), Old: []byte("a"), New: []byte("A"), At: at()})

	// No raw entries of unknown types: from the next release on, a node that
	// meets one stops (the cluster format version), so today's binary never
	// writes one and the recording holds only what it writes.

	// Configuration entries: a non-voter joins (at an address where nobody
	// listens) and is removed, which also removes its member metadata.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ghost := ln.Addr().String()
	require.NoError(t, ln.Close())
	{
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		require.NoError(t, n.AddNonvoter(ctx, "rec9", ghost))
		propose(&SetMember{NodeID: "rec9", ClientAddr: "127.0.0.1:7109"})
		require.NoError(t, n.RemoveServer(ctx, "rec9"))
		cancel()
	}

	// A restart: a new term, with the new leader's noop.
	require.NoError(t, n.Shutdown())
	n = start(addr)

	// Concurrent proposals, which the batcher puts into batch entries.
	// The tenants' counters are added to by transactions without reads,
	// so none of them conflicts whatever the order.
	type tn struct {
		id   keyspace.TenantID
		name string
	}
	tenants := []tn{{alpha, "alpha"}, {beta, betaNew}, {delta, "delta"}}
	batchRound := func(round int) {
		var mu sync.Mutex // guards the clock
		tick := func() int64 { mu.Lock(); defer mu.Unlock(); return at() }
		var wg sync.WaitGroup
		for g := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 6 {
					te := tenants[(g+i)%len(tenants)]
					key := fmt.Sprintf("r%d-g%02d-%d", round, g, i)
					var cmd Command
					switch i % 3 {
					case 0:
						cmd = &TenantWrite{TenantID: te.id, TenantName: te.name, Ops: []Op{kv(key, "w"), {Kind: OpDelete, Key: []byte(fmt.Sprintf("r%d-g%02d-%d", round, g, i-3))}}, At: tick()}
					case 1:
						cmd = &TxnCommit{TenantID: te.id, TenantName: te.name, Ops: []Op{kv(key, "t"), {Kind: OpAdd, Key: []byte("counter"), Value: i64(int64(g + 1))}}, At: tick()}
					default:
						cmd = &CompareAndSwap{TenantID: te.id, TenantName: te.name, Key: []byte(key), OldAbsent: true, New: []byte("c"), At: tick()}
					}
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					_, err := n.Propose(ctx, cmd)
					cancel()
					if err != nil {
						t.Errorf("%T: %v", cmd, err)
					}
				}
			}()
		}
		wg.Wait()
	}
	for round := range 3 {
		batchRound(round)
	}

	// Time moves past the history window: writes now prune old history
	// (their own tenant's and, by expiry, the others'), and a transaction
	// reading at a version the pruning passed is refused.
	oldRV := version(alpha) - 3
	clock = clock.Add(3 * time.Duration(HistoryWindow))
	for i := range 12 {
		propose(write(gamma, "gamma", kv("1", fmt.Sprintf("late-%d", i))))
	}
	for i := range 12 {
		propose(write(alpha, "alpha", kv("late", fmt.Sprint(i))))
	}
	refuse(ErrTxTooOld, &TxnCommit{TenantID: alpha, TenantName: "alpha", ReadVersion: oldRV, Reads: []KeyRange{{Start: []byte("k")}}, Ops: []Op{kv("k", "v")}, At: at()})

	// Deletion: the tenant's data, record, name and tokens go.
	propose(&DeleteTenant{ID: delta})
	refuse(ErrTenantNotFound, &DeleteTenant{ID: delta})
	refuse(ErrTenantNotFound, write(delta, "delta", kv("a", "again")))
	refuse(ErrTokenNotFound, &DeleteToken{ID: "delta-1"})
	propose(&CreateTenant{Name: "delta", CreatedAt: now()}) // the name is free again, under a new ID

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	require.NoError(t, n.ReadBarrier(ctx))
	cancel()
	require.NoError(t, n.Shutdown())

	// Read the log from raft.db.
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(raftDir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second, ReadOnly: true},
	})
	require.NoError(t, err)
	firstIdx, err := bolt.FirstIndex()
	require.NoError(t, err)
	lastIdx, err := bolt.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(1), firstIdx, "the log was not truncated")
	var entries []recordedEntry
	for i := firstIdx; i <= lastIdx; i++ {
		var l hraft.Log
		require.NoError(t, bolt.GetLog(i, &l))
		require.Empty(t, l.Extensions, "entry %d has extensions, which the format does not carry", i)
		entries = append(entries, recordedEntry{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: l.Data})
	}
	require.NoError(t, bolt.Close())

	sum, err := st.Checksum()
	require.NoError(t, err)
	applied, err := st.AppliedIndex()
	require.NoError(t, err)
	fe := fsmEntries(entries)
	require.Equal(t, fe[len(fe)-1].Index, applied, "every command was applied")

	counts, comments := recordedCounts(t, entries)
	for _, typ := range []commandType{typeTenantWrite, typeCreateTenant, typeUpdateTenant, typeDeleteTenant, typePutToken, typeDeleteToken,
		typeSetMember, typeRemoveMember, typeNoop, typeTxnCommit, typeCompareAndSwap, typeBatch} {
		require.NotZero(t, counts[typ], "no entry of command type %d", typ)
	}
	for _, c := range comments {
		t.Log(c)
	}

	// The recording must replay to what the node reached, batched either way.
	for _, next := range []func(int) int{func(int) int { return 1 }, func(left int) int { return left }} {
		s, a := replayRecorded(t, t.TempDir(), entries, next)
		require.Equal(t, applied, a)
		require.Equal(t, sum, s, "replay of the recording reaches the node's checksum")
	}

	require.NoError(t, os.MkdirAll(out, 0o755))
	lf, err := os.Create(filepath.Join(out, "recorded.log"))
	require.NoError(t, err)
	require.NoError(t, writeRecordedLog(lf, entries))
	require.NoError(t, lf.Close())
	sf, err := os.Create(filepath.Join(out, "recorded.checksum"))
	require.NoError(t, err)
	require.NoError(t, writeRecordedSummary(sf, recordedSummary{Checksum: sum, Applied: applied, Entries: len(entries)}, comments))
	require.NoError(t, sf.Close())
	t.Logf("wrote %d entries to %s (checksum %016x, applied %d)", len(entries), out, sum, applied)
}

// recordedCounts counts the recording's entries by raft log type and its
// commands by command type (the commands inside batch entries too), and
// describes the counts in lines for recorded.checksum.
func recordedCounts(t *testing.T, entries []recordedEntry) (map[commandType]int, []string) {
	logTypes := map[uint8]int{}
	cmds := map[commandType]int{}
	inBatch := map[commandType]int{}
	batched := 0
	for _, e := range entries {
		logTypes[e.Type]++
		if e.Type != recordedLogCommand || len(e.Data) < 2 {
			continue
		}
		typ := commandType(e.Data[1])
		if e.Data[0] != commandVersion {
			typ = 0 // another envelope version
		}
		cmds[typ]++
		if typ == typeBatch {
			subs, err := decodeBatch(e.Data[2:])
			require.NoError(t, err)
			batched += len(subs)
			for _, s := range subs {
				inBatch[commandType(s[1])]++
			}
		}
	}
	names := map[commandType]string{
		0: "other envelope version", typeTenantWrite: "TenantWrite", typeCreateTenant: "CreateTenant", typeUpdateTenant: "UpdateTenant",
		typeDeleteTenant: "DeleteTenant", typePutToken: "PutToken", typeDeleteToken: "DeleteToken", typeSetMember: "SetMember",
		typeRemoveMember: "RemoveMember", typeNoop: "noop", typeTxnCommit: "TxnCommit", typeCompareAndSwap: "CompareAndSwap", typeBatch: "batch",
	}
	logNames := map[uint8]string{recordedLogCommand: "command", recordedLogNoop: "noop", recordedLogBarrier: "barrier", recordedLogConfiguration: "configuration"}
	var lines []string
	lines = append(lines, "Written by TestRecordLog (raft/recordlog_test.go); counts for people, not read by the replay.")
	lines = append(lines, fmt.Sprintf("entries by raft log type: %s", describeCounts(logTypes, func(k uint8) string { return logNames[k] })))
	lines = append(lines, fmt.Sprintf("command entries by command type: %s", describeCounts(cmds, func(k commandType) string {
		if s, ok := names[k]; ok {
			return s
		}
		return fmt.Sprintf("unknown type %d", k)
	})))
	lines = append(lines, fmt.Sprintf("commands inside the %d batch entries (%d): %s", cmds[typeBatch], batched, describeCounts(inBatch, func(k commandType) string { return names[k] })))
	return cmds, lines
}

func describeCounts[K uint8 | commandType](m map[K]int, name func(K) string) string {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", name(k), m[k])
	}
	return s
}
