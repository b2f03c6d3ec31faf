package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"iter"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// MaxTxnBytes is the largest transaction the servers accept: the sum of the
// lengths of every mutation's key, value and range end and of every read
// range's bounds, plus TxnOverhead bytes per mutation and per read range.
// A larger one fails with ErrTxTooLarge.
const MaxTxnBytes = 10 << 20

// TxnOverhead is what each mutation and each read range costs towards
// MaxTxnBytes on top of its bytes.
// It is 64 bytes, as every server counts it (wire.MutationOverhead).
const TxnOverhead = wire.MutationOverhead

// MaxMutations is the most mutations one transaction or Batch may carry
// (wire.MaxMutations); more is refused with ErrTxTooLarge before anything
// is sent.
const MaxMutations = wire.MaxMutations

// Retry backoff of Update after a conflict: 5ms doubling up to 250ms, with
// full jitter.
const (
	txnMinBackoff = 5 * time.Millisecond
	txnMaxBackoff = 250 * time.Millisecond
)

// IsRetryable reports whether err says a transaction did not take effect
// and may succeed if run again: ErrConflict and ErrTxTooOld. Update retries
// these on its own.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrTxTooOld)
}

// Tx is an optimistic, strictly serializable transaction on one tenant
// (see Tenant.Update). Reads go to the cluster at once and are recorded as
// read conflict ranges; writes are buffered and sent at commit, where the
// servers check that nothing the transaction read has changed since its
// read version and apply every write in one replicated entry, or none.
//
// Reads see the transaction's own writes. A Tx is not safe for concurrent
// use; it must not be used after the function it was given to returns
// (ErrTxDone).
type Tx struct {
	t        *Tenant
	readOnly bool // a View
	done     bool
	err      error // the first invalid write, reported at commit

	haveRV      bool
	readVersion uint64
	tenantID    uint64
	reads       []wire.KeyRange
	muts        []wire.Mutation
	buf         *writeBuffer
	size        int
	committed   uint64
}

func (t *Tenant) newTx(readOnly bool) *Tx {
	return &Tx{t: t, readOnly: readOnly, buf: newWriteBuffer()}
}

// Update runs fn in a transaction and commits it. If the commit fails with
// an error for which IsRetryable is true, or fn returns one, it runs fn
// again in a new transaction after a short, growing, jittered pause, until
// ctx ends. fn must therefore be safe to run more than once, and should
// have no effects outside the transaction. If fn returns another error,
// nothing is committed and Update returns it; a panic in fn likewise
// commits nothing and goes on up.
//
// A transaction without writes commits too: its reads are validated, so
// Update gives a consistent snapshot of several reads, which View does not.
//
// The commit is idempotent: if its answer is lost (a broken connection, a
// leader change), the client sends it again with the same transaction ID,
// and the servers recognise one that already took effect. Only when that
// cannot be told any more (the context ended, or the write history was
// pruned in between) does Update fail with an error matching
// ErrCommitUnknown: then the transaction may or may not have been applied.
func (t *Tenant) Update(ctx context.Context, fn func(tx *Tx) error) error {
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := txnBackoff(ctx, attempt); err != nil {
				return fmt.Errorf("%w (last error: %w)", err, last)
			}
		}
		tx := t.newTx(false)
		err := tx.run(fn)
		if err == nil {
			err = tx.commit(ctx)
		}
		tx.done = true
		if err == nil || !IsRetryable(err) {
			return err
		}
		last = err
	}
}

// View runs fn in a read-only transaction: fn's reads are linearizable one
// by one, but several reads are not validated as one snapshot (use Update
// for that; with no writes it costs one more round trip). Writes in fn fail
// with ErrInvalidArgument. View returns fn's error.
func (t *Tenant) View(ctx context.Context, fn func(tx *Tx) error) error {
	tx := t.newTx(true)
	err := tx.run(fn)
	tx.done = true
	if err == nil {
		err = tx.err
	}
	return err
}

// run calls fn, marking tx done if fn panics.
func (tx *Tx) run(fn func(tx *Tx) error) error {
	defer func() {
		if r := recover(); r != nil {
			tx.done = true
			panic(r)
		}
	}()
	return fn(tx)
}

