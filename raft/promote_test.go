package raft

import (
	"context"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// TestProgressTrackerNeedsPaceWithoutBreak checks the promotion rule on its
// own: a follower is caught up once an answer reaches the leader's last
// index of the previous request, stays so only without a behind answer or
// a silence, and only for long enough.
func TestProgressTrackerNeedsPaceWithoutBreak(t *testing.T) {
	const hb = time.Minute // no silence unless the test makes one
	p := newProgressTracker(hb)
	ok := func(last uint64) *hraft.AppendEntriesResponse {
		return &hraft.AppendEntriesResponse{Term: 3, LastLog: last, Success: true}
	}
	id := hraft.ServerID("j")
	caught := func() bool { c, _ := p.caughtUp(id, 0); return c }

	require.False(t, caught(), "never heard of")
	p.observe(id, 100, ok(0), 3)
	require.False(t, caught(), "first answer: nothing to compare with")
	p.observe(id, 100, ok(12), 3) // a snapshot-sized gap, few entries
	require.False(t, caught(), "behind the leader's previous last index")
	p.observe(id, 120, ok(100), 3)
	require.True(t, caught(), "reached where the leader was")
	_, lag := p.caughtUp(id, 0)
	require.EqualValues(t, 20, lag)
	c, _ := p.caughtUp(id, time.Hour)
	require.False(t, c, "not yet for long enough")

	p.observe(id, 130, ok(119), 3)
	require.False(t, caught(), "one answer behind breaks the run")
	p.observe(id, 130, ok(130), 3)
	require.True(t, caught())
	p.observe(id, 130, &hraft.AppendEntriesResponse{Term: 4, LastLog: 130}, 3)
	require.False(t, caught(), "a refused request")

	// A silence longer than the heartbeat timeout breaks the run too.
	p.observe(id, 130, ok(130), 3)
	p.observe(id, 130, ok(130), 3)
	require.True(t, caught())
	p.peers[id].seen = time.Now().Add(-2 * hb)
	p.observe(id, 130, ok(130), 3)
	require.False(t, caught(), "answer after a silence")

	p.prune(hraft.Configuration{Servers: []hraft.Server{{ID: "other"}}})
	require.Empty(t, p.peers)
}

// TestJoinAsNonvoterThenPromoted adds a node as a non-voter: it is one until
// it keeps pace, never while it is cut off, and the leader promotes it
// afterwards; WaitPromoted on the joiner returns then.
func TestJoinAsNonvoterThenPromoted(t *testing.T) {
	for _, kind := range []transportKind{inmemTransport, tcpTransport} {
		t.Run(string(kind), func(t *testing.T) {
			c := newCluster(t, 1, kind, clusterOptions{})
			l := c.waitLeader()
			c.createTenant("acme")
			j := c.addNode()
			c.start(j, false)
			c.cut(l, j)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			require.NoError(t, l.node.AddNonvoter(ctx, j.id, j.addr))
			require.NoError(t, l.node.AddNonvoter(ctx, j.id, j.addr), "idempotent")
			// Cut off, it cannot keep pace: still a non-voter after many
			// promotion rounds, and the one voter keeps its quorum.
			var last *Result
			for range 5 {
				last = c.mustPropose(&SetMember{NodeID: "x", ClientAddr: "y"})
			}
			// Many promotion rounds run meanwhile.
			until := time.Now().Add(4 * promoteStable(l.node.heartbeat))
			for time.Now().Before(until) {
				members, err := l.node.Members(ctx)
				require.NoError(t, err)
				require.Len(t, members, 2)
				for _, m := range members {
					if m.ID == j.id {
						require.Equal(t, "Nonvoter", m.Suffrage, "promoted while cut off")
					}
				}
				<-time.After(10 * time.Millisecond)
			}
			waitCtx, cancelWait := context.WithTimeout(t.Context(), 300*time.Millisecond)
			require.ErrorIs(t, j.node.WaitPromoted(waitCtx), context.DeadlineExceeded)
			cancelWait()

			c.heal()
			require.NoError(t, j.node.WaitPromoted(ctx))
			require.True(t, j.node.IsVoter())
			require.GreaterOrEqual(t, j.node.AppliedIndex(), last.Index, "ready before it applied what was committed")
		})
	}
}
