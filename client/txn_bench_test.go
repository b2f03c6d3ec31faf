package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// BenchmarkTxn measures transactions per second and the conflict rate on a
// 3-node cluster in this process (real TCP on 127.0.0.1), with 32
// concurrent clients each running read-modify-write transactions that read
// two random keys and write both:
//
//   - hot-10: the keys come from 10 (heavy contention);
//   - warm-1000: from 1,000 (light contention);
//   - add-10: blind atomic Adds to 10 keys (never conflicts).
//
// tx/s counts committed transactions; retries/tx is the number of attempts
// that failed with a conflict per committed transaction.
//
//	go test -run XXX -bench BenchmarkTxn -benchtime 5s ./client
func BenchmarkTxn(b *testing.B) {
	c := newTxCluster(b, 3)
	ctx := context.Background()
	db := c.tenant(ctx, "bench", nil)
	tn := db.Tenant("")
	for _, bc := range []struct {
		name  string
		keys  int
		blind bool
	}{{"hot-10", 10, false}, {"warm-1000", 1000, false}, {"add-10", 10, true}} {
		b.Run(bc.name, func(b *testing.B) {
			key := func(i int) []byte { return fmt.Appendf(nil, "%s/%04d", bc.name, i) }
			var attempts atomic.Int64
			b.SetParallelism(16) // x GOMAXPROCS (2 here) = 32 clients
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), 1))
				for pb.Next() {
					a, z := r.IntN(bc.keys), r.IntN(bc.keys)
					err := tn.Update(ctx, func(tx *client.Tx) error {
						attempts.Add(1)
						if bc.blind {
							tx.Add(key(a), 1)
							tx.Add(key(z), 1)
							return nil
						}
						for _, k := range []int{a, z} {
							v, err := tx.Get(ctx, key(k))
							if err != nil && !isNotFound(err) {
								return err
							}
							n := int64(0)
							if len(v) == 8 {
								n = int64(binary.LittleEndian.Uint64(v))
							}
							tx.Set(key(k), binary.LittleEndian.AppendUint64(nil, uint64(n+1)))
						}
						return nil
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tx/s")
			b.ReportMetric(float64(attempts.Load()-int64(b.N))/float64(b.N), "retries/tx")
		})
	}
}

func isNotFound(err error) bool { return errors.Is(err, client.ErrNotFound) }
