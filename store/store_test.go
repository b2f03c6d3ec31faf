package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/tenantkv/tenantkv/keyspace"
)

// newMemStore opens an in-memory store closed at the end of the test.
func newMemStore(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open("", &Options{InMemory: true})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// mustTenant returns a view of tenant id over the live database, whose
// writes commit one by one (live_test.go).
func mustTenant(tb testing.TB, s *Store, id keyspace.TenantID) *TenantView {
	tb.Helper()
	v, err := s.liveTenant(id)
	if err != nil {
		tb.Fatalf("Tenant(%d): %v", id, err)
	}
	return v
}

func mustSet(tb testing.TB, v *TenantView, k, val string) {
	tb.Helper()
	if err := v.Set([]byte(k), []byte(val)); err != nil {
		tb.Fatalf("tenant %d: Set(%q): %v", v.ID(), k, err)
	}
}

func mustGet(tb testing.TB, v *TenantView, k string) string {
	tb.Helper()
	val, err := v.Get([]byte(k))
	if err != nil {
		tb.Fatalf("tenant %d: Get(%q): %v", v.ID(), k, err)
	}
	return string(val)
}

func wantNotFound(tb testing.TB, v *TenantView, k string) {
	tb.Helper()
	if val, err := v.Get([]byte(k)); !errors.Is(err, ErrNotFound) {
		tb.Fatalf("tenant %d: Get(%q) = %q, %v; want ErrNotFound", v.ID(), k, val, err)
	}
}

// dump returns every pair of a tenant as "k=v" strings, in order.
func dump(tb testing.TB, v *TenantView) []string {
	tb.Helper()
	kvs, more, err := v.Scan(nil, nil, nil)
	if err != nil || more {
		tb.Fatalf("tenant %d: Scan: more=%v err=%v", v.ID(), more, err)
	}
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return out
}

// systemDump returns every pair of the system keyspace.
func systemDump(tb testing.TB, sv *SystemView) []string {
	tb.Helper()
	var out []string
	start, end := keyspace.SystemRecordSpan()
	err := sv.Scan(start, end, func(k, v []byte) bool {
		out = append(out, fmt.Sprintf("%x=%x", k, v))
		return true
	})
	if err != nil {
		tb.Fatalf("system scan: %v", err)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGetSetDelete(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 7)
	if v.ID() != 7 {
		t.Fatalf("ID() = %d", v.ID())
	}
	wantNotFound(t, v, "k")
	mustSet(t, v, "k", "v1")
	if got := mustGet(t, v, "k"); got != "v1" {
		t.Fatalf("Get = %q", got)
	}
	mustSet(t, v, "k", "v2")
	if got := mustGet(t, v, "k"); got != "v2" {
		t.Fatalf("Get after overwrite = %q", got)
	}
	if err := v.Delete([]byte("k")); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, v, "k")
	if err := v.Delete([]byte("never-there")); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	// Binary keys, including ones that look like prefixes and system keys.
	for _, k := range [][]byte{{0}, {0xFF}, {0xFF, 'a'}, bytes.Repeat([]byte{0xFF}, 9), {0, 0, 0, 0, 0, 0, 0, 8}} {
		if err := v.Set(k, k); err != nil {
			t.Fatalf("Set(%x): %v", k, err)
		}
		got, err := v.Get(k)
		if err != nil || !bytes.Equal(got, k) {
			t.Fatalf("Get(%x) = %x, %v", k, got, err)
		}
	}
	// None of them leaked into the neighbours or the system keyspace.
	for _, id := range []keyspace.TenantID{6, 8} {
		if d := dump(t, mustTenant(t, s, id)); len(d) != 0 {
			t.Fatalf("tenant %d sees %q", id, d)
		}
	}
	if d := systemDump(t, s.System()); len(d) != 0 {
		t.Fatalf("system keyspace holds %q", d)
	}
}

func TestEmptyValueIsNotMissing(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 1)
	for _, val := range [][]byte{nil, {}} {
		if err := v.Set([]byte("k"), val); err != nil {
			t.Fatal(err)
		}
		got, err := v.Get([]byte("k"))
		if err != nil {
			t.Fatalf("Get of an empty value: %v", err)
		}
		if got == nil || len(got) != 0 {
			t.Fatalf("Get of an empty value = %#v, want a non-nil empty slice", got)
		}
	}
	kvs, _, err := v.Scan(nil, nil, nil)
	if err != nil || len(kvs) != 1 || string(kvs[0].Key) != "k" || kvs[0].Value == nil || len(kvs[0].Value) != 0 {
		t.Fatalf("Scan = %#v, %v", kvs, err)
	}
	wantNotFound(t, v, "other")
}

func TestKeyAndValueLimits(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 1)
	tests := []struct {
		name     string
		key, val []byte
		err      error
	}{
		{"empty key", nil, []byte("v"), keyspace.ErrInvalidKey},
		{"empty non-nil key", []byte{}, []byte("v"), keyspace.ErrInvalidKey},
		{"1-byte key", []byte{0}, []byte("v"), nil},
		{"10,000-byte key", bytes.Repeat([]byte{0xFF}, 10_000), []byte("v"), nil},
		{"10,001-byte key", bytes.Repeat([]byte{0xFF}, 10_001), []byte("v"), keyspace.ErrKeyTooLarge},
		{"100,000-byte value", []byte("big"), bytes.Repeat([]byte{'v'}, 100_000), nil},
		{"100,001-byte value", []byte("big2"), bytes.Repeat([]byte{'v'}, 100_001), keyspace.ErrValueTooLarge},
		{"both too large", bytes.Repeat([]byte{1}, 10_001), bytes.Repeat([]byte{'v'}, 100_001), keyspace.ErrKeyTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Set(tc.key, tc.val)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Set: %v", err)
				}
				got, err := v.Get(tc.key)
				if err != nil || !bytes.Equal(got, tc.val) {
					t.Fatalf("Get: %d bytes, %v", len(got), err)
				}
				if err := v.Delete(tc.key); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Set = %v, want %v", err, tc.err)
			}
			// Key errors apply to every key-taking method, values aside.
			if tc.val != nil && len(tc.val) <= keyspace.MaxValueSize {
				if _, err := v.Get(tc.key); !errors.Is(err, tc.err) {
					t.Fatalf("Get = %v, want %v", err, tc.err)
				}
				if err := v.Delete(tc.key); !errors.Is(err, tc.err) {
					t.Fatalf("Delete = %v, want %v", err, tc.err)
				}
			}
		})
	}
	if d := dump(t, v); len(d) != 0 {
		t.Fatalf("refused writes left %d keys", len(d))
	}
}

