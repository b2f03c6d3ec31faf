package store

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// KV is a key and its value, both owned by the caller.
type KV struct {
	Key   []byte
	Value []byte
}

// TenantView reads and writes the keys of exactly one tenant, in user keys.
// It can only be made from a tenant ID (Batch.Tenant, Snapshot.Tenant), and
// no method reaches outside the tenant's span. Readers use TenantReader.
type TenantView struct {
	id   keyspace.TenantID
	span keyspace.Span
	r    pebble.Reader
	w    writer
}

func newTenantView(id keyspace.TenantID, r pebble.Reader, w writer) (*TenantView, error) {
	if err := id.Check(); err != nil {
		return nil, err
	}
	return &TenantView{id: id, span: keyspace.TenantSpan(id), r: r, w: w}, nil
}

// ID returns the tenant the view is bound to.
func (v *TenantView) ID() keyspace.TenantID { return v.id }

// Get returns a copy of the value of key, or ErrNotFound.
func (v *TenantView) Get(key []byte) ([]byte, error) {
	if err := keyspace.CheckKey(key); err != nil {
		return nil, err
	}
	var buf [128]byte
	val, _, err := getVersioned(v.r, keyspace.AppendTenantKey(buf[:0], v.id, key))
	return val, err
}

// Set writes key=value with version 0 (see SetVersioned).
func (v *TenantView) Set(key, value []byte) error { return v.SetVersioned(key, value, 0) }

// Delete removes key. Deleting a missing key is not an error.
func (v *TenantView) Delete(key []byte) error {
	if err := keyspace.CheckKey(key); err != nil {
		return err
	}
	var buf [128]byte // no escape: see SetVersioned
	var err error
	switch w := v.w.(type) {
	case dataWriter:
		err = w.del(keyspace.AppendTenantKey(buf[:0], v.id, key))
	case batchWriter:
		err = w.del(keyspace.AppendTenantKey(buf[:0], v.id, key))
	default:
		err = v.w.del(keyspace.AppendTenantKey(nil, v.id, key))
	}
	if err == nil {
		v.note(key, absentSize)
	}
	return err
}

// DeleteRange removes every key in [start, end). An empty end means the end
// of the tenant's span; an empty start its beginning. A range with start >=
// end is refused with keyspace.ErrInvalidRange.
func (v *TenantView) DeleteRange(start, end []byte) error {
	lo, hi, err := v.bounds(start, end)
	if err != nil {
		return err
	}
	if err := v.w.delRange(lo, hi); err != nil {
		return err
	}
	v.note(nil, forgetTenant)
	return nil
}

// Clear removes every key of the tenant with one range deletion.
func (v *TenantView) Clear() error {
	if err := v.w.delRange(v.span.Start, v.span.End); err != nil {
		return err
	}
	v.note(nil, forgetTenant)
	return nil
}

// ScanOptions shape a Scan or an iterator.
type ScanOptions struct {
	// Limit caps the number of pairs returned; 0 means no limit.
	Limit int
	// Reverse iterates from the end of the range backwards.
	Reverse bool
	// KeysOnly skips copying values.
	KeysOnly bool
}

// Scan returns the pairs in [start, end) in order (or reverse order), at most
// opts.Limit of them, and whether more pairs remain in the range.
func (v *TenantView) Scan(start, end []byte, opts *ScanOptions) (kvs []KV, more bool, err error) {
	var o ScanOptions
	if opts != nil {
		o = *opts
	}
	it, err := v.NewIterator(start, end, o.Reverse)
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	for it.Next() {
		if o.Limit > 0 && len(kvs) == o.Limit {
			return kvs, true, nil
		}
		kv := KV{Key: bytes.Clone(it.Key())}
		if !o.KeysOnly {
			kv.Value = append(make([]byte, 0, len(it.Value())), it.Value()...)
		}
		kvs = append(kvs, kv)
	}
	return kvs, false, it.Err()
}

