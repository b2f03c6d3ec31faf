package keyspace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Size limits, as in FoundationDB.
const (
	// MaxKeySize is the largest user key accepted, in bytes.
	MaxKeySize = 10_000
	// MaxValueSize is the largest value accepted, in bytes.
	MaxValueSize = 100_000
	// PrefixLen is the length of a tenant prefix in bytes.
	PrefixLen = 8
)

// Errors returned by keyspace. Each is defined once here and matched with errors.Is.
var (
	ErrInvalidName   = errors.New("tenantkv: invalid tenant name")
	ErrInvalidID     = errors.New("tenantkv: invalid tenant id")
	ErrInvalidKey    = errors.New("tenantkv: invalid key")
	ErrKeyTooLarge   = errors.New("tenantkv: key too large")
	ErrValueTooLarge = errors.New("tenantkv: value too large")
	ErrOutsideSpan   = errors.New("tenantkv: key outside tenant span")
	ErrInvalidRange  = errors.New("tenantkv: invalid range")
	ErrCorruptKey    = errors.New("tenantkv: corrupt physical key")
	ErrIDsExhausted  = errors.New("tenantkv: tenant ids exhausted")
	ErrInvalidRecord = errors.New("tenantkv: invalid tenant record")
	ErrInvalidState  = errors.New("tenantkv: invalid tenant state")
)

// TenantID identifies a tenant for its whole life. IDs are allocated in
// increasing order starting at FirstID, are never reused, and never have 0xFF
// as their first big-endian byte.
type TenantID uint64

const (
	// FirstID is the first tenant ID handed out. ID 0 is never used, so a
	// zero TenantID always means "no tenant".
	FirstID TenantID = 1
	// MaxID is the largest valid tenant ID: the last one whose prefix does not
	// start with 0xFF.
	MaxID TenantID = 0xFEFF_FFFF_FFFF_FFFF
)

// Valid reports whether id may name a tenant.
func (id TenantID) Valid() bool { return id >= FirstID && id <= MaxID }

// Check returns ErrInvalidID if id may not name a tenant.
func (id TenantID) Check() error {
	if !id.Valid() {
		return fmt.Errorf("%w: %d", ErrInvalidID, uint64(id))
	}
	return nil
}

// Next returns the ID allocated after id, or ErrIDsExhausted.
func (id TenantID) Next() (TenantID, error) {
	if id >= MaxID {
		return 0, ErrIDsExhausted
	}
	if id < FirstID {
		return FirstID, nil
	}
	return id + 1, nil
}

func (id TenantID) String() string { return fmt.Sprintf("%d", uint64(id)) }

// Prefix returns the 8-byte big-endian prefix of the tenant.
func (id TenantID) Prefix() [PrefixLen]byte {
	var p [PrefixLen]byte
	binary.BigEndian.PutUint64(p[:], uint64(id))
	return p
}

// Span is a half-open range of physical keys [Start, End).
type Span struct {
	Start, End []byte
}

// Contains reports whether the physical key k lies in the span.
func (s Span) Contains(k []byte) bool {
	return bytes.Compare(k, s.Start) >= 0 && bytes.Compare(k, s.End) < 0
}

// TenantSpan returns the span holding every physical key of the tenant. The
// end is the prefix of id+1, which for MaxID is 0xFF followed by zeros: the
// first key of the system keyspace, which the span excludes.
func TenantSpan(id TenantID) Span {
	start := id.Prefix()
	end := (id + 1).Prefix()
	return Span{Start: start[:], End: end[:]}
}

// AllTenantsSpan is the span of every tenant's keys: everything below the
// system keyspace. It starts at 0x00, not at the empty key: every tenant key
// is at least 0x00 (a prefix of 8 bytes), and a Pebble range deletion that
// starts at the empty key can be skipped by a compaction (store/restore.go
// says how that was found).
func AllTenantsSpan() Span {
	return Span{Start: []byte{0x00}, End: []byte{SystemByte}}
}

// CheckKey validates a user key: non-empty and at most MaxKeySize bytes.
func CheckKey(k []byte) error {
	if len(k) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(k) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(k), MaxKeySize)
	}
	return nil
}

// CheckValue validates a value: at most MaxValueSize bytes. An empty value is
// allowed and distinct from a missing key.
func CheckValue(v []byte) error {
	if len(v) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(v), MaxValueSize)
	}
	return nil
}

// CheckRange validates a user-key range [start, end). A nil or empty end
// means "to the end of the tenant's span"; start may be empty, meaning the
// beginning of the span. A range with start >= end is refused. Bounds may be
// at most MaxKeySize+1 bytes so that a prefix end of a maximal key fits.
func CheckRange(start, end []byte) error {
	if len(start) > MaxKeySize+1 || len(end) > MaxKeySize+1 {
		return fmt.Errorf("%w: bound longer than %d bytes", ErrKeyTooLarge, MaxKeySize+1)
	}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return fmt.Errorf("%w: start %q is not before end %q", ErrInvalidRange, start, end)
	}
	return nil
}

// AppendTenantKey appends the physical key of userKey in tenant id to dst.
func AppendTenantKey(dst []byte, id TenantID, userKey []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(id))
	return append(dst, userKey...)
}

// TenantKey returns the physical key of userKey in tenant id in a new slice.
func TenantKey(id TenantID, userKey []byte) []byte {
	return AppendTenantKey(make([]byte, 0, PrefixLen+len(userKey)), id, userKey)
}

// TenantBounds returns the physical bounds of the user range [start, end) in
// tenant id. An empty start maps to the span start, an empty end to the span
// end, so the result always lies inside the tenant's span.
func TenantBounds(id TenantID, start, end []byte) (lo, hi []byte) {
	lo = TenantKey(id, start)
	if len(end) == 0 {
		hi = TenantSpan(id).End
	} else {
		hi = TenantKey(id, end)
	}
	return lo, hi
}

// DecodeTenantKey splits a physical key into tenant ID and user key. The
// returned user key aliases phys. Keys of the system keyspace, keys shorter
// than a prefix and keys with an invalid ID are refused with ErrCorruptKey.
func DecodeTenantKey(phys []byte) (TenantID, []byte, error) {
	if len(phys) < PrefixLen {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrCorruptKey, len(phys))
	}
	id := TenantID(binary.BigEndian.Uint64(phys))
	if !id.Valid() {
		return 0, nil, fmt.Errorf("%w: tenant id %d", ErrCorruptKey, uint64(id))
	}
	return id, phys[PrefixLen:], nil
}

// UserKeyIn returns the user key of phys if phys belongs to tenant id, and
// ok=false otherwise. It is the last check before a key leaves the store.
func UserKeyIn(id TenantID, phys []byte) (userKey []byte, ok bool) {
	if len(phys) < PrefixLen || TenantID(binary.BigEndian.Uint64(phys)) != id {
		return nil, false
	}
	return phys[PrefixLen:], true
}

// PrefixEnd returns the smallest key greater than every key that starts with
// p, or nil when there is none (p empty or all 0xFF). The result is a new
// slice.
func PrefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
