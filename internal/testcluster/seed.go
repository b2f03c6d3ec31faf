package testcluster

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// SeedEnv names the variable that replays a randomized test: set to the
// seed a run logged, the test draws the same numbers again.
const SeedEnv = "TENANTKV_SEED"

// Seed returns the seed of t's randomness: TENANTKV_SEED when it is set,
// else the clock. It logs the seed, so that a failing run can be replayed.
func Seed(t testing.TB) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if v := os.Getenv(SeedEnv); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			// Seeds logged as unsigned numbers replay too.
			u, uerr := strconv.ParseUint(v, 10, 64)
			if uerr != nil {
				t.Fatalf("%s=%q: want an integer", SeedEnv, v)
			}
			n = int64(u)
		}
		seed = n
	}
	t.Logf("seed %d (%s=%d replays it)", seed, SeedEnv, seed)
	return seed
}

// Rand returns a generator seeded by Seed (which it logs).
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	s := uint64(Seed(t))
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}