// bounds turns a user range into physical bounds inside the span.
func (v *TenantView) bounds(start, end []byte) (lo, hi []byte, err error) {
	if err := keyspace.CheckRange(start, end); err != nil {
		return nil, nil, err
	}
	lo, hi = keyspace.TenantBounds(v.id, start, end)
	if bytes.Compare(lo, v.span.Start) < 0 || bytes.Compare(hi, v.span.End) > 0 {
		// Unreachable by construction; kept as defence in depth.
		return nil, nil, fmt.Errorf("%w: range [%q, %q)", keyspace.ErrOutsideSpan, start, end)
	}
	return lo, hi, nil
}

// NewIterator returns an iterator over [start, end) of the tenant's user keys.
// The caller must Close it.
func (v *TenantView) NewIterator(start, end []byte, reverse bool) (*Iterator, error) {
	lo, hi, err := v.bounds(start, end)
	if err != nil {
		return nil, err
	}
	pit, err := v.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("store: new iterator: %w", err)
	}
	return &Iterator{it: pit, id: v.id, reverse: reverse}, nil
}

// Iterator walks a tenant's keys. Key and Value are valid until the next call
// to Next or Close and must be copied to be kept.
type Iterator struct {
	it      *pebble.Iterator
	id      keyspace.TenantID
	reverse bool
	started bool
	key     []byte
	err     error
}

// Next advances the iterator and reports whether it is positioned on a pair.
func (it *Iterator) Next() bool {
	if it.err != nil || it.it == nil {
		return false
	}
	var ok bool
	switch {
	case !it.started && it.reverse:
		ok = it.it.Last()
	case !it.started:
		ok = it.it.First()
	case it.reverse:
		ok = it.it.Prev()
	default:
		ok = it.it.Next()
	}
	return it.land(ok)
}

// SeekGE positions a forward iterator on the first pair at or after the
// user key key (within its bounds) and reports whether there is one; Next
// then continues from there. Seeking a reverse iterator is an error.
func (it *Iterator) SeekGE(key []byte) bool {
	if it.err != nil || it.it == nil {
		return false
	}
	if it.reverse {
		it.err = fmt.Errorf("store: SeekGE on a reverse iterator")
		return false
	}
	var buf [128]byte
	ok := it.it.SeekGE(keyspace.AppendTenantKey(buf[:0], it.id, key))
	return it.land(ok)
}

// SeekExact positions a forward iterator on the user key key and reports
// whether the tenant holds it. Unlike SeekGE it consults the tables' bloom
// filters, so a table without key costs no block read: the way to look up
// many single keys with one iterator. After SeekExact, Next is held to key
// (it reports false); a later SeekGE leaves that mode. Seeking a reverse
// iterator is an error.
func (it *Iterator) SeekExact(key []byte) bool {
	if it.err != nil || it.it == nil {
		return false
	}
	if it.reverse {
		it.err = fmt.Errorf("store: SeekExact on a reverse iterator")
		return false
	}
	var buf [128]byte
	// The store keeps Pebble's default comparer, whose Split is the whole
	// key: the prefix of a physical key is the key, so SeekPrefixGE lands
	// on key or on nothing.
	ok := it.it.SeekPrefixGE(keyspace.AppendTenantKey(buf[:0], it.id, key))
	return it.land(ok)
}

// land finishes a move of the underlying iterator that reported ok: it
// checks the key once more against the tenant's span and takes its user
// key.
func (it *Iterator) land(ok bool) bool {
	it.started = true
	if !ok {
		it.err = it.it.Error()
		return false
	}
	uk, inSpan := keyspace.UserKeyIn(it.id, it.it.Key())
	if !inSpan {
		it.err = ErrIsolation
		return false
	}
	it.key = uk
	return true
}

// Key returns the current user key.
func (it *Iterator) Key() []byte { return it.key }

// Value returns the current value (the user value, without its version
// envelope).
func (it *Iterator) Value() []byte {
	v, _ := it.current()
	return v
}

// Err returns the error that stopped the iteration, if any.
func (it *Iterator) Err() error { return it.err }

// Close releases the iterator.
func (it *Iterator) Close() error {
	if it.it == nil {
		return nil
	}
	err := it.it.Close()
	it.it = nil
	if it.err == nil && err != nil {
		it.err = err
	}
	return err
}
