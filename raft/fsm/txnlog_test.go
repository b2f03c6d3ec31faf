package fsm

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

// TestEncodeEntryOneChunk checks encodeEntry's one-allocation path against
// the general chunked encoding: the same bytes and the same size, for
// random entries of every op kind, with lengths that cross varint widths,
// up to and past the chunk target (where both take the general path).
func TestEncodeEntryOneChunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 0))
	lens := []int{0, 1, 127, 128, 16383, 16384, 70000}
	for range 300 {
		var ops []command.Op
		for range 1 + rng.IntN(6) {
			op := command.Op{Kind: []command.OpKind{command.OpSet, command.OpDelete, command.OpDeleteRange}[rng.IntN(3)]}
			op.Key = bytes.Repeat([]byte{'k'}, 1+rng.IntN(300))
			switch op.Kind {
			case command.OpSet:
				op.Value = make([]byte, lens[rng.IntN(len(lens))])
			case command.OpDeleteRange:
				op.End = bytes.Repeat([]byte{'z'}, lens[rng.IntN(4)])
			}
			ops = append(ops, op)
		}
		var txnID []byte
		if rng.IntN(2) == 0 {
			txnID = []byte("txn-0123456789")
		}
		version, at := rng.Uint64(), rng.Int64()-rng.Int64()
		got, gotSize := encodeEntry(version, at, txnID, ops)
		want, wantSize := encodeChunked(version, at, txnID, ops)
		if gotSize != wantSize || len(got) != len(want) {
			t.Fatalf("size %d in %d chunks, want %d in %d", gotSize, len(got), wantSize, len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("chunk %d of %d differs from the general encoding", i, len(got))
			}
		}
	}
}

// TestExpiryQueueOrder checks the queue's own push and pop against a
// sort: items come out by time, then tenant ID, duplicates included,
// with pushes and pops interleaved.
func TestExpiryQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	q := &expiryQueue{}
	var model []expiryItem
	for range 5000 {
		if rng.IntN(3) > 0 || len(model) == 0 {
			it := expiryItem{at: rng.Int64N(50), id: keyspace.TenantID(1 + rng.IntN(5))}
			q.push(it.at, it.id)
			model = append(model, it)
			continue
		}
		least := 0
		for i, it := range model {
			if it.at < model[least].at || (it.at == model[least].at && it.id < model[least].id) {
				least = i
			}
		}
		if got := q.pop(); got != model[least] {
			t.Fatalf("pop = %+v, want %+v", got, model[least])
		}
		model = append(model[:least], model[least+1:]...)
	}
	if q.Len() != len(model) {
		t.Fatalf("%d items left, want %d", q.Len(), len(model))
	}
}
