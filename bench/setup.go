package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// Setup is what a run did before measuring: tenants created and keys
// loaded, with their rates.
type Setup struct {
	TenantsCreated  int     `json:"tenants_created"`
	TenantsExisting int     `json:"tenants_existing"`
	CreateSec       float64 `json:"create_sec"`
	CreatePerSec    float64 `json:"tenants_created_per_sec"`
	KeysLoaded      int64   `json:"keys_loaded"`
	LoadSec         float64 `json:"load_sec"`
	LoadPerSec      float64 `json:"keys_loaded_per_sec"`
}

// statusEvery is how often long setup steps report their progress.
const statusEvery = 5 * time.Second

// CreateTenants creates the named tenants with cfg (nil for defaults),
// concurrency requests at a time, through db, which needs an operator token.
// A tenant that already exists is counted in existing and left as it is; a
// create whose outcome is unknown is retried. The first other error stops
// the work and is returned. Progress lines go to status, if not nil.
func CreateTenants(ctx context.Context, db *client.DB, names []string, cfg *client.TenantConfig, concurrency int, status io.Writer) (created, existing int, err error) {
	var nCreated, nExisting atomic.Int64
	err = parallel(ctx, len(names), concurrency, status, "tenants created", func(ctx context.Context, i int) error {
		for attempt := 0; ; attempt++ {
			_, err := db.CreateTenant(ctx, names[i], cfg)
			switch {
			case err == nil:
				nCreated.Add(1)
				return nil
			case errors.Is(err, client.ErrTenantExists) && attempt == 0:
				nExisting.Add(1)
				return nil
			case errors.Is(err, client.ErrTenantExists):
				// The earlier attempt, whose outcome was unknown, created it.
				nCreated.Add(1)
				return nil
			case errors.Is(err, client.ErrCommitUnknown) && attempt < 5 && ctx.Err() == nil:
				continue
			case errors.Is(err, client.ErrRateLimited) && ctx.Err() == nil:
				if err := waitRetry(ctx, err); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("bench: create tenant %s: %w", names[i], err)
		}
	})
	return int(nCreated.Load()), int(nExisting.Load()), err
}

// parallel calls f for every index in [0, n), concurrency calls at a time,
// and returns the first error, which stops the others. Every statusEvery it
// writes a progress line naming what is done to status, if not nil.
func parallel(ctx context.Context, n, concurrency int, status io.Writer, what string, f func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range min(max(concurrency, 1), n) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				if err := f(ctx, int(i)); err != nil {
					cancel(err)
					return
				}
				done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	start := time.Now()
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			if err := context.Cause(ctx); err != nil {
				return err
			}
			return nil
		case <-tick.C:
			if status != nil {
				d := done.Load()
				fmt.Fprintf(status, "  %d/%d %s (%.0f/s)\n", d, n, what, float64(d)/time.Since(start).Seconds())
			}
		}
	}
}

// waitRetry waits for the retry hint of a rate-limited answer, at least
// 1ms and at most 100ms, or until ctx ends.
func waitRetry(ctx context.Context, err error) error {
	d := time.Millisecond
	var ce *client.Error
	if errors.As(err, &ce) {
		d = max(d, min(ce.RetryAfter, 100*time.Millisecond))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setup creates a group's tenants and loads its keys, as its Config asks.
func (g *group) setup(ctx context.Context, status io.Writer) error {
	c := &g.cfg
	if !c.SkipCreate {
		if status != nil {
			fmt.Fprintf(status, "%s: creating %s\n", c.Name, plural(c.Tenants, "tenant"))
		}
		start := time.Now()
		created, existing, err := CreateTenants(ctx, g.dbs[0], g.ks.tenants, c.TenantConfig, c.LoadConcurrency, status)
		g.setupStats.TenantsCreated, g.setupStats.TenantsExisting = created, existing
		g.setupStats.CreateSec = time.Since(start).Seconds()
		if created > 0 {
			g.setupStats.CreatePerSec = float64(created) / g.setupStats.CreateSec
		}
		if err != nil {
			return err
		}
	}
	if c.SkipLoad {
		return nil
	}
	kpt := len(g.ks.keys)
	n := c.Tenants * kpt
	if status != nil {
		fmt.Fprintf(status, "%s: loading %d keys of %d+%d bytes\n", c.Name, n, c.KeySize, c.ValueSize)
	}
	start := time.Now()
	err := parallel(ctx, n, c.LoadConcurrency, status, "keys loaded", func(ctx context.Context, i int) error {
		t := g.handles[i%len(g.handles)][i/kpt]
		key := g.ks.keys[i%kpt]
		for attempt := 0; ; attempt++ {
			err := t.Set(ctx, key, g.ks.value)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, client.ErrCommitUnknown) && attempt < 5 && ctx.Err() == nil:
				continue // a set is idempotent
			case errors.Is(err, client.ErrRateLimited) && ctx.Err() == nil:
				if err := waitRetry(ctx, err); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("bench: load %s: %w", t.Name(), err)
		}
	})
	g.setupStats.KeysLoaded = int64(n)
	g.setupStats.LoadSec = time.Since(start).Seconds()
	g.setupStats.LoadPerSec = float64(n) / g.setupStats.LoadSec
	return err
}
