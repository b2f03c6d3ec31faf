package keyspace

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"z", true},
		{"0", true},
		{"acme", true},
		{"acme-corp", true},
		{"a-b-c", true},
		{"a--b", true},
		{"123", true},
		{"9-lives", true},
		{strings.Repeat("a", 63), true},
		{"a" + strings.Repeat("-", 61) + "z", true},

		{"", false},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("a", 1000), false},
		{"-", false},
		{"-acme", false},
		{"acme-", false},
		{"Acme", false},
		{"ACME", false},
		{"acme_corp", false},
		{"acme.corp", false},
		{"acme corp", false},
		{" acme", false},
		{"acme\n", false},
		{"acme\x00", false},
		{"acmé", false},
		{"日本", false},
		{"a/b", false},
		{"a:b", false},
		{"a+b", false},
		{"\xff", false},
	}
	for _, tc := range tests {
		err := ValidateName(tc.name)
		if tc.ok && err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", tc.name, err)
		}
	}
}

func TestTenantIDValidAndCheck(t *testing.T) {
	tests := []struct {
		id    TenantID
		valid bool
	}{
		{0, false},
		{1, true},
		{2, true},
		{1 << 32, true},
		{MaxID - 1, true},
		{MaxID, true},
		{MaxID + 1, false},
		{0xFF00_0000_0000_0001, false},
		{^TenantID(0), false},
	}
	for _, tc := range tests {
		if got := tc.id.Valid(); got != tc.valid {
			t.Errorf("TenantID(%#x).Valid() = %v, want %v", uint64(tc.id), got, tc.valid)
		}
		err := tc.id.Check()
		if tc.valid && err != nil {
			t.Errorf("TenantID(%#x).Check() = %v", uint64(tc.id), err)
		}
		if !tc.valid && !errors.Is(err, ErrInvalidID) {
			t.Errorf("TenantID(%#x).Check() = %v, want ErrInvalidID", uint64(tc.id), err)
		}
		if tc.valid && tc.id.Prefix()[0] == SystemByte {
			t.Errorf("valid TenantID(%#x) has a prefix starting with 0xFF", uint64(tc.id))
		}
	}
	if MaxID != 0xFEFF_FFFF_FFFF_FFFF {
		t.Fatalf("MaxID = %#x", uint64(MaxID))
	}
	if p := (MaxID + 1).Prefix(); p[0] != SystemByte {
		t.Fatalf("MaxID is not the last ID before 0xFF: next prefix %x", p)
	}
}

func TestTenantIDNext(t *testing.T) {
	tests := []struct {
		id, want TenantID
		err      error
	}{
		{0, FirstID, nil},
		{1, 2, nil},
		{41, 42, nil},
		{MaxID - 2, MaxID - 1, nil},
		{MaxID - 1, MaxID, nil},
		{MaxID, 0, ErrIDsExhausted},
		{MaxID + 1, 0, ErrIDsExhausted},
		{^TenantID(0), 0, ErrIDsExhausted},
	}
	for _, tc := range tests {
		got, err := tc.id.Next()
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("TenantID(%#x).Next() error = %v, want %v", uint64(tc.id), err, tc.err)
			continue
		}
		if got != tc.want {
			t.Errorf("TenantID(%#x).Next() = %#x, want %#x", uint64(tc.id), uint64(got), uint64(tc.want))
		}
		if err == nil && (!got.Valid() || got.Prefix()[0] == SystemByte) {
			t.Errorf("TenantID(%#x).Next() = %#x is not a valid ID", uint64(tc.id), uint64(got))
		}
	}
	// Walking the last IDs never yields a prefix starting with 0xFF.
	id := MaxID - 100
	for {
		next, err := id.Next()
		if errors.Is(err, ErrIDsExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if next <= id || next.Prefix()[0] == SystemByte {
			t.Fatalf("Next(%#x) = %#x", uint64(id), uint64(next))
		}
		id = next
	}
	if id != MaxID {
		t.Fatalf("walk stopped at %#x, want MaxID", uint64(id))
	}
}

