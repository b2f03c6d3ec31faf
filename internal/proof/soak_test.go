//go:build soak

package proof

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// soakDuration is how long TestSoak runs: TENANTKV_SOAK_DURATION (or
// TENANTKV_SOAK), default 10 minutes.
func soakDuration(t *testing.T) time.Duration {
	for _, env := range []string{"TENANTKV_SOAK_DURATION", "TENANTKV_SOAK"} {
		if v := os.Getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				t.Fatalf("%s=%q: want a positive duration such as 10m", env, v)
			}
			return d
		}
	}
	return 10 * time.Minute
}

// soakScenario is one long scenario; budget is the time it may take.
type soakScenario struct {
	name string
	run  func(t *testing.T, budget time.Duration, seed uint64)
}

var soakScenarios = []soakScenario{
	{"linearizability-3-nodes", func(t *testing.T, budget time.Duration, seed uint64) {
		// Few trailing logs: a node that was away long enough catches up
		// from a snapshot (InstallSnapshot) once the first snapshots are
		// taken (raft's snapshot interval, 2 to 4 minutes, is fixed).
		tuning := testRaft
		tuning.SnapshotThreshold, tuning.TrailingLogs = 256, 128
		runInProcess(t, linConfig{name: "soak-lin3", nodes: 3, tenants: 3, keys: 5, workers: 12,
			duration: budget, faults: allFaults, seed: seed, raft: &tuning})
	}},
	{"processes-sigstop-sigkill", func(t *testing.T, budget time.Duration, seed uint64) {
		runProcesses(t, linConfig{name: "soak-proc", nodes: 3, tenants: 3, keys: 4, workers: 9,
			duration: budget, faults: allProcFaults, seed: seed})
	}},
	{"isolation-attacks", func(t *testing.T, budget time.Duration, seed uint64) {
		runIsolation(t, 3, 20_000, seed)
	}},
	{"load-1000-tenants", func(t *testing.T, budget time.Duration, seed uint64) {
		runLoad(t, loadConfig{nodes: 3, tenants: 1000, workers: 200, keys: 100, duration: budget, seed: seed})
	}},
	{"linearizability-5-nodes", func(t *testing.T, budget time.Duration, seed uint64) {
		runInProcess(t, linConfig{name: "soak-lin5", nodes: 5, tenants: 2, keys: 4, workers: 10,
			duration: budget, faults: allFaults, seed: seed})
	}},
	{"hostile-input", func(t *testing.T, budget time.Duration, seed uint64) {
		runHostile(t)
	}},
	{"disk-full", func(t *testing.T, budget time.Duration, seed uint64) {
		runDiskFull(t, 3, 6, seed)
	}},
	{"commits-after-history", func(t *testing.T, budget time.Duration, seed uint64) {
		runHistoryAttack(t, 3)
	}},
	{"memory-and-connections", func(t *testing.T, budget time.Duration, seed uint64) {
		runConnAttacks(t) // attack_conn_test.go
	}},
	{"small-gaps", func(t *testing.T, budget time.Duration, seed uint64) {
		// Issue 18's smaller gaps (attack_gaps_test.go), in process.
		t.Run("watch-limits", TestAttackGapsWatchLimits)
		t.Run("watch-revocation", TestAttackGapsWatchCutAtRevocation)
		t.Run("hello-answers", TestAttackGapsHelloAnswers)
	}},
	{"joins-under-load", func(t *testing.T, budget time.Duration, seed uint64) {
		runJoinAttack(t, soakJoinMB(t), seed)
	}},
	{"apply-cost", func(t *testing.T, budget time.Duration, seed uint64) {
		// Issue 18's expensive writes, bulk work and write limits
		// (attack_apply_test.go); each asserts the victim's latency, so
		// they run alone.
		t.Run("expensive-writes", TestAttackApplyCost)
		t.Run("bulk-work", TestAttackBulkWork)
		t.Run("write-limits", TestAttackWriteLimits)
	}},
	{"forged-raft-rpcs", func(t *testing.T, budget time.Duration, seed uint64) {
		TestAttackForgedRaftRPCRefusedWithPeerTLS(t) // attack_peer_test.go
	}},
	{"attacks-beside-linearizability", func(t *testing.T, budget time.Duration, seed uint64) {
		runAttacksBeside(t, budget, seed)
	}},
}

