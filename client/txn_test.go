package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
)

func txCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func le64(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

func pairs(t *testing.T, seq func(func(client.KV, error) bool)) []string {
	t.Helper()
	var out []string
	for kv, err := range seq {
		require.NoError(t, err)
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return out
}

func TestTxnBasics(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 1)
	tn := c.tenant(ctx, "acme", nil).Tenant("")

	var tx1 *client.Tx
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		tx1 = tx
		_, err := tx.Get(ctx, []byte("k"))
		require.ErrorIs(t, err, client.ErrNotFound)
		tx.Set([]byte("k"), []byte("v"))
		tx.Set([]byte("empty"), nil)
		v, err := tx.Get(ctx, []byte("k"))
		require.NoError(t, err)
		require.Equal(t, "v", string(v), "read your writes")
		v, err = tx.Get(ctx, []byte("empty"))
		require.NoError(t, err)
		require.Empty(t, v)
		return nil
	}))
	committed := tx1.CommittedVersion()
	require.Positive(t, committed)
	_, err := tx1.Get(ctx, []byte("k"))
	require.ErrorIs(t, err, client.ErrTxDone)

	v, ver, err := tn.GetVersioned(ctx, []byte("k"))
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	require.Equal(t, committed, ver)
	rv, err := tn.ReadVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, committed, rv)
	require.NoError(t, tn.Set(ctx, []byte("plain"), []byte("x")))
	_, ver, err = tn.GetVersioned(ctx, []byte("plain"))
	require.NoError(t, err)
	require.Equal(t, committed+1, ver, "plain writes get versions too")

	// An error from fn commits nothing.
	boom := errors.New("boom")
	require.ErrorIs(t, tn.Update(ctx, func(tx *client.Tx) error {
		tx.Set([]byte("never"), []byte("x"))
		return boom
	}), boom)
	_, err = tn.Get(ctx, []byte("never"))
	require.ErrorIs(t, err, client.ErrNotFound)

	// Invalid writes fail the commit, not the call.
	require.ErrorIs(t, tn.Update(ctx, func(tx *client.Tx) error {
		tx.Set(nil, []byte("x"))
		return nil
	}), client.ErrInvalidKey)
	require.ErrorIs(t, tn.Update(ctx, func(tx *client.Tx) error {
		big := make([]byte, client.MaxValueSize)
		for i := range client.MaxTxnBytes/client.MaxValueSize + 1 {
			tx.Set(fmt.Appendf(nil, "big%d", i), big)
		}
		return nil
	}), client.ErrTxTooLarge)

	// A View reads and refuses writes.
	require.NoError(t, tn.View(ctx, func(tx *client.Tx) error {
		v, err := tx.Get(ctx, []byte("k"))
		require.NoError(t, err)
		require.Equal(t, "v", string(v))
		return nil
	}))
	require.ErrorIs(t, tn.View(ctx, func(tx *client.Tx) error {
		tx.Set([]byte("k"), []byte("w"))
		return nil
	}), client.ErrInvalidArgument)

	// A panic commits nothing and goes on up.
	require.Panics(t, func() {
		_ = tn.Update(ctx, func(tx *client.Tx) error {
			tx.Set([]byte("panic"), []byte("x"))
			panic("oops")
		})
	})
	_, err = tn.Get(ctx, []byte("panic"))
	require.ErrorIs(t, err, client.ErrNotFound)
}

