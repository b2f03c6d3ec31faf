package raftlog

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// testSeed returns the seed of a randomized test: TENANTKV_SEED when it is
// set (as internal/testcluster.Seed reads it; that package is out of
// store's reach), else the clock. It logs the seed so a failure replays.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TENANTKV_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			u, uerr := strconv.ParseUint(v, 10, 64)
			require.NoError(t, uerr, "TENANTKV_SEED=%q: want an integer", v)
			n = int64(u)
		}
		seed = uint64(n)
	}
	t.Logf("seed %d (TENANTKV_SEED=%d replays it)", int64(seed), int64(seed))
	return seed
}

// scanAll returns every entry of l's Pebble, and fails the test on any key
// that is not an entry key.
func scanAll(t *testing.T, l *Log) map[uint64][]byte {
	t.Helper()
	it, err := l.db.NewIter(nil)
	require.NoError(t, err)
	defer it.Close()
	got := map[uint64][]byte{}
	for ok := it.First(); ok; ok = it.Next() {
		idx, err := parseKey(it.Key())
		require.NoError(t, err)
		got[idx] = append([]byte{}, it.Value()...)
	}
	require.NoError(t, it.Error())
	return got
}

// crashValue is the value appended at index in generation gen: its length
// (0 to 2 KiB) and bytes follow from both, so a goroutine needs no shared
// generator and a wrong or stale value is told from the right one.
func crashValue(index uint64, gen int) []byte {
	h := fnv.New64a()
	_ = binary.Write(h, binary.LittleEndian, [2]uint64{index, uint64(gen)})
	s := h.Sum64()
	v := make([]byte, int(s%2049))
	r := rand.New(rand.NewPCG(s, index))
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

// crashRun is Entries at consecutive indexes from first, in generation gen.
func crashRun(first uint64, n, gen int) *Run {
	r := &Run{First: first}
	for i := range n {
		r.Values = append(r.Values, crashValue(first+uint64(i), gen))
	}
	return r
}

// TestCrashSafety appends to and truncates a log on Pebble's crashable
// file system, alone and from several goroutines at once, and at random
// points takes what a power cut would leave (CrashClone, keeping a random
// share of the unsynced writes), reopens the log on it, and checks it:
// every acknowledged append is there with its exact bytes, every
// acknowledged range deletion is in effect, nothing is there that was never
// appended, and the bounds are those of what is there. The test then
// carries on from the crashed copy. Memtables are small, so crashes also
// land in flushes, compactions and WAL rotations. TENANTKV_SEED replays the
// choices of the test; the interleaving of the appenders is the
// scheduler's.
func TestCrashSafety(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	steps := 300
	if testing.Short() {
		steps = 60
	}
	opts := Options{MemTableSize: 64 << 10}
	fs := vfs.NewCrashableMem()
	open := func() *Log {
		t.Helper()
		o := opts
		o.FS = fs
		l, err := Open("log", o)
		require.NoError(t, err)
		return l
	}
	l := open()
	defer func() { _ = l.Close() }()
	// model is exactly what the log holds: every write so far was
	// acknowledged.
	model := map[uint64][]byte{}
	gen := 0
	crashes := 0
	crash := func() *vfs.MemFS {
		crashes++
		return fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: []int{0, 10, 50, 90, 100}[rng.IntN(5)], RNG: rng})
	}
	reopenOn := func(crashed *vfs.MemFS) *Log {
		t.Helper()
		require.NoError(t, l.Close())
		fs = crashed
		l = open()
		return l
	}
	bounds := func() (uint64, uint64) { return l.FirstIndex(), l.LastIndex() }

	for step := range steps {
		gen++
		first, last := bounds()
		switch p := rng.IntN(100); {
		case p < 50: // raft appends after its last entry
			n := 1 + rng.IntN(8)
			r := crashRun(last+1, n, gen)
			require.NoError(t, l.Append(r))
			for i, v := range r.Values {
				model[r.First+uint64(i)] = v
			}
		case p < 60 && last > 0: // a conflicting suffix replaced
			from := first + rng.Uint64N(last-first+1)
			require.NoError(t, l.DeleteRange(from, last))
			for i := from; i <= last; i++ {
				delete(model, i)
			}
			r := crashRun(from, 1+rng.IntN(4), gen)
			require.NoError(t, l.Append(r))
			for i, v := range r.Values {
				model[r.First+uint64(i)] = v
			}
		case p < 70 && last > 0: // compaction after a snapshot
			to := first + rng.Uint64N(last-first+1)
			require.NoError(t, l.DeleteRange(first, to))
			for i := first; i <= to; i++ {
				delete(model, i)
			}
		case p < 85:
			// Appenders at once, a truncation acknowledged meanwhile,
			// and a crash while they still write.
			model = crashDuringAppends(t, l, model, gen, rng, crash, reopenOn)
			continue
		default:
			reopenOn(crash())
		}
		requireCrashLog(t, l, model, fmt.Sprintf("step %d", step))
	}
	t.Logf("%d steps, %d crashes, log [%d, %d]", steps, crashes, l.FirstIndex(), l.LastIndex())
}

