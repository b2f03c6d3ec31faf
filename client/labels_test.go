package client_test

import (
	"errors"
	"maps"
	"testing"

	"github.com/tenantkv/tenantkv/client"
)

// TestUpdateTenantLabelsOnServer checks against a real node that a non-nil
// Labels map replaces the tenant's labels, an empty one clears them (through
// the raft log, where an empty map must not turn into "unchanged") and a nil
// one leaves them alone.
func TestUpdateTenantLabelsOnServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node; skipped with -short")
	}
	c := newTxCluster(t, 1)
	ctx := t.Context()
	db := c.open(ctx, c.token)
	defer db.Close()
	if _, err := db.CreateTenant(ctx, "acme", &client.TenantConfig{Labels: map[string]string{"plan": "trial", "team": "web"}}); err != nil {
		t.Fatal(err)
	}
	labels := func() map[string]string {
		t.Helper()
		info, err := db.TenantInfo(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return info.Labels
	}

	want := map[string]string{"plan": "pro"}
	info, err := db.UpdateTenant(ctx, "acme", &client.TenantUpdate{Labels: want})
	if err != nil || !maps.Equal(info.Labels, want) || !maps.Equal(labels(), want) {
		t.Fatalf("replace labels: %+v, %v; stored %v", info, err, labels())
	}
	if _, err := db.UpdateTenant(ctx, "acme", &client.TenantUpdate{State: client.StateActive, MaxKeys: new(uint64(9))}); err != nil {
		t.Fatal(err)
	}
	if got := labels(); !maps.Equal(got, want) {
		t.Fatalf("an update without labels changed them: %v", got)
	}
	info, err = db.UpdateTenant(ctx, "acme", &client.TenantUpdate{Labels: map[string]string{}})
	if err != nil || len(info.Labels) != 0 {
		t.Fatalf("clear labels: %+v, %v", info, err)
	}
	if got := labels(); len(got) != 0 {
		t.Fatalf("labels after clearing: %v", got)
	}
	if info.Limits.MaxKeys != 9 {
		t.Errorf("clearing labels changed the limits: %+v", info.Limits)
	}
	// A label the server refuses is the caller's mistake, not an internal
	// error.
	long := string(make([]byte, 300))
	if _, err := db.UpdateTenant(ctx, "acme", &client.TenantUpdate{Labels: map[string]string{"k": long}}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("a 300-byte label value: %v, want ErrInvalidArgument", err)
	}
}