func TestTxnConflictRetries(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 1)
	tn := c.tenant(ctx, "acme", nil).Tenant("")
	require.NoError(t, tn.Set(ctx, []byte("ctr"), []byte("0")))

	// The first attempt reads ctr, then another client changes it before
	// the commit: the commit conflicts and Update runs fn again.
	attempts := 0
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		attempts++
		v, err := tx.Get(ctx, []byte("ctr"))
		if err != nil {
			return err
		}
		if attempts == 1 {
			require.NoError(t, tn.Set(ctx, []byte("ctr"), []byte("10")))
		}
		tx.Set([]byte("ctr"), append(v, '+'))
		return nil
	}))
	require.Equal(t, 2, attempts)
	v, err := tn.Get(ctx, []byte("ctr"))
	require.NoError(t, err)
	require.Equal(t, "10+", string(v))

	// Snapshot reads record no conflict: the same interference commits.
	attempts = 0
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		attempts++
		if _, err := tx.Snapshot().Get(ctx, []byte("ctr")); err != nil {
			return err
		}
		if attempts == 1 {
			require.NoError(t, tn.Set(ctx, []byte("ctr"), []byte("20")))
		}
		tx.Set([]byte("other"), []byte("x"))
		return nil
	}))
	require.Equal(t, 1, attempts)

	// A transaction without writes validates its reads at commit.
	attempts = 0
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		attempts++
		if _, err := tx.Get(ctx, []byte("ctr")); err != nil {
			return err
		}
		if attempts == 1 {
			require.NoError(t, tn.Set(ctx, []byte("ctr"), []byte("30")))
		}
		return nil
	}))
	require.Equal(t, 2, attempts)

	// Concurrent read-modify-write increments: none is lost.
	require.NoError(t, tn.Set(ctx, []byte("n"), le64(0)))
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				first := true
				err := tn.Update(ctx, func(tx *client.Tx) error {
					if !first {
						conflicts.Add(1)
					}
					first = false
					v, err := tx.Get(ctx, []byte("n"))
					if err != nil {
						return err
					}
					tx.Set([]byte("n"), le64(int64(binary.LittleEndian.Uint64(v))+1))
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	v, err = tn.Get(ctx, []byte("n"))
	require.NoError(t, err)
	require.Equal(t, le64(80), v)
	t.Logf("80 contended increments, %d retries", conflicts.Load())
}

func TestTxnAtomicOps(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 1)
	tn := c.tenant(ctx, "acme", nil).Tenant("")
	require.NoError(t, tn.Set(ctx, []byte("short"), []byte{5}))
	require.NoError(t, tn.Set(ctx, []byte("cac"), []byte("x")))

	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		tx.Add([]byte("short"), 2)
		tx.Add([]byte("new"), -3)
		tx.Min([]byte("min"), 9)
		tx.Min([]byte("min"), 4)
		tx.Max([]byte("max"), -1)
		tx.CompareAndClear([]byte("cac"), []byte("y"))
		// Read your atomic writes: the stored value is read (a conflict
		// on that key) and the pending operations applied to it.
		v, err := tx.Get(ctx, []byte("short"))
		if err != nil {
			return err
		}
		require.Equal(t, le64(7), v)
		v, err = tx.Get(ctx, []byte("min"))
		require.NoError(t, err)
		require.Equal(t, le64(4), v)
		tx.Add([]byte("short"), 1)
		v, err = tx.Get(ctx, []byte("short"))
		require.NoError(t, err)
		require.Equal(t, le64(8), v)
		return nil
	}))
	for k, want := range map[string][]byte{"short": le64(8), "new": le64(-3), "min": le64(4), "max": le64(-1), "cac": []byte("x")} {
		v, err := tn.Get(ctx, []byte(k))
		require.NoError(t, err, k)
		require.Equal(t, want, v, k)
	}
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		tx.CompareAndClear([]byte("cac"), []byte("x"))
		_, err := tx.Get(ctx, []byte("cac"))
		require.ErrorIs(t, err, client.ErrNotFound)
		return nil
	}))
	_, err := tn.Get(ctx, []byte("cac"))
	require.ErrorIs(t, err, client.ErrNotFound)

	// Blind atomic adds from many clients never conflict.
	var wg sync.WaitGroup
	var retries atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				first := true
				require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
					if !first {
						retries.Add(1)
					}
					first = false
					tx.Add([]byte("hits"), 1)
					return nil
				}))
			}
		}()
	}
	wg.Wait()
	v, err := tn.Get(ctx, []byte("hits"))
	require.NoError(t, err)
	require.Equal(t, le64(80), v)
	require.Zero(t, retries.Load())

	// CompareAndSwap.
	ok, err := tn.CompareAndSwap(ctx, []byte("cas"), nil, []byte("a"))
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = tn.CompareAndSwap(ctx, []byte("cas"), nil, []byte("b"))
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = tn.CompareAndSwap(ctx, []byte("cas"), []byte("a"), []byte("b"))
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = tn.CompareAndSwap(ctx, []byte("cas"), []byte("b"), nil)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = tn.Get(ctx, []byte("cas"))
	require.ErrorIs(t, err, client.ErrNotFound)
}

