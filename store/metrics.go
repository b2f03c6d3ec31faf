package store

import "github.com/tenantkv/tenantkv/store/raftlog"

// EngineMetrics are figures of the store's Pebble engine at one moment, in
// plain types (raftlog.Metrics, which the raft log's Pebble reports too), so
// that /metrics can report them without its package importing Pebble.
type EngineMetrics = raftlog.Metrics

// EngineMetrics returns the engine's figures, read from Pebble's Metrics
// (see it for their exact meaning). It takes Pebble's metrics
// lock briefly and allocates a little (the fsync buckets); it is meant for
// a scrape, not a hot path. The store must be open.
func (s *Store) EngineMetrics() EngineMetrics { return raftlog.MetricsOf(s.db) }

// EngineMetrics returns the engine's figures (Store.EngineMetrics).
func (r *ReadOnly) EngineMetrics() EngineMetrics { return r.s.EngineMetrics() }
