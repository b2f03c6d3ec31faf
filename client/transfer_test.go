package client

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// fill writes n pairs with varied keys and values to t.
func fill(t *testing.T, tn *Tenant, n int) map[string]string {
	t.Helper()
	want := map[string]string{}
	b := tn.NewBatch()
	for i := range n {
		k := fmt.Sprintf("key/%05d/\x00\xff", i)
		v := strings.Repeat(string(rune('a'+i%26)), i%300)
		b.Set([]byte(k), []byte(v))
		want[k] = v
	}
	if err := b.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	return want
}

func contents(t *testing.T, tn *Tenant) map[string]string {
	t.Helper()
	got := map[string]string{}
	for kv, err := range tn.Range(t.Context(), KeyRange{}, nil) {
		if err != nil {
			t.Fatal(err)
		}
		got[string(kv.Key)] = string(kv.Value)
	}
	return got
}

func TestExportImport(t *testing.T) {
	checkGoroutines(t)
	src := newFakeServer(t)
	src.set(func(s *fakeServer) { s.pageCap = 300 })
	db := open(t, opToken, src.addr)
	ctx := t.Context()
	if _, err := db.CreateTenant(ctx, "shop", &TenantConfig{MaxKeys: 5000, OpsPerSec: 1000, Labels: map[string]string{"plan": "pro"}}); err != nil {
		t.Fatal(err)
	}
	want := fill(t, db.Tenant("shop"), 2500)
	if _, err := db.UpdateTenant(ctx, "shop", &TenantUpdate{State: StateReadOnly}); err != nil {
		t.Fatal(err)
	}

	var file bytes.Buffer
	var calls []Progress
	sum, err := db.ExportTenant(ctx, "shop", &file, func(p Progress) { calls = append(calls, p) })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Keys != 2500 || sum.Header.Name != "shop" || sum.Header.State != StateReadOnly || sum.Header.Keys != 2500 ||
		sum.Header.Limits.MaxKeys != 5000 || sum.Header.Labels["plan"] != "pro" || sum.Header.ExportedAt.IsZero() {
		t.Errorf("ExportSummary = %+v", sum)
	}
	reqs := src.requests(wire.OpExportTenant)
	if len(reqs) != 9 || reqs[0].Cursor != "" || reqs[1].Cursor == "" || !bytes.HasSuffix(reqs[1].Key, []byte{0}) {
		t.Errorf("%d export requests (first %+v, second %+v); want 9 pages of 300", len(reqs), reqs[0], reqs[1])
	}
	if len(calls) != 9 || calls[8].Keys != 2500 || calls[8].TotalKeys != 2500 || calls[8].Phase != PhaseExport || calls[8].Bytes != sum.Bytes {
		t.Errorf("export progress calls %d, last %+v", len(calls), calls[len(calls)-1])
	}

	// Into another cluster, under another name: created with the file's
	// config, then given its state.
	dst := newFakeServer(t)
	ddb := open(t, opToken, dst.addr)
	calls = nil
	isum, err := ddb.ImportTenant(ctx, "shop2", bytes.NewReader(file.Bytes()), func(p Progress) { calls = append(calls, p) })
	if err != nil {
		t.Fatal(err)
	}
	if !isum.Created || isum.Keys != 2500 || isum.Bytes != sum.Bytes || isum.Tenant != "shop2" || isum.Header.Name != "shop" {
		t.Errorf("ImportSummary = %+v", isum)
	}
	info, err := ddb.TenantInfo(ctx, "shop2")
	if err != nil {
		t.Fatal(err)
	}
	if info.State != StateReadOnly || info.Limits.MaxKeys != 5000 || info.Limits.OpsPerSec != 1000 || !maps.Equal(info.Labels, map[string]string{"plan": "pro"}) {
		t.Errorf("imported tenant %+v", info)
	}
	if got := contents(t, ddb.Tenant("shop2")); !maps.Equal(got, want) {
		t.Errorf("imported %d pairs, want %d (or they differ)", len(got), len(want))
	}
	for _, r := range dst.requests(wire.OpBatch) {
		size := 0
		for _, m := range r.Muts {
			size += len(m.Key) + len(m.Value)
		}
		if len(r.Muts) > importBatchKeys || size > importBatchBytes {
			t.Errorf("import batch of %d keys and %d bytes", len(r.Muts), size)
		}
	}
	var phases []string
	for _, p := range calls {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}
	if last := calls[len(calls)-1]; fmt.Sprint(phases) != "[verify load]" || last.Keys != 2500 || last.TotalKeys != 2500 || last.TotalBytes != sum.Bytes {
		t.Errorf("import progress phases %v, last %+v", phases, last)
	}

	// Into an existing empty tenant: it keeps its own config and state.
	if _, err := ddb.CreateTenant(ctx, "empty", &TenantConfig{MaxBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if isum, err := ddb.ImportTenant(ctx, "empty", bytes.NewReader(file.Bytes()), nil); err != nil || isum.Created {
		t.Fatalf("import into an empty tenant: %+v, %v", isum, err)
	}
	if info, _ := ddb.TenantInfo(ctx, "empty"); info.State != StateActive || info.Limits.MaxBytes != 1<<30 || info.Limits.MaxKeys != 0 || len(info.Labels) != 0 {
		t.Errorf("existing tenant's config changed by the import: %+v", info)
	}
	if got := contents(t, ddb.Tenant("empty")); !maps.Equal(got, want) {
		t.Error("import into an existing tenant: contents differ")
	}

	// Into a non-empty tenant: refused before anything is written.
	before := dst.count(wire.OpBatch)
	if _, err := ddb.ImportTenant(ctx, "empty", bytes.NewReader(file.Bytes()), nil); !errors.Is(err, ErrTenantNotEmpty) {
		t.Errorf("import into a non-empty tenant: %v", err)
	}
	if dst.count(wire.OpBatch) != before {
		t.Error("the refused import wrote")
	}
}

func TestImportRefusesBeforeWriting(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, opToken, srv.addr)
	ctx := t.Context()
	want := fill(t, db.Tenant("acme"), 1500)
	var file bytes.Buffer
	if _, err := db.ExportTenant(ctx, "acme", &file, nil); err != nil {
		t.Fatal(err)
	}
	good := file.Bytes()

	// A corrupt file (the last record damaged, the first batches intact)
	// creates nothing and writes nothing.
	bad := bytes.Clone(good)
	bad[len(bad)-30] ^= 0x04
	writes := srv.count(wire.OpBatch)
	if _, err := db.ImportTenant(ctx, "copy", bytes.NewReader(bad), nil); !errors.Is(err, ErrCorruptExport) {
		t.Errorf("corrupt file: %v", err)
	}
	if _, err := db.ImportTenant(ctx, "copy", bytes.NewReader(good[:len(good)-1]), nil); !errors.Is(err, ErrCorruptExport) {
		t.Errorf("truncated file: %v", err)
	}
	if srv.count(wire.OpCreateTenant) != 0 || srv.count(wire.OpBatch) != writes {
		t.Error("an import of a corrupt file created or wrote something")
	}
	if _, err := db.TenantInfo(ctx, "copy"); !errors.Is(err, ErrTenantNotFound) {
		t.Errorf("tenant after refused imports: %v", err)
	}

	// Limits that leave no room are caught before writing.
	if _, err := db.CreateTenant(ctx, "tight", &TenantConfig{MaxKeys: 1499}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ImportTenant(ctx, "tight", bytes.NewReader(good), nil); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("import over max-keys: %v", err)
	}
	if _, err := db.UpdateTenant(ctx, "tight", &TenantUpdate{MaxKeys: ptr(0), MaxBytes: ptr(10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ImportTenant(ctx, "tight", bytes.NewReader(good), nil); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("import over max-bytes: %v", err)
	}
	// A locked tenant is refused too.
	if _, err := db.UpdateTenant(ctx, "tight", &TenantUpdate{MaxBytes: ptr(0), State: StateLocked}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ImportTenant(ctx, "tight", bytes.NewReader(good), nil); !errors.Is(err, ErrTenantLocked) {
		t.Errorf("import into a locked tenant: %v", err)
	}
	if srv.count(wire.OpBatch) != writes {
		t.Error("a refused import wrote")
	}

	// Rate limits are waited out; the import completes.
	throttled := 0
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction {
			if req.Op == wire.OpBatch && throttled < 3 {
				throttled++
				return fakeAction{reply: &wire.Response{Code: wire.CodeRateLimited, RetryAfter: time.Millisecond}}
			}
			return fakeAction{}
		}
	})
	if _, err := db.ImportTenant(ctx, "copy", bytes.NewReader(good), nil); err != nil {
		t.Fatalf("import with rate limits: %v", err)
	}
	if got := contents(t, db.Tenant("copy")); !maps.Equal(got, want) {
		t.Error("import with rate limits: contents differ")
	}

	// A failure midway is reported with what was left behind.
	batches := 0
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction {
			if req.Op == wire.OpBatch {
				if batches++; batches == 2 {
					return fakeAction{reply: &wire.Response{Code: wire.CodeQuotaExceeded}}
				}
			}
			return fakeAction{}
		}
	})
	sum, err := db.ImportTenant(ctx, "half", bytes.NewReader(good), nil)
	if !errors.Is(err, ErrQuotaExceeded) || sum == nil || !sum.Created || sum.Keys != 1000 ||
		!strings.Contains(err.Error(), "after 1000 of 1500 keys") || !strings.Contains(err.Error(), "tenant half was created by this import") {
		t.Errorf("failed import: %+v, %v", sum, err)
	}
	if got := contents(t, db.Tenant("half")); len(got) != 1000 {
		t.Errorf("failed import left %d keys, want the 1000 it reported", len(got))
	}
}

func TestExportCursorLost(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) { s.pageCap = 10 })
	db := open(t, opToken, srv.addr)
	fill(t, db.Tenant("acme"), 25)
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction {
			if req.Op == wire.OpExportTenant && req.Cursor != "" {
				return fakeAction{reply: &wire.Response{Code: wire.CodeInvalidArgument, Msg: "tenantkv: export cursor not found"}}
			}
			return fakeAction{}
		}
	})
	var file bytes.Buffer
	_, err := db.ExportTenant(t.Context(), "acme", &file, nil)
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "start again") {
		t.Errorf("lost cursor: %v", err)
	}
	if _, _, err := decodeExport(file.Bytes()); !errors.Is(err, ErrCorruptExport) {
		t.Errorf("what a failed export wrote reads as %v, want ErrCorruptExport", err)
	}
}
