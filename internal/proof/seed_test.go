package proof

import (
	"testing"

	"github.com/tenantkv/tenantkv/internal/testcluster"
)

// testSeed returns the seed of a test's randomness (testcluster.Seed: it
// logs it, and TENANTKV_SEED replays it).
func testSeed(t testing.TB) uint64 {
	t.Helper()
	return uint64(testcluster.Seed(t))
}
