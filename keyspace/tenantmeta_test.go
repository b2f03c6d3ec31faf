package keyspace

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// The per-tenant metadata keys are on disk and in every snapshot and
// checksum: their bytes must never change. These are the bytes the state
// machine wrote before keyspace made them.
func TestTenantMetaKeyBytes(t *testing.T) {
	be := func(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		what string
		got  SystemKey
		want []byte
	}{
		{"usage", TenantUsageKey(7), cat([]byte{0xFF, 'u'}, be(7), []byte("usage"))},
		{"version", TenantVersionKey(7), cat([]byte{0xFF, 'u'}, be(7), []byte("ver"))},
		{"history", HistoryKey(7, 0x0102, 3), cat([]byte{0xFF, 'u'}, be(7), []byte("log/"), be(0x0102), []byte{0, 0, 0, 3})},
		{"member", MemberKey("n1"), []byte("\xffmmember/n1")},
	} {
		if !bytes.Equal(c.got.Bytes(), c.want) {
			t.Errorf("%s key = %x, want %x", c.what, c.got.Bytes(), c.want)
		}
	}
	s, e := TenantMetaSpan(7)
	if !bytes.Equal(s.Bytes(), cat([]byte{0xFF, 'u'}, be(7))) || !bytes.Equal(e.Bytes(), cat([]byte{0xFF, 'u'}, be(8))) {
		t.Errorf("TenantMetaSpan(7) = %s, %s", s, e)
	}
	s, e = MemberSpan()
	if string(s.Bytes()) != "\xffmmember/" || string(e.Bytes()) != "\xffmmember0" {
		t.Errorf("MemberSpan = %s, %s", s, e)
	}
	s, e = HistorySpan(7, 4, 9)
	if !bytes.Equal(s.Bytes(), HistoryKey(7, 5, 0).Bytes()) || !bytes.Equal(e.Bytes(), HistoryKey(7, 10, 0).Bytes()) {
		t.Errorf("HistorySpan(7, 4, 9) = %s, %s", s, e)
	}
	if s, e := HistorySpan(7, 9, 9); !bytes.Equal(s.Bytes(), e.Bytes()) {
		t.Errorf("HistorySpan(7, 9, 9) is not empty: %s, %s", s, e)
	}
}

// A tenant's history keys sort by version, then chunk; each lies in its
// tenant's metadata span and HistorySpan holds exactly the versions it
// names; and the spans of two tenants are disjoint.
func FuzzHistoryKey(f *testing.F) {
	f.Add(uint64(1), uint64(1), uint32(0), uint64(1), uint64(1), uint32(1), uint64(0), uint64(3))
	f.Add(uint64(MaxID), ^uint64(0), ^uint32(0), uint64(MaxID-1), uint64(0), uint32(0), uint64(5), ^uint64(0))
	f.Add(uint64(255), uint64(256), uint32(1<<24), uint64(256), uint64(255), uint32(7), uint64(255), uint64(256))
	f.Fuzz(func(t *testing.T, id1, v1 uint64, c1 uint32, id2, v2 uint64, c2 uint32, after, upTo uint64) {
		a, b := TenantID(id1), TenantID(id2)
		if !a.Valid() || !b.Valid() {
			return
		}
		k1, k2 := HistoryKey(a, v1, c1).Bytes(), HistoryKey(b, v2, c2).Bytes()
		if a == b {
			want := 0
			switch {
			case v1 < v2 || (v1 == v2 && c1 < c2):
				want = -1
			case v1 > v2 || (v1 == v2 && c1 > c2):
				want = 1
			}
			if got := bytes.Compare(k1, k2); got != want {
				t.Fatalf("(%d, %d) vs (%d, %d): keys compare %d, want %d", v1, c1, v2, c2, got, want)
			}
		}
		for _, c := range []struct {
			id TenantID
			k  []byte
		}{{a, k1}, {b, k2}} {
			s, e := TenantMetaSpan(c.id)
			if bytes.Compare(c.k, s.Bytes()) < 0 || bytes.Compare(c.k, e.Bytes()) >= 0 || !InTenantMeta(c.id, c.k) {
				t.Fatalf("history key %x outside the metadata span of tenant %d", c.k, c.id)
			}
			if !IsSystemKey(c.k) || TenantSpan(c.id).Contains(c.k) {
				t.Fatalf("history key %x is not a system key", c.k)
			}
		}
		if a != b {
			if InTenantMeta(a, k2) || InTenantMeta(b, k1) {
				t.Fatalf("a history key of one tenant is in the other's span (%d, %d)", a, b)
			}
			lo, hi := a, b
			if lo > hi {
				lo, hi = hi, lo
			}
			_, loEnd := TenantMetaSpan(lo)
			hiStart, _ := TenantMetaSpan(hi)
			if bytes.Compare(loEnd.Bytes(), hiStart.Bytes()) > 0 {
				t.Fatalf("metadata spans of tenants %d and %d overlap", lo, hi)
			}
		}
		hs, he := HistorySpan(a, after, upTo)
		in := bytes.Compare(k1, hs.Bytes()) >= 0 && bytes.Compare(k1, he.Bytes()) < 0
		if want := v1 > after && v1 <= upTo; in != want {
			t.Fatalf("HistorySpan(%d, %d, %d) holds version %d chunk %d: %v, want %v", a, after, upTo, v1, c1, in, want)
		}
		ms, me := TenantMetaSpan(a)
		if bytes.Compare(hs.Bytes(), ms.Bytes()) < 0 || bytes.Compare(he.Bytes(), me.Bytes()) > 0 {
			t.Fatalf("HistorySpan(%d, ...) leaves the tenant's metadata span", a)
		}
	})
}
