package raft

import (
	"context"
	"fmt"
	"sync"
	"testing"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/store"
)

func encodeAll(t *testing.T, cmds ...Command) [][]byte {
	t.Helper()
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		b, err := EncodeCommand(c)
		require.NoError(t, err)
		out[i] = b
	}
	return out
}

// applyRaw applies raw entries as one raft batch and returns the FSM's
// responses.
func (h *fsmHarness) applyRaw(datas ...[]byte) []any {
	logs := make([]*hraft.Log, len(datas))
	for i, d := range datas {
		logs[i] = &hraft.Log{Index: h.next, Term: 1, Type: hraft.LogCommand, Data: d}
		h.next++
	}
	return h.fsm.ApplyBatch(logs)
}

// A batch entry applies each command as if it were an entry of its own:
// one refused command refuses only itself, later commands see earlier ones.
func TestBatchEntryAppliesEachCommand(t *testing.T) {
	h := newFSMHarness(t)
	id := h.createTenant("acme")
	entry := encodeBatch(encodeAll(t,
		set(id, "acme", "a", "1"),
		set(id, "wrong-name", "b", "2"), // refused
		&CompareAndSwap{TenantID: id, TenantName: "acme", Key: []byte("a"), Old: []byte("1"), New: []byte("3")},
	))
	out := h.applyRaw(entry)
	br, ok := out[0].(*batchResult)
	require.True(t, ok, "%T", out[0])
	require.Len(t, br.results, 3)
	require.NoError(t, br.results[0].err)
	require.ErrorIs(t, br.results[1].err, ErrTenantNotFound)
	require.NoError(t, br.results[2].err)
	require.True(t, br.results[2].Swapped, "the CAS saw the write before it in the batch")
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
		"empty":      {commandVersion, byte(typeBatch)},
		"zero count": {commandVersion, byte(typeBatch), 0},
		"overrun":    {commandVersion, byte(typeBatch), 1, 50, 1, 2},
		"trailing":   append(encodeBatch(good), 0),
		"huge count": {commandVersion, byte(typeBatch), 0xff, 0xff, 0x03},
	} {
		out := h.applyRaw(entry)
		r, ok := out[0].(*Result)
		require.True(t, ok, "%s: %T", name, out[0])
		require.ErrorIs(t, r.err, ErrBadCommand, name)
	}
	_, err := h.get(id, "k")
	require.ErrorIs(t, err, store.ErrNotFound, "nothing of a refused batch is applied")

	nested := encodeBatch([][]byte{encodeBatch(good), good[0]})
	br := h.applyRaw(nested)[0].(*batchResult)
	require.ErrorIs(t, br.results[0].err, ErrBadCommand)
	require.NoError(t, br.results[1].err)
}

// Concurrent proposals share log entries, and each gets its own result.
func TestProposalsShareEntries(t *testing.T) {
	c := newCluster(t, 1, tcpTransport, clusterOptions{})
	tid := c.createTenant("b")
	leader := c.waitLeader()
	before := leader.node.raft.LastIndex()
	const writers, each = 64, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	versions := map[uint64]bool{}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var cmd Command = put(tid, "b", fmt.Sprintf("w%d-%d", w, i), "v")
				if i%5 == 4 { // some refused, in the same batches as the rest
					cmd = put(tid, "not-b", "x", "v")
				}
				res, err := leader.node.Propose(context.Background(), cmd)
				if i%5 == 4 {
					require.ErrorIs(t, err, ErrTenantNotFound)
					continue
				}
				require.NoError(t, err)
				mu.Lock()
				require.False(t, versions[res.Version], "version %d given twice", res.Version)
				versions[res.Version] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	written := writers * each * 4 / 5
	require.Len(t, versions, written)
	entries := leader.node.raft.LastIndex() - before
	t.Logf("%d proposals in %d log entries", writers*each, entries)
	require.Less(t, entries, uint64(writers*each), "no two proposals shared an entry")
	for w := range writers {
		_, err := leader.get(tid, fmt.Sprintf("w%d-%d", w, each-1-1))
		require.NoError(t, err)
	}
}

// FuzzDecodeBatch checks that no batch entry makes the decoder panic or
// return commands outside the entry.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch([][]byte{{1, 2, 3}, {}, {4}})[2:])
	f.Add([]byte{1, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		subs, err := decodeBatch(b)
		if err != nil {
			return
		}
		if len(subs) == 0 || len(subs) > maxBatchCommands {
			t.Fatalf("%d commands", len(subs))
		}
		n := 0
		for _, s := range subs {
			n += len(s)
		}
		if n > len(b) {
			t.Fatalf("commands of %d bytes from %d", n, len(b))
		}
		again, err := decodeBatch(encodeBatch(subs)[2:])
		if err != nil || len(again) != len(subs) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