func TestTenantIDString(t *testing.T) {
	if got := TenantID(42).String(); got != "42" {
		t.Fatalf("String() = %q", got)
	}
	if got := MaxID.String(); got != "18374686479671623679" {
		t.Fatalf("MaxID.String() = %q", got)
	}
}

func TestPrefix(t *testing.T) {
	p := TenantID(0x0102030405060708).Prefix()
	if !bytes.Equal(p[:], []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("Prefix = %x", p)
	}
}

// systemKeys returns the bytes of one of every kind of system key.
func systemKeys() [][]byte {
	s1, e1 := TenantRecordSpan()
	s2, e2 := TokenSpan()
	s3, e3 := TenantMetaSpan(1)
	s4, e4 := TenantMetaSpan(MaxID)
	s5, e5 := TenantNameSpan()
	s6, e6 := MemberSpan()
	s7, e7 := HistorySpan(1, 0, ^uint64(0))
	s8, e8 := TenantNamesAfter("acme")
	keys := []SystemKey{
		s5, e5,
		AppliedIndexKey(), NextIDKey(),
		TenantRecordKey(0), TenantRecordKey(1), TenantRecordKey(MaxID), TenantRecordKey(^TenantID(0)),
		TenantNameKey(""), TenantNameKey("acme"),
		TokenKey(""), TokenKey("tok"),
		MetaKey(""), MetaKey("restore-in-progress"), MemberKey("n1"),
		TenantUsageKey(1), TenantVersionKey(MaxID), HistoryKey(1, 0, 0), HistoryKey(MaxID, ^uint64(0), ^uint32(0)),
		s1, e1, s2, e2, s3, e3, s4, e4, s6, e6, s7, e7, s8, e8,
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = k.Bytes()
	}
	return out
}

