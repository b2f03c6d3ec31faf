package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tenantkv/tenantkv/keyspace"
)

// The engine's figures move with what the store did: synced commits are
// counted fsyncs, a flush makes an L0 table, and the data sits on disk.
func TestEngineMetrics(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	before := s.ReadOnly().EngineMetrics()
	for i := range 50 {
		b := s.NewBatch()
		v, err := b.Tenant(keyspace.TenantID(7))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Set(fmt.Appendf(nil, "key-%03d", i), make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(uint64(i+1), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	m := s.EngineMetrics()
	if m.FsyncCount < before.FsyncCount+50 {
		t.Errorf("fsyncs %d after 50 synced commits (before: %d)", m.FsyncCount, before.FsyncCount)
	}
	if m.WALBytesWritten < 50*1000 {
		t.Errorf("WAL bytes written %d after 50 KB of values", m.WALBytesWritten)
	}
	if m.L0Files < 1 || m.L0Sublevels < 1 || m.ReadAmp < 1 {
		t.Errorf("after a flush: L0 files %d, sublevels %d, read amp %d", m.L0Files, m.L0Sublevels, m.ReadAmp)
	}
	if m.Flushes < 1 {
		t.Errorf("flushes %d after a flush", m.Flushes)
	}
	if m.DiskUsageBytes < 50*1000/10 { // compressed zeros still take some room
		t.Errorf("disk usage %d bytes", m.DiskUsageBytes)
	}
	checkFsyncBuckets(t, m.FsyncUpperBounds, m.FsyncCumulative, m.FsyncCount)
	// Reads through the block cache are counted.
	r, err := s.Tenant(7)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Get([]byte("key-001")); err != nil {
			t.Fatal(err)
		}
	}
	after := s.EngineMetrics()
	if after.BlockCacheHits+after.BlockCacheMisses <= m.BlockCacheHits+m.BlockCacheMisses {
		t.Errorf("block cache lookups did not grow with reads from a table: %d+%d then %d+%d",
			m.BlockCacheHits, m.BlockCacheMisses, after.BlockCacheHits, after.BlockCacheMisses)
	}
}

func checkFsyncBuckets(t *testing.T, bounds []float64, cum []uint64, count uint64) {
	t.Helper()
	if len(bounds) == 0 || len(bounds) != len(cum) {
		t.Fatalf("%d fsync bounds, %d counts", len(bounds), len(cum))
	}
	if !slices.IsSorted(bounds) || !slices.IsSorted(cum) {
		t.Fatalf("fsync buckets not ascending: %v %v", bounds, cum)
	}
	if cum[len(cum)-1] > count {
		t.Fatalf("last bucket %d above the count %d", cum[len(cum)-1], count)
	}
	// Pebble's buckets are in nanoseconds; ours in seconds: the largest
	// is 10 s.
	if last := bounds[len(bounds)-1]; last < 1 || last > 100 {
		t.Fatalf("largest fsync bound %v s: not converted to seconds?", last)
	}
}
