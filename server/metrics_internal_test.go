package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// Of Pebble's fsync buckets (every 100µs to 5ms, then exponential), each
// common bound keeps the largest at or under it, with its exact count.
func TestFsyncBuckets(t *testing.T) {
	var bounds []float64
	var cum []uint64
	for i := range 50 { // Pebble's linear part: 0, 100µs, ..., 4.9ms
		bounds = append(bounds, float64(i)*100e-6)
		cum = append(cum, uint64(i))
	}
	for i, b := range []float64{5e-3, 7e-3, 11e-3, 30e-3, 200e-3, 10} {
		bounds = append(bounds, b)
		cum = append(cum, uint64(100+i))
	}
	got := fsyncBuckets(bounds, cum)
	want := map[float64]uint64{
		0:      0,  // 10µs, 20µs, 50µs: only Pebble's 0 is at or under them
		100e-6: 1,  // 100µs
		200e-6: 2,  // 200µs
		500e-6: 5,  // 500µs
		1e-3:   10, // 1ms
		2e-3:   20, // 2ms
		5e-3:   100,
		7e-3:   101, // under 10ms
		11e-3:  102, // under 20ms and 50ms
		30e-3:  103, // under 100ms
		200e-3: 104, // 200ms to 5s
		10:     105, // 10s and beyond
	}
	require.Len(t, got, len(want))
	for b, n := range want {
		found := false
		for gb, gn := range got {
			if gb > b-1e-12 && gb < b+1e-12 {
				require.Equal(t, n, gn, "bucket %v", b)
				found = true
			}
		}
		require.True(t, found, "no bucket %v in %v", b, got)
	}
}

func TestLabelValue(t *testing.T) {
	require.Equal(t, "delete_range", labelValue(wire.OpDeleteRange.String()))
	require.Equal(t, "quota_exceeded", labelValue(wire.CodeQuotaExceeded.String()))
	require.Equal(t, "commit_result_unknown", labelValue(wire.CodeCommitUnknown.String()))
}

// Timing a request allocates nothing, whatever its operation and code
// (unknown ones included).
func TestRequestObserveAllocatesNothing(t *testing.T) {
	var r requestMeters
	ops := []wire.Op{wire.OpGet, wire.OpSet, 255}
	codes := []wire.Code{wire.CodeOK, wire.CodeQuotaExceeded, 9999}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		r.observe(ops[i%3], codes[i%3], time.Duration(i)*time.Microsecond)
		i++
	})
	require.Zero(t, n)
	require.Equal(t, uint64(1001), r.byOp[wire.OpGet].Snapshot().Count+r.byOp[wire.OpSet].Snapshot().Count+r.byOp[255].Snapshot().Count)
	require.Positive(t, r.byCode[len(r.byCode)-1].Load(), "a code past the array is counted as other")
}

func BenchmarkRequestObserve(b *testing.B) {
	var r requestMeters
	b.ReportAllocs()
	d := 180 * time.Microsecond
	for b.Loop() {
		r.observe(wire.OpGet, wire.CodeOK, d)
	}
}

func BenchmarkRequestObserveParallel(b *testing.B) {
	var r requestMeters
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 180 * time.Microsecond
		for pb.Next() {
			r.observe(wire.OpSet, wire.CodeOK, d)
		}
	})
}

// BenchmarkRequestObserveWithClock is what conn.go adds to a request: two
// clock reads and the observation.
func BenchmarkRequestObserveWithClock(b *testing.B) {
	var r requestMeters
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		r.observe(wire.OpGet, wire.CodeOK, time.Since(start))
	}
}
