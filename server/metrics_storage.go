package server

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantkv/tenantkv/store/raftlog"
)

// The storage series of /metrics (docs/METRICS.md): the figures of the two
// Pebble instances of a node, the data store (db="store") and the raft log
// (db="raft_log", absent with a bolt raft log), and the space left on the
// data directory's file system.

var (
	pebbleL0FilesDesc = prometheus.NewDesc("tenantkv_pebble_l0_files",
		"Tables in level 0.", []string{"db"}, nil)
	pebbleL0SublevelsDesc = prometheus.NewDesc("tenantkv_pebble_l0_sublevels",
		"Sublevels of level 0; Pebble stops writes when they reach 12.", []string{"db"}, nil)
	pebbleReadAmpDesc = prometheus.NewDesc("tenantkv_pebble_read_amplification",
		"Read amplification: level 0's sublevels plus the non-empty levels below.", []string{"db"}, nil)
	pebbleDebtDesc = prometheus.NewDesc("tenantkv_pebble_compaction_debt_bytes",
		"Estimated bytes compactions must rewrite to bring the tree back into shape.", []string{"db"}, nil)
	pebbleCompactionsDesc = prometheus.NewDesc("tenantkv_pebble_compactions_total",
		"Compactions completed since the node started.", []string{"db"}, nil)
	pebbleCompactingDesc = prometheus.NewDesc("tenantkv_pebble_compactions_in_progress",
		"Compactions running now.", []string{"db"}, nil)
	pebbleFlushesDesc = prometheus.NewDesc("tenantkv_pebble_flushes_total",
		"Memtable flushes completed since the node started.", []string{"db"}, nil)
	pebbleMemtableDesc = prometheus.NewDesc("tenantkv_pebble_memtable_bytes",
		"Bytes in memtables, the mutable one and those waiting to be flushed.", []string{"db"}, nil)
	pebbleWALDesc = prometheus.NewDesc("tenantkv_pebble_wal_bytes",
		"Live data in the write-ahead log: not yet flushed into tables, replayed by a restart.", []string{"db"}, nil)
	pebbleWALWrittenDesc = prometheus.NewDesc("tenantkv_pebble_wal_written_bytes_total",
		"Bytes written to the write-ahead log since the node started.", []string{"db"}, nil)
	pebbleDiskDesc = prometheus.NewDesc("tenantkv_pebble_disk_usage_bytes",
		"Bytes the instance holds on disk: tables, WAL, manifest, compactions in progress.", []string{"db"}, nil)
	pebbleCacheHitsDesc = prometheus.NewDesc("tenantkv_pebble_block_cache_hits_total",
		"Block cache lookups that found the block.", []string{"db"}, nil)
	pebbleCacheMissesDesc = prometheus.NewDesc("tenantkv_pebble_block_cache_misses_total",
		"Block cache lookups that had to read the block from disk.", []string{"db"}, nil)
	pebbleCacheBytesDesc = prometheus.NewDesc("tenantkv_pebble_block_cache_bytes",
		"Bytes in use in the block cache.", []string{"db"}, nil)
	pebbleFsyncDesc = prometheus.NewDesc("tenantkv_pebble_wal_fsync_duration_seconds",
		"Latency of the write-ahead log's fsyncs, as Pebble measures them (for db=raft_log, every raft log append's fsync).", []string{"db"}, nil)
	diskCapacityDesc = prometheus.NewDesc("tenantkv_disk_capacity_bytes",
		"Size of the file system holding the data directory.", nil, nil)
	diskAvailableDesc = prometheus.NewDesc("tenantkv_disk_available_bytes",
		"Bytes still available to the node on the file system holding the data directory.", nil, nil)
)

var storageDescs = []*prometheus.Desc{
	pebbleL0FilesDesc, pebbleL0SublevelsDesc, pebbleReadAmpDesc, pebbleDebtDesc, pebbleCompactionsDesc,
	pebbleCompactingDesc, pebbleFlushesDesc, pebbleMemtableDesc, pebbleWALDesc, pebbleWALWrittenDesc,
	pebbleDiskDesc, pebbleCacheHitsDesc, pebbleCacheMissesDesc, pebbleCacheBytesDesc, pebbleFsyncDesc,
	diskCapacityDesc, diskAvailableDesc,
}

// collectPebble emits the series of one Pebble instance, labelled db.
func collectPebble(ch chan<- prometheus.Metric, db string, m *raftlog.Metrics) {
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, db)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, db)
	}
	gauge(pebbleL0FilesDesc, float64(m.L0Files))
	gauge(pebbleL0SublevelsDesc, float64(m.L0Sublevels))
	gauge(pebbleReadAmpDesc, float64(m.ReadAmp))
	gauge(pebbleDebtDesc, float64(m.CompactionDebtBytes))
	counter(pebbleCompactionsDesc, float64(m.Compactions))
	gauge(pebbleCompactingDesc, float64(m.CompactionsInProgress))
	counter(pebbleFlushesDesc, float64(m.Flushes))
	gauge(pebbleMemtableDesc, float64(m.MemTableBytes))
	gauge(pebbleWALDesc, float64(m.WALBytes))
	counter(pebbleWALWrittenDesc, float64(m.WALBytesWritten))
	gauge(pebbleDiskDesc, float64(m.DiskUsageBytes))
	counter(pebbleCacheHitsDesc, float64(m.BlockCacheHits))
	counter(pebbleCacheMissesDesc, float64(m.BlockCacheMisses))
	gauge(pebbleCacheBytesDesc, float64(m.BlockCacheBytes))
	if len(m.FsyncUpperBounds) == len(m.FsyncCumulative) && len(m.FsyncCumulative) > 0 {
		ch <- prometheus.MustNewConstHistogram(pebbleFsyncDesc, m.FsyncCount, m.FsyncSumSeconds,
			fsyncBuckets(m.FsyncUpperBounds, m.FsyncCumulative), db)
	}
}

// fsyncBuckets picks, of Pebble's fsync buckets (a hundred: every 100µs up
// to 5ms, then exponential to 10s), the ones nearest below each of the
// latency histograms' bounds: for each bound, Pebble's largest bucket at
// or under it, kept with its own upper bound and count, so that every
// bucket exported is exact and there are about as many as for the other
// latency histograms. bounds and cumulative are Pebble's, ascending.
func fsyncBuckets(bounds []float64, cumulative []uint64) map[float64]uint64 {
	out := make(map[float64]uint64, len(latencyBoundsSeconds))
	for _, want := range latencyBoundsSeconds {
		// The first of Pebble's bounds above want; the one before it is
		// the largest at or under it.
		i := sort.Search(len(bounds), func(i int) bool { return bounds[i] > want })
		if i > 0 {
			out[bounds[i-1]] = cumulative[i-1]
		}
	}
	return out
}

// collectStorage emits the store's and the raft log's Pebble series and
// the data directory's disk space.
func (s *Server) collectStorage(ch chan<- prometheus.Metric, log *raftlog.Metrics) {
	st := s.store.EngineMetrics() // a raftlog.Metrics too
	collectPebble(ch, "store", &st)
	if log != nil {
		collectPebble(ch, "raft_log", log)
	}
	if capacity, avail, ok := diskSpace(s.cfg.DataDir); ok {
		ch <- prometheus.MustNewConstMetric(diskCapacityDesc, prometheus.GaugeValue, float64(capacity))
		ch <- prometheus.MustNewConstMetric(diskAvailableDesc, prometheus.GaugeValue, float64(avail))
	}
}