func TestTenantSpan(t *testing.T) {
	ids := []TenantID{1, 2, 255, 256, 1 << 40, MaxID - 1, MaxID}
	for _, id := range ids {
		sp := TenantSpan(id)
		p := id.Prefix()
		if !bytes.Equal(sp.Start, p[:]) {
			t.Errorf("span(%d).Start = %x", id, sp.Start)
		}
		if bytes.Compare(sp.Start, sp.End) >= 0 {
			t.Errorf("span(%d) is empty: %x..%x", id, sp.Start, sp.End)
		}
		for _, k := range [][]byte{
			TenantKey(id, nil), TenantKey(id, []byte{0}), TenantKey(id, []byte("k")),
			TenantKey(id, bytes.Repeat([]byte{0xFF}, MaxKeySize)),
		} {
			if !sp.Contains(k) {
				t.Errorf("span(%d) does not contain its key %x", id, k)
			}
		}
		for _, k := range systemKeys() {
			if sp.Contains(k) {
				t.Errorf("span(%d) contains system key %x", id, k)
			}
		}
		if next, err := id.Next(); err == nil {
			if !bytes.Equal(sp.End, TenantSpan(next).Start) {
				t.Errorf("span(%d).End = %x, want start of the next span", id, sp.End)
			}
			if sp.Contains(TenantKey(next, nil)) {
				t.Errorf("span(%d) contains tenant %d's prefix", id, next)
			}
		}
		if id > FirstID && sp.Contains(TenantKey(id-1, bytes.Repeat([]byte{0xFF}, 20))) {
			t.Errorf("span(%d) contains a key of tenant %d", id, id-1)
		}
	}
	end := TenantSpan(MaxID).End
	if !bytes.Equal(end, []byte{0xFF, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("span(MaxID).End = %x", end)
	}
	all := AllTenantsSpan()
	for _, id := range ids {
		if !all.Contains(TenantSpan(id).Start) {
			t.Errorf("AllTenantsSpan does not contain tenant %d", id)
		}
	}
	for _, k := range systemKeys() {
		if all.Contains(k) {
			t.Errorf("AllTenantsSpan contains system key %x", k)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want []byte }{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte{0xFF}, nil},
		{[]byte{0xFF, 0xFF, 0xFF}, nil},
		{[]byte{0}, []byte{1}},
		{[]byte("a"), []byte("b")},
		{[]byte("abc"), []byte("abd")},
		{[]byte{1, 0xFF}, []byte{2}},
		{[]byte{1, 0xFE}, []byte{1, 0xFF}},
		{[]byte{0, 0xFF, 0xFF}, []byte{1}},
	}
	for _, tc := range tests {
		in := bytes.Clone(tc.in)
		got := PrefixEnd(in)
		if !bytes.Equal(got, tc.want) || (tc.want == nil) != (got == nil) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
		if !bytes.Equal(in, tc.in) {
			t.Errorf("PrefixEnd modified its argument: %x", in)
		}
		if got != nil {
			// Every extension of in sorts before the end; the end does not
			// start with in.
			for _, ext := range [][]byte{nil, {0}, {0xFF, 0xFF}} {
				k := append(bytes.Clone(tc.in), ext...)
				if bytes.Compare(k, got) >= 0 {
					t.Errorf("PrefixEnd(%x) = %x is not above %x", tc.in, got, k)
				}
			}
			if bytes.HasPrefix(got, tc.in) {
				t.Errorf("PrefixEnd(%x) = %x starts with its input", tc.in, got)
			}
		}
	}
	// The result is a new slice.
	p := []byte("abc")
	e := PrefixEnd(p)
	e[0] = 'z'
	if string(p) != "abc" {
		t.Fatalf("PrefixEnd aliases its input")
	}
	// The prefix end of a tenant's prefix is the span end with its trailing
	// zero bytes cut: no 8-byte key lies between the two.
	for _, id := range []TenantID{1, 255, MaxID - 1, MaxID} {
		p := id.Prefix()
		pe, end := PrefixEnd(p[:]), TenantSpan(id).End
		if !bytes.HasPrefix(end, pe) || len(bytes.Trim(end[len(pe):], "\x00")) != 0 {
			t.Errorf("PrefixEnd(prefix(%d)) = %x, span end %x", id, pe, end)
		}
	}
}

func TestTenantKeyRoundTrip(t *testing.T) {
	ids := []TenantID{1, 2, 0x0102030405060708, MaxID - 1, MaxID}
	keys := [][]byte{
		{}, {0}, {0xFF}, []byte("hello"),
		bytes.Repeat([]byte{0xFF}, 8),
		bytes.Repeat([]byte{0}, 8),
		bytes.Repeat([]byte("x"), MaxKeySize),
	}
	for _, id := range ids {
		for _, k := range keys {
			phys := TenantKey(id, k)
			if len(phys) != PrefixLen+len(k) {
				t.Fatalf("len(TenantKey) = %d", len(phys))
			}
			gotID, uk, err := DecodeTenantKey(phys)
			if err != nil || gotID != id || !bytes.Equal(uk, k) {
				t.Fatalf("DecodeTenantKey(TenantKey(%d, %x)) = %d, %x, %v", id, k, gotID, uk, err)
			}
			uk2, ok := UserKeyIn(id, phys)
			if !ok || !bytes.Equal(uk2, k) {
				t.Fatalf("UserKeyIn(%d, ...) = %x, %v", id, uk2, ok)
			}
			for _, other := range []TenantID{id - 1, id + 1, 0} {
				if _, ok := UserKeyIn(other, phys); ok {
					t.Fatalf("UserKeyIn(%d) accepted a key of tenant %d", other, id)
				}
			}
			if !TenantSpan(id).Contains(phys) {
				t.Fatalf("TenantKey(%d, %x) outside its span", id, k)
			}
			// AppendTenantKey appends and leaves dst's prefix alone.
			dst := AppendTenantKey([]byte("pre"), id, k)
			if !bytes.Equal(dst, append([]byte("pre"), phys...)) {
				t.Fatalf("AppendTenantKey = %x", dst)
			}
		}
	}
}

func TestDecodeTenantKeyRejects(t *testing.T) {
	bad := [][]byte{
		nil,
		{},
		{1},
		{0, 0, 0, 0, 0, 0, 1},         // 7 bytes
		{0, 0, 0, 0, 0, 0, 0, 0},      // ID 0
		{0, 0, 0, 0, 0, 0, 0, 0, 'k'}, // ID 0 with a key
		{0xFF, 0, 0, 0, 0, 0, 0, 0},   // MaxID+1
		{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 'k'},
		AppliedIndexKey().Bytes(),
		TenantRecordKey(1).Bytes(),
		TenantUsageKey(1).Bytes(),
		HistoryKey(1, 1, 0).Bytes(),
	}
	for _, k := range bad {
		if _, _, err := DecodeTenantKey(k); !errors.Is(err, ErrCorruptKey) {
			t.Errorf("DecodeTenantKey(%x) = %v, want ErrCorruptKey", k, err)
		}
	}
	for _, k := range [][]byte{nil, {}, {0, 0, 0, 0, 0, 0, 0}} {
		if _, ok := UserKeyIn(1, k); ok {
			t.Errorf("UserKeyIn(1, %x) accepted a short key", k)
		}
	}
}

func TestCheckKeyAndValue(t *testing.T) {
	keys := []struct {
		k   []byte
		err error
	}{
		{nil, ErrInvalidKey},
		{[]byte{}, ErrInvalidKey},
		{[]byte{0}, nil},
		{[]byte{0xFF}, nil},
		{make([]byte, MaxKeySize), nil},
		{make([]byte, MaxKeySize+1), ErrKeyTooLarge},
		{make([]byte, 1<<20), ErrKeyTooLarge},
	}
	for _, tc := range keys {
		err := CheckKey(tc.k)
		if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("CheckKey(%d bytes) = %v, want %v", len(tc.k), err, tc.err)
		}
	}
	values := []struct {
		v   []byte
		err error
	}{
		{nil, nil},
		{[]byte{}, nil},
		{make([]byte, MaxValueSize), nil},
		{make([]byte, MaxValueSize+1), ErrValueTooLarge},
	}
	for _, tc := range values {
		err := CheckValue(tc.v)
		if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("CheckValue(%d bytes) = %v, want %v", len(tc.v), err, tc.err)
		}
	}
	if MaxKeySize != 10_000 || MaxValueSize != 100_000 || PrefixLen != 8 {
		t.Fatalf("limits changed: %d %d %d", MaxKeySize, MaxValueSize, PrefixLen)
	}
}

