package server

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tenantkv/tenantkv/keyspace"
)

// metricsHandler serves the node's metrics in the Prometheus text format.
// The per-tenant series name every tenant with its traffic and usage, so
// they are served only with Config.MetricsTenantLabels or to a scrape that
// carries an operator token (Authorization: Bearer TOKEN); anyone else gets
// the node's own series alone, whatever token it sends.
func (s *Server) metricsHandler() http.Handler {
	node := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
	all := promhttp.HandlerFor(prometheus.Gatherers{s.registry, s.tenantRegistry}, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.MetricsTenantLabels || s.isOperatorBearer(r) {
			all.ServeHTTP(w, r)
			return
		}
		node.ServeHTTP(w, r)
	})
}

// goCollector is the Go runtime's collector: client_golang's default
// series, and from runtime/metrics the scheduler's latency histogram (how
// long runnable goroutines waited for a thread: the first sign of a node
// short of CPU). Other runtime/metrics series are left out so that the set
// of series, documented in docs/METRICS.md, does not change with the Go
// release.
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/sched/latencies:seconds$`)}))
}

// isOperatorBearer reports whether r carries a valid operator token,
// judged on this node's state alone.
func (s *Server) isOperatorBearer(r *http.Request) bool {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	p, err := s.verifyToken(strings.TrimSpace(secret))
	return err == nil && p.operator
}

// exactUsage returns the FSM's exact usage of tenant id.
func (s *Server) exactUsage(id keyspace.TenantID) (bytes, keys uint64) {
	u, err := s.node.FSM().Usage(id)
	if err != nil {
		return 0, 0
	}
	return u.Bytes, u.Keys
}

// tenantUsage is what the per-tenant series say of a tenant's storage:
// its exact usage and its quotas (0: none).
type tenantUsage struct {
	bytes, keys       uint64
	maxBytes, maxKeys uint64
}

// tenantUsageOf returns the FSM's exact usage of tenant id and its quotas;
// zeros for a tenant the FSM no longer holds.
func (s *Server) tenantUsageOf(id keyspace.TenantID) tenantUsage {
	var tu tenantUsage
	tu.bytes, tu.keys = s.exactUsage(id)
	if t, err := s.node.FSM().TenantByID(id); err == nil {
		tu.maxBytes, tu.maxKeys = t.Limits.MaxBytes, t.Limits.MaxKeys
	}
	return tu
}

var (
	leaderDesc  = prometheus.NewDesc("tenantkv_is_leader", "Whether this node is the raft leader.", nil, nil)
	appliedDesc = prometheus.NewDesc("tenantkv_applied_index", "Last raft index applied to the store.", nil, nil)
	connsDesc   = prometheus.NewDesc("tenantkv_client_connections", "Open client connections.", nil, nil)
)

// nodeCollector exports the node's own series: its role and connections,
// raft's figures (metrics_raft.go) and its storage's (metrics_storage.go).
// None of them names a tenant. A scrape reads raft and Pebble's figures
// once each; its cost does not grow with the data, only with the members.
type nodeCollector struct{ s *Server }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- leaderDesc
	ch <- appliedDesc
	ch <- connsDesc
	for _, d := range raftDescs {
		ch <- d
	}
	for _, d := range storageDescs {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.node.Metrics()
	collectRaft(ch, &m)
	c.s.collectStorage(ch, m.Log)
	leader := 0.0
	if c.s.node.IsLeader() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(appliedDesc, prometheus.GaugeValue, float64(c.s.node.AppliedIndex()))
	c.s.mu.Lock()
	n := len(c.s.conns)
	c.s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(n))
}
