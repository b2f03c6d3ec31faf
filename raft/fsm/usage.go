package fsm

// The write plan of a command: the physical writes that produce its ops'
// state, and the exact change of the tenant's usage that the quota rules
// of quota.go check before anything is written.

import (
	"bytes"
	"slices"
	"sort"

	"github.com/tenantkv/tenantkv/raft/command"
)

// maxPointDeletes is how many live keys a piece of a command's
// delete-ranges may hold and still be removed with point deletions instead
// of a range deletion. Range deletions are what Pebble must fragment on
// reads (the memtable re-fragments all of its own after every batch that
// adds one), so a delete-range that removes nothing writes nothing, and
// one that removes a few keys writes their point deletions: a tenant gets
// at most one range deletion per maxPointDeletes keys it removes.
const maxPointDeletes = 64

// writePlan is how a command's ops (after netOps) change the tenant: the
// exact usage delta, and the physical writes that produce the ops' state.
type writePlan struct {
	dBytes, dKeys int64
	// pieces are the parts of the union of the delete-ranges that hold live
	// keys; each is written as one range deletion or, when keys is not
	// nil, as point deletions of keys.
	pieces []rangePiece
	// absent marks the point deletes of keys that do not exist: they
	// change nothing and are not written.
	absent []bool
}

type rangePiece struct {
	start, end []byte
	keys       [][]byte
}

// planWrite computes the plan of ops against the tenant's current state d,
// reading each point key once and walking the union of the delete-ranges
// once, whatever their number and overlap: O(n log n) in the ops plus the
// live keys removed. ops must be netOps' output (no point write is followed
// by a write of the same key or by a delete-range covering it), so the
// final state of a key is its point op if it has one, else absent if a
// delete-range covers it, else unchanged; the delta is the sum over those
// keys of final minus current. The returned error is a storage failure.
func planWrite(d *tenantData, ops []command.Op) (*writePlan, error) {
	p := &writePlan{absent: make([]bool, len(ops))}
	pointKeys := make(map[string]struct{}, len(ops))
	var ranges []keySpan
	var points []int
	for i := range ops {
		op := &ops[i]
		if op.Kind == command.OpDeleteRange {
			ranges = append(ranges, keySpan{start: op.Key, end: op.End})
			continue
		}
		pointKeys[string(op.Key)] = struct{}{}
		points = append(points, i)
	}
	// One iterator (the batch's, d.iter), seeking in key order: a Get per
	// key would open an iterator on every level and file it may be in,
	// which grows with the store (issue 18: the same fill took 1.5 s, then
	// 7 s, then 23 s).
	slices.SortFunc(points, func(a, b int) int { return bytes.Compare(ops[a].Key, ops[b].Key) })
	for _, i := range points {
		op := &ops[i]
		size, present, err := d.sizeOf(op.Key)
		if err != nil {
			return nil, err
		}
		if present {
			p.dBytes -= int64(len(op.Key) + size)
			p.dKeys--
		}
		switch op.Kind {
		case command.OpSet:
			p.dBytes += int64(len(op.Key) + len(op.Value))
			p.dKeys++
		case command.OpDelete:
			p.absent[i] = !present
		}
	}
	if len(ranges) == 0 {
		return p, nil
	}
	it, err := d.iter()
	if err != nil {
		return nil, err
	}
	err = eachUnion(ranges, func(start, end []byte) error {
		pc := rangePiece{start: start, end: end}
		n := 0
		err := d.walk(it, start, end, func(k []byte, size int) error {
			if _, ok := pointKeys[string(k)]; ok {
				return nil // its point op decides, counted above
			}
			p.dBytes -= int64(len(k) + size)
			p.dKeys--
			n++
			if n <= maxPointDeletes {
				pc.keys = append(pc.keys, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		switch {
		case n == 0:
			return nil // nothing to remove: nothing to write
		case n > maxPointDeletes:
			pc.keys = nil
		}
		p.pieces = append(p.pieces, pc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// eachUnion calls fn for each range of the union of rs, in key order,
// until fn fails: a sort and one pass. It reorders rs.
func eachUnion(rs []keySpan, fn func(start, end []byte) error) error {
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool { return bytes.Compare(rs[i].start, rs[j].start) < 0 })
	cur := rs[0]
	for _, r := range rs[1:] {
		if len(cur.end) == 0 || bytes.Compare(r.start, cur.end) <= 0 {
			cur.end = maxEnd(cur.end, r.end)
			continue
		}
		if err := fn(cur.start, cur.end); err != nil {
			return err
		}
		cur = r
	}
	return fn(cur.start, cur.end)
}
