package fsm

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
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
func (a *applier) commitOps(t *keyspace.Tenant, d *tenantData, st *versionState, ops []command.Op, at int64, txnID []byte, res *Result) error {
	ops = netOps(ops)
	// Usage is exact: computed from the values the ops replace, checked
	// against the limits, and written in the same batch as the data.
	plan, err := planWrite(d, ops)
	if err != nil {
		return fatal("tenant %d usage delta: %w", t.ID, err)
	}
	e := a.mutable(t.ID)
	cur := e.usage
	next, err := chargeUsage(t, cur, plan.dBytes, plan.dKeys)
	if err != nil {
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
		case command.OpSet:
			err = d.v.SetVersioned(op.Key, op.Value, version)
		case command.OpDelete:
			if !plan.absent[i] {
				err = d.v.Delete(op.Key)
			}
		case command.OpDeleteRange:
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
// version, prunes the tenant's old entries, prunes a bounded number of
// other tenants' expired entries (expireHistories) and stores st.
//
// The tenant's own entries go oldest first while the oldest is more than
// HistoryWindow older than the newest timestamp seen or the history is over
// HistoryMaxEntries: at most prunePerWrite per write, so the work is
// amortised. While it is over HistoryMaxBytes or HistoryMaxIndexBytes,
// pruning goes on, up to prunePerWriteMax entries: one large write then
// makes room for itself at once, in work bounded by its own size. The
// newest entry always stays.
func (a *applier) appendHistory(id keyspace.TenantID, st *versionState, ops []command.Op, at int64, txnID []byte) error {
	h, err := a.history(id, st)
	if err != nil {
		return err
	}
	m, err := a.meta(id)
	if err != nil {
		return err
	}
	st.Version++
	chunks, size := encodeEntry(st.Version, at, txnID, ops)
	for i, c := range chunks {
		if err := setRecord(m, keyspace.HistoryKey(id, st.Version, uint32(i)), c); err != nil {
			return err
		}
	}
	h.mu.Lock()
	err = h.begin(st.Version, at, size, len(chunks), txnID)
	if err == nil {
		for i := range ops {
			h.write(st.Version, ops[i].Kind, ops[i].Key, ops[i].End)
		}
	}
	h.mu.Unlock()
	if err != nil {
		return fatal("tenant %d: %w", id, err)
	}
	st.Count++
	st.Bytes += size
	st.LastAt = max(st.LastAt, at)
	if st.Count == 2 { // the oldest entry may go from now on
		a.cat.expiry.push(h.front().at, id)
	}
	pruned := 0
	for pruned < prunePerWriteMax && st.First < st.Version {
		head := h.front()
		overSize := st.Bytes > HistoryMaxBytes || h.cost > HistoryMaxIndexBytes
		old := head.at < st.LastAt-HistoryWindow
		if !overSize && (pruned >= prunePerWrite || (!old && st.Count <= HistoryMaxEntries)) {
			break
		}
		if err := a.pruneOldest(id, st, h); err != nil {
			return err
		}
		pruned++
	}
	if pruned > 0 && st.Count >= 2 {
		a.cat.expiry.push(h.front().at, id)
	}
	a.dirty(id) // the version state is stored once per batch, by flushState
	return a.expireHistories(at)
}

// pruneOldest deletes tenant id's oldest history entry from the store and
// from its image h, and updates st.
func (a *applier) pruneOldest(id keyspace.TenantID, st *versionState, h *history) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.first != st.First || h.count() != int(st.Count) {
		return fatal("tenant %d: %v: the history image starts at %d with %d entries, the version state at %d with %d", id, errCorruptLog, h.first, h.count(), st.First, st.Count)
	}
	m, err := a.meta(id)
	if err != nil {
		return err
	}
	head := h.front()
	for i := range head.chunks {
		if err := deleteRecord(m, keyspace.HistoryKey(id, st.First, i)); err != nil {
			return err
		}
	}
	h.pop()
	if !h.sweepQueued && h.excess() {
		h.sweepQueued = true
		a.cat.sweeps = append(a.cat.sweeps, id)
	}
	st.First++
	st.Count--
	st.Bytes -= min(head.size, st.Bytes)
	return nil
}

// expireHistories prunes, on behalf of a write proposed at `at`, up to
// prunePerWrite entries of any tenant's history that are more than
// HistoryWindow older than `at`, oldest first (by timestamp, then tenant
// ID), keeping each tenant's newest entry. So a tenant that wrote a lot and
// then stopped loses its expired history as the others write, not only
// when it writes again. The order and the amount depend only on the
// replicated state and the command, so every replica prunes alike.
func (a *applier) expireHistories(at int64) error {
	if at <= 0 {
		return nil
	}
	q := a.cat.expiry
	cutoff := at - HistoryWindow
	budget := prunePerWrite
	for budget > 0 && q.Len() > 0 && q.items[0].at < cutoff {
		it := q.pop()
		for q.Len() > 0 && q.items[0] == it {
			q.pop() // a duplicate
		}
		e := a.entry(it.id)
		if e == nil || e.ver.Count < 2 || e.hist == nil || e.hist.front().at != it.at {
			continue // stale
		}
		st := a.versionState(it.id)
		h := e.hist
		for budget > 0 && st.Count >= 2 && h.front().at < cutoff {
			if err := a.pruneOldest(it.id, st, h); err != nil {
				return err
			}
			budget--
		}
		a.dirty(it.id)
		if st.Count >= 2 {
			q.push(h.front().at, it.id)
		}
	}
	if q.Len() > 4*len(a.cat.tenants)+4096 {
		a.rebuildExpiry()
	}
	a.sweepHistories()
	return nil
}

// sweepHistories removes up to sweepSteps dead boundaries from the conflict
// index of the first tenant in the sweep queue: one whose history was
// pruned faster than its own writes swept it (a tenant that went idle, its
// history expired by the writes of others). Sweeping changes no answer, so
// it needs no agreement between replicas: the queue is local.
func (a *applier) sweepHistories() {
	c := a.cat
	for len(c.sweeps) > 0 {
		id := c.sweeps[0]
		e := a.entry(id)
		if e == nil || e.hist == nil {
			c.sweeps = c.sweeps[1:] // gone
			continue
		}
		h := e.hist
		h.mu.Lock()
		h.idx.sweep(h.floor, sweepSteps)
		done := !h.excess()
		if done {
			h.sweepQueued = false
		}
		h.mu.Unlock()
		if done {
			c.sweeps = c.sweeps[1:]
			if len(c.sweeps) == 0 {
				c.sweeps = nil
			}
		}
		return
	}
}

// rebuildExpiry replaces the expiry queue by one without stale items.
func (a *applier) rebuildExpiry() {
	q := a.cat.expiry
	q.items = q.items[:0]
	add := func(id keyspace.TenantID, e *tenantState) {
		if e != nil && e.ver.Count >= 2 && e.hist != nil {
			q.items = append(q.items, expiryItem{at: e.hist.front().at, id: id})
		}
	}
	for id, e := range a.cat.tenants {
		if _, ok := a.p.tenants[id]; !ok {
			add(id, e)
		}
	}
	for id, e := range a.p.tenants {
		add(id, e)
	}
	heap.Init(q)
}

// history returns the image of tenant id's retained history, making an
// empty one for a tenant never written, or loading it from the store if
// the tenant has none (a tenant loaded with the catalog has one). st is
// the tenant's version state before the write being applied.
func (a *applier) history(id keyspace.TenantID, st *versionState) (*history, error) {
	e := a.mutable(id)
	if e.hist != nil {
		return e.hist, nil
	}
	if st.Count == 0 {
		e.hist = newHistory(st.First)
		return e.hist, nil
	}
	m, err := a.meta(id)
	if err != nil {
		return nil, err
	}
	h, err := loadHistory(m, id, st)
	if err != nil {
		return nil, fatal("%w", err)
	}
	e.hist = h
	return h, nil
}

// checkHistory checks a transaction that read the ranges reads (normalized)
// at readVersion against the writes after it, in the image h of the
// tenant's history (nil for a tenant never written). It returns the version
// of a retained entry after readVersion that carries txnID (the same
// transaction, committed by an earlier attempt), or ErrConflict if a write
// after readVersion touched a read range, in that order of precedence; 0
// and nil when neither holds. ErrTxTooOld means readVersion is below the
// oldest checkable version. The cost is O(log n) per read range, n the
// size of the conflict index, whatever the history after readVersion.
//
// That a retained commit of the same ID wins over a conflict is sound for
// a retry: the earlier attempt passed the same check when it committed, so
// no write between readVersion and it touched the read ranges.
func checkHistory(h *history, st *versionState, readVersion uint64, reads []command.KeyRange, txnID []byte) (uint64, error) {
	return h.check(st, readVersion, reads, txnID)
}

func (a *applier) txnCommit(c *command.TxnCommit, res *Result) error {
	t, err := a.checkTenant(c.TenantID, c.TenantName, false)
	if err != nil {
		return err
	}
	st := a.versionState(c.TenantID)
	reads := normalizeRanges(c.Reads)
	var h *history
	if st.Count > 0 {
		if h, err = a.history(c.TenantID, st); err != nil {
			return err
		}
	}
	dup, err := checkHistory(h, st, c.ReadVersion, reads, c.TxnID)
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

func (a *applier) compareAndSwap(c *command.CompareAndSwap, res *Result) error {
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
	op := command.Op{Kind: command.OpSet, Key: c.Key, Value: c.New}
	if c.NewAbsent {
		op = command.Op{Kind: command.OpDelete, Key: c.Key}
	}
	if err := a.commitOps(t, d, st, []command.Op{op}, c.At, nil, res); err != nil {
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
func resolveOps(d *tenantData, muts []command.Op) ([]command.Op, error) {
	atomic := false
	for i := range muts {
		if k := muts[i].Kind; k != command.OpSet && k != command.OpDelete && k != command.OpDeleteRange {
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
	out := make([]command.Op, 0, len(muts))
	set := func(k, val []byte) {
		out = append(out, command.Op{Kind: command.OpSet, Key: k, Value: val})
		overlay.put(pointWrite{key: k, val: val, present: true})
	}
	for i := range muts {
		m := &muts[i]
		switch m.Kind {
		case command.OpSet:
			set(m.Key, m.Value)
		case command.OpDelete:
			out = append(out, *m)
			overlay.put(pointWrite{key: m.Key})
		case command.OpDeleteRange:
			out = append(out, *m)
			overlay.clear(m.Key, m.End)
			cleared.add(m.Key, m.End)
		case command.OpAdd, command.OpMin, command.OpMax:
			cur, ok, err := current(m.Key)
			if err != nil {
				return nil, err
			}
			operand := leInt64(m.Value)
			res := operand
			if ok {
				old := leInt64(cur)
				switch m.Kind {
				case command.OpAdd:
					res = old + operand
				case command.OpMin:
					res = min(old, operand)
				case command.OpMax:
					res = max(old, operand)
				}
			}
			set(m.Key, binary.LittleEndian.AppendUint64(nil, uint64(res)))
		case command.OpCompareAndClear:
			cur, ok, err := current(m.Key)
			if err != nil {
				return nil, err
			}
			if ok && bytes.Equal(cur, m.Value) {
				out = append(out, command.Op{Kind: command.OpDelete, Key: m.Key})
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
func netOps(ops []command.Op) []command.Op {
	if len(ops) < 2 {
		return ops
	}
	covered := coveredLater(ops)
	seen := make(map[string]struct{}, len(ops))
	keep := make([]bool, len(ops))
	dropped := 0
	for i := len(ops) - 1; i >= 0; i-- {
		op := &ops[i]
		if op.Kind == command.OpDeleteRange {
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
	out := make([]command.Op, 0, len(ops)-dropped)
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
func coveredLater(ops []command.Op) []bool {
	var points []int
	var ranges rangeHeap
	for i := range ops {
		if ops[i].Kind == command.OpDeleteRange {
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
	ops []command.Op
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