func txnBackoff(ctx context.Context, attempt int) error {
	d := min(txnMinBackoff<<min(attempt-1, 10), txnMaxBackoff)
	d = time.Duration(mrand.Int64N(int64(d)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (tx *Tx) usable() error {
	if tx.done {
		return ErrTxDone
	}
	return nil
}

// ReadVersion returns the transaction's read version, getting one from the
// leader if it has none yet: the tenant's version after every write
// acknowledged before the call.
func (tx *Tx) ReadVersion(ctx context.Context) (uint64, error) {
	if err := tx.usable(); err != nil {
		return 0, err
	}
	if err := tx.ensureReadVersion(ctx); err != nil {
		return 0, err
	}
	return tx.readVersion, nil
}

// CommittedVersion returns the tenant version at which the transaction
// committed, once Update has returned nil; 0 for a transaction that wrote
// nothing.
func (tx *Tx) CommittedVersion() uint64 { return tx.committed }

func (tx *Tx) ensureReadVersion(ctx context.Context) error {
	if tx.haveRV || tx.readOnly {
		return nil
	}
	v, id, err := tx.t.readVersion(ctx)
	if err != nil {
		return err
	}
	tx.haveRV, tx.readVersion, tx.tenantID = true, v, id
	return nil
}

// addRead records a read conflict range (none in a View).
func (tx *Tx) addRead(begin, end []byte) {
	if tx.readOnly {
		return
	}
	tx.reads = append(tx.reads, wire.KeyRange{Start: begin, End: end})
	tx.size += len(begin) + len(end) + TxnOverhead
}

// Get returns the value of key as the transaction sees it: its own writes
// over the stored value. A missing key is an error matching ErrNotFound.
// Unless the transaction's own writes decide the answer, Get reads the
// cluster (linearizably) and adds the key to the read conflicts.
func (tx *Tx) Get(ctx context.Context, key []byte) ([]byte, error) {
	v, _, err := tx.get(ctx, key, true)
	return v, err
}

// GetVersioned is Get that also returns the tenant version at which the
// stored key last changed (0 when the transaction's own writes decide the
// answer).
func (tx *Tx) GetVersioned(ctx context.Context, key []byte) ([]byte, uint64, error) {
	return tx.get(ctx, key, true)
}

func (tx *Tx) get(ctx context.Context, key []byte, conflict bool) ([]byte, uint64, error) {
	if err := tx.usable(); err != nil {
		return nil, 0, err
	}
	if err := checkKey(key); err != nil {
		return nil, 0, err
	}
	e := tx.buf.get(key)
	if e != nil && e.known {
		return result(e.value, e.present)
	}
	if e == nil && tx.buf.isCleared(key) {
		return nil, 0, fmt.Errorf("%w: deleted by this transaction", ErrNotFound)
	}
	if err := tx.ensureReadVersion(ctx); err != nil {
		return nil, 0, err
	}
	base, ver, err := tx.readKey(ctx, key)
	present := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, 0, err
	}
	if conflict {
		tx.addRead(bytes.Clone(key), append(bytes.Clone(key), 0))
	}
	if e == nil {
		if !present {
			return nil, 0, err
		}
		return base, ver, nil
	}
	// Atomic operations of this transaction over the stored value. A
	// snapshot read does not settle the entry: a later read must still
	// record its conflict.
	var v []byte
	if conflict {
		v, present = e.resolve(base, present)
	} else {
		c := *e
		v, present = c.resolve(base, present)
	}
	v, _, err = result(v, present)
	return v, 0, err
}

// readKey reads a stored key for the transaction. In Update it reads at
// the read version: any node that has applied the tenant's writes up to it
// may answer, with no read barrier, since a write after the read version
// that the read missed makes the commit conflict. In View (no commit, no
// check) the read is linearizable.
func (tx *Tx) readKey(ctx context.Context, key []byte) ([]byte, uint64, error) {
	if !tx.haveRV {
		return tx.t.getVersioned(ctx, key, false)
	}
	var resp wire.Response
	req := wire.Request{Op: wire.OpGet, Tenant: tx.t.name, Key: key, Stale: true, ReadVersion: tx.readVersion, TenantID: tx.tenantID}
	if err := tx.t.db.do(ctx, &req, &resp, true); err != nil {
		return nil, 0, err
	}
	if resp.Value == nil {
		resp.Value = []byte{}
	}
	return resp.Value, resp.DataVersion, nil
}

func result(v []byte, present bool) ([]byte, uint64, error) {
	if !present {
		return nil, 0, fmt.Errorf("%w: deleted by this transaction", ErrNotFound)
	}
	return bytes.Clone(v), 0, nil
}

// Range returns the pairs in r as the transaction sees them (its own
// writes merged over the stored pairs), like Tenant.Range. Stored pairs are
// read linearizably page by page. The read conflict recorded is the part of
// r the loop saw: all of r if it ran to the end, else up to the last pair
// yielded. Limit counts pairs yielded.
func (tx *Tx) Range(ctx context.Context, r KeyRange, opts *RangeOptions) iter.Seq2[KV, error] {
	return tx.rangeRead(ctx, r, opts, true)
}

func (tx *Tx) rangeRead(ctx context.Context, r KeyRange, opts *RangeOptions, conflict bool) iter.Seq2[KV, error] {
	var o RangeOptions
	if opts != nil {
		o = *opts
	}
	return func(yield func(KV, error) bool) {
		if err := tx.usable(); err != nil {
			yield(KV{}, err)
			return
		}
		if o.Limit < 0 || o.PageSize < 0 {
			yield(KV{}, fmt.Errorf("%w: negative Limit or PageSize", ErrInvalidArgument))
			return
		}
		if err := checkRange(r.Begin, r.End); err != nil {
			yield(KV{}, err)
			return
		}
		if err := tx.ensureReadVersion(ctx); err != nil {
			yield(KV{}, err)
			return
		}
		begin, end := bytes.Clone(r.Begin), bytes.Clone(r.End)
		// The transaction's entries in the range, in iteration order.
		var local []*bufEntry
		visit := func(e *bufEntry) bool {
			if !inRange(e.key, KeyRange{Begin: begin, End: end}) {
				return false
			}
			local = append(local, e)
			return true
		}
		if o.Reverse {
			if len(end) == 0 {
				tx.buf.keys.Descend(func(e *bufEntry) bool { return bytes.Compare(e.key, begin) >= 0 && visit(e) })
			} else {
				tx.buf.keys.DescendLessOrEqual(&bufEntry{key: end}, func(e *bufEntry) bool {
					if bytes.Equal(e.key, end) {
						return true
					}
					return bytes.Compare(e.key, begin) >= 0 && visit(e)
				})
			}
		} else {
			tx.buf.keys.AscendGreaterOrEqual(&bufEntry{key: begin}, visit)
		}
		cur := &scanCursor{t: tx.t, tx: tx, begin: begin, end: end, reverse: o.Reverse, pageSize: o.PageSize, limit: o.Limit}
		before := func(a, b []byte) bool { // a comes first in iteration order
			if o.Reverse {
				return bytes.Compare(a, b) > 0
			}
			return bytes.Compare(a, b) < 0
		}
		n := 0
		var last []byte
		finished := false
		defer func() {
			if !conflict || (!finished && last == nil) {
				return
			}
			switch {
			case finished:
				tx.addRead(begin, end)
			case o.Reverse:
				tx.addRead(bytes.Clone(last), end)
			default:
				tx.addRead(begin, append(bytes.Clone(last), 0))
			}
		}()
		li := 0
		for {
			s, err := cur.peek(ctx)
			if err != nil {
				last, finished = nil, false
				yield(KV{}, err)
				return
			}
			var kv KV
			switch {
			case li < len(local) && (s == nil || !before(s.Key, local[li].key)):
				e := local[li]
				li++
				base, present := []byte(nil), false
				if s != nil && bytes.Equal(s.Key, e.key) {
					base, present = s.Value, true
					cur.pos++
				}
				var v []byte
				if conflict {
					v, present = e.resolve(base, present)
				} else {
					c := *e
					v, present = c.resolve(base, present)
				}
				if !present {
					continue
				}
				kv = KV{Key: e.key, Value: bytes.Clone(v)}
			case s != nil:
				cur.pos++
				if tx.buf.isCleared(s.Key) {
					continue
				}
				kv = KV{Key: s.Key, Value: s.Value}
				if kv.Value == nil {
					kv.Value = []byte{}
				}
			default:
				finished = true
				return
			}
			last = kv.Key // owned by the page or the buffer; the caller gets a copy
			kv.Key = bytes.Clone(kv.Key)
			n++
			if !yield(kv, nil) {
				return
			}
			if o.Limit > 0 && n >= o.Limit {
				return
			}
		}
	}
}

// scanCursor pages through a range of the stored pairs for Tx.Range.
type scanCursor struct {
	t          *Tenant
	tx         *Tx
	begin, end []byte
	reverse    bool
	pageSize   int
	limit      int
	page       []wire.KV
	pos        int
	done       bool // no more pages
}

// peek returns the next stored pair without consuming it (pos++ does), or
// nil at the end of the range.
func (c *scanCursor) peek(ctx context.Context) (*wire.KV, error) {
	for c.pos >= len(c.page) {
		if c.done {
			return nil, nil
		}
		ask := c.pageSize
		if ask == 0 {
			ask = DefaultPageSize
		}
		if c.limit > 0 {
			ask = min(ask, c.limit)
		}
		req := wire.Request{Op: wire.OpScan, Tenant: c.t.name, Key: c.begin, End: c.end, Limit: ask, Reverse: c.reverse}
		if c.tx.haveRV {
			// See Tx.readKey.
			req.Stale, req.ReadVersion, req.TenantID = true, c.tx.readVersion, c.tx.tenantID
		}
		var resp wire.Response
		if err := c.t.db.do(ctx, &req, &resp, true); err != nil {
			return nil, err
		}
		if resp.More && len(resp.KVs) == 0 {
			return nil, fmt.Errorf("%w: server returned an empty page with more to come", ErrInternal)
		}
		c.page, c.pos, c.done = resp.KVs, 0, !resp.More
		if resp.More {
			last := resp.KVs[len(resp.KVs)-1].Key
			if c.reverse {
				c.end = bytes.Clone(last)
			} else {
				c.begin = append(bytes.Clone(last), 0)
			}
		}
	}
	return &c.page[c.pos], nil
}

// Snapshot returns a reader of the transaction whose reads record no read
// conflicts: the transaction may commit even if what they returned changes
// before it does. Use it for reads the transaction's correctness does not
// depend on. Snapshot reads still see the transaction's own writes.
func (tx *Tx) Snapshot() *Snapshot { return &Snapshot{tx: tx} }

// Snapshot reads a transaction without recording read conflicts.
type Snapshot struct{ tx *Tx }

// Get is Tx.Get without a read conflict.
func (s *Snapshot) Get(ctx context.Context, key []byte) ([]byte, error) {
	v, _, err := s.tx.get(ctx, key, false)
	return v, err
}

// Range is Tx.Range without a read conflict.
func (s *Snapshot) Range(ctx context.Context, r KeyRange, opts *RangeOptions) iter.Seq2[KV, error] {
	return s.tx.rangeRead(ctx, r, opts, false)
}

// write checks that tx may take a mutation of size bytes.
func (tx *Tx) write(size int) bool {
	switch {
	case tx.done:
		if tx.err == nil {
			tx.err = ErrTxDone
		}
		return false
	case tx.err != nil:
		return false
	case tx.readOnly:
		tx.err = fmt.Errorf("%w: write in a read-only transaction (View)", ErrInvalidArgument)
		return false
	}
	tx.size += size + TxnOverhead
	if len(tx.muts) >= MaxMutations {
		tx.err = fmt.Errorf("%w: more than %d mutations", ErrTxTooLarge, MaxMutations)
		return false
	}
	if tx.size > MaxTxnBytes {
		tx.err = fmt.Errorf("%w: more than %d bytes", ErrTxTooLarge, MaxTxnBytes)
		return false
	}
	return true
}

func (tx *Tx) fail(err error) {
	if tx.err == nil {
		tx.err = err
	}
}

// Set buffers key=value. Like every write of a Tx it returns nothing: an
// invalid write makes the commit (Update or View) fail with its error.
func (tx *Tx) Set(key, value []byte) {
	if err := checkKey(key); err != nil {
		tx.fail(err)
		return
	}
	if len(value) > MaxValueSize {
		tx.fail(fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(value), MaxValueSize))
		return
	}
	if !tx.write(len(key) + len(value)) {
		return
	}
	k, v := bytes.Clone(key), bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	tx.muts = append(tx.muts, wire.Mutation{Kind: wire.MutSet, Key: k, Value: v})
	tx.buf.put(k, v, true)
}

// Delete buffers the deletion of key.
func (tx *Tx) Delete(key []byte) {
	if err := checkKey(key); err != nil {
		tx.fail(err)
		return
	}
	if !tx.write(len(key)) {
		return
	}
	k := bytes.Clone(key)
	tx.muts = append(tx.muts, wire.Mutation{Kind: wire.MutDelete, Key: k})
	tx.buf.put(k, nil, false)
}

// DeleteRange buffers the deletion of every key in r.
func (tx *Tx) DeleteRange(r KeyRange) {
	if err := checkRange(r.Begin, r.End); err != nil {
		tx.fail(err)
		return
	}
	if !tx.write(len(r.Begin) + len(r.End)) {
		return
	}
	kr := KeyRange{Begin: bytes.Clone(r.Begin), End: bytes.Clone(r.End)}
	if kr.Begin == nil {
		kr.Begin = []byte{}
	}
	tx.muts = append(tx.muts, wire.Mutation{Kind: wire.MutDeleteRange, Key: kr.Begin, End: kr.End})
	tx.buf.clear(kr)
}

func (tx *Tx) atomicOp(kind uint8, key, operand []byte) {
	if err := checkKey(key); err != nil {
		tx.fail(err)
		return
	}
	if len(operand) > MaxValueSize {
		tx.fail(fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(operand), MaxValueSize))
		return
	}
	if !tx.write(len(key) + len(operand)) {
		return
	}
	m := wire.Mutation{Kind: kind, Key: bytes.Clone(key), Value: bytes.Clone(operand)}
	tx.muts = append(tx.muts, m)
	tx.buf.atomic(m)
}

