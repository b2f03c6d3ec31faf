package testcluster

import (
	"testing"
	"time"
)

// The raft timings of every test cluster, in-process or of processes.
//
// The harnesses this package replaced used 100ms (client, raft), 200ms
// (internal/proof) and raft's 1s defaults (processes). 200ms is the one
// kept: it was the proof package's, chosen there because it still gives
// several elections per second of test while not flapping under the race
// detector on a loaded two-core machine, where 100ms heartbeats were seen
// to be missed. A leader's lease is half its heartbeat timeout, as the
// server derives it when none is given.
const (
	HeartbeatTimeout   = 200 * time.Millisecond
	ElectionTimeout    = 200 * time.Millisecond
	LeaderLeaseTimeout = 100 * time.Millisecond
)

// Deadlines of the harness. They bound waits; nothing sleeps for
// correctness.
const (
	StartTimeout   = 60 * time.Second // one node starts, a join included
	ReadyTimeout   = 60 * time.Second // a process prints its ready line and /readyz answers
	RecoverTimeout = 60 * time.Second // a healed cluster takes writes again
	PollInterval   = 20 * time.Millisecond
)

// ServeFlags are the `tenantkv serve` flags that give a process the test
// timings (serve derives the lease from the heartbeat timeout). Flags given
// after them win.
func ServeFlags() []string {
	return []string{"--heartbeat-timeout", HeartbeatTimeout.String(), "--election-timeout", ElectionTimeout.String()}
}

// Short skips t under `go test -short`. Every cluster the harness starts
// calls it, so the short tier runs no cluster.
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a cluster; skipped with -short (the unit tier)")
	}
}