func TestCheckRange(t *testing.T) {
	long := make([]byte, MaxKeySize+1)
	tooLong := make([]byte, MaxKeySize+2)
	tests := []struct {
		start, end []byte
		err        error
	}{
		{nil, nil, nil},
		{[]byte{}, []byte{}, nil},
		{[]byte("a"), nil, nil},
		{[]byte("a"), []byte{}, nil},
		{nil, []byte("a"), nil},
		{[]byte("a"), []byte("b"), nil},
		{[]byte("a"), []byte("a\x00"), nil},
		{[]byte{0xFF}, nil, nil},
		{long, nil, nil},
		{nil, long, nil},
		{[]byte("a"), []byte("a"), ErrInvalidRange},
		{[]byte("b"), []byte("a"), ErrInvalidRange},
		{[]byte("a\x00"), []byte("a"), ErrInvalidRange},
		{[]byte{0xFF}, []byte{0}, ErrInvalidRange},
		{tooLong, nil, ErrKeyTooLarge},
		{nil, tooLong, ErrKeyTooLarge},
		{[]byte("a"), tooLong, ErrKeyTooLarge},
	}
	for _, tc := range tests {
		err := CheckRange(tc.start, tc.end)
		if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("CheckRange(%.8x, %.8x) = %v, want %v", tc.start, tc.end, err, tc.err)
		}
	}
}

func TestTenantBounds(t *testing.T) {
	for _, id := range []TenantID{1, 7, MaxID} {
		sp := TenantSpan(id)
		lo, hi := TenantBounds(id, nil, nil)
		if !bytes.Equal(lo, sp.Start) || !bytes.Equal(hi, sp.End) {
			t.Errorf("TenantBounds(%d, nil, nil) = %x, %x; want the span", id, lo, hi)
		}
		lo, hi = TenantBounds(id, []byte("a"), []byte("b"))
		if !bytes.Equal(lo, TenantKey(id, []byte("a"))) || !bytes.Equal(hi, TenantKey(id, []byte("b"))) {
			t.Errorf("TenantBounds(%d, a, b) = %x, %x", id, lo, hi)
		}
		lo, hi = TenantBounds(id, bytes.Repeat([]byte{0xFF}, MaxKeySize+1), nil)
		if !sp.Contains(lo) || !bytes.Equal(hi, sp.End) {
			t.Errorf("TenantBounds(%d, ff.., nil) = %.20x, %x", id, lo, hi)
		}
	}
}

