package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

// This file holds the reference model of TestMachineMatchesModel: the
// replicated state the machine keeps, written as plainly as possible (maps,
// slices and loops over everything), from the documented rules of the
// commands, never from the machine's code paths. It is slow on purpose.
//
// What it leaves out: labels, creation times, members, and the history's
// size bounds (HistoryMaxEntries, HistoryMaxBytes, HistoryMaxIndexBytes),
// which a run of a few thousand small commands never reaches. Pruning by
// age is modelled exactly, with time driven by the commands' At fields.

// refValue is a live key's value and the tenant version that wrote it.
type refValue struct {
	val string
	ver uint64
}

// refEntry is one retained entry of a tenant's write history: the ops as
// the machine applied them (atomic ops resolved, overwritten writes
// dropped).
type refEntry struct {
	version uint64
	at      int64
	txnID   string
	ops     []command.Op
}

type refTenant struct {
	id     keyspace.TenantID
	name   string
	state  keyspace.State
	limits keyspace.Limits
	data   map[string]refValue
	// version is the tenant version; hist the retained history, oldest
	// first, whose last entry (if any) is at version.
	version uint64
	hist    []refEntry
	lastAt  int64
	// names is every name the tenant had, for writes under a stale one.
	names []string
}

// first is the version of the oldest retained entry (version+1 if none).
func (t *refTenant) first() uint64 { return t.version + 1 - uint64(len(t.hist)) }

// oldest is the oldest read version a commit or a watch may use.
func (t *refTenant) oldest() uint64 { return t.first() - 1 }

type refModel struct {
	tenants map[keyspace.TenantID]*refTenant
	names   map[string]keyspace.TenantID
	nextID  keyspace.TenantID
	tokens  map[string]keyspace.TenantID
	// gone lists deleted tenants, whose IDs must stay empty forever.
	gone []keyspace.TenantID
}

func newRefModel() *refModel {
	return &refModel{
		tenants: map[keyspace.TenantID]*refTenant{},
		names:   map[string]keyspace.TenantID{},
		nextID:  keyspace.FirstID,
		tokens:  map[string]keyspace.TenantID{},
	}
}

// refResult is what the model says a command yields.
type refResult struct {
	err     error // a sentinel; nil when the command applies
	id      keyspace.TenantID
	version uint64
	swapped bool
}

// errOther stands for an error that is no sentinel of the packages.
var errOther = errors.New("model: some other error")

// errClasses are the sentinels results are compared by, with errors.Is.
var errClasses = []error{
	ErrTenantNotFound, ErrTenantExists, ErrTenantReadOnly, ErrTenantLocked,
	ErrTokenNotFound, ErrQuotaExceeded, ErrConflict, ErrTxTooOld,
	ErrWatchTooOld, command.ErrBadCommand, keyspace.ErrOutsideSpan,
}

// errClass maps err to the sentinel it wraps, errOther if none, nil for nil.
func errClass(err error) error {
	if err == nil {
		return nil
	}
	for _, c := range errClasses {
		if errors.Is(err, c) {
			return c
		}
	}
	return errOther
}