func le64(v int64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[i] = byte(uint64(v) >> (8 * i))
	}
	return b
}

// Add buffers an atomic addition of delta to key's value read as a
// little-endian int64: a missing key counts as 0, a shorter value is
// zero-extended and a longer one truncated to 8 bytes; the result is
// stored as 8 bytes and overflow wraps. It is evaluated at commit against
// the value then, and adds no read conflict: concurrent Adds to one key
// never conflict. (Reading the key in the same transaction does.)
func (tx *Tx) Add(key []byte, delta int64) { tx.atomicOp(wire.MutAdd, key, le64(delta)) }

// Min buffers an atomic minimum: key takes the smaller of its value and v,
// both read as little-endian int64 (as for Add) and compared as signed
// integers; a missing key takes v. No read conflict.
func (tx *Tx) Min(key []byte, v int64) { tx.atomicOp(wire.MutMin, key, le64(v)) }

// Max is Min with the larger of the two.
func (tx *Tx) Max(key []byte, v int64) { tx.atomicOp(wire.MutMax, key, le64(v)) }

// CompareAndClear buffers an atomic deletion of key if, at commit, its
// value equals value exactly. No read conflict.
func (tx *Tx) CompareAndClear(key, value []byte) {
	tx.atomicOp(wire.MutCompareAndClear, key, value)
}

