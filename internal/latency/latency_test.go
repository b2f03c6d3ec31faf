package latency

import (
	"sync"
	"testing"
	"time"
)

func TestBoundsAscending(t *testing.T) {
	b := Bounds()
	if len(b) != NumBuckets-1 {
		t.Fatalf("%d bounds for %d buckets", len(b), NumBuckets)
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Fatalf("bounds not strictly ascending at %d: %v", i, b)
		}
	}
	b[0] = time.Hour // the caller's copy
	if Bounds()[0] == time.Hour {
		t.Fatal("Bounds returned the histogram's own array")
	}
}

// Each duration lands in the bucket of the first bound at or above it: a
// value equal to a bound is in that bound's bucket (Prometheus's le).
func TestObserveBuckets(t *testing.T) {
	b := Bounds()
	cases := []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0},
		{0, 0},
		{b[0], 0},
		{b[0] + 1, 1},
		{b[1], 1},
		{b[5] - 1, 5},
		{b[len(b)-1], len(b) - 1},
		{b[len(b)-1] + 1, NumBuckets - 1},
		{time.Duration(1<<63 - 1), NumBuckets - 1},
	}
	for _, c := range cases {
		var h Histogram
		h.Observe(c.d)
		s := h.Snapshot()
		for i, n := range s.Counts {
			if i == c.want {
				if n != 1 {
					t.Errorf("Observe(%v): bucket %d holds %d, want 1", c.d, i, n)
				}
			} else if n != 0 {
				t.Errorf("Observe(%v): bucket %d holds %d, want 0 (expected bucket %d)", c.d, i, n, c.want)
			}
		}
		if s.Count != 1 {
			t.Errorf("Observe(%v): count %d", c.d, s.Count)
		}
		if want := max(c.d, 0); s.Sum != want {
			t.Errorf("Observe(%v): sum %v, want %v", c.d, s.Sum, want)
		}
	}
	// Every bound in turn, against a linear search.
	for i, bound := range b {
		for _, d := range []time.Duration{bound - 1, bound, bound + 1} {
			want := NumBuckets - 1
			for j, ub := range b {
				if d <= ub {
					want = j
					break
				}
			}
			if got := bucket(d); got != want {
				t.Errorf("bucket(%v) near bound %d = %d, want %d", d, i, got, want)
			}
		}
	}
}

// Concurrent observers lose nothing.
func TestObserveConcurrent(t *testing.T) {
	var h Histogram
	const workers, each = 4, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				h.Observe(time.Duration(w*each+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count != workers*each {
		t.Fatalf("count %d, want %d", s.Count, workers*each)
	}
	var sum time.Duration
	for i := range workers * each {
		sum += time.Duration(i) * time.Microsecond
	}
	if s.Sum != sum {
		t.Fatalf("sum %v, want %v", s.Sum, sum)
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	var h Histogram
	d := 3 * time.Millisecond
	if n := testing.AllocsPerRun(1000, func() { h.Observe(d) }); n != 0 {
		t.Fatalf("Observe allocates %v times per call", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	var h Histogram
	ds := []time.Duration{15 * time.Microsecond, 300 * time.Microsecond, 4 * time.Millisecond, 2 * time.Second}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Observe(ds[i&3])
		i++
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 250 * time.Microsecond
		for pb.Next() {
			h.Observe(d)
		}
	})
}
