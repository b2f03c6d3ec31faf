package store

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// SystemView reads and writes the catalog-wide records of the system
// keyspace (keys starting with 0xFF): tenant records, the name index,
// tokens, cluster metadata, the applied index. It is used by the state
// machine and server internals, never handed to code acting for a tenant.
// The records the state machine keeps per tenant (usage, version state,
// write history) are not reached through it but through the tenant's
// TenantMetaView, made from the tenant's ID.
type SystemView struct {
	r pebble.Reader
	w writer
}

// checkSystemKey accepts a range bound in the system keyspace: any key that
// starts with 0xFF.
func checkSystemKey(k []byte) error {
	if !keyspace.IsSystemKey(k) {
		return fmt.Errorf("%w: %q", ErrSystemKey, k)
	}
	return nil
}

// checkSystemRecordKey accepts a key that may hold a system record: 0xFF, then
// a kind byte other than 0x00 and 0xFF, then anything. Keys such as 0xFF or
// 0xFF 0x00 sort inside the span of tenant MaxID (which ends at 0xFF 00..00),
// so a tenant's Clear would delete them; keys from 0xFF 0xFF on lie beyond
// what WriteTo, Checksum and Restore cover. The keyspace constructors only
// make keys this function accepts (and the zero SystemKey, which it
// refuses, is the only other one a caller can hold).
func checkSystemRecordKey(k []byte) error {
	if len(k) < 2 || k[0] != keyspace.SystemByte || k[1] == 0x00 || k[1] == 0xFF {
		return fmt.Errorf("%w: %q is not a system record key", ErrSystemKey, k)
	}
	return nil
}

// Get returns a copy of the value at k, or ErrNotFound.
func (v *SystemView) Get(k keyspace.SystemKey) ([]byte, error) {
	if err := checkSystemRecordKey(k.Bytes()); err != nil {
		return nil, err
	}
	return get(v.r, k.Bytes())
}

// Set writes k=value.
func (v *SystemView) Set(k keyspace.SystemKey, value []byte) error {
	if err := checkSystemRecordKey(k.Bytes()); err != nil {
		return err
	}
	return v.w.set(k.Bytes(), value)
}

// Delete removes k.
func (v *SystemView) Delete(k keyspace.SystemKey) error {
	if err := checkSystemRecordKey(k.Bytes()); err != nil {
		return err
	}
	return v.w.del(k.Bytes())
}

// DeleteRange removes every system key in [start, end).
func (v *SystemView) DeleteRange(start, end keyspace.SystemKey) error {
	lo, hi := start.Bytes(), end.Bytes()
	if err := checkSystemKey(lo); err != nil {
		return err
	}
	if err := checkSystemKey(hi); err != nil {
		return err
	}
	if bytes.Compare(lo, hi) >= 0 {
		return fmt.Errorf("%w: system range", keyspace.ErrInvalidRange)
	}
	if err := v.w.delRange(lo, hi); err != nil {
		return err
	}
	// System ranges lie beyond every tenant's data, but the size cache
	// need not rely on it.
	if w, ok := v.w.(batchWriter); ok && w.b.sizes != nil {
		w.b.notes = append(w.b.notes, sizeNote{size: forgetAll})
	}
	return nil
}

// Scan calls fn for every pair in [start, end) in order until fn returns
// false. The slices passed to fn are valid only during the call.
func (v *SystemView) Scan(start, end keyspace.SystemKey, fn func(k, v []byte) bool) error {
	lo, hi := start.Bytes(), end.Bytes()
	if err := checkSystemKey(lo); err != nil {
		return err
	}
	if err := checkSystemKey(hi); err != nil {
		return err
	}
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("store: new system iterator: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if !keyspace.IsSystemKey(it.Key()) {
			it.Close()
			return ErrIsolation
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
