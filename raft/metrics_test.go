package raft

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Metrics follow what the cluster does: appends are timed on every node,
// the leader sees its peers and which of them answer, a persisted snapshot
// and an installed one are timed, and a killed follower turns unreachable.
func TestMetrics(t *testing.T) {
	c := newCluster(t, 3, inmemTransport, clusterOptions{trailingLogs: 2})
	id := c.createTenant("metrics")
	for i := range 20 {
		c.mustPropose(put(id, "metrics", fmt.Sprintf("k%02d", i), "v"))
	}
	c.waitConverged()
	l := c.waitLeader()
	for _, n := range c.live() {
		m := n.node.Metrics()
		require.True(t, m.LeaderKnown, "%s", n.id)
		require.Positive(t, m.Term, "%s", n.id)
		require.GreaterOrEqual(t, m.CommitIndex, m.AppliedIndex, "%s", n.id)
		require.GreaterOrEqual(t, m.LastLogIndex, m.CommitIndex, "%s", n.id)
		require.Equal(t, 3, m.Voters, "%s", n.id)
		require.Positive(t, m.LeaderChanges, "%s", n.id)
		require.Positive(t, m.LogAppend.Count, "%s: appends timed", n.id)
		require.GreaterOrEqual(t, m.LogEntriesAppended, uint64(20), "%s", n.id)
		require.NotNil(t, m.Log, "%s: the Pebble log's figures", n.id)
		require.GreaterOrEqual(t, m.Log.FsyncCount, m.LogAppend.Count, "%s: every append is synced", n.id)
		if n == l {
			require.Equal(t, "leader", m.State)
			continue
		}
		require.Equal(t, "follower", m.State, n.id)
		require.Equal(t, -1, m.VotersReachable, "%s: only the leader knows", n.id)
		require.Nil(t, m.Peers, n.id)
		require.GreaterOrEqual(t, m.LastContact, time.Duration(0), "%s heard from the leader", n.id)
	}
	require.Eventually(t, func() bool {
		m := l.node.Metrics()
		return m.VotersReachable == 3 && len(m.Peers) == 2 && m.Peers[0].Reachable && m.Peers[1].Reachable
	}, 10*time.Second, 10*time.Millisecond, "the leader sees both followers: %+v", l.node.Metrics())

	// A snapshot persisted on the leader is timed there; a node that
	// joins after it installs it, and its restore is timed.
	require.Zero(t, l.node.Metrics().Snapshot.Count)
	require.NoError(t, l.node.raft.Snapshot().Error())
	require.Equal(t, uint64(1), l.node.Metrics().Snapshot.Count)
	joiner := c.addNode()
	c.join(joiner)
	c.waitConverged()
	require.Positive(t, joiner.node.Metrics().Restore.Count, "the joiner installed the snapshot")

	// A killed follower turns unreachable on the leader, within the
	// reachability window (plus the polling).
	var f *testNode
	for _, n := range c.followers() {
		if n != joiner {
			f = n
			break
		}
	}
	c.kill(f)
	l = c.waitLeader()
	require.Eventually(t, func() bool {
		m := l.node.Metrics()
		for _, p := range m.Peers {
			if p.ID == f.id {
				return !p.Reachable && p.LastContact > l.node.PeerReachableWithin() && m.VotersReachable == 3 && m.Voters == 4
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "%s unreachable: %+v", f.id, l.node.Metrics())
}
