package client

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// rangeErr drains seq and returns its first error.
func rangeErr(seq func(func(KV, error) bool)) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

func collect(t *testing.T, seq func(func(KV, error) bool)) []string {
	t.Helper()
	var out []string
	for kv, err := range seq {
		if err != nil {
			t.Fatalf("Range: %v", err)
		}
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return out
}

func TestRangePaging(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) { s.pageCap = 3 })
	db := open(t, acmeToken, srv.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	var all []string
	for i := range 10 {
		k := fmt.Sprintf("k%02d", i)
		if err := acme.Set(ctx, []byte(k), []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
		all = append(all, k+"="+string(rune('a'+i)))
	}
	rev := slices.Clone(all)
	slices.Reverse(rev)

	scans := func() int { return srv.count(wire.OpScan) }
	for _, tc := range []struct {
		name  string
		r     KeyRange
		opts  *RangeOptions
		want  []string
		pages int
	}{
		{"all", KeyRange{}, nil, all, 4},
		{"all reverse", KeyRange{}, &RangeOptions{Reverse: true}, rev, 4},
		{"limit", KeyRange{}, &RangeOptions{Limit: 5, PageSize: 2}, all[:5], 3},
		{"limit reverse", KeyRange{}, &RangeOptions{Limit: 4, Reverse: true}, rev[:4], 2},
		{"limit exact page", KeyRange{}, &RangeOptions{Limit: 3}, all[:3], 1},
		{"bounded", KeyRange{Begin: []byte("k02"), End: []byte("k07")}, nil, all[2:7], 2},
		{"bounded reverse", KeyRange{Begin: []byte("k02"), End: []byte("k07")}, &RangeOptions{Reverse: true}, rev[3:8], 2},
		{"prefix", Prefix([]byte("k0")), &RangeOptions{PageSize: 1}, all, 10},
		{"empty", KeyRange{Begin: []byte("x")}, nil, nil, 1},
		{"big limit", KeyRange{}, &RangeOptions{Limit: 1000}, all, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := scans()
			got := collect(t, acme.Range(ctx, tc.r, tc.opts))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
			if n := scans() - before; n != tc.pages {
				t.Errorf("%d scans, want %d", n, tc.pages)
			}
		})
	}

	t.Run("requests", func(t *testing.T) {
		before := len(srv.requests(wire.OpScan))
		collect(t, acme.Range(ctx, KeyRange{}, &RangeOptions{Limit: 5, PageSize: 2, Reverse: true}))
		reqs := srv.requests(wire.OpScan)[before:]
		var got []string
		for _, r := range reqs {
			got = append(got, fmt.Sprintf("[%s,%s) l=%d r=%v", r.Key, r.End, r.Limit, r.Reverse))
		}
		want := []string{"[,) l=2 r=true", "[,k08) l=2 r=true", "[,k06) l=1 r=true"}
		if !slices.Equal(got, want) {
			t.Errorf("scan requests %q, want %q", got, want)
		}
		before = len(srv.requests(wire.OpScan))
		collect(t, acme.Range(ctx, KeyRange{Begin: []byte("k01")}, &RangeOptions{Limit: 4, PageSize: 3}))
		reqs = srv.requests(wire.OpScan)[before:]
		if len(reqs) != 2 || string(reqs[1].Key) != "k03\x00" || reqs[1].Limit != 1 {
			t.Errorf("forward paging: %+v", reqs)
		}
	})

	t.Run("break stops fetching", func(t *testing.T) {
		before := scans()
		for kv, err := range acme.Range(ctx, KeyRange{}, &RangeOptions{PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			if string(kv.Key) == "k00" {
				break
			}
		}
		if n := scans() - before; n != 1 {
			t.Errorf("%d scans after break on first key, want 1", n)
		}
	})

	t.Run("lazy more", func(t *testing.T) {
		// A server that sets More on every full page: the client must stop
		// at an empty last page, or when the next page would be empty.
		srv.set(func(s *fakeServer) { s.moreWhenFull = true })
		defer srv.set(func(s *fakeServer) { s.moreWhenFull = false })
		got := collect(t, acme.Range(ctx, KeyRange{End: []byte("k05")}, nil))
		if !slices.Equal(got, all[:5]) {
			t.Errorf("got %v", got)
		}
		got = collect(t, acme.Range(ctx, KeyRange{Begin: []byte("k04"), End: []byte("k05\x00")}, &RangeOptions{PageSize: 2, Reverse: true}))
		if !slices.Equal(got, []string{all[5], all[4]}) {
			t.Errorf("reverse got %v", got)
		}
		got = collect(t, acme.Range(ctx, KeyRange{Begin: []byte("k04"), End: []byte("k05\x00")}, &RangeOptions{PageSize: 2}))
		if !slices.Equal(got, []string{all[4], all[5]}) {
			t.Errorf("forward got %v", got)
		}
	})

	t.Run("empty page with more", func(t *testing.T) {
		srv.set(func(s *fakeServer) {
			s.hook = func(req *wire.Request) fakeAction {
				return fakeAction{reply: &wire.Response{More: true}}
			}
		})
		defer srv.set(func(s *fakeServer) { s.hook = nil })
		if err := rangeErr(acme.Range(ctx, KeyRange{}, nil)); !errors.Is(err, ErrInternal) {
			t.Fatalf("Range: %v, want ErrInternal", err)
		}
	})

	t.Run("keys are the caller's", func(t *testing.T) {
		var keys [][]byte
		for kv, err := range acme.Range(ctx, KeyRange{}, &RangeOptions{PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, kv.Key)
			kv.Key[0] = 'Z' // must not disturb paging
		}
		if len(keys) != 10 {
			t.Fatalf("%d keys after scribbling on them", len(keys))
		}
	})
}

// TestRangeModel compares random ranges with a sorted model.
func TestRangeModel(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) { s.pageCap = 4 })
	db := open(t, acmeToken, srv.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x01, 'a', 'b', 0xFE, 0xFF}
	randKey := func(n int) []byte {
		k := make([]byte, 1+rng.IntN(n))
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return k
	}
	model := map[string]string{}
	for range 60 {
		k := randKey(3)
		v := fmt.Sprint(rng.IntN(1000))
		model[string(k)] = v
		if err := acme.Set(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	for i := range 300 {
		var r KeyRange
		switch rng.IntN(3) {
		case 0:
			r = Prefix(randKey(2))
		case 1:
			a, b := randKey(3), randKey(3)
			if bytes.Compare(a, b) > 0 {
				a, b = b, a
			}
			if bytes.Equal(a, b) {
				b = nil
			}
			r = KeyRange{Begin: a, End: b}
		default:
			r = KeyRange{Begin: randKey(2)}
		}
		opts := &RangeOptions{Limit: rng.IntN(8), PageSize: rng.IntN(6), Reverse: rng.IntN(2) == 0}
		var want []string
		for _, k := range keys {
			if k >= string(r.Begin) && (len(r.End) == 0 || k < string(r.End)) {
				want = append(want, k+"="+model[k])
			}
		}
		if opts.Reverse {
			slices.Reverse(want)
		}
		if opts.Limit > 0 && len(want) > opts.Limit {
			want = want[:opts.Limit]
		}
		got := collect(t, acme.Range(ctx, r, opts))
		if !slices.Equal(got, want) {
			t.Fatalf("case %d: range [%q, %q) %+v\ngot  %q\nwant %q", i, r.Begin, r.End, *opts, got, want)
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, tc := range []struct {
		p, end []byte
	}{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte("a"), []byte("b")},
		{[]byte("ab"), []byte("ac")},
		{[]byte{'a', 0xFF}, []byte("b")},
		{[]byte{'a', 0xFF, 0xFF}, []byte("b")},
		{[]byte{0x00}, []byte{0x01}},
		{[]byte{0xFE}, []byte{0xFF}},
		{[]byte{0xFE, 0xFF}, []byte{0xFF}},
		{[]byte{0xFF}, nil},
		{[]byte{0xFF, 0xFF, 0xFF}, nil},
		{[]byte{0x01, 0xFF, 0x05}, []byte{0x01, 0xFF, 0x06}},
	} {
		r := Prefix(tc.p)
		if !bytes.Equal(r.Begin, tc.p) {
			t.Errorf("Prefix(%x).Begin = %x", tc.p, r.Begin)
		}
		if !bytes.Equal(r.End, tc.end) || (tc.end == nil) != (r.End == nil) {
			t.Errorf("Prefix(%x).End = %x, want %x", tc.p, r.End, tc.end)
		}
	}
	// Prefix does not alias its argument.
	p := []byte("ab")
	r := Prefix(p)
	p[0], p[1] = 'z', 'z'
	if string(r.Begin) != "ab" || string(r.End) != "ac" {
		t.Errorf("Prefix aliases its argument: %q %q", r.Begin, r.End)
	}
}

func TestDeleteRange(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, acmeToken, srv.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	for _, k := range []string{"a", "b1", "b2", "c"} {
		if err := acme.Set(ctx, []byte(k), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := acme.DeleteRange(ctx, Prefix([]byte("b"))); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, acme.Range(ctx, KeyRange{}, nil)); !slices.Equal(got, []string{"a=v", "c=v"}) {
		t.Fatalf("after DeleteRange(b): %v", got)
	}
	if err := acme.DeleteRange(ctx, KeyRange{}); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, acme.Range(ctx, KeyRange{}, nil)); len(got) != 0 {
		t.Fatalf("after DeleteRange(all): %v", got)
	}
}
