package keyspace

import (
	"encoding/binary"
	"fmt"
)

// SystemByte is the first byte of every key in the system keyspace.
const SystemByte = 0xFF

// Second bytes of system keys. Each names one kind of system record.
const (
	sysApplied  = 'a' // applied raft index
	sysNextID   = 'n' // next tenant ID
	sysTenant   = 't' // tenant record by ID
	sysName     = 'N' // tenant ID by name
	sysToken    = 'k' // token record by token ID
	sysMeta     = 'm' // cluster metadata by name
	sysTenantMD = 'u' // per-tenant metadata maintained by the FSM (usage, versions)
)

// SystemSpan is the span of the whole system keyspace: [0xFF, ∞). Its End is
// nil, meaning unbounded.
func SystemSpan() Span { return Span{Start: []byte{SystemByte}, End: nil} }

// IsSystemKey reports whether a physical key belongs to the system keyspace.
func IsSystemKey(phys []byte) bool { return len(phys) > 0 && phys[0] == SystemByte }

// SystemKey is a physical key in the system keyspace. Values of this type are
// made only by the constructors below, so a SystemKey always starts with 0xFF.
type SystemKey []byte

func sysKey(kind byte, rest []byte) SystemKey {
	k := make([]byte, 0, 2+len(rest))
	k = append(k, SystemByte, kind)
	return append(k, rest...)
}

// AppliedIndexKey is where the store keeps the last applied raft index.
func AppliedIndexKey() SystemKey { return sysKey(sysApplied, nil) }

// NextIDKey is where the next tenant ID to allocate is kept.
func NextIDKey() SystemKey { return sysKey(sysNextID, nil) }

// TenantRecordKey is the key of the record of tenant id.
func TenantRecordKey(id TenantID) SystemKey {
	return sysKey(sysTenant, binary.BigEndian.AppendUint64(nil, uint64(id)))
}

// TenantRecordSpan spans every tenant record, in ID order.
func TenantRecordSpan() (start, end SystemKey) {
	return sysKey(sysTenant, nil), sysKey(sysTenant+1, nil)
}

// TenantNameKey is the key of the name index entry for name.
func TenantNameKey(name string) SystemKey { return sysKey(sysName, []byte(name)) }

// TenantNameSpan spans every entry of the tenant name index, in name order.
func TenantNameSpan() (start, end SystemKey) { return sysKey(sysName, nil), sysKey(sysName+1, nil) }

// TokenKey is the key of the token record with the given ID.
func TokenKey(tokenID string) SystemKey { return sysKey(sysToken, []byte(tokenID)) }

// TokenSpan spans every token record.
func TokenSpan() (start, end SystemKey) { return sysKey(sysToken, nil), sysKey(sysToken+1, nil) }

// MetaKey is the key of a named piece of cluster metadata.
func MetaKey(name string) SystemKey { return sysKey(sysMeta, []byte(name)) }

// TenantMetaKey is the key of a named piece of per-tenant metadata kept by the
// FSM (for example usage counters).
func TenantMetaKey(id TenantID, name string) SystemKey {
	rest := binary.BigEndian.AppendUint64(nil, uint64(id))
	return sysKey(sysTenantMD, append(rest, name...))
}

// TenantMetaSpan spans every per-tenant metadata key of tenant id.
func TenantMetaSpan(id TenantID) (start, end SystemKey) {
	return sysKey(sysTenantMD, binary.BigEndian.AppendUint64(nil, uint64(id))),
		sysKey(sysTenantMD, binary.BigEndian.AppendUint64(nil, uint64(id)+1))
}

// EncodeUint64 encodes a counter stored in the system keyspace.
func EncodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// DecodeUint64 decodes a counter stored in the system keyspace.
func DecodeUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: counter of %d bytes", ErrInvalidRecord, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// DecodeTenantID decodes a tenant ID stored in the name index.
func DecodeTenantID(b []byte) (TenantID, error) {
	v, err := DecodeUint64(b)
	if err != nil {
		return 0, err
	}
	id := TenantID(v)
	return id, id.Check()
}
