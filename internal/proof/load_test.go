package proof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/server"
)

// loadConfig is one load run.
type loadConfig struct {
	nodes    int
	tenants  int
	workers  int // each with an operator connection and one tenant-token connection per node
	keys     int // key space per tenant
	duration time.Duration
	seed     uint64
}

// loadTenant is one tenant of a load run and the model of its data. Exactly
// one worker writes a tenant, so the model is exact: every read of the
// tenant is checked against it at once.
type loadTenant struct {
	name  string
	model map[string][]byte
	ops   int
}

// loadWorker drives its tenants through two connections: the operator's and
// a tenant token of its first tenant.
type loadWorker struct {
	id      int
	rng     *rand.Rand
	tenants []*loadTenant
	op      *client.DB
	own     *client.DB // tenant token of tenants[0]
	errs    []string   // broken promises: wrong data, errors that are not about availability
	unknown int
	why     map[string]int // causes of unknown outcomes
	// unavailable counts operations that failed because no leader answered
	// in time: not a broken promise of safety, reported apart.
	unavailable int
	lastUnavail string
}

const loadOpTimeout = 20 * time.Second

func (w *loadWorker) fail(format string, args ...any) {
	if len(w.errs) < 20 {
		w.errs = append(w.errs, fmt.Sprintf(format, args...))
	}
}

// failed records an operation that failed with err: a failure of
// availability (the deadline passed while no leader answered) or a broken
// promise.
func (w *loadWorker) failed(err error, format string, args ...any) {
	if expectedFailure(err) {
		w.unavailable++
		w.lastUnavail = fmt.Sprintf(format, args...) + ": " + err.Error()
		return
	}
	w.fail(format+": %v", append(args, err)...)
}

// handle returns the tenant handle to use for lt, alternating connections.
func (w *loadWorker) handle(lt *loadTenant) *client.Tenant {
	if lt == w.tenants[0] && w.own != nil && w.rng.IntN(2) == 0 {
		return w.own.Tenant("")
	}
	return w.op.Tenant(lt.name)
}

func (w *loadWorker) key(n int) []byte {
	return fmt.Appendf(nil, "k%04d", w.rng.IntN(n))
}

func (w *loadWorker) value(lt *loadTenant) []byte {
	v := fmt.Appendf(nil, "%s:%d:", lt.name, lt.ops)
	pad := make([]byte, w.rng.IntN(512))
	for i := range pad {
		pad[i] = 'a' + byte(w.rng.IntN(26))
	}
	return append(v, pad...)
}

// step runs one random operation on one of the worker's tenants and checks
// what it read against the model.
func (w *loadWorker) step(ctx context.Context, keys int) {
	lt := w.tenants[w.rng.IntN(len(w.tenants))]
	lt.ops++
	tn := w.handle(lt)
	ctx, cancel := context.WithTimeout(ctx, loadOpTimeout)
	defer cancel()
	switch r := w.rng.IntN(100); {
	case r < 40:
		k, v := w.key(keys), w.value(lt)
		err := tn.Set(ctx, k, v)
		w.settle(ctx, lt, err, "set", k, nil, func() { lt.model[string(k)] = v })
	case r < 50:
		k := w.key(keys)
		err := tn.Delete(ctx, k)
		w.settle(ctx, lt, err, "delete", k, nil, func() { delete(lt.model, string(k)) })
	case r < 53:
		a, b := w.key(keys), w.key(keys)
		if bytes.Compare(a, b) > 0 {
			a, b = b, a
		}
		if bytes.Equal(a, b) {
			b = append(b, 0)
		}
		err := tn.DeleteRange(ctx, client.KeyRange{Begin: a, End: b})
		w.settle(ctx, lt, err, "delete-range", a, b, func() {
			for k := range lt.model {
				if k >= string(a) && k < string(b) {
					delete(lt.model, k)
				}
			}
		})
	case r < 85:
		k := w.key(keys)
		v, err := tn.Get(ctx, k)
		want, ok := lt.model[string(k)]
		switch {
		case errors.Is(err, client.ErrNotFound):
			if ok {
				w.fail("LOST WRITE: %s/%s not found, model has %.40q", lt.name, k, want)
			}
		case err != nil:
			w.failed(err, "get %s/%s", lt.name, k)
		case !ok || !bytes.Equal(v, want):
			w.fail("WRONG READ: %s/%s = %.40q, model has %.40q (present %v)", lt.name, k, v, want, ok)
		}
	default:
		a := w.key(keys)
		rev := w.rng.IntN(2) == 0
		got, err := scanAll(ctx, tn, client.KeyRange{Begin: a}, &client.RangeOptions{Reverse: rev, PageSize: 1 + w.rng.IntN(20)})
		if err != nil {
			w.failed(err, "scan %s from %s", lt.name, a)
			return
		}
		want := modelRange(lt.model, string(a), "")
		if rev {
			slices.Reverse(want)
		}
		if d := diffKVs(got, want, lt.model); d != "" {
			w.fail("WRONG SCAN of %s from %q (reverse %v): %s", lt.name, a, rev, d)
		}
	}
}

