package keyspace

import (
	"bytes"
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
	sysTenantMD = 'u' // per-tenant metadata maintained by the FSM (usage, versions, history)
)

// SystemSpan is the span of the whole system keyspace: [0xFF, ∞). Its End is
// nil, meaning unbounded.
func SystemSpan() Span { return Span{Start: []byte{SystemByte}, End: nil} }

// SystemRecordSpan spans every key that may hold a system record: 0xFF
// then a kind byte other than 0x00 and 0xFF, then anything. It is what
// snapshots, checksums and a dump of the system keyspace cover.
func SystemRecordSpan() (start, end SystemKey) {
	return SystemKey{b: []byte{SystemByte, 0x01}}, SystemKey{b: []byte{SystemByte, 0xFF}}
}

// IsSystemKey reports whether a physical key belongs to the system keyspace.
func IsSystemKey(phys []byte) bool { return len(phys) > 0 && phys[0] == SystemByte }

// SystemKey is a physical key in the system keyspace. Its bytes are
// unexported, so only the constructors of this package make one: a
// SystemKey always starts with 0xFF and a kind byte, and every layout
// decision about the system keyspace is taken here. The zero SystemKey is
// empty and names no record; store refuses it.
type SystemKey struct{ b []byte }

// Bytes returns the physical key. The slice is shared with the key: the
// caller must not modify it. It is for store, which hands it to the engine
// without a copy.
func (k SystemKey) Bytes() []byte { return k.b }

// String returns the key quoted, for messages.
func (k SystemKey) String() string { return fmt.Sprintf("%q", k.b) }

func sysKey(kind byte, rest ...[]byte) SystemKey {
	n := 2
	for _, r := range rest {
		n += len(r)
	}
	k := make([]byte, 0, n)
	k = append(k, SystemByte, kind)
	for _, r := range rest {
		k = append(k, r...)
	}
	return SystemKey{b: k}
}

// AppliedIndexKey is where the store keeps the last applied raft index.
func AppliedIndexKey() SystemKey { return sysKey(sysApplied) }

// NextIDKey is where the next tenant ID to allocate is kept.
func NextIDKey() SystemKey { return sysKey(sysNextID) }

// TenantRecordKey is the key of the record of tenant id.
func TenantRecordKey(id TenantID) SystemKey {
	return sysKey(sysTenant, binary.BigEndian.AppendUint64(nil, uint64(id)))
}

// TenantRecordSpan spans every tenant record, in ID order.
func TenantRecordSpan() (start, end SystemKey) {
	return sysKey(sysTenant), sysKey(sysTenant + 1)
}

// TenantNameKey is the key of the name index entry for name.
func TenantNameKey(name string) SystemKey { return sysKey(sysName, []byte(name)) }

// TenantNameSpan spans every entry of the tenant name index, in name order.
func TenantNameSpan() (start, end SystemKey) { return sysKey(sysName), sysKey(sysName + 1) }

// TenantNamesAfter spans the entries of the name index whose names sort
// after name, in name order.
func TenantNamesAfter(name string) (start, end SystemKey) {
	// The first name after name is name followed by 0x00.
	return sysKey(sysName, []byte(name), []byte{0}), sysKey(sysName + 1)
}

// TenantNameOf returns the name of a name index key, as Scan over
// TenantNameSpan hands it back, and false for any other key.
func TenantNameOf(phys []byte) (string, bool) {
	if len(phys) < 2 || phys[0] != SystemByte || phys[1] != sysName {
		return "", false
	}
	return string(phys[2:]), true
}

// TokenKey is the key of the token record with the given ID.
func TokenKey(tokenID string) SystemKey { return sysKey(sysToken, []byte(tokenID)) }

// TokenSpan spans every token record.
func TokenSpan() (start, end SystemKey) { return sysKey(sysToken), sysKey(sysToken + 1) }

// MetaKey is the key of a named piece of cluster metadata.
func MetaKey(name string) SystemKey { return sysKey(sysMeta, []byte(name)) }

// memberPrefix starts the cluster metadata names of member records.
const memberPrefix = "member/"

// MemberKey is the key of the replicated metadata of raft member nodeID:
// the cluster metadata named "member/" + nodeID.
func MemberKey(nodeID string) SystemKey {
	return sysKey(sysMeta, []byte(memberPrefix), []byte(nodeID))
}

// MemberSpan spans every member record, in node ID order.
func MemberSpan() (start, end SystemKey) {
	return sysKey(sysMeta, []byte(memberPrefix)), sysKey(sysMeta, prefixEnd([]byte(memberPrefix)))
}