// commit sends the transaction. See Update for what its errors mean.
func (tx *Tx) commit(ctx context.Context) error {
	if tx.err != nil {
		return tx.err
	}
	if tx.done {
		return ErrTxDone
	}
	if len(tx.muts) == 0 && (len(tx.reads) == 0 || !tx.haveRV) {
		return nil // nothing to apply and nothing to check
	}
	if err := tx.ensureReadVersion(ctx); err != nil {
		return err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	req := wire.Request{Op: wire.OpCommit, Tenant: tx.t.name, ReadVersion: tx.readVersion, TenantID: tx.tenantID,
		Reads: mergeRanges(tx.reads), Muts: tx.muts, TxnID: id[:]}
	if len(tx.muts) == 0 {
		var resp wire.Response
		return tx.t.db.do(ctx, &req, &resp, true)
	}
	maybeSent := false
	unknown := func(err error) error {
		if !maybeSent {
			return err
		}
		return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := txnBackoff(ctx, attempt); err != nil {
				return unknown(err)
			}
		}
		if err := ctx.Err(); err != nil {
			return unknown(err)
		}
		var resp wire.Response
		err := tx.t.db.do(ctx, &req, &resp, true)
		if err == nil {
			tx.committed = resp.DataVersion
			return nil
		}
		var se *Error
		switch {
		case errors.As(err, &se) && se.Code == Code(wire.CodeCommitUnknown):
			// Committed or not: send it again; the servers recognise
			// the transaction ID if it took effect.
			maybeSent = true
		case errors.As(err, &se) && se.Code == Code(wire.CodeRateLimited):
			// Transient; a resend is safe.
		case errors.As(err, &se) && (se.Code == Code(wire.CodeConflict) || se.Code == Code(wire.CodeTxTooLarge)):
			// Every attempt that takes effect after this answer would
			// meet the same conflict; one that took effect before would
			// have been recognised first. Definite.
			return err
		case errors.As(err, &se):
			// Definite for this attempt only: an earlier one may have
			// taken effect (too old: the history that could tell is gone).
			return unknown(err)
		case errors.Is(err, ErrClosed):
			maybeSent = true
			return unknown(err)
		default:
			// The context ended with the request possibly in flight, or
			// it could not be sent at all (then only an earlier attempt
			// may have taken effect).
			if ctx.Err() != nil {
				maybeSent = true
			}
			return unknown(err)
		}
	}
}

