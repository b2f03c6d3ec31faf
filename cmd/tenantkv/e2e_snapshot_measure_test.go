package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMeasureSnapshotSaveWrites measures what a `snapshot save` costs the
// writes of a three-node cluster of real processes: the latency of small
// writes from concurrent writers in a window without a save and in the
// window of a save, taken three times as fast as it goes and three times
// at --rate 16MiB. It asserts nothing about time and
// runs only when TENANTKV_MEASURE_SNAPSHOT is set, to the number of MB to
// load first (docs/PERFORMANCE.md quotes its output):
//
//	TENANTKV_MEASURE_SNAPSHOT=300 go test -count=1 -run TestMeasureSnapshotSaveWrites -v -timeout 30m ./cmd/tenantkv/
func TestMeasureSnapshotSaveWrites(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("TENANTKV_MEASURE_SNAPSHOT"))
	if mb <= 0 {
		t.Skip("set TENANTKV_MEASURE_SNAPSHOT=MB to measure")
	}
	skipShort(t)
	tc := startTrio(t)
	c := tc.cli(t, tc.nodes...)
	c.ok("tenant", "create", "load")
	c.ok("tenant", "create", "probe")
	loadDB := openTokenDB(t, strings.TrimSpace(c.ok("tenant", "token", "load")), tc.addrs()...)
	probeDB := openTokenDB(t, strings.TrimSpace(c.ok("tenant", "token", "probe")), tc.addrs()...)
	start := time.Now()
	value := bytes.Repeat([]byte("0123456789abcdef"), 100_000/16)
	for i := 0; i < mb*10; i += 40 { // 40 values of 100 kB: 4 MB a batch
		b := loadDB.Tenant("").NewBatch()
		for j := i; j < i+40 && j < mb*10; j++ {
			b.Set(fmt.Appendf(nil, "big/%07d", j), value)
		}
		if err := b.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("loaded %d MB in %v", mb, time.Since(start).Round(time.Millisecond))

	const writers = 8
	type sample struct {
		at  time.Time
		lat time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tn := probeDB.Tenant("")
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				err := tn.Set(ctx, fmt.Appendf(nil, "w%d/%d", w, i%1000), []byte("small value of a probe write"))
				if err != nil {
					continue
				}
				mu.Lock()
				samples = append(samples, sample{t0, time.Since(t0)})
				mu.Unlock()
			}
		}()
	}
	window := func(from, to time.Time) (n int, p50, p99, worst time.Duration) {
		mu.Lock()
		var lats []time.Duration
		for _, s := range samples {
			if !s.at.Before(from) && s.at.Before(to) {
				lats = append(lats, s.lat)
			}
		}
		mu.Unlock()
		if len(lats) == 0 {
			return 0, 0, 0, 0
		}
		slices.Sort(lats)
		return len(lats), lats[len(lats)/2], lats[len(lats)*99/100], lats[len(lats)-1]
	}
	dir := t.TempDir()
	for run := 1; run <= 6; run++ {
		// Three saves as fast as they go, then three at --rate 16MiB.
		args := []string{"snapshot", "save", filepath.Join(dir, fmt.Sprintf("run%d.tkvsnap", run)), "--json"}
		if run > 3 {
			args = append(args, "--rate", "16MiB")
		}
		baseFrom := time.Now()
		time.Sleep(5 * time.Second)
		baseTo := time.Now()
		out := c.ok(args...)
		saveTo := time.Now()
		var s snapshotJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatal(err)
		}
		bn, b50, b99, bmax := window(baseFrom, baseTo)
		sn, s50, s99, smax := window(baseTo, saveTo)
		took := saveTo.Sub(baseTo)
		t.Logf("run %d %q: save of %d MB took %v (%.0f MB/s); writes without a save: %d, p50 %v p99 %v max %v; during the save: %d, p50 %v p99 %v max %v",
			run, strings.Join(args[3:], " "), s.Bytes>>20, took.Round(time.Millisecond), float64(s.Bytes)/(1<<20)/took.Seconds(),
			bn, b50.Round(10*time.Microsecond), b99.Round(10*time.Microsecond), bmax.Round(10*time.Microsecond),
			sn, s50.Round(10*time.Microsecond), s99.Round(10*time.Microsecond), smax.Round(10*time.Microsecond))
		os.Remove(args[2])
	}
	stop()
	wg.Wait()
}
