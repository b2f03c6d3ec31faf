package client

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tenantkv/tenantkv/internal/wire"
)

func TestAdmin(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) { s.listPage = 2 })
	db := open(t, opToken, srv.addr)
	ctx := t.Context()

	info, err := db.CreateTenant(ctx, "beta", &TenantConfig{MaxBytes: 1 << 20, OpsPerSec: 100, Labels: map[string]string{"team": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "beta" || info.ID == 0 || info.State != "active" || info.Limits.MaxBytes != 1<<20 ||
		info.Limits.OpsPerSec != 100 || info.Labels["team"] != "x" || info.CreatedAt.IsZero() {
		t.Errorf("CreateTenant = %+v", info)
	}
	cfg := srv.requests(wire.OpCreateTenant)[0].Config
	if cfg == nil || cfg.MaxBytes == nil || *cfg.MaxBytes != 1<<20 || cfg.MaxKeys != nil || cfg.Burst != nil {
		t.Errorf("sent config %+v: zero fields must stay unset", cfg)
	}
	if _, err := db.CreateTenant(ctx, "beta", nil); !errors.Is(err, ErrTenantExists) {
		t.Errorf("CreateTenant twice: %v", err)
	}
	if _, err := db.CreateTenant(ctx, "Bad", nil); !errors.Is(err, ErrInvalidName) {
		t.Errorf("CreateTenant bad name: %v", err)
	}
	if srv.requests(wire.OpCreateTenant)[2].Config != nil {
		t.Error("a nil config was sent as non-nil")
	}
	for _, n := range []string{"c1", "c2", "c3"} {
		if _, err := db.CreateTenant(ctx, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	list, err := db.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range list {
		names = append(names, ti.Name)
	}
	if !slices.Equal(names, []string{"acme", "beta", "c1", "c2", "c3"}) {
		t.Errorf("ListTenants = %v", names)
	}
	if n := srv.count(wire.OpListTenants); n != 3 {
		t.Errorf("%d list pages, want 3", n)
	}

	if err := db.Tenant("beta").Set(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err) // an operator token reaches any tenant
	}
	ti, err := db.TenantInfo(ctx, "beta")
	if err != nil || ti.Usage.Keys != 1 || ti.Limits.OpsPerSec != 100 {
		t.Fatalf("TenantInfo = %+v, %v", ti, err)
	}
	if err := db.DeleteTenant(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TenantInfo(ctx, "beta"); !errors.Is(err, ErrTenantNotFound) {
		t.Errorf("TenantInfo after delete: %v", err)
	}
	if err := db.DeleteTenant(ctx, "beta"); !errors.Is(err, ErrTenantNotFound) {
		t.Errorf("DeleteTenant twice: %v", err)
	}

	tok, err := db.NewTenantToken(ctx, "c1")
	if err != nil || tok == "" {
		t.Fatalf("NewTenantToken = %q, %v", tok, err)
	}
	tdb := open(t, tok, srv.addr)
	if name, op := tdb.Identity(); name != "c1" || op {
		t.Errorf("Identity of the new token = %q, %v", name, op)
	}
	if _, err := tdb.CreateTenant(ctx, "nope", nil); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("CreateTenant with a tenant token: %v", err)
	}

	st, err := db.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := &ClusterStatus{NodeID: "n1", LeaderID: "n1", Term: 3, AppliedIndex: 10, CommitIndex: 11,
		Members: []Member{{ID: "n1", RaftAddr: "r1", ClientAddr: srv.addr, HTTPAddr: "h1", Suffrage: "voter", Leader: true}}}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("ClusterStatus = %+v\nwant %+v", st, want)
	}
	if err := db.JoinNode(ctx, "n2", "r2:1", "c2:2", "h2:3"); err != nil {
		t.Fatal(err)
	}
	j := srv.requests(wire.OpClusterJoin)[0]
	if j.Name != "n2" || j.Addr != "r2:1" || j.Addr2 != "c2:2" || j.Addr3 != "h2:3" {
		t.Errorf("join request %+v", j)
	}
	if err := db.RemoveNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if r := srv.requests(wire.OpClusterRemove)[0]; r.Name != "n2" {
		t.Errorf("remove request %+v", r)
	}
	if err := db.RemoveNode(ctx, ""); !errors.Is(err, ErrBadRequest) {
		t.Errorf("RemoveNode(\"\"): %v", err)
	}
}
