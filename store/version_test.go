package store

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, ver := range []uint64{0, 1, 127, 128, 1 << 40, math.MaxUint64} {
		for _, val := range [][]byte{nil, {}, []byte("v"), bytes.Repeat([]byte{0xFF}, 300)} {
			phys := appendEnvelope(nil, ver, val)
			got, gotVer, err := decodeEnvelope(phys)
			if err != nil || gotVer != ver || !bytes.Equal(got, val) {
				t.Fatalf("decode(encode(%d, %q)) = %q, %d, %v", ver, val, got, gotVer, err)
			}
		}
	}
	for _, bad := range [][]byte{nil, {}, {0x00}, {0x02, 0x01}, {valueFormatV1}, {valueFormatV1, 0x80}} {
		if _, _, err := decodeEnvelope(bad); !errors.Is(err, ErrCorruptValue) {
			t.Errorf("decodeEnvelope(%x) = %v, want ErrCorruptValue", bad, err)
		}
	}
}

func TestVersionedSetGet(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 7)
	if err := v.SetVersioned([]byte("a"), []byte("1"), 42); err != nil {
		t.Fatal(err)
	}
	mustSet(t, v, "b", "2") // Set means version 0
	if err := v.SetVersioned([]byte("c"), nil, 1<<33); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		k   string
		v   string
		ver uint64
	}{{"a", "1", 42}, {"b", "2", 0}, {"c", "", 1 << 33}} {
		val, ver, err := v.GetVersioned([]byte(c.k))
		if err != nil || string(val) != c.v || ver != c.ver {
			t.Errorf("GetVersioned(%q) = %q, %d, %v; want %q, %d", c.k, val, ver, err, c.v, c.ver)
		}
		if got := mustGet(t, v, c.k); got != c.v {
			t.Errorf("Get(%q) = %q, want %q", c.k, got, c.v)
		}
	}
	if _, _, err := v.GetVersioned([]byte("zz")); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVersioned(missing) = %v", err)
	}
	if _, _, err := v.GetVersioned(nil); !errors.Is(err, keyspace.ErrInvalidKey) {
		t.Errorf("GetVersioned(nil) = %v", err)
	}
	if err := v.SetVersioned([]byte("k"), make([]byte, keyspace.MaxValueSize+1), 1); !errors.Is(err, keyspace.ErrValueTooLarge) {
		t.Errorf("SetVersioned(huge) = %v", err)
	}

	// Iterators report versions; Scan and ExportTenant return user values.
	it, err := v.NewIterator(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var vers []uint64
	var vals []string
	for it.Next() {
		vers = append(vers, it.Version())
		vals = append(vals, string(it.Value()))
	}
	if err := it.Close(); err != nil || it.Err() != nil {
		t.Fatal(err, it.Err())
	}
	if want := []uint64{42, 0, 1 << 33}; !equalUint64s(vers, want) {
		t.Errorf("iterator versions %v, want %v", vers, want)
	}
	if want := []string{"1", "2", ""}; !equalStrings(vals, want) {
		t.Errorf("iterator values %q, want %q", vals, want)
	}
	if got, want := dump(t, v), []string{"a=1", "b=2", "c="}; !equalStrings(got, want) {
		t.Errorf("scan %q, want %q", got, want)
	}
	var buf bytes.Buffer
	if _, err := v.ExportTenant(&buf); err != nil {
		t.Fatal(err)
	}
	sr, err := NewStreamReader(&buf, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for {
		k, val, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		exported = append(exported, string(k)+"="+string(val))
	}
	if want := []string{"a=1", "b=2", "c="}; !equalStrings(exported, want) {
		t.Errorf("export %q, want %q", exported, want)
	}
}

func TestVersionedThroughBatchAndSnapshot(t *testing.T) {
	s := newMemStore(t)
	b := s.NewBatch()
	bv, err := b.Tenant(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := bv.SetVersioned([]byte("k"), []byte("v"), 9); err != nil {
		t.Fatal(err)
	}
	// The batch reads its own versioned write.
	if val, ver, err := bv.GetVersioned([]byte("k")); err != nil || string(val) != "v" || ver != 9 {
		t.Fatalf("batch GetVersioned = %q, %d, %v", val, ver, err)
	}
	if err := b.Commit(1, false); err != nil {
		t.Fatal(err)
	}
	sn := s.NewSnapshot()
	defer sn.Close()
	sv, err := sn.Tenant(3)
	if err != nil {
		t.Fatal(err)
	}
	if val, ver, err := sv.GetVersioned([]byte("k")); err != nil || string(val) != "v" || ver != 9 {
		t.Fatalf("snapshot GetVersioned = %q, %d, %v", val, ver, err)
	}
	if err := sv.SetVersioned([]byte("k"), nil, 1); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("snapshot SetVersioned = %v", err)
	}
}

// TestCorruptEnvelopeIsReported writes a value without an envelope under a
// tenant key, as a bug or a bad disk could, and checks every read path
// refuses it instead of returning garbage.
func TestCorruptEnvelopeIsReported(t *testing.T) {
	s := newMemStore(t)
	v := mustTenant(t, s, 5)
	mustSet(t, v, "a", "ok")
	if err := s.db.Set(keyspace.TenantKey(5, []byte("b")), []byte("raw"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get([]byte("b")); !errors.Is(err, ErrCorruptValue) {
		t.Errorf("Get = %v", err)
	}
	if _, _, err := v.GetVersioned([]byte("b")); !errors.Is(err, ErrCorruptValue) {
		t.Errorf("GetVersioned = %v", err)
	}
	if _, _, err := v.Scan(nil, nil, nil); !errors.Is(err, ErrCorruptValue) {
		t.Errorf("Scan = %v", err)
	}
	// A keys-only scan does not look at values.
	if kvs, _, err := v.Scan(nil, nil, &ScanOptions{KeysOnly: true}); err != nil || len(kvs) != 2 {
		t.Errorf("keys-only Scan = %d pairs, %v", len(kvs), err)
	}
	if _, err := v.ExportTenant(io.Discard); !errors.Is(err, ErrCorruptValue) {
		t.Errorf("ExportTenant = %v", err)
	}
}

func equalUint64s(a, b []uint64) bool {
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

func TestRestoreRefusesBadEnvelope(t *testing.T) {
	s := newMemStore(t)
	stream := writeStream(t, StreamStore, []record{{string(keyspace.TenantKey(1, []byte("k"))), "no envelope"}})
	if err := s.Restore(bytes.NewReader(stream)); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("Restore = %v, want ErrCorruptStream", err)
	}
	wantIncomplete(t, s, true)
}
