package bench

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what one workload run measured. Throughput and latencies count
// the operations that succeeded, a read of a missing key included (it is an
// answer, counted in NotFound too); rate-limited operations are counted in
// RateLimited and other failures in Errors, by class, and neither is in the
// latency histogram.
type Result struct {
	Name   string `json:"name"`
	Series string `json:"series,omitempty"`
	Target string `json:"target"`
	// Params are the workload's parameters, defaults filled in.
	Params Params `json:"workload"`

	Ops         int64            `json:"ops"`
	OpsByKind   map[string]int64 `json:"ops_by_kind"`
	ScanRows    int64            `json:"scan_rows,omitempty"`
	NotFound    int64            `json:"not_found"`
	RateLimited int64            `json:"rate_limited"`
	// Errors counts failed operations by class, such as "unavailable";
	// rate-limited ones are not in it.
	Errors      map[string]int64 `json:"errors"`
	ErrorCount  int64            `json:"error_count"`
	DurationSec float64          `json:"duration_sec"`
	Throughput  float64          `json:"throughput_ops_per_sec"`
	Latency     Latency          `json:"latency_us"`
	// Curve is the latency at percentiles from 0 to 99.999, for plots.
	Curve []PercentilePoint `json:"percentile_curve_us"`
	// PerSecond is the time series of the measured phase.
	PerSecond []Second `json:"per_second"`
	// TopTenants are the busiest tenants; empty for a one-tenant run.
	TopTenants []TenantStat `json:"top_tenants,omitempty"`
	Setup      Setup        `json:"setup"`

	hist *hdrhistogram.Histogram
}

// Params are the parameters of a run, as reports show them.
type Params struct {
	Workload     string  `json:"workload"`
	Keys         int     `json:"keys"`
	KeysPerTen   int     `json:"keys_per_tenant"`
	KeySize      int     `json:"key_size"`
	ValueSize    int     `json:"value_size"`
	Tenants      int     `json:"tenants"`
	TenantSkew   string  `json:"tenant_skew"`
	KeyDist      string  `json:"key_dist"`
	Clients      int     `json:"clients"`
	Conns        int     `json:"conns"`
	DurationSec  float64 `json:"duration_sec"`
	Ops          int64   `json:"ops,omitempty"`
	WarmupSec    float64 `json:"warmup_sec"`
	Load         bool    `json:"load"`
	Stale        bool    `json:"stale"`
	MaxScan      int     `json:"max_scan,omitempty"`
	Seed         uint64  `json:"seed"`
	OpsPerSecCap uint64  `json:"tenant_ops_per_sec_limit,omitempty"`
}

// Latency summarizes a latency histogram, in microseconds.
type Latency struct {
	P50  int64   `json:"p50"`
	P90  int64   `json:"p90"`
	P99  int64   `json:"p99"`
	P999 int64   `json:"p999"`
	Max  int64   `json:"max"`
	Mean float64 `json:"mean"`
}

// PercentilePoint is the latency at one percentile, in microseconds.
type PercentilePoint struct {
	Percentile float64 `json:"p"`
	US         int64   `json:"us"`
}

