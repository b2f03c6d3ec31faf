package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/btree"
	"pgregory.net/rapid"

	"github.com/tenantkv/tenantkv/keyspace"
)

// This file holds a model of the store (one sorted map per tenant, plus the
// system keyspace) and a harness that runs operations against a real store
// and the model side by side, checking after every operation that they
// agree. The rapid property test below and FuzzTenantOps drive it.

// Limits restated here rather than read from keyspace, so that a change of
// the limits has to be made on purpose in two places.
const (
	modelMaxKey   = 10_000
	modelMaxBound = modelMaxKey + 1
	modelMaxValue = 100_000
)

type item struct{ k, v []byte }

func itemLess(a, b item) bool { return bytes.Compare(a.k, b.k) < 0 }

// modelState is what the store should hold.
type modelState struct {
	tenants map[keyspace.TenantID]*btree.BTreeG[item]
	sys     map[string]string
}

func newModelState(ids []keyspace.TenantID) modelState {
	m := modelState{tenants: map[keyspace.TenantID]*btree.BTreeG[item]{}, sys: map[string]string{}}
	for _, id := range ids {
		m.tenants[id] = btree.NewG(4, itemLess)
	}
	return m
}

func (m modelState) clone() modelState {
	c := modelState{tenants: map[keyspace.TenantID]*btree.BTreeG[item]{}, sys: map[string]string{}}
	for id, t := range m.tenants {
		c.tenants[id] = t.Clone()
	}
	for k, v := range m.sys {
		c.sys[k] = v
	}
	return c
}

// apply applies a mutation that the store accepted.
func (m modelState) apply(o op) {
	t := m.tenants[o.tenant]
	switch o.kind {
	case opSet:
		t.ReplaceOrInsert(item{bytes.Clone(o.key), bytes.Clone(o.value)})
	case opDelete:
		t.Delete(item{k: o.key})
	case opDeleteRange:
		for _, it := range m.scan(o.tenant, o.key, o.end) {
			t.Delete(it)
		}
	case opClear, opPurge:
		t.Clear(false)
	case opSysSet:
		m.sys[string(o.sysKey.Bytes())] = string(o.value)
	}
}

// scan returns the items of tenant id in [start, end), end empty meaning
// unbounded, in ascending order.
func (m modelState) scan(id keyspace.TenantID, start, end []byte) []item {
	var out []item
	m.tenants[id].AscendGreaterOrEqual(item{k: start}, func(it item) bool {
		if len(end) > 0 && bytes.Compare(it.k, end) >= 0 {
			return false
		}
		out = append(out, it)
		return true
	})
	return out
}

func (m modelState) get(id keyspace.TenantID, k []byte) ([]byte, bool) {
	it, ok := m.tenants[id].Get(item{k: k})
	return it.v, ok
}

// The model's own validation rules.

func modelKeyErr(k []byte) error {
	switch {
	case len(k) == 0:
		return keyspace.ErrInvalidKey
	case len(k) > modelMaxKey:
		return keyspace.ErrKeyTooLarge
	}
	return nil
}

func modelRangeErr(start, end []byte) error {
	switch {
	case len(start) > modelMaxBound || len(end) > modelMaxBound:
		return keyspace.ErrKeyTooLarge
	case len(end) > 0 && bytes.Compare(start, end) >= 0:
		return keyspace.ErrInvalidRange
	}
	return nil
}

type opKind uint8

const (
	opSet opKind = iota
	opDelete
	opDeleteRange
	opClear
	opPurge
	opGet
	opScan
	opSysSet
	opBegin
	opCommit
	opAbort
	opSnapshot
	opCheckSnapshot
	numOpKinds
)

var opNames = [...]string{"Set", "Delete", "DeleteRange", "Clear", "Purge", "Get", "Scan", "SysSet",
	"Begin", "Commit", "Abort", "Snapshot", "CheckSnapshot"}

// op is one operation of the harness. Tenant operations go through the open
// batch when batch is set and a batch is open, and through the live store
// otherwise.
type op struct {
	kind              opKind
	tenant            keyspace.TenantID
	batch             bool
	key, end, value   []byte
	sysKey            keyspace.SystemKey // of opSysSet
	limit             int
	reverse, keysOnly bool
	applied           uint64
}

func short(b []byte) string {
	if b == nil {
		return "nil"
	}
	if len(b) > 12 {
		return fmt.Sprintf("%x…(%d bytes)", b[:12], len(b))
	}
	return fmt.Sprintf("%x", b)
}