func TestInvalidTenantIDs(t *testing.T) {
	s := newMemStore(t)
	b := s.NewBatch()
	defer b.Close()
	sn := s.NewSnapshot()
	defer sn.Close()
	for _, id := range []keyspace.TenantID{0, keyspace.MaxID + 1, ^keyspace.TenantID(0)} {
		if _, err := s.Tenant(id); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("Store.Tenant(%#x) = %v", uint64(id), err)
		}
		if _, err := b.Tenant(id); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("Batch.Tenant(%#x) = %v", uint64(id), err)
		}
		if _, err := sn.Tenant(id); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("Snapshot.Tenant(%#x) = %v", uint64(id), err)
		}
		if _, err := s.ReadOnly().Tenant(id); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("ReadOnly.Tenant(%#x) = %v", uint64(id), err)
		}
		rs := s.ReadOnly().NewSnapshot()
		if _, err := rs.Tenant(id); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("SnapshotReader.Tenant(%#x) = %v", uint64(id), err)
		}
		rs.Close()
		if _, err := s.EstimateTenantDiskUsage(id); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("EstimateTenantDiskUsage(%#x) = %v", uint64(id), err)
		}
	}
}

// fill writes keys k0..k(n-1) (zero-padded) with values v0.. into v.
func fill(tb testing.TB, v *TenantView, n int) []string {
	tb.Helper()
	var keys []string
	for i := range n {
		k := fmt.Sprintf("k%02d", i)
		mustSet(tb, v, k, fmt.Sprintf("v%02d", i))
		keys = append(keys, k)
	}
	return keys
}

func scanKeys(tb testing.TB, v *TenantView, start, end string, o *ScanOptions) ([]string, bool) {
	tb.Helper()
	kvs, more, err := v.Scan([]byte(start), []byte(end), o)
	if err != nil {
		tb.Fatalf("Scan(%q, %q, %+v): %v", start, end, o, err)
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, string(kv.Key))
		if o != nil && o.KeysOnly {
			if kv.Value != nil {
				tb.Fatalf("KeysOnly scan returned value %q", kv.Value)
			}
		} else if string(kv.Value) != "v"+string(kv.Key)[1:] {
			tb.Fatalf("Scan: %q=%q", kv.Key, kv.Value)
		}
	}
	return keys, more
}

func TestScan(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 3)
	fill(t, v, 10)
	// Keys in the neighbours must never show up.
	mustSet(t, mustTenant(t, s, 2), "k05", "x")
	mustSet(t, mustTenant(t, s, 4), "k05", "x")
	tests := []struct {
		start, end string
		opts       *ScanOptions
		want       string
		more       bool
	}{
		{"", "", nil, "k00 k01 k02 k03 k04 k05 k06 k07 k08 k09", false},
		{"k03", "k06", nil, "k03 k04 k05", false},
		{"k03", "", nil, "k03 k04 k05 k06 k07 k08 k09", false},
		{"", "k02", nil, "k00 k01", false},
		{"k035", "k05", nil, "k04", false},
		{"k10", "", nil, "", false},
		{"", "k00", nil, "", false},
		{"", "", &ScanOptions{Limit: 3}, "k00 k01 k02", true},
		{"", "", &ScanOptions{Limit: 10}, "k00 k01 k02 k03 k04 k05 k06 k07 k08 k09", false},
		{"", "", &ScanOptions{Limit: 11}, "k00 k01 k02 k03 k04 k05 k06 k07 k08 k09", false},
		{"", "", &ScanOptions{Limit: 9}, "k00 k01 k02 k03 k04 k05 k06 k07 k08", true},
		{"k03", "k06", &ScanOptions{Limit: 3}, "k03 k04 k05", false},
		{"k03", "k06", &ScanOptions{Limit: 2}, "k03 k04", true},
		{"", "", &ScanOptions{Reverse: true}, "k09 k08 k07 k06 k05 k04 k03 k02 k01 k00", false},
		{"k03", "k06", &ScanOptions{Reverse: true}, "k05 k04 k03", false},
		{"k03", "k06", &ScanOptions{Reverse: true, Limit: 2}, "k05 k04", true},
		{"", "", &ScanOptions{Reverse: true, Limit: 1}, "k09", true},
		{"", "", &ScanOptions{KeysOnly: true, Limit: 2}, "k00 k01", true},
	}
	for _, tc := range tests {
		keys, more := scanKeys(t, v, tc.start, tc.end, tc.opts)
		got := fmt.Sprint(keys)
		if got != "["+tc.want+"]" || more != tc.more {
			t.Errorf("Scan(%q, %q, %+v) = %s more=%v; want [%s] more=%v", tc.start, tc.end, tc.opts, got, more, tc.want, tc.more)
		}
	}
	for _, r := range [][2]string{{"k05", "k05"}, {"k06", "k05"}, {"b", "a"}} {
		if _, _, err := v.Scan([]byte(r[0]), []byte(r[1]), nil); !errors.Is(err, keyspace.ErrInvalidRange) {
			t.Errorf("Scan(%q, %q) = %v, want ErrInvalidRange", r[0], r[1], err)
		}
		if _, err := v.NewIterator([]byte(r[0]), []byte(r[1]), false); !errors.Is(err, keyspace.ErrInvalidRange) {
			t.Errorf("NewIterator(%q, %q) = %v, want ErrInvalidRange", r[0], r[1], err)
		}
	}
	if _, _, err := v.Scan(bytes.Repeat([]byte{1}, keyspace.MaxKeySize+2), nil, nil); !errors.Is(err, keyspace.ErrKeyTooLarge) {
		t.Errorf("Scan with an oversize bound = %v", err)
	}
	// A bound of MaxKeySize+1 bytes (the prefix end of a maximal key) is fine.
	if _, _, err := v.Scan(nil, bytes.Repeat([]byte{0xFF}, keyspace.MaxKeySize+1), nil); err != nil {
		t.Errorf("Scan with a MaxKeySize+1 bound = %v", err)
	}
}

