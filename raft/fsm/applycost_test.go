package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// applyRig drives an FSM from a test or a benchmark.
type applyRig struct {
	tb   testing.TB
	st   *store.Store
	fsm  *Machine
	next uint64
}

func newApplyRig(tb testing.TB) *applyRig {
	st, err := store.Open(tb.TempDir(), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { st.Close() })
	f, err := New(st, nil, func(err error) { tb.Errorf("FSM failed: %v", err) })
	require.NoError(tb, err)
	return &applyRig{tb: tb, st: st, fsm: f, next: f.AppliedIndex() + 1}
}

// apply applies each group of commands as one batch entry (a group of one
// as a plain entry), all entries in one ApplyBatch, and returns every
// command's result in order.
func (r *applyRig) apply(groups ...[]command.Command) []*Result {
	logs := make([]Entry, 0, len(groups))
	for _, g := range groups {
		var data []byte
		if len(g) == 1 {
			b, err := command.Encode(g[0])
			require.NoError(r.tb, err)
			data = b
		} else {
			var datas [][]byte
			for _, c := range g {
				b, err := command.Encode(c)
				require.NoError(r.tb, err)
				datas = append(datas, b)
			}
			data = command.EncodeBatch(datas)
		}
		logs = append(logs, Entry{Index: r.next, Command: true, Data: data})
		r.next++
	}
	var out []*Result
	for _, o := range r.fsm.ApplyBatch(logs) {
		switch o := o.(type) {
		case *Result:
			out = append(out, o)
		case *BatchResult:
			out = append(out, o.Results...)
		}
	}
	return out
}

func (r *applyRig) createTenant(name string, limits keyspace.Limits) keyspace.TenantID {
	res := r.apply([]command.Command{&command.CreateTenant{Name: name, Limits: limits, CreatedAt: time.Unix(1700000000, 0)}})
	require.NoError(r.tb, res[0].Err)
	return res[0].TenantID
}

// contents returns tenant id's keys and values as the store holds them.
func (r *applyRig) contents(id keyspace.TenantID) map[string]string {
	v, err := r.st.Tenant(id)
	require.NoError(r.tb, err)
	it, err := v.NewIterator(nil, nil, false)
	require.NoError(r.tb, err)
	out := map[string]string{}
	for it.Next() {
		out[string(it.Key())] = string(it.Value())
	}
	require.NoError(r.tb, it.Close())
	return out
}

// model is the obvious, slow semantics of a tenant's ops.
type model map[string]string

func (m model) apply(ops []command.Op) {
	for _, op := range ops {
		k := string(op.Key)
		switch op.Kind {
		case command.OpSet:
			m[k] = string(op.Value)
		case command.OpDelete:
			delete(m, k)
		case command.OpDeleteRange:
			r := command.KeyRange{Start: op.Key, End: op.End}
			for mk := range m {
				if r.Contains([]byte(mk)) {
					delete(m, mk)
				}
			}
		case command.OpAdd, command.OpMin, command.OpMax:
			operand := leInt64(op.Value)
			res := operand
			if cur, ok := m[k]; ok {
				old := leInt64([]byte(cur))
				switch op.Kind {
				case command.OpAdd:
					res = old + operand
				case command.OpMin:
					res = min(old, operand)
				case command.OpMax:
					res = max(old, operand)
				}
			}
			m[k] = string(binary.LittleEndian.AppendUint64(nil, uint64(res)))
		case command.OpCompareAndClear:
			if cur, ok := m[k]; ok && cur == string(op.Value) {
				delete(m, k)
			}
		}
	}
}

func (m model) usage() Usage {
	var u Usage
	for k, v := range m {
		u.Bytes += uint64(len(k) + len(v))
		u.Keys++
	}
	return u
}

func (m model) clone() model {
	c := model{}
	for k, v := range m {
		c[k] = v
	}
	return c
}