// settle applies a write to the model. A write of unknown outcome is
// resolved by reading back what it touched: the client's contract is that
// such a write may or may not have happened.
func (w *loadWorker) settle(ctx context.Context, lt *loadTenant, err error, what string, k, end []byte, apply func()) {
	switch {
	case err == nil:
		apply()
	case errors.Is(err, client.ErrCommitUnknown):
		w.unknown++
		if w.why == nil {
			w.why = map[string]int{}
		}
		w.why[errorClass(err)]++
		before := maps.Clone(lt.model)
		apply()
		after := lt.model
		// Read back until the cluster answers: the outcome must be settled
		// before the next operation on this tenant.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		hi := end
		if hi == nil {
			hi = append(append([]byte(nil), k...), 0)
		}
		var got []client.KV
		rerr := poll(rctx, func() error {
			var err error
			got, err = scanAll(rctx, w.op.Tenant(lt.name), client.KeyRange{Begin: k, End: hi}, nil)
			return err
		})
		if rerr != nil {
			w.fail("%s %s/%s: %v; and reading it back: %v", what, lt.name, k, err, rerr)
			return
		}
		switch {
		case diffKVs(got, modelRange(after, string(k), string(hi)), after) == "":
			lt.model = after
		case diffKVs(got, modelRange(before, string(k), string(hi)), before) == "":
			lt.model = before
		default:
			w.fail("%s %s/%s of unknown outcome left neither the old nor the new state: %v", what, lt.name, k, got)
			lt.model = after
		}
	default:
		w.failed(err, "%s %s/%s", what, lt.name, k) // definitely not applied
	}
}

// scanAll reads a whole range.
func scanAll(ctx context.Context, tn *client.Tenant, r client.KeyRange, opts *client.RangeOptions) ([]client.KV, error) {
	var out []client.KV
	for kv, err := range tn.Range(ctx, r, opts) {
		if err != nil {
			return nil, err
		}
		out = append(out, kv)
	}
	return out, nil
}