// runAttacksBeside runs the attacks whose checks are bounds and refusals
// rather than latencies (memory and connections, forged raft RPCs, write
// limits, the smaller gaps) in a loop, on clusters of their own, at the same
// time as a linearizability check under faults and SIGSTOP/SIGKILL crash
// cycles of real processes: the safety checks must hold while the machine
// is also under attack, and the attacks' bounds while it is also faulting.
func runAttacksBeside(t *testing.T, budget time.Duration, seed uint64) {
	t.Run("linearizability", func(t *testing.T) {
		t.Parallel()
		runInProcess(t, linConfig{name: "soak-beside-lin", nodes: 3, tenants: 3, keys: 5, workers: 9,
			duration: budget, faults: allFaults, seed: seed})
	})
	t.Run("crashes", func(t *testing.T) {
		t.Parallel()
		runProcesses(t, linConfig{name: "soak-beside-proc", nodes: 3, tenants: 2, keys: 4, workers: 6,
			duration: budget, faults: allProcFaults, seed: seed + 1})
	})
	t.Run("attacks", func(t *testing.T) {
		t.Parallel()
		deadline := time.Now().Add(budget)
		for round := 0; round == 0 || time.Now().Before(deadline); round++ {
			t.Run(fmt.Sprintf("%02d-memory-and-connections", round), runConnAttacks)
			t.Run(fmt.Sprintf("%02d-forged-raft-rpcs", round), TestAttackForgedRaftRPCRefusedWithPeerTLS)
			t.Run(fmt.Sprintf("%02d-write-limits", round), TestAttackWriteLimits)
			t.Run(fmt.Sprintf("%02d-watch-revocation", round), TestAttackGapsWatchCutAtRevocation)
			t.Run(fmt.Sprintf("%02d-hello-answers", round), TestAttackGapsHelloAnswers)
		}
	})
}

// maxScenario caps one scenario's share of the soak, so that every
// scenario runs, several times in a long soak.
const maxScenario = 3 * time.Minute

// TestSoak loops every scenario until TENANTKV_SOAK_DURATION has passed,
// then prints a summary: histories checked, operations, faults, crashes,
// attack attempts and violations, which must be 0.
//
//	TENANTKV_SOAK_DURATION=30m go test -race -tags soak -run Soak -timeout 0 -v ./internal/proof/
func TestSoak(t *testing.T) {
	total := soakDuration(t)
	start := time.Now()
	deadline := start.Add(total)
	seed := uint64(start.UnixNano())
	share := max(min(maxScenario, total/time.Duration(len(soakScenarios))), 20*time.Second)
	t.Logf("soak: %v, up to %v a scenario, seed %d", total, share, seed)
	for round := 0; ; round++ {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		sc := soakScenarios[round%len(soakScenarios)]
		budget := max(min(left, share), 10*time.Second)
		t.Run(fmt.Sprintf("%03d-%s", round, sc.name), func(t *testing.T) {
			sc.run(t, budget, seed+uint64(round))
		})
	}
	s := summary(time.Since(start))
	fmt.Print(s)
	t.Log("\n" + s)
	if err := os.MkdirAll("testdata", 0o755); err == nil {
		path, _ := filepath.Abs(filepath.Join("testdata", "soak-summary.txt"))
		if err := os.WriteFile(path, []byte(s), 0o644); err == nil {
			fmt.Printf("summary written to %s\n", path)
		}
	}
	switch v := totals.Violations.Load(); {
	case v != 0:
		t.Errorf("soak found %d violations; the failures above say where, with their evidence", v)
	case t.Failed():
		t.Errorf("soak found no violation of a safety promise, but failures of other kinds; see above")
	}
}