// apply applies one command to the model. bad marks a command the
// generator made invalid on purpose: it is refused before any state is read.
func (m *refModel) apply(cmd command.Command, bad bool) refResult {
	if bad {
		return refResult{err: command.ErrBadCommand}
	}
	switch c := cmd.(type) {
	case *command.CreateTenant:
		if _, ok := m.names[c.Name]; ok {
			return refResult{err: ErrTenantExists}
		}
		t := &refTenant{
			id: m.nextID, name: c.Name, state: keyspace.StateActive, limits: c.Limits,
			data: map[string]refValue{}, names: []string{c.Name},
		}
		m.nextID++
		m.tenants[t.id] = t
		m.names[t.name] = t.id
		return refResult{id: t.id}
	case *command.UpdateTenant:
		t := m.tenants[c.ID]
		if t == nil {
			return refResult{err: ErrTenantNotFound}
		}
		if c.NewName != nil && *c.NewName != t.name {
			if _, ok := m.names[*c.NewName]; ok {
				return refResult{err: ErrTenantExists}
			}
			delete(m.names, t.name)
			t.name = *c.NewName
			m.names[t.name] = t.id
			t.names = append(t.names, t.name)
		}
		if c.State != nil {
			t.state = *c.State
		}
		if c.Limits != nil {
			t.limits = *c.Limits
		}
		return refResult{id: t.id}
	case *command.DeleteTenant:
		t := m.tenants[c.ID]
		if t == nil {
			return refResult{err: ErrTenantNotFound}
		}
		delete(m.tenants, t.id)
		delete(m.names, t.name)
		for tok, id := range m.tokens {
			if id == t.id {
				delete(m.tokens, tok)
			}
		}
		m.gone = append(m.gone, t.id)
		return refResult{id: t.id}
	case *command.PutToken:
		if id := c.Token.TenantID; id != 0 && m.tenants[id] == nil {
			return refResult{err: ErrTenantNotFound}
		}
		m.tokens[c.Token.ID] = c.Token.TenantID
		return refResult{}
	case *command.DeleteToken:
		if _, ok := m.tokens[c.ID]; !ok {
			return refResult{err: ErrTokenNotFound}
		}
		delete(m.tokens, c.ID)
		return refResult{}
	case *command.Noop:
		return refResult{}
	case *command.TenantWrite:
		t, err := m.writableTenant(c.TenantID, c.TenantName)
		if err != nil {
			return refResult{err: err}
		}
		if len(c.Ops) == 0 {
			return refResult{id: t.id} // an empty write is at no version
		}
		v, err := m.commit(t, c.Ops, c.At, "")
		if err != nil {
			return refResult{err: err}
		}
		return refResult{id: t.id, version: v}
	case *command.TxnCommit:
		return m.txnCommit(c)
	case *command.CompareAndSwap:
		t, err := m.writableTenant(c.TenantID, c.TenantName)
		if err != nil {
			return refResult{err: err}
		}
		cur, ok := t.data[string(c.Key)]
		match := !ok
		if !c.OldAbsent {
			match = ok && cur.val == string(c.Old)
		}
		if !match {
			return refResult{id: t.id, version: t.version}
		}
		op := command.Op{Kind: command.OpSet, Key: c.Key, Value: c.New}
		if c.NewAbsent {
			op = command.Op{Kind: command.OpDelete, Key: c.Key}
		}
		v, err := m.commit(t, []command.Op{op}, c.At, "")
		if err != nil {
			return refResult{err: err}
		}
		return refResult{id: t.id, version: v, swapped: true}
	}
	panic(fmt.Sprintf("model: no rule for %T", cmd))
}

// namedTenant returns the tenant with ID id if it is named name.
func (m *refModel) namedTenant(id keyspace.TenantID, name string) (*refTenant, error) {
	t := m.tenants[id]
	if t == nil || t.name != name {
		return nil, ErrTenantNotFound
	}
	return t, nil
}

func (m *refModel) writableTenant(id keyspace.TenantID, name string) (*refTenant, error) {
	t, err := m.namedTenant(id, name)
	if err != nil {
		return nil, err
	}
	return t, refWritable(t)
}

func refWritable(t *refTenant) error {
	switch t.state {
	case keyspace.StateActive:
		return nil
	case keyspace.StateReadOnly:
		return ErrTenantReadOnly
	}
	return ErrTenantLocked
}

