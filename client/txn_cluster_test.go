package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/client"
)

// The acceptance tests of transactions and watches: a 3-node cluster of
// real servers over TCP, with the leader killed (Close) and restarted while
// clients work.

// chaos kills the leader and restarts it, rounds times, every pause, until
// ctx ends. It returns when done.
func (c *txCluster) chaos(ctx context.Context, rounds int, pause time.Duration) {
	for range rounds {
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		l := c.leader(ctx)
		c.t.Logf("killing leader n%d", l)
		c.kill(l)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		c.restart(l)
	}
}

func decode(v []byte) int64 { return int64(binary.LittleEndian.Uint64(v)) }

// TestBankTransfers moves money between accounts with many concurrent
// clients while the leader is killed and restarted. Every transfer writes
// a marker key naming itself in the same transaction. At the end the total
// is unchanged, every acknowledged transfer's marker exists and no refused
// one's does, and the balances are exactly what the markers say: each
// committed transfer took effect once.
func TestBankTransfers(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 3)
	db := c.tenant(ctx, "bank", nil)
	bank := db.Tenant("")
	const accounts, initial = 8, 1000
	account := func(i int) []byte { return fmt.Appendf(nil, "acct/%d", i) }
	require.NoError(t, bank.Update(ctx, func(tx *client.Tx) error {
		for i := range accounts {
			tx.Set(account(i), le64(initial))
		}
		return nil
	}))

	type outcome struct {
		id      string
		from    int
		to      int
		amount  int64
		applied bool // acknowledged
		unknown bool
	}
	var mu sync.Mutex
	var outcomes []outcome
	var retries atomic.Int64
	work, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for n := 0; work.Err() == nil; n++ {
				o := outcome{id: fmt.Sprintf("w%d-%d", w, n), from: r.IntN(accounts), amount: 1 + r.Int64N(50)}
				o.to = (o.from + 1 + r.IntN(accounts-1)) % accounts
				attempts := 0
				tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err := bank.Update(tctx, func(tx *client.Tx) error {
					attempts++
					fv, err := tx.Get(tctx, account(o.from))
					if err != nil {
						return err
					}
					tv, err := tx.Get(tctx, account(o.to))
					if err != nil {
						return err
					}
					tx.Set(account(o.from), le64(decode(fv)-o.amount))
					tx.Set(account(o.to), le64(decode(tv)+o.amount))
					tx.Set([]byte("xfer/"+o.id), fmt.Appendf(nil, "%d %d %d", o.from, o.to, o.amount))
					return nil
				})
				cancel()
				retries.Add(int64(attempts - 1))
				switch {
				case err == nil:
					o.applied = true
				case errors.Is(err, client.ErrCommitUnknown):
					o.unknown = true
				default:
					// The commit definitely did not happen (or the
					// reads failed while no leader was reachable).
					t.Logf("transfer %s failed: %v", o.id, err)
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		}()
	}
	c.chaos(ctx, 2, 1500*time.Millisecond)
	time.Sleep(time.Second)
	stop()
	wg.Wait()

	// Read the final state in one validated transaction.
	balances := make([]int64, accounts)
	markers := map[string]string{}
	require.NoError(t, bank.Update(ctx, func(tx *client.Tx) error {
		clear(markers)
		for i := range accounts {
			v, err := tx.Get(ctx, account(i))
			if err != nil {
				return err
			}
			balances[i] = decode(v)
		}
		for kv, err := range tx.Range(ctx, client.Prefix([]byte("xfer/")), nil) {
			if err != nil {
				return err
			}
			markers[strings.TrimPrefix(string(kv.Key), "xfer/")] = string(kv.Value)
		}
		return nil
	}))
	var total int64
	for _, b := range balances {
		total += b
	}
	require.Equal(t, int64(accounts*initial), total, "money was created or destroyed")

	expect := make([]int64, accounts)
	for i := range expect {
		expect[i] = initial
	}
	acked, unknown, failed := 0, 0, 0
	for _, o := range outcomes {
		m, ok := markers[o.id]
		switch {
		case o.applied:
			acked++
			require.True(t, ok, "acknowledged transfer %s has no marker", o.id)
		case o.unknown:
			unknown++
		default:
			failed++
			require.False(t, ok, "failed transfer %s has a marker", o.id)
		}
		if ok {
			require.Equal(t, fmt.Sprintf("%d %d %d", o.from, o.to, o.amount), m)
			expect[o.from] -= o.amount
			expect[o.to] += o.amount
			delete(markers, o.id)
		}
	}
	require.Empty(t, markers, "markers of transfers nobody made")
	require.Equal(t, expect, balances, "balances differ from the committed transfers")
	t.Logf("%d transfers acknowledged, %d unknown, %d failed, %d conflict retries", acked, unknown, failed, retries.Load())
	require.Greater(t, acked, 50)
}

