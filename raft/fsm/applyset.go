package fsm

import (
	"bytes"
	"errors"

	"github.com/google/btree"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// # Apply cost
//
// Applying a command costs O(n log n) in its n mutations plus the live keys
// its delete-ranges remove, never a pass per pair of mutations:
//
//   - spanSet, a set of disjoint key ranges, answers "is this key covered by
//     a delete-range" in O(log n) (resolveOps, the overlay);
//   - pointSet, an ordered map of point writes, lets a delete-range remove
//     the earlier writes it covers without looking at the others;
//   - dataOverlay holds what the commands before this one in the same raft
//     batch wrote to a tenant;
//   - netOps finds the writes a later delete-range covers by one sort and
//     sweep (coveredLater), and planWrite walks the union of a command's
//     delete-ranges, sorted and merged (eachUnion), once, and reads its
//     point keys by seeking one iterator in key order.
//
// Reads of a tenant's data never go through the Pebble batch: an indexed
// batch re-fragments all its range deletions on every Get, which made one
// write of 10,000 delete-ranges take seconds. The applier writes tenant
// data into an unindexed part of the batch (store.Batch.TenantUnindexed),
// reads the committed store, and overlays the raft batch's own earlier
// writes (dataOverlay) and the command's own (resolveOps, planWrite)
// itself. Everything here depends only on replicated state and the order
// of the log, so every replica computes the same.

// btreeDegree is the degree of the ordered structures of the apply path.
const btreeDegree = 16

// keySpan is a half-open range of user keys [start, end); an empty end is
// the end of the tenant's keys.
type keySpan struct {
	start, end []byte
}

func spanLess(a, b keySpan) bool { return bytes.Compare(a.start, b.start) < 0 }

// maxEnd returns the later of two range ends.
func maxEnd(a, b []byte) []byte {
	if len(a) == 0 || len(b) == 0 {
		return nil
	}
	if bytes.Compare(a, b) >= 0 {
		return a
	}
	return b
}

// spanSet is a set of disjoint, non-touching key ranges. The zero value is
// empty and ready.
type spanSet struct {
	t *btree.BTreeG[keySpan]
}

// add inserts [start, end), merging it with every range it overlaps or
// touches. Amortised O(log n): each range is merged away at most once.
func (s *spanSet) add(start, end []byte) {
	if s.t == nil {
		s.t = btree.NewG(btreeDegree, spanLess)
	}
	if len(end) != 0 && bytes.Compare(start, end) >= 0 {
		return // empty: validate refuses these, but stay safe
	}
	// The range before start, if it reaches start.
	var merged []keySpan
	s.t.DescendLessOrEqual(keySpan{start: start}, func(p keySpan) bool {
		if len(p.end) == 0 || bytes.Compare(p.end, start) >= 0 {
			merged = append(merged, p)
			start, end = p.start, maxEnd(p.end, end)
		}
		return false
	})
	// Ranges that start inside [start, end].
	s.t.AscendGreaterOrEqual(keySpan{start: start}, func(p keySpan) bool {
		if len(end) != 0 && bytes.Compare(p.start, end) > 0 {
			return false
		}
		merged = append(merged, p)
		end = maxEnd(p.end, end)
		return true
	})
	for _, p := range merged {
		s.t.Delete(p)
	}
	s.t.ReplaceOrInsert(keySpan{start: start, end: end})
}

// covers reports whether a range of the set holds k.
func (s *spanSet) covers(k []byte) bool {
	if s.t == nil {
		return false
	}
	in := false
	s.t.DescendLessOrEqual(keySpan{start: k}, func(p keySpan) bool {
		in = len(p.end) == 0 || bytes.Compare(k, p.end) < 0
		return false
	})
	return in
}

// gaps calls fn, in key order, for each maximal piece of [start, end) that
// no range of the set covers. It costs O(log n) plus the ranges inside.
func (s *spanSet) gaps(start, end []byte, fn func(lo, hi []byte) error) error {
	if s.t == nil {
		return fn(start, end)
	}
	cur := start
	done := false
	s.t.DescendLessOrEqual(keySpan{start: cur}, func(p keySpan) bool {
		if len(p.end) == 0 {
			done = true
		} else if bytes.Compare(cur, p.end) < 0 {
			cur = p.end
		}
		return false
	})
	if done || (len(end) != 0 && bytes.Compare(cur, end) >= 0) {
		return nil
	}
	var err error
	s.t.AscendGreaterOrEqual(keySpan{start: cur}, func(p keySpan) bool {
		if len(end) != 0 && bytes.Compare(p.start, end) >= 0 {
			return false
		}
		if bytes.Compare(cur, p.start) < 0 {
			if err = fn(cur, p.start); err != nil {
				return false
			}
		}
		if len(p.end) == 0 {
			done = true
			return false
		}
		cur = p.end
		return true
	})
	if err != nil || done || (len(end) != 0 && bytes.Compare(cur, end) >= 0) {
		return err
	}
	return fn(cur, end)
}

// pointWrite is the last write of a key: its value, or absent.
type pointWrite struct {
	key     []byte
	val     []byte
	present bool
}

func pointLess(a, b pointWrite) bool { return bytes.Compare(a.key, b.key) < 0 }

// pointSet is an ordered map from key to its last point write. The zero
// value is empty and ready.
type pointSet struct {
	t *btree.BTreeG[pointWrite]
}

func (p *pointSet) put(w pointWrite) {
	if p.t == nil {
		p.t = btree.NewG(btreeDegree, pointLess)
	}
	p.t.ReplaceOrInsert(w)
}

func (p *pointSet) get(k []byte) (pointWrite, bool) {
	if p.t == nil {
		return pointWrite{}, false
	}
	return p.t.Get(pointWrite{key: k})
}

// clear removes every write in [start, end); it costs O(log n) plus the
// writes removed, each of which was put once.
func (p *pointSet) clear(start, end []byte) {
	if p.t == nil {
		return
	}
	var gone []pointWrite
	p.t.AscendGreaterOrEqual(pointWrite{key: start}, func(w pointWrite) bool {
		if len(end) != 0 && bytes.Compare(w.key, end) >= 0 {
			return false
		}
		gone = append(gone, w)
		return true
	})
	for _, w := range gone {
		p.t.Delete(w)
	}
}

// ascend calls fn for the writes in [start, end), in key order, until fn
// fails.
func (p *pointSet) ascend(start, end []byte, fn func(w pointWrite) error) error {
	if p.t == nil {
		return nil
	}
	var err error
	p.t.AscendGreaterOrEqual(pointWrite{key: start}, func(w pointWrite) bool {
		if len(end) != 0 && bytes.Compare(w.key, end) >= 0 {
			return false
		}
		err = fn(w)
		return err == nil
	})
	return err
}

// dataOverlay is what the commands applied so far in this raft batch wrote
// to one tenant: its point writes, and the ranges it deleted (a point write
// made after a delete-range sits in points; the delete-range removed the
// earlier ones it covered). Together with the committed store it is the
// tenant's current state.
type dataOverlay struct {
	points  pointSet
	cleared spanSet
}

// apply records ops (sets, deletes and delete-ranges), in order.
func (o *dataOverlay) apply(ops []command.Op) {
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case command.OpSet:
			o.points.put(pointWrite{key: op.Key, val: op.Value, present: true})
		case command.OpDelete:
			o.points.put(pointWrite{key: op.Key})
		case command.OpDeleteRange:
			o.points.clear(op.Key, op.End)
			o.cleared.add(op.Key, op.End)
		}
	}
}

