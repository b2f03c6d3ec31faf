package store

import (
	"testing"
	"time"
)

// TestRestorePacerBoundsTheRate checks the pacer's lower bound: writing
// 2 MiB at 4 MiB/s takes at least half a second (less the first chunk,
// which passes at once only if it fits the rate since the start).
func TestRestorePacerBoundsTheRate(t *testing.T) {
	p := newRestorePacer(4 << 20)
	start := time.Now()
	for range 4 {
		p.wait(512 << 10)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("2 MiB at 4 MiB/s took %v, want at least 500ms", d)
	}
}
