package server

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Operations and outcomes counted per tenant.
const (
	opGet = iota
	opSet
	opDelete
	opDeleteRange
	opScan
	opBatch
	numOps
)

var opLabels = [numOps]string{"get", "set", "delete", "delete_range", "scan", "batch"}

const (
	outcomeOK = iota
	outcomeNotFound
	outcomeError
	outcomeThrottled
	numOutcomes
)

var outcomeLabels = [numOutcomes]string{"ok", "not_found", "error", "throttled"}

// latencyBuckets are the upper bounds, in seconds, of the per-tenant latency
// histogram.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// maxNamedTenants caps the tenant label's cardinality in /metrics: the
// busiest tenants by requests are named, the rest are summed as "other".
const maxNamedTenants = 100

// tenantStats are one tenant's counters on this node. All fields are atomic.
type tenantStats struct {
	requests     [numOps][numOutcomes]atomic.Uint64
	bytesRead    atomic.Uint64
	bytesWritten atomic.Uint64
	latency      [16]atomic.Uint64 // len(latencyBuckets)+1 buckets; last is +Inf
	latencySumNs atomic.Uint64
}

func (ts *tenantStats) total() (n uint64) {
	for op := range ts.requests {
		for oc := range ts.requests[op] {
			n += ts.requests[op][oc].Load()
		}
	}
	return n
}

// usageTracker holds every tenant's counters on this node and exports them
// to Prometheus. It is safe for concurrent use.
type usageTracker struct {
	tenants sync.Map // keyspace.TenantID -> *tenantStats
	// names resolves a tenant ID to its current name at scrape time, so a
	// rename shows at once; it returns false for a deleted tenant.
	names func(keyspace.TenantID) (string, bool)
	// exact returns the FSM's exact logical bytes and key count, and the
	// tenant's quotas (metrics.go).
	exact func(keyspace.TenantID) tenantUsage

	reqDesc, readDesc, writeDesc, latDesc, bytesDesc, keysDesc *prometheus.Desc
	quotaBytesDesc, quotaKeysDesc                              *prometheus.Desc
}

func newUsageTracker(names func(keyspace.TenantID) (string, bool), exact func(keyspace.TenantID) tenantUsage) *usageTracker {
	return &usageTracker{
		names: names,
		exact: exact,
		reqDesc: prometheus.NewDesc("tenantkv_tenant_requests_total",
			"Requests served by this node, by tenant, operation and outcome.", []string{"tenant", "op", "outcome"}, nil),
		readDesc: prometheus.NewDesc("tenantkv_tenant_read_bytes_total",
			"Bytes of keys and values returned to the tenant by this node.", []string{"tenant"}, nil),
		writeDesc: prometheus.NewDesc("tenantkv_tenant_written_bytes_total",
			"Bytes of keys and values written by the tenant through this node.", []string{"tenant"}, nil),
		latDesc: prometheus.NewDesc("tenantkv_tenant_request_duration_seconds",
			"Latency of the tenant's requests on this node.", []string{"tenant"}, nil),
		bytesDesc: prometheus.NewDesc("tenantkv_tenant_logical_bytes",
			"Exact logical bytes (keys and values) stored by the tenant.", []string{"tenant"}, nil),
		keysDesc: prometheus.NewDesc("tenantkv_tenant_keys",
			"Exact number of keys stored by the tenant.", []string{"tenant"}, nil),
		quotaBytesDesc: prometheus.NewDesc("tenantkv_tenant_quota_bytes",
			"The tenant's quota of logical bytes; absent when it has none.", []string{"tenant"}, nil),
		quotaKeysDesc: prometheus.NewDesc("tenantkv_tenant_quota_keys",
			"The tenant's quota of keys; absent when it has none.", []string{"tenant"}, nil),
	}
}

func (u *usageTracker) stats(id keyspace.TenantID) *tenantStats {
	if v, ok := u.tenants.Load(id); ok {
		return v.(*tenantStats)
	}
	v, _ := u.tenants.LoadOrStore(id, new(tenantStats))
	return v.(*tenantStats)
}

// record counts one request.
func (u *usageTracker) record(id keyspace.TenantID, op, outcome int, d time.Duration, read, written int) {
	ts := u.stats(id)
	ts.requests[op][outcome].Add(1)
	if read > 0 {
		ts.bytesRead.Add(uint64(read))
	}
	if written > 0 {
		ts.bytesWritten.Add(uint64(written))
	}
	sec := d.Seconds()
	i := sort.SearchFloat64s(latencyBuckets, sec)
	ts.latency[i].Add(1)
	ts.latencySumNs.Add(uint64(d.Nanoseconds()))
}

