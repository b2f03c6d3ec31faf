package client

import (
	"bytes"
	"encoding/binary"

	"github.com/google/btree"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// writeBuffer holds a transaction's writes for read-your-writes: what each
// touched key is now, as far as the transaction alone can tell, and the
// ranges it cleared. The mutations themselves are kept in order elsewhere
// and sent at commit, where the server evaluates them again against the
// stored values.
type writeBuffer struct {
	keys    *btree.BTreeG[*bufEntry]
	cleared []KeyRange // delete-ranges, in the order made
}

// bufEntry is one key the transaction wrote. When known, value/present is
// the key's value after the transaction's writes. Otherwise the key's
// stored value is not known and pending lists the atomic operations to
// apply to it (a key cleared by the transaction is always known: absent).
type bufEntry struct {
	key     []byte
	known   bool
	present bool
	value   []byte
	pending []wire.Mutation
}

func newWriteBuffer() *writeBuffer {
	return &writeBuffer{keys: btree.NewG(8, func(a, b *bufEntry) bool { return bytes.Compare(a.key, b.key) < 0 })}
}

func (b *writeBuffer) get(key []byte) *bufEntry {
	e, _ := b.keys.Get(&bufEntry{key: key})
	return e
}

// isCleared reports whether a delete-range of the transaction covers key.
func (b *writeBuffer) isCleared(key []byte) bool {
	for i := range b.cleared {
		if inRange(key, b.cleared[i]) {
			return true
		}
	}
	return false
}

func inRange(k []byte, r KeyRange) bool {
	return bytes.Compare(k, r.Begin) >= 0 && (len(r.End) == 0 || bytes.Compare(k, r.End) < 0)
}

// put records that key now holds value (present) or is absent.
func (b *writeBuffer) put(key, value []byte, present bool) {
	b.keys.ReplaceOrInsert(&bufEntry{key: key, known: true, present: present, value: value})
}

// clear records a delete-range.
func (b *writeBuffer) clear(r KeyRange) {
	var hit []*bufEntry
	b.keys.AscendGreaterOrEqual(&bufEntry{key: r.Begin}, func(e *bufEntry) bool {
		if len(r.End) > 0 && bytes.Compare(e.key, r.End) >= 0 {
			return false
		}
		hit = append(hit, e)
		return true
	})
	for _, e := range hit {
		e.known, e.present, e.value, e.pending = true, false, nil, nil
	}
	b.cleared = append(b.cleared, r)
}

// atomic records an atomic operation: computed at once when the key's
// value is known, queued otherwise.
func (b *writeBuffer) atomic(m wire.Mutation) {
	e := b.get(m.Key)
	if e == nil {
		e = &bufEntry{key: m.Key}
		if b.isCleared(m.Key) {
			e.known = true // cleared: absent
		}
		b.keys.ReplaceOrInsert(e)
	}
	if e.known {
		e.value, e.present = applyAtomic(e.value, e.present, &m)
		return
	}
	e.pending = append(e.pending, m)
}

// resolve returns the value of an entry whose stored value (base) is now
// known, and makes the entry known.
func (e *bufEntry) resolve(base []byte, present bool) ([]byte, bool) {
	if !e.known {
		e.value, e.present = base, present
		for i := range e.pending {
			e.value, e.present = applyAtomic(e.value, e.present, &e.pending[i])
		}
		e.known, e.pending = true, nil
	}
	return e.value, e.present
}

// applyAtomic applies one atomic operation to a value, exactly as the
// servers do (raft's resolveOps): little-endian int64 arithmetic with a
// missing value counting as 0, shorter values zero-extended and longer ones
// truncated; signed min and max; compare-and-clear on exact equality.
func applyAtomic(cur []byte, present bool, m *wire.Mutation) ([]byte, bool) {
	operand := leInt64(m.Value)
	switch m.Kind {
	case wire.MutAdd, wire.MutMin, wire.MutMax:
		res := operand
		if present {
			old := leInt64(cur)
			switch m.Kind {
			case wire.MutAdd:
				res = old + operand
			case wire.MutMin:
				res = min(old, operand)
			case wire.MutMax:
				res = max(old, operand)
			}
		}
		return binary.LittleEndian.AppendUint64(nil, uint64(res)), true
	case wire.MutCompareAndClear:
		if present && bytes.Equal(cur, m.Value) {
			return nil, false
		}
	}
	return cur, present
}

func leInt64(b []byte) int64 {
	var buf [8]byte
	copy(buf[:], b)
	return int64(binary.LittleEndian.Uint64(buf[:]))
}
