package fsm

// quota.go is the one home of the storage quota rules: what a tenant's
// usage is and how it is stored, how a write changes it (the delta comes
// from planWrite, usage.go) and when a write is refused for it. Usage is
// replicated state, kept exact on every replica in the same batch as the
// data, so every replica refuses the same writes.
//
// Rate and concurrency limits (operations per second, in-flight requests,
// watches) are not here: they are node-local admission control, applied by
// the node that receives a request before raft sees it, and live in
// server/limits.go. They are not replicated state and never decide a
// command's result.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// Usage is what a tenant stores: the logical bytes (len(key)+len(value)
// summed over live keys) and the number of keys. The FSM maintains it in the
// same batch as every write, so it is exact on every replica at every index.
type Usage struct {
	Bytes uint64
	Keys  uint64
}

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

// readUsage reads tenant id's usage counters through m, the view of the
// tenant's records; a tenant never written uses nothing.
func readUsage(m *store.TenantMetaView, id keyspace.TenantID) (Usage, error) {
	v, err := m.Get(keyspace.TenantUsageKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return Usage{}, nil
	}
	if err != nil {
		return Usage{}, err
	}
	return decodeUsage(v)
}

// Usage returns the exact usage of tenant id in the local store.
func (f *Machine) Usage(id keyspace.TenantID) (Usage, error) {
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

// applyDelta adds a signed delta to a counter. It clamps at zero, which only
// a corrupt counter could reach; every replica clamps the same way.
func applyDelta(cur uint64, d int64) uint64 {
	if d < 0 && uint64(-d) > cur {
		return 0
	}
	return uint64(int64(cur) + d)
}

// chargeUsage returns tenant t's usage after a write that changes it by
// dBytes and dKeys from cur, or the quota error that refuses the write
// (checkQuota).
func chargeUsage(t *keyspace.Tenant, cur Usage, dBytes, dKeys int64) (Usage, error) {
	next := Usage{Bytes: applyDelta(cur.Bytes, dBytes), Keys: applyDelta(cur.Keys, dKeys)}
	if err := checkQuota(t, next, dBytes, dKeys); err != nil {
		return Usage{}, err
	}
	return next, nil
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
