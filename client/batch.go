package client

import (
	"bytes"
	"context"
	"fmt"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// MaxBatchSize is the most bytes of keys, values and range bounds one Batch
// may carry, plus TxnOverhead per write, as enforced by every server (like
// a FoundationDB transaction). A Batch also holds at most MaxMutations
// writes.
const MaxBatchSize = 10 << 20

// Batch collects writes to one tenant and applies them atomically, in
// order, in one replicated write: after Commit returns nil every node has
// all of them or, after an error, none.
//
//	b := t.NewBatch()
//	b.Set([]byte("user/1"), []byte("alice"))
//	b.Delete([]byte("user/2"))
//	b.DeleteRange(client.Prefix([]byte("tmp/")))
//	err := b.Commit(ctx)
//
// Like FoundationDB's buffered writes, Set, Delete and DeleteRange return
// nothing: the first invalid write (an empty or oversized key or value, a
// bad range, a batch over MaxBatchSize) is reported by Commit, which then
// sends nothing. The batch copies what it is given.
//
// A Batch is not safe for concurrent use. Commit does not empty it: after an
// error matching ErrCommitUnknown, committing it again is safe when its
// writes do not depend on what other writers did in between (sets and
// deletes of fixed keys), and Reset makes it ready for new writes.
type Batch struct {
	t    *Tenant
	muts []wire.Mutation
	size int
	err  error
}

// NewBatch returns an empty batch of writes to the tenant.
func (t *Tenant) NewBatch() *Batch { return &Batch{t: t} }

// Set adds the write of value under key.
func (b *Batch) Set(key, value []byte) {
	if b.err != nil {
		return
	}
	if err := checkKey(key); err != nil {
		b.fail(err)
		return
	}
	if len(value) > MaxValueSize {
		b.fail(fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(value), MaxValueSize))
		return
	}
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	b.add(wire.Mutation{Kind: wire.MutSet, Key: bytes.Clone(key), Value: v})
}

// Delete adds the removal of key; a missing key is not an error.
func (b *Batch) Delete(key []byte) {
	if b.err != nil {
		return
	}
	if err := checkKey(key); err != nil {
		b.fail(err)
		return
	}
	b.add(wire.Mutation{Kind: wire.MutDelete, Key: bytes.Clone(key)})
}

// DeleteRange adds the removal of every key in r; a zero KeyRange removes
// all of the tenant's keys (those the earlier writes of the batch set too).
func (b *Batch) DeleteRange(r KeyRange) {
	if b.err != nil {
		return
	}
	if err := checkRange(r.Begin, r.End); err != nil {
		b.fail(err)
		return
	}
	begin := bytes.Clone(r.Begin)
	if begin == nil {
		begin = []byte{}
	}
	b.add(wire.Mutation{Kind: wire.MutDeleteRange, Key: begin, End: bytes.Clone(r.End)})
}

func (b *Batch) add(m wire.Mutation) {
	n := len(m.Key) + len(m.Value) + len(m.End) + TxnOverhead
	if len(b.muts) >= MaxMutations {
		b.fail(fmt.Errorf("%w: batch over %d mutations", ErrTxTooLarge, MaxMutations))
		return
	}
	if b.size+n > MaxBatchSize {
		b.fail(fmt.Errorf("%w: batch over %d bytes", ErrTxTooLarge, MaxBatchSize))
		return
	}
	b.size += n
	b.muts = append(b.muts, m)
}

func (b *Batch) fail(err error) {
	b.err = fmt.Errorf("batch write %d: %w", len(b.muts)+1, err)
}

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return len(b.muts) }

// Size returns what the batch counts against MaxBatchSize: the bytes of its
// keys, values and bounds plus TxnOverhead for each write.
func (b *Batch) Size() int { return b.size }

// Reset empties the batch and forgets its error, keeping its memory.
func (b *Batch) Reset() {
	clear(b.muts)
	b.muts, b.size, b.err = b.muts[:0], 0, nil
}

// Commit applies the batch's writes atomically. An empty batch commits
// without a round trip. Errors match ErrTenantReadOnly, ErrTenantLocked,
// ErrQuotaExceeded (the batch as a whole would take the tenant over a limit),
// ErrRateLimited, ErrPermissionDenied and, for an invalid write,
// ErrInvalidKey, ErrKeyTooLarge, ErrValueTooLarge, ErrInvalidRange or
// ErrTxTooLarge. An error matching ErrCommitUnknown means the batch may or
// may not have been applied, as a whole.
func (b *Batch) Commit(ctx context.Context) error {
	if b.err != nil {
		return b.err
	}
	if len(b.muts) == 0 {
		return nil
	}
	return b.t.write(ctx, &wire.Request{Op: wire.OpBatch, Tenant: b.t.name, Muts: b.muts})
}
