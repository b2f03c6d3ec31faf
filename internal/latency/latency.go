// Package latency is a fixed-bucket histogram of durations that costs two
// atomic additions and no allocation per observation, for the hot paths
// that /metrics reports on (every client request, every raft log append).
//
// Every Histogram has the same buckets (Bounds), so that one node's
// histograms can be summed and compared, and dashboards can use one set of
// quantile queries for all of them. The bounds step 1-2-5 from 10µs to
// 100s: fine enough below a millisecond for an fsync or an in-memory read,
// wide enough for a snapshot of gigabytes.
//
// A Snapshot is read bucket by bucket while observations go on, so its
// count and sum may disagree by the few observations that landed during
// the read; each bucket's count is exact. That is what a scrape needs: no
// lock is ever taken by Observe.
package latency

import (
	"sync/atomic"
	"time"
)

// bounds are the buckets' inclusive upper bounds, ascending. The last
// bucket, past them, is unbounded (+Inf).
var bounds = [...]time.Duration{
	10 * time.Microsecond, 20 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second,
	10 * time.Second, 20 * time.Second, 50 * time.Second,
	100 * time.Second,
}

// NumBuckets is the number of buckets of every Histogram: one per bound
// and the unbounded one.
const NumBuckets = len(bounds) + 1

// Bounds returns the buckets' upper bounds, ascending, in a new slice the
// caller may keep. Bucket i of a Snapshot counts observations d with
// Bounds()[i-1] < d <= Bounds()[i]; the last bucket those above every bound.
func Bounds() []time.Duration { return append([]time.Duration(nil), bounds[:]...) }

// Histogram counts durations into the fixed buckets. The zero value is an
// empty histogram ready for use. It is safe for concurrent use and must not
// be copied after first use.
type Histogram struct {
	counts [NumBuckets]atomic.Uint64
	sumNs  atomic.Uint64
}

// Observe counts one duration. A negative duration (a clock stepped back)
// counts as zero.
func (h *Histogram) Observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucket(d)].Add(1)
	h.sumNs.Add(uint64(d))
}

// ObserveSince counts the time elapsed since start; `defer
// h.ObserveSince(time.Now())` times the rest of a function.
func (h *Histogram) ObserveSince(start time.Time) { h.Observe(time.Since(start)) }

// bucket returns the index of the first bound at or above d (NumBuckets-1
// when d is above all of them): a binary search over the constant bounds,
// five comparisons without a call.
func bucket(d time.Duration) int {
	lo, hi := 0, len(bounds)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if bounds[mid] < d {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Snapshot is a histogram's counts at one moment.
type Snapshot struct {
	// Counts holds each bucket's count, not cumulated; Counts[i] belongs
	// to Bounds()[i], the last to +Inf.
	Counts [NumBuckets]uint64
	// Count is the sum of Counts.
	Count uint64
	// Sum is the sum of every observed duration.
	Sum time.Duration
}

// Snapshot reads the histogram. It may run concurrently with Observe (see
// the package comment for what that means for Count and Sum).
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sumNs.Load())
	return s
}
