package bench

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// ZipfianConstant is the skew YCSB uses for its zipfian distributions: the
// item of rank r is chosen with probability proportional to 1/r^0.99.
const ZipfianConstant = 0.99

// Zipfian draws ranks in [0, n) with a zipfian distribution, rank 0 being
// the most popular, by the algorithm of YCSB's ZipfianGenerator (Gray et al.,
// "Quickly Generating Billion-Record Synthetic Databases", SIGMOD 1994).
// Its constants are computed once by NewZipfian in O(n); a Zipfian is
// immutable and safe for concurrent use, each caller bringing its own source
// of randomness.
type Zipfian struct {
	n     uint64
	theta float64
	alpha float64
	zetan float64
	eta   float64
	half  float64 // 1 + 0.5^theta: the bound below which rank 1 is drawn
}

// NewZipfian returns a generator of ranks in [0, n) with skew theta, which
// must be in (0, 1); n must be at least 1.
func NewZipfian(n uint64, theta float64) *Zipfian {
	if n == 0 {
		n = 1
	}
	zetan := zeta(n, theta)
	zeta2 := zeta(2, theta)
	z := &Zipfian{
		n:     n,
		theta: theta,
		alpha: 1 / (1 - theta),
		zetan: zetan,
		half:  1 + math.Pow(0.5, theta),
	}
	z.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/zetan)
	return z
}

// zeta returns the generalized harmonic number sum_{i=1..n} 1/i^theta.
func zeta(n uint64, theta float64) float64 {
	var sum float64
	for i := uint64(1); i <= n; i++ {
		sum += 1 / math.Pow(float64(i), theta)
	}
	return sum
}

// N returns the number of ranks.
func (z *Zipfian) N() uint64 { return z.n }

// Prob returns the probability of rank r under the exact zipfian law the
// generator approximates.
func (z *Zipfian) Prob(r uint64) float64 {
	return 1 / (math.Pow(float64(r+1), z.theta) * z.zetan)
}

// Next draws a rank using rng.
func (z *Zipfian) Next(rng *rand.Rand) uint64 {
	u := rng.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.half || z.n == 1 {
		return min(1, z.n-1)
	}
	r := uint64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return min(r, z.n-1)
}

// scatter is a fixed bijection of [0, n) that spreads popular ranks over the
// whole range, as YCSB's scrambled zipfian does with a hash: without it the
// hot keys would all sit at the start of the key space, and the hot tenants
// would be the first ones created. Unlike a hash it keeps every item's
// probability, since no two ranks collide.
type scatter struct {
	n, mul, add uint64
}

func newScatter(n uint64) scatter {
	if n <= 1 {
		return scatter{n: 1, mul: 1}
	}
	// A multiplier coprime with n makes r -> (r*mul + add) mod n a bijection.
	// Stepping through 1..n-1 ends at the latest at 1.
	mul := max(uint64(0x9E3779B97F4A7C15)%n, 1)
	for gcd(mul, n) != 1 {
		mul = mul%(n-1) + 1
	}
	return scatter{n: n, mul: mul, add: n / 3}
}

func (s scatter) at(r uint64) uint64 {
	// r*mul may need 128 bits; the remainder is exact either way.
	hi, lo := bits.Mul64(r, s.mul)
	return (bits.Rem64(hi, lo, s.n) + s.add) % s.n
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