// clearAll records that the tenant's whole span was deleted.
func (d *tenantData) clearAll() {
	d.pending = d.pending[:0]
	d.ov.clearAll()
}

func (o *dataOverlay) clearAll() {
	o.points = pointSet{}
	o.cleared = spanSet{}
	o.cleared.add(nil, nil)
}

// tenantData is the applier's access to one tenant's data in this raft
// batch: the committed store through v (which writes into the batch), and
// the batch's own writes so far in ov.
type tenantData struct {
	v  *store.TenantView
	ov dataOverlay
	// pending are the ops written since the overlay was last read, in
	// order: the overlay is built only when a later command of the batch
	// reads this tenant, so a command alone in its batch pays nothing.
	pending [][]command.Op
	// reads counts the point reads and range walks of the committed
	// store, for the tests that check the apply is linear.
	reads int
	// it is the batch's iterator over the committed store (iter).
	it *store.Iterator
}

// wrote records ops, just written to the batch, for later reads.
func (d *tenantData) wrote(ops []command.Op) { d.pending = append(d.pending, ops) }

// settle brings the overlay up to date with what was written.
func (d *tenantData) settle() {
	for _, ops := range d.pending {
		d.ov.apply(ops)
	}
	d.pending = d.pending[:0]
}

// get returns k's current value.
func (d *tenantData) get(k []byte) ([]byte, bool, error) {
	d.settle()
	if w, ok := d.ov.points.get(k); ok {
		return w.val, w.present, nil
	}
	if d.ov.cleared.covers(k) {
		return nil, false, nil
	}
	d.reads++
	val, err := d.v.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return val, true, nil
}