// crashDuringAppends runs four appenders at consecutive indexes after the
// last, truncates a prefix of the log meanwhile, crashes once some appends
// are acknowledged, reopens the log on the crashed copy, checks it against
// base (the log before) and what was acknowledged before the crash, and
// returns what the log now holds.
func crashDuringAppends(t *testing.T, l *Log, base map[uint64][]byte, gen int, rng *rand.Rand,
	crash func() *vfs.MemFS, reopenOn func(*vfs.MemFS) *Log) map[uint64][]byte {
	t.Helper()
	first, last := l.FirstIndex(), l.LastIndex()
	var next atomic.Uint64
	next.Store(last)
	var mu sync.Mutex
	attempted := map[uint64][]byte{} // every value an appender tried
	acked := map[uint64][]byte{}     // those whose Append returned nil
	ackCh := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for range 8 {
				n := 1 + int(next.Load()%3)
				from := next.Add(uint64(n)) - uint64(n) + 1
				r := crashRun(from, n, gen)
				mu.Lock()
				for i, v := range r.Values {
					attempted[from+uint64(i)] = v
				}
				mu.Unlock()
				if err := l.Append(r); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for i, v := range r.Values {
					acked[from+uint64(i)] = v
				}
				mu.Unlock()
				ackCh <- struct{}{}
			}
		})
	}
	// A truncation of the old entries, acknowledged before the crash.
	var truncTo uint64
	if last > 0 {
		truncTo = first + rng.Uint64N(last-first+1)
		require.NoError(t, l.DeleteRange(first, truncTo))
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
wait:
	for range 1 + rng.IntN(12) {
		select {
		case <-ackCh:
		case <-done: // an appender failed: reported below
			break wait
		}
	}
	mu.Lock()
	sure := maps.Clone(acked)
	mu.Unlock()
	crashed := crash()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	l = reopenOn(crashed)

	got := scanAll(t, l)
	for i, v := range base {
		if truncTo > 0 && i <= truncTo {
			require.NotContains(t, got, i, "entry %d survived its acknowledged deletion", i)
			continue
		}
		require.Equal(t, v, got[i], "entry %d from before the appenders", i)
	}
	for i, v := range sure {
		require.Equal(t, v, got[i], "entry %d acknowledged before the crash", i)
	}
	for i, v := range got {
		if _, ok := base[i]; ok {
			continue
		}
		want, ok := attempted[i]
		require.True(t, ok, "entry %d was never appended", i)
		require.Equal(t, want, v, "entry %d", i)
	}
	requireCrashLog(t, l, got, "after appenders")
	return got
}

// requireCrashLog checks that l holds exactly want, with bounds to match,
// and that Get agrees with what is on disk around the bounds.
func requireCrashLog(t *testing.T, l *Log, want map[uint64][]byte, where string) {
	t.Helper()
	got := scanAll(t, l)
	require.Equal(t, len(want), len(got), "%s: number of entries", where)
	for i, v := range want {
		require.Equal(t, v, got[i], "%s: entry %d", where, i)
	}
	var first, last uint64
	for i := range want {
		if first == 0 || i < first {
			first = i
		}
		last = max(last, i)
	}
	require.Equal(t, first, l.FirstIndex(), "%s: first index", where)
	require.Equal(t, last, l.LastIndex(), "%s: last index", where)
	if last > 0 {
		v, err := l.Get(last, nil)
		require.NoError(t, err, where)
		require.Equal(t, want[last], v, where)
	}
	_, err := l.Get(last+1, nil)
	require.ErrorIs(t, err, ErrNotFound, "%s: entry past the last", where)
	if first > 1 {
		_, err := l.Get(first-1, nil)
		require.ErrorIs(t, err, ErrNotFound, "%s: entry before the first", where)
	}
}