func (m *refModel) txnCommit(c *command.TxnCommit) refResult {
	t, err := m.namedTenant(c.TenantID, c.TenantName)
	if err != nil {
		return refResult{err: err}
	}
	rv := c.ReadVersion
	switch {
	case rv > t.version:
		return refResult{err: ErrConflict}
	case rv < t.oldest():
		return refResult{err: ErrTxTooOld}
	}
	if len(c.TxnID) > 0 {
		for _, e := range t.hist {
			if e.version > rv && e.txnID == string(c.TxnID) {
				return refResult{id: t.id, version: e.version} // committed before
			}
		}
	}
	for _, e := range t.hist {
		if e.version <= rv {
			continue
		}
		for _, op := range e.ops {
			for _, r := range c.Reads {
				if touches(op, r) {
					return refResult{err: ErrConflict}
				}
			}
		}
	}
	if len(c.Ops) == 0 {
		return refResult{id: t.id, version: t.version}
	}
	if err := refWritable(t); err != nil {
		return refResult{err: err}
	}
	v, err := m.commit(t, resolveAtomic(t.data, c.Ops), c.At, string(c.TxnID))
	if err != nil {
		return refResult{err: err}
	}
	return refResult{id: t.id, version: v}
}

// commit is a write of ops (sets, deletes and delete-ranges only) to t at
// its next version: refused whole if it grows a dimension of usage past
// its limit, else applied, recorded and followed by the history's pruning.
func (m *refModel) commit(t *refTenant, ops []command.Op, at int64, txnID string) (uint64, error) {
	next := maps.Clone(t.data)
	version := t.version + 1
	applyOps(next, ops, version)
	before, after := refUsage(t.data), refUsage(next)
	if l := t.limits.MaxBytes; l > 0 && after.Bytes > before.Bytes && after.Bytes > l {
		return 0, ErrQuotaExceeded
	}
	if l := t.limits.MaxKeys; l > 0 && after.Keys > before.Keys && after.Keys > l {
		return 0, ErrQuotaExceeded
	}
	t.data = next
	t.version = version
	t.hist = append(t.hist, refEntry{version: version, at: at, txnID: txnID, ops: netWrites(ops)})
	t.lastAt = max(t.lastAt, at)
	// The tenant's own entries older than the window before the newest
	// timestamp it has seen, eight at most, never the newest entry.
	for pruned := 0; pruned < 8 && len(t.hist) >= 2 && t.hist[0].at < t.lastAt-HistoryWindow; pruned++ {
		t.hist = t.hist[1:]
	}
	m.expire(at)
	return version, nil
}

// expire is the pruning every write does on behalf of all tenants: up to
// eight entries older than the window before the write's timestamp, the
// oldest first (by timestamp, then tenant ID), never a tenant's newest.
func (m *refModel) expire(at int64) {
	if at <= 0 {
		return
	}
	cutoff := at - HistoryWindow
	budget := 8
	for budget > 0 {
		var best *refTenant
		for _, t := range m.tenants {
			if len(t.hist) < 2 {
				continue
			}
			if best == nil || t.hist[0].at < best.hist[0].at || (t.hist[0].at == best.hist[0].at && t.id < best.id) {
				best = t
			}
		}
		if best == nil || best.hist[0].at >= cutoff {
			return
		}
		for budget > 0 && len(best.hist) >= 2 && best.hist[0].at < cutoff {
			best.hist = best.hist[1:]
			budget--
		}
	}
}

// applyOps applies plain ops in order; sets are at version.
func applyOps(data map[string]refValue, ops []command.Op, version uint64) {
	for _, op := range ops {
		switch op.Kind {
		case command.OpSet:
			data[string(op.Key)] = refValue{val: string(op.Value), ver: version}
		case command.OpDelete:
			delete(data, string(op.Key))
		case command.OpDeleteRange:
			for k := range data {
				if inRange(k, op.Key, op.End) {
					delete(data, k)
				}
			}
		default:
			panic(fmt.Sprintf("model: op %s reached applyOps", op.Kind))
		}
	}
}

