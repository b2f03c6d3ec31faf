package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/tenantkv/tenantkv/client"
)

// Target is the cluster a run measures.
type Target struct {
	// Endpoints are client addresses of cluster nodes.
	Endpoints []string
	// Token is an operator token (creating tenants needs one).
	Token string
	// Description names the target in reports, such as "local, 3 nodes".
	Description string
	// Nodes is the number of nodes, if known; zero means unknown.
	Nodes int
	// HTTP are the nodes' HTTP addresses, if known (local clusters). Each
	// run then has every node flush its memtable after the setup and
	// before the warm-up (POST /debug/flush), so that every point starts
	// with its data in sstables rather than wherever the previous load
	// left it.
	HTTP []string
}

// RunOptions are the hooks of a run. A nil *RunOptions means none.
type RunOptions struct {
	// Status receives a line for each setup step (tenants created, keys
	// loaded) and the progress of long ones; nil discards them.
	Status io.Writer
	// Progress, if set, is called about once a second while the workload
	// runs, from one goroutine at a time.
	Progress func(Progress)
}

// Progress is a snapshot of a run in progress.
type Progress struct {
	// Warmup is true while the warm-up runs; nothing is measured then.
	Warmup bool
	// Elapsed is the time since the phase started; Total is how long it
	// lasts (zero when the run is bounded by its operation count).
	Elapsed, Total time.Duration
	Groups         []GroupProgress
}

// GroupProgress is the progress of one group of clients.
type GroupProgress struct {
	Name string
	// OpsPerSec is the rate of the last second.
	OpsPerSec float64
	// Ops is the number of operations measured so far.
	Ops int64
	// P99 is the 99th percentile latency of the operations measured so far.
	P99 time.Duration
	// Errors counts failed operations so far, rate limited ones included.
	Errors int64
}

// Run runs one workload against target and returns its result. It creates
// the tenants and loads the keys first unless cfg says not to.
func Run(ctx context.Context, target Target, cfg Config, opts *RunOptions) (*Result, error) {
	res, err := RunGroups(ctx, target, []Config{cfg}, opts)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// RunGroups runs several workloads at once against target, each with its
// own clients, connections and tenants, and returns a result for each. The
// groups are set up one after the other, then share one warm-up and one
// measured window: the Warmup and Duration of the first Config. A group
// with Ops set stops on its own when it has done them. Cancelling ctx stops
// the run and returns its error.
func RunGroups(ctx context.Context, target Target, cfgs []Config, opts *RunOptions) ([]*Result, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("bench: no workload")
	}
	if len(target.Endpoints) == 0 {
		return nil, errors.New("bench: no endpoints")
	}
	if opts == nil {
		opts = &RunOptions{}
	}
	groups := make([]*group, len(cfgs))
	defer func() {
		for _, g := range groups {
			if g != nil {
				g.close()
			}
		}
	}()
	for i, c := range cfgs {
		if err := c.Validate(); err != nil {
			return nil, err
		}
		g, err := newGroup(ctx, target, c.withDefaults())
		if err != nil {
			return nil, err
		}
		groups[i] = g
	}
	for _, g := range groups {
		if err := g.setup(ctx, opts.Status); err != nil {
			return nil, err
		}
	}
	if err := settle(ctx, target.HTTP); err != nil {
		return nil, err
	}
	first := groups[0].cfg
	if err := measure(ctx, groups, first.Warmup, first.Duration, opts.Progress); err != nil {
		return nil, err
	}
	out := make([]*Result, len(groups))
	for i, g := range groups {
		out[i] = g.result(target)
	}
	return out, nil
}

// settle asks every node to flush its memtable (POST /debug/flush on its
// HTTP address) and waits for the answers.
func settle(ctx context.Context, httpAddrs []string) error {
	hc := &http.Client{Timeout: time.Minute}
	for _, a := range httpAddrs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a+"/debug/flush", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("bench: flush %s: %w", a, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("bench: flush %s: %s: the node serves POST /debug/flush only with serve --debug", a, resp.Status)
		}
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("bench: flush %s: %s", a, resp.Status)
		}
	}
	return nil
}

