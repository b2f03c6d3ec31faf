package server_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/testcluster/inproc"
	"github.com/tenantkv/tenantkv/server"
)

// The tenant-scale benchmark of issue 5: the cost of a request must not
// grow with the number of tenants in the cluster. Compare one op across
// counts, e.g. with benchstat:
//
//	go test -run '^$' -bench BenchmarkRequestOverhead -benchmem -count 3 -benchtime 2s ./server > new.txt
//	benchstat -col /tenants old.txt new.txt
//
// -short skips the 100,000-tenant cluster.

// scaleTenantCounts are the numbers of tenants the benchmark runs at.
var scaleTenantCounts = []int{10, 10_000, 100_000}

const (
	// scaleShortMax is the largest count run under -short.
	scaleShortMax = 10_000
	// scaleCreators is the number of goroutines creating tenants.
	scaleCreators = 64
	// scaleActive is the number of randomly chosen tenants the timed
	// requests go to, each over its own connection with its own token.
	scaleActive = 8
	// scaleKeys is the number of keys per active tenant the requests pick
	// from at random.
	scaleKeys = 256
	// scaleParallelism times GOMAXPROCS is the number of request
	// goroutines: enough to keep the node busy, so that ns/op is the
	// node's cost per request rather than a round-trip latency.
	scaleParallelism = 16
)

// scaleCluster is a single-node cluster holding n tenants, each with one
// tenant token, and a client per active tenant.
type scaleCluster struct {
	active []*client.Tenant
	keys   [][]byte
	value  []byte
}

// BenchmarkRequestOverhead measures a point Get (linearizable, the default)
// and a Put of a 100-byte value, sent with tenant tokens through the client
// library by scaleParallelism×GOMAXPROCS goroutines to scaleActive random
// tenants of a node holding 10, 10,000 or 100,000 tenants. The node is real:
// TCP on loopback, raft with its log on disk (a single voter), Pebble on
// disk. It is built once per count and shared by that count's
// sub-benchmarks; see newScaleCluster.
func BenchmarkRequestOverhead(b *testing.B) {
	for _, n := range scaleTenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			if testing.Short() && n > scaleShortMax {
				b.Skipf("-short: at most %d tenants", scaleShortMax)
			}
			c := newScaleCluster(b, n)
			b.Run("Get", func(b *testing.B) {
				c.run(b, func(ctx context.Context, t *client.Tenant, key []byte) error {
					_, err := t.Get(ctx, key)
					return err
				})
			})
			b.Run("Put", func(b *testing.B) {
				c.run(b, func(ctx context.Context, t *client.Tenant, key []byte) error {
					return t.Set(ctx, key, c.value)
				})
			})
		})
	}
}

// run times op with b.RunParallel. Each goroutine sticks to one active
// tenant and walks that tenant's keys from a random start.
func (c *scaleCluster) run(b *testing.B, op func(context.Context, *client.Tenant, []byte) error) {
	ctx := b.Context()
	var next atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(scaleParallelism)
	b.RunParallel(func(pb *testing.PB) {
		g := next.Add(1)
		t := c.active[g%uint64(len(c.active))]
		r := rand.New(rand.NewPCG(g, 7))
		for pb.Next() {
			if err := op(ctx, t, c.keys[r.IntN(len(c.keys))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// newScaleCluster starts a single-node cluster (testcluster/inproc) and creates n
// tenants through the client's admin API, scaleCreators at a time over one
// operator connection: each creator creates a tenant, then a tenant token
// for it, so that the token keyspace grows with the tenants as it would in
// a real cluster. It then opens a client per active tenant, with that
// tenant's token, and writes its keys in one batch. Everything lives until b ends; b is
// the parent of the per-op sub-benchmarks, which Go runs once whatever
// -count says (only leaf benchmarks are repeated).
//
// Automatic raft snapshots are off: a snapshot copies the whole store, so
// its cost does grow with the tenants, and it would land in some timed
// loops and not in others. It is not a per-request cost.
func newScaleCluster(b *testing.B, n int) *scaleCluster {
	b.Helper()
	start := time.Now()
	c1 := inproc.Start(b, 1, &inproc.Options{
		Tuning:   &server.RaftTuning{SnapshotThreshold: math.MaxInt64},
		RunShort: true, // -short runs the smaller counts
	})
	addr := c1.Nodes[0].Listen
	admin := openScaleClient(b, addr, c1.Token)
	started := time.Since(start)

	r := rand.New(rand.NewPCG(11, uint64(n)))
	picked := r.Perm(n)[:min(scaleActive, n)]
	secrets := make(map[int]string, len(picked))
	for _, i := range picked {
		secrets[i] = ""
	}
	name := func(i int) string { return fmt.Sprintf("tenant-%07d", i) }

	var (
		nextTenant atomic.Int64
		mu         sync.Mutex
		firstErr   error
		wg         sync.WaitGroup
	)
	ctx, stop := context.WithCancel(b.Context())
	defer stop()
	for range scaleCreators {
		wg.Go(func() {
			for {
				i := int(nextTenant.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				_, err := admin.CreateTenant(ctx, name(i), nil)
				var secret string
				if err == nil {
					secret, err = admin.NewTenantToken(ctx, name(i))
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("tenant %s: %w", name(i), err)
				}
				if _, ok := secrets[i]; ok {
					secrets[i] = secret
				}
				mu.Unlock()
				if err != nil {
					stop()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	created := time.Since(start) - started

	c := &scaleCluster{value: make([]byte, 100)}
	for i := range scaleKeys {
		c.keys = append(c.keys, fmt.Appendf(nil, "key-%011d", i))
	}
	for _, i := range picked {
		db := openScaleClient(b, addr, secrets[i])
		t := db.Tenant(name(i))
		batch := t.NewBatch()
		for _, k := range c.keys {
			batch.Set(k, c.value)
		}
		if err := batch.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		c.active = append(c.active, t)
	}
	b.Logf("node up in %v; %d tenants and %d tokens created in %v (%.0f tenants/s); ready in %v",
		started.Round(time.Millisecond), n, n, created.Round(time.Millisecond),
		float64(n)/created.Seconds(), time.Since(start).Round(time.Millisecond))
	return c
}

func openScaleClient(b *testing.B, addr, token string) *client.DB {
	b.Helper()
	db, err := client.Open(b.Context(), []string{addr}, &client.Options{Token: token})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}