// resolveAtomic turns a transaction's ops into plain ones, evaluating each
// atomic op against the key's value at that point of the transaction.
func resolveAtomic(data map[string]refValue, ops []command.Op) []command.Op {
	cur := map[string]string{}
	for k, v := range data {
		cur[k] = v.val
	}
	var out []command.Op
	for _, op := range ops {
		k := string(op.Key)
		switch op.Kind {
		case command.OpSet:
			cur[k] = string(op.Value)
			out = append(out, op)
		case command.OpDelete:
			delete(cur, k)
			out = append(out, op)
		case command.OpDeleteRange:
			for ck := range cur {
				if inRange(ck, op.Key, op.End) {
					delete(cur, ck)
				}
			}
			out = append(out, op)
		case command.OpAdd, command.OpMin, command.OpMax:
			operand := int64FromLE([]byte(op.Value))
			res := operand
			if old, ok := cur[k]; ok {
				o := int64FromLE([]byte(old))
				switch op.Kind {
				case command.OpAdd:
					res = o + operand
				case command.OpMin:
					if o < operand {
						res = o
					}
				case command.OpMax:
					if o > operand {
						res = o
					}
				}
			}
			v := binary.LittleEndian.AppendUint64(nil, uint64(res))
			cur[k] = string(v)
			out = append(out, command.Op{Kind: command.OpSet, Key: op.Key, Value: v})
		case command.OpCompareAndClear:
			if old, ok := cur[k]; ok && old == string(op.Value) {
				delete(cur, k)
				out = append(out, command.Op{Kind: command.OpDelete, Key: op.Key})
			}
		}
	}
	return out
}

// int64FromLE reads up to the first 8 bytes of b as a little-endian int64,
// missing bytes being zero.
func int64FromLE(b []byte) int64 {
	var u uint64
	for i := 0; i < 8 && i < len(b); i++ {
		u |= uint64(b[i]) << (8 * i)
	}
	return int64(u)
}

// netWrites is what the history records of ops: every delete-range, and
// every point write that no later op of the same command overwrites (a
// point write of the same key, or a delete-range covering it), in order.
func netWrites(ops []command.Op) []command.Op {
	var out []command.Op
	for i, op := range ops {
		keep := true
		if op.Kind != command.OpDeleteRange {
			for _, later := range ops[i+1:] {
				if later.Kind == command.OpDeleteRange && inRange(string(op.Key), later.Key, later.End) ||
					later.Kind != command.OpDeleteRange && bytes.Equal(later.Key, op.Key) {
					keep = false
				}
			}
		}
		if keep {
			out = append(out, op)
		}
	}
	return out
}

func refUsage(data map[string]refValue) Usage {
	var u Usage
	for k, v := range data {
		u.Bytes += uint64(len(k) + len(v.val))
		u.Keys++
	}
	return u
}

// inRange reports whether k lies in [start, end), an empty end being the
// end of the tenant.
func inRange(k string, start, end []byte) bool {
	return k >= string(start) && (len(end) == 0 || k < string(end))
}

// touches reports whether a recorded write touches the range r: a point
// write its key, a delete-range any key of r.
func touches(op command.Op, r command.KeyRange) bool {
	if op.Kind != command.OpDeleteRange {
		return inRange(string(op.Key), r.Start, r.End)
	}
	// [a, b) and [s, e) overlap iff a < e and s < b (empty ends unbounded).
	startsBeforeEnd := len(r.End) == 0 || string(op.Key) < string(r.End)
	endsAfterStart := len(op.End) == 0 || string(r.Start) < string(op.End)
	return startsBeforeEnd && endsAfterStart
}

// refChange is a Change in comparable form.
type refChange struct {
	version         uint64
	kind            command.OpKind
	key, end, value string
}

func (c refChange) String() string {
	switch c.kind {
	case command.OpSet:
		return fmt.Sprintf("v%d set %q=%q", c.version, c.key, c.value)
	case command.OpDelete:
		return fmt.Sprintf("v%d del %q", c.version, c.key)
	}
	return fmt.Sprintf("v%d delrange [%q,%q)", c.version, c.key, c.end)
}

func fromChanges(cs []Change) []refChange {
	out := []refChange{}
	for _, c := range cs {
		out = append(out, refChange{version: c.Version, kind: c.Kind, key: string(c.Key), end: string(c.End), value: string(c.Value)})
	}
	return out
}

