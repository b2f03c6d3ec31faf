package fsm

import (
	"bytes"
	"fmt"
	"sort"
	"sync"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// history is the in-memory image of one tenant's retained write history
// (txnlog.go): what the apply loop needs to prune it and to check commits
// against it without reading it back from the store. It holds, per
// retained entry, a compact head (its timestamp, sizes and chunk count);
// the transaction IDs of the retained entries; and the conflict index of
// their writes (conflictindex.go).
//
// It is derived state: built from the stored history when the FSM opens
// and after a snapshot restore (loadHistory), and kept in step with it by
// the applier, which changes both in the same command. Decisions read only
// what the retained entries determine, so every replica decides alike.
//
// The raft apply goroutine is the only writer; ValidateReads reads it from
// other goroutines. mu guards everything. Like the rest of a tenantState it
// may run ahead of the committed catalog by the batch being applied (a
// batch that fails stops the FSM), which makes a concurrent check at worst
// conservative: a write of that batch can only add a conflict.
type history struct {
	mu sync.Mutex
	// first is the version of heads[off], the oldest retained entry;
	// floor is first-1, the oldest read version that can be checked.
	first, floor uint64
	heads        []headInfo
	off          int
	// cost is the sum of the retained entries' index costs, which
	// HistoryMaxIndexBytes bounds.
	cost uint64
	// txns maps a transaction ID to the versions of the retained entries
	// that carry it, ascending; txnQ lists those entries oldest first, to
	// forget them as they are pruned.
	txns map[string][]uint64
	// txnPeak is the most IDs txns held since it was last made: a Go map
	// does not shrink, so pop makes a new one after a burst.
	txnPeak int
	txnQ    []txnRef
	tOff    int
	idx     conflictIndex
	// records counts the retained entries' records; sweepQueued is set
	// while the tenant waits in the catalog's sweep queue.
	records     uint64
	sweepQueued bool
}

// headInfo is what the applier keeps of a retained entry (its version is
// implied by its place in the queue).
type headInfo struct {
	at      int64
	size    uint64 // record bytes, as versionState.Bytes counts them
	cost    uint64 // index cost, as history.cost counts it
	chunks  uint32
	records uint32
}

type txnRef struct {
	version uint64
	id      string
}

// indexRecordOverhead approximates the memory of an index boundary beyond
// its key bytes (a record of a point write makes two boundaries).
const indexRecordOverhead = 80

// recordCost is the index cost of one record: the memory its boundaries
// take at most.
func recordCost(key, end []byte) uint64 {
	return uint64(2*len(key)+len(end)) + 2*indexRecordOverhead
}

func newHistory(first uint64) *history {
	return &history{first: first, floor: first - 1, txns: map[string][]uint64{}}
}

// count returns the number of retained entries.
func (h *history) count() int { return len(h.heads) - h.off }

// front returns the oldest retained entry; there must be one.
func (h *history) front() headInfo { return h.heads[h.off] }

// begin adds the head of the entry at version, the next one; write then
// adds its records. The caller holds mu.
func (h *history) begin(version uint64, at int64, size uint64, chunks int, txnID []byte) error {
	if want := h.first + uint64(h.count()); version != want {
		return fmt.Errorf("%w: entry %d where %d was due", errCorruptLog, version, want)
	}
	h.heads = append(h.heads, headInfo{at: at, size: size, chunks: uint32(chunks)})
	if len(txnID) > 0 {
		id := string(txnID)
		h.txns[id] = append(h.txns[id], version)
		h.txnPeak = max(h.txnPeak, len(h.txns))
		h.txnQ = append(h.txnQ, txnRef{version: version, id: id})
	}
	return nil
}

// write adds one record of the newest entry, at version, to the index. The
// keys are copied. The caller holds mu.
func (h *history) write(version uint64, kind command.OpKind, key, end []byte) {
	hd := &h.heads[len(h.heads)-1]
	c := recordCost(key, end)
	hd.cost += c
	hd.records++
	h.records++
	h.cost += c
	if kind != command.OpDeleteRange {
		h.idx.assignPoint(key, version) // [k, k+"\x00")
	} else {
		var stop []byte // an empty end: to the end of the tenant
		if len(end) > 0 {
			stop = bytes.Clone(end)
		}
		h.idx.assign(bytes.Clone(key), stop, version)
	}
	// Sweep a little for every record added while dead boundaries make up
	// a good part of the index: it then holds few beyond the retained
	// entries' (at most two per record).
	if h.excess() {
		h.idx.sweep(h.floor, 4)
	}
}

// pop forgets the oldest entry. The caller holds mu.
func (h *history) pop() headInfo {
	hd := h.heads[h.off]
	h.heads[h.off] = headInfo{}
	h.off++
	if h.off >= 64 && h.off*2 >= len(h.heads) { // reclaim the consumed front
		h.heads, h.off = compact(h.heads, h.off), 0
	}
	h.first++
	h.floor = h.first - 1
	h.cost -= min(hd.cost, h.cost)
	h.records -= min(uint64(hd.records), h.records)
	for h.tOff < len(h.txnQ) && h.txnQ[h.tOff].version < h.first {
		r := h.txnQ[h.tOff]
		h.txnQ[h.tOff] = txnRef{}
		h.tOff++
		if vs := h.txns[r.id]; len(vs) <= 1 {
			delete(h.txns, r.id)
		} else {
			h.txns[r.id] = vs[1:]
		}
	}
	if h.txnPeak > 1024 && len(h.txns) < h.txnPeak/4 {
		m := make(map[string][]uint64, len(h.txns))
		for k, vs := range h.txns {
			m[k] = vs
		}
		h.txns, h.txnPeak = m, len(m)
	}
	if h.tOff >= 64 && h.tOff*2 >= len(h.txnQ) {
		h.txnQ, h.tOff = compact(h.txnQ, h.tOff), 0
	}
	// The pruned entry's boundaries are dead now: sweep about as many.
	if h.excess() {
		h.idx.sweep(h.floor, 2*int(hd.records)+2)
	}
	return hd
}

// excess reports whether the index holds many more boundaries than the
// retained records make (at most two each): dead ones left for the sweep.
// The caller holds mu.
func (h *history) excess() bool { return uint64(h.idx.nodes) > 3*h.records+64 }

// sweepSteps is how many boundaries of a tenant in the sweep queue a write
// examines (sweepHistories).
const sweepSteps = 1024

// compact drops the first off elements of q, in place, or into a smaller
// array when q's is more than four times too large (after a burst): the
// queues' memory follows the retained history down as well as up.
func compact[T any](q []T, off int) []T {
	live := q[off:]
	if cap(q) > 1024 && cap(q) > 4*len(live) {
		return append(make([]T, 0, 2*len(live)), live...)
	}
	n := copy(q, live)
	clear(q[n:])
	return q[:n]
}

// txnAfter returns the version of the first retained entry after version
// rv that carries txnID, or 0. The caller holds mu.
func (h *history) txnAfter(txnID []byte, rv uint64) uint64 {
	vs := h.txns[string(txnID)]
	i := sort.Search(len(vs), func(i int) bool { return vs[i] > rv })
	if i == len(vs) {
		return 0
	}
	return vs[i]
}

// loadHistory builds the image of tenant id's retained history from the
// store, reading it once: when the FSM opens, after a snapshot restore, and
// if the applier ever meets a tenant without one.
func loadHistory(m *store.TenantMetaView, id keyspace.TenantID, st *versionState) (*history, error) {
	h := newHistory(st.First)
	var recErr error
	err := scanHistory(m, id, st.First-1, st.Version, func(version uint64, head *entryHead, body []byte) (bool, error) {
		if head != nil {
			if err := h.begin(version, head.At, head.Size, int(head.Chunks), head.TxnID); err != nil {
				return false, err
			}
		}
		recErr = eachRecord(body, func(r *logRecord) bool {
			h.write(version, r.Kind, r.Key, r.End)
			return true
		})
		return recErr == nil, recErr
	})
	if err != nil {
		return nil, fmt.Errorf("tenant %d: load history: %w", id, err)
	}
	return h, nil
}

// check is the conflict check of a commit of tenant state st that read
// the ranges reads (normalized) at readVersion, with transaction ID txnID
// (may be nil). It returns the version of a retained entry after
// readVersion that carries txnID (the same transaction, committed by an
// earlier attempt) if there is one; otherwise ErrConflict if a write after
// readVersion touched a read range; otherwise 0 and nil. ErrTxTooOld when
// readVersion is below the floor. Its cost is O(log n) per read range and
// per lookup, n the size of the index.
func (h *history) check(st *versionState, readVersion uint64, reads []command.KeyRange, txnID []byte) (uint64, error) {
	floor := st.minReadVersion()
	if h != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		floor = max(floor, h.floor)
	}
	if readVersion > st.Version {
		return 0, fmt.Errorf("%w: read version %d is ahead of the tenant's version %d", ErrConflict, readVersion, st.Version)
	}
	if readVersion < floor {
		return 0, fmt.Errorf("%w: read version %d, oldest checkable %d", ErrTxTooOld, readVersion, floor)
	}
	if readVersion == st.Version || (len(reads) == 0 && len(txnID) == 0) {
		return 0, nil
	}
	if h == nil { // no history, yet versions after readVersion: impossible
		return 0, fmt.Errorf("%w: tenant at version %d has no history image", errCorruptLog, st.Version)
	}
	if len(txnID) > 0 {
		if v := h.txnAfter(txnID, readVersion); v != 0 && v <= st.Version {
			return v, nil
		}
	}
	for i := range reads {
		if v := h.idx.maxOver(reads[i].Start, nilIfEmpty(reads[i].End)); v > readVersion {
			return 0, fmt.Errorf("%w: a write at version %d changed what the transaction read at version %d (read range from %q)", ErrConflict, v, readVersion, reads[i].Start)
		}
	}
	return 0, nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// expiryQueue orders the tenants whose history holds two entries or more
// (the newest entry always stays) by the timestamp of their oldest entry,
// then by ID, for the pruning of expired history on any tenant's write
// (expireHistories). It may also hold stale items (a tenant whose oldest
// entry has changed, or which is gone): they are recognised against the
// tenant's state and dropped. The raft apply goroutine owns it.
type expiryQueue struct{ items []expiryItem }

type expiryItem struct {
	at int64
	id keyspace.TenantID
}

func (q *expiryQueue) Len() int { return len(q.items) }
func (q *expiryQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	return a.at < b.at || (a.at == b.at && a.id < b.id)
}
func (q *expiryQueue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *expiryQueue) Push(x any)    { q.items = append(q.items, x.(expiryItem)) }
func (q *expiryQueue) Pop() any {
	it := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return it
}

// push and pop are heap.Push and heap.Pop without boxing the item in an
// interface: an allocation on every write the FSM applies.
func (q *expiryQueue) push(at int64, id keyspace.TenantID) {
	q.items = append(q.items, expiryItem{at: at, id: id})
	for j := len(q.items) - 1; j > 0; {
		i := (j - 1) / 2
		if !q.Less(j, i) {
			break
		}
		q.Swap(i, j)
		j = i
	}
}

func (q *expiryQueue) pop() expiryItem {
	n := len(q.items) - 1
	q.Swap(0, n)
	for i := 0; ; {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && q.Less(r, j) {
			j = r
		}
		if !q.Less(j, i) {
			break
		}
		q.Swap(i, j)
		i = j
	}
	it := q.items[n]
	q.items = q.items[:n]
	return it
}
