package client

import (
	"bytes"
	"context"
	"fmt"
	"iter"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// DefaultPageSize is the number of pairs Range asks for per round trip when
// RangeOptions.PageSize is zero. Servers cap pages at 1,000 pairs and about
// 4 MiB whatever is asked.
const DefaultPageSize = 1000

// KV is a key and its value.
type KV struct {
	Key   []byte
	Value []byte
	// Version is the tenant version at which the key last changed.
	Version uint64
}

// KeyRange is the half-open range of keys [Begin, End). An empty Begin is the
// start of the tenant's keys; an empty (or nil) End is their end. A range
// whose End is not empty must have Begin < End.
type KeyRange struct {
	Begin []byte
	End   []byte
}

// Prefix returns the range of every key that starts with p. For an empty p,
// or one made only of 0xFF bytes, End is nil: the range runs to the end of
// the tenant's keys. Prefix does not keep p.
func Prefix(p []byte) KeyRange {
	begin := bytes.Clone(p)
	if begin == nil {
		begin = []byte{}
	}
	var end []byte
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xFF {
			end = make([]byte, i+1)
			copy(end, p[:i+1])
			end[i]++
			break
		}
	}
	return KeyRange{Begin: begin, End: end}
}

// RangeOptions tune Range. A nil *RangeOptions means defaults.
type RangeOptions struct {
	// Limit is the most pairs returned; zero means no limit.
	Limit int
	// Reverse returns pairs in descending key order.
	Reverse bool
	// PageSize is the number of pairs fetched per round trip; zero means
	// DefaultPageSize. The server may return fewer.
	PageSize int
	// Stale lets any node answer from its local, possibly stale, state.
	Stale bool
}

// Tenant is a handle on one tenant's keys. Every key is relative to the
// tenant: no handle can name, read or change another tenant's keys. A Tenant
// is safe for concurrent use; it is cheap and holds no resources.
type Tenant struct {
	db    *DB
	name  string
	stale bool
}

// Name returns the tenant's name.
func (t *Tenant) Name() string { return t.name }

// WithStaleReads returns a handle on the same tenant whose Get and Range let
// any node answer from its local state, which may lag the leader's. Such
// reads scale with the number of nodes but may miss recent writes and are
// not linearizable. Writes are unaffected.
func (t *Tenant) WithStaleReads() *Tenant {
	return &Tenant{db: t.db, name: t.name, stale: true}
}

// Get returns the value of key. A missing key is an error matching
// ErrNotFound; an empty value is not. The returned slice is the caller's.
func (t *Tenant) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var resp wire.Response
	req := wire.Request{Op: wire.OpGet, Tenant: t.name, Key: key, Stale: t.stale}
	if err := t.db.do(ctx, &req, &resp, true); err != nil {
		return nil, err
	}
	if resp.Value == nil {
		return []byte{}, nil
	}
	return resp.Value, nil
}

// Set writes value under key. An error matching ErrCommitUnknown means the
// write may or may not have been applied. The client keeps neither slice.
func (t *Tenant) Set(ctx context.Context, key, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(value), MaxValueSize)
	}
	return t.write(ctx, &wire.Request{Op: wire.OpSet, Tenant: t.name, Key: key, Value: value})
}

// Delete removes key. Deleting a missing key is not an error.
func (t *Tenant) Delete(ctx context.Context, key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return t.write(ctx, &wire.Request{Op: wire.OpDelete, Tenant: t.name, Key: key})
}

// DeleteRange removes every key in r in one atomic write. A zero KeyRange
// removes all of the tenant's keys.
func (t *Tenant) DeleteRange(ctx context.Context, r KeyRange) error {
	if err := checkRange(r.Begin, r.End); err != nil {
		return err
	}
	return t.write(ctx, &wire.Request{Op: wire.OpDeleteRange, Tenant: t.name, Key: r.Begin, End: r.End})
}

func (t *Tenant) write(ctx context.Context, req *wire.Request) error {
	var resp wire.Response
	return t.db.do(ctx, req, &resp, false)
}

// Range returns the pairs in r in ascending key order (descending with
// Reverse), fetched page by page as the loop asks for them. Breaking out of
// the loop stops fetching; the server holds nothing between pages. An error
// ends the sequence after being yielded once, with a zero KV.
//
// Each page is read consistently, but a range of more than one page is not
// one snapshot: a write between two round trips may be seen by later pages
// only. Returned slices are the caller's.
func (t *Tenant) Range(ctx context.Context, r KeyRange, opts *RangeOptions) iter.Seq2[KV, error] {
	var o RangeOptions
	if opts != nil {
		o = *opts
	}
	o.Stale = o.Stale || t.stale
	return func(yield func(KV, error) bool) {
		if o.Limit < 0 || o.PageSize < 0 {
			yield(KV{}, fmt.Errorf("%w: negative Limit or PageSize", ErrInvalidArgument))
			return
		}
		if err := checkRange(r.Begin, r.End); err != nil {
			yield(KV{}, err)
			return
		}
		pageSize := o.PageSize
		if pageSize == 0 {
			pageSize = DefaultPageSize
		}
		begin, end := r.Begin, r.End
		n := 0 // pairs yielded
		var resp wire.Response
		for {
			ask := pageSize
			if o.Limit > 0 {
				ask = min(ask, o.Limit-n)
			}
			req := wire.Request{Op: wire.OpScan, Tenant: t.name, Key: begin, End: end,
				Limit: ask, Reverse: o.Reverse, Stale: o.Stale}
			if err := t.db.do(ctx, &req, &resp, true); err != nil {
				yield(KV{}, err)
				return
			}
			kvs, more := resp.KVs, resp.More
			resp = wire.Response{}
			if more && len(kvs) == 0 {
				yield(KV{}, fmt.Errorf("%w: server returned an empty page with more to come", ErrInternal))
				return
			}
			// The next page's bound, taken before the caller can touch the
			// keys it is given.
			if more {
				last := kvs[len(kvs)-1].Key
				if o.Reverse {
					end = bytes.Clone(last)
				} else {
					begin = append(bytes.Clone(last), 0)
				}
			}
			for i := range kvs {
				if !yield(KV{Key: kvs[i].Key, Value: kvs[i].Value, Version: kvs[i].Version}, nil) {
					return
				}
				n++
				if o.Limit > 0 && n >= o.Limit {
					return
				}
			}
			if !more || (len(end) > 0 && bytes.Compare(begin, end) >= 0) {
				return
			}
		}
	}
}

// checkKey mirrors the servers' rules so that a bad key fails without a
// round trip.
func checkKey(k []byte) error {
	if len(k) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(k) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(k), MaxKeySize)
	}
	return nil
}

// checkRange mirrors the servers' rules for ranges. Bounds may be one byte
// longer than a key, so that the prefix end of a maximal key fits.
func checkRange(begin, end []byte) error {
	if len(begin) > MaxKeySize+1 || len(end) > MaxKeySize+1 {
		return fmt.Errorf("%w: bound longer than %d bytes", ErrKeyTooLarge, MaxKeySize+1)
	}
	if len(end) > 0 && bytes.Compare(begin, end) >= 0 {
		return fmt.Errorf("%w: begin %q is not before end %q", ErrInvalidRange, begin, end)
	}
	return nil
}
