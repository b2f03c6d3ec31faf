package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// ErrQuotaExceeded is returned when a write would take a tenant over its
// max-bytes or max-keys limit. The write is refused as a whole.
var ErrQuotaExceeded = errors.New("tenantkv: quota exceeded")

// Usage is what a tenant stores: the logical bytes (len(key)+len(value)
// summed over live keys) and the number of keys. The FSM maintains it in the
// same batch as every write, so it is exact on every replica at every index.
type Usage struct {
	Bytes uint64
	Keys  uint64
}

// usageName is the per-tenant metadata key the usage counters live under.
const usageName = "usage"

func encodeUsage(u Usage) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, u.Bytes)
	return binary.BigEndian.AppendUint64(b, u.Keys)
}

func decodeUsage(b []byte) (Usage, error) {
	if len(b) != 16 {
		return Usage{}, fmt.Errorf("%w: usage record of %d bytes", keyspace.ErrInvalidRecord, len(b))
	}
	return Usage{Bytes: binary.BigEndian.Uint64(b), Keys: binary.BigEndian.Uint64(b[8:])}, nil
}

func readUsage(sys *store.SystemView, id keyspace.TenantID) (Usage, error) {
	v, err := sys.Get(keyspace.TenantMetaKey(id, usageName))
	if errors.Is(err, store.ErrNotFound) {
		return Usage{}, nil
	}
	if err != nil {
		return Usage{}, err
	}
	return decodeUsage(v)
}

// Usage returns the exact usage of tenant id in the local store.
func (f *FSM) Usage(id keyspace.TenantID) (Usage, error) {
	if err := id.Check(); err != nil {
		return Usage{}, err
	}
	if err := f.checkReadable(); err != nil {
		return Usage{}, err
	}
	if e := f.cat.tenant(id); e != nil {
		return e.usage, nil
	}
	return Usage{}, nil
}

// usageDelta computes how the ops of one tenant write change the tenant's
// usage, without writing anything. It reads the current values through v
// and overlays the command's own earlier ops, so a command that sets and
// deletes the same key is counted once. The returned error is a storage
// failure.
func usageDelta(v *store.TenantView, ops []Op) (dBytes, dKeys int64, err error) {
	// pending maps a key touched by an earlier op of this command to its
	// value size, or -1 when that op deleted it.
	pending := map[string]int{}
	sizeNow := func(k []byte) (int, error) {
		if n, ok := pending[string(k)]; ok {
			return n, nil
		}
		val, err := v.Get(k)
		if errors.Is(err, store.ErrNotFound) {
			return -1, nil
		}
		if err != nil {
			return 0, err
		}
		return len(val), nil
	}
	remove := func(k []byte, n int) {
		if n >= 0 {
			dBytes -= int64(len(k) + n)
			dKeys--
		}
	}
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case OpSet:
			n, err := sizeNow(op.Key)
			if err != nil {
				return 0, 0, err
			}
			remove(op.Key, n)
			dBytes += int64(len(op.Key) + len(op.Value))
			dKeys++
			pending[string(op.Key)] = len(op.Value)
		case OpDelete:
			n, err := sizeNow(op.Key)
			if err != nil {
				return 0, 0, err
			}
			remove(op.Key, n)
			pending[string(op.Key)] = -1
		case OpDeleteRange:
			it, err := v.NewIterator(op.Key, op.End, false)
			if err != nil {
				return 0, 0, err
			}
			for it.Next() {
				if _, ok := pending[string(it.Key())]; ok {
					continue // counted below from the overlay
				}
				remove(it.Key(), len(it.Value()))
			}
			if err := it.Close(); err != nil {
				return 0, 0, err
			}
			// Keys this command itself set inside the range.
			var inRange []string
			for k, n := range pending {
				if n >= 0 && bytes.Compare([]byte(k), op.Key) >= 0 && (len(op.End) == 0 || bytes.Compare([]byte(k), op.End) < 0) {
					inRange = append(inRange, k)
				}
			}
			sort.Strings(inRange) // deterministic, though the sum is order-free
			for _, k := range inRange {
				remove([]byte(k), pending[k])
			}
			// Everything in the range is now gone, including keys an
			// earlier op deleted; mark the iterated ones too.
			it, err = v.NewIterator(op.Key, op.End, false)
			if err != nil {
				return 0, 0, err
			}
			for it.Next() {
				pending[string(it.Key())] = -1
			}
			if err := it.Close(); err != nil {
				return 0, 0, err
			}
			for _, k := range inRange {
				pending[k] = -1
			}
		}
	}
	return dBytes, dKeys, nil
}

// applyDelta adds a signed delta to a counter. It clamps at zero, which only
// a corrupt counter could reach; every replica clamps the same way.
func applyDelta(cur uint64, d int64) uint64 {
	if d < 0 && uint64(-d) > cur {
		return 0
	}
	return uint64(int64(cur) + d)
}

// checkQuota refuses a write that grows a dimension past its limit. Writes
// that shrink or keep a dimension are allowed even over the limit, so
// deletes and clears always succeed.
func checkQuota(t *keyspace.Tenant, next Usage, dBytes, dKeys int64) error {
	if t.Limits.MaxBytes > 0 && dBytes > 0 && next.Bytes > t.Limits.MaxBytes {
		return fmt.Errorf("%w: tenant %q would store %d bytes, limit %d", ErrQuotaExceeded, t.Name, next.Bytes, t.Limits.MaxBytes)
	}
	if t.Limits.MaxKeys > 0 && dKeys > 0 && next.Keys > t.Limits.MaxKeys {
		return fmt.Errorf("%w: tenant %q would store %d keys, limit %d", ErrQuotaExceeded, t.Name, next.Keys, t.Limits.MaxKeys)
	}
	return nil
}