// Phases of a run, in order.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// stopGrace is how long operations in flight at the end of a run may take
// before they are cancelled.
const stopGrace = 10 * time.Second

// Histogram bounds, in microseconds.
const (
	histMin     = 1
	histMax     = 60_000_000
	histSigFigs = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigFigs) }

// group is one workload's clients, connections and statistics.
type group struct {
	cfg     Config
	ks      *keySpace
	dbs     []*client.DB
	handles [][]*client.Tenant // by connection, then tenant

	workers []*worker
	active  atomic.Int32
	claimed atomic.Int64 // measured operations claimed, with Ops set
	endNano atomic.Int64 // when the last worker stopped in the measured phase

	// Per-tenant counters of the measured phase, indexed like ks.tenants.
	tenantOps   []atomic.Uint64
	tenantErrs  []atomic.Uint64
	tenantLatUS []atomic.Uint64

	setupStats Setup

	// Owned by the controller goroutine.
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
	counts   counts
	series   []Second
	elapsed  time.Duration
}

// counts are the counters a worker keeps between flushes.
type counts struct {
	ops         int64 // successful operations (a read of a missing key is one)
	byKind      [numOpKinds]int64
	scanRows    int64
	notFound    int64
	rateLimited int64
	errors      map[string]int64
}

func (c *counts) add(o *counts) {
	c.ops += o.ops
	for i := range c.byKind {
		c.byKind[i] += o.byKind[i]
	}
	c.scanRows += o.scanRows
	c.notFound += o.notFound
	c.rateLimited += o.rateLimited
	for k, v := range o.errors {
		if c.errors == nil {
			c.errors = make(map[string]int64)
		}
		c.errors[k] += v
	}
}

func (c *counts) errorCount() int64 {
	n := c.rateLimited
	for _, v := range c.errors {
		n += v
	}
	return n
}

// worker is one client goroutine's statistics since the last flush. The
// worker and the controller share it under mu, which only they take.
type worker struct {
	mu     sync.Mutex
	hist   *hdrhistogram.Histogram
	counts counts
}

func newGroup(ctx context.Context, target Target, c Config) (*group, error) {
	ks, err := newKeySpace(c)
	if err != nil {
		return nil, err
	}
	g := &group{
		cfg: c, ks: ks,
		tenantOps:   make([]atomic.Uint64, c.Tenants),
		tenantErrs:  make([]atomic.Uint64, c.Tenants),
		tenantLatUS: make([]atomic.Uint64, c.Tenants),
		total:       newHist(),
		interval:    newHist(),
	}
	eps := target.Endpoints
	for i := range c.Conns {
		// Connection i starts at endpoint i, so that stale reads, which go
		// to the node a connection starts with, spread over the nodes.
		rot := append(slices.Clone(eps[i%len(eps):]), eps[:i%len(eps)]...)
		db, err := client.Open(ctx, rot, &client.Options{Token: target.Token})
		if err != nil {
			g.close()
			return nil, fmt.Errorf("bench: connect to %v: %w", rot, err)
		}
		g.dbs = append(g.dbs, db)
		hs := make([]*client.Tenant, c.Tenants)
		for j, name := range ks.tenants {
			hs[j] = db.Tenant(name)
			if c.Stale {
				hs[j] = hs[j].WithStaleReads()
			}
		}
		g.handles = append(g.handles, hs)
	}
	g.workers = make([]*worker, c.Clients)
	for i := range g.workers {
		g.workers[i] = &worker{hist: newHist()}
	}
	return g, nil
}

func (g *group) close() {
	for _, db := range g.dbs {
		db.Close()
	}
	g.dbs = nil
}

// runState is what the controller shares with every worker.
type runState struct {
	phase atomic.Int32
}

