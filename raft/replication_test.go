package raft

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// Snapshot settings for replication tests: small enough that a few hundred
// writes compact the log past a stopped follower.
var snapshotOpts = clusterOptions{snapshotThreshold: 64, snapshotInterval: 100 * time.Millisecond, trailingLogs: 32, publish: true}

// TestReplication runs one cluster through the failure scenarios in turn,
// for 3 and 5 nodes over the in-memory transport and over real TCP. After
// each step every live replica must hold byte-identical stores.
func TestReplication(t *testing.T) {
	for _, size := range []int{3, 5} {
		for _, kind := range []transportKind{inmemTransport, tcpTransport} {
			t.Run(fmt.Sprintf("%s-%d", kind, size), func(t *testing.T) {
				if testing.Short() && size == 5 {
					t.Skip("5-node clusters skipped in -short")
				}
				runScenarios(t, newCluster(t, size, kind, snapshotOpts))
			})
		}
	}
}

// ackLog records acknowledged writes: key -> value.
type ackLog struct {
	mu   sync.Mutex
	acks map[string]string
}

func (a *ackLog) add(k, v string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acks == nil {
		a.acks = map[string]string{}
	}
	a.acks[k] = v
}

// verify checks every acknowledged write on node n.
func (a *ackLog) verify(t *testing.T, n *testNode, id keyspace.TenantID) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, want := range a.acks {
		got, err := n.get(id, k)
		require.NoError(t, err, "acknowledged write %q lost on %s", k, n.id)
		require.Equal(t, want, string(got), "key %q on %s", k, n.id)
	}
}

func put(id keyspace.TenantID, name, k, v string) *command.TenantWrite {
	return &command.TenantWrite{TenantID: id, TenantName: name, Ops: []command.Op{{Kind: command.OpSet, Key: []byte(k), Value: []byte(v)}}}
}

// writeMany makes count writes from `workers` goroutines through the
// cluster, recording acknowledged ones. It fails on any error but
// ErrCommitUnknown (the write may or may not exist).
func writeMany(t *testing.T, c *testCluster, acks *ackLog, id keyspace.TenantID, name, prefix string, count, workers int) {
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				k, v := fmt.Sprintf("%s-%05d", prefix, i), strconv.FormatInt(i, 10)
				_, err := c.propose(put(id, name, k, v))
				switch {
				case err == nil:
					acks.add(k, v)
				case errors.Is(err, ErrCommitUnknown):
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func runScenarios(t *testing.T, c *testCluster) {
	var acks ackLog
	id := c.createTenant("app")
	other := c.createTenant("other")

	t.Run("writes-replicate", func(t *testing.T) {
		writeMany(t, c, &acks, id, "app", "base", 40, 4)
		c.mustPropose(put(other, "other", "k", "v"))
		c.mustPropose(&command.PutToken{Token: command.TokenRecord{ID: "tok", Hash: tokenHash("s"), TenantID: id}})
		c.mustPropose(&command.UpdateTenant{ID: other, Labels: map[string]string{"b": "2", "a": "1", "c": "3"}})
		c.waitConverged()
		for _, n := range c.live() {
			acks.verify(t, n, id)
			tok, err := n.node.FSM().Token("tok")
			require.NoError(t, err)
			require.Equal(t, id, tok.TenantID)
		}
		// Member metadata lets any node name the leader's client address.
		l := c.waitLeader()
		for _, f := range c.followers() {
			_, err := f.node.Propose(t.Context(), put(id, "app", "x", "y"))
			var nle *NotLeaderError
			require.ErrorAs(t, err, &nle)
			require.Equal(t, l.id, nle.LeaderID)
			require.Equal(t, "client-of-"+l.id, nle.LeaderClientAddr)
			require.ErrorIs(t, f.node.ReadBarrier(t.Context()), ErrNotLeader)
		}
	})

	t.Run("leader-kill", func(t *testing.T) {
		old := c.waitLeader()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeMany(t, c, &acks, id, "app", "kill", 60, 4)
		}()
		// Kill the leader while the writers are running.
		require.Eventually(t, func() bool { return old.node.AppliedIndex() > 0 && len(acks.snapshot()) > 45 }, 10*time.Second, time.Millisecond)
		c.kill(old)
		wg.Wait()
		nl := c.waitLeader()
		require.NotEqual(t, old.id, nl.id)
		c.waitConverged()
		acks.verify(t, nl, id)
		c.restart(old)
		c.waitConverged()
		acks.verify(t, old, id)
	})

	t.Run("minority-partition", func(t *testing.T) {
		l := c.waitLeader()
		minority := []*testNode{l}
		if len(c.live()) >= 5 {
			minority = append(minority, c.followers()[0])
		}
		var majority []*testNode
		for _, n := range c.live() {
			if n != minority[0] && (len(minority) == 1 || n != minority[1]) {
				majority = append(majority, n)
			}
		}
		c.partition(minority...)

		// The old leader cannot commit, nor serve a linearizable read.
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		_, err := l.node.Propose(ctx, put(id, "app", "minority", "lost"))
		cancel()
		require.Error(t, err)
		require.True(t, errors.Is(err, ErrNotLeader) || errors.Is(err, ErrCommitUnknown), "got %v", err)
		ctx, cancel = context.WithTimeout(t.Context(), time.Second)
		require.Error(t, l.node.ReadBarrier(ctx))
		cancel()

		// The majority elects a leader and commits.
		nl := c.waitLeader(majority...)
		require.NotEqual(t, l.id, nl.id)
		for i := range 10 {
			k := fmt.Sprintf("majority-%d", i)
			c.mustPropose(put(id, "app", k, "v"), majority...)
			acks.add(k, "v")
		}
		c.heal()
		c.waitConverged()
		for _, n := range c.live() {
			_, err := n.get(id, "minority")
			require.ErrorIs(t, err, store.ErrNotFound, "uncommitted minority write landed on %s", n.id)
			acks.verify(t, n, id)
		}
	})

	t.Run("restart-catches-up-from-log", func(t *testing.T) {
		f := c.followers()[0]
		c.kill(f)
		writeMany(t, c, &acks, id, "app", "while-down", 10, 2)
		c.restart(f)
		c.waitConverged()
		acks.verify(t, f, id)
	})

	t.Run("far-behind-follower-gets-snapshot", func(t *testing.T) {
		f := c.followers()[0]
		restoresBefore := f.node.fsm.Stats().Restores
		behind := f.node.raft.LastIndex()
		c.kill(f)
		l := c.waitLeader()
		// Write until the leader has compacted its log past the follower.
		require.Eventually(t, func() bool {
			writeMany(t, c, &acks, id, "app", fmt.Sprintf("far-%d", time.Now().UnixNano()), 50, 8)
			l = c.waitLeader()
			require.NoError(t, l.node.raft.Snapshot().Error())
			first, err := l.node.logs.FirstIndex()
			require.NoError(t, err)
			return first > behind+1
		}, 30*time.Second, time.Millisecond)
		c.restart(f)
		c.waitConverged()
		require.Greater(t, f.node.fsm.Stats().Restores, restoresBefore, "follower should have installed a snapshot")
		acks.verify(t, f, id)
	})

	t.Run("new-node-joins-via-snapshot", func(t *testing.T) {
		n := c.addNode()
		c.join(n)
		c.waitConverged()
		require.Positive(t, n.node.fsm.Stats().Restores, "new node should have installed a snapshot")
		acks.verify(t, n, id)
		members, err := c.waitLeader().node.Members(t.Context())
		require.NoError(t, err)
		require.Len(t, members, len(c.live()))

		// And leaves again.
		require.NoError(t, c.waitLeader().node.RemoveServer(t.Context(), n.id))
		c.kill(n)
		c.waitConverged()
		members, err = c.waitLeader().node.Members(t.Context())
		require.NoError(t, err)
		for _, m := range members {
			require.NotEqual(t, n.id, m.ID)
		}
	})
}

func (a *ackLog) snapshot() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]string, len(a.acks))
	for k, v := range a.acks {
		out[k] = v
	}
	return out
}

