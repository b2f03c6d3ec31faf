package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// watchFatal records the error the machine stops with.
func (h *fsmHarness) watchFatal() *atomic.Pointer[error] {
	var got atomic.Pointer[error]
	h.fsm.onFatal = func(err error) { got.Store(&err) }
	return &got
}

// requireStopped checks that the machine stopped with an error of a newer
// release that says msg, and applies nothing more.
func (h *fsmHarness) requireStopped(fatal *atomic.Pointer[error], appliedBefore uint64, msg string) {
	h.t.Helper()
	p := fatal.Load()
	require.NotNil(h.t, p, "the machine did not stop")
	require.ErrorIs(h.t, *p, ErrNewerFormat)
	require.Contains(h.t, (*p).Error(), msg)
	require.Equal(h.t, appliedBefore, h.fsm.AppliedIndex(), "nothing of the batch is applied")
	r := h.apply(&command.Noop{})[0]
	require.ErrorIs(h.t, r.Err, ErrStopped, "a stopped machine applies nothing")
	require.ErrorIs(h.t, h.fsm.WaitApplied(h.t.Context(), h.next), ErrStopped)
}

// An entry whose type or envelope version this build does not know stops
// the machine with a message that says what to do, alone or inside a batch
// entry, and the batch it came in is not committed: the entries before it
// in the batch are applied again by the upgraded build.
func TestFormatUnknownEntryStops(t *testing.T) {
	good, err := command.Encode(&command.CreateTenant{Name: "a"})
	require.NoError(t, err)
	unknownType := append([]byte{command.Version, 250}, good[2:]...)
	unknownVersion := append([]byte{42}, good[1:]...)
	for _, tc := range []struct {
		name  string
		entry func(h *fsmHarness, id keyspace.TenantID) []byte
		msg   string
	}{
		{"type", func(*fsmHarness, keyspace.TenantID) []byte { return unknownType }, fmt.Sprintf("has type 250, which this build (formats up to %d) does not know", command.MaxFormat)},
		{"version", func(*fsmHarness, keyspace.TenantID) []byte { return unknownVersion }, "has envelope version 42, which this build"},
		{"type in a batch", func(h *fsmHarness, id keyspace.TenantID) []byte {
			w, err := command.Encode(set(id, "x", "k", "v"))
			require.NoError(h.t, err)
			return command.EncodeBatch([][]byte{w, unknownType})
		}, "has type 250"},
		{"version in a batch", func(h *fsmHarness, id keyspace.TenantID) []byte {
			w, err := command.Encode(set(id, "x", "k", "v"))
			require.NoError(h.t, err)
			return command.EncodeBatch([][]byte{w, unknownVersion})
		}, "has envelope version 42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFSMHarness(t)
			id := h.createTenant("x")
			fatal := h.watchFatal()
			before, sum := h.fsm.AppliedIndex(), h.checksum()
			w, err := command.Encode(set(id, "x", "before", "v"))
			require.NoError(t, err)
			entry := tc.entry(h, id)
			out := h.applyRaw(w, entry)
			index := h.next - 1
			for _, o := range out {
				require.ErrorIs(t, o.(*Result).Err, ErrStopped)
			}
			h.requireStopped(fatal, before, fmt.Sprintf("raft log entry %d ", index))
			require.Contains(t, (*fatal.Load()).Error(), tc.msg)
			require.Contains(t, (*fatal.Load()).Error(), "written by a newer release; upgrade this node (docs/OPERATIONS.md, Upgrades)")
			require.Equal(t, sum, h.checksum(), "the batch holding the entry is not committed")
		})
	}
}

// A SetFormat beyond this build stops the machine; SetFormat 0 is
// malformed and refused.
func TestFormatSetFormatAboveMaxStops(t *testing.T) {
	h := newFSMHarness(t)
	r := h.apply(&command.SetFormat{})[0]
	require.ErrorIs(t, r.Err, command.ErrBadCommand)
	fatal := h.watchFatal()
	before := h.fsm.AppliedIndex()
	h.apply(&command.SetFormat{Version: uint32(command.MaxFormat) + 1})
	h.requireStopped(fatal, before, fmt.Sprintf("raises the cluster format to %d, which this build (formats up to %d) does not know",
		command.MaxFormat+1, command.MaxFormat))
	require.Equal(t, command.Format1, h.fsm.ClusterFormat())
}

