package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// serveHTTP serves the health and metrics endpoints, and the API under
// /v1/ (httpapi.go).
func (s *Server) serveHTTP() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// Ready means able to serve: started, a leader known, caught up
		// with it (ready.go).
		if why := s.Readiness(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", s.metricsHandler())
	if s.cfg.Debug {
		s.serveDebug(mux)
	}
	// The API under /v1/ (httpapi.go) routes on the escaped path itself:
	// a key is the rest of the path, any bytes, which the mux would clean
	// (merging "//", resolving "..") and redirect.
	api := newHTTPAPI(s)
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/v1" {
			api.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	s.httpSrv = &http.Server{
		Handler:           root,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       httpReadTimeout,
		// No server-wide WriteTimeout: a CPU profile may take longer. The
		// API sets its own write deadline per request, and watches (SSE)
		// extend theirs per event.
		IdleTimeout:    min(s.cfg.IdleTimeout, httpIdleTimeoutMax),
		MaxHeaderBytes: httpMaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer api.forward.CloseIdleConnections()
		_ = s.httpSrv.Serve(httpListener{Listener: s.httpLn, s: s})
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