// TestSnapshotInstallOverStaleSuffix reproduces hashicorp/raft #697: a
// deposed leader holds uncommitted entries past the new leader's log; the new
// leader has compacted its log and sends a snapshot ending below the stale
// suffix. Raft v1.7.3 alone then loops on InstallSnapshot forever on a quiet
// cluster; with the log repair (logrepair.go) the follower catches up.
func TestSnapshotInstallOverStaleSuffix(t *testing.T) {
	for _, kind := range []transportKind{inmemTransport, tcpTransport} {
		t.Run(string(kind), func(t *testing.T) {
			c := newCluster(t, 3, kind, clusterOptions{trailingLogs: 2, snapshotThreshold: 1 << 20, snapshotInterval: time.Hour})
			tid := c.createTenant("s")
			old := c.waitLeader()
			var majority []*testNode
			for _, n := range c.live() {
				if n != old {
					majority = append(majority, n)
				}
			}
			c.partition(old)

			// The isolated leader appends entries that nobody else gets: writes
			// (which the batcher may merge into few entries) and no-ops (not
			// batched: an entry each).
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Add(2)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(t.Context(), time.Second)
					defer cancel()
					_, err := old.node.Propose(ctx, put(tid, "s", fmt.Sprintf("stale-%d", i), "x"))
					require.Error(t, err)
				}()
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(t.Context(), time.Second)
					defer cancel()
					_, err := old.node.Propose(ctx, &command.Noop{})
					require.Error(t, err, "stale entry %d", i)
				}()
			}
			wg.Wait()

			nl := c.waitLeader(majority...)
			for i := range 5 {
				c.mustPropose(put(tid, "s", fmt.Sprintf("new-%d", i), "v"), majority...)
			}
			require.Less(t, nl.node.raft.LastIndex(), old.node.raft.LastIndex(),
				"setup: the stale suffix must reach past the new leader's log")
			require.NoError(t, nl.node.raft.Snapshot().Error())
			c.heal()
			// The snapshot alone can make the stores equal; entries after it
			// must flow too.
			require.Eventually(t, func() bool { return old.node.fsm.Stats().Restores > 0 }, 10*time.Second, time.Millisecond,
				"the old leader should install a snapshot")
			c.mustPropose(put(tid, "s", "after-heal", "v"))
			c.waitConverged()
			for _, n := range c.live() {
				for i := range 40 {
					_, err := n.get(tid, fmt.Sprintf("stale-%d", i))
					require.ErrorIs(t, err, store.ErrNotFound)
				}
				for _, k := range []string{"new-0", "new-4", "after-heal"} {
					_, err := n.get(tid, k)
					require.NoError(t, err, "%s on %s", k, n.id)
				}
			}
		})
	}
}
func tokenHash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
