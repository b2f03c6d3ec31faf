package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// openDisk opens a log in a fresh directory on the real disk and closes it
// at the end of the test unless the test did.
func openDisk(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := Open(dir, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// value is the test value of entry index, in generation gen: its length
// varies with the index (0 included) and its bytes say what they are.
func value(index uint64, gen int) []byte {
	v := fmt.Appendf(nil, "entry %d gen %d;", index, gen)
	return bytes.Repeat(v, int(index%5))
}

func run(first, last uint64, gen int) *Run {
	r := &Run{First: first}
	for i := first; i <= last; i++ {
		r.Values = append(r.Values, value(i, gen))
	}
	return r
}

// requireLog checks that l holds exactly the entries of want (index to
// value), and that its bounds are want's lowest and highest index.
func requireLog(t *testing.T, l *Log, want map[uint64][]byte) {
	t.Helper()
	var first, last uint64
	for i := range want {
		if first == 0 || i < first {
			first = i
		}
		last = max(last, i)
	}
	require.Equal(t, first, l.FirstIndex(), "first index")
	require.Equal(t, last, l.LastIndex(), "last index")
	sf, sl, err := l.seekBounds()
	require.NoError(t, err)
	require.Equal(t, [2]uint64{first, last}, [2]uint64{sf, sl}, "bounds on disk")
	for i, v := range want {
		got, err := l.Get(i, nil)
		require.NoError(t, err, "index %d", i)
		require.Equal(t, v, got, "index %d", i)
	}
	// Nothing else, in the bounds or around them.
	lo := max(first, 2) - 1
	for i := lo; i <= last+1; i++ {
		if _, ok := want[i]; ok {
			continue
		}
		_, err := l.Get(i, nil)
		require.ErrorIs(t, err, ErrNotFound, "index %d", i)
	}
}

func model(first, last uint64, gen int) map[uint64][]byte {
	m := map[uint64][]byte{}
	for i := first; i <= last; i++ {
		m[i] = value(i, gen)
	}
	return m
}

func TestEmpty(t *testing.T) {
	l := openDisk(t, t.TempDir())
	requireLog(t, l, nil)
	_, err := l.Get(0, nil)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, l.Append(&Run{First: 1}), "empty append")
	require.NoError(t, l.DeleteRange(5, 4), "empty range")
	require.NoError(t, l.DeleteRange(1, 100), "range over nothing")
	requireLog(t, l, nil)
}

func TestAppendGet(t *testing.T) {
	l := openDisk(t, t.TempDir())
	r := run(1, 10, 0)
	require.NoError(t, l.Append(r))
	want := model(1, 10, 0)
	// The values handed to Append are the caller's again once it returns.
	for _, v := range r.Values {
		for i := range v {
			v[i] = 'x'
		}
	}
	requireLog(t, l, want)
	// Get appends to buf[:0]; the result does not alias the store.
	buf := make([]byte, 0, 64)
	got, err := l.Get(4, buf)
	require.NoError(t, err)
	require.Equal(t, want[4], got)
	got[0] = 'y'
	again, err := l.Get(4, nil)
	require.NoError(t, err)
	require.Equal(t, want[4], again)

	require.NoError(t, l.Append(run(11, 11, 0)))
	want[11] = value(11, 0)
	requireLog(t, l, want)
}

func TestDeleteRange(t *testing.T) {
	l := openDisk(t, t.TempDir())
	require.NoError(t, l.Append(run(1, 10, 0)))
	want := model(1, 10, 0)
	del := func(lo, hi uint64) {
		t.Helper()
		require.NoError(t, l.DeleteRange(lo, hi))
		for i := range want {
			if lo <= i && i <= hi {
				delete(want, i)
			}
		}
		requireLog(t, l, want)
	}
	del(1, 3)  // a prefix: raft's compaction
	del(8, 10) // a suffix: raft's conflict handling
	del(5, 5)  // a hole: first and last stay
	del(0, 4)  // from below the first entry
	del(7, 1<<40)
	require.Equal(t, uint64(6), l.FirstIndex())
	require.Equal(t, uint64(6), l.LastIndex())
	del(0, ^uint64(0)) // everything, to the top of the index space
	require.NoError(t, l.Append(run(20, 22, 1)))
	for i := uint64(20); i <= 22; i++ {
		want[i] = value(i, 1)
	}
	requireLog(t, l, want)
	// The highest index of all can be stored and deleted.
	top := ^uint64(0)
	require.NoError(t, l.Append(&Run{First: top, Values: [][]byte{[]byte("top")}}))
	want[top] = []byte("top")
	require.Equal(t, top, l.LastIndex())
	del(top, top)
}

func TestOverwriteAndGaps(t *testing.T) {
	l := openDisk(t, t.TempDir())
	require.NoError(t, l.Append(run(1, 5, 0)))
	want := model(1, 5, 0)
	// An overwrite replaces the entries it names and leaves the rest:
	// raft deletes a conflicting suffix itself before appending.
	require.NoError(t, l.Append(run(3, 4, 1)))
	want[3], want[4] = value(3, 1), value(4, 1)
	requireLog(t, l, want)
	// A gap is kept as a gap.
	require.NoError(t, l.Append(run(9, 10, 0)))
	want[9], want[10] = value(9, 0), value(10, 0)
	requireLog(t, l, want)
	// An entry below the first lowers it (raft's snapshot marker).
	require.NoError(t, l.DeleteRange(1, 4))
	for i := uint64(1); i <= 4; i++ {
		delete(want, i)
	}
	require.NoError(t, l.Append(run(2, 2, 2)))
	want[2] = value(2, 2)
	requireLog(t, l, want)
	// Entries of one Append need not be in order.
	require.NoError(t, l.Append(&sparse{indexes: []uint64{30, 12, 20}}))
	for _, i := range []uint64{30, 12, 20} {
		want[i] = value(i, 9)
	}
	requireLog(t, l, want)
}

// sparse is Entries at any indexes, with values of generation 9, or a
// failure at one of them.
type sparse struct {
	indexes []uint64
	size    int   // when > 0, the size of every entry
	failAt  int   // Encode of this entry fails (when failErr is set)
	failErr error // returned by the failing Encode
}

func (s *sparse) Len() int           { return len(s.indexes) }
func (s *sparse) Index(i int) uint64 { return s.indexes[i] }
func (s *sparse) Size(i int) int {
	if s.size > 0 {
		return s.size
	}
	return len(value(s.indexes[i], 9))
}

func (s *sparse) Encode(i int, dst []byte) error {
	if s.failErr != nil && i == s.failAt {
		return s.failErr
	}
	copy(dst, value(s.indexes[i], 9))
	return nil
}

func TestAppendRefusals(t *testing.T) {
	l := openDisk(t, t.TempDir())
	require.NoError(t, l.Append(run(1, 3, 0)))
	want := model(1, 3, 0)

	err := l.Append(&sparse{indexes: []uint64{4, 0}})
	require.ErrorContains(t, err, "index 0")
	boom := errors.New("boom")
	err = l.Append(&sparse{indexes: []uint64{4, 5, 6}, failAt: 2, failErr: boom})
	require.ErrorIs(t, err, boom)
	err = l.Append(&sparse{indexes: []uint64{4}, size: MaxValueSize + 1})
	require.ErrorContains(t, err, "bytes, over")
	// None of them wrote anything.
	requireLog(t, l, want)
}

func TestLargeAppendIsSplit(t *testing.T) {
	l := openDisk(t, t.TempDir())
	l.maxBatch = 200 // a few entries per batch
	r := run(1, 40, 0)
	r.Values[7] = bytes.Repeat([]byte("big"), 200) // over maxBatch alone
	require.NoError(t, l.Append(r))
	want := model(1, 40, 0)
	want[8] = r.Values[7]
	requireLog(t, l, want)
}

func TestReopen(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprintf("flush=%v", flush), func(t *testing.T) {
			dir := t.TempDir()
			l := openDisk(t, dir)
			require.NoError(t, l.Append(run(1, 50, 0)))
			require.NoError(t, l.DeleteRange(1, 10))
			require.NoError(t, l.DeleteRange(41, 50))
			require.NoError(t, l.Append(run(41, 45, 1)))
			require.NoError(t, l.DeleteRange(20, 20))
			want := model(11, 40, 0)
			delete(want, 20)
			for i := uint64(41); i <= 45; i++ {
				want[i] = value(i, 1)
			}
			if flush {
				// The range deletions go to a table, not only the WAL.
				require.NoError(t, l.db.Flush())
			}
			require.NoError(t, l.Close())
			l = openDisk(t, dir)
			requireLog(t, l, want)
		})
	}
}

