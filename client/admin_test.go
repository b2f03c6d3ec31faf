package client

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

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
	err = db.RemoveNode(ctx, "nobody")
	if !errors.Is(err, ErrNotFound) || err.Error() != "tenantkv: member not found: nobody" {
		t.Errorf("RemoveNode(nobody): %v", err)
	}
}

func ptr(v uint64) *uint64 { return &v }

func TestUpdateAndRenameTenant(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, opToken, srv.addr)
	ctx := t.Context()
	if _, err := db.CreateTenant(ctx, "beta", &TenantConfig{MaxKeys: 10, OpsPerSec: 5, Labels: map[string]string{"plan": "trial"}}); err != nil {
		t.Fatal(err)
	}

	info, err := db.UpdateTenant(ctx, "beta", &TenantUpdate{MaxBytes: ptr(100), MaxKeys: ptr(0), Labels: map[string]string{"plan": "pro"}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Limits.MaxBytes != 100 || info.Limits.MaxKeys != 0 || info.Limits.OpsPerSec != 5 || info.Labels["plan"] != "pro" {
		t.Errorf("UpdateTenant = %+v", info)
	}
	req := srv.requests(wire.OpUpdateTenant)[0]
	if c := req.Config; c == nil || c.MaxBytes == nil || *c.MaxBytes != 100 || c.MaxKeys == nil || *c.MaxKeys != 0 ||
		c.OpsPerSec != nil || req.State != "" || req.NewName != "" {
		t.Errorf("sent %+v (config %+v): only the given fields may be set, a pointer to zero included", req, req.Config)
	}

	// A state alone sends no config at all.
	if info, err = db.UpdateTenant(ctx, "beta", &TenantUpdate{State: StateReadOnly}); err != nil || info.State != StateReadOnly {
		t.Fatalf("UpdateTenant(read-only) = %+v, %v", info, err)
	}
	if req := srv.requests(wire.OpUpdateTenant)[1]; req.Config != nil || req.State != "read-only" {
		t.Errorf("state-only update sent %+v", req)
	}
	if err := db.Tenant("beta").Set(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrTenantReadOnly) {
		t.Errorf("Set in a read-only tenant: %v", err)
	}
	if _, err := db.UpdateTenant(ctx, "beta", &TenantUpdate{State: "frozen"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("UpdateTenant(frozen): %v", err)
	}
	if n := srv.count(wire.OpUpdateTenant); n != 2 {
		t.Errorf("%d updates sent, want 2: invalid ones must fail without a round trip", n)
	}

	// Labels: a non-nil map replaces them all, an empty one clears them,
	// nil leaves them alone.
	if info, err = db.UpdateTenant(ctx, "beta", &TenantUpdate{Labels: map[string]string{"a": "1", "b": "2"}}); err != nil || len(info.Labels) != 2 {
		t.Fatalf("UpdateTenant(labels a, b) = %+v, %v", info, err)
	}
	if c := srv.requests(wire.OpUpdateTenant)[2].Config; c == nil || !c.ReplaceLabels || len(c.Labels) != 2 {
		t.Errorf("labels update sent config %+v", c)
	}
	if info, err = db.UpdateTenant(ctx, "beta", &TenantUpdate{MaxKeys: ptr(7)}); err != nil || len(info.Labels) != 2 {
		t.Fatalf("UpdateTenant(max keys) = %+v, %v: labels must stay", info, err)
	}
	if c := srv.requests(wire.OpUpdateTenant)[3].Config; c == nil || c.ReplaceLabels || c.Labels != nil {
		t.Errorf("update without labels sent config %+v", c)
	}
	if info, err = db.UpdateTenant(ctx, "beta", &TenantUpdate{Labels: map[string]string{}}); err != nil || len(info.Labels) != 0 {
		t.Fatalf("UpdateTenant(empty labels) = %+v, %v", info, err)
	}
	if c := srv.requests(wire.OpUpdateTenant)[4].Config; c == nil || !c.ReplaceLabels || len(c.Labels) != 0 {
		t.Errorf("clearing labels sent config %+v", c)
	}
	if _, err := db.UpdateTenant(ctx, "nobody", nil); !errors.Is(err, ErrTenantNotFound) {
		t.Errorf("UpdateTenant(nobody): %v", err)
	}

	if err := db.RenameTenant(ctx, "beta", "gamma"); err != nil {
		t.Fatal(err)
	}
	if r := srv.requests(wire.OpUpdateTenant); r[len(r)-1].Name != "beta" || r[len(r)-1].NewName != "gamma" {
		t.Errorf("rename sent %+v", r[len(r)-1])
	}
	if info, err := db.TenantInfo(ctx, "gamma"); err != nil || info.State != StateReadOnly || info.Limits.MaxBytes != 100 {
		t.Errorf("TenantInfo after rename = %+v, %v", info, err)
	}
	if err := db.RenameTenant(ctx, "gamma", "acme"); !errors.Is(err, ErrTenantExists) {
		t.Errorf("rename onto a taken name: %v", err)
	}
	if err := db.RenameTenant(ctx, "gamma", ""); !errors.Is(err, ErrInvalidName) {
		t.Errorf("rename to an empty name: %v", err)
	}

	// Locked: reads are refused too; back to active, everything works.
	if _, err := db.UpdateTenant(ctx, "gamma", &TenantUpdate{State: StateLocked}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Tenant("gamma").Get(ctx, []byte("k")); !errors.Is(err, ErrTenantLocked) {
		t.Errorf("Get in a locked tenant: %v", err)
	}
	if _, err := db.UpdateTenant(ctx, "gamma", &TenantUpdate{State: StateActive}); err != nil {
		t.Fatal(err)
	}
	if err := db.Tenant("gamma").Set(ctx, []byte("k"), []byte("v")); err != nil {
		t.Errorf("Set after reactivation: %v", err)
	}
}

func TestListTenantsPage(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, opToken, srv.addr)
	ctx := t.Context()
	for _, n := range []string{"b1", "b2", "b3", "b4"} {
		if _, err := db.CreateTenant(ctx, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.UpdateTenant(ctx, "b2", &TenantUpdate{State: StateLocked}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateTenant(ctx, "b4", &TenantUpdate{State: StateLocked}); err != nil {
		t.Fatal(err)
	}

	var pages [][]string
	opts := &ListOptions{Limit: 2}
	for {
		page, next, err := db.ListTenantsPage(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ti := range page {
			names = append(names, ti.Name)
		}
		pages = append(pages, names)
		if next == "" {
			break
		}
		opts.After = next
	}
	if fmt.Sprint(pages) != "[[acme b1] [b2 b3] [b4]]" {
		t.Errorf("pages = %v", pages)
	}
	if r := srv.requests(wire.OpListTenants); r[0].Limit != 2 || r[1].After != "b1" {
		t.Errorf("requests %+v", r)
	}

	page, next, err := db.ListTenantsPage(ctx, &ListOptions{State: StateLocked})
	if err != nil || next != "" || len(page) != 2 || page[0].Name != "b2" || page[1].Name != "b4" {
		t.Errorf("locked tenants = %+v, %q, %v", page, next, err)
	}
	if _, _, err := db.ListTenantsPage(ctx, &ListOptions{State: "odd"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad state filter: %v", err)
	}
	if _, _, err := db.ListTenantsPage(ctx, &ListOptions{Limit: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative limit: %v", err)
	}
	all, err := db.ListTenants(ctx)
	if err != nil || len(all) != 5 {
		t.Errorf("ListTenants = %d tenants, %v", len(all), err)
	}

	// A server whose cursor does not advance is caught, not looped on.
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction {
			if req.Op == wire.OpListTenants {
				return fakeAction{reply: &wire.Response{Next: req.After}}
			}
			return fakeAction{}
		}
	})
	if _, _, err := db.ListTenantsPage(ctx, &ListOptions{After: "b"}); !errors.Is(err, ErrInternal) {
		t.Errorf("stuck cursor: %v", err)
	}
}

func TestTokens(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, opToken, srv.addr)
	ctx := t.Context()

	secret, id, err := db.NewToken(ctx, "acme", &TokenOptions{ReadOnly: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := TokenID(secret); err != nil || got != id {
		t.Errorf("TokenID(%q) = %q, %v; want %q", secret, got, err, id)
	}
	if r := srv.requests(wire.OpNewToken)[0]; r.Name != "acme" || !r.ReadOnly || r.TTL != time.Hour {
		t.Errorf("new-token request %+v", r)
	}
	ro := open(t, secret, srv.addr)
	if err := ro.Tenant("").Set(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("write with a read-only token: %v", err)
	}
	if _, err := ro.Tenant("").Get(ctx, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Errorf("read with a read-only token: %v", err)
	}
	// A tenant token sees its own tenant, by name or by "".
	for _, name := range []string{"", "acme"} {
		if info, err := ro.TenantInfo(ctx, name); err != nil || info.Name != "acme" {
			t.Errorf("TenantInfo(%q) with a tenant token = %+v, %v", name, info, err)
		}
	}
	if _, err := db.CreateTenant(ctx, "other", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ro.TenantInfo(ctx, "other"); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("TenantInfo(other) with acme's token: %v", err)
	}

	rw, err := db.NewTenantToken(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.NewTenantToken(ctx, ""); !errors.Is(err, ErrInvalidName) {
		t.Errorf("NewTenantToken(\"\") must never make an operator token: %v", err)
	}
	toks, err := db.ListTokens(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	rwID, _ := TokenID(rw)
	byID := map[string]TokenInfo{}
	for _, tk := range toks {
		byID[tk.ID] = tk
	}
	if len(toks) != 3 || !byID[id].ReadOnly || byID[id].ExpiresAt.IsZero() || byID[rwID].ReadOnly ||
		!byID[rwID].ExpiresAt.IsZero() || byID[id].Tenant != "acme" || byID[id].CreatedAt.IsZero() {
		t.Errorf("ListTokens = %+v", toks)
	}
	if _, err := db.ListTokens(ctx, ""); !errors.Is(err, ErrInvalidName) {
		t.Errorf("ListTokens(\"\"): %v", err)
	}

	// Revocation reaches a connection that is already open.
	if err := db.RevokeToken(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Tenant("").Get(ctx, []byte("k")); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("read with a revoked token: %v", err)
	}
	if err := db.RevokeToken(ctx, id); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("revoking twice: %v", err)
	}
	if err := db.RevokeToken(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("RevokeToken(\"\"): %v", err)
	}

	// Operator tokens.
	opSecret, opID, err := db.NewToken(ctx, "", &TokenOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	op := open(t, opSecret, srv.addr)
	if _, operator := op.Identity(); !operator {
		t.Error("a token made for no tenant is not an operator token")
	}
	if _, err := op.ListTenants(ctx); err != nil {
		t.Errorf("new operator token: %v", err)
	}
	if err := db.RevokeToken(ctx, opID); err != nil {
		t.Fatal(err)
	}
	if _, err := op.ListTenants(ctx); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("revoked operator token: %v", err)
	}
	if _, _, err := db.NewToken(ctx, "acme", &TokenOptions{TTL: -time.Second}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative TTL: %v", err)
	}
}

func TestTokenID(t *testing.T) {
	for _, tc := range []struct {
		in, id string
	}{
		{"tkv_0123456789abcdef_secret", "0123456789abcdef"},
		{"tkv_0123456789abcdef_", "0123456789abcdef"},
		{"tkv_0123456789abcdeg_secret", ""},
		{"tkv_0123456789abcdef", ""},
		{"tkv_0123456789abcde_secret", ""},
		{"0123456789abcdef", ""},
		{"", ""},
	} {
		id, err := TokenID(tc.in)
		if id != tc.id || (err == nil) != (tc.id != "") {
			t.Errorf("TokenID(%q) = %q, %v; want %q", tc.in, id, err, tc.id)
		}
		if err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("TokenID(%q): %v does not match ErrInvalidArgument", tc.in, err)
		}
	}
}
