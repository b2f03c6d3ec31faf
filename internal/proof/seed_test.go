package proof

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// testSeed returns the seed of a test's randomness: TENANTKV_SEED when it
// is set (to replay a run), else the clock. It logs the seed, so that a
// failing run can be replayed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TENANTKV_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TENANTKV_SEED=%q: want an unsigned integer", v)
		}
		seed = n
	}
	t.Logf("seed %d (TENANTKV_SEED=%d replays it)", seed, seed)
	return seed
}
