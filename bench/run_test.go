package bench

import (
	"sync/atomic"
	"testing"
	"time"
)

// testGroup is a group without connections, for the statistics code.
func testGroup(t *testing.T, c Config, workers int) *group {
	t.Helper()
	c = c.withDefaults()
	ks, err := newKeySpace(c)
	if err != nil {
		t.Fatal(err)
	}
	g := &group{cfg: c, ks: ks, total: newHist(), interval: newHist(),
		tenantOps: make([]atomic.Uint64, c.Tenants), tenantErrs: make([]atomic.Uint64, c.Tenants),
		tenantLatUS: make([]atomic.Uint64, c.Tenants)}
	for range workers {
		g.workers = append(g.workers, &worker{hist: newHist()})
	}
	return g
}

// TestFlushAndResult feeds workers' statistics through two flushes and
// checks the time series, the totals and the result built from them.
func TestFlushAndResult(t *testing.T) {
	g := testGroup(t, Config{Name: "t", Tenants: 4, Keys: 40, TopTenants: 3}, 2)
	record := func(w *worker, us int64, n int) {
		for range n {
			_ = w.hist.RecordValue(us)
			w.counts.ops++
			w.counts.byKind[OpRead]++
		}
	}
	record(g.workers[0], 100, 300)
	record(g.workers[1], 200, 100)
	g.workers[1].counts.errors = map[string]int64{"unavailable": 2}
	g.workers[1].counts.rateLimited = 5
	g.flush(time.Second, time.Second)
	record(g.workers[0], 1000, 200)
	g.workers[0].counts.notFound = 50
	g.flush(500*time.Millisecond, 1500*time.Millisecond)
	g.flush(10*time.Millisecond, 1510*time.Millisecond) // too short to be a sample
	for i, n := range []uint64{10, 300, 0, 90} {
		g.tenantOps[i].Store(n)
		g.tenantLatUS[i].Store(n * 100)
	}
	g.elapsed = 1500 * time.Millisecond

	if len(g.series) != 2 {
		t.Fatalf("%d samples, want 2: %+v", len(g.series), g.series)
	}
	if s := g.series[0]; s.Ops != 400 || s.OpsPerSec != 400 || s.Errors != 7 || s.P50US != 100 {
		t.Errorf("first second: %+v", s)
	}
	if s := g.series[1]; s.Ops != 200 || s.OpsPerSec != 400 || s.P99US < 999 || s.P99US > 1001 {
		t.Errorf("second sample: %+v", s)
	}
	r := g.result(Target{Description: "test"})
	if r.Ops != 600 || r.Throughput != 400 || r.NotFound != 50 || r.RateLimited != 5 || r.ErrorCount != 2 ||
		r.Errors["unavailable"] != 2 || r.OpsByKind["read"] != 600 {
		t.Errorf("result: %+v", r)
	}
	if r.Latency.P50 != 100 || r.Latency.P90 < 999 || r.Latency.P90 > 1001 || r.Latency.Max < 999 || r.Latency.Max > 1001 {
		t.Errorf("latency: %+v", r.Latency)
	}
	if len(r.TopTenants) != 3 || r.TopTenants[0].Name != "bench-000001" || r.TopTenants[1].Name != "bench-000003" ||
		r.TopTenants[0].MeanUS != 100 {
		t.Errorf("top tenants: %+v", r.TopTenants)
	}
	// The workers' counters were taken.
	for i, w := range g.workers {
		if w.counts.ops != 0 || w.hist.TotalCount() != 0 {
			t.Errorf("worker %d still holds %d ops", i, w.counts.ops)
		}
	}
}