// randomOps returns n ops over a small key space, so that sets, deletes,
// delete-ranges and atomic ops overlap often.
func randomOps(rng *rand.Rand, n int, atomic bool) []command.Op {
	key := func() []byte { return fmt.Appendf(nil, "k%02d", rng.IntN(40)) }
	ops := make([]command.Op, 0, n)
	for range n {
		switch c := rng.IntN(10); {
		case c < 4:
			ops = append(ops, command.Op{Kind: command.OpSet, Key: key(), Value: bytes.Repeat([]byte{'v'}, rng.IntN(20))})
		case c < 6:
			ops = append(ops, command.Op{Kind: command.OpDelete, Key: key()})
		case c < 8:
			a, b := key(), key()
			if bytes.Compare(a, b) > 0 {
				a, b = b, a
			}
			switch rng.IntN(8) {
			case 0:
				a = nil
			case 1:
				b = nil
			}
			if len(b) != 0 && bytes.Compare(a, b) >= 0 {
				b = append(bytes.Clone(a), 0)
			}
			ops = append(ops, command.Op{Kind: command.OpDeleteRange, Key: a, End: b})
		default:
			if !atomic {
				ops = append(ops, command.Op{Kind: command.OpSet, Key: key(), Value: []byte("x")})
				continue
			}
			kinds := []command.OpKind{command.OpAdd, command.OpMin, command.OpMax, command.OpCompareAndClear}
			k := kinds[rng.IntN(len(kinds))]
			val := binary.LittleEndian.AppendUint64(nil, uint64(rng.IntN(5)))
			if k == command.OpCompareAndClear && rng.IntN(2) == 0 {
				val = bytes.Repeat([]byte{'v'}, rng.IntN(3))
			}
			ops = append(ops, command.Op{Kind: k, Key: key(), Value: val})
		}
	}
	return ops
}

// TestApplyMatchesModel applies random writes and commits, several per raft
// batch and per batch entry, and compares the tenant's data and its exact
// usage with the obvious model after every batch. Quota refusals must
// leave no trace.
func TestApplyMatchesModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	r := newApplyRig(t)
	id := r.createTenant("m", keyspace.Limits{MaxKeys: 30})
	m := model{}
	for round := range 200 {
		vi, err := r.fsm.TenantVersion(id)
		require.NoError(t, err)
		var groups [][]command.Command
		for range 1 + rng.IntN(3) {
			var g []command.Command
			for range 1 + rng.IntN(3) {
				var cmd command.Command
				if rng.IntN(2) == 0 {
					cmd = &command.TenantWrite{TenantID: id, TenantName: "m", Ops: randomOps(rng, 1+rng.IntN(12), false)}
				} else {
					cmd = &command.TxnCommit{TenantID: id, TenantName: "m", ReadVersion: vi.Version, Ops: randomOps(rng, 1+rng.IntN(12), true)}
				}
				g = append(g, cmd)
			}
			groups = append(groups, g)
		}
		res := r.apply(groups...)
		i := 0
		for _, g := range groups {
			for _, c := range g {
				var ops []command.Op
				switch c := c.(type) {
				case *command.TenantWrite:
					ops = c.Ops
				case *command.TxnCommit:
					ops = c.Ops
				}
				next := m.clone()
				next.apply(ops)
				err := res[i].Err
				if err != nil {
					require.ErrorIs(t, err, ErrQuotaExceeded, "round %d command %d", round, i)
					require.Greater(t, next.usage().Keys, uint64(30), "round %d command %d refused within quota", round, i)
				} else {
					require.LessOrEqual(t, next.usage().Keys, uint64(30), "round %d command %d: quota not enforced", round, i)
					m = next
				}
				i++
			}
		}
		got := r.contents(id)
		require.Equal(t, map[string]string(m), got, "round %d: data", round)
		u, err := r.fsm.Usage(id)
		require.NoError(t, err)
		require.Equal(t, m.usage(), u, "round %d: usage", round)
	}
}

// expensiveOps is the attack of issue 18: n/2 distinct sets and n/2
// delete-ranges covering none of them, interleaved. tag keeps each call's
// keys new.
func expensiveOps(n int, tag int) []command.Op {
	ops := make([]command.Op, 0, n)
	for i := 0; len(ops) < n; i++ {
		k := fmt.Appendf(nil, "a/%06d/%06d/k", tag, i)
		ops = append(ops, command.Op{Kind: command.OpSet, Key: k, Value: []byte{1}})
		ops = append(ops, command.Op{Kind: command.OpDeleteRange, Key: append(bytes.Clone(k), 'x'), End: append(bytes.Clone(k), 'y')})
	}
	return ops
}

