package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tenantkv/tenantkv/internal/wire"
)

func TestBatch(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, acmeToken, srv.addr)
	ctx := t.Context()
	tn := db.Tenant("")

	b := tn.NewBatch()
	if err := b.Commit(ctx); err != nil || srv.count(wire.OpBatch) != 0 {
		t.Fatalf("empty batch: %v, %d requests; want nil and no round trip", err, srv.count(wire.OpBatch))
	}
	for _, k := range []string{"a", "tmp/1", "tmp/2", "z"} {
		if err := tn.Set(ctx, []byte(k), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	key, val := []byte("b"), []byte("B")
	b.Set(key, val)
	key[0], val[0] = 'x', 'x' // the batch keeps copies
	b.Set([]byte("empty"), nil)
	b.Delete([]byte("a"))
	b.DeleteRange(Prefix([]byte("tmp/")))
	b.Set([]byte("tmp/3"), []byte("new")) // after the clear: kept
	if b.Len() != 5 || b.Size() != len("bBemptyatmp/tmp0tmp/3new")+5*TxnOverhead {
		t.Errorf("Len %d, Size %d", b.Len(), b.Size())
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := collect(t, tn.Range(ctx, KeyRange{}, nil))
	if want := "[b=B empty= tmp/3=new z=old]"; strings.Join(got, " ") != want[1:len(want)-1] {
		t.Errorf("after the batch: %v, want %s", got, want)
	}
	reqs := srv.requests(wire.OpBatch)
	if len(reqs) != 1 || len(reqs[0].Muts) != 5 || reqs[0].Muts[2].Kind != wire.MutDelete ||
		reqs[0].Muts[3].Kind != wire.MutDeleteRange || string(reqs[0].Muts[3].End) != "tmp0" {
		t.Errorf("batch request %+v", reqs)
	}

	// Commit again: the batch is unchanged; Reset empties it.
	if err := b.Commit(ctx); err != nil || srv.count(wire.OpBatch) != 2 {
		t.Errorf("second commit: %v", err)
	}
	b.Reset()
	if b.Len() != 0 || b.Size() != 0 {
		t.Errorf("after Reset: Len %d, Size %d", b.Len(), b.Size())
	}

	// Invalid writes are reported by Commit, which then sends nothing.
	for name, tc := range map[string]struct {
		add  func(b *Batch)
		want error
	}{
		"empty key":   {func(b *Batch) { b.Set(nil, []byte("v")) }, ErrInvalidKey},
		"long key":    {func(b *Batch) { b.Delete(make([]byte, MaxKeySize+1)) }, ErrKeyTooLarge},
		"long value":  {func(b *Batch) { b.Set([]byte("k"), make([]byte, MaxValueSize+1)) }, ErrValueTooLarge},
		"bad range":   {func(b *Batch) { b.DeleteRange(KeyRange{Begin: []byte("b"), End: []byte("a")}) }, ErrInvalidRange},
		"over 10 MiB": {func(b *Batch) { fillBatch(b, MaxBatchSize+1) }, ErrTxTooLarge},
	} {
		b := tn.NewBatch()
		b.Set([]byte("fine"), []byte("1"))
		tc.add(b)
		b.Set([]byte("later"), []byte("2"))
		before := srv.count(wire.OpBatch)
		if err := b.Commit(ctx); !errors.Is(err, tc.want) {
			t.Errorf("%s: Commit = %v, want %v", name, err, tc.want)
		}
		if srv.count(wire.OpBatch) != before {
			t.Errorf("%s: an invalid batch was sent", name)
		}
		if _, err := tn.Get(ctx, []byte("fine")); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: part of an invalid batch was applied", name)
		}
	}
	// Exactly at the limit is fine.
	b = tn.NewBatch()
	fillBatch(b, MaxBatchSize)
	if b.Size() != MaxBatchSize {
		t.Fatalf("fillBatch made %d bytes", b.Size())
	}
	if err := b.Commit(ctx); err != nil {
		t.Errorf("batch of exactly MaxBatchSize: %v", err)
	}
}

// fillBatch adds sets to b until it holds n bytes.
func fillBatch(b *Batch, n int) {
	for i := 0; b.Size() < n && b.err == nil; i++ {
		key := []byte{byte(i >> 16), byte(i >> 8), byte(i), 'k'}
		v := min(MaxValueSize, n-b.Size()-len(key)-TxnOverhead)
		b.Set(key, bytes.Repeat([]byte{'v'}, max(v, 0)))
	}
}

func TestBatchQuotaAndStates(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, opToken, srv.addr)
	ctx := t.Context()
	if _, err := db.CreateTenant(ctx, "small", &TenantConfig{MaxKeys: 2}); err != nil {
		t.Fatal(err)
	}
	tn := db.Tenant("small")
	b := tn.NewBatch()
	b.Set([]byte("1"), nil)
	b.Set([]byte("2"), nil)
	b.Set([]byte("3"), nil)
	if err := b.Commit(ctx); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("batch over max-keys: %v", err)
	}
	if got := collect(t, tn.Range(ctx, KeyRange{}, nil)); len(got) != 0 {
		t.Errorf("a refused batch left %v", got)
	}
	b.Delete([]byte("3")) // the batch as a whole fits now
	if err := b.Commit(ctx); err != nil {
		t.Errorf("batch within max-keys: %v", err)
	}
	if _, err := db.UpdateTenant(ctx, "small", &TenantUpdate{State: StateReadOnly}); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	b.Delete([]byte("1"))
	if err := b.Commit(ctx); !errors.Is(err, ErrTenantReadOnly) {
		t.Errorf("batch in a read-only tenant: %v", err)
	}
}