// measure runs every group's workers through the warm-up and the measured
// window, flushing their statistics every second.
func measure(ctx context.Context, groups []*group, warmup, duration time.Duration, progress func(Progress)) error {
	rs := &runState{}
	opCtx, cancelOps := context.WithCancel(ctx)
	defer cancelOps()
	var wg sync.WaitGroup
	for _, g := range groups {
		g.active.Store(int32(len(g.workers)))
		for i, w := range g.workers {
			wg.Go(func() { g.work(opCtx, rs, w, i) })
		}
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	// stop ends the measured window, then waits for the operations in
	// flight, which are not counted, and returns when the window ended.
	stop := func() time.Time {
		rs.phase.Store(phaseStop)
		stopAt := time.Now()
		select {
		case <-allDone:
		case <-time.After(stopGrace):
			cancelOps()
			<-allDone
		}
		return stopAt
	}

	phaseStart := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var warm <-chan time.Time
	if warmup > 0 {
		warm = time.After(warmup)
	} else {
		rs.phase.Store(phaseMeasure)
	}
	var end <-chan time.Time
	startMeasure := func() {
		phaseStart = time.Now()
		tick.Reset(time.Second)
		if duration > 0 {
			end = time.After(duration)
		}
	}
	if warm == nil {
		startMeasure()
	}
	last := phaseStart
	report := func(now time.Time) {
		if progress == nil {
			return
		}
		p := Progress{Warmup: rs.phase.Load() == phaseWarmup, Elapsed: now.Sub(phaseStart), Total: duration}
		if p.Warmup {
			p.Total = warmup
		}
		for _, g := range groups {
			gp := GroupProgress{Name: g.cfg.Name, Ops: g.counts.ops, Errors: g.counts.errorCount(),
				P99: time.Duration(g.total.ValueAtQuantile(99)) * time.Microsecond}
			if n := len(g.series); n > 0 && !p.Warmup {
				gp.OpsPerSec = g.series[n-1].OpsPerSec
			}
			p.Groups = append(p.Groups, gp)
		}
		progress(p)
	}
	for {
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-warm:
			warm = nil
			rs.phase.Store(phaseMeasure)
			startMeasure()
			last = phaseStart
		case now := <-tick.C:
			if rs.phase.Load() == phaseMeasure {
				for _, g := range groups {
					g.flush(now.Sub(last), now.Sub(phaseStart))
				}
				last = now
			}
			report(now)
		case <-end:
			finish(groups, phaseStart, last, stop())
			return nil
		case <-allDone:
			finish(groups, phaseStart, last, stop())
			return nil
		}
	}
}

// finish takes the last, partial second of every group and its elapsed
// time: up to stopAt, or to when its last client stopped if that came first.
func finish(groups []*group, start, last, stopAt time.Time) {
	for _, g := range groups {
		endAt := stopAt
		if e := g.endNano.Load(); e != 0 && e < stopAt.UnixNano() {
			endAt = time.Unix(0, e)
		}
		g.elapsed = endAt.Sub(start)
		if d := endAt.Sub(last); d > 0 {
			g.flush(d, endAt.Sub(start))
		}
	}
}

// flush moves the workers' statistics since the last flush into the
// group's totals and appends one sample of the time series. interval is the
// time since the last flush; at the time since the measured phase started.
func (g *group) flush(interval, at time.Duration) {
	g.interval.Reset()
	var c counts
	for _, w := range g.workers {
		w.mu.Lock()
		g.interval.Merge(w.hist)
		w.hist.Reset()
		c.add(&w.counts)
		w.counts = counts{}
		w.mu.Unlock()
	}
	g.total.Merge(g.interval)
	g.counts.add(&c)
	if interval < 50*time.Millisecond {
		return // too short to be a sample of the rate
	}
	g.series = append(g.series, Second{
		AtSec:     at.Seconds(),
		Ops:       c.ops,
		OpsPerSec: float64(c.ops) / interval.Seconds(),
		P50US:     g.interval.ValueAtQuantile(50),
		P99US:     g.interval.ValueAtQuantile(99),
		Errors:    c.errorCount(),
	})
}

