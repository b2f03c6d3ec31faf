package raft

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/tenantkv/tenantkv/store/raftlog"
)

func openPebbleLogForTest(t testing.TB, dir string) *pebbleLogStore {
	t.Helper()
	s, err := openPebbleLogStore(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testLogs returns entries first..last with data, extensions and times
// that vary with the index (empty ones included).
func testLogs(first, last uint64, term uint64) []*hraft.Log {
	var logs []*hraft.Log
	for i := first; i <= last; i++ {
		l := &hraft.Log{Index: i, Term: term, Type: hraft.LogType(i % 6)}
		if i%3 != 0 {
			l.Data = bytes.Repeat([]byte{byte(i)}, int(i%300))
		}
		if i%4 == 1 {
			l.Extensions = []byte(fmt.Sprintf("ext %d", i))
		}
		if i%5 != 0 {
			l.AppendedAt = time.Unix(1_800_000_000+int64(i), int64(i)*7919)
		}
		logs = append(logs, l)
	}
	return logs
}

// requireLogEqual checks that got is want as raft sees it (AppendedAt is
// compared as an instant).
func requireLogEqual(t *testing.T, want, got *hraft.Log) {
	t.Helper()
	require.Equal(t, want.Index, got.Index)
	require.Equal(t, want.Term, got.Term)
	require.Equal(t, want.Type, got.Type)
	require.Equal(t, len(want.Data), len(got.Data), "data of %d", want.Index)
	require.True(t, bytes.Equal(want.Data, got.Data), "data of %d", want.Index)
	require.True(t, bytes.Equal(want.Extensions, got.Extensions), "extensions of %d", want.Index)
	require.True(t, want.AppendedAt.Equal(got.AppendedAt), "appended-at of %d: %v, want %v", want.Index, got.AppendedAt, want.AppendedAt)
}

func requireStoreHolds(t *testing.T, s hraft.LogStore, first, last uint64, logs map[uint64]*hraft.Log) {
	t.Helper()
	f, err := s.FirstIndex()
	require.NoError(t, err)
	l, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, [2]uint64{first, last}, [2]uint64{f, l}, "first and last index")
	for i := max(first, 1) - 1; i <= last+1; i++ {
		var got hraft.Log
		err := s.GetLog(i, &got)
		want, ok := logs[i]
		if !ok {
			require.ErrorIs(t, err, hraft.ErrLogNotFound, "index %d", i)
			continue
		}
		require.NoError(t, err, "index %d", i)
		requireLogEqual(t, want, &got)
	}
}

func TestPebbleLogStore(t *testing.T) {
	dir := t.TempDir()
	s := openPebbleLogForTest(t, dir)
	requireStoreHolds(t, s, 0, 0, nil)

	held := map[uint64]*hraft.Log{}
	logs := testLogs(1, 64, 1)
	require.NoError(t, s.StoreLogs(logs))
	for _, l := range logs {
		held[l.Index] = l
	}
	one := testLogs(65, 65, 2)[0]
	require.NoError(t, s.StoreLog(one))
	held[65] = one
	requireStoreHolds(t, s, 1, 65, held)

	// raft's conflict handling: a suffix deleted, then replaced.
	require.NoError(t, s.DeleteRange(60, 65))
	replaced := testLogs(60, 62, 3)
	require.NoError(t, s.StoreLogs(replaced))
	for i := uint64(63); i <= 65; i++ {
		delete(held, i)
	}
	for _, l := range replaced {
		held[l.Index] = l
	}
	// raft's compaction after a snapshot.
	require.NoError(t, s.DeleteRange(1, 20))
	for i := uint64(1); i <= 20; i++ {
		delete(held, i)
	}
	requireStoreHolds(t, s, 21, 62, held)

	// All of it survives a restart.
	require.NoError(t, s.Close())
	s = openPebbleLogForTest(t, dir)
	requireStoreHolds(t, s, 21, 62, held)

	// The entry read is the caller's: a later read does not change it.
	var a, b hraft.Log
	require.NoError(t, s.GetLog(22, &a))
	data := bytes.Clone(a.Data)
	require.NoError(t, s.GetLog(22, &b))
	b.Data[0]++
	require.Equal(t, data, a.Data)
}

// TestPebbleLogStoreCorruptValues stores values that are not entries, and
// entries under the wrong index, under the store and reads them: each is an
// error wrapping raftlog.ErrCorrupt, never a panic.
func TestPebbleLogStoreCorruptValues(t *testing.T) {
	l, err := raftlog.Open(t.TempDir(), raftlog.Options{})
	require.NoError(t, err)
	s := newPebbleLogStore(l)
	t.Cleanup(func() { _ = s.Close() })

	good := make([]byte, encodedLogSize(testLogs(7, 7, 1)[0]))
	encodeLog(good, testLogs(7, 7, 1)[0])
	values := [][]byte{
		nil,                          // 1: empty
		{2, 1, 1, 0, 0, 0, 0},        // 2: unknown format
		good[:len(good)-1],           // 3: truncated
		append(bytes.Clone(good), 0), // 4: a byte too many
		{1, 5, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0}, // 5: data length past the end
		good, // 6: entry 7 stored under index 6
	}
	require.NoError(t, l.Append(&raftlog.Run{First: 1, Values: values}))
	for i := range values {
		var out hraft.Log
		err := s.GetLog(uint64(i+1), &out)
		require.ErrorIs(t, err, raftlog.ErrCorrupt, "value %d", i+1)
	}
}

// TestPebbleLogEncodingGolden pins the bytes of format 1: a change of the
// encoding is a new format, never a silent change of this one.
func TestPebbleLogEncodingGolden(t *testing.T) {
	l := &hraft.Log{
		Index: 300, Term: 7, Type: hraft.LogCommand,
		Data: []byte("put"), Extensions: []byte{9},
		AppendedAt: time.Unix(0, 1_000_000_001),
	}
	got := make([]byte, encodedLogSize(l))
	require.Equal(t, len(got), encodeLog(got, l))
	const want = "01" + "ac02" + "07" + "00" + "03" + "707574" + "01" + "09" + "82a8d6b907"
	require.Equal(t, want, hex.EncodeToString(got))
	var back hraft.Log
	require.NoError(t, decodeLog(got, &back))
	requireLogEqual(t, l, &back)
}

// TestPebbleLogStoreAllocations checks that StoreLogs allocates nothing per
// entry: entries are encoded straight into Pebble's (pooled) batch.
func TestPebbleLogStoreAllocations(t *testing.T) {
	s := openPebbleLogForTest(t, t.TempDir())
	const n = 16
	logs := testLogs(1, n, 1)
	next := uint64(1)
	allocs := testing.AllocsPerRun(50, func() {
		for i, l := range logs {
			l.Index = next + uint64(i)
		}
		next += n
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.2f allocations per StoreLogs of %d entries", allocs, n)
	// A collection may empty a pool now and then; nothing per entry.
	require.Less(t, allocs, 2.0, "allocations per StoreLogs of %d entries", n)
}

// TestPebbleLogStoreUnderRaft runs a one-node hashicorp/raft on the store,
// applies commands, restarts it on the same directory and checks that the
// restarted node finds its log and applies nothing twice.
func TestPebbleLogStoreUnderRaft(t *testing.T) {
	dir := t.TempDir()
	stable := hraft.NewInmemStore()
	snaps := hraft.NewInmemSnapshotStore()
	start := func() (*hraft.Raft, *countingFSM, *pebbleLogStore) {
		logs, err := openPebbleLogStore(filepath.Join(dir, "log"), nil)
		require.NoError(t, err)
		cfg := hraft.DefaultConfig()
		cfg.LocalID = "n1"
		cfg.HeartbeatTimeout = 50 * time.Millisecond
		cfg.ElectionTimeout = 50 * time.Millisecond
		cfg.LeaderLeaseTimeout = 50 * time.Millisecond
		cfg.CommitTimeout = 5 * time.Millisecond
		cfg.Logger = newHCLogAdapter(slog.New(slog.DiscardHandler), "raft")
		_, trans := hraft.NewInmemTransport("n1")
		fsm := &countingFSM{}
		r, err := hraft.NewRaft(cfg, fsm, logs, stable, snaps, trans)
		require.NoError(t, err)
		return r, fsm, logs
	}
	leading := func(r *hraft.Raft) {
		t.Helper()
		require.Eventually(t, func() bool { return r.State() == hraft.Leader }, 10*time.Second, 5*time.Millisecond)
	}
	r, fsm, logs := start()
	require.NoError(t, r.BootstrapCluster(hraft.Configuration{Servers: []hraft.Server{{ID: "n1", Address: "n1"}}}).Error())
	leading(r)
	for i := range 20 {
		require.NoError(t, r.Apply([]byte{byte(i)}, 5*time.Second).Error(), "apply %d", i)
	}
	require.Equal(t, int64(20), fsm.applied.Load())
	last, err := logs.LastIndex()
	require.NoError(t, err)
	require.NoError(t, r.Shutdown().Error())
	require.NoError(t, logs.Close())

	r, fsm, logs = start()
	defer func() {
		_ = r.Shutdown().Error()
		_ = logs.Close()
	}()
	// The restarted node replays its log into the new FSM: the 20
	// commands once each, then one more command.
	leading(r)
	require.NoError(t, r.Apply([]byte{99}, 5*time.Second).Error())
	require.Equal(t, int64(21), fsm.applied.Load())
	again, err := logs.LastIndex()
	require.NoError(t, err)
	require.Greater(t, again, last)
}

// countingFSM counts the commands applied to it.
type countingFSM struct{ applied atomic.Int64 }

func (f *countingFSM) Apply(l *hraft.Log) any {
	if l.Type == hraft.LogCommand {
		f.applied.Add(1)
	}
	return nil
}

func (f *countingFSM) Snapshot() (hraft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (f *countingFSM) Restore(io.ReadCloser) error          { return fmt.Errorf("no snapshots") }

// FuzzDecodeLog feeds decodeLog arbitrary bytes: it never panics, an error
// always wraps raftlog.ErrCorrupt, and whatever decodes encodes back to the
// very same bytes (the encoding is canonical). The seed corpus runs under
// plain go test.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range append(testLogs(1, 12, 3),
		&hraft.Log{},
		&hraft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: 255, AppendedAt: time.Unix(0, math.MinInt64+1)},
		&hraft.Log{Index: 1, AppendedAt: time.Unix(0, math.MaxInt64)},
	) {
		b := make([]byte, encodedLogSize(l))
		encodeLog(b, l)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, 1, 1, 0, 0, 0, 0})
	f.Add([]byte{1, 0x80, 0, 1, 0, 0, 0, 0})                      // a varint not in its shortest form
	f.Add([]byte{1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) // a data length far past the end
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, v []byte) {
		var l hraft.Log
		if err := decodeLog(v, &l); err != nil {
			require.ErrorIs(t, err, raftlog.ErrCorrupt)
			return
		}
		back := make([]byte, encodedLogSize(&l))
		require.Equal(t, len(back), encodeLog(back, &l))
		require.Equal(t, v, back, "decoded %+v", l)
	})
}

