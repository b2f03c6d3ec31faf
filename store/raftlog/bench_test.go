package raftlog

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures synced appends of one 200-byte entry on the real
// disk (b.TempDir()), from 1 and from 16 goroutines at once. ns/op is the
// time per append over all goroutines: with 16, concurrent appends share
// WAL writes and syncs, so it falls well below one fdatasync.
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 16} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			value := make([]byte, 200)
			for i := range value {
				value[i] = byte(i)
			}
			var next atomic.Uint64
			var wg sync.WaitGroup
			errs := make(chan error, appenders)
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			b.ResetTimer()
			for range appenders {
				wg.Go(func() {
					r := &Run{Values: [][]byte{value}}
					for {
						i := next.Add(1)
						if i > uint64(b.N) {
							return
						}
						r.First = i
						if err := l.Append(r); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			if got := l.LastIndex(); got != uint64(b.N) {
				b.Fatalf("last index %d after %d appends", got, b.N)
			}
		})
	}
}