// mergeRanges sorts ranges and merges those that overlap or touch, so a
// transaction sends each read conflict once.
func mergeRanges(in []wire.KeyRange) []wire.KeyRange {
	if len(in) == 0 {
		return nil
	}
	rs := slices.Clone(in)
	slices.SortFunc(rs, func(a, b wire.KeyRange) int { return bytes.Compare(a.Start, b.Start) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if len(last.End) == 0 {
			break
		}
		if bytes.Compare(r.Start, last.End) <= 0 {
			if len(r.End) == 0 || bytes.Compare(r.End, last.End) > 0 {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// readVersion gets the tenant's current version from the leader.
func (t *Tenant) readVersion(ctx context.Context) (version, tenantID uint64, err error) {
	var resp wire.Response
	if err := t.db.do(ctx, &wire.Request{Op: wire.OpReadVersion, Tenant: t.name}, &resp, true); err != nil {
		return 0, 0, err
	}
	return resp.DataVersion, resp.TenantID, nil
}

// ReadVersion returns the tenant's current version: every write
// acknowledged before the call has a version at or below it, and versions
// count the tenant's own writes only. Watch from it to see every change
// after now.
func (t *Tenant) ReadVersion(ctx context.Context) (uint64, error) {
	v, _, err := t.readVersion(ctx)
	return v, err
}

// GetVersioned is Get that also returns the tenant version at which key
// last changed.
func (t *Tenant) GetVersioned(ctx context.Context, key []byte) ([]byte, uint64, error) {
	if err := checkKey(key); err != nil {
		return nil, 0, err
	}
	return t.getVersioned(ctx, key, t.stale)
}

func (t *Tenant) getVersioned(ctx context.Context, key []byte, stale bool) ([]byte, uint64, error) {
	var resp wire.Response
	req := wire.Request{Op: wire.OpGet, Tenant: t.name, Key: key, Stale: stale}
	if err := t.db.do(ctx, &req, &resp, true); err != nil {
		return nil, 0, err
	}
	if resp.Value == nil {
		resp.Value = []byte{}
	}
	return resp.Value, resp.DataVersion, nil
}

// CompareAndSwap sets key to newValue if its current value equals old, as
// one linearizable step evaluated by the cluster, and reports whether it
// did. A nil old means "key must be missing"; a nil newValue deletes the
// key. (An empty, non-nil slice is the empty value.) It never conflicts.
// An error matching ErrCommitUnknown means the swap may or may not have
// happened.
func (t *Tenant) CompareAndSwap(ctx context.Context, key, old, newValue []byte) (swapped bool, err error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if len(old) > MaxValueSize || len(newValue) > MaxValueSize {
		return false, fmt.Errorf("%w: limit %d bytes", ErrValueTooLarge, MaxValueSize)
	}
	req := wire.Request{Op: wire.OpCompareAndSwap, Tenant: t.name, Key: key, Expect: old, Value: newValue}
	if old == nil {
		req.Flags |= wire.FlagExpectAbsent
	}
	if newValue == nil {
		req.Flags |= wire.FlagDelete
	}
	var resp wire.Response
	if err := t.db.do(ctx, &req, &resp, false); err != nil {
		return false, err
	}
	return resp.Swapped, nil
}
