package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tenantkv/tenantkv/keyspace"
)

func mustMeta(tb testing.TB, s interface {
	TenantMeta(keyspace.TenantID) (*TenantMetaView, error)
}, id keyspace.TenantID) *TenantMetaView {
	tb.Helper()
	m, err := s.TenantMeta(id)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// seedMeta writes a usage record, a version record and three history
// chunks for each tenant, valued by tenant.
func seedMeta(tb testing.TB, s *Store, ids ...keyspace.TenantID) {
	tb.Helper()
	for _, id := range ids {
		m := mustMeta(tb, liveMeta{s}, id)
		for _, k := range []keyspace.SystemKey{
			keyspace.TenantUsageKey(id), keyspace.TenantVersionKey(id),
			keyspace.HistoryKey(id, 1, 0), keyspace.HistoryKey(id, 1, 1), keyspace.HistoryKey(id, 2, 0),
		} {
			if err := m.Set(k, []byte(fmt.Sprint(id))); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// The view of tenant A refuses every key and range of tenant B, with
// keyspace.ErrOutsideSpan and before touching the engine: B's records are
// neither read, written, deleted nor scanned through it.
func TestTenantMetaRefusesOtherTenant(t *testing.T) {
	s := newMemStore(t)
	const a, b = keyspace.TenantID(1), keyspace.TenantID(2)
	seedMeta(t, s, a, b, keyspace.MaxID)
	ma := mustMeta(t, liveMeta{s}, a)
	before := systemDump(t, s.System())

	bKeys := []keyspace.SystemKey{
		keyspace.TenantUsageKey(b), keyspace.TenantVersionKey(b), keyspace.HistoryKey(b, 1, 0),
		keyspace.TenantUsageKey(keyspace.MaxID), keyspace.TokenKey("t"), keyspace.TenantRecordKey(a), {},
	}
	for _, k := range bKeys {
		if v, err := ma.Get(k); !errors.Is(err, keyspace.ErrOutsideSpan) || v != nil {
			t.Errorf("Get(%s) through tenant %d = %q, %v; want ErrOutsideSpan", k, a, v, err)
		}
		if err := ma.Set(k, []byte("forged")); !errors.Is(err, keyspace.ErrOutsideSpan) {
			t.Errorf("Set(%s) through tenant %d = %v", k, a, err)
		}
		if err := ma.Delete(k); !errors.Is(err, keyspace.ErrOutsideSpan) {
			t.Errorf("Delete(%s) through tenant %d = %v", k, a, err)
		}
	}
	as, ae := keyspace.TenantMetaSpan(a)
	bs, be := keyspace.TenantMetaSpan(b)
	hs, he := keyspace.HistorySpan(b, 0, 2)
	for _, r := range [][2]keyspace.SystemKey{{bs, be}, {hs, he}, {as, be}, {as, keyspace.TenantUsageKey(b)}} {
		err := ma.Scan(r[0], r[1], func(k, _ []byte) bool {
			t.Errorf("scan through tenant %d yielded %q", a, k)
			return true
		})
		if !errors.Is(err, keyspace.ErrOutsideSpan) {
			t.Errorf("Scan(%s, %s) through tenant %d = %v", r[0], r[1], a, err)
		}
	}
	if after := systemDump(t, s.System()); !equalStrings(before, after) {
		t.Fatalf("refused calls changed the system keyspace:\n%v\n%v", before, after)
	}

	// Its own span: all of its records, and only those, in key order.
	var got []string
	if err := ma.Scan(as, ae, func(k, v []byte) bool {
		if !keyspace.InTenantMeta(a, k) || string(v) != "1" {
			t.Errorf("scan of tenant %d yielded %q=%q", a, k, v)
		}
		got = append(got, string(k))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("scan of tenant %d: %d records, want 5", a, len(got))
	}
	// Clear removes A's records and nothing of B's.
	if err := ma.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, err := ma.Get(keyspace.TenantUsageKey(a)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("usage of a cleared tenant: %v", err)
	}
	if v, err := mustMeta(t, liveMeta{s}, b).Get(keyspace.HistoryKey(b, 2, 0)); err != nil || string(v) != "2" {
		t.Fatalf("tenant %d after clearing tenant %d: %q, %v", b, a, v, err)
	}
}

// Whatever bounds the iterator is given, every key the engine returns is
// checked against the view's tenant: bounds that point at tenant B (a
// wrong computation inside the view) yield ErrIsolation and no key of B.
func TestTenantMetaRecheck(t *testing.T) {
	s := newMemStore(t)
	seedMeta(t, s, 1, 2)
	ma := mustMeta(t, liveMeta{s}, 1)
	bs, be := keyspace.TenantMetaSpan(2)
	err := ma.scan(bs.Bytes(), be.Bytes(), func(k, _ []byte) bool {
		t.Errorf("re-check let %q through", k)
		return true
	})
	if !errors.Is(err, ErrIsolation) {
		t.Fatalf("scan with tenant 2's bounds through tenant 1 = %v, want ErrIsolation", err)
	}
	// Bounds spanning both tenants: tenant 1's records, then the stop.
	as, _ := keyspace.TenantMetaSpan(1)
	n := 0
	err = ma.scan(as.Bytes(), be.Bytes(), func(k, _ []byte) bool {
		if !keyspace.InTenantMeta(1, k) {
			t.Errorf("re-check let %q through", k)
		}
		n++
		return true
	})
	if !errors.Is(err, ErrIsolation) || n != 5 {
		t.Fatalf("scan over both tenants = %d records, %v; want 5 and ErrIsolation", n, err)
	}
}

// A batch's view reads the batch's own writes and commits them with it; a
// snapshot's view refuses writes; an invalid ID gets no view.
func TestTenantMetaViews(t *testing.T) {
	s := newMemStore(t)
	k := keyspace.TenantVersionKey(7)
	b := s.NewBatch()
	bm := mustMeta(t, b, 7)
	if err := bm.Set(k, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if v, err := bm.Get(k); err != nil || string(v) != "v1" {
		t.Fatalf("batch view does not see its write: %q, %v", v, err)
	}
	if _, err := mustMeta(t, liveMeta{s}, 7).Get(k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("batch write visible before commit: %v", err)
	}
	if err := b.Commit(1, false); err != nil {
		t.Fatal(err)
	}
	if err := bm.Set(k, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("write through a committed batch's view = %v", err)
	}
	sn := s.NewSnapshot()
	defer sn.Close()
	sm := mustMeta(t, sn, 7)
	if v, err := sm.Get(k); err != nil || string(v) != "v1" {
		t.Fatalf("snapshot view: %q, %v", v, err)
	}
	if err := sm.Set(k, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("snapshot view Set = %v", err)
	}
	if err := sm.Clear(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("snapshot view Clear = %v", err)
	}
	for _, id := range []keyspace.TenantID{0, keyspace.MaxID + 1} {
		if _, err := s.TenantMeta(id); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("TenantMeta(%d) = %v", id, err)
		}
	}
}