// Second is one sample of a run's time series.
type Second struct {
	AtSec     float64 `json:"at_sec"` // end of the sample, from the start of the measured phase
	Ops       int64   `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50US     int64   `json:"p50_us"`
	P99US     int64   `json:"p99_us"`
	Errors    int64   `json:"errors"`
}

// TenantStat is one tenant's share of a run.
type TenantStat struct {
	Name   string  `json:"name"`
	Ops    int64   `json:"ops"`
	Share  float64 `json:"share"` // of all the run's operations
	MeanUS float64 `json:"mean_us"`
	Errors int64   `json:"errors"`
}

// Summarize returns the summary of a latency histogram in microseconds.
func Summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50:  h.ValueAtQuantile(50),
		P90:  h.ValueAtQuantile(90),
		P99:  h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9),
		Max:  h.Max(),
		Mean: math.Round(h.Mean()*10) / 10,
	}
}

// PercentileCurve returns the latency at percentiles spaced evenly on the
// scale of 1/(1-p), from 0 to 99.999, and at 100.
func PercentileCurve(h *hdrhistogram.Histogram) []PercentilePoint {
	if h.TotalCount() == 0 {
		return nil
	}
	var out []PercentilePoint
	for i := 0; i <= 50; i++ {
		p := 100 * (1 - math.Pow(10, -float64(i)/10))
		p = math.Round(p*1e6) / 1e6
		out = append(out, PercentilePoint{Percentile: p, US: h.ValueAtQuantile(p)})
	}
	return append(out, PercentilePoint{Percentile: 100, US: h.Max()})
}

// result builds the group's Result once the run is over.
func (g *group) result(target Target) *Result {
	c := g.cfg
	r := &Result{
		Name:   c.Name,
		Series: c.Series,
		Target: target.Description,
		Params: Params{
			Workload: string(c.Workload), Keys: c.Keys, KeysPerTen: len(g.ks.keys),
			KeySize: c.KeySize, ValueSize: c.ValueSize,
			Tenants: c.Tenants, TenantSkew: string(c.TenantSkew), KeyDist: string(c.KeyDist),
			Clients: c.Clients, Conns: c.Conns,
			DurationSec: c.Duration.Seconds(), Ops: c.Ops, WarmupSec: c.Warmup.Seconds(),
			Load: !c.SkipLoad, Stale: c.Stale, Seed: c.Seed,
		},
		Ops:         g.counts.ops,
		OpsByKind:   map[string]int64{},
		ScanRows:    g.counts.scanRows,
		NotFound:    g.counts.notFound,
		RateLimited: g.counts.rateLimited,
		Errors:      map[string]int64{},
		DurationSec: g.elapsed.Seconds(),
		Latency:     Summarize(g.total),
		Curve:       PercentileCurve(g.total),
		PerSecond:   g.series,
		Setup:       g.setupStats,
		hist:        g.total,
	}
	if c.Workload == WorkloadE {
		r.Params.MaxScan = c.MaxScan
	}
	if c.TenantConfig != nil {
		r.Params.OpsPerSecCap = c.TenantConfig.OpsPerSec
	}
	for k := range numOpKinds {
		if n := g.counts.byKind[k]; n > 0 {
			r.OpsByKind[k.String()] = n
		}
	}
	for k, v := range g.counts.errors {
		r.Errors[k] = v
		r.ErrorCount += v
	}
	if r.DurationSec > 0 {
		r.Throughput = math.Round(float64(r.Ops)/r.DurationSec*10) / 10
	}
	if c.Tenants > 1 && c.TopTenants > 0 {
		r.TopTenants = g.topTenants(c.TopTenants, r.Ops)
	}
	return r
}

// topTenants returns the n tenants with the most operations.
func (g *group) topTenants(n int, total int64) []TenantStat {
	idx := make([]int, len(g.tenantOps))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(g.tenantOps[b].Load(), g.tenantOps[a].Load()), cmp.Compare(a, b))
	})
	var out []TenantStat
	for _, i := range idx[:min(n, len(idx))] {
		ops := int64(g.tenantOps[i].Load())
		errs := int64(g.tenantErrs[i].Load())
		if ops == 0 && errs == 0 {
			break
		}
		st := TenantStat{Name: g.ks.tenants[i], Ops: ops, Errors: errs}
		if total > 0 {
			st.Share = math.Round(float64(ops)/float64(total)*1e4) / 1e4
		}
		if ops > 0 {
			st.MeanUS = math.Round(float64(g.tenantLatUS[i].Load())/float64(ops)*10) / 10
		}
		out = append(out, st)
	}
	return out
}

// Summary describes the result on one line: throughput, p50, p99 and
// failures.
func (r *Result) Summary() string {
	s := fmt.Sprintf("%s: %s ops/s, p50 %s, p99 %s", r.Name, thousands(int64(r.Throughput+0.5)),
		formatUS(float64(r.Latency.P50)), formatUS(float64(r.Latency.P99)))
	if r.ErrorCount > 0 {
		s += fmt.Sprintf(", %d errors", r.ErrorCount)
	}
	if r.RateLimited > 0 {
		s += fmt.Sprintf(", %d rate limited", r.RateLimited)
	}
	return s
}