func (o op) String() string {
	return fmt.Sprintf("%s(tenant=%#x batch=%v key=%s end=%s value=%s limit=%d rev=%v keysOnly=%v applied=%d)",
		opNames[o.kind], uint64(o.tenant), o.batch, short(o.key), short(o.end), short(o.value),
		o.limit, o.reverse, o.keysOnly, o.applied)
}

// failer is the part of testing.TB and rapid.T the harness uses.
type failer interface {
	Helper()
	Fatalf(format string, args ...any)
}

type harness struct {
	t   failer
	s   *Store
	ids []keyspace.TenantID

	live     modelState
	batch    *Batch
	batchOps []op // mutations in the open batch, replayed over live on demand

	snap      *Snapshot
	snapModel modelState
}

// newHarness returns a harness over an empty store s, after seeding the
// system keyspace with a record and metadata per tenant.
func newHarness(t failer, s *Store, ids []keyspace.TenantID) *harness {
	h := &harness{t: t, s: s, ids: ids, live: newModelState(ids)}
	for _, id := range ids {
		for _, k := range []keyspace.SystemKey{keyspace.TenantRecordKey(id), keyspace.TenantUsageKey(id)} {
			h.do(op{kind: opSysSet, sysKey: k, value: []byte(fmt.Sprint(id))})
		}
	}
	h.do(op{kind: opSysSet, sysKey: keyspace.NextIDKey(), value: []byte("next")})
	h.check()
	return h
}

func (h *harness) close() {
	if h.batch != nil {
		h.batch.Close()
	}
	if h.snap != nil {
		_ = h.snap.Close()
	}
}

// pending is what reads through the open batch should see.
func (h *harness) pending() modelState {
	m := h.live.clone()
	for _, o := range h.batchOps {
		m.apply(o)
	}
	return m
}