// TestApplyReadsAreLinear checks the work of planning a write without
// timing it: the committed store is read once per point key and walked once
// per piece of the union of the delete-ranges, also when an earlier command
// of the same raft batch deleted ranges, and non-covering delete-ranges
// write nothing.
func TestApplyReadsAreLinear(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer st.Close()
	for _, n := range []int{100, 1000, 10000} {
		b := st.NewBatch()
		v, err := b.TenantUnindexed(5)
		require.NoError(t, err)
		d := &tenantData{v: v}
		for round := range 2 {
			ops := netOps(expensiveOps(n, round))
			require.Len(t, ops, n)
			d.reads = 0
			plan, err := planWrite(d, ops)
			require.NoError(t, err)
			// n/2 point reads and n/2 walks (one per disjoint range).
			require.LessOrEqual(t, d.reads, n, "n=%d round %d", n, round)
			require.Empty(t, plan.pieces, "non-covering delete-ranges must write nothing")
			require.Equal(t, int64(n/2), plan.dKeys)
			d.wrote(ops)
		}
		b.Close()
	}
}

// TestSpanSet checks the set of ranges against a brute-force model.
func TestSpanSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	for range 300 {
		var s spanSet
		var added []command.KeyRange
		for range 1 + rng.IntN(12) {
			a, b := []byte{byte('a' + rng.IntN(20))}, []byte{byte('a' + rng.IntN(20))}
			if bytes.Compare(a, b) > 0 {
				a, b = b, a
			}
			if bytes.Equal(a, b) {
				b = append(b, 0)
			}
			if rng.IntN(10) == 0 {
				b = nil
			}
			if rng.IntN(10) == 0 {
				a = nil
			}
			s.add(a, b)
			added = append(added, command.KeyRange{Start: a, End: b})
		}
		covered := func(k []byte) bool {
			for i := range added {
				if added[i].Contains(k) {
					return true
				}
			}
			return false
		}
		for c := byte('a' - 1); c <= 'a'+21; c++ {
			for _, k := range [][]byte{{c}, {c, 0}, {c, 'm'}} {
				require.Equal(t, covered(k), s.covers(k), "key %q in %v", k, added)
			}
		}
		// gaps of [lo, hi) are exactly its uncovered keys.
		lo, hi := []byte{byte('a' + rng.IntN(10))}, []byte{byte('k' + rng.IntN(10))}
		var pieces []command.KeyRange
		require.NoError(t, s.gaps(lo, hi, func(a, b []byte) error {
			pieces = append(pieces, command.KeyRange{Start: a, End: b})
			return nil
		}))
		require.True(t, sort.SliceIsSorted(pieces, func(i, j int) bool { return bytes.Compare(pieces[i].Start, pieces[j].Start) < 0 }))
		for c := byte('a' - 1); c <= 'a'+21; c++ {
			for _, k := range [][]byte{{c}, {c, 0}} {
				in := false
				for i := range pieces {
					in = in || pieces[i].Contains(k)
				}
				want := bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 && !covered(k)
				require.Equal(t, want, in, "key %q, gaps %v of [%q,%q) in %v", k, pieces, lo, hi, added)
			}
		}
	}
}