func TestTxnRangeReadYourWrites(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 1)
	db := c.tenant(ctx, "acme", nil)
	tn := db.Tenant("")
	for _, k := range []string{"a", "b", "c", "d1", "d2", "e", "f"} {
		require.NoError(t, tn.Set(ctx, []byte(k), []byte(k)))
	}
	all := client.KeyRange{}
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		tx.Set([]byte("b"), []byte("B"))
		tx.Delete([]byte("c"))
		tx.DeleteRange(client.KeyRange{Begin: []byte("d"), End: []byte("e")})
		tx.Set([]byte("d3"), []byte("D3"))
		tx.Set([]byte("aa"), []byte("AA"))
		tx.Add([]byte("e"), 1) // stored "e" is 1 byte: 'e' = 101
		tx.Add([]byte("g"), 2) // not stored: counts from 0
		want := []string{"a=a", "aa=AA", "b=B", "d3=D3", "e=" + string(le64(102)), "f=f", "g=" + string(le64(2))}
		require.Equal(t, want, pairs(t, tx.Range(ctx, all, nil)))
		rev := pairs(t, tx.Range(ctx, all, &client.RangeOptions{Reverse: true}))
		for i := range want {
			require.Equal(t, want[len(want)-1-i], rev[i])
		}
		require.Equal(t, want[1:4], pairs(t, tx.Range(ctx, client.KeyRange{Begin: []byte("aa"), End: []byte("e")}, nil)))
		require.Equal(t, want[:2], pairs(t, tx.Range(ctx, all, &client.RangeOptions{Limit: 2})))
		require.Equal(t, want[:5], pairs(t, tx.Range(ctx, all, &client.RangeOptions{PageSize: 1, Limit: 5})))
		require.Equal(t, []string{"g=" + string(le64(2)), "f=f"}, pairs(t, tx.Range(ctx, all, &client.RangeOptions{Reverse: true, Limit: 2})))
		require.Equal(t, []string{"d3=D3"}, pairs(t, tx.Snapshot().Range(ctx, client.Prefix([]byte("d")), nil)))
		return nil
	}))
	require.Equal(t, []string{"a=a", "aa=AA", "b=B", "d3=D3", "e=" + string(le64(102)), "f=f", "g=" + string(le64(2))}, pairs(t, tn.Range(ctx, all, nil)))

	// The conflict range of a limited Range ends at the last pair seen.
	try := func(interfere string, wantAttempts int) {
		t.Helper()
		attempts := 0
		require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
			attempts++
			for _, err := range tx.Range(ctx, client.KeyRange{Begin: []byte("a"), End: []byte("z")}, &client.RangeOptions{Limit: 2}) {
				if err != nil {
					return err
				}
			}
			if attempts == 1 {
				require.NoError(t, tn.Set(ctx, []byte(interfere), []byte("x")))
			}
			tx.Set([]byte("out"), []byte("x"))
			return nil
		}))
		require.Equal(t, wantAttempts, attempts, "write to %q", interfere)
	}
	// The range holds a, aa, b, ...: Limit 2 reads a and aa.
	try("zz", 1)    // outside the range
	try("y", 1)     // in the range, after the two pairs read
	try("a\x00", 2) // between them (and now the second pair)
	try("a\x00", 2) // one of them
	try("aa", 1)    // now the third
}

func TestTxnReadOnlyTokenAndTenantState(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 1)
	admin := c.open(ctx, c.token)
	defer admin.Close()
	tn := c.tenant(ctx, "acme", nil).Tenant("")
	require.NoError(t, tn.Set(ctx, []byte("k"), []byte("v")))
	_, err := admin.UpdateTenant(ctx, "acme", &client.TenantUpdate{State: client.StateReadOnly})
	require.NoError(t, err)
	// Read-only transactions still work; writes are refused.
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		_, err := tx.Get(ctx, []byte("k"))
		return err
	}))
	require.ErrorIs(t, tn.Update(ctx, func(tx *client.Tx) error {
		tx.Set([]byte("k"), []byte("w"))
		return nil
	}), client.ErrTenantReadOnly)
	_, err = tn.CompareAndSwap(ctx, []byte("k"), []byte("v"), []byte("w"))
	require.ErrorIs(t, err, client.ErrTenantReadOnly)
}

