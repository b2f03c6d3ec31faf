package bench

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestZipfianFrequencies draws many ranks and compares the frequencies of
// the most popular ones with the zipfian law.
func TestZipfianFrequencies(t *testing.T) {
	for _, n := range []uint64{10, 1000, 100_000} {
		z := NewZipfian(n, ZipfianConstant)
		rng := rand.New(rand.NewPCG(7, 7))
		const draws = 400_000
		counts := make(map[uint64]int)
		for range draws {
			r := z.Next(rng)
			if r >= n {
				t.Fatalf("n=%d: rank %d out of range", n, r)
			}
			counts[r]++
		}
		// YCSB's generator is exact for ranks 0 and 1 and approximate
		// beyond, so the tolerance grows with the rank.
		for r, tol := range map[uint64]float64{0: 0.03, 1: 0.05} {
			got := float64(counts[r]) / draws
			want := z.Prob(r)
			if math.Abs(got-want) > tol*want {
				t.Errorf("n=%d: rank %d drawn %.4f of the time, want %.4f ± %.0f%%", n, r, got, want, 100*tol)
			}
		}
		// The ten most popular ranks together, against the law.
		var got, want float64
		for r := range min(n, 10) {
			got += float64(counts[r]) / draws
			want += z.Prob(r)
		}
		if math.Abs(got-want) > 0.1*want {
			t.Errorf("n=%d: top ten ranks drawn %.4f of the time, want %.4f", n, got, want)
		}
		// Popularity falls with the rank.
		if n >= 100 && !(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[99]) {
			t.Errorf("n=%d: counts of ranks 0, 1, 9, 99 not decreasing: %d %d %d %d", n, counts[0], counts[1], counts[9], counts[99])
		}
	}
}

func TestZipfianDeterministic(t *testing.T) {
	z := NewZipfian(1000, ZipfianConstant)
	a, b := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		if x, y := z.Next(a), z.Next(b); x != y {
			t.Fatalf("draw %d: %d and %d from the same seed", i, x, y)
		}
	}
}

func TestZipfianOneItem(t *testing.T) {
	z := NewZipfian(1, ZipfianConstant)
	rng := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		if r := z.Next(rng); r != 0 {
			t.Fatalf("rank %d of a one-item generator", r)
		}
	}
}

// TestScatterIsPermutation checks that spreading ranks loses none.
func TestScatterIsPermutation(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 10, 64, 1000, 99_991, 100_000} {
		s := newScatter(n)
		seen := make([]bool, n)
		for r := range n {
			v := s.at(r)
			if v >= n || seen[v] {
				t.Fatalf("n=%d: rank %d maps to %d, out of range or taken", n, r, v)
			}
			seen[v] = true
		}
	}
}

// TestChooserZipfianSpreads checks that the hot items of a zipfian chooser
// are not all at the start of the range.
func TestChooserZipfianSpreads(t *testing.T) {
	c := newChooser(Zipf, 10_000)
	rng := rand.New(rand.NewPCG(3, 3))
	counts := make(map[uint64]int)
	for range 100_000 {
		counts[c.next(rng)]++
	}
	hot, hotCount := uint64(0), 0
	for k, v := range counts {
		if v > hotCount {
			hot, hotCount = k, v
		}
	}
	if hot == 0 {
		t.Errorf("the hottest item is item 0: ranks are not spread")
	}
	if share := float64(hotCount) / 100_000; share < 0.05 {
		t.Errorf("the hottest item has %.3f of the draws; a zipfian law over 10,000 items gives it about 0.1", share)
	}
}
