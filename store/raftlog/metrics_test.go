package raftlog

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every append is synced: the log's Pebble counts one fsync per append
// (at least), and after Close the figures are refused, not read from a
// closed Pebble.
func TestMetrics(t *testing.T) {
	l := openDisk(t, t.TempDir())
	before, err := l.Metrics()
	require.NoError(t, err)
	for i := uint64(1); i <= 20; i++ {
		require.NoError(t, l.Append(run(i, i, 0)))
	}
	// Pebble records a sync's latency after it wakes the commit that
	// waited for it, so the last one may show a moment after Append
	// returns: look again for a while (syncs_test.go counts the syncs
	// themselves).
	var m Metrics
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m, err = l.Metrics()
		require.NoError(t, err)
		if m.FsyncCount >= before.FsyncCount+20 || time.Now().After(deadline) {
			break
		}
	}
	require.GreaterOrEqual(t, m.FsyncCount, before.FsyncCount+20, "fsyncs after 20 appends")
	require.Greater(t, m.WALBytesWritten, before.WALBytesWritten)
	require.Positive(t, m.DiskUsageBytes)
	require.Positive(t, m.MemTableBytes)
	require.NotEmpty(t, m.FsyncUpperBounds)
	require.Len(t, m.FsyncCumulative, len(m.FsyncUpperBounds))
	require.True(t, slices.IsSorted(m.FsyncUpperBounds) && slices.IsSorted(m.FsyncCumulative))
	require.LessOrEqual(t, m.FsyncCumulative[len(m.FsyncCumulative)-1], m.FsyncCount)
	require.Less(t, m.FsyncUpperBounds[len(m.FsyncUpperBounds)-1], 100.0, "bounds in seconds")
	require.Positive(t, m.FsyncSumSeconds)
	require.Less(t, m.FsyncSumSeconds, 100.0, "sum in seconds")

	require.NoError(t, l.Close())
	_, err = l.Metrics()
	require.True(t, errors.Is(err, ErrClosed), "Metrics after Close: %v", err)
}
