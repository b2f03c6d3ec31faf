package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Benchmarks of the isolation layer: each comes as a pair, raw (Pebble used
// directly on the same physical keys) and view (the same work through a
// TenantView), so that view/raw is the cost of the tenant layer.
//
// Fixture: an in-memory Pebble (vfs.NewMem, via Options.InMemory) holding
// 100,000 keys of tenant benchTenant, 16-byte user keys and 128-byte
// values, flushed to sstables, 64 MiB block cache. Both sides do what a
// caller needs to keep the result: values (and keys, for scans) are copied
// out of Pebble, as TenantView does.

const (
	benchKeys     = 100_000
	benchKeyLen   = 16
	benchValueLen = 128
	benchTenant   = keyspace.TenantID(42)
	benchBatch    = 100
	benchScanLen  = 100
)

func benchUserKey(i int) []byte { return fmt.Appendf(nil, "key-%012d", i) } // 16 bytes

func benchValue(r *rand.Rand) []byte {
	v := make([]byte, benchValueLen)
	for i := range v {
		v[i] = byte(r.UintN(256))
	}
	return v
}

type benchFixture struct {
	s        *Store
	view     *TenantView
	userKeys [][]byte
	physKeys [][]byte
	order    []int // a random permutation of key indexes
}

var (
	fixtureOnce sync.Once
	fixture     *benchFixture
	fixtureErr  error
)

// loadFixture builds a store of benchKeys keys. It is built once per
// process and shared by the read benchmarks, which do not change it.
func loadFixture(b *testing.B) *benchFixture {
	b.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = newBenchFixture() })
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixture
}

func newBenchFixture() (*benchFixture, error) {
	s, err := Open("", &Options{InMemory: true})
	if err != nil {
		return nil, err
	}
	f := &benchFixture{s: s}
	if f.view, err = s.liveTenant(benchTenant); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	if f.userKeys, f.physKeys, err = preload(s, r); err != nil {
		return nil, err
	}
	f.order = r.Perm(benchKeys)
	return f, nil
}

// preload writes benchKeys keys of benchTenant with random values and
// flushes them to sstables.
func preload(s *Store, r *rand.Rand) (userKeys, physKeys [][]byte, err error) {
	batch := s.db.NewBatch()
	for i := range benchKeys {
		uk := benchUserKey(i)
		pk := keyspace.TenantKey(benchTenant, uk)
		userKeys = append(userKeys, uk)
		physKeys = append(physKeys, pk)
		// Physical values carry the version envelope views expect.
		if err := batch.Set(pk, appendEnvelope(nil, 0, benchValue(r)), nil); err != nil {
			return nil, nil, err
		}
		if batch.Len() > 4<<20 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return nil, nil, err
			}
			batch.Close()
			batch = s.db.NewBatch()
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return nil, nil, err
	}
	batch.Close()
	return userKeys, physKeys, s.Flush()
}

func BenchmarkPointGet(b *testing.B) {
	f := loadFixture(b)
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			v, closer, err := f.s.db.Get(f.physKeys[f.order[i%benchKeys]])
			if err != nil {
				b.Fatal(err)
			}
			out := bytes.Clone(v)
			closer.Close()
			if len(out) != benchValueLen+2 { // format byte, version 0
				b.Fatal("short value")
			}
			i++
		}
	})
	b.Run("view", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			v, err := f.view.Get(f.userKeys[f.order[i%benchKeys]])
			if err != nil {
				b.Fatal(err)
			}
			if len(v) != benchValueLen {
				b.Fatal("short value")
			}
			i++
		}
	})
}

func BenchmarkScan100(b *testing.B) {
	f := loadFixture(b)
	span := keyspace.TenantSpan(benchTenant)
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			start := f.order[i%benchKeys] % (benchKeys - benchScanLen)
			it, err := f.s.db.NewIter(&pebble.IterOptions{LowerBound: f.physKeys[start], UpperBound: span.End})
			if err != nil {
				b.Fatal(err)
			}
			var kvs []KV
			for ok := it.First(); ok && len(kvs) < benchScanLen; ok = it.Next() {
				v, err := it.ValueAndErr()
				if err != nil {
					b.Fatal(err)
				}
				kvs = append(kvs, KV{Key: bytes.Clone(it.Key()[keyspace.PrefixLen:]), Value: bytes.Clone(v)})
			}
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
			if len(kvs) != benchScanLen {
				b.Fatalf("scanned %d", len(kvs))
			}
			i++
		}
	})
	b.Run("view", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		opts := &ScanOptions{Limit: benchScanLen}
		for b.Loop() {
			start := f.order[i%benchKeys] % (benchKeys - benchScanLen)
			kvs, _, err := f.view.Scan(f.userKeys[start], nil, opts)
			if err != nil {
				b.Fatal(err)
			}
			if len(kvs) != benchScanLen {
				b.Fatalf("scanned %d", len(kvs))
			}
			i++
		}
	})
}

// BenchmarkBatchedSet writes batches of 100 overwrites of the 100,000
// preloaded keys, in random order, committed without sync. raw uses an indexed Pebble batch, as Store.NewBatch
// does (its views read their own writes); raw-unindexed shows what the
// index costs. Each sub-benchmark has a store of its own.
func BenchmarkBatchedSet(b *testing.B) {
	setup := func(b *testing.B) (*Store, [][]byte, [][]byte, []byte) {
		b.Helper()
		s, err := Open("", &Options{InMemory: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		r := rand.New(rand.NewPCG(3, 4))
		uks, pks, err := preload(s, r)
		if err != nil {
			b.Fatal(err)
		}
		r.Shuffle(len(uks), func(i, j int) { uks[i], uks[j] = uks[j], uks[i]; pks[i], pks[j] = pks[j], pks[i] })
		return s, uks, pks, benchValue(r)
	}
	rawBench := func(indexed bool) func(b *testing.B) {
		return func(b *testing.B) {
			s, _, pks, val := setup(b)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				var batch *pebble.Batch
				if indexed {
					batch = s.db.NewIndexedBatch()
				} else {
					batch = s.db.NewBatch()
				}
				for range benchBatch {
					if err := batch.Set(pks[n%benchKeys], val, nil); err != nil {
						b.Fatal(err)
					}
					n++
				}
				if err := batch.Commit(pebble.NoSync); err != nil {
					b.Fatal(err)
				}
				batch.Close()
			}
		}
	}
	b.Run("raw", rawBench(true))
	b.Run("raw-unindexed", rawBench(false))
	b.Run("view", func(b *testing.B) {
		s, uks, _, val := setup(b)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			batch := s.NewBatch()
			v, err := batch.Tenant(benchTenant)
			if err != nil {
				b.Fatal(err)
			}
			for range benchBatch {
				if err := v.Set(uks[n%benchKeys], val); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if err := batch.Commit(0, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
