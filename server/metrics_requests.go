package server

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantkv/tenantkv/internal/latency"
	"github.com/tenantkv/tenantkv/internal/wire"
)

// requestMeters time every request a connection hands to handle, by
// operation, and count the answers by code. Observing costs three atomic
// additions and no allocation (BenchmarkRequestObserve), so every request
// is timed; nothing here names a tenant, so the series go to every scrape.
// The zero value is ready. It is safe for concurrent use.
type requestMeters struct {
	// byOp is indexed by the operation's byte: no lookup on the hot path.
	// Operations this version does not know are timed too but never
	// exported (their answers are counted as unknown_operation).
	byOp [256]latency.Histogram
	// byCode counts answers by code; codes past the array share its last
	// slot, exported as "other".
	byCode [64]atomic.Uint64
}

var (
	requestDurationDesc = prometheus.NewDesc("tenantkv_request_duration_seconds",
		"Time from a request's decoding to its answer, by operation (a watch: its whole wait).", []string{"op"}, nil)
	responsesDesc = prometheus.NewDesc("tenantkv_responses_total",
		"Answers to requests, by code (ok, not_found, quota_exceeded, ...).", []string{"code"}, nil)
)

// observe records one request's operation, answer code and duration.
func (r *requestMeters) observe(op wire.Op, code wire.Code, d time.Duration) {
	r.byOp[op].Observe(d)
	r.byCode[min(int(code), len(r.byCode)-1)].Add(1)
}

// Describe implements prometheus.Collector.
func (r *requestMeters) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestDurationDesc
	ch <- responsesDesc
}

// Collect implements prometheus.Collector: one histogram per operation
// served at least once since start, one counter per code answered.
func (r *requestMeters) Collect(ch chan<- prometheus.Metric) {
	for op := range r.byOp {
		o := wire.Op(op)
		if !o.Known() {
			continue
		}
		s := r.byOp[op].Snapshot()
		if s.Count == 0 {
			continue
		}
		ch <- latencyHistogram(requestDurationDesc, s, labelValue(o.String()))
	}
	for c := range r.byCode {
		n := r.byCode[c].Load()
		if n == 0 {
			continue
		}
		name := "other"
		if c < len(r.byCode)-1 {
			name = labelValue(wire.Code(c).String())
		}
		ch <- prometheus.MustNewConstMetric(responsesDesc, prometheus.CounterValue, float64(n), name)
	}
}

// labelValue spells a wire name as the label values of /metrics are
// spelled: "delete-range" and "quota exceeded" become delete_range and
// quota_exceeded.
func labelValue(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return '_'
		}
		return r
	}, name)
}

// latencyBoundsSeconds are latency.Bounds in seconds, the le labels of
// every latency histogram.
var latencyBoundsSeconds = func() []float64 {
	var out []float64
	for _, b := range latency.Bounds() {
		out = append(out, b.Seconds())
	}
	return out
}()

// latencyHistogram exports a latency snapshot as a Prometheus histogram.
func latencyHistogram(desc *prometheus.Desc, s latency.Snapshot, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latencyBoundsSeconds))
	var cum uint64
	for i, ub := range latencyBoundsSeconds {
		cum += s.Counts[i]
		buckets[ub] = cum
	}
	return prometheus.MustNewConstHistogram(desc, s.Count, s.Sum.Seconds(), buckets, labels...)
}
