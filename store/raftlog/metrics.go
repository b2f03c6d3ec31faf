package raftlog

import (
	"github.com/cockroachdb/pebble/v2"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are figures of a Pebble instance at one moment, in plain types, so
// that /metrics can report them without its package importing Pebble: the
// log's own, and the data store's (store.EngineMetrics is this type).
type Metrics struct {
	// L0Files and L0Sublevels describe level 0, where flushed memtables
	// land: many sublevels mean every read looks at many tables, and
	// Pebble stops writes when they reach its L0StopWritesThreshold.
	L0Files     int64
	L0Sublevels int64
	// ReadAmp is the read amplification: L0's sublevels plus every
	// non-empty level below.
	ReadAmp int64
	// CompactionDebtBytes is Pebble's estimate of the bytes compactions
	// must rewrite to bring the tree back into shape.
	CompactionDebtBytes uint64
	// Compactions and Flushes count those completed since Open;
	// CompactionsInProgress is the number running now.
	Compactions           int64
	CompactionsInProgress int64
	Flushes               int64
	// MemTableBytes is the size of the memtables, the mutable one and
	// those waiting for a flush.
	MemTableBytes uint64
	// WALBytes is the live data in the write-ahead log: what is not yet
	// flushed into tables, and would be replayed by a restart.
	// WALBytesWritten counts the bytes written to the WAL since Open.
	WALBytes        uint64
	WALBytesWritten uint64
	// DiskUsageBytes is all the log's Pebble holds on disk: tables (live and
	// awaiting deletion), the WAL, the manifest and options files, and
	// compactions' output in progress.
	DiskUsageBytes uint64
	// BlockCacheHits and BlockCacheMisses count block cache lookups
	// since Open; BlockCacheBytes is the cache's size in use. The block
	// cache is the log's own.
	BlockCacheHits   int64
	BlockCacheMisses int64
	BlockCacheBytes  int64
	// The latency of the WAL's fsyncs since Open, as Pebble measures it:
	// FsyncUpperBounds are its buckets' upper bounds in seconds
	// (ascending, +Inf left out), FsyncCumulative[i] the number of fsyncs
	// that took at most FsyncUpperBounds[i], FsyncCount all fsyncs and
	// FsyncSumSeconds their total time. Empty when Pebble does not
	// measure them.
	FsyncUpperBounds []float64
	FsyncCumulative  []uint64
	FsyncCount       uint64
	FsyncSumSeconds  float64
}

// Metrics returns the figures of the log's Pebble, read from Pebble's
// Metrics (see it for their exact meaning), or ErrClosed. It takes Pebble's
// metrics lock briefly and allocates a little (the fsync buckets); it is
// meant for a scrape, not a hot path.
func (l *Log) Metrics() (Metrics, error) {
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed {
		return Metrics{}, ErrClosed
	}
	return MetricsOf(l.db), nil
}

// MetricsOf reads the figures of db from Pebble's Metrics.
func MetricsOf(db *pebble.DB) Metrics {
	m := db.Metrics()
	e := Metrics{
		L0Files:               m.Levels[0].TablesCount,
		L0Sublevels:           int64(m.Levels[0].Sublevels),
		ReadAmp:               int64(m.ReadAmp()),
		CompactionDebtBytes:   m.Compact.EstimatedDebt,
		Compactions:           m.Compact.Count,
		CompactionsInProgress: m.Compact.NumInProgress,
		Flushes:               m.Flush.Count,
		MemTableBytes:         m.MemTable.Size,
		WALBytes:              m.WAL.Size,
		WALBytesWritten:       m.WAL.BytesWritten,
		DiskUsageBytes:        m.DiskSpaceUsage(),
		BlockCacheHits:        m.BlockCache.Hits,
		BlockCacheMisses:      m.BlockCache.Misses,
		BlockCacheBytes:       m.BlockCache.Size,
	}
	if h := m.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if err := h.Write(&d); err == nil && d.Histogram != nil {
			// Pebble observes nanoseconds. Every append to the raft
			// log is synced, so there these are the log's fsyncs.
			for _, b := range d.Histogram.Bucket {
				e.FsyncUpperBounds = append(e.FsyncUpperBounds, b.GetUpperBound()/1e9)
				e.FsyncCumulative = append(e.FsyncCumulative, b.GetCumulativeCount())
			}
			e.FsyncCount = d.Histogram.GetSampleCount()
			e.FsyncSumSeconds = d.Histogram.GetSampleSum() / 1e9
		}
	}
	return e
}