// sizeOf returns the size of k's current value: from the store's size
// cache when k was written recently (store.TenantView.CommittedSize), else
// reading the committed store with the batch's iterator over the tenant's
// keys (iter), made on the first read that needs it.
// Seeking one iterator costs far less than a Get per key, and an exact
// seek skips, by their bloom filters, the tables that do not hold k.
func (d *tenantData) sizeOf(k []byte) (int, bool, error) {
	d.settle()
	if w, ok := d.ov.points.get(k); ok {
		return len(w.val), w.present, nil
	}
	if d.ov.cleared.covers(k) {
		return 0, false, nil
	}
	if n, present, ok := d.v.CommittedSize(k); ok {
		return n, present, nil // written recently: the store remembers
	}
	it, err := d.iter()
	if err != nil {
		return 0, false, err
	}
	d.reads++
	if it.SeekExact(k) {
		return len(it.Value()), true, nil
	}
	return 0, false, it.Err()
}

// walk calls fn for every live key in [start, end) with the size of its
// value, once each, in no particular order. It reads the committed store
// only where this batch has not deleted, with it, the batch's iterator
// over the tenant's keys (iter).
func (d *tenantData) walk(it *store.Iterator, start, end []byte, fn func(k []byte, size int) error) error {
	d.settle()
	err := d.ov.points.ascend(start, end, func(w pointWrite) error {
		if w.present {
			return fn(w.key, len(w.val))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return d.ov.cleared.gaps(start, end, func(lo, hi []byte) error {
		d.reads++
		for ok := it.SeekGE(lo); ok; ok = it.Next() {
			k := it.Key()
			if len(hi) != 0 && bytes.Compare(k, hi) >= 0 {
				return nil
			}
			if d.ov.points.t != nil {
				if _, ok := d.ov.points.get(k); ok {
					continue // shadowed by this batch's write, counted above
				}
			}
			if err := fn(k, len(it.Value())); err != nil {
				return err
			}
		}
		return it.Err()
	})
}

// iter returns this batch's forward iterator over all of the tenant's
// committed keys, for sizeOf and walk, made on first use and closed by the
// applier's close. One iterator serves every command of the batch: the
// committed store does not change until the batch commits (the batch's
// own writes are read from the overlay), and opening an iterator per
// command was a tenth of a one-key write's apply.
func (d *tenantData) iter() (*store.Iterator, error) {
	if d.it == nil {
		it, err := d.v.NewIterator(nil, nil, false)
		if err != nil {
			return nil, err
		}
		d.it = it
	}
	return d.it, nil
}

// close releases the iterators the batch's reads opened.
func (a *applier) close() {
	for _, d := range a.data {
		if d.it != nil {
			_ = d.it.Close()
			d.it = nil
		}
	}
}

// tenantData returns this batch's access to tenant id's data.
func (a *applier) tenantData(id keyspace.TenantID) (*tenantData, error) {
	if d, ok := a.data[id]; ok {
		return d, nil
	}
	v, err := a.b.TenantUnindexed(id)
	if err != nil {
		return nil, fatal("tenant view %d: %w", id, err)
	}
	if a.data == nil {
		a.data = make(map[keyspace.TenantID]*tenantData)
	}
	d := &tenantData{v: v}
	a.data[id] = d
	return d, nil
}
