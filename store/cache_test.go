package store

import (
	"math/rand/v2"
	"testing"
)

// TestBlockCacheHoldsBlocks checks that the block cache keeps the blocks
// reads load once memtables have rotated. Pebble reserves each memtable,
// and the one it keeps for reuse, against the cache's capacity; a cache of
// only CacheSize was left with no room at all, and every read went to the
// file (issue 15). After one pass over every key, a second pass must be
// served from the cache.
func TestBlockCacheHoldsBlocks(t *testing.T) {
	s, err := Open(t.TempDir(), nil) // the defaults, as a node runs

	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// preload commits 4 MiB batches and flushes: the memtable rotates, and
	// Pebble keeps the old one for reuse.
	_, phys, err := preload(s, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.db.Metrics().Flush.Count; n < 2 {
		t.Fatalf("%d flushes: the fixture no longer rotates memtables", n)
	}
	read := func() {
		for _, k := range phys {
			_, closer, err := s.db.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			closer.Close()
		}
	}
	read()
	before := s.db.Metrics().BlockCache
	read()
	after := s.db.Metrics().BlockCache
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	if misses*100 > hits { // the ~15 MB of blocks fit in 64 MiB: all hits
		t.Fatalf("second pass over %d keys: %d block cache hits, %d misses (cache holds %d blocks, %d bytes)",
			len(phys), hits, misses, after.Count, after.Size)
	}
}
