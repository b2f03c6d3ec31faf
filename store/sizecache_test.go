package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
)

func sizeCacheSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TENANTKV_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "TENANTKV_SEED")
		seed = s
	}
	t.Logf("seed %d (replay with TENANTKV_SEED=%d)", seed, seed)
	return seed
}

// TestSizeCacheMatchesStore writes random batches (sets, deletes,
// delete-ranges, clears, through unindexed and indexed views, some closed
// without commit), restores the store from a snapshot of another now and
// then, and checks after each step that every size the cache answers is
// the committed value's, and that it answers for the keys written last.
func TestSizeCacheMatchesStore(t *testing.T) {
	r := rand.New(rand.NewPCG(sizeCacheSeed(t), 3))
	s := newMemStore(t)
	ids := []keyspace.TenantID{1, 2, 3}
	key := func() []byte { return fmt.Appendf(nil, "k%02d", r.IntN(40)) }
	long := bytes.Repeat([]byte{'L'}, maxCachedKey+1)
	check := func(step int) {
		b := s.NewBatch()
		defer b.Close()
		for _, id := range ids {
			v, err := b.TenantUnindexed(id)
			require.NoError(t, err)
			for i := range 40 {
				k := fmt.Appendf(nil, "k%02d", i)
				size, present, ok := v.CommittedSize(k)
				if !ok {
					continue
				}
				val, err := v.Get(k)
				if errors.Is(err, ErrNotFound) {
					require.False(t, present, "step %d: tenant %d key %s is absent, the cache says %d bytes", step, id, k, size)
					continue
				}
				require.NoError(t, err)
				require.True(t, present, "step %d: tenant %d key %s holds %d bytes, the cache says absent", step, id, k, len(val))
				require.Equal(t, len(val), size, "step %d: tenant %d key %s", step, id, k)
			}
			_, _, ok := v.CommittedSize(long)
			require.False(t, ok, "a key longer than maxCachedKey is never cached")
			// An indexed view reads the batch's own writes: never the cache.
			iv, err := b.Tenant(id)
			require.NoError(t, err)
			_, _, ok = iv.CommittedSize([]byte("k00"))
			require.False(t, ok)
		}
	}
	for step := range 400 {
		if r.IntN(40) == 0 {
			other := newMemStore(t)
			b := other.NewBatch()
			v, err := b.TenantUnindexed(ids[0])
			require.NoError(t, err)
			require.NoError(t, v.Set([]byte("k01"), []byte("from the snapshot")))
			require.NoError(t, b.Commit(1, false))
			require.NoError(t, s.Restore(bytes.NewReader(snapshotStream(t, other))))
			check(step)
			continue
		}
		b := s.NewBatch()
		for range 1 + r.IntN(8) {
			id := ids[r.IntN(len(ids))]
			var v *TenantView
			var err error
			if id == 3 {
				v, err = b.Tenant(id) // one tenant written through the indexed part
			} else {
				v, err = b.TenantUnindexed(id)
			}
			require.NoError(t, err)
			switch n := r.IntN(20); {
			case n < 12:
				k := key()
				require.NoError(t, v.Set(k, bytes.Repeat([]byte{'v'}, r.IntN(50))))
			case n < 16:
				k := key()
				require.NoError(t, v.Delete(k))
			case n < 18:
				lo, hi := key(), key()
				if bytes.Compare(lo, hi) < 0 {
					require.NoError(t, v.DeleteRange(lo, hi))
				}
			case n < 19:
				require.NoError(t, v.Clear())
			default:
				require.NoError(t, v.Set(long, []byte("x")))
			}
		}
		if r.IntN(10) == 0 {
			b.Close() // never committed: the cache must not see it
		} else {
			require.NoError(t, b.Commit(uint64(step+2), false))
		}
		check(step)
	}
	// A key written in the last committed batch is answered from memory.
	b := s.NewBatch()
	v, err := b.TenantUnindexed(1)
	require.NoError(t, err)
	require.NoError(t, v.Set([]byte("hot"), []byte("12345")))
	require.NoError(t, b.Commit(1000, false))
	b = s.NewBatch()
	defer b.Close()
	v, err = b.TenantUnindexed(1)
	require.NoError(t, err)
	size, present, ok := v.CommittedSize([]byte("hot"))
	require.True(t, ok, "the key just written is cached")
	require.True(t, present)
	require.Equal(t, 5, size)
}