func sameErr(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

func (h *harness) do(o op) {
	h.t.Helper()
	switch o.kind {
	case opBegin:
		if h.batch == nil {
			h.batch = h.s.NewBatch()
			h.batchOps = nil
		}
	case opCommit:
		if h.batch == nil {
			return
		}
		stale, err := h.batch.Tenant(h.ids[0])
		if err != nil {
			h.t.Fatalf("%v: %v", o, err)
		}
		if err := h.batch.Commit(o.applied, o.applied%2 == 0); err != nil {
			h.t.Fatalf("%v: %v", o, err)
		}
		h.live = h.pending()
		if o.applied != 0 {
			h.live.sys[string(keyspace.AppliedIndexKey().Bytes())] = string(keyspace.EncodeUint64(o.applied))
		}
		h.batch, h.batchOps = nil, nil
		// A committed batch's views refuse to work.
		if err := stale.Set([]byte("stale"), nil); !errors.Is(err, ErrClosed) {
			h.t.Fatalf("%v: Set through a committed batch = %v, want ErrClosed", o, err)
		}
	case opAbort:
		if h.batch != nil {
			h.batch.Close()
			h.batch, h.batchOps = nil, nil
		}
	case opSnapshot:
		if h.snap != nil {
			_ = h.snap.Close()
		}
		h.snap = h.s.NewSnapshot()
		h.snapModel = h.live.clone()
	case opCheckSnapshot:
		h.checkSnapshot(o)
	case opSysSet:
		var err error
		if o.batch && h.batch != nil {
			err = h.batch.System().Set(o.sysKey, o.value)
			h.batchOps = append(h.batchOps, o)
		} else {
			err = h.s.liveSystem().Set(o.sysKey, o.value)
			h.live.apply(o)
		}
		if err != nil {
			h.t.Fatalf("%v: %v", o, err)
		}
	default:
		h.tenantOp(o)
	}
}

func (h *harness) tenantOp(o op) {
	h.t.Helper()
	viaBatch := o.batch && h.batch != nil && o.kind != opPurge
	var v *TenantView
	var err error
	if o.kind == opPurge {
		err = h.purge(o.tenant)
	} else if viaBatch {
		v, err = h.batch.Tenant(o.tenant)
	} else {
		v, err = h.s.liveTenant(o.tenant)
	}
	if !o.tenant.Valid() {
		if !errors.Is(err, keyspace.ErrInvalidID) {
			h.t.Fatalf("%v: got %v, want ErrInvalidID", o, err)
		}
		return
	}
	if err != nil {
		h.t.Fatalf("%v: %v", o, err)
	}
	model := h.live
	if viaBatch {
		model = h.pending()
	}

	var want error
	switch o.kind {
	case opSet:
		if want = modelKeyErr(o.key); want == nil && len(o.value) > modelMaxValue {
			want = keyspace.ErrValueTooLarge
		}
		err = v.Set(o.key, o.value)
	case opDelete:
		want = modelKeyErr(o.key)
		err = v.Delete(o.key)
	case opDeleteRange:
		want = modelRangeErr(o.key, o.end)
		err = v.DeleteRange(o.key, o.end)
	case opClear:
		err = v.Clear()
	case opPurge:
		// done above
	case opGet:
		want = modelKeyErr(o.key)
		var got []byte
		got, err = v.Get(o.key)
		if want == nil {
			mv, ok := model.get(o.tenant, o.key)
			if !ok {
				want = ErrNotFound
			} else if err == nil && !bytes.Equal(got, mv) {
				h.t.Fatalf("%v: got %s, want %s", o, short(got), short(mv))
			}
			if ok && err == nil && got == nil {
				h.t.Fatalf("%v: nil value for a present key", o)
			}
		}
	case opScan:
		want = modelRangeErr(o.key, o.end)
		var kvs []KV
		var more bool
		kvs, more, err = v.Scan(o.key, o.end, &ScanOptions{Limit: o.limit, Reverse: o.reverse, KeysOnly: o.keysOnly})
		if want == nil && err == nil {
			exp := model.scan(o.tenant, o.key, o.end)
			if o.reverse {
				slices.Reverse(exp)
			}
			wantMore := o.limit > 0 && len(exp) > o.limit
			if wantMore {
				exp = exp[:o.limit]
			}
			if more != wantMore {
				h.t.Fatalf("%v: more=%v, want %v", o, more, wantMore)
			}
			h.compare(fmt.Sprint(o), kvs, exp, o.keysOnly)
		}
	}
	if !sameErr(err, want) {
		h.t.Fatalf("%v: got error %v, want %v", o, err, want)
	}
	if err != nil {
		return
	}
	switch o.kind {
	case opSet, opDelete, opDeleteRange, opClear, opPurge:
		if viaBatch {
			h.batchOps = append(h.batchOps, o)
		} else {
			h.live.apply(o)
		}
	}
}

func (h *harness) compare(what string, got []KV, want []item, keysOnly bool) {
	h.t.Helper()
	if len(got) != len(want) {
		h.t.Fatalf("%s: %d pairs, want %d (got %s, want %s)", what, len(got), len(want), kvString(got), itemString(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Key, want[i].k) {
			h.t.Fatalf("%s: pair %d key %s, want %s", what, i, short(got[i].Key), short(want[i].k))
		}
		if keysOnly {
			if got[i].Value != nil {
				h.t.Fatalf("%s: keys-only scan returned a value", what)
			}
		} else if !bytes.Equal(got[i].Value, want[i].v) || got[i].Value == nil {
			h.t.Fatalf("%s: pair %d (%s) value %s, want %s", what, i, short(want[i].k), short(got[i].Value), short(want[i].v))
		}
	}
}

func kvString(kvs []KV) string {
	var s []string
	for _, kv := range kvs {
		s = append(s, short(kv.Key))
	}
	return fmt.Sprint(s)
}

func itemString(items []item) string {
	var s []string
	for _, it := range items {
		s = append(s, short(it.k))
	}
	return fmt.Sprint(s)
}

// checkViews compares every tenant and the system keyspace, read through
// the given constructors, with the model.
func (h *harness) checkViews(what string, m modelState, tenant func(keyspace.TenantID) (tenantScanner, error), sys *SystemView) {
	h.t.Helper()
	for _, id := range h.ids {
		v, err := tenant(id)
		if err != nil {
			h.t.Fatalf("%s: tenant %d: %v", what, id, err)
		}
		kvs, more, err := v.Scan(nil, nil, nil)
		if err != nil || more {
			h.t.Fatalf("%s: tenant %d: scan: more=%v %v", what, id, more, err)
		}
		h.compare(fmt.Sprintf("%s: tenant %#x", what, uint64(id)), kvs, m.scan(id, nil, nil), false)
	}
	got := map[string]string{}
	start, end := keyspace.SystemRecordSpan()
	err := sys.Scan(start, end, func(k, v []byte) bool {
		got[string(k)] = string(v)
		return true
	})
	if err != nil {
		h.t.Fatalf("%s: system scan: %v", what, err)
	}
	if len(got) != len(m.sys) {
		h.t.Fatalf("%s: system keyspace holds %d keys, want %d", what, len(got), len(m.sys))
	}
	for k, v := range m.sys {
		if gv, ok := got[k]; !ok || gv != v {
			h.t.Fatalf("%s: system key %x = %q (present %v), want %q", what, k, gv, ok, v)
		}
	}
}

// purge clears tenant id the way the state machine deletes a tenant: one
// range deletion in a batch of its own, committed synced.
func (h *harness) purge(id keyspace.TenantID) error {
	b := h.s.NewBatch()
	v, err := b.Tenant(id)
	if err != nil {
		b.Close()
		return err
	}
	if err := v.Clear(); err != nil {
		b.Close()
		return err
	}
	return b.Commit(0, true)
}

// tenantScanner is what checkViews reads a tenant through: a TenantView or
// a TenantReader.
type tenantScanner interface {
	Scan(start, end []byte, opts *ScanOptions) ([]KV, bool, error)
}

// check compares the live store, and the open batch if any, with the model.
func (h *harness) check() {
	h.t.Helper()
	live := func(id keyspace.TenantID) (tenantScanner, error) { return h.s.ReadOnly().Tenant(id) }
	h.checkViews("live", h.live, live, h.s.System())
	if h.batch != nil {
		batch := func(id keyspace.TenantID) (tenantScanner, error) { return h.batch.Tenant(id) }
		h.checkViews("batch", h.pending(), batch, h.batch.System())
	}
	var want uint64
	if v, ok := h.live.sys[string(keyspace.AppliedIndexKey().Bytes())]; ok {
		want, _ = keyspace.DecodeUint64([]byte(v))
	}
	if got, err := h.s.AppliedIndex(); err != nil || got != want {
		h.t.Fatalf("AppliedIndex = %d, %v; want %d", got, err, want)
	}
}

func (h *harness) checkSnapshot(o op) {
	h.t.Helper()
	if h.snap == nil {
		return
	}
	// The snapshot's own views, and the readers a SnapshotReader over it
	// hands out.
	h.checkViews("snapshot", h.snapModel, func(id keyspace.TenantID) (tenantScanner, error) { return h.snap.Tenant(id) }, h.snap.System())
	sr := &SnapshotReader{sn: h.snap}
	h.checkViews("snapshot reader", h.snapModel, func(id keyspace.TenantID) (tenantScanner, error) { return sr.Tenant(id) }, h.snap.System())
	if !o.tenant.Valid() {
		return
	}
	v, err := h.snap.Tenant(o.tenant)
	if err != nil {
		h.t.Fatalf("%v: %v", o, err)
	}
	if err := v.Set([]byte("k"), []byte("v")); !errors.Is(err, ErrReadOnly) {
		h.t.Fatalf("%v: snapshot Set = %v, want ErrReadOnly", o, err)
	}
	if err := v.Clear(); !errors.Is(err, ErrReadOnly) {
		h.t.Fatalf("%v: snapshot Clear = %v, want ErrReadOnly", o, err)
	}
}

// The tenants every run uses: neighbours at both ends of the ID space.
var harnessIDs = []keyspace.TenantID{1, 2, 3, keyspace.MaxID - 1, keyspace.MaxID}

var invalidIDs = []keyspace.TenantID{0, keyspace.MaxID + 1, ^keyspace.TenantID(0)}

// adversarialKeys are keys and range bounds that sit on or next to the
// edges the isolation depends on.
func adversarialKeys(ids []keyspace.TenantID) [][]byte {
	ks := [][]byte{
		nil, {}, {0}, {0xFF}, {0xFF, 0},
		bytes.Repeat([]byte{0}, 8), bytes.Repeat([]byte{0xFF}, 8), bytes.Repeat([]byte{0xFF}, 9),
		bytes.Repeat([]byte{0xFF}, modelMaxKey),
		bytes.Repeat([]byte{0}, modelMaxKey),
		bytes.Repeat([]byte{0xFF}, modelMaxKey+1), // too long as a key, fine as a bound
		bytes.Repeat([]byte{1}, modelMaxKey+2),    // too long as either
		keyspace.AppliedIndexKey().Bytes(),
		keyspace.TenantRecordKey(1).Bytes(),
		[]byte(keyspace.AllTenantsSpan().End),
	}
	for _, id := range ids {
		p := id.Prefix()
		sp := keyspace.TenantSpan(id)
		ks = append(ks, p[:], append(p[:], 0), append(p[:], 0xFF), sp.End, append(bytes.Clone(sp.End), 0),
			keyspace.TenantKey(id, []byte("a")))
	}
	return ks
}

var (
	maxValue     = bytes.Repeat([]byte{'v'}, modelMaxValue)
	tooBigValue  = bytes.Repeat([]byte{'v'}, modelMaxValue+1)
	specialVals  = [][]byte{nil, {}, {0}, {0xFF}, maxValue, tooBigValue}
	sysWriteKeys = []keyspace.SystemKey{
		keyspace.TenantUsageKey(1), keyspace.HistoryKey(keyspace.MaxID, 1, 0),
		keyspace.MetaKey("cluster"), keyspace.TokenKey("tok"), keyspace.TenantNameKey("acme"),
	}
)

// opGenerator draws operations for the harness. Kinds and tenants are
// weighted so that a run piles enough keys into a few tenants for limits,
// ranges and reverse scans to matter, while still reaching every tenant,
// invalid IDs, batches and snapshots.
func opGenerator(ids []keyspace.TenantID) *rapid.Generator[op] {
	specials := adversarialKeys(ids)
	keyGen := rapid.OneOf(
		rapid.SampledFrom(specials),
		rapid.SliceOfN(rapid.SampledFrom([]byte{0x00, 0x01, 'a', 'b', 0xFE, 0xFF}), 0, 3),
		rapid.SliceOfN(rapid.SampledFrom([]byte{0x00, 0x01, 'a', 'b', 0xFE, 0xFF}), 0, 3),
	)
	valGen := rapid.OneOf(
		rapid.SliceOfN(rapid.Byte(), 0, 6),
		rapid.SampledFrom(specialVals),
	)
	// The first two IDs get most of the traffic.
	weightedIDs := append(slices.Repeat(ids[:2], 4), ids...)
	tenantGen := rapid.Custom(func(t *rapid.T) keyspace.TenantID {
		if rapid.IntRange(0, 29).Draw(t, "invalid?") == 0 {
			return rapid.SampledFrom(invalidIDs).Draw(t, "invalid")
		}
		return rapid.SampledFrom(weightedIDs).Draw(t, "tenant")
	})
	kinds := []opKind{
		opSet, opSet, opSet, opSet, opSet, opSet,
		opDelete, opDeleteRange, opDeleteRange, opClear, opPurge,
		opGet, opGet, opGet, opScan, opScan, opScan, opScan,
		opSysSet, opBegin, opBegin, opCommit, opAbort, opSnapshot, opCheckSnapshot,
	}
	return rapid.Custom(func(t *rapid.T) op {
		o := op{kind: rapid.SampledFrom(kinds).Draw(t, "kind")}
		switch o.kind {
		case opSet:
			o.key, o.value = keyGen.Draw(t, "key"), valGen.Draw(t, "value")
		case opDelete, opGet:
			o.key = keyGen.Draw(t, "key")
		case opDeleteRange, opScan:
			o.key, o.end = keyGen.Draw(t, "start"), keyGen.Draw(t, "end")
			o.limit = rapid.IntRange(0, 4).Draw(t, "limit")
			o.reverse, o.keysOnly = rapid.Bool().Draw(t, "reverse"), rapid.Bool().Draw(t, "keysOnly")
		case opSysSet:
			o.sysKey, o.value = rapid.SampledFrom(sysWriteKeys).Draw(t, "key"), valGen.Draw(t, "value")
		case opCommit:
			o.applied = rapid.Uint64Range(0, 1<<40).Draw(t, "applied")
		}
		switch o.kind {
		case opSet, opDelete, opDeleteRange, opClear, opPurge, opGet, opScan, opCheckSnapshot:
			o.tenant = tenantGen.Draw(t, "tenant")
		}
		o.batch = rapid.IntRange(0, 2).Draw(t, "batch") > 0
		return o
	})
}

// TestPropertyTenantIsolation runs random operations on five tenants (1, 2,
// 3, MaxID-1, MaxID) through live views, batches and snapshots, and checks
// after every one that every tenant and the system keyspace hold exactly
// what the model says, and that every error is the one the model expects.
func TestPropertyTenantIsolation(t *testing.T) {
	gen := opGenerator(harnessIDs)
	rapid.Check(t, func(t *rapid.T) {
		s, err := Open("", &Options{InMemory: true, CacheSize: 1 << 20, MemTableSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		h := newHarness(t, s, harnessIDs)
		defer h.close()
		n := rapid.IntRange(10, 300).Draw(t, "ops")
		for i := range n {
			h.do(gen.Draw(t, fmt.Sprint("op", i)))
			h.check()
		}
	})
}
