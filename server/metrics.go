package server

import (
	"fmt"
	"net/http"
)

// metricsHandler serves node-level metrics in the Prometheus text format.
// Per-tenant metrics arrive with the tenants issue.
func (s *Server) metricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		leader := 0
		if s.node.IsLeader() {
			leader = 1
		}
		fmt.Fprintf(w, "# HELP tenantkv_is_leader Whether this node is the raft leader.\n# TYPE tenantkv_is_leader gauge\ntenantkv_is_leader %d\n", leader)
		fmt.Fprintf(w, "# HELP tenantkv_applied_index Last raft index applied to the store.\n# TYPE tenantkv_applied_index gauge\ntenantkv_applied_index %d\n", s.node.AppliedIndex())
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		fmt.Fprintf(w, "# HELP tenantkv_client_connections Open client connections.\n# TYPE tenantkv_client_connections gauge\ntenantkv_client_connections %d\n", n)
	})
}