// serOp is one transaction of the serializability check: it read some
// counters (reads: key -> value seen) and, unless readOnly, set one key.
type serOp struct {
	reads    map[int]int64
	write    int
	value    int64
	readOnly bool
}

type serOut struct{ unknown bool }

// serState is the model's state: the counters.
type serState [3]int64

// serModel treats the whole tenant as one object and each committed
// transaction as one operation on it: a history is linearizable under this
// model exactly when the transactions are strictly serializable (a serial
// order consistent with real time, in which every read saw the state
// left by the transactions before it). An operation whose commit outcome
// is unknown may or may not have happened.
var serModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{serState{}} },
	Step: func(state, input, output any) []any {
		s, op, out := state.(serState), input.(serOp), output.(serOut)
		for k, v := range op.reads {
			if s[k] != v {
				if out.unknown {
					return []any{s} // it cannot have happened here; maybe never
				}
				return nil
			}
		}
		next := s
		if !op.readOnly {
			next[op.write] = op.value
		}
		if out.unknown {
			return []any{s, next}
		}
		return []any{next}
	},
	Equal: func(a, b any) bool { return a.(serState) == b.(serState) },
	DescribeOperation: func(input, output any) string {
		op := input.(serOp)
		return fmt.Sprintf("read %v write %d=%d ro=%v unknown=%v", op.reads, op.write, op.value, op.readOnly, output.(serOut).unknown)
	},
}

// TestTxnStrictSerializability runs concurrent read-modify-write and
// read-only transactions over three counters while the leader is killed,
// and checks the history with porcupine against serModel.
//
// What it proves, and no more: for the histories this workload produced
// (including the faults it injected), there is a serial order of the
// committed transactions, consistent with real time, that explains every
// value every transaction read. It would catch a lost update, a write
// skew, a stale or torn read that a committed transaction acted on, or a
// commit applied twice. Transactions that failed definitely are left out
// (they had no effect); those with an unknown outcome are allowed either
// way.
func TestTxnStrictSerializability(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 3)
	tn := c.tenant(ctx, "ser", nil).Tenant("")
	key := func(i int) []byte { return fmt.Appendf(nil, "c%d", i) }
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		for i := range 3 {
			tx.Set(key(i), le64(0))
		}
		return nil
	}))
	start := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	work, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < 40 && work.Err() == nil; i++ {
				var op serOp
				readOnly := r.IntN(4) == 0
				call := time.Since(start).Nanoseconds()
				tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err := tn.Update(tctx, func(tx *client.Tx) error {
					op = serOp{reads: map[int]int64{}, readOnly: readOnly}
					a, b := r.IntN(3), r.IntN(3)
					for _, k := range []int{a, b} {
						v, err := tx.Get(tctx, key(k))
						if err != nil {
							return err
						}
						op.reads[k] = decode(v)
					}
					if !readOnly {
						// Not commutative: the result depends on what was read.
						op.write = r.IntN(3)
						op.value = op.reads[a]*2 + op.reads[b] + 1
						tx.Set(key(op.write), le64(op.value))
					}
					return nil
				})
				cancel()
				ret := time.Since(start).Nanoseconds()
				out := serOut{}
				switch {
				case err == nil:
				case errors.Is(err, client.ErrCommitUnknown):
					out.unknown = true
					ret = int64(1) << 62 // it may take effect any time later
				default:
					continue // definitely no effect
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: w, Input: op, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		}()
	}
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		c.chaos(work, 2, time.Second)
	}()
	wg.Wait()
	stop()
	<-chaosDone

	// The final state is a last read-only operation.
	final := serOp{reads: map[int]int64{}, readOnly: true}
	call := time.Since(start).Nanoseconds()
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		for k := range 3 {
			v, err := tx.Get(ctx, key(k))
			if err != nil {
				return err
			}
			final.reads[k] = decode(v)
		}
		return nil
	}))
	history = append(history, porcupine.Operation{ClientId: 4, Input: final, Call: call, Output: serOut{}, Return: time.Since(start).Nanoseconds()})

	res, info := porcupine.CheckOperationsVerbose(serModel.ToModel(), history, time.Minute)
	if res != porcupine.Ok {
		_ = info
		for _, op := range history {
			t.Logf("client %d [%d, %d] %s", op.ClientId, op.Call, op.Return, serModel.DescribeOperation(op.Input, op.Output))
		}
	}
	require.Equal(t, porcupine.Ok, res, "history of %d transactions is not strictly serializable", len(history))
	t.Logf("%d transactions checked; final %v", len(history), final.reads)
	require.Greater(t, len(history), 60)
}