func TestClosed(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	_, err = l.Get(1, nil)
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, l.Append(run(1, 1, 0)), ErrClosed)
	require.ErrorIs(t, l.DeleteRange(1, 1), ErrClosed)
	require.ErrorIs(t, l.Close(), ErrClosed)
}

func TestOptions(t *testing.T) {
	_, err := Open(t.TempDir(), Options{CacheSize: -1})
	require.ErrorContains(t, err, "negative cache size")
	_, err = Open(t.TempDir(), Options{MemTableSize: 4 << 30})
	require.ErrorContains(t, err, "memtable size")
}

func TestCorruptKeyIsAnError(t *testing.T) {
	dir := t.TempDir()
	l := openDisk(t, dir)
	require.NoError(t, l.Append(run(5, 6, 0)))
	// A key under the entry prefix that is no entry key.
	require.NoError(t, l.db.Set([]byte{entryPrefix, 0}, []byte("x"), nil))
	require.NoError(t, l.Close())
	_, err := Open(dir, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
}

// TestConcurrentAppendsAndTruncation has appenders write interleaved
// indexes while the log is truncated from below, and checks that the first
// index always names an entry present and that the bounds kept in memory
// are the bounds on disk once everyone is done: an Append that committed
// before a deletion must not widen the bounds over what the deletion
// removed.
func TestConcurrentAppendsAndTruncation(t *testing.T) {
	l := openDisk(t, t.TempDir())
	const appenders, perAppender = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, appenders+1)
	for g := range appenders {
		wg.Go(func() {
			for k := range perAppender {
				i := uint64(k*appenders + g + 1)
				if err := l.Append(run(i, i, 0)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for hi := uint64(10); hi <= appenders*perAppender; hi += 37 {
			if err := l.DeleteRange(1, hi); err != nil {
				errs <- err
				return
			}
			// Only this goroutine deletes, so the entry at the first
			// index must be there until its next deletion, whatever the
			// appenders add meanwhile.
			if f := l.FirstIndex(); f != 0 {
				if _, err := l.Get(f, nil); err != nil {
					errs <- fmt.Errorf("after deleting to %d: first index %d: %w", hi, f, err)
					return
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	first, last, err := l.seekBounds()
	require.NoError(t, err)
	require.Equal(t, first, l.FirstIndex())
	require.Equal(t, last, l.LastIndex())
	require.Equal(t, uint64(appenders*perAppender), last)
}