func TestIterator(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 3)
	fill(t, v, 3)
	for _, reverse := range []bool{false, true} {
		it, err := v.NewIterator(nil, nil, reverse)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for it.Next() {
			got = append(got, string(it.Key())+"="+string(it.Value()))
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if it.Next() {
			t.Fatal("Next after the end returned true")
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		if err := it.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if it.Next() {
			t.Fatal("Next after Close returned true")
		}
		want := "[k00=v00 k01=v01 k02=v02]"
		if reverse {
			want = "[k02=v02 k01=v01 k00=v00]"
		}
		if fmt.Sprint(got) != want {
			t.Fatalf("reverse=%v: %v", reverse, got)
		}
	}
}

func TestDeleteRange(t *testing.T) {
	tests := []struct {
		start, end string
		want       string
	}{
		{"k03", "k06", "[k00 k01 k02 k06 k07 k08 k09]"},
		{"k03", "k03\x00", "[k00 k01 k02 k04 k05 k06 k07 k08 k09]"},
		{"k03", "", "[k00 k01 k02]"},
		{"", "k03", "[k03 k04 k05 k06 k07 k08 k09]"},
		{"", "", "[]"},
		{"a", "b", "[k00 k01 k02 k03 k04 k05 k06 k07 k08 k09]"},
		{"k09", "\xff", "[k00 k01 k02 k03 k04 k05 k06 k07 k08]"},
	}
	for _, tc := range tests {
		s := newMemStore(t)
		prev, v, next := mustTenant(t, s, 4), mustTenant(t, s, 5), mustTenant(t, s, 6)
		fill(t, prev, 10)
		fill(t, v, 10)
		fill(t, next, 10)
		if err := v.DeleteRange([]byte(tc.start), []byte(tc.end)); err != nil {
			t.Fatalf("DeleteRange(%q, %q): %v", tc.start, tc.end, err)
		}
		keys, _ := scanKeys(t, v, "", "", nil)
		if got := fmt.Sprint(keys); got != tc.want {
			t.Errorf("after DeleteRange(%q, %q): %s, want %s", tc.start, tc.end, got, tc.want)
		}
		for _, n := range []*TenantView{prev, next} {
			if keys, _ := scanKeys(t, n, "", "", nil); len(keys) != 10 {
				t.Errorf("DeleteRange(%q, %q) in tenant 5 changed tenant %d: %v", tc.start, tc.end, n.ID(), keys)
			}
		}
	}
	s := newMemStore(t)
	v := mustTenant(t, s, 5)
	for _, r := range [][2]string{{"k05", "k05"}, {"k06", "k05"}} {
		if err := v.DeleteRange([]byte(r[0]), []byte(r[1])); !errors.Is(err, keyspace.ErrInvalidRange) {
			t.Errorf("DeleteRange(%q, %q) = %v, want ErrInvalidRange", r[0], r[1], err)
		}
	}
	if err := v.DeleteRange(nil, bytes.Repeat([]byte{1}, keyspace.MaxKeySize+2)); !errors.Is(err, keyspace.ErrKeyTooLarge) {
		t.Errorf("DeleteRange with an oversize bound = %v", err)
	}
}

func TestReturnedSlicesAreCopies(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 1)
	key, val := []byte("key"), []byte("value")
	if err := v.Set(key, val); err != nil {
		t.Fatal(err)
	}
	// The arguments are the caller's to reuse once Set returns.
	key[0], val[0] = 'X', 'X'
	if got := mustGet(t, v, "key"); got != "value" {
		t.Fatalf("stored value changed with the caller's slice: %q", got)
	}
	got, err := v.Get([]byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = 0
	}
	if got := mustGet(t, v, "key"); got != "value" {
		t.Fatalf("mutating a Get result changed the store: %q", got)
	}
	mustSet(t, v, "key2", "value2")
	kvs, _, err := v.Scan(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		for i := range kv.Key {
			kv.Key[i] = 0
		}
		for i := range kv.Value {
			kv.Value[i] = 0
		}
	}
	if d := fmt.Sprint(dump(t, v)); d != "[key=value key2=value2]" {
		t.Fatalf("mutating Scan results changed the store: %s", d)
	}
	// Slices returned earlier survive later reads.
	a, _ := v.Get([]byte("key"))
	b, _ := v.Get([]byte("key2"))
	if string(a) != "value" || string(b) != "value2" {
		t.Fatalf("results alias each other: %q %q", a, b)
	}
	// The same through a batch view, a snapshot view and the system view.
	batch := s.NewBatch()
	defer batch.Close()
	bv, _ := batch.Tenant(1)
	got, _ = bv.Get([]byte("key"))
	got[0] = 'Z'
	sn := s.NewSnapshot()
	defer sn.Close()
	sv, _ := sn.Tenant(1)
	got, _ = sv.Get([]byte("key"))
	got[0] = 'Z'
	if err := s.liveSystem().Set(keyspace.MetaKey("m"), []byte("meta")); err != nil {
		t.Fatal(err)
	}
	got, _ = s.System().Get(keyspace.MetaKey("m"))
	got[0] = 'Z'
	if g, _ := s.System().Get(keyspace.MetaKey("m")); string(g) != "meta" {
		t.Fatalf("system value changed: %q", g)
	}
	if got := mustGet(t, v, "key"); got != "value" {
		t.Fatalf("value changed: %q", got)
	}
}

