package server

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveHTTP serves the health and metrics endpoints.
func (s *Server) serveHTTP() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.node.Err(); err != nil {
			// The cause (paths, indexes) is in the node's log, not here:
			// the HTTP address needs no token.
			http.Error(w, "node stopped: its storage failed (see its log)", http.StatusServiceUnavailable)
			return
		}
		if !s.started.Load() {
			// Still in Start: a joining node waits there until it has
			// caught up and been promoted to voter.
			http.Error(w, "starting: catching up", http.StatusServiceUnavailable)
			return
		}
		if s.node.AwaitsPromotion() { // a held non-voter serves as it is
			http.Error(w, "catching up: non-voter, not yet promoted", http.StatusServiceUnavailable)
			return
		}
		if id, _ := s.node.Leader(); id == "" {
			http.Error(w, "no leader", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", s.metricsHandler())
	if s.cfg.Debug {
		s.serveDebug(mux)
	}
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.httpSrv.Serve(s.httpLn)
	}()
}

// serveDebug adds the /debug endpoints, which need no token: only a node
// started with Config.Debug (serve --debug) serves them; without it they
// are not found.
func (s *Server) serveDebug(mux *http.ServeMux) {
	// Flushing the memtable changes no data, only where it sits; the bench
	// suite settles every node this way before each measured point.
	mux.HandleFunc("POST /debug/flush", func(w http.ResponseWriter, r *http.Request) {
		if err := s.node.FlushStore(); err != nil {
			http.Error(w, "flush: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// Profiles for operators, on the HTTP address only (loopback by default).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
