package proof

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tenantkv/tenantkv/client"
)

// Disk faults at the process level. store/ owns Pebble, and Pebble's errorfs
// cannot be reached from outside it (see docs/RELIABILITY.md for the hook
// that would allow it), so these tests use what the kernel offers any
// process: RLIMIT_FSIZE, lowered on a running node with prlimit(2). Every
// write that would grow a file past the limit then fails with EFBIG ("file
// too large"), as on a full disk: the raft log (bbolt), Pebble's WAL,
// sstables and manifest alike. (Go ignores SIGXFSZ unless asked for it, so
// the write fails rather than the process being killed.)
//
// The promise checked: a node whose disk fills up stops taking writes or
// fails, and never acknowledges a write it did not make durable. After the
// node is killed and restarted without the limit, every acknowledged write
// is there, every write that was refused outright is not, and the node
// serves again.

// limitFileSize sets the RLIMIT_FSIZE of a running process.
func limitFileSize(pid int, bytes uint64) error {
	lim := unix.Rlimit{Cur: bytes, Max: unix.RLIM_INFINITY}
	return unix.Prlimit(pid, unix.RLIMIT_FSIZE, &lim, nil)
}

// largestFile returns the size of the largest file under dir.
func largestFile(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n = max(n, info.Size())
		}
		return nil
	})
	return n
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// diskFullRound is what one round saw.
type diskFullRound struct {
	limit                        uint64
	acked, refused, unknown      int
	crashed, panicked, recovered bool
	firstError                   string
	missingAcked, presentRefused int
}