// work is one client: a closed loop of operations until the run stops.
func (g *group) work(ctx context.Context, rs *runState, w *worker, id int) {
	defer func() {
		if g.active.Add(-1) == 0 && rs.phase.Load() == phaseMeasure {
			g.endNano.Store(time.Now().UnixNano())
		}
	}()
	ks := g.ks
	handles := g.handles[id%len(g.handles)]
	rng := rand.New(rand.NewPCG(g.cfg.Seed, uint64(id)+1))
	ropts := client.RangeOptions{Stale: g.cfg.Stale}
	limit := g.cfg.Ops
	for {
		ph := rs.phase.Load()
		if ph == phaseStop {
			return
		}
		claimed := false
		if limit > 0 && ph == phaseMeasure {
			if g.claimed.Add(1) > limit {
				return
			}
			claimed = true
		}
		ti := ks.tenDist.next(rng)
		key := ks.keys[ks.keyDist.next(rng)]
		kind := ks.mix.pick(rng.Float64())
		t := handles[ti]
		rows := 0
		var err error
		start := time.Now()
		switch kind {
		case OpRead:
			_, err = t.Get(ctx, key)
		case OpUpdate:
			err = t.Set(ctx, key, ks.value)
		case OpScan:
			ropts.Limit = 1 + rng.IntN(ks.maxScan)
			for _, e := range t.Range(ctx, client.KeyRange{Begin: key}, &ropts) {
				if e != nil {
					err = e
					break
				}
				rows++
			}
		}
		lat := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		if rs.phase.Load() != phaseMeasure || (limit > 0 && !claimed) {
			if errors.Is(err, client.ErrRateLimited) && waitRetry(ctx, err) != nil {
				return
			}
			continue
		}
		us := min(max(lat.Microseconds(), histMin), histMax)
		class := classify(kind, err)
		w.mu.Lock()
		switch class {
		case "":
			w.hist.RecordValue(us) //nolint:errcheck // us is within the bounds
			w.counts.ops++
			w.counts.byKind[kind]++
			w.counts.scanRows += int64(rows)
			if err != nil {
				w.counts.notFound++
			}
		case classRateLimited:
			w.counts.rateLimited++
		default:
			if w.counts.errors == nil {
				w.counts.errors = make(map[string]int64)
			}
			w.counts.errors[class]++
		}
		w.mu.Unlock()
		if class == "" {
			g.tenantOps[ti].Add(1)
			g.tenantLatUS[ti].Add(uint64(us))
		} else {
			g.tenantErrs[ti].Add(1)
		}
		if class == classRateLimited && waitRetry(ctx, err) != nil {
			return
		}
	}
}

// classRateLimited is the error class of rate-limited operations, counted
// apart from the other errors.
const classRateLimited = "rate limited"

// classify returns the class of an operation's error: "" for success and
// for a read of a missing key, which is an answer rather than a failure;
// classRateLimited; otherwise the short name of the client's sentinel the
// error matches, or "other: " and the start of its text.
func classify(kind OpKind, err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, client.ErrNotFound) && kind == OpRead {
		return ""
	}
	if errors.Is(err, client.ErrRateLimited) {
		return classRateLimited
	}
	sentinels := [...]error{
		client.ErrCommitUnknown, client.ErrUnavailable, client.ErrNotLeader,
		client.ErrTenantNotFound, client.ErrPermissionDenied, client.ErrTenantReadOnly,
		client.ErrTenantLocked, client.ErrQuotaExceeded, client.ErrNotFound,
		client.ErrInternal, client.ErrBadRequest, client.ErrClosed,
		client.ErrInvalidArgument, client.ErrInvalidKey, client.ErrInvalidRange,
		client.ErrKeyTooLarge, client.ErrValueTooLarge,
		context.DeadlineExceeded, context.Canceled,
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return shortName(s)
		}
	}
	msg := err.Error()
	if len(msg) > 60 {
		msg = msg[:60] + "…"
	}
	return "other: " + msg
}

// shortName is a sentinel's message without the package prefix.
func shortName(err error) string {
	msg := err.Error()
	for _, p := range []string{"tenantkv: ", "context "} {
		if len(msg) > len(p) && msg[:len(p)] == p {
			return msg[len(p):]
		}
	}
	return msg
}