// Per-tenant metadata: records the state machine keeps for one tenant, all
// under 0xFF 'u' BE64(id), so that TenantMetaSpan(id) holds every one of
// them and nothing of any other tenant.
const (
	usageRecord   = "usage"
	versionRecord = "ver"
	historyPrefix = "log/"
	// The audit trail: events under "audit/" BE64(seq), and the trail's
	// state (its extent and the chain's ends) under "auditst".
	auditPrefix = "audit/"
	auditState  = "auditst"
)

// tenantMetaKey is the key of a named record of tenant id.
func tenantMetaKey(id TenantID, name ...[]byte) SystemKey {
	// Built in one allocation: these keys are made for every write (its
	// history entry and the pruning of the oldest one).
	n := 2 + 8
	for _, r := range name {
		n += len(r)
	}
	k := make([]byte, 2, n)
	k[0], k[1] = SystemByte, sysTenantMD
	k = binary.BigEndian.AppendUint64(k, uint64(id))
	for _, r := range name {
		k = append(k, r...)
	}
	return SystemKey{b: k}
}

// TenantMetaSpan spans every per-tenant metadata key of tenant id: its
// usage, its version state and its write history. The spans of distinct
// valid tenants are disjoint and sort in ID order.
func TenantMetaSpan(id TenantID) (start, end SystemKey) {
	return tenantMetaKey(id), tenantMetaKey(id + 1)
}

// InTenantMeta reports whether the physical key phys lies in
// TenantMetaSpan(id). It allocates nothing: store checks every key a
// tenant's metadata view is given or reads with it.
func InTenantMeta(id TenantID, phys []byte) bool {
	return len(phys) >= 2+PrefixLen && phys[0] == SystemByte && phys[1] == sysTenantMD &&
		binary.BigEndian.Uint64(phys[2:]) == uint64(id)
}

// TenantUsageKey is the key of tenant id's usage counters.
func TenantUsageKey(id TenantID) SystemKey { return tenantMetaKey(id, []byte(usageRecord)) }

// TenantVersionKey is the key of tenant id's version state: its version and
// the extent of its write history.
func TenantVersionKey(id TenantID) SystemKey { return tenantMetaKey(id, []byte(versionRecord)) }

// HistoryKey is the key of chunk chunk of the entry of tenant id's write
// history at version. A tenant's history keys sort by version, then chunk.
func HistoryKey(id TenantID, version uint64, chunk uint32) SystemKey {
	var vc [12]byte
	binary.BigEndian.PutUint64(vc[:], version)
	binary.BigEndian.PutUint32(vc[8:], chunk)
	return tenantMetaKey(id, []byte(historyPrefix), vc[:])
}

// HistorySpan spans every chunk of the entries of tenant id's write history
// with versions in (after, upTo], in version and chunk order. It is empty
// (start == end) when upTo <= after.
func HistorySpan(id TenantID, after, upTo uint64) (start, end SystemKey) {
	if upTo <= after {
		k := HistoryKey(id, after, 0)
		return k, k
	}
	start = HistoryKey(id, after+1, 0)
	if upTo == ^uint64(0) {
		// No version follows: end where the history prefix does.
		return start, tenantMetaKey(id, prefixEnd([]byte(historyPrefix)))
	}
	return start, HistoryKey(id, upTo+1, 0)
}

// prefixEnd returns the least byte string greater than every string with
// prefix p, for a p that does not end in 0xFF.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	end[len(end)-1]++
	return end
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

// AuditEventKey is the key of event seq of tenant id's audit trail. A
// tenant's events sort by seq.
func AuditEventKey(id TenantID, seq uint64) SystemKey {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return tenantMetaKey(id, []byte(auditPrefix), b[:])
}

// AuditEventSpan spans the events of tenant id's audit trail with seq at
// or above from.
func AuditEventSpan(id TenantID, from uint64) (start, end SystemKey) {
	return AuditEventKey(id, from), tenantMetaKey(id, prefixEnd([]byte(auditPrefix)))
}

// AuditSeqOf returns the seq of an audit event key of any tenant.
func AuditSeqOf(phys []byte) (uint64, bool) {
	n := 2 + PrefixLen + len(auditPrefix)
	if len(phys) != n+8 || !bytes.Equal(phys[2+PrefixLen:n], []byte(auditPrefix)) {
		return 0, false
	}
	return binary.BigEndian.Uint64(phys[n:]), true
}

// AuditStateKey is the key of tenant id's audit trail state.
func AuditStateKey(id TenantID) SystemKey { return tenantMetaKey(id, []byte(auditState)) }