// runDiskFull runs rounds of: write, fill the victim's disk (a node of the
// cluster, the leader when it can be found), keep writing, kill, restart
// with the disk freed, verify.
func runDiskFull(t testing.TB, nodes, rounds int, seed uint64) {
	t.Helper()
	pc := newProcCluster(t, nodes)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 5))
	if _, err := pc.admin.CreateTenant(ctx, "disk", nil); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{} // key → value of every acknowledged write
	refused := map[string]bool{} // keys whose only write was refused outright
	seq := 0
	// write writes up to n new keys, stopping early after stopAfter
	// consecutive failures or at the deadline. recovered reports a write
	// acknowledged after one had failed.
	write := func(n, stopAfter int, timeout time.Duration, deadline time.Time) (ok, bad, unk int, first string, recovered bool) {
		consecutive := 0
		for range n {
			if time.Now().After(deadline) {
				break
			}
			seq++
			k := fmt.Sprintf("k%06d", seq)
			v := fmt.Sprintf("v%d-%s", seq, strings.Repeat("x", 200+rng.IntN(2000)))
			opCtx, cancel := context.WithTimeout(ctx, timeout)
			err := pc.admin.Tenant("disk").Set(opCtx, []byte(k), []byte(v))
			cancel()
			switch {
			case err == nil:
				acked[k] = v
				ok++
				recovered = recovered || first != ""
				consecutive = 0
				continue
			case errors.Is(err, client.ErrCommitUnknown):
				unk++
			default:
				refused[k] = true
				bad++
			}
			if first == "" {
				first = err.Error()
			}
			if consecutive++; consecutive >= stopAfter {
				break
			}
		}
		return ok, bad, unk, first, recovered
	}
	var results []diskFullRound
	for round := range rounds {
		if _, bad, unk, first, _ := write(50+rng.IntN(150), 5, 10*time.Second, time.Now().Add(time.Minute)); bad+unk > 0 {
			t.Fatalf("round %d: writes failed before any fault: %s", round, first)
		}
		victim := pc.Nodes[rng.IntN(len(pc.Nodes))]
		if l := pc.leader(ctx); l != nil && rng.IntN(3) > 0 {
			victim = l
		}
		var r diskFullRound
		switch rng.IntN(3) {
		case 0:
			r.limit = 1 // no file may grow at all
		case 1:
			// The raft log may fill the space it has; the store's WAL
			// grows into the limit a little later.
			r.limit = uint64(fileSize(filepath.Join(victim.Dir, "raft", "raft.db")))
		default:
			r.limit = uint64(largestFile(victim.Dir)) + uint64(rng.IntN(1<<20))
		}
		pid := victim.Pid()
		if err := limitFileSize(pid, r.limit); err != nil {
			t.Fatalf("prlimit: %v", err)
		}
		totals.Faults.Add(1)
		if nodes == 1 {
			// The node is the cluster: it fails, and stays failed.
			r.acked, r.refused, r.unknown, r.firstError, _ = write(300+rng.IntN(1500), 5, time.Second, time.Now().Add(time.Minute))
		} else {
			// The majority's disks are fine: if the victim's failure
			// stopped writes, they must resume without it.
			r.acked, r.refused, r.unknown, r.firstError, r.recovered = write(1<<30, 1<<30, time.Second, time.Now().Add(15*time.Second))
			if r.firstError != "" && !r.recovered {
				totals.Violations.Add(1)
				t.Errorf("round %d: writes failed when %s's disk filled and did not resume within 15 s, although the other %d nodes' disks are fine",
					round, victim.ID, nodes-1)
			}
		}

		// Kill the victim if it is still up, restart it without the limit.
		r.crashed = !victim.Alive()
		r.panicked = strings.Contains(victim.Stderr(), "panic:")
		victim.TakeUnexpectedExit()
		if pc.Kill(victim) {
			totals.Crashes.Add(1)
		}
		if err := pc.Restart(ctx, victim); err != nil {
			t.Fatalf("round %d: restart %s after its disk was freed: %v", round, victim.ID, err)
		}
		for _, nd := range pc.Nodes {
			if err := pc.Restart(ctx, nd); err != nil {
				t.Fatalf("round %d: restart %s: %v", round, nd.ID, err)
			}
		}
		if err := pc.waitWritable(ctx, "disk"); err != nil {
			t.Fatalf("round %d: the cluster takes no writes after the disk was freed: %v", round, err)
		}
		// Every acknowledged write is there; no refused write is.
		for k, v := range acked {
			got, err := pc.admin.Tenant("disk").Get(ctx, []byte(k))
			if err != nil || string(got) != v {
				r.missingAcked++
				if r.missingAcked <= 5 {
					t.Errorf("LOST WRITE after a full disk (round %d, victim %s, limit %d): %s was acknowledged, now %v",
						round, victim.ID, r.limit, k, err)
				}
			}
		}
		for k := range refused {
			if _, err := pc.admin.Tenant("disk").Get(ctx, []byte(k)); !errors.Is(err, client.ErrNotFound) {
				r.presentRefused++
				if r.presentRefused <= 5 {
					t.Errorf("a write refused with a definite error is present after a full disk (round %d): %s (%v)", round, k, err)
				}
			}
		}
		totals.Violations.Add(int64(r.missingAcked + r.presentRefused))
		totals.Operations.Add(int64(r.acked + r.refused + r.unknown))
		results = append(results, r)
		t.Logf("round %d: %s's files limited to %d bytes: %d writes acknowledged, %d refused, %d unknown afterwards (resumed after failing: %v); node crashed by itself: %v (panic: %v); first error: %.200s",
			round, victim.ID, r.limit, r.acked, r.refused, r.unknown, r.recovered, r.crashed, r.panicked, r.firstError)
	}
	totals.Runs.Add(1)
	// Races are failures; a panic on a full disk is reported above, not
	// failed: the node stops, which is what a full disk allows.
	for _, nd := range pc.Nodes {
		logs, _ := nd.History()
		for _, l := range logs {
			if strings.Contains(l, "WARNING: DATA RACE") {
				t.Errorf("%s reported a data race:\n%s", nd.ID, tailOf(l, 4000))
			}
		}
	}
	t.Logf("disk full: %d rounds, %d acknowledged writes checked after restarts", len(results), len(acked))
}

// TestDiskFullLosesNoAcknowledgedWrite fills the disk of a single node
// twice, at random points, and checks every acknowledged write after the
// node restarts on a freed disk. Skipped with -short: it builds the binary.
func TestDiskFullLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tenantkv binary and runs processes; skipped with -short")
	}
	runDiskFull(t, 1, 2, testSeed(t))
}