// changes is what a watch of t from version after over r gets: every
// retained write after it that touches r, delete-ranges clipped to r.
func (t *refTenant) changes(after uint64, r command.KeyRange) ([]refChange, uint64, error) {
	if after > t.version {
		return nil, 0, errOther
	}
	if after < t.oldest() {
		return nil, 0, ErrWatchTooOld
	}
	out := []refChange{}
	for _, e := range t.hist {
		if e.version <= after {
			continue
		}
		for _, op := range e.ops {
			if !touches(op, r) {
				continue
			}
			c := refChange{version: e.version, kind: op.Kind, key: string(op.Key)}
			switch op.Kind {
			case command.OpSet:
				c.value = string(op.Value)
			case command.OpDeleteRange:
				c.end = string(op.End)
				if c.key < string(r.Start) {
					c.key = string(r.Start)
				}
				if len(r.End) > 0 && (c.end == "" || c.end > string(r.End)) {
					c.end = string(r.End)
				}
			}
			out = append(out, c)
		}
	}
	return out, t.version, nil
}

// liveIDs returns the IDs of the model's tenants, sorted.
func (m *refModel) liveIDs() []keyspace.TenantID {
	return slices.Sorted(maps.Keys(m.tenants))
}

// describe renders a command for a failure message, keys and values quoted.
func describe(cmd command.Command) string {
	switch c := cmd.(type) {
	case *command.TenantWrite:
		return fmt.Sprintf("TenantWrite{id %d %q at %d ops %s}", c.TenantID, c.TenantName, c.At, describeOps(c.Ops))
	case *command.TxnCommit:
		var rs []string
		for _, r := range c.Reads {
			rs = append(rs, fmt.Sprintf("[%q,%q)", r.Start, r.End))
		}
		return fmt.Sprintf("TxnCommit{id %d %q rv %d tx %q at %d reads %s ops %s}", c.TenantID, c.TenantName, c.ReadVersion, c.TxnID, c.At, strings.Join(rs, " "), describeOps(c.Ops))
	case *command.CompareAndSwap:
		return fmt.Sprintf("CompareAndSwap{id %d %q key %q old %q absent %v new %q absent %v at %d}", c.TenantID, c.TenantName, c.Key, c.Old, c.OldAbsent, c.New, c.NewAbsent, c.At)
	case *command.UpdateTenant:
		s := fmt.Sprintf("UpdateTenant{id %d", c.ID)
		if c.NewName != nil {
			s += fmt.Sprintf(" name %q", *c.NewName)
		}
		if c.State != nil {
			s += " state " + c.State.String()
		}
		if c.Limits != nil {
			s += fmt.Sprintf(" limits %d bytes %d keys", c.Limits.MaxBytes, c.Limits.MaxKeys)
		}
		return s + "}"
	case *command.PutToken:
		return fmt.Sprintf("PutToken{%q tenant %d}", c.Token.ID, c.Token.TenantID)
	}
	return fmt.Sprintf("%T%+v", cmd, cmd)
}

func describeOps(ops []command.Op) string {
	var s []string
	for _, op := range ops {
		switch op.Kind {
		case command.OpSet, command.OpCompareAndClear:
			s = append(s, fmt.Sprintf("%s %q=%q", op.Kind, op.Key, op.Value))
		case command.OpAdd, command.OpMin, command.OpMax:
			if len(op.Value) == 8 {
				s = append(s, fmt.Sprintf("%s %q %d", op.Kind, op.Key, int64FromLE(op.Value)))
			} else {
				s = append(s, fmt.Sprintf("%s %q %q", op.Kind, op.Key, op.Value))
			}
		case command.OpDelete:
			s = append(s, fmt.Sprintf("del %q", op.Key))
		default:
			s = append(s, fmt.Sprintf("%s [%q,%q)", op.Kind, op.Key, op.End))
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}
