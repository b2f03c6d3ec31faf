package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"

	"github.com/tenantkv/tenantkv/bench"
)

// The accounting of the bench package (bench/run.go), repeated here so
// that both systems' latencies land in identical histograms.
const (
	histMin     = 1          // µs
	histMax     = 60_000_000 // µs
	histSigFigs = 3
	stopGrace   = 10 * time.Second
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigFigs) }

// etcdTarget is an etcd cluster to measure.
type etcdTarget struct {
	// Endpoints are client URLs. Connection i of a run is given all of
	// them, starting at endpoint i, and balances over them as etcd's
	// client does by default (round robin).
	Endpoints   []string
	Description string
}

// etcdRunOptions are the hooks of runEtcd.
type etcdRunOptions struct {
	// Load writes every key once before the run, LoadConcurrency (128)
	// puts at a time.
	Load bool
	// Status receives a line for each setup step; nil discards them.
	Status io.Writer
	// Measuring, if set, is called once when the measured phase starts.
	Measuring func()
}

// workload is what every client of an etcd run shares, made before the run
// exactly as the bench package makes it for tenantkv (bench.Key, the value
// from the same seeded generator), so that both systems see the same keys,
// the same value and the same sequence of operations.
type workload struct {
	mix   bench.Mix
	keys  []string
	value string
}

// valueStream is the second word of the PCG seed of the value, as in the
// bench package.
const valueStream = 0x76616c7565

func newWorkload(cfg bench.Config) (*workload, error) {
	mix, err := cfg.Workload.Mix()
	if err != nil {
		return nil, err
	}
	if cfg.Tenants > 1 {
		return nil, errors.New("etcd runs have one keyspace: Tenants must be 1")
	}
	w := &workload{mix: mix, keys: make([]string, cfg.Keys)}
	for i := range w.keys {
		w.keys[i] = string(bench.Key(i, cfg.KeySize))
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, valueStream))
	v := make([]byte, cfg.ValueSize)
	for i := range v {
		v[i] = byte(rng.Uint32())
	}
	w.value = string(v)
	return w, nil
}

// next draws one operation for client rng the way a bench worker does with
// one tenant and uniform keys: a tenant (always 0, but drawn so that the
// random stream stays the same), a key, then the kind.
func (w *workload) next(rng *rand.Rand) (key string, kind bench.OpKind) {
	_ = rng.Uint64N(1) // the tenant
	key = w.keys[rng.Uint64N(uint64(len(w.keys)))]
	u := rng.Float64()
	switch {
	case u < w.mix.Read:
		return key, bench.OpRead
	case u < w.mix.Read+w.mix.Update:
		return key, bench.OpUpdate
	}
	return key, bench.OpScan
}

// etcdCounts are the counters a client keeps between flushes.
type etcdCounts struct {
	ops      int64
	byKind   [3]int64
	notFound int64
	errors   map[string]int64
}

func (c *etcdCounts) add(o *etcdCounts) {
	c.ops += o.ops
	for i := range c.byKind {
		c.byKind[i] += o.byKind[i]
	}
	c.notFound += o.notFound
	for k, v := range o.errors {
		if c.errors == nil {
			c.errors = map[string]int64{}
		}
		c.errors[k] += v
	}
}

func (c *etcdCounts) errorCount() int64 {
	var n int64
	for _, v := range c.errors {
		n += v
	}
	return n
}

// etcdWorker is one client goroutine's statistics since the last flush,
// shared with the controller under mu.
type etcdWorker struct {
	mu     sync.Mutex
	hist   *hdrhistogram.Histogram
	counts etcdCounts
}

