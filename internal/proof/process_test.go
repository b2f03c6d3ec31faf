package proof

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/testcluster"
	"github.com/tenantkv/tenantkv/internal/testcluster/inproc"
)

// The process-level variant runs real `tenantkv serve` processes, built from
// this tree, and injects the faults only processes have: SIGSTOP/SIGCONT
// pauses (a node that stops answering without closing anything, like a long
// GC pause or a VM stall) and SIGKILL (nothing is flushed or closed).

// buildBinary builds cmd/tenantkv once per test binary
// (testcluster.Binary); TestMain removes it.
func buildBinary(t testing.TB) string { return testcluster.Binary(t) }

func TestMain(m *testing.M) { testcluster.Main(m) }

// lockedBuffer is a bytes.Buffer safe for a process to write while a test
// reads it.
type lockedBuffer = testcluster.Buffer

// procNode is one `tenantkv serve` process; its ports and data directory
// stay the same across restarts.
type procNode = testcluster.ProcNode

// procCluster is a cluster of tenantkv processes on 127.0.0.1
// (testcluster.Procs) with an operator client.
type procCluster struct {
	*testcluster.Procs
	admin *client.DB
}

const procReadyTimeout = testcluster.ReadyTimeout

func newProcCluster(t testing.TB, n int) *procCluster {
	t.Helper()
	pc := &procCluster{Procs: testcluster.StartProcs(t, n)}
	ctx, cancel := context.WithTimeout(context.Background(), procReadyTimeout)
	defer cancel()
	db, err := client.Open(ctx, pc.Endpoints(), &client.Options{Token: pc.Token, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pc.admin = db
	return pc
}

func tailOf(s string, n int) string { return testcluster.Tail(s, n) }

func (pc *procCluster) endpoints() []string { return pc.Endpoints() }

func (pc *procCluster) operator() *client.DB { return pc.admin }

func (pc *procCluster) operatorToken() string { return pc.Token }

// leader returns the running, unpaused node that says it leads, or nil.
func (pc *procCluster) leader(ctx context.Context) *procNode {
	for _, nd := range pc.Nodes {
		if !nd.Alive() || nd.Paused() {
			continue
		}
		if st, err := nodeStatus(ctx, nd.Listen, pc.Token); err == nil && st.LeaderID == nd.ID {
			return nd
		}
	}
	return nil
}

func (pc *procCluster) waitWritable(ctx context.Context, tenant string) error {
	return inproc.WaitWritable(ctx, pc.admin, tenant, 3*time.Second)
}

func (pc *procCluster) heal(ctx context.Context) error {
	for _, nd := range pc.Nodes {
		pc.Resume(nd)
	}
	for _, nd := range pc.Nodes {
		if unexpected := nd.TakeUnexpectedExit(); unexpected != "" {
			return fmt.Errorf("NODE CRASHED: %s exited without being killed: %s", nd.ID, unexpected)
		}
		if err := pc.Restart(ctx, nd); err != nil {
			return fmt.Errorf("restart %s: %w", nd.ID, err)
		}
	}
	return nil
}

func (pc *procCluster) verify(t testing.TB, name string) {
	t.Helper()
	for _, bad := range pc.ReportCrashes() {
		totals.Violations.Add(1)
		t.Errorf("%s: %s", name, bad)
	}
	for _, nd := range pc.Nodes {
		_, lives := nd.History()
		t.Logf("%s: %s ran %d times", name, nd.ID, lives)
	}
}

// The faults of process clusters.

func (n *nemesis) procLeaderOrAny(ctx context.Context) *procNode {
	if l := n.p.leader(ctx); l != nil {
		return l
	}
	return n.p.Nodes[n.rng.IntN(len(n.p.Nodes))]
}

func (n *nemesis) procOthers(of *procNode) []*procNode {
	var out []*procNode
	for _, nd := range n.p.Nodes {
		if nd != of {
			out = append(out, nd)
		}
	}
	return out
}

func (n *nemesis) procKillRestart(ctx context.Context, victims ...*procNode) error {
	for _, v := range victims {
		if n.p.Kill(v) {
			totals.Crashes.Add(1)
		}
	}
	pause(ctx, n.between(100*time.Millisecond, 2*time.Second))
	for _, v := range victims {
		if err := n.p.Restart(context.Background(), v); err != nil {
			return err
		}
	}
	return nil
}

func (n *nemesis) procPause(ctx context.Context, v *procNode, lo, hi time.Duration) {
	if n.p.Pause(v) {
		totals.Pauses.Add(1)
	}
	pause(ctx, n.between(lo, hi))
	n.p.Resume(v)
}

var (
	procFaultPauseLeader = fault{"sigstop-leader", func(ctx context.Context, n *nemesis) error {
		l := n.procLeaderOrAny(ctx)
		n.note("SIGSTOP leader %s", l.ID)
		n.procPause(ctx, l, time.Second, 5*time.Second)
		return nil
	}}
	procFaultPauseFollower = fault{"sigstop-follower", func(ctx context.Context, n *nemesis) error {
		l := n.procLeaderOrAny(ctx)
		others := n.procOthers(l)
		v := others[n.rng.IntN(len(others))]
		n.note("SIGSTOP follower %s", v.ID)
		n.procPause(ctx, v, time.Second, 5*time.Second)
		return nil
	}}
	procFaultKillLeader = fault{"sigkill-leader", func(ctx context.Context, n *nemesis) error {
		l := n.procLeaderOrAny(ctx)
		n.note("SIGKILL leader %s", l.ID)
		return n.procKillRestart(ctx, l)
	}}
	procFaultKillFollower = fault{"sigkill-follower", func(ctx context.Context, n *nemesis) error {
		l := n.procLeaderOrAny(ctx)
		others := n.procOthers(l)
		v := others[n.rng.IntN(len(others))]
		n.note("SIGKILL follower %s", v.ID)
		return n.procKillRestart(ctx, v)
	}}
	procFaultKillAll = fault{"sigkill-all", func(ctx context.Context, n *nemesis) error {
		n.note("SIGKILL every node")
		return n.procKillRestart(ctx, n.p.Nodes...)
	}}
	procFaultPauseThenKill = fault{"sigstop-then-sigkill-leader", func(ctx context.Context, n *nemesis) error {
		// A leader frozen mid-flight is killed while frozen: whatever it
		// had not written is lost, and the others have moved on.
		l := n.procLeaderOrAny(ctx)
		n.note("SIGSTOP leader %s, then SIGKILL it", l.ID)
		if n.p.Pause(l) {
			totals.Pauses.Add(1)
		}
		pause(ctx, n.between(500*time.Millisecond, 3*time.Second))
		return n.procKillRestart(ctx, l)
	}}
)

var allProcFaults = []fault{procFaultPauseLeader, procFaultPauseFollower, procFaultKillLeader, procFaultKillFollower,
	procFaultKillAll, procFaultPauseThenKill}

// runProcesses runs cfg on a fresh cluster of processes.
func runProcesses(t testing.TB, cfg linConfig) linResult {
	t.Helper()
	pc := newProcCluster(t, cfg.nodes)
	return runLinearizability(t, cfg, pc, &nemesis{p: pc})
}

// TestLinearizabilityProcesses runs clients against three real tenantkv
// processes while a nemesis pauses them (SIGSTOP/SIGCONT) and kills them
// (SIGKILL), the leader among them, and checks every key's history. Skipped
// with -short: it builds the binary.
func TestLinearizabilityProcesses(t *testing.T) {
	runProcesses(t, linConfig{
		name: "proc-short", nodes: 3, tenants: 2, keys: 3, workers: 6,
		duration: 15 * time.Second, faults: allProcFaults, seed: testSeed(t),
	})
}
