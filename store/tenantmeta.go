package store

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// TenantMetaView reads and writes the records the state machine keeps for
// one tenant in the system keyspace: its usage counters, its version state
// and its write history, which holds copies of the tenant's keys and
// values. It can only be made from a tenant ID (Store.TenantMeta,
// Batch.TenantMeta, Snapshot.TenantMeta) and reaches nothing outside
// keyspace.TenantMetaSpan of that ID.
//
// The caller computes the keys (keyspace.TenantUsageKey, HistoryKey,
// HistorySpan...) from the ID it believes it serves; the view checks each
// one against the ID it was made from. A key or range of another tenant is
// refused with keyspace.ErrOutsideSpan before the engine is touched, so a
// wrong ID in the caller's key computation reads, writes and counts
// nothing of the other tenant. Iterators carry Pebble bounds inside the
// span, and every key they return is checked once more (ErrIsolation).
type TenantMetaView struct {
	id keyspace.TenantID
	r  pebble.Reader
	w  writer
}

func newTenantMetaView(id keyspace.TenantID, r pebble.Reader, w writer) (*TenantMetaView, error) {
	if err := id.Check(); err != nil {
		return nil, err
	}
	return &TenantMetaView{id: id, r: r, w: w}, nil
}

// ID returns the tenant the view is bound to.
func (v *TenantMetaView) ID() keyspace.TenantID { return v.id }

// check refuses a key outside the tenant's metadata span. It allocates
// nothing unless it refuses.
func (v *TenantMetaView) check(k keyspace.SystemKey) error {
	if !keyspace.InTenantMeta(v.id, k.Bytes()) {
		return fmt.Errorf("%w: %s is not a record of tenant %d", keyspace.ErrOutsideSpan, k, v.id)
	}
	return nil
}

// Get returns a copy of the value at k, or ErrNotFound.
func (v *TenantMetaView) Get(k keyspace.SystemKey) ([]byte, error) {
	if err := v.check(k); err != nil {
		return nil, err
	}
	return get(v.r, k.Bytes())
}

// Set writes k=value.
func (v *TenantMetaView) Set(k keyspace.SystemKey, value []byte) error {
	if err := v.check(k); err != nil {
		return err
	}
	return v.w.set(k.Bytes(), value)
}

// Delete removes k. Deleting a missing key is not an error.
func (v *TenantMetaView) Delete(k keyspace.SystemKey) error {
	if err := v.check(k); err != nil {
		return err
	}
	return v.w.del(k.Bytes())
}

// Clear removes every record of the tenant with one range deletion.
func (v *TenantMetaView) Clear() error {
	start, end := keyspace.TenantMetaSpan(v.id)
	return v.w.delRange(start.Bytes(), end.Bytes())
}

// Scan calls fn for every record in [start, end) in order until fn returns
// false. The range must lie inside the tenant's metadata span (end may be
// the span's end); an empty range (start == end) visits nothing. The
// slices passed to fn are valid only during the call.
func (v *TenantMetaView) Scan(start, end keyspace.SystemKey, fn func(k, v []byte) bool) error {
	lo, hi := start.Bytes(), end.Bytes()
	ss, se := keyspace.TenantMetaSpan(v.id)
	if bytes.Compare(lo, ss.Bytes()) < 0 || bytes.Compare(hi, se.Bytes()) > 0 {
		return fmt.Errorf("%w: range [%s, %s) is not inside the records of tenant %d", keyspace.ErrOutsideSpan, start, end, v.id)
	}
	if bytes.Compare(lo, hi) > 0 {
		return fmt.Errorf("%w: range [%s, %s)", keyspace.ErrInvalidRange, start, end)
	}
	return v.scan(lo, hi, fn)
}

// scan iterates [lo, hi) with those Pebble bounds and checks every key the
// engine returns against the tenant's span, whatever the bounds were: a
// key outside it aborts the scan with ErrIsolation before fn sees it.
func (v *TenantMetaView) scan(lo, hi []byte, fn func(k, v []byte) bool) error {
	if bytes.Equal(lo, hi) {
		return nil
	}
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("store: new tenant metadata iterator: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if !keyspace.InTenantMeta(v.id, it.Key()) {
			it.Close()
			return fmt.Errorf("%w: %q in a scan of tenant %d's records", ErrIsolation, it.Key(), v.id)
		}
		val, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if !fn(it.Key(), val) {
			break
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}

// TenantMeta returns a read-only view of tenant id's records over the live
// database (writes return ErrReadOnly: write through a Batch). It fails
// only for an invalid ID.
func (s *Store) TenantMeta(id keyspace.TenantID) (*TenantMetaView, error) {
	return newTenantMetaView(id, s.db, readOnlyWriter{})
}

// TenantMeta returns a view of tenant id's records that reads through the
// batch and writes into it, like System: the records go through the
// batch's indexed part, so a read sees the batch's own writes. It fails
// only for an invalid ID. Once the batch is committed or closed, the
// view's methods return ErrClosed.
func (b *Batch) TenantMeta(id keyspace.TenantID) (*TenantMetaView, error) {
	return newTenantMetaView(id, batchReader{b}, batchWriter{b})
}

// TenantMeta returns a read-only view of tenant id's records at the
// snapshot. It fails only for an invalid ID.
func (sn *Snapshot) TenantMeta(id keyspace.TenantID) (*TenantMetaView, error) {
	return newTenantMetaView(id, sn.s, readOnlyWriter{})
}