func TestBatchAtomicAcrossTenants(t *testing.T) {
	s := newMemStore(t)
	ids := []keyspace.TenantID{1, 2, keyspace.MaxID}
	b := s.NewBatch()
	defer b.Close()
	if !b.Empty() {
		t.Fatal("new batch not empty")
	}
	for _, id := range ids {
		bv, err := b.Tenant(id)
		if err != nil {
			t.Fatal(err)
		}
		mustSet(t, bv, "k", fmt.Sprintf("v%d", id))
		mustSet(t, bv, "gone", "x")
		if err := bv.Delete([]byte("gone")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.System().Set(keyspace.TenantUsageKey(1), []byte("u1")); err != nil {
		t.Fatal(err)
	}
	if b.Empty() || b.Len() == 0 {
		t.Fatal("batch with writes reports empty")
	}
	// Nothing is visible outside the batch before Commit.
	for _, id := range ids {
		wantNotFound(t, mustTenant(t, s, id), "k")
	}
	if _, err := s.System().Get(keyspace.TenantUsageKey(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("system write visible before commit: %v", err)
	}
	if ai, err := s.AppliedIndex(); err != nil || ai != 0 {
		t.Fatalf("AppliedIndex before any commit = %d, %v", ai, err)
	}
	if err := b.Commit(42, true); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		v := mustTenant(t, s, id)
		if got := mustGet(t, v, "k"); got != fmt.Sprintf("v%d", id) {
			t.Fatalf("tenant %d: %q", id, got)
		}
		wantNotFound(t, v, "gone")
	}
	if got, err := s.System().Get(keyspace.TenantUsageKey(1)); err != nil || string(got) != "u1" {
		t.Fatalf("system write after commit: %q, %v", got, err)
	}
	if ai, err := s.AppliedIndex(); err != nil || ai != 42 {
		t.Fatalf("AppliedIndex = %d, %v; want 42", ai, err)
	}
	// A commit with index 0 keeps the recorded index.
	b2 := s.NewBatch()
	bv, _ := b2.Tenant(1)
	mustSet(t, bv, "k2", "x")
	if err := b2.Commit(0, false); err != nil {
		t.Fatal(err)
	}
	if ai, _ := s.AppliedIndex(); ai != 42 {
		t.Fatalf("AppliedIndex after a commit without index = %d", ai)
	}
	// An empty batch commits and records its index.
	if err := s.NewBatch().Commit(43, false); err != nil {
		t.Fatal(err)
	}
	if ai, _ := s.AppliedIndex(); ai != 43 {
		t.Fatalf("AppliedIndex = %d, want 43", ai)
	}
}

func TestBatchReadsOwnWrites(t *testing.T) {
	s := newMemStore(t)
	live := mustTenant(t, s, 9)
	fill(t, live, 5)
	b := s.NewBatch()
	defer b.Close()
	bv, err := b.Tenant(9)
	if err != nil {
		t.Fatal(err)
	}
	if bv.ID() != 9 {
		t.Fatalf("ID = %d", bv.ID())
	}
	mustSet(t, bv, "k01", "new")
	mustSet(t, bv, "k99", "v99")
	if err := bv.Delete([]byte("k00")); err != nil {
		t.Fatal(err)
	}
	if err := bv.DeleteRange([]byte("k03"), []byte("k05")); err != nil {
		t.Fatal(err)
	}
	want := "[k01=new k02=v02 k99=v99]"
	if got := fmt.Sprint(dump(t, bv)); got != want {
		t.Fatalf("batch view = %s, want %s", got, want)
	}
	if got := mustGet(t, bv, "k01"); got != "new" {
		t.Fatalf("batch Get = %q", got)
	}
	wantNotFound(t, bv, "k00")
	wantNotFound(t, bv, "k03")
	kvs, more, err := bv.Scan(nil, nil, &ScanOptions{Reverse: true, Limit: 1})
	if err != nil || !more || len(kvs) != 1 || string(kvs[0].Key) != "k99" {
		t.Fatalf("reverse batch scan = %v %v %v", kvs, more, err)
	}
	// The live view still sees the old state.
	if got := fmt.Sprint(dump(t, live)); got != "[k00=v00 k01=v01 k02=v02 k03=v03 k04=v04]" {
		t.Fatalf("live view sees uncommitted writes: %s", got)
	}
	// Clear through a batch view, then commit.
	if err := bv.Clear(); err != nil {
		t.Fatal(err)
	}
	if d := dump(t, bv); len(d) != 0 {
		t.Fatalf("after Clear the batch view holds %v", d)
	}
	if err := b.Commit(1, false); err != nil {
		t.Fatal(err)
	}
	if d := dump(t, live); len(d) != 0 {
		t.Fatalf("after commit the tenant holds %v", d)
	}
}

func TestBatchCloseDiscards(t *testing.T) {
	s := newMemStore(t)
	b := s.NewBatch()
	bv, _ := b.Tenant(1)
	mustSet(t, bv, "k", "v")
	if err := b.System().Set(keyspace.MetaKey("m"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close() // a second Close is a no-op
	wantNotFound(t, mustTenant(t, s, 1), "k")
	if _, err := s.System().Get(keyspace.MetaKey("m")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("discarded system write visible: %v", err)
	}
	if err := b.Commit(5, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close = %v, want ErrClosed", err)
	}
	if ai, _ := s.AppliedIndex(); ai != 0 {
		t.Fatalf("AppliedIndex = %d after a discarded batch", ai)
	}
	if !b.Empty() || b.Len() != 0 {
		t.Fatal("closed batch not empty")
	}
}

// TestBatchUseAfterCommit checks that a committed or closed Batch never
// touches its Pebble batch again: Pebble recycles closed batches through a
// pool, so a stale Close, Commit or view would act on another Batch.
func TestBatchUseAfterCommit(t *testing.T) {
	s := newMemStore(t)
	for i := range 50 {
		b1 := s.NewBatch()
		v1, _ := b1.Tenant(1)
		mustSet(t, v1, "a", "1")
		if err := b1.Commit(0, false); err != nil {
			t.Fatal(err)
		}
		// b2 is likely to get b1's recycled Pebble batch.
		b2 := s.NewBatch()
		v2, _ := b2.Tenant(2)
		key := fmt.Sprintf("b%02d", i)
		mustSet(t, v2, key, "2")

		// None of these may reach b2.
		b1.Close()
		if err := b1.Commit(0, false); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Commit = %v, want ErrClosed", err)
		}
		if err := v1.Set([]byte("stale"), []byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Set through a committed batch's view = %v, want ErrClosed", err)
		}
		if err := v1.Delete([]byte("a")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Delete through a committed batch's view = %v", err)
		}
		if err := v1.DeleteRange(nil, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("DeleteRange through a committed batch's view = %v", err)
		}
		if _, err := v1.Get([]byte("a")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Get through a committed batch's view = %v", err)
		}
		if _, _, err := v1.Scan(nil, nil, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Scan through a committed batch's view = %v", err)
		}
		if err := b1.System().Set(keyspace.MetaKey("stale"), nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("system Set through a committed batch = %v", err)
		}

		if got := mustGet(t, v2, key); got != "2" {
			t.Fatalf("b2 lost its write: %q", got)
		}
		if err := b2.Commit(uint64(i+1), false); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, mustTenant(t, s, 2), key); got != "2" {
			t.Fatalf("b2's write missing after commit: %q", got)
		}
		wantNotFound(t, mustTenant(t, s, 1), "stale")
	}
}

func TestSnapshotPointInTime(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 1)
	mustSet(t, v, "a", "old")
	mustSet(t, v, "b", "old")
	if err := s.liveSystem().Set(keyspace.MetaKey("m"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := s.NewBatch().Commit(10, true); err != nil {
		t.Fatal(err)
	}
	sn := s.NewSnapshot()
	defer sn.Close()

	mustSet(t, v, "a", "new")
	if err := v.Delete([]byte("b")); err != nil {
		t.Fatal(err)
	}
	mustSet(t, v, "c", "new")
	if err := s.liveSystem().Set(keyspace.MetaKey("m"), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := s.NewBatch().Commit(11, true); err != nil {
		t.Fatal(err)
	}

	sv, err := sn.Tenant(1)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(dump(t, sv)); got != "[a=old b=old]" {
		t.Fatalf("snapshot view = %s", got)
	}
	if got, _ := sn.System().Get(keyspace.MetaKey("m")); string(got) != "old" {
		t.Fatalf("snapshot system value = %q", got)
	}
	if ai, err := sn.AppliedIndex(); err != nil || ai != 10 {
		t.Fatalf("snapshot AppliedIndex = %d, %v", ai, err)
	}
	if ai, _ := s.AppliedIndex(); ai != 11 {
		t.Fatalf("live AppliedIndex = %d", ai)
	}
	// Read-only.
	checks := map[string]error{
		"Set":         sv.Set([]byte("x"), []byte("y")),
		"Delete":      sv.Delete([]byte("a")),
		"DeleteRange": sv.DeleteRange(nil, nil),
		"Clear":       sv.Clear(),
		"System.Set":  sn.System().Set(keyspace.MetaKey("m"), nil),
		"System.Del":  sn.System().Delete(keyspace.MetaKey("m")),
		"System.DelR": sn.System().DeleteRange(keyspace.SystemRecordSpan()),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("snapshot %s = %v, want ErrReadOnly", name, err)
		}
	}
	if got := fmt.Sprint(dump(t, sv)); got != "[a=old b=old]" {
		t.Fatalf("snapshot view after refused writes = %s", got)
	}
	if got := fmt.Sprint(dump(t, v)); got != "[a=new c=new]" {
		t.Fatalf("live view = %s", got)
	}
	// A snapshot of an empty store has no applied index.
	sn2 := newMemStore(t).NewSnapshot()
	defer sn2.Close()
	if ai, err := sn2.AppliedIndex(); err != nil || ai != 0 {
		t.Fatalf("empty snapshot AppliedIndex = %d, %v", ai, err)
	}
}

// populateNeighbours writes keys that sit on and around the edges of the
// spans of id-1, id and id+1 (where valid), and some system keys.
func populateNeighbours(tb testing.TB, s *Store, id keyspace.TenantID) []keyspace.TenantID {
	tb.Helper()
	var ids []keyspace.TenantID
	for _, n := range []keyspace.TenantID{id - 1, id, id + 1} {
		if !n.Valid() {
			continue
		}
		ids = append(ids, n)
		v := mustTenant(tb, s, n)
		for _, k := range [][]byte{{0}, {0xFF}, bytes.Repeat([]byte{0xFF}, keyspace.MaxKeySize), []byte("mid"), bytes.Repeat([]byte{0}, 8)} {
			if err := v.Set(k, []byte(fmt.Sprint(n))); err != nil {
				tb.Fatal(err)
			}
		}
	}
	sys := s.liveSystem()
	for _, k := range []keyspace.SystemKey{
		keyspace.TenantRecordKey(id), keyspace.TenantUsageKey(id), keyspace.NextIDKey(),
		keyspace.TenantNameKey("acme"), keyspace.MetaKey("x"),
	} {
		if err := sys.Set(k, []byte("sys")); err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}

func TestClearTenant(t *testing.T) {
	for _, id := range []keyspace.TenantID{1, 2, 1 << 32, keyspace.MaxID - 1, keyspace.MaxID} {
		for _, how := range []string{"Clear", "Batch.Clear", "DeleteRange(nil, nil)"} {
			t.Run(fmt.Sprintf("%d/%s", id, how), func(t *testing.T) {
				s := newMemStore(t)
				ids := populateNeighbours(t, s, id)
				before := map[keyspace.TenantID][]string{}
				for _, n := range ids {
					before[n] = dump(t, mustTenant(t, s, n))
					if len(before[n]) != 5 {
						t.Fatalf("tenant %d: %v", n, before[n])
					}
				}
				sysBefore := systemDump(t, s.System())
				var err error
				switch how {
				case "Clear":
					err = mustTenant(t, s, id).Clear()
				case "Batch.Clear":
					b := s.NewBatch()
					bv, _ := b.Tenant(id)
					if err := bv.Clear(); err != nil {
						t.Fatal(err)
					}
					err = b.Commit(0, true)
				case "DeleteRange(nil, nil)":
					err = mustTenant(t, s, id).DeleteRange(nil, nil)
				}
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				for _, n := range ids {
					got := dump(t, mustTenant(t, s, n))
					if n == id && len(got) != 0 {
						t.Fatalf("tenant %d still holds %v", id, got)
					}
					if n != id && !equalStrings(got, before[n]) {
						t.Fatalf("purging %d changed tenant %d: %v -> %v", id, n, before[n], got)
					}
				}
				if got := systemDump(t, s.System()); !equalStrings(got, sysBefore) {
					t.Fatalf("purging %d changed the system keyspace: %v -> %v", id, sysBefore, got)
				}
			})
		}
	}
}

func TestNewTenantNeverSeesOldData(t *testing.T) {
	s := newMemStore(t)
	old := keyspace.TenantID(5)
	v := mustTenant(t, s, old)
	fill(t, v, 20)
	// IDs are never reused: a re-created tenant gets the next ID, whose span
	// is disjoint from the old one, purged or not.
	next, err := old.Next()
	if err != nil {
		t.Fatal(err)
	}
	if d := dump(t, mustTenant(t, s, next)); len(d) != 0 {
		t.Fatalf("new tenant %d sees %v", next, d)
	}
	// Purged as the state machine deletes a tenant: a Clear in a batch.
	b := s.NewBatch()
	bv, err := b.Tenant(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := bv.Clear(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(0, true); err != nil {
		t.Fatal(err)
	}
	nv := mustTenant(t, s, next)
	if d := dump(t, nv); len(d) != 0 {
		t.Fatalf("new tenant %d sees %v after purge", next, d)
	}
	for _, k := range []string{"k00", "k19"} {
		wantNotFound(t, nv, k)
		wantNotFound(t, mustTenant(t, s, old), k)
	}
	// Writes to the new tenant do not resurrect the old one.
	mustSet(t, nv, "k00", "fresh")
	if d := dump(t, mustTenant(t, s, old)); len(d) != 0 {
		t.Fatalf("old tenant sees %v", d)
	}
}

func TestEstimateTenantDiskUsage(t *testing.T) {
	s := newMemStore(t)
	b := s.NewBatch()
	bv, _ := b.Tenant(3)
	val := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB, compresses well but not to nothing
	for i := range 2000 {
		val[0] = byte(i)
		val[1] = byte(i >> 8)
		if err := bv.Set([]byte(fmt.Sprintf("key-%05d", i)), val); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(1, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	u3, err := s.EstimateTenantDiskUsage(3)
	if err != nil {
		t.Fatal(err)
	}
	if u3 == 0 {
		t.Fatalf("usage of tenant 3 = 0 after flushing 2 MB")
	}
	for _, id := range []keyspace.TenantID{1, 4, keyspace.MaxID} {
		u, err := s.EstimateTenantDiskUsage(id)
		if err != nil {
			t.Fatal(err)
		}
		if u >= u3 {
			t.Fatalf("usage of empty tenant %d = %d, tenant 3 = %d", id, u, u3)
		}
	}
	if s.Metrics() == "" {
		t.Fatal("empty metrics")
	}
}

func TestChecksum(t *testing.T) {
	build := func(order []int, viaBatch bool, applied uint64) *Store {
		s := newMemStore(t)
		if viaBatch {
			b := s.NewBatch()
			for _, i := range order {
				v, _ := b.Tenant(keyspace.TenantID(i%3 + 1))
				mustSet(t, v, fmt.Sprint("k", i), fmt.Sprint("v", i))
			}
			if err := b.System().Set(keyspace.MetaKey("m"), []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(applied, false); err != nil {
				t.Fatal(err)
			}
			return s
		}
		for _, i := range order {
			mustSet(t, mustTenant(t, s, keyspace.TenantID(i%3+1)), fmt.Sprint("k", i), fmt.Sprint("v", i))
		}
		if err := s.liveSystem().Set(keyspace.MetaKey("m"), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if applied != 0 {
			if err := s.NewBatch().Commit(applied, false); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	sum := func(s *Store) uint64 {
		c, err := s.Checksum()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := build([]int{0, 1, 2, 3, 4, 5}, false, 0)
	b := build([]int{5, 4, 3, 2, 1, 0}, true, 99) // other order, other path, other applied index
	if sum(a) != sum(b) {
		t.Fatalf("equal content, different checksums")
	}
	sn := a.NewSnapshot()
	snSum, err := sn.Checksum()
	sn.Close()
	if err != nil || snSum != sum(a) {
		t.Fatalf("snapshot checksum %x, %v; store %x", snSum, err, sum(a))
	}
	empty1, empty2 := newMemStore(t), newMemStore(t)
	if sum(empty1) != sum(empty2) || sum(empty1) == sum(a) {
		t.Fatalf("empty stores: %x %x, full %x", sum(empty1), sum(empty2), sum(a))
	}
	base := sum(a)
	changes := []struct {
		name string
		do   func(s *Store) error
	}{
		{"value", func(s *Store) error { return mustTenant(t, s, 1).Set([]byte("k0"), []byte("v0!")) }},
		{"empty value", func(s *Store) error { return mustTenant(t, s, 1).Set([]byte("k0"), nil) }},
		{"extra key", func(s *Store) error { return mustTenant(t, s, 1).Set([]byte("k9"), []byte("v9")) }},
		{"deleted key", func(s *Store) error { return mustTenant(t, s, 1).Delete([]byte("k0")) }},
		{"key moved to another tenant", func(s *Store) error {
			if err := mustTenant(t, s, 1).Delete([]byte("k0")); err != nil {
				return err
			}
			return mustTenant(t, s, 2).Set([]byte("k0"), []byte("v0"))
		}},
		{"system key", func(s *Store) error { return s.liveSystem().Set(keyspace.MetaKey("m"), []byte("y")) }},
	}
	for _, c := range changes {
		s := build([]int{0, 1, 2, 3, 4, 5}, false, 0)
		if err := c.do(s); err != nil {
			t.Fatal(err)
		}
		if sum(s) == base {
			t.Errorf("checksum unchanged by a changed %s", c.name)
		}
	}
	// Key/value boundaries are part of the digest: "ab"="c" differs from "a"="bc".
	x, y := newMemStore(t), newMemStore(t)
	mustSet(t, mustTenant(t, x, 1), "ab", "c")
	mustSet(t, mustTenant(t, y, 1), "a", "bc")
	if sum(x) == sum(y) {
		t.Fatal("checksum ignores key/value boundaries")
	}
}

func TestReopenOnDisk(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, mustTenant(t, s, 1), "live", "synced")
	b := s.NewBatch()
	bv, _ := b.Tenant(keyspace.MaxID)
	mustSet(t, bv, "batched", "v")
	if err := b.System().Set(keyspace.NextIDKey(), keyspace.EncodeUint64(7)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(17, true); err != nil {
		t.Fatal(err)
	}
	// A write committed without sync is made durable by Sync.
	b = s.NewBatch()
	bv, _ = b.Tenant(2)
	mustSet(t, bv, "nosync", "v")
	if err := b.Commit(18, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mustGet(t, mustTenant(t, s, 1), "live"); got != "synced" {
		t.Fatalf("live = %q", got)
	}
	if got := mustGet(t, mustTenant(t, s, keyspace.MaxID), "batched"); got != "v" {
		t.Fatalf("batched = %q", got)
	}
	if got := mustGet(t, mustTenant(t, s, 2), "nosync"); got != "v" {
		t.Fatalf("nosync = %q", got)
	}
	if v, err := s.System().Get(keyspace.NextIDKey()); err != nil || !bytes.Equal(v, keyspace.EncodeUint64(7)) {
		t.Fatalf("next id = %x, %v", v, err)
	}
	if ai, err := s.AppliedIndex(); err != nil || ai != 18 {
		t.Fatalf("AppliedIndex = %d, %v", ai, err)
	}
	if got, err := s.Checksum(); err != nil || got != sum {
		t.Fatalf("checksum after reopen %x, %v; want %x", got, err, sum)
	}
}

func TestOptionsValidate(t *testing.T) {
	var nilOpts *Options
	if err := nilOpts.Validate(); err != nil {
		t.Fatalf("nil options: %v", err)
	}
	if err := (&Options{CacheSize: -1}).Validate(); err == nil {
		t.Fatal("negative cache size accepted")
	}
	if _, err := Open(t.TempDir(), &Options{CacheSize: -1}); err == nil {
		t.Fatal("Open accepted a negative cache size")
	}
}

func TestSystemView(t *testing.T) {
	s := newMemStore(t)
	sys := s.liveSystem()
	k := keyspace.TenantRecordKey(3)
	if _, err := sys.Get(k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing system key = %v", err)
	}
	if err := sys.Set(k, []byte("rec")); err != nil {
		t.Fatal(err)
	}
	if got, err := sys.Get(k); err != nil || string(got) != "rec" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	for i := range 5 {
		if err := sys.Set(keyspace.TokenKey(fmt.Sprint(i)), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ts, te := keyspace.TokenSpan()
	var seen []string
	if err := sys.Scan(ts, te, func(k, v []byte) bool {
		seen = append(seen, string(k[2:]))
		return len(seen) < 3
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[0 1 2]" {
		t.Fatalf("Scan stopped at %v", seen)
	}
	if err := sys.DeleteRange(keyspace.TokenKey("1"), keyspace.TokenKey("3")); err != nil {
		t.Fatal(err)
	}
	seen = nil
	if err := sys.Scan(ts, te, func(k, v []byte) bool { seen = append(seen, string(k[2:])); return true }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[0 3 4]" {
		t.Fatalf("after DeleteRange: %v", seen)
	}
	if err := sys.Delete(k); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Get(k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	if err := sys.DeleteRange(te, ts); !errors.Is(err, keyspace.ErrInvalidRange) {
		t.Fatalf("DeleteRange(end, start) = %v", err)
	}

	// The zero SystemKey, the only one a caller can make outside
	// keyspace, is refused everywhere.
	var bad keyspace.SystemKey
	if err := sys.Set(bad, []byte("x")); !errors.Is(err, ErrSystemKey) {
		t.Errorf("Set(zero) = %v", err)
	}
	if _, err := sys.Get(bad); !errors.Is(err, ErrSystemKey) {
		t.Errorf("Get(zero) = %v", err)
	}
	if err := sys.Delete(bad); !errors.Is(err, ErrSystemKey) {
		t.Errorf("Delete(zero) = %v", err)
	}
	if err := sys.DeleteRange(bad, te); !errors.Is(err, ErrSystemKey) {
		t.Errorf("DeleteRange(zero, ...) = %v", err)
	}
	if err := sys.Scan(ts, bad, func(k, v []byte) bool { return true }); !errors.Is(err, ErrSystemKey) {
		t.Errorf("Scan(..., zero) = %v", err)
	}
	// keyspace makes no other bad key, so the checks behind those methods
	// are tested on raw bytes. Keys outside the system keyspace are
	// refused as bounds and as records.
	for _, bad := range [][]byte{nil, {}, {0}, {0xFE, 'a'}, keyspace.TenantKey(1, []byte("k"))} {
		if err := checkSystemKey(bad); !errors.Is(err, ErrSystemKey) {
			t.Errorf("checkSystemKey(%x) = %v", bad, err)
		}
		if err := checkSystemRecordKey(bad); !errors.Is(err, ErrSystemKey) {
			t.Errorf("checkSystemRecordKey(%x) = %v", bad, err)
		}
	}
	// Keys that start with 0xFF but cannot hold a record: 0xFF and 0xFF 0x00..
	// sort inside the span of tenant MaxID, 0xFF 0xFF.. beyond what
	// snapshots carry. Writing them is refused.
	for _, bad := range [][]byte{{0xFF}, {0xFF, 0}, {0xFF, 0, 0, 0, 0, 0, 0}, {0xFF, 0xFF}, {0xFF, 0xFF, 'x'}} {
		if err := checkSystemRecordKey(bad); !errors.Is(err, ErrSystemKey) {
			t.Errorf("checkSystemRecordKey(%x) = %v, want ErrSystemKey", bad, err)
		}
	}
	// A tenant view of MaxID, whose span ends where the system keyspace
	// begins, neither sees nor clears system keys.
	mv := mustTenant(t, s, keyspace.MaxID)
	mustSet(t, mv, "\xff\xff", "tenant")
	before := systemDump(t, sys)
	if d := dump(t, mv); fmt.Sprint(d) != "[\xff\xff=tenant]" {
		t.Fatalf("tenant MaxID sees %q", d)
	}
	if err := mv.Clear(); err != nil {
		t.Fatal(err)
	}
	if after := systemDump(t, sys); !equalStrings(before, after) {
		t.Fatalf("Clear of MaxID changed the system keyspace: %v -> %v", before, after)
	}
}

// TestIteratorSeekExact checks SeekExact against SeekGE: it finds a key the
// tenant holds, reports false for one it does not hold (where SeekGE would
// land on the next key), never reaches the next tenant's keys, and leaves
// SeekGE and Next working afterwards, with the data in the memtable and
// then in a flushed table (where the bloom filters answer).
func TestIteratorSeekExact(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 3)
	next := mustTenant(t, s, 4)
	fill(t, v, 3) // k00 k01 k02
	mustSet(t, next, "k01a", "other tenant")
	mustSet(t, next, "zz", "other tenant")
	for _, flushed := range []bool{false, true} {
		if flushed {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		it, err := v.NewIterator(nil, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"k02", "k00", "k01"} { // out of order on purpose
			if !it.SeekExact([]byte(k)) || string(it.Key()) != k || string(it.Value()) != "v"+k[1:] {
				t.Fatalf("flushed=%v: SeekExact(%q) did not land on it (key %q)", flushed, k, it.Key())
			}
		}
		for _, k := range []string{"k01a", "zz", "", "k"} {
			if it.SeekExact([]byte(k)) {
				t.Fatalf("flushed=%v: SeekExact(%q) landed on %q", flushed, k, it.Key())
			}
		}
		if err := it.Err(); err != nil {
			t.Fatalf("flushed=%v: %v", flushed, err)
		}
		// SeekGE leaves prefix mode: Next walks on to the end of the tenant.
		var got []string
		for ok := it.SeekGE([]byte("k00a")); ok; ok = it.Next() {
			got = append(got, string(it.Key()))
		}
		if fmt.Sprint(got) != "[k01 k02]" || it.Err() != nil {
			t.Fatalf("flushed=%v: SeekGE after SeekExact walked %v (err %v)", flushed, got, it.Err())
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := v.NewIterator(nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rev.Close()
	if rev.SeekExact([]byte("k00")) || rev.Err() == nil {
		t.Fatal("SeekExact on a reverse iterator did not fail")
	}
}