func TestSystemKeys(t *testing.T) {
	keys := systemKeys()
	for _, k := range keys {
		if len(k) < 2 || k[0] != SystemByte {
			t.Errorf("system key %x does not start with 0xFF and a kind", k)
		}
		if k[1] == 0 || k[1] == 0xFF {
			t.Errorf("system key %x has kind byte %#x", k, k[1])
		}
		if !IsSystemKey(k) {
			t.Errorf("IsSystemKey(%x) = false", k)
		}
		if !SystemSpan().Contains(k) && bytes.Compare(k, SystemSpan().Start) < 0 {
			t.Errorf("system key %x below the system span", k)
		}
		if _, _, err := DecodeTenantKey(k); err == nil && len(k) >= PrefixLen {
			t.Errorf("DecodeTenantKey accepted system key %x", k)
		}
		for _, id := range []TenantID{1, 2, MaxID - 1, MaxID} {
			if TenantSpan(id).Contains(k) {
				t.Errorf("system key %x inside span of tenant %d", k, id)
			}
			if _, ok := UserKeyIn(id, k); ok {
				t.Errorf("UserKeyIn(%d) accepted system key %x", id, k)
			}
		}
	}
	for _, k := range [][]byte{nil, {}, {0}, {0xFE}, TenantKey(MaxID, []byte{0xFF})} {
		if IsSystemKey(k) {
			t.Errorf("IsSystemKey(%x) = true", k)
		}
	}
	// Distinct constructors never collide.
	seen := map[string]bool{}
	for _, k := range []SystemKey{
		AppliedIndexKey(), NextIDKey(), TenantRecordKey(1), TenantNameKey("a"),
		TokenKey("a"), MetaKey("a"), MemberKey("a"), TenantUsageKey(1), TenantVersionKey(1), HistoryKey(1, 0, 0),
	} {
		if seen[string(k.Bytes())] {
			t.Errorf("duplicate system key %s", k)
		}
		seen[string(k.Bytes())] = true
	}
	// Record, token and per-tenant spans contain their keys and only theirs.
	rs, re := TenantRecordSpan()
	ts, te := TokenSpan()
	ms, me := TenantMetaSpan(5)
	in := func(k, s, e SystemKey) bool {
		return bytes.Compare(k.Bytes(), s.Bytes()) >= 0 && bytes.Compare(k.Bytes(), e.Bytes()) < 0
	}
	for _, id := range []TenantID{1, 5, MaxID} {
		if !in(TenantRecordKey(id), rs, re) {
			t.Errorf("TenantRecordKey(%d) outside TenantRecordSpan", id)
		}
	}
	if !in(TokenKey("x"), ts, te) || in(TenantRecordKey(1), ts, te) || in(TokenKey("x"), rs, re) {
		t.Errorf("token span mixes kinds")
	}
	if !in(TenantUsageKey(5), ms, me) || !in(TenantVersionKey(5), ms, me) || !in(HistoryKey(5, 9, 1), ms, me) ||
		in(TenantUsageKey(4), ms, me) || in(HistoryKey(6, 0, 0), ms, me) {
		t.Errorf("TenantMetaSpan(5) wrong")
	}
	mbs, mbe := MemberSpan()
	if !in(MemberKey("n1"), mbs, mbe) || !in(MemberKey(""), mbs, mbe) || in(MetaKey("member"), mbs, mbe) ||
		in(MetaKey("membes"), mbs, mbe) || in(MetaKey("restore-in-progress"), mbs, mbe) {
		t.Errorf("MemberSpan wrong")
	}
	if name, ok := TenantNameOf(TenantNameKey("acme").Bytes()); !ok || name != "acme" {
		t.Errorf("TenantNameOf(TenantNameKey(acme)) = %q, %v", name, ok)
	}
	if _, ok := TenantNameOf(TokenKey("acme").Bytes()); ok {
		t.Errorf("TenantNameOf accepted a token key")
	}
	as, ae := TenantNamesAfter("acme")
	if in(TenantNameKey("acme"), as, ae) || !in(TenantNameKey("acme0"), as, ae) || !in(TenantNameKey("acme\x00"), as, ae) ||
		!in(TenantNameKey("b"), as, ae) || in(TenantNameKey("abc"), as, ae) {
		t.Errorf("TenantNamesAfter(acme) wrong")
	}
	// Record keys sort in ID order.
	if bytes.Compare(TenantRecordKey(2).Bytes(), TenantRecordKey(256).Bytes()) >= 0 {
		t.Errorf("record keys not in ID order")
	}
}