// TestWatchAcrossFailures watches a prefix while a writer commits
// numbered keys, the leader is killed and restarted, and the watcher's
// client is closed and a new one resumes from the last version it saw.
// Every committed write arrives exactly once, in version order.
func TestWatchAcrossFailures(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 3)
	db := c.tenant(ctx, "watched", nil)
	tn := db.Tenant("")
	from, err := tn.ReadVersion(ctx)
	require.NoError(t, err)
	// The watcher gets a token of its own, and a DB it can close.
	admin := c.open(ctx, c.token)
	defer admin.Close()
	tok, err := admin.NewTenantToken(ctx, "watched")
	require.NoError(t, err)

	const writes = 60
	type seen struct {
		key     string
		version uint64
	}
	var mu sync.Mutex
	var got []seen
	watchDone := make(chan error, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	reconnect := make(chan struct{})
	go func() {
		last := from
		for round := 0; ; round++ {
			wdb := c.open(wctx, tok)
			rctx, cancel := context.WithCancel(wctx)
			for ev, err := range wdb.Tenant("").Watch(rctx, client.WatchOptions{Range: client.Prefix([]byte("w/")), FromVersion: last, PollWait: time.Second}) {
				if err != nil {
					if wctx.Err() == nil && rctx.Err() == nil {
						watchDone <- err
						cancel()
						wdb.Close()
						return
					}
					break
				}
				mu.Lock()
				got = append(got, seen{string(ev.Key), ev.Version})
				mu.Unlock()
				last = ev.Version
				select {
				case <-reconnect:
					// Drop the client mid-stream: a new one resumes
					// after the last version delivered.
					cancel()
				default:
				}
			}
			cancel()
			wdb.Close()
			if wctx.Err() != nil {
				watchDone <- nil
				return
			}
		}
	}()

	committed := map[string]bool{}
	unknown := map[string]bool{}
	for i := range writes {
		k := fmt.Sprintf("w/%03d", i)
		switch i {
		case 20:
			l := c.leader(ctx)
			c.kill(l)
			defer c.restart(l)
		case 30:
			close(reconnect)
		}
		wctx2, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := tn.Update(wctx2, func(tx *client.Tx) error {
			tx.Set([]byte(k), []byte("v"))
			return nil
		})
		cancel()
		switch {
		case err == nil:
			committed[k] = true
		case errors.Is(err, client.ErrCommitUnknown):
			unknown[k] = true
		default:
			t.Logf("write %s failed: %v", k, err)
		}
	}
	// Unknown outcomes are settled by reading.
	for k := range unknown {
		if _, err := tn.Get(ctx, []byte(k)); err == nil {
			committed[k] = true
		}
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(committed)
	}, 30*time.Second, 10*time.Millisecond, "watch fell behind")
	time.Sleep(500 * time.Millisecond) // room for duplicates to show up
	stopWatch()
	require.NoError(t, <-watchDone)

	mu.Lock()
	defer mu.Unlock()
	keys := map[string]bool{}
	for i, s := range got {
		require.False(t, keys[s.key], "event for %s delivered twice", s.key)
		keys[s.key] = true
		if i > 0 {
			require.Greater(t, s.version, got[i-1].version, "events out of order")
		}
	}
	require.Equal(t, committed, keys, "events differ from the committed writes")
	t.Logf("%d writes committed, %d events, %d unknown outcomes", len(committed), len(got), len(unknown))
}