// Phases of a run, in order, as in the bench package.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// runEtcd runs one workload against an etcd cluster with the client model
// of bench.Run: cfg.Clients goroutines, each a closed loop of one operation
// at a time, sharing cfg.Conns clients round robin; reads are clientv3 Get
// (linearizable, etcd's default), updates Put. It measures for
// cfg.Duration after cfg.Warmup and returns a bench.Result. cfg must have
// every field set (defaults are not filled in here); Ops, scans, zipfian
// choices and several tenants are not supported.
func runEtcd(ctx context.Context, target etcdTarget, cfg bench.Config, opts etcdRunOptions) (*bench.Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clients < 1 || cfg.Conns < 1 || cfg.Keys < 1 || cfg.Duration <= 0 {
		return nil, errors.New("etcd run: clients, conns, keys and duration must be set")
	}
	if cfg.Workload == bench.WorkloadE || cfg.Ops > 0 || cfg.KeyDist == bench.Zipf {
		return nil, errors.New("etcd run: scans, operation counts and zipfian keys are not supported")
	}
	w, err := newWorkload(cfg)
	if err != nil {
		return nil, err
	}
	eps := target.Endpoints
	var clis []*clientv3.Client
	defer func() {
		for _, c := range clis {
			c.Close()
		}
	}()
	for i := range cfg.Conns {
		rot := append(slices.Clone(eps[i%len(eps):]), eps[:i%len(eps)]...)
		cli, err := newEtcdClient(rot)
		if err != nil {
			return nil, err
		}
		clis = append(clis, cli)
	}

	var setup bench.Setup
	if opts.Load {
		if opts.Status != nil {
			fmt.Fprintf(opts.Status, "%s: loading %d keys of %d+%d bytes\n", cfg.Name, len(w.keys), cfg.KeySize, cfg.ValueSize)
		}
		start := time.Now()
		if err := loadEtcd(ctx, clis, w, max(cfg.LoadConcurrency, 1)); err != nil {
			return nil, err
		}
		setup.KeysLoaded = int64(len(w.keys))
		setup.LoadSec = time.Since(start).Seconds()
		setup.LoadPerSec = float64(len(w.keys)) / setup.LoadSec
	}

	workers := make([]*etcdWorker, cfg.Clients)
	for i := range workers {
		workers[i] = &etcdWorker{hist: newHist()}
	}
	total, interval := newHist(), newHist()
	var counts etcdCounts
	var series []bench.Second
	flush := func(d, at time.Duration) {
		interval.Reset()
		var c etcdCounts
		for _, wk := range workers {
			wk.mu.Lock()
			interval.Merge(wk.hist)
			wk.hist.Reset()
			c.add(&wk.counts)
			wk.counts = etcdCounts{}
			wk.mu.Unlock()
		}
		total.Merge(interval)
		counts.add(&c)
		if d < 50*time.Millisecond {
			return
		}
		series = append(series, bench.Second{
			AtSec: at.Seconds(), Ops: c.ops, OpsPerSec: float64(c.ops) / d.Seconds(),
			P50US: interval.ValueAtQuantile(50), P99US: interval.ValueAtQuantile(99), Errors: c.errorCount(),
		})
	}

	var phase atomic.Int32
	opCtx, cancelOps := context.WithCancel(ctx)
	defer cancelOps()
	var wg sync.WaitGroup
	for id, wk := range workers {
		cli := clis[id%len(clis)]
		wg.Go(func() { etcdWork(opCtx, &phase, cli, w, wk, cfg.Seed, id) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	stop := func() {
		phase.Store(phaseStop)
		select {
		case <-done:
		case <-time.After(stopGrace):
			cancelOps()
			<-done
		}
	}

	if cfg.Warmup > 0 {
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(cfg.Warmup):
		}
	}
	phase.Store(phaseMeasure)
	if opts.Measuring != nil {
		opts.Measuring()
	}
	start := time.Now()
	last := start
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(cfg.Duration)
loop:
	for {
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case now := <-tick.C:
			flush(now.Sub(last), now.Sub(start))
			last = now
		case <-end:
			break loop
		}
	}
	stop()
	now := time.Now()
	flush(now.Sub(last), now.Sub(start))
	elapsed := now.Sub(start)

	r := &bench.Result{
		Name:   cfg.Name,
		Series: cfg.Series,
		Target: target.Description,
		Params: bench.Params{
			Workload: string(cfg.Workload), Keys: cfg.Keys, KeysPerTen: len(w.keys),
			KeySize: cfg.KeySize, ValueSize: cfg.ValueSize, Tenants: 1,
			TenantSkew: string(bench.Uniform), KeyDist: string(bench.Uniform),
			Clients: cfg.Clients, Conns: cfg.Conns,
			DurationSec: cfg.Duration.Seconds(), WarmupSec: max(cfg.Warmup, 0).Seconds(),
			Load: opts.Load, Seed: cfg.Seed,
		},
		Ops:         counts.ops,
		OpsByKind:   map[string]int64{},
		NotFound:    counts.notFound,
		Errors:      map[string]int64{},
		DurationSec: elapsed.Seconds(),
		Latency:     bench.Summarize(total),
		Curve:       bench.PercentileCurve(total),
		PerSecond:   series,
		Setup:       setup,
	}
	for k, n := range counts.byKind {
		if n > 0 {
			r.OpsByKind[bench.OpKind(k).String()] = n
		}
	}
	for k, v := range counts.errors {
		r.Errors[k] = v
		r.ErrorCount += v
	}
	if r.DurationSec > 0 {
		r.Throughput = math.Round(float64(r.Ops)/r.DurationSec*10) / 10
	}
	return r, nil
}

// etcdWork is one client: a closed loop of operations until the run stops,
// recording those of the measured phase.
func etcdWork(ctx context.Context, phase *atomic.Int32, cli *clientv3.Client, w *workload, wk *etcdWorker, seed uint64, id int) {
	rng := rand.New(rand.NewPCG(seed, uint64(id)+1))
	for {
		ph := phase.Load()
		if ph == phaseStop {
			return
		}
		key, kind := w.next(rng)
		notFound := false
		var err error
		start := time.Now()
		switch kind {
		case bench.OpRead:
			var resp *clientv3.GetResponse
			resp, err = cli.Get(ctx, key)
			notFound = err == nil && len(resp.Kvs) == 0
		default:
			_, err = cli.Put(ctx, key, w.value)
		}
		lat := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		if phase.Load() != phaseMeasure {
			continue
		}
		us := min(max(lat.Microseconds(), histMin), histMax)
		wk.mu.Lock()
		if err == nil {
			wk.hist.RecordValue(us) //nolint:errcheck // us is within the bounds
			wk.counts.ops++
			wk.counts.byKind[kind]++
			if notFound {
				wk.counts.notFound++
			}
		} else {
			if wk.counts.errors == nil {
				wk.counts.errors = map[string]int64{}
			}
			wk.counts.errors[classifyEtcd(err)]++
		}
		wk.mu.Unlock()
	}
}

// loadEtcd puts every key once, concurrency puts at a time spread over the
// clients, and returns the first error.
func loadEtcd(ctx context.Context, clis []*clientv3.Client, w *workload, concurrency int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range min(concurrency, len(w.keys)) {
		cli := clis[g%len(clis)]
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(w.keys)) || ctx.Err() != nil {
					return
				}
				if _, err := cli.Put(ctx, w.keys[i], w.value); err != nil {
					cancel(fmt.Errorf("etcd load: put %q: %w", w.keys[i], err))
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// classifyEtcd names the class of a failed etcd operation: the context's
// error, etcd's own error text ("etcdserver: no leader"), or the gRPC code.
func classifyEtcd(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Error()
	}
	if s, ok := status.FromError(err); ok {
		return "grpc " + s.Code().String()
	}
	msg := err.Error()
	if len(msg) > 60 {
		msg = msg[:60] + "…"
	}
	return "other: " + msg
}
