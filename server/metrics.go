package server

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
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

var (
	leaderDesc  = prometheus.NewDesc("tenantkv_is_leader", "Whether this node is the raft leader.", nil, nil)
	appliedDesc = prometheus.NewDesc("tenantkv_applied_index", "Last raft index applied to the store.", nil, nil)
	connsDesc   = prometheus.NewDesc("tenantkv_client_connections", "Open client connections.", nil, nil)
)

// nodeCollector exports node-level gauges.
type nodeCollector struct{ s *Server }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- leaderDesc
	ch <- appliedDesc
	ch <- connsDesc
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
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