// processCPU returns the process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkApplyExpensiveWrite applies one write of n mutations (n/2
// distinct sets, n/2 delete-ranges covering none of them) per op, as a
// TenantWrite and as a TxnCommit, and two of them in one batch entry. Linear
// apply shows as ns/op growing ~10x from n=1k to n=10k (quadratic: ~100x).
func BenchmarkApplyExpensiveWrite(b *testing.B) {
	for _, kind := range []string{"write", "commit", "two-in-one-entry"} {
		for _, n := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/n=%d", kind, n), func(b *testing.B) {
				r := newApplyRig(b)
				id := r.createTenant("bench", keyspace.Limits{})
				tag := 0
				mk := func() command.Command {
					tag++
					if kind == "commit" {
						vi, err := r.fsm.TenantVersion(id)
						require.NoError(b, err)
						return &command.TxnCommit{TenantID: id, TenantName: "bench", ReadVersion: vi.Version, Ops: expensiveOps(n, tag)}
					}
					return &command.TenantWrite{TenantID: id, TenantName: "bench", Ops: expensiveOps(n, tag)}
				}
				cpu0 := processCPU()
				for b.Loop() {
					g := []command.Command{mk()}
					if kind == "two-in-one-entry" {
						g = append(g, mk())
					}
					for _, res := range r.apply(g) {
						if res.Err != nil {
							b.Fatal(res.Err)
						}
					}
				}
				// CPU time (process, user+system) per op: less sensitive
				// than ns/op to other work on a shared machine.
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// netOpsPairwise is the former quadratic netOps, the reference for
// TestNetOpsMatchesPairwise.
func netOpsPairwise(ops []command.Op) []command.Op {
	var out []command.Op
	for i := range ops {
		op := &ops[i]
		keep := true
		if op.Kind != command.OpDeleteRange {
			for j := i + 1; j < len(ops) && keep; j++ {
				later := &ops[j]
				switch later.Kind {
				case command.OpDeleteRange:
					r := command.KeyRange{Start: later.Key, End: later.End}
					keep = !r.Contains(op.Key)
				default:
					keep = !bytes.Equal(later.Key, op.Key)
				}
			}
		}
		if keep {
			out = append(out, *op)
		}
	}
	return out
}

func TestNetOpsMatchesPairwise(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	for range 2000 {
		ops := randomOps(rng, rng.IntN(30), false)
		got, want := netOps(ops), netOpsPairwise(ops)
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		require.Equal(t, want, got, "ops %v", ops)
	}
}

// TestOversizedWritesRefusedBeforeRaft: this release's limits
// (MaxMutations, TxnOverhead) refuse a write when it is proposed, while the
// state machine applies what earlier releases accepted and acknowledged
// (their entries are still in the log after an upgrade), refusing only a
// commit over MaxTxnBytes at their 16 bytes a mutation.
func TestOversizedWritesRefusedBeforeRaft(t *testing.T) {
	r := newApplyRig(t)
	id := r.createTenant("big", keyspace.Limits{})
	many := make([]command.Op, command.MaxMutations+1)
	for i := range many {
		many[i] = command.Op{Kind: command.OpDelete, Key: fmt.Appendf(nil, "k%d", i)}
	}
	err := command.CheckProposedSize(&command.TenantWrite{TenantID: id, TenantName: "big", Ops: many})
	require.ErrorIs(t, err, command.ErrTxTooLarge)
	require.ErrorContains(t, err, "mutations")
	require.ErrorIs(t, command.CheckProposedSize(&command.TxnCommit{TenantID: id, TenantName: "big", Ops: many}), command.ErrTxTooLarge)
	require.NoError(t, command.CheckProposedSize(&command.TenantWrite{TenantID: id, TenantName: "big", Ops: many[:command.MaxMutations]}))
	// The overhead counts: these ops hold 10,255,000 bytes, under 10 MiB,
	// and 10,580,000 with 64 bytes each, over it.
	val := make([]byte, 2050)
	big := make([]command.Op, command.MaxMutations)
	for i := range big {
		big[i] = command.Op{Kind: command.OpSet, Key: []byte{'k'}, Value: val}
	}
	require.ErrorIs(t, command.CheckWriteSize(big, 0), command.ErrTxTooLarge)
	require.NoError(t, command.CheckWriteSize(big[:command.MaxMutations-200], 0))

	// Entries an earlier release proposed apply: more than MaxMutations,
	// and a commit within 10 MiB at 16 bytes a mutation.
	huge := make([]command.Op, 100_000)
	for i := range huge {
		huge[i] = command.Op{Kind: command.OpDelete, Key: fmt.Appendf(nil, "k%d", i)}
	}
	tooBig := make([]command.Op, 120) // 10.8 MB of values
	for i := range tooBig {
		tooBig[i] = command.Op{Kind: command.OpSet, Key: fmt.Appendf(nil, "v%d", i), Value: make([]byte, 90_000)}
	}
	res := r.apply(
		[]command.Command{&command.TenantWrite{TenantID: id, TenantName: "big", Ops: many}},
		[]command.Command{&command.TxnCommit{TenantID: id, TenantName: "big", Ops: huge}},
		[]command.Command{&command.TxnCommit{TenantID: id, TenantName: "big", Ops: tooBig}},
	)
	require.NoError(t, res[0].Err, "a TenantWrite an earlier release accepted")
	require.NoError(t, res[1].Err, "a commit within 10 MiB at 16 bytes a mutation")
	require.ErrorIs(t, res[2].Err, command.ErrTxTooLarge, "a commit over 10 MiB")
	vi, err := r.fsm.TenantVersion(id)
	require.NoError(t, err)
	require.Equal(t, uint64(2), vi.Version, "the two writes within the earlier limits took effect")
}
