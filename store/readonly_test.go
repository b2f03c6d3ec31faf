package store

import (
	"errors"
	"reflect"
	"testing"

	"github.com/tenantkv/tenantkv/keyspace"
)

// writeMethods are the names of every method in this package that changes
// the database or hands out something that can.
var writeMethods = map[string]bool{
	"Set": true, "SetVersioned": true, "Delete": true, "DeleteRange": true, "Clear": true,
	"Commit": true, "NewBatch": true, "Restore": true, "Flush": true, "Sync": true,
	"PurgeTenant": true, "System": true, "TenantUnindexed": true,
}

// TestReadOnlyReachesNoWrite walks every method of ReadOnly, and of every
// type those methods return, and fails on a write method or on a value of a
// type that has one (a *Store, *Batch, *TenantView, *Snapshot...).
func TestReadOnlyReachesNoWrite(t *testing.T) {
	writable := []reflect.Type{reflect.TypeFor[*Store](), reflect.TypeFor[*Batch](),
		reflect.TypeFor[*TenantView](), reflect.TypeFor[*SystemView](), reflect.TypeFor[*Snapshot]()}
	for _, w := range writable {
		if !hasWriteMethod(w) {
			t.Fatalf("%v has no write method: the walk below would miss it", w)
		}
	}
	seen := map[reflect.Type]bool{}
	pkg := reflect.TypeFor[Store]().PkgPath()
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array {
			typ = typ.Elem()
		}
		named := typ
		if typ.Kind() == reflect.Pointer {
			named = typ.Elem()
		}
		if seen[typ] || named.PkgPath() != pkg {
			return // a type of another package (error, []byte...) or seen
		}
		seen[typ] = true
		if hasWriteMethod(typ) {
			t.Errorf("%s: %v has a write method", path, typ)
		}
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			for j := range m.Type.NumOut() {
				walk(m.Type.Out(j), path+"."+m.Name)
			}
		}
	}
	walk(reflect.TypeFor[*ReadOnly](), "ReadOnly")
	for _, want := range []reflect.Type{reflect.TypeFor[*TenantReader](), reflect.TypeFor[*SnapshotReader](), reflect.TypeFor[*Iterator]()} {
		if !seen[want] {
			t.Errorf("the walk never reached %v", want)
		}
	}
}

func hasWriteMethod(typ reflect.Type) bool {
	for i := range typ.NumMethod() {
		if writeMethods[typ.Method(i).Name] {
			return true
		}
	}
	return false
}

// TestReadOnlyReads checks that the readers see what batches committed, and
// that the live views refuse writes.
func TestReadOnlyReads(t *testing.T) {
	s := newMemStore(t)
	b := s.NewBatch()
	bv, err := b.Tenant(7)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := bv.SetVersioned([]byte(k), []byte("v-"+k), 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(5, true); err != nil {
		t.Fatal(err)
	}
	ro := s.ReadOnly()
	sr := ro.NewSnapshot()
	defer sr.Close()

	// A later batch is seen live, not by the snapshot taken before it.
	b = s.NewBatch()
	bv, _ = b.Tenant(7)
	if err := bv.Delete([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(6, true); err != nil {
		t.Fatal(err)
	}

	live, err := ro.Tenant(7)
	if err != nil {
		t.Fatal(err)
	}
	if live.ID() != 7 {
		t.Fatalf("ID = %d", live.ID())
	}
	if _, err := live.Get([]byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("live Get(a) after delete = %v", err)
	}
	if v, ver, err := live.GetVersioned([]byte("b")); err != nil || string(v) != "v-b" || ver != 3 {
		t.Fatalf("live GetVersioned(b) = %q, %d, %v", v, ver, err)
	}
	if kvs, more, err := live.Scan(nil, nil, &ScanOptions{Limit: 1}); err != nil || !more || len(kvs) != 1 || string(kvs[0].Key) != "b" {
		t.Fatalf("live Scan = %v, %v, %v", kvs, more, err)
	}
	if ai, err := ro.AppliedIndex(); err != nil || ai != 6 {
		t.Fatalf("live AppliedIndex = %d, %v", ai, err)
	}

	at, err := sr.Tenant(7)
	if err != nil {
		t.Fatal(err)
	}
	it, err := at.NewIterator(nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for it.Next() {
		got = append(got, string(it.Key())+"="+string(it.Value()))
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"c=v-c", "b=v-b", "a=v-a"}; !equalStrings(got, want) {
		t.Fatalf("snapshot reverse scan = %v, want %v", got, want)
	}
	if ai, err := sr.AppliedIndex(); err != nil || ai != 5 {
		t.Fatalf("snapshot AppliedIndex = %d, %v", ai, err)
	}
	if _, err := ro.EstimateTenantDiskUsage(keyspace.MaxID + 1); !errors.Is(err, keyspace.ErrInvalidID) {
		t.Fatalf("EstimateTenantDiskUsage of an invalid ID = %v", err)
	}

	// The live system view only reads.
	if err := s.System().Set(keyspace.MetaKey("m"), []byte("x")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("live System().Set = %v, want ErrReadOnly", err)
	}
	if err := s.System().Delete(keyspace.AppliedIndexKey()); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("live System().Delete = %v, want ErrReadOnly", err)
	}
	if _, err := s.System().Get(keyspace.MetaKey("m")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused live write left %v", err)
	}
}