// SetFormat raises the cluster format once; repeating it, or asking for a
// lower one, changes nothing, identically on every replica, across a
// restart and through a snapshot.
func TestFormatSetFormatIdempotent(t *testing.T) {
	var sums []uint64
	for range 2 { // two replicas apply the same log
		h := newFSMHarness(t)
		h.createTenant("x")
		require.Equal(t, command.Format1, h.fsm.ClusterFormat(), "a cluster that never raised it is at format 1")
		res := h.apply(&command.SetFormat{Version: 1}, &command.SetFormat{Version: 2})
		require.NoError(t, res[0].Err)
		require.NoError(t, res[1].Err)
		require.Equal(t, command.Format2, h.fsm.ClusterFormat())
		sum := h.checksum()
		for _, v := range []uint32{2, 1} {
			r := h.must(&command.SetFormat{Version: v})
			require.False(t, r.Replayed)
			require.Equal(t, command.Format2, h.fsm.ClusterFormat())
		}
		// The applied index moved; the state did not.
		require.Equal(t, sum, h.checksum())
		h.reopen()
		require.Equal(t, command.Format2, h.fsm.ClusterFormat(), "the cluster format is in the store")
		require.Equal(t, command.Format2, h.fork().fsm.ClusterFormat(), "and in snapshots")
		sums = append(sums, h.checksum())
	}
	require.Equal(t, sums[0], sums[1])
}

// pretendFormat2 makes the gate treat CompareAndSwap as a type of format 2
// for the test: this build has no gated type yet.
func pretendFormat2(t *testing.T) {
	formatOf = func(typ command.Type) command.Format {
		if typ == command.TypeCompareAndSwap {
			return command.Format2
		}
		return command.FormatOf(typ)
	}
	t.Cleanup(func() { formatOf = command.FormatOf })
}

// An entry of a type whose format the cluster has not enabled is refused
// on every replica alike and writes nothing, also when the SetFormat that
// enables it comes later in the same batch; after the SetFormat it applies.
func TestFormatGateRefusesTypesAboveClusterFormat(t *testing.T) {
	pretendFormat2(t)
	cas := func(id keyspace.TenantID) *command.CompareAndSwap {
		return &command.CompareAndSwap{TenantID: id, TenantName: "x", Key: []byte("k"), OldAbsent: true, New: []byte("v")}
	}
	var sums []uint64
	for range 2 {
		h := newFSMHarness(t)
		id := h.createTenant("x")
		before := h.checksum()
		r := h.apply(cas(id))[0]
		require.ErrorIs(t, r.Err, ErrFormatNotEnabled)
		require.Equal(t, before, h.checksum(), "a refused entry writes nothing")

		// Inside a batch entry too, and before a SetFormat of the same
		// raft batch: the gate is read through the batch.
		entries := encodeAll(t, cas(id))
		out := h.applyRaw(command.EncodeBatch(entries))
		require.ErrorIs(t, out[0].(*BatchResult).Results[0].Err, ErrFormatNotEnabled)
		res := h.apply(cas(id), &command.SetFormat{Version: 2}, cas(id))
		require.ErrorIs(t, res[0].Err, ErrFormatNotEnabled)
		require.NoError(t, res[1].Err)
		require.NoError(t, res[2].Err, "the gate opens at the SetFormat, within the batch")
		require.True(t, res[2].Swapped)
		v, err := h.get(id, "k")
		require.NoError(t, err)
		require.Equal(t, "v", string(v))
		require.Zero(t, h.fatal.Load())
		sums = append(sums, h.checksum())
	}
	require.Equal(t, sums[0], sums[1])
}

// A store whose cluster format is beyond this build (the state of a newer
// cluster, or a downgrade) is refused at startup and after a snapshot
// restore, before anything is applied on top of it.
func TestFormatStoredAboveMaxRefused(t *testing.T) {
	h := newFSMHarness(t)
	h.createTenant("x")
	b := h.store.NewBatch()
	require.NoError(t, b.System().Set(formatKey, keyspace.EncodeUint64(uint64(command.MaxFormat)+1)))
	require.NoError(t, b.Commit(h.next, true))
	h.next++

	// A snapshot of it, restored into a replica of this build, stops it.
	snap, err := h.fsm.Snapshot()
	require.NoError(t, err)
	var sink bytes.Buffer
	_, err = snap.WriteTo(&sink)
	require.NoError(t, err)
	snap.Close()
	other := newFSMHarness(t)
	fatal := other.watchFatal()
	err = other.fsm.Restore(bytes.NewReader(sink.Bytes()))
	require.ErrorIs(t, err, ErrNewerFormat)
	require.NotNil(t, fatal.Load())
	require.ErrorIs(t, other.fsm.WaitApplied(t.Context(), 1<<40), ErrStopped)

	require.NoError(t, h.store.Close())
	st, err := store.Open(h.dir, nil)
	require.NoError(t, err)
	h.store = st
	_, err = New(st, nil, nil)
	require.ErrorIs(t, err, ErrNewerFormat)
	require.Contains(t, err.Error(), fmt.Sprintf("the store holds cluster format %d, which this build (formats up to %d)",
		command.MaxFormat+1, command.MaxFormat))
	require.False(t, errors.Is(err, ErrFormatNotEnabled))
}