// modelRange returns the model's pairs in [lo, hi) ("" hi: to the end), in
// key order.
func modelRange(m map[string][]byte, lo, hi string) []client.KV {
	var out []client.KV
	for k, v := range m {
		if k >= lo && (hi == "" || k < hi) {
			out = append(out, client.KV{Key: []byte(k), Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out
}

// diffKVs describes the first difference between got and want, or "".
func diffKVs(got, want []client.KV, model map[string][]byte) string {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Sprintf("%d pairs, want %d: missing %q", len(got), len(want), want[i].Key)
		case i >= len(want):
			_, inModel := model[string(got[i].Key)]
			return fmt.Sprintf("%d pairs, want %d: extra %q=%.40q (in model %v)", len(got), len(want), got[i].Key, got[i].Value, inModel)
		case !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value):
			return fmt.Sprintf("pair %d is %q=%.40q, want %q=%.40q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
	return ""
}

// runLoad creates cfg.tenants tenants, runs cfg.workers workers over them
// for cfg.duration, then compares every tenant's data and usage to its
// model.
func runLoad(t testing.TB, cfg loadConfig) {
	t.Helper()
	// Raft's default timing (1 s): the load is not meant to cause
	// elections, which 200 ms timeouts do on two busy cores.
	c := newClusterTuned(t, cfg.nodes, server.RaftTuning{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(cfg.seed, 3))
	start := time.Now()

	tenants := make([]*loadTenant, cfg.tenants)
	tokens := make([]string, cfg.tenants)
	var setupErr atomic.Pointer[error]
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.tenants || setupErr.Load() != nil {
					return
				}
				name := fmt.Sprintf("load-%04d", i)
				tenants[i] = &loadTenant{name: name, model: map[string][]byte{}}
				if _, err := c.admin.CreateTenant(ctx, name, nil); err != nil {
					setupErr.Store(&err)
					return
				}
				if i < cfg.workers {
					tok, err := c.admin.NewTenantToken(ctx, name)
					if err != nil {
						setupErr.Store(&err)
						return
					}
					tokens[i] = tok
				}
			}
		}()
	}
	wg.Wait()
	if p := setupErr.Load(); p != nil {
		t.Fatalf("creating tenants: %v", *p)
	}
	for _, tok := range tokens {
		if tok != "" {
			waitTokenEverywhere(t, c.endpoints(), tok)
		}
	}
	t.Logf("load: %d tenants created in %v", cfg.tenants, time.Since(start).Round(time.Millisecond))

	workers := make([]*loadWorker, cfg.workers)
	for w := range workers {
		lw := &loadWorker{id: w, rng: rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))}
		for i := w; i < cfg.tenants; i += cfg.workers {
			lw.tenants = append(lw.tenants, tenants[i])
		}
		var err error
		if lw.op, err = client.Open(ctx, c.endpoints(), &client.Options{Token: c.token}); err != nil {
			t.Fatal(err)
		}
		defer lw.op.Close()
		if len(lw.tenants) > 0 && tokens[w] != "" {
			if lw.own, err = client.Open(ctx, c.endpoints(), &client.Options{Token: tokens[w]}); err != nil {
				t.Fatal(err)
			}
			defer lw.own.Close()
		}
		workers[w] = lw
	}
	var ops atomic.Int64
	deadline := time.Now().Add(cfg.duration)
	for _, w := range workers {
		if len(w.tenants) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && len(w.errs) < 20 {
				w.step(ctx, cfg.keys)
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(deadline.Add(-cfg.duration))

	// Every tenant's data and usage against its model.
	var wrong atomic.Int64
	next.Store(0)
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.tenants {
					return
				}
				lt := tenants[i]
				vctx, cancel := context.WithTimeout(ctx, time.Minute)
				got, err := scanAll(vctx, c.admin.Tenant(lt.name), client.KeyRange{}, nil)
				var info *client.TenantInfo
				if err == nil {
					info, err = c.admin.TenantInfo(vctx, lt.name)
				}
				cancel()
				mu.Lock()
				switch {
				case err != nil:
					t.Errorf("verify %s: %v", lt.name, err)
				default:
					if d := diffKVs(got, modelRange(lt.model, "", ""), lt.model); d != "" {
						wrong.Add(1)
						t.Errorf("DATA MISMATCH in %s after the load: %s", lt.name, d)
					}
					var bytesUsed uint64
					for k, v := range lt.model {
						bytesUsed += uint64(len(k) + len(v))
					}
					if info.Usage.Keys != uint64(len(lt.model)) || info.Usage.LogicalBytes != bytesUsed {
						wrong.Add(1)
						t.Errorf("USAGE MISMATCH in %s: %d keys, %d bytes counted; the model holds %d keys, %d bytes",
							lt.name, info.Usage.Keys, info.Usage.LogicalBytes, len(lt.model), bytesUsed)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	unknown, unavailable := 0, 0
	lastUnavail := ""
	why := map[string]int{}
	for _, w := range workers {
		unknown += w.unknown
		unavailable += w.unavailable
		if w.lastUnavail != "" {
			lastUnavail = w.lastUnavail
		}
		for k, v := range w.why {
			why[k] += v
		}
		for _, e := range w.errs {
			wrong.Add(1)
			t.Errorf("worker %d: %s", w.id, e)
		}
	}
	n := ops.Load()
	t.Logf("load: %d tenants, %d workers (%d connections), %d operations in %v (%.0f/s), %d of unknown outcome resolved by reading; every tenant's data and usage compared to its model",
		cfg.tenants, cfg.workers, 2*cfg.workers*cfg.nodes, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), unknown)
	if len(why) > 0 {
		t.Logf("load: causes of unknown outcomes: %v", why)
	}
	// Nothing injects faults here: more than 1 % of operations timing out
	// without a leader is a failure of availability under load.
	if unavailable > 0 {
		t.Logf("load: %d operations found no leader within %v (last: %s)", unavailable, loadOpTimeout, lastUnavail)
	}
	if n > 0 && unavailable*100 > int(n) {
		t.Errorf("UNAVAILABLE UNDER LOAD: %d of %d operations found no leader within %v, with no fault injected", unavailable, n, loadOpTimeout)
	}
	totals.Runs.Add(1)
	totals.Operations.Add(n)
	totals.Tenants.Add(int64(cfg.tenants))
	totals.Violations.Add(wrong.Load())
}

// TestLoadModel runs a mixed workload on 100 tenants over 50 workers (100
// connections) for 5 seconds and then compares every tenant's data and
// usage to a model.
func TestLoadModel(t *testing.T) {
	runLoad(t, loadConfig{nodes: 1, tenants: 100, workers: 50, keys: 50, duration: 5 * time.Second, seed: testSeed(t)})
}