func TestCounters(t *testing.T) {
	for _, v := range []uint64{0, 1, 1 << 63, ^uint64(0)} {
		got, err := DecodeUint64(EncodeUint64(v))
		if err != nil || got != v {
			t.Errorf("DecodeUint64(EncodeUint64(%d)) = %d, %v", v, got, err)
		}
	}
	for _, b := range [][]byte{nil, {}, {1}, make([]byte, 7), make([]byte, 9)} {
		if _, err := DecodeUint64(b); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("DecodeUint64(%x) = %v", b, err)
		}
	}
	if id, err := DecodeTenantID(EncodeUint64(7)); err != nil || id != 7 {
		t.Errorf("DecodeTenantID(7) = %d, %v", id, err)
	}
	if id, err := DecodeTenantID(EncodeUint64(uint64(MaxID))); err != nil || id != MaxID {
		t.Errorf("DecodeTenantID(MaxID) = %d, %v", id, err)
	}
	for _, v := range []uint64{0, uint64(MaxID) + 1, ^uint64(0)} {
		if _, err := DecodeTenantID(EncodeUint64(v)); !errors.Is(err, ErrInvalidID) {
			t.Errorf("DecodeTenantID(%#x) = %v, want ErrInvalidID", v, err)
		}
	}
	if _, err := DecodeTenantID([]byte{1}); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("DecodeTenantID(short) = %v", err)
	}
}

func TestTenantRecordRoundTrip(t *testing.T) {
	recs := []Tenant{
		{ID: 1, Name: "a", State: StateActive},
		{ID: MaxID, Name: strings.Repeat("z", 63), State: StateLocked},
		{
			ID: 42, Name: "acme-corp", State: StateReadOnly,
			Limits:    Limits{MaxBytes: 1 << 40, MaxKeys: 7, OpsPerSec: 1000, Burst: 2000, MaxConcurrent: 16, MaxWatches: 3},
			Labels:    map[string]string{"tier": "gold", "": "empty"},
			CreatedAt: time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC),
		},
	}
	for _, rec := range recs {
		b, err := EncodeTenant(&rec)
		if err != nil {
			t.Fatalf("EncodeTenant(%+v): %v", rec, err)
		}
		got, err := DecodeTenant(b)
		if err != nil {
			t.Fatalf("DecodeTenant: %v", err)
		}
		if got.ID != rec.ID || got.Name != rec.Name || got.State != rec.State || got.Limits != rec.Limits ||
			!got.CreatedAt.Equal(rec.CreatedAt) || len(got.Labels) != len(rec.Labels) {
			t.Fatalf("round trip: got %+v, want %+v", got, rec)
		}
		for k, v := range rec.Labels {
			if got.Labels[k] != v {
				t.Fatalf("label %q = %q, want %q", k, got.Labels[k], v)
			}
		}
	}
}

