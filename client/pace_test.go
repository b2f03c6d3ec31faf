package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// TestPacingToRateLimit: 32 goroutines write to a tenant limited to 100
// ops/s as fast as the client lets them, retrying at once after a refusal.
// Without pacing they would be refused thousands of times a second; paced,
// the client learns the limit from the first refusal and sends about what
// the node admits, so refusals stay a small fraction of the admitted
// writes. A neighbour without a limit is never refused.
func TestPacingToRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node; skipped with -short")
	}
	c := newTxCluster(t, 1)
	ctx := t.Context()
	db := c.open(ctx, c.token)
	defer db.Close()
	if _, err := db.CreateTenant(ctx, "noisy", &client.TenantConfig{OpsPerSec: 100, Burst: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateTenant(ctx, "quiet", nil); err != nil {
		t.Fatal(err)
	}
	noisy, quiet := db.Tenant("noisy"), db.Tenant("quiet")
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var ok, refused, quietOK atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; runCtx.Err() == nil; i++ {
				err := noisy.Set(runCtx, fmt.Appendf(nil, "k%d-%d", g, i), []byte("v"))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, client.ErrRateLimited):
					refused.Add(1)
				case runCtx.Err() != nil:
				default:
					t.Errorf("noisy: %v", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; runCtx.Err() == nil; i++ {
			if err := quiet.Set(ctx, fmt.Appendf(nil, "q%d", i), []byte("v")); err != nil {
				t.Errorf("quiet neighbour: %v", err)
				return
			}
			quietOK.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	info, err := db.TenantInfo(ctx, "noisy")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("admitted %d, refused %d (client) / %d (node), quiet neighbour %d", ok.Load(), refused.Load(), info.Usage.Throttled, quietOK.Load())
	if ok.Load() == 0 || quietOK.Load() == 0 {
		t.Fatal("no progress")
	}
	// The node counts every refusal it sent; without pacing this is
	// dozens of times the admitted writes.
	if info.Usage.Throttled > uint64(ok.Load()) {
		t.Errorf("the node refused %d requests for %d admitted: the client does not pace", info.Usage.Throttled, ok.Load())
	}
}
