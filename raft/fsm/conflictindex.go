package fsm

import "bytes"

// conflictIndex answers the question of a commit's conflict check, "did any
// write after version R touch this key range?", in time logarithmic in its
// size, whatever the length of the history behind it (FoundationDB's
// resolver keeps the same kind of structure).
//
// It holds a step function over the tenant's keys: every key maps to the
// version of the last write that touched it (0: none the index knows of).
// The function is kept as a treap of boundaries: a node at key k with
// version v says that the keys from k up to the next node's key were last
// written at v. A point write of k assigns v to [k, k+"\x00"), a delete-range
// to its whole span, dropping the boundaries inside it. Every node also
// carries the largest version in its subtree, so the largest version over
// any key range is one descent.
//
// Versions at or below the tenant's floor (the newest version its pruned
// history reached, versionState.First-1) no longer matter: no check asks
// about a read version below the floor, so a version at or below it can
// never exceed the read version. The nodes of such versions are dead weight,
// and sweep removes them a few at a time. Answers therefore depend only on
// the writes above the floor, which are exactly the retained history: an
// index built by every write since the tenant was created and one rebuilt
// from the stored history after a restart or a snapshot restore give the
// same answers, whatever their shapes.
//
// A conflictIndex is not safe for concurrent use; history guards it.
type conflictIndex struct {
	root  *inode
	nodes int
	// seq draws the treap priorities: pseudo-random, and independent of
	// the keys, so no choice of keys can unbalance the tree.
	seq uint64
	// cursor is where the sweep resumes (nil: at the first key).
	cursor []byte
}

// inode is one boundary of the step function.
type inode struct {
	key         []byte
	ver, max    uint64
	pri         uint64
	left, right *inode
}

func (n *inode) fix() {
	n.max = n.ver
	if n.left != nil && n.left.max > n.max {
		n.max = n.left.max
	}
	if n.right != nil && n.right.max > n.max {
		n.max = n.right.max
	}
}

func (x *conflictIndex) newNode(key []byte, ver uint64) *inode {
	x.seq++
	z := x.seq * 0x9e3779b97f4a7c15 // splitmix64
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	x.nodes++
	return &inode{key: key, ver: ver, max: ver, pri: z ^ (z >> 31)}
}

// split returns the nodes of t with keys below k and those at or above it.
func split(t *inode, k []byte) (lo, hi *inode) {
	if t == nil {
		return nil, nil
	}
	if bytes.Compare(t.key, k) < 0 {
		t.right, hi = split(t.right, k)
		t.fix()
		return t, hi
	}
	lo, t.left = split(t.left, k)
	t.fix()
	return lo, t
}

// join returns the union of lo and hi, every key of lo being below every
// key of hi.
func join(lo, hi *inode) *inode {
	switch {
	case lo == nil:
		return hi
	case hi == nil:
		return lo
	case lo.pri > hi.pri:
		lo.right = join(lo.right, hi)
		lo.fix()
		return lo
	default:
		hi.left = join(lo, hi.left)
		hi.fix()
		return hi
	}
}

func countNodes(t *inode) int {
	if t == nil {
		return 0
	}
	return 1 + countNodes(t.left) + countNodes(t.right)
}

// at returns the version of key k: that of the last node at or before it.
func (x *conflictIndex) at(k []byte) uint64 {
	var v uint64
	for n := x.root; n != nil; {
		if bytes.Compare(n.key, k) <= 0 {
			v = n.ver
			n = n.right
		} else {
			n = n.left
		}
	}
	return v
}

// before returns the version of the keys just below k: that of the last
// node before it.
func (x *conflictIndex) before(k []byte) uint64 {
	var v uint64
	for n := x.root; n != nil; {
		if bytes.Compare(n.key, k) < 0 {
			v = n.ver
			n = n.right
		} else {
			n = n.left
		}
	}
	return v
}

// first returns the first node at or after k, or nil.
func (x *conflictIndex) first(k []byte) *inode {
	var best *inode
	for n := x.root; n != nil; {
		if bytes.Compare(n.key, k) >= 0 {
			best = n
			n = n.left
		} else {
			n = n.right
		}
	}
	return best
}

// assign records a write at version ver of the keys [start, end); a nil
// end is the end of the tenant. The index takes ownership of start and
// end. Versions must not go down.
func (x *conflictIndex) assign(start, end []byte, ver uint64) {
	if end != nil && len(end) == len(start)+1 && end[len(start)] == 0 && bytes.HasPrefix(end, start) {
		// A point write of a key written before: both its boundaries are
		// there, and only the version of the first changes.
		if n := x.first(end); n != nil && bytes.Equal(n.key, end) && setVersion(x.root, start, ver) {
			return
		}
	}
	var atEnd uint64
	if end != nil {
		atEnd = x.at(end)
	}
	lo, rest := split(x.root, start)
	var mid, hi *inode
	if end != nil {
		mid, hi = split(rest, end)
	} else {
		mid = rest
	}
	x.nodes -= countNodes(mid) // each node is counted once as it goes
	mid = x.newNode(start, ver)
	if end != nil && (hi == nil || !bytes.Equal(leftmost(hi).key, end)) {
		mid = join(mid, x.newNode(end, atEnd))
	}
	x.root = join(join(lo, mid), hi)
}