func TestWatchBasics(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 1)
	admin := c.open(ctx, c.token)
	defer admin.Close()
	tn := c.tenant(ctx, "acme", &client.TenantConfig{MaxWatches: 2}).Tenant("")
	require.NoError(t, tn.Set(ctx, []byte("p/0"), []byte("before")))
	from, err := tn.ReadVersion(ctx)
	require.NoError(t, err)

	type got struct {
		ev  client.WatchEvent
		err error
	}
	events := make(chan got, 100)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for ev, err := range tn.Watch(wctx, client.WatchOptions{Range: client.Prefix([]byte("p/")), FromVersion: from, PollWait: 200 * time.Millisecond}) {
			events <- got{ev, err}
			if err != nil {
				return
			}
		}
	}()
	require.NoError(t, tn.Set(ctx, []byte("q/1"), []byte("not watched")))
	require.NoError(t, tn.Set(ctx, []byte("p/1"), []byte("one")))
	require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
		tx.Set([]byte("p/2"), []byte("two"))
		tx.Delete([]byte("p/0"))
		tx.Set([]byte("q/2"), []byte("not watched"))
		return nil
	}))
	time.Sleep(300 * time.Millisecond) // an empty poll in between
	require.NoError(t, tn.DeleteRange(ctx, client.KeyRange{Begin: []byte("a"), End: []byte("z")}))
	next := func() client.WatchEvent {
		t.Helper()
		select {
		case g := <-events:
			require.NoError(t, g.err)
			return g.ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return client.WatchEvent{}
	}
	e1, e2, e3, e4 := next(), next(), next(), next()
	require.Equal(t, client.WatchSet, e1.Kind)
	require.Equal(t, "p/1", string(e1.Key))
	require.Equal(t, "one", string(e1.Value))
	require.Equal(t, from+2, e1.Version)
	require.Equal(t, "p/2", string(e2.Key))
	require.Equal(t, client.WatchDelete, e3.Kind)
	require.Equal(t, "p/0", string(e3.Key))
	require.Equal(t, e2.Version, e3.Version, "one transaction, one version")
	require.Equal(t, client.WatchDeleteRange, e4.Kind)
	require.Equal(t, "p/", string(e4.Key), "clipped to the watched range")
	require.Equal(t, "p0", string(e4.End))

	// Two watches fill MaxWatches; a third waiting one is refused.
	now, err := tn.ReadVersion(ctx)
	require.NoError(t, err)
	w2ctx, stop2 := context.WithCancel(ctx)
	defer stop2()
	w2 := make(chan error, 1)
	go func() {
		for _, err := range tn.Watch(w2ctx, client.WatchOptions{Key: []byte("x"), FromVersion: now, PollWait: 10 * time.Second}) {
			w2 <- err
			return
		}
	}()
	require.Eventually(t, func() bool {
		// A watch that gets a slot waits quietly until its context ends.
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		for _, err := range tn.Watch(ctx, client.WatchOptions{Key: []byte("y"), FromVersion: now, PollWait: 10 * time.Millisecond}) {
			return errors.Is(err, client.ErrRateLimited)
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
	stop2()

	// Locking the tenant ends the first watch.
	_, err = admin.UpdateTenant(ctx, "acme", &client.TenantUpdate{State: client.StateLocked})
	require.NoError(t, err)
	select {
	case g := <-events:
		require.ErrorIs(t, g.err, client.ErrTenantLocked)
	case <-ctx.Done():
		t.Fatal("watch did not end")
	}
	_, err = admin.UpdateTenant(ctx, "acme", &client.TenantUpdate{State: client.StateActive})
	require.NoError(t, err)

	// A deleted tenant ends a watch too.
	done := make(chan error, 1)
	go func() {
		for _, err := range tn.Watch(ctx, client.WatchOptions{Key: []byte("k"), FromVersion: from, PollWait: 10 * time.Second}) {
			if err != nil {
				done <- err
				return
			}
		}
	}()
	require.NoError(t, admin.DeleteTenant(ctx, "acme"))
	select {
	case err := <-done:
		// A tenant token of a deleted tenant no longer authenticates
		// anything: either answer ends the watch.
		require.True(t, errors.Is(err, client.ErrTenantNotFound) || errors.Is(err, client.ErrPermissionDenied), "%v", err)
	case <-ctx.Done():
		t.Fatal("watch did not end")
	}

	// A version the tenant never reached is refused. (A version older than
	// the history, ErrWatchTooOld, needs 10 s of writes: raft's
	// TestHistoryRetention and the server map it.)
	tn2 := c.tenant(ctx, "beta", nil).Tenant("")
	for _, err := range tn2.Watch(ctx, client.WatchOptions{Key: []byte("k"), FromVersion: 1 << 40}) {
		require.ErrorIs(t, err, client.ErrBadRequest)
		break
	}
}

func TestTxnErrorSentinels(t *testing.T) {
	for code, want := range map[wire.Code]error{
		wire.CodeConflict: client.ErrConflict, wire.CodeTxTooOld: client.ErrTxTooOld,
		wire.CodeTxTooLarge: client.ErrTxTooLarge, wire.CodeWatchTooOld: client.ErrWatchTooOld,
	} {
		err := fmt.Errorf("wrapped: %w", &client.Error{Code: client.Code(code)})
		require.ErrorIs(t, err, want)
		require.Equal(t, code == wire.CodeConflict || code == wire.CodeTxTooOld, client.IsRetryable(err), "%v", code)
	}
	require.False(t, client.IsRetryable(client.ErrCommitUnknown))
	require.False(t, client.IsRetryable(nil))
}

// TestTxnReadYourWritesModel checks Get and Range inside transactions
// against a model (a sorted map) over random stored states and random
// buffered writes, atomic ops and delete-ranges included, with random
// bounds, directions, limits and page sizes.
func TestTxnReadYourWritesModel(t *testing.T) {
	ctx := txCtx(t)
	c := newTxCluster(t, 1)
	tn := c.tenant(ctx, "model", nil).Tenant("")
	r := rand.New(rand.NewPCG(1, 2))
	key := func() string { return string(rune('a' + r.IntN(8))) }
	abort := errors.New("abort")
	for iter := range 60 {
		stored := map[string]string{}
		require.NoError(t, tn.Update(ctx, func(tx *client.Tx) error {
			clear(stored)
			tx.DeleteRange(client.KeyRange{})
			for range r.IntN(6) {
				k, v := key(), fmt.Sprint(r.IntN(100))
				tx.Set([]byte(k), []byte(v))
				stored[k] = v
			}
			return nil
		}))
		model := maps.Clone(stored)
		err := tn.Update(ctx, func(tx *client.Tx) error {
			for range 1 + r.IntN(6) {
				k := key()
				switch r.IntN(5) {
				case 0:
					v := fmt.Sprint(r.IntN(100))
					tx.Set([]byte(k), []byte(v))
					model[k] = v
				case 1:
					tx.Delete([]byte(k))
					delete(model, k)
				case 2:
					e := string(rune(k[0] + byte(1+r.IntN(3))))
					tx.DeleteRange(client.KeyRange{Begin: []byte(k), End: []byte(e)})
					for mk := range model {
						if mk >= k && mk < e {
							delete(model, mk)
						}
					}
				case 3:
					d := int64(r.IntN(5))
					tx.Add([]byte(k), d)
					old, ok := model[k]
					var base [8]byte
					if ok {
						copy(base[:], old)
					}
					model[k] = string(le64(int64(binary.LittleEndian.Uint64(base[:])) + d))
				case 4:
					v := fmt.Sprint(r.IntN(100))
					tx.CompareAndClear([]byte(k), []byte(v))
					if model[k] == v {
						delete(model, k)
					}
				}
			}
			// A point read now and then settles a key's atomic ops.
			if r.IntN(2) == 0 {
				k := key()
				v, err := tx.Get(ctx, []byte(k))
				want, ok := model[k]
				if !ok {
					require.ErrorIs(t, err, client.ErrNotFound, "iter %d get %s", iter, k)
				} else {
					require.NoError(t, err)
					require.Equal(t, want, string(v), "iter %d get %s", iter, k)
				}
			}
			for range 3 {
				b, e := key(), key()
				if b > e {
					b, e = e, b
				}
				rr := client.KeyRange{Begin: []byte(b), End: []byte(e)}
				if b == e {
					rr.End = nil
				}
				opts := &client.RangeOptions{Reverse: r.IntN(2) == 0, Limit: r.IntN(4), PageSize: 1 + r.IntN(3)}
				var want []string
				for _, k := range slices.Sorted(maps.Keys(model)) {
					if k >= b && (len(rr.End) == 0 || k < e) {
						want = append(want, k+"="+model[k])
					}
				}
				if opts.Reverse {
					slices.Reverse(want)
				}
				if opts.Limit > 0 && len(want) > opts.Limit {
					want = want[:opts.Limit]
				}
				seq := tx.Range(ctx, rr, opts)
				if r.IntN(3) == 0 {
					seq = tx.Snapshot().Range(ctx, rr, opts)
				}
				require.Equal(t, want, pairs(t, seq), "iter %d range %q..%q %+v stored %v", iter, b, e, *opts, stored)
			}
			return abort
		})
		require.ErrorIs(t, err, abort)
	}
}
