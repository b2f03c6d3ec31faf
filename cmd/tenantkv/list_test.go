package main

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/tenantkv/tenantkv/client"
)

// TestListTenantsPagesWithFilter pages through tenants in one state, a few
// at a time, and must see every one of them exactly once.
func TestListTenantsPagesWithFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node; skipped with -short")
	}
	dir := t.TempDir()
	srv := startInProcess(t, filepath.Join(dir, "data"))
	c := &clusterCLI{t: t, endpoints: []string{srv.Addr()}, tokenFile: filepath.Join(dir, "data", "operator.token")}
	db := c.openClient()
	ctx := t.Context()
	var want []string
	// With pages of 3: a server that reads the tenants in chunks of the
	// page size sees [a b c] (two active), then the last, short chunk
	// [d e], whose first tenant fills the page: e must still come next.
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		if _, err := db.CreateTenant(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
		if name == "c" {
			if _, err := db.UpdateTenant(ctx, name, &client.TenantUpdate{State: client.StateLocked}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want = append(want, name)
	}
	for limit := 1; limit <= 5; limit++ {
		var got []string
		opts := &client.ListOptions{Limit: limit, State: client.StateActive}
		for range 100 {
			page, next, err := db.ListTenantsPage(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range page {
				got = append(got, ti.Name)
			}
			if next == "" {
				break
			}
			opts.After = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("active tenants in pages of %d: %v, want %v", limit, got, want)
		}
	}
}
