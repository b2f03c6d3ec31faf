package raft

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// This file holds the apply half of versions, the write history and
// transactions. The rule of apply.go holds: checks first, then writes.

// writableTenant reads tenant id and checks that it is named name and, if
// write is set, that it accepts writes.
func (a *applier) checkTenant(id keyspace.TenantID, name string, write bool) (*keyspace.Tenant, error) {
	t, err := a.tenant(id)
	if err != nil {
		return nil, err
	}
	if t.Name != name {
		return nil, fmt.Errorf("%w: id %d is named %q, not %q", ErrTenantNotFound, id, t.Name, name)
	}
	if write {
		if err := writable(t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// versionState returns tenant id's version state, owned by this batch: the
// caller changes it only once its checks are done. The tenant must exist.
func (a *applier) versionState(id keyspace.TenantID) *versionState {
	return &a.mutable(id).ver
}

// touch records that tenant id's data, version, state or existence changed
// in this batch, for the FSM's observer.
func (a *applier) touch(id keyspace.TenantID) {
	if a.touched == nil {
		a.touched = make(map[keyspace.TenantID]struct{})
	}
	a.touched[id] = struct{}{}
}

// commitOps is the write half shared by every command that writes tenant
// data: it checks quotas (a refusal writes nothing), then writes ops (only
// set, delete and delete-range) at the tenant's next version with the usage
// counters, raises the version, appends the history entry and prunes the
// history. Its cost is O(n log n) in the ops plus the live keys their
// delete-ranges remove (planWrite).
func (a *applier) commitOps(t *keyspace.Tenant, d *tenantData, st *versionState, ops []Op, at int64, txnID []byte, res *Result) error {
	ops = netOps(ops)
	// Usage is exact: computed from the values the ops replace, checked
	// against the limits, and written in the same batch as the data.
	plan, err := planWrite(d, ops)
	if err != nil {
		return fatal("tenant %d usage delta: %w", t.ID, err)
	}
	e := a.mutable(t.ID)
	cur := e.usage
	next := Usage{Bytes: applyDelta(cur.Bytes, plan.dBytes), Keys: applyDelta(cur.Keys, plan.dKeys)}
	if err := checkQuota(t, next, plan.dBytes, plan.dKeys); err != nil {
		return err
	}
	// Checks are done: write. First what the delete-ranges remove, then the
	// point writes in order: no point write is covered by a later
	// delete-range (netOps), so this gives the state of the ops in order.
	if next != cur {
		e.usage = next
		a.dirty(t.ID) // stored once per batch, by flushState
	}
	for _, pc := range plan.pieces {
		if pc.keys == nil {
			err = d.v.DeleteRange(pc.start, pc.end)
		} else {
			for _, k := range pc.keys {
				if err = d.v.Delete(k); err != nil {
					break
				}
			}
		}
		if err != nil {
			return fatal("tenant %d delete range: %w", t.ID, err)
		}
	}
	version := st.Version + 1
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case OpSet:
			err = d.v.SetVersioned(op.Key, op.Value, version)
		case OpDelete:
			if !plan.absent[i] {
				err = d.v.Delete(op.Key)
			}
		case OpDeleteRange:
			// Written above, as the pieces of the union.
		default:
			err = fmt.Errorf("op kind %s reached the store", op.Kind)
		}
		if err != nil {
			return fatal("tenant %d op %d (%s): %w", t.ID, i, op.Kind, err)
		}
	}
	d.wrote(ops)
	if err := a.appendHistory(t.ID, st, ops, at, txnID); err != nil {
		return err
	}
	res.TenantID, res.Version = t.ID, st.Version
	a.touch(t.ID)
	return nil
}

// appendHistory raises st.Version, stores the entry of ops at the new
// version, prunes old entries and stores st.
func (a *applier) appendHistory(id keyspace.TenantID, st *versionState, ops []Op, at int64, txnID []byte) error {
	heads, err := a.heads(id, st)
	if err != nil {
		return err
	}
	st.Version++
	chunks, size := encodeEntry(st.Version, at, txnID, ops)
	for i, c := range chunks {
		if err := a.set(logKey(id, st.Version, uint32(i)), c); err != nil {
			return err
		}
	}
	heads.push(entryHead{Version: st.Version, Chunks: uint64(len(chunks)), At: at, Size: size})
	st.Count++
	st.Bytes += size
	st.LastAt = max(st.LastAt, at)
	for range prunePerWrite {
		if st.First >= st.Version {
			break // the newest entry always stays
		}
		head := heads.front()
		if head.Version != st.First {
			return fatal("tenant %d: %v: oldest entry %d, version state says %d", id, errCorruptLog, head.Version, st.First)
		}
		old := head.At < st.LastAt-HistoryWindow
		if !old && st.Count <= HistoryMaxEntries && st.Bytes <= HistoryMaxBytes {
			break
		}
		for i := range head.Chunks {
			if err := a.del(logKey(id, st.First, uint32(i))); err != nil {
				return err
			}
		}
		heads.pop()
		st.First++
		st.Count--
		st.Bytes -= min(head.Size, st.Bytes)
	}
	a.dirty(id) // the version state is stored once per batch, by flushState
	return nil
}

// heads returns the queue of tenant id's retained entries, reading it from
// the history the first time (after a start or a restore). st is the
// tenant's version state before the write being applied.
func (a *applier) heads(id keyspace.TenantID, st *versionState) (*headQueue, error) {
	e := a.mutable(id)
	if e.heads != nil {
		return e.heads, nil
	}
	q := &headQueue{}
	err := scanHistory(a.sys, id, st.First-1, st.Version, func(_ uint64, head *entryHead, _ []byte) (bool, error) {
		if head != nil {
			q.push(entryHead{Version: head.Version, Chunks: head.Chunks, At: head.At, Size: head.Size})
		}
		return true, nil
	})
	if err != nil {
		return nil, fatal("tenant %d: load history heads: %w", id, err)
	}
	e.heads = q
	return q, nil
}

// headQueue is a FIFO of entry heads, oldest first.
type headQueue struct {
	q    []entryHead
	head int
}

func (h *headQueue) push(e entryHead) { h.q = append(h.q, e) }

// front returns the oldest head; the queue must not be empty.
func (h *headQueue) front() entryHead { return h.q[h.head] }

func (h *headQueue) pop() {
	h.q[h.head] = entryHead{}
	h.head++
	if h.head >= 64 && h.head*2 >= len(h.q) { // reclaim the consumed front
		n := copy(h.q, h.q[h.head:])
		h.q = h.q[:n]
		h.head = 0
	}
}

// checkHistory checks the entries after readVersion against the read
// ranges of a transaction. It returns the version of an entry carrying
// txnID (the same transaction, committed by an earlier attempt), or
// ErrConflict for the first entry that writes into a read range, whichever
// comes first; 0 and nil when neither exists. Storage errors are fatal.
func checkHistory(sys *store.SystemView, id keyspace.TenantID, st *versionState, readVersion uint64, reads []KeyRange, txnID []byte) (uint64, error) {
	if readVersion > st.Version {
		return 0, fmt.Errorf("%w: read version %d is ahead of the tenant's version %d", ErrConflict, readVersion, st.Version)
	}
	if readVersion < st.minReadVersion() {
		return 0, fmt.Errorf("%w: read version %d, oldest checkable %d", ErrTxTooOld, readVersion, st.minReadVersion())
	}
	if readVersion == st.Version || (len(reads) == 0 && len(txnID) == 0) {
		return 0, nil
	}
	var dup, conflict uint64
	var conflictKey []byte
	err := scanHistory(sys, id, readVersion, st.Version, func(version uint64, head *entryHead, body []byte) (bool, error) {
		if head != nil && len(txnID) > 0 && bytes.Equal(head.TxnID, txnID) {
			dup = version
			return false, nil
		}
		if len(reads) == 0 {
			return true, nil
		}
		err := eachRecord(body, func(r *logRecord) bool {
			if intersects(reads, r) {
				conflict, conflictKey = version, bytes.Clone(r.Key)
				return false
			}
			return true
		})
		return conflict == 0, err
	})
	if err != nil {
		return 0, err
	}
	if conflict != 0 {
		return 0, fmt.Errorf("%w: a write at version %d (key %q) changed what the transaction read at version %d", ErrConflict, conflict, conflictKey, readVersion)
	}
	return dup, nil
}

func (a *applier) txnCommit(c *TxnCommit, res *Result) error {
	t, err := a.checkTenant(c.TenantID, c.TenantName, false)
	if err != nil {
		return err
	}
	st := a.versionState(c.TenantID)
	reads := normalizeRanges(c.Reads)
	dup, err := checkHistory(a.sys, c.TenantID, st, c.ReadVersion, reads, c.TxnID)
	if errors.Is(err, errCorruptLog) {
		return fatal("tenant %d: %w", c.TenantID, err)
	}
	if err != nil {
		return err
	}
	res.TenantID = c.TenantID
	if dup != 0 {
		res.Version = dup
		return nil
	}
	if len(c.Ops) == 0 {
		res.Version = st.Version
		return nil
	}
	if err := writable(t); err != nil {
		return err
	}
	d, err := a.tenantData(c.TenantID)
	if err != nil {
		return err
	}
	ops, err := resolveOps(d, c.Ops)
	if err != nil {
		return fatal("tenant %d: evaluate atomic ops: %w", c.TenantID, err)
	}
	return a.commitOps(t, d, st, ops, c.At, c.TxnID, res)
}

func (a *applier) compareAndSwap(c *CompareAndSwap, res *Result) error {
	t, err := a.checkTenant(c.TenantID, c.TenantName, true)
	if err != nil {
		return err
	}
	d, err := a.tenantData(c.TenantID)
	if err != nil {
		return err
	}
	cur, found, err := d.get(c.Key)
	if err != nil {
		return fatal("tenant %d: read %q: %w", c.TenantID, c.Key, err)
	}
	st := a.versionState(c.TenantID)
	res.TenantID = c.TenantID
	if (c.OldAbsent && found) || (!c.OldAbsent && (!found || !bytes.Equal(cur, c.Old))) {
		res.Version = st.Version
		return nil
	}
	op := Op{Kind: OpSet, Key: c.Key, Value: c.New}
	if c.NewAbsent {
		op = Op{Kind: OpDelete, Key: c.Key}
	}
	if err := a.commitOps(t, d, st, []Op{op}, c.At, nil, res); err != nil {
		return err
	}
	res.Swapped = true
	return nil
}

// resolveOps turns a transaction's mutations into plain sets, deletes and
// delete-ranges, evaluating each atomic op against the value its key has at
// that point: the current value (d), as changed by the transaction's earlier
// mutations. A compare-and-clear that does not match becomes nothing. The
// transaction's own writes are an ordered overlay, so a delete-range
// removes the earlier writes it covers in O(log n) each, and a read checks
// the earlier delete-ranges in O(log n). The returned error is a storage
// failure.
func resolveOps(d *tenantData, muts []Op) ([]Op, error) {
	atomic := false
	for i := range muts {
		if k := muts[i].Kind; k != OpSet && k != OpDelete && k != OpDeleteRange {
			atomic = true
			break
		}
	}
	if !atomic {
		return muts, nil // nothing to evaluate
	}
	var overlay pointSet
	var cleared spanSet
	current := func(k []byte) ([]byte, bool, error) {
		if w, ok := overlay.get(k); ok {
			return w.val, w.present, nil
		}
		if cleared.covers(k) {
			return nil, false, nil
		}
		return d.get(k)
	}
	out := make([]Op, 0, len(muts))
	set := func(k, val []byte) {
		out = append(out, Op{Kind: OpSet, Key: k, Value: val})
		overlay.put(pointWrite{key: k, val: val, present: true})
	}
	for i := range muts {
		m := &muts[i]
		switch m.Kind {
		case OpSet:
			set(m.Key, m.Value)
		case OpDelete:
			out = append(out, *m)
			overlay.put(pointWrite{key: m.Key})
		case OpDeleteRange:
			out = append(out, *m)
			overlay.clear(m.Key, m.End)
			cleared.add(m.Key, m.End)
		case OpAdd, OpMin, OpMax:
			cur, ok, err := current(m.Key)
			if err != nil {
				return nil, err
			}
			operand := leInt64(m.Value)
			res := operand
			if ok {
				old := leInt64(cur)
				switch m.Kind {
				case OpAdd:
					res = old + operand
				case OpMin:
					res = min(old, operand)
				case OpMax:
					res = max(old, operand)
				}
			}
			set(m.Key, binary.LittleEndian.AppendUint64(nil, uint64(res)))
		case OpCompareAndClear:
			cur, ok, err := current(m.Key)
			if err != nil {
				return nil, err
			}
			if ok && bytes.Equal(cur, m.Value) {
				out = append(out, Op{Kind: OpDelete, Key: m.Key})
				overlay.put(pointWrite{key: m.Key})
			}
		}
	}
	return out, nil
}

// leInt64 reads b as a little-endian int64, zero-extending a shorter value
// and truncating a longer one to its first 8 bytes.
func leInt64(b []byte) int64 {
	var buf [8]byte
	copy(buf[:], b)
	return int64(binary.LittleEndian.Uint64(buf[:]))
}

// netOps drops every point write that a later op of the same command
// overwrites (a later point write of the same key, or a later delete-range
// covering it), keeping the order of the rest. Applying the result gives
// the same state, and touches the same keys, as applying ops; the history
// and watches then carry each key's final write of the command only. One
// sort-and-sweep finds the covered writes (coveredLater), one pass from
// the end the overwritten ones: O(n log n).
func netOps(ops []Op) []Op {
	if len(ops) < 2 {
		return ops
	}
	covered := coveredLater(ops)
	seen := make(map[string]struct{}, len(ops))
	keep := make([]bool, len(ops))
	dropped := 0
	for i := len(ops) - 1; i >= 0; i-- {
		op := &ops[i]
		if op.Kind == OpDeleteRange {
			keep[i] = true
			continue
		}
		if _, ok := seen[string(op.Key)]; ok || (covered != nil && covered[i]) {
			dropped++
			continue
		}
		seen[string(op.Key)] = struct{}{}
		keep[i] = true
	}
	if dropped == 0 {
		return ops
	}
	out := make([]Op, 0, len(ops)-dropped)
	for i := range ops {
		if keep[i] {
			out = append(out, ops[i])
		}
	}
	return out
}

// coveredLater reports, for each point op of ops, whether a delete-range
// later in ops covers its key; nil if there are no delete-ranges. The point
// keys are swept in order with the delete-ranges begun so far in a heap by
// their position: after dropping those that ended, the top is the latest
// one covering the key. O(n log n).
func coveredLater(ops []Op) []bool {
	var points []int
	var ranges rangeHeap
	for i := range ops {
		if ops[i].Kind == OpDeleteRange {
			ranges.idx = append(ranges.idx, i)
		} else {
			points = append(points, i)
		}
	}
	if len(ranges.idx) == 0 || len(points) == 0 {
		return nil
	}
	ranges.ops = ops
	starts := slices.Clone(ranges.idx)
	slices.SortFunc(starts, func(a, b int) int { return bytes.Compare(ops[a].Key, ops[b].Key) })
	slices.SortFunc(points, func(a, b int) int { return bytes.Compare(ops[a].Key, ops[b].Key) })
	ranges.idx = ranges.idx[:0]
	out := make([]bool, len(ops))
	next := 0
	for _, pi := range points {
		k := ops[pi].Key
		for next < len(starts) && bytes.Compare(ops[starts[next]].Key, k) <= 0 {
			heap.Push(&ranges, starts[next])
			next++
		}
		for ranges.Len() > 0 {
			end := ops[ranges.idx[0]].End
			if len(end) == 0 || bytes.Compare(k, end) < 0 {
				break
			}
			heap.Pop(&ranges) // ended before k, so before every later key
		}
		out[pi] = ranges.Len() > 0 && ranges.idx[0] > pi
	}
	return out
}

// rangeHeap is a max-heap of positions of delete-ranges in ops.
type rangeHeap struct {
	ops []Op
	idx []int
}

func (h *rangeHeap) Len() int           { return len(h.idx) }
func (h *rangeHeap) Less(i, j int) bool { return h.idx[i] > h.idx[j] }
func (h *rangeHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *rangeHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *rangeHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}
