package client

import (
	"fmt"
	"testing"
)

// BenchmarkGetParallel measures the client's per-request cost against the
// in-process fake server: many goroutines share one connection.
func BenchmarkGetParallel(b *testing.B) {
	srv := newFakeServer(b)
	db, err := Open(b.Context(), []string{srv.addr}, &Options{Token: acmeToken})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	acme := db.Tenant("acme")
	key := []byte("key")
	if err := acme.Set(b.Context(), key, []byte("value")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := acme.Get(b.Context(), key); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRange measures paging through 1,000 keys in pages of 100.
func BenchmarkRange(b *testing.B) {
	srv := newFakeServer(b)
	db, err := Open(b.Context(), []string{srv.addr}, &Options{Token: acmeToken})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	acme := db.Tenant("acme")
	for i := range 1000 {
		if err := acme.Set(b.Context(), fmt.Appendf(nil, "k%04d", i), []byte("value")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range acme.Range(b.Context(), KeyRange{}, &RangeOptions{PageSize: 100}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("%d keys", n)
		}
	}
}