// BenchmarkStoreLogs compares StoreLogs of 1 and of 64 entries (200 bytes of
// data each) on the Pebble log store and on raft-boltdb, opened as the node
// opens raft.db, both on the real disk (b.TempDir()). Every StoreLogs is
// synced: ns/op is one append's latency.
func BenchmarkStoreLogs(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) hraft.LogStore
	}{
		{"pebble", func(b *testing.B) hraft.LogStore { return openPebbleLogForTest(b, b.TempDir()) }},
		{"bolt", func(b *testing.B) hraft.LogStore {
			s, err := raftboltdb.New(raftboltdb.Options{
				Path: filepath.Join(b.TempDir(), "raft.db"),
				BoltOptions: &bbolt.Options{
					Timeout:        time.Second,
					NoFreelistSync: true,
					FreelistType:   bbolt.FreelistMapType,
				},
			})
			require.NoError(b, err)
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
	}
	for _, st := range stores {
		for _, n := range []int{1, 64} {
			b.Run(fmt.Sprintf("store=%s/entries=%d", st.name, n), func(b *testing.B) {
				s := st.open(b)
				logs := make([]*hraft.Log, n)
				for i := range logs {
					logs[i] = &hraft.Log{Term: 1, Type: hraft.LogCommand, Data: bytes.Repeat([]byte{'v'}, 200), AppendedAt: time.Now()}
				}
				next := uint64(1)
				b.SetBytes(int64(200 * n))
				b.ReportAllocs()
				for b.Loop() {
					for _, l := range logs {
						l.Index = next
						next++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