func (u *usageTracker) forget(id keyspace.TenantID) { u.tenants.Delete(id) }

// snapshotFor fills the per-node counters of a tenant's usage.
func (u *usageTracker) snapshotFor(id keyspace.TenantID) (reads, writes, bytesRead, bytesWritten, throttled, errs uint64) {
	v, ok := u.tenants.Load(id)
	if !ok {
		return
	}
	ts := v.(*tenantStats)
	for op := range ts.requests {
		for oc := range ts.requests[op] {
			n := ts.requests[op][oc].Load()
			switch {
			case oc == outcomeThrottled:
				throttled += n
			case oc == outcomeError:
				errs += n
			case op == opGet || op == opScan:
				reads += n
			default:
				writes += n
			}
		}
	}
	return reads, writes, ts.bytesRead.Load(), ts.bytesWritten.Load(), throttled, errs
}

// Describe implements prometheus.Collector.
func (u *usageTracker) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{u.reqDesc, u.readDesc, u.writeDesc, u.latDesc, u.bytesDesc, u.keysDesc, u.quotaBytesDesc, u.quotaKeysDesc} {
		ch <- d
	}
}

type labelled struct {
	id    keyspace.TenantID
	name  string
	stats *tenantStats
	total uint64
}

// Collect implements prometheus.Collector: the busiest tenants by name, the
// rest folded into tenant="other".
func (u *usageTracker) Collect(ch chan<- prometheus.Metric) {
	var all []labelled
	u.tenants.Range(func(k, v any) bool {
		id := k.(keyspace.TenantID)
		name, ok := u.names(id)
		if !ok {
			return true
		}
		ts := v.(*tenantStats)
		all = append(all, labelled{id: id, name: name, stats: ts, total: ts.total()})
		return true
	})
	sort.Slice(all, func(i, j int) bool {
		if all[i].total != all[j].total {
			return all[i].total > all[j].total
		}
		return all[i].name < all[j].name
	})
	other := new(aggregate)
	for i, l := range all {
		if i >= maxNamedTenants {
			other.add(l.stats)
			continue
		}
		one := new(aggregate)
		one.add(l.stats)
		u.emit(ch, l.name, one)
		x := u.exact(l.id)
		ch <- prometheus.MustNewConstMetric(u.bytesDesc, prometheus.GaugeValue, float64(x.bytes), l.name)
		ch <- prometheus.MustNewConstMetric(u.keysDesc, prometheus.GaugeValue, float64(x.keys), l.name)
		if x.maxBytes > 0 {
			ch <- prometheus.MustNewConstMetric(u.quotaBytesDesc, prometheus.GaugeValue, float64(x.maxBytes), l.name)
		}
		if x.maxKeys > 0 {
			ch <- prometheus.MustNewConstMetric(u.quotaKeysDesc, prometheus.GaugeValue, float64(x.maxKeys), l.name)
		}
	}
	if len(all) > maxNamedTenants {
		u.emit(ch, "other", other)
	}
}

// aggregate sums tenantStats for export.
type aggregate struct {
	requests     [numOps][numOutcomes]uint64
	read, write  uint64
	latency      [16]uint64
	latencySumNs uint64
}

func (a *aggregate) add(ts *tenantStats) {
	for op := range ts.requests {
		for oc := range ts.requests[op] {
			a.requests[op][oc] += ts.requests[op][oc].Load()
		}
	}
	a.read += ts.bytesRead.Load()
	a.write += ts.bytesWritten.Load()
	for i := range ts.latency {
		a.latency[i] += ts.latency[i].Load()
	}
	a.latencySumNs += ts.latencySumNs.Load()
}

func (u *usageTracker) emit(ch chan<- prometheus.Metric, tenant string, a *aggregate) {
	for op := range a.requests {
		for oc, n := range a.requests[op] {
			if n == 0 {
				continue
			}
			ch <- prometheus.MustNewConstMetric(u.reqDesc, prometheus.CounterValue, float64(n), tenant, opLabels[op], outcomeLabels[oc])
		}
	}
	ch <- prometheus.MustNewConstMetric(u.readDesc, prometheus.CounterValue, float64(a.read), tenant)
	ch <- prometheus.MustNewConstMetric(u.writeDesc, prometheus.CounterValue, float64(a.write), tenant)
	buckets := make(map[float64]uint64, len(latencyBuckets))
	var cum uint64
	for i, ub := range latencyBuckets {
		cum += a.latency[i]
		buckets[ub] = cum
	}
	count := cum + a.latency[len(latencyBuckets)]
	ch <- prometheus.MustNewConstHistogram(u.latDesc, count, float64(a.latencySumNs)/1e9, buckets, tenant)
}
