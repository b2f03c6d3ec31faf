package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// ErrCorruptValue is returned when a tenant value on disk does not carry a
// well-formed version envelope. It means a bug or corruption.
var ErrCorruptValue = errors.New("tenantkv: corrupt value envelope")

// Every tenant value on disk is wrapped in an envelope that records the
// version at which the key last changed:
//
//	physical value = 0x01 || uvarint(version) || user value
//
// The version is the tenant's own version counter (see raft's write log),
// never a global one. The format byte leaves room for later formats; a
// reader refuses any other with ErrCorruptValue. System keys carry no
// envelope, and whole-store snapshots (WriteTo, Restore, Checksum) copy
// physical values as they are.
const valueFormatV1 = 0x01

// maxEnvelope is the longest envelope header: a format byte and a uvarint.
const maxEnvelope = 1 + binary.MaxVarintLen64

// appendEnvelope appends the physical form of value at version to dst.
func appendEnvelope(dst []byte, version uint64, value []byte) []byte {
	dst = append(dst, valueFormatV1)
	dst = binary.AppendUvarint(dst, version)
	return append(dst, value...)
}

// decodeEnvelope splits a physical tenant value. The returned value aliases
// phys.
func decodeEnvelope(phys []byte) (value []byte, version uint64, err error) {
	if len(phys) == 0 || phys[0] != valueFormatV1 {
		return nil, 0, fmt.Errorf("%w: %d bytes, format %#x", ErrCorruptValue, len(phys), firstByte(phys))
	}
	version, n := binary.Uvarint(phys[1:])
	if n <= 0 {
		return nil, 0, fmt.Errorf("%w: bad version varint", ErrCorruptValue)
	}
	return phys[1+n:], version, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// SetVersioned writes key=value and records version as the version at which
// the key last changed. Set is SetVersioned with version 0.
func (v *TenantView) SetVersioned(key, value []byte, version uint64) error {
	if err := keyspace.CheckKey(key); err != nil {
		return err
	}
	if err := keyspace.CheckValue(value); err != nil {
		return err
	}
	// Direct calls: through the interface the key and envelope buffers
	// escape to the heap, two allocations on every write the FSM applies.
	var kbuf [128]byte
	var vbuf [256]byte
	var err error
	switch w := v.w.(type) {
	case dataWriter:
		err = w.set(keyspace.AppendTenantKey(kbuf[:0], v.id, key), appendEnvelope(vbuf[:0], version, value))
	case batchWriter:
		err = w.set(keyspace.AppendTenantKey(kbuf[:0], v.id, key), appendEnvelope(vbuf[:0], version, value))
	default:
		err = v.w.set(keyspace.AppendTenantKey(nil, v.id, key), appendEnvelope(nil, version, value))
	}
	if err == nil {
		v.note(key, int32(len(value)))
	}
	return err
}

// GetVersioned returns a copy of the value of key and the version at which
// the key last changed, or ErrNotFound.
func (v *TenantView) GetVersioned(key []byte) ([]byte, uint64, error) {
	if err := keyspace.CheckKey(key); err != nil {
		return nil, 0, err
	}
	var buf [128]byte
	return getVersioned(v.r, keyspace.AppendTenantKey(buf[:0], v.id, key))
}

// getVersioned reads the tenant value at physical key k and returns a copy
// of its user value and its version.
func getVersioned(r pebble.Reader, k []byte) ([]byte, uint64, error) {
	phys, closer, err := r.Get(k)
	if err == pebble.ErrNotFound {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	defer closer.Close()
	val, ver, err := decodeEnvelope(phys)
	if err != nil {
		return nil, 0, err
	}
	out := make([]byte, len(val))
	copy(out, val)
	return out, ver, nil
}

// current decodes the envelope of the pair the iterator is positioned on.
// A failure stops the iteration with ErrCorruptValue.
func (it *Iterator) current() ([]byte, uint64) {
	phys, err := it.it.ValueAndErr()
	if err != nil {
		it.err = err
		return nil, 0
	}
	val, ver, err := decodeEnvelope(phys)
	if err != nil {
		it.err = fmt.Errorf("%w (key %q)", err, it.key)
		return nil, 0
	}
	return val, ver
}

// Version returns the version at which the current key last changed.
func (it *Iterator) Version() uint64 {
	_, ver := it.current()
	return ver
}
