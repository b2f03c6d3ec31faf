package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

func encodeAll(t *testing.T, cmds ...command.Command) [][]byte {
	t.Helper()
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		b, err := command.Encode(c)
		require.NoError(t, err)
		out[i] = b
	}
	return out
}

// applyRaw applies raw entries as one raft batch and returns the FSM's
// responses.
func (h *fsmHarness) applyRaw(datas ...[]byte) []any {
	logs := make([]Entry, len(datas))
	for i, d := range datas {
		logs[i] = Entry{Index: h.next, Command: true, Data: d}
		h.next++
	}
	return h.fsm.ApplyBatch(logs)
}

// A batch entry applies each command as if it were an entry of its own:
// one refused command refuses only itself, later commands see earlier ones.
func TestBatchEntryAppliesEachCommand(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	entry := command.EncodeBatch(encodeAll(t,
		set(id, "acme", "a", "1"),
		set(id, "wrong-name", "b", "2"), // refused
		&command.CompareAndSwap{TenantID: id, TenantName: "acme", Key: []byte("a"), Old: []byte("1"), New: []byte("3")},
	))
	out := h.applyRaw(entry)
	br, ok := out[0].(*BatchResult)
	require.True(t, ok, "%T", out[0])
	require.Len(t, br.Results, 3)
	require.NoError(t, br.Results[0].Err)
	require.ErrorIs(t, br.Results[1].Err, ErrTenantNotFound)
	require.NoError(t, br.Results[2].Err)
	require.True(t, br.Results[2].Swapped, "the CAS saw the write before it in the batch")
	v, err := h.get(id, "a")
	require.NoError(t, err)
	require.Equal(t, "3", string(v))
	_, err = h.get(id, "b")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Equal(t, uint64(2), h.version(id).Version)

	// The same entry applied on a replica gives the same state.
	other := newFSMHarness(t)
	other.createTenant("acme")
	other.applyRaw(entry)
	require.Equal(t, h.checksum(), other.checksum())
}

// Bad framing refuses the whole entry, on every replica alike, and writes
// nothing; a nested batch is refused as a command.
func TestBatchEntryRefusals(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	good := encodeAll(t, set(id, "acme", "k", "v"))
	for name, entry := range map[string][]byte{
		"empty":      {command.Version, byte(command.TypeBatch)},
		"zero count": {command.Version, byte(command.TypeBatch), 0},
		"overrun":    {command.Version, byte(command.TypeBatch), 1, 50, 1, 2},
		"trailing":   append(command.EncodeBatch(good), 0),
		"huge count": {command.Version, byte(command.TypeBatch), 0xff, 0xff, 0x03},
	} {
		out := h.applyRaw(entry)
		r, ok := out[0].(*Result)
		require.True(t, ok, "%s: %T", name, out[0])
		require.ErrorIs(t, r.Err, command.ErrBadCommand, name)
	}
	_, err := h.get(id, "k")
	require.ErrorIs(t, err, store.ErrNotFound, "nothing of a refused batch is applied")

	nested := command.EncodeBatch([][]byte{command.EncodeBatch(good), good[0]})
	br := h.applyRaw(nested)[0].(*BatchResult)
	require.ErrorIs(t, br.Results[0].Err, command.ErrBadCommand)
	require.NoError(t, br.Results[1].Err)
}