func TestTenantRecordInvalid(t *testing.T) {
	bad := []Tenant{
		{ID: 0, Name: "a", State: StateActive},
		{ID: MaxID + 1, Name: "a", State: StateActive},
		{ID: 1, Name: "", State: StateActive},
		{ID: 1, Name: "Acme", State: StateActive},
		{ID: 1, Name: "a", State: 0},
		{ID: 1, Name: "a", State: 6},
	}
	for _, rec := range bad {
		if rec.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", rec)
		}
		if _, err := EncodeTenant(&rec); err == nil {
			t.Errorf("EncodeTenant(%+v) accepted an invalid record", rec)
		}
	}
	// Invalid records that reach the decoder (written by a buggy or older
	// node) are refused with ErrInvalidRecord.
	enc := func(m map[string]any) []byte {
		t.Helper()
		b, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	inputs := [][]byte{
		nil,
		{},
		{0xc1},       // never-used msgpack byte
		{0x81},       // map of one with nothing in it
		{0x93, 1, 2}, // truncated array
		[]byte("not msgpack at all"),
		enc(map[string]any{"id": 0, "name": "a", "state": 1}),
		enc(map[string]any{"id": uint64(MaxID) + 1, "name": "a", "state": 1}),
		enc(map[string]any{"id": 1, "name": "Bad_Name", "state": 1}),
		enc(map[string]any{"id": 1, "name": "a", "state": 9}),
		enc(map[string]any{"id": 1, "name": "a"}),
		enc(map[string]any{"id": "one", "name": "a", "state": 1}),
		// A nil time used to panic inside msgpack, in map and array form.
		enc(map[string]any{"id": 1, "name": "a", "state": 1, "created": nil}),
		[]byte("\x960\xc00\xc0\xc0\xc0"),
	}
	for _, b := range inputs {
		if _, err := DecodeTenant(b); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("DecodeTenant(%x) = %v, want ErrInvalidRecord", b, err)
		}
	}
	if _, err := DecodeTenant(enc(map[string]any{"id": 1, "name": "ok", "state": 1})); err != nil {
		t.Errorf("DecodeTenant of a minimal valid record: %v", err)
	}
}

func TestStates(t *testing.T) {
	tests := []struct {
		s             string
		state         State
		reads, writes bool
	}{
		{"active", StateActive, true, true},
		{"suspended", StateSuspended, true, false},
		{"locked", StateLocked, false, false},
		{"trial", StateTrial, true, true},
		{"cancelled", StateCancelled, false, false},
	}
	for _, tc := range tests {
		st, err := ParseState(tc.s)
		if err != nil || st != tc.state {
			t.Errorf("ParseState(%q) = %v, %v", tc.s, st, err)
		}
		if st.String() != tc.s || !st.Valid() || st.AllowsReads() != tc.reads || st.AllowsWrites() != tc.writes {
			t.Errorf("state %v: String %q Valid %v reads %v writes %v", st, st.String(), st.Valid(), st.AllowsReads(), st.AllowsWrites())
		}
	}
	// The name of suspended before the lifecycle is still accepted.
	if st, err := ParseState("read-only"); err != nil || st != StateSuspended {
		t.Errorf(`ParseState("read-only") = %v, %v, want suspended`, st, err)
	}
	for _, s := range []string{"", "Active", "ACTIVE", "readonly", "canceled", "Trial", "read_only", "deleted", " active", "state(1)"} {
		if _, err := ParseState(s); !errors.Is(err, ErrInvalidState) {
			t.Errorf("ParseState(%q) = %v, want ErrInvalidState", s, err)
		}
	}
	for _, st := range []State{0, 6, 255} {
		if st.Valid() || st.AllowsReads() || st.AllowsWrites() {
			t.Errorf("state %d is usable", st)
		}
		if st.String() == "" {
			t.Errorf("state %d has no name", st)
		}
	}
}

// TestDecodeTenantBoundedMemory guards against msgpack.Unmarshal's pooled
// decoder, which keeps up to 1 MiB more buffer for every record whose binary
// length header runs past the end of the input. DecodeTenant must not retain
// memory across calls, whatever it is fed.
func TestDecodeTenantBoundedMemory(t *testing.T) {
	// A map with a valid prefix and an unknown field holding a bin32 that
	// claims 3.3 GB.
	bad := []byte("\x86\xa2id\x01\xa4name\xa1a\xa5state\x01\xa3xyz\xc6\xc6\xc6\xc6\xc6\xc6\xc6")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := DecodeTenant(bad); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("DecodeTenant = %v, want ErrInvalidRecord", err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
		t.Fatalf("heap in use grew by %d MiB over 100 bad records", grew>>20)
	}
}
