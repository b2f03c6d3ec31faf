package keyspace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func FuzzDecodeTenantKey(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 'k', 'e', 'y'})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 'k'})
	f.Add([]byte{0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0xFF, 0, 0, 0, 0, 0, 0, 0})
	f.Add(AppliedIndexKey().Bytes())
	f.Add(TenantRecordKey(3).Bytes())
	f.Fuzz(func(t *testing.T, phys []byte) {
		orig := bytes.Clone(phys)
		id, uk, err := DecodeTenantKey(phys)
		if !bytes.Equal(phys, orig) {
			t.Fatalf("DecodeTenantKey modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrCorruptKey) {
				t.Fatalf("error %v does not wrap ErrCorruptKey", err)
			}
			if len(phys) >= PrefixLen && TenantID(binary.BigEndian.Uint64(phys)).Valid() {
				t.Fatalf("refused a well-formed key %x: %v", phys, err)
			}
			return
		}
		if !id.Valid() || IsSystemKey(phys) {
			t.Fatalf("accepted %x as tenant %d", phys, id)
		}
		if !TenantSpan(id).Contains(phys) {
			t.Fatalf("%x decoded as tenant %d but lies outside its span", phys, id)
		}
		if !bytes.Equal(TenantKey(id, uk), phys) {
			t.Fatalf("re-encoding %d/%x gives %x, want %x", id, uk, TenantKey(id, uk), phys)
		}
		uk2, ok := UserKeyIn(id, phys)
		if !ok || !bytes.Equal(uk2, uk) {
			t.Fatalf("UserKeyIn disagrees: %x %v", uk2, ok)
		}
		for _, other := range []TenantID{id - 1, id + 1} {
			if _, ok := UserKeyIn(other, phys); ok {
				t.Fatalf("UserKeyIn(%d) accepted a key of tenant %d", other, id)
			}
			if other.Valid() && TenantSpan(other).Contains(phys) {
				t.Fatalf("key of tenant %d inside span of %d", id, other)
			}
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"", "a", "acme", "-a", "a-", "a--b", "Acme", "a_b", "a.b", "acmé",
		"0123456789012345678901234567890123456789012345678901234567890123"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		want := len(name) >= 1 && len(name) <= MaxNameLen && name[0] != '-' && name[len(name)-1] != '-'
		for _, r := range []byte(name) {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				want = false
			}
		}
		if want && err != nil {
			t.Fatalf("ValidateName(%q) = %v, want nil", name, err)
		}
		if !want && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("ValidateName(%q) = %v, want ErrInvalidName", name, err)
		}
	})
}

func FuzzDecodeTenant(f *testing.F) {
	good := []Tenant{
		{ID: 1, Name: "a", State: StateActive},
		{ID: MaxID, Name: "acme-corp", State: StateReadOnly, Limits: Limits{MaxBytes: 10, OpsPerSec: 5},
			Labels: map[string]string{"k": "v"}, CreatedAt: time.Unix(1_700_000_000, 5).UTC()},
	}
	for _, rec := range good {
		b, err := EncodeTenant(&rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}) // map claiming 2^32-1 entries
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // array claiming 2^32-1 entries
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeTenant(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("error %v does not wrap ErrInvalidRecord", err)
			}
			return
		}
		if err := rec.Validate(); err != nil {
			t.Fatalf("DecodeTenant returned an invalid record %+v: %v", rec, err)
		}
		// What decodes re-encodes, and decodes to the same record.
		b2, err := EncodeTenant(rec)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", rec, err)
		}
		rec2, err := DecodeTenant(b2)
		if err != nil {
			t.Fatalf("decode re-encoded record: %v", err)
		}
		if rec2.ID != rec.ID || rec2.Name != rec.Name || rec2.State != rec.State || rec2.Limits != rec.Limits ||
			!rec2.CreatedAt.Equal(rec.CreatedAt) || len(rec2.Labels) != len(rec.Labels) {
			t.Fatalf("round trip changed the record: %+v -> %+v", rec, rec2)
		}
	})
}