// assignPoint records a write at version ver of the one key k, the keys
// [k, k+"\x00"). It copies k if the index keeps it. Versions must not go
// down.
func (x *conflictIndex) assignPoint(k []byte, ver uint64) {
	if x.setPoint(k, ver) {
		return
	}
	b := make([]byte, len(k)+1) // start and end share one allocation
	copy(b, k)
	x.assign(b[:len(k):len(k)], b, ver)
}

// setPoint handles the common point write, of a key written before: both
// boundaries of [k, k+"\x00") are nodes, and only the version of k's node
// changes. It finds that node, checks its successor and raises the maxima
// on its path in one descent, and reports whether it did. A version never
// goes down, so ver is at least every version in the index: every node on
// the path gets ver as its maximum.
func (x *conflictIndex) setPoint(k []byte, ver uint64) bool {
	var path [48]*inode
	depth := 0
	var after *inode // the nearest boundary after the subtree searched
	n := x.root
	for n != nil {
		if depth == len(path) {
			return false // an unusually deep path: the general case does it
		}
		path[depth] = n
		depth++
		c := bytes.Compare(k, n.key)
		if c == 0 {
			break
		}
		if c < 0 {
			after = n
			n = n.left
		} else {
			n = n.right
		}
	}
	if n == nil {
		return false
	}
	if n.right != nil {
		after = leftmost(n.right)
	}
	if after == nil || len(after.key) != len(k)+1 || after.key[len(k)] != 0 || !bytes.Equal(after.key[:len(k)], k) {
		return false
	}
	n.ver = ver
	for _, p := range path[:depth] {
		p.max = ver
	}
	return true
}

// setVersion sets the version of the node at key k in t, if there is one,
// and reports whether there was.
func setVersion(t *inode, k []byte, ver uint64) bool {
	if t == nil {
		return false
	}
	var ok bool
	switch c := bytes.Compare(k, t.key); {
	case c < 0:
		ok = setVersion(t.left, k, ver)
	case c > 0:
		ok = setVersion(t.right, k, ver)
	default:
		t.ver, ok = ver, true
	}
	if ok {
		t.fix()
	}
	return ok
}

func leftmost(t *inode) *inode {
	for t.left != nil {
		t = t.left
	}
	return t
}

// maxOver returns the largest version of any key in [start, end) (nil end:
// the end of the tenant): that of start, and of every boundary after start
// and before end.
func (x *conflictIndex) maxOver(start, end []byte) uint64 {
	m := x.at(start)
	lo := append(start[:len(start):len(start)], 0) // the first key after start
	for n := x.root; n != nil; {
		if bytes.Compare(n.key, lo) < 0 {
			n = n.right
			continue
		}
		if end != nil && bytes.Compare(n.key, end) >= 0 {
			n = n.left
			continue
		}
		// n lies in [lo, end): the left subtree's keys at or after lo and
		// the right subtree's keys before end are the rest.
		m = max(m, n.ver)
		for l := n.left; l != nil; {
			if bytes.Compare(l.key, lo) >= 0 {
				m = max(m, l.ver)
				if l.right != nil {
					m = max(m, l.right.max)
				}
				l = l.left
			} else {
				l = l.right
			}
		}
		for r := n.right; r != nil; {
			if end == nil || bytes.Compare(r.key, end) < 0 {
				m = max(m, r.ver)
				if r.left != nil {
					m = max(m, r.left.max)
				}
				r = r.right
			} else {
				r = r.left
			}
		}
		break
	}
	return m
}

// sweep examines up to steps boundaries, in key order from where the last
// sweep stopped, and removes those that can no longer change an answer: a
// boundary whose version and whose predecessor's are both at or below
// floor. The whole index goes at once when nothing in it is above floor.
func (x *conflictIndex) sweep(floor uint64, steps int) {
	if x.root == nil || floor == 0 {
		return
	}
	if x.root.max <= floor {
		x.root, x.nodes, x.cursor = nil, 0, nil
		return
	}
	for range steps {
		n := x.first(x.cursor)
		if n == nil {
			x.cursor = nil // wrap around
			n = x.first(nil)
		}
		if n.ver <= floor && x.before(n.key) <= floor {
			lo, rest := split(x.root, n.key)
			_, hi := split(rest, append(n.key[:len(n.key):len(n.key)], 0))
			x.root = join(lo, hi)
			x.nodes--
			x.cursor = n.key
			if x.root == nil {
				x.cursor = nil
				return
			}
			continue
		}
		x.cursor = append(n.key[:len(n.key):len(n.key)], 0)
	}
}

// boundaries returns the step function as (key, version) pairs with every
// version at or below floor taken as 0 and no two neighbours equal: the same
// for every index that gives the same answers above floor. For tests.
func (x *conflictIndex) boundaries(floor uint64) []boundary {
	var out []boundary
	var prev uint64
	var walk func(n *inode)
	walk = func(n *inode) {
		if n == nil {
			return
		}
		walk(n.left)
		v := n.ver
		if v <= floor {
			v = 0
		}
		if v != prev {
			out = append(out, boundary{Key: string(n.key), Ver: v})
			prev = v
		}
		walk(n.right)
	}
	walk(x.root)
	return out
}

// boundary is one step of a conflictIndex, as boundaries lists them.
type boundary struct {
	Key string
	Ver uint64
}
