package raft

import (
	"context"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// TestProgressTrackerNeedsPaceWithoutBreak checks the promotion rule on its
// own: a follower is caught up when an answer shows its log holding what
// the leader's held at most promoteMaxDelay ago, and stays so only without
// an answer behind, a refusal or a silence, and only for long enough.
func TestProgressTrackerNeedsPaceWithoutBreak(t *testing.T) {
	const hb = time.Minute // promoteMaxDelay 30s; no silence unless the test makes one
	p := newProgressTracker(hb)
	id := hraft.ServerID("j")
	// send records a request that left age ago with the leader at last.
	send := func(last uint64, age time.Duration) {
		p.sending(id, last)
		pp := p.peers[id]
		pp.sends[(pp.next+progressSamples-1)%progressSamples].at = time.Now().Add(-age)
	}
	answer := func(last uint64) {
		p.observe(id, &hraft.AppendEntriesResponse{Term: 3, LastLog: last, Success: true}, 3)
	}
	caught := func() bool { c, _ := p.caughtUp(id, 0); return c }

	require.False(t, caught(), "never heard of")
	send(100, 0)
	answer(100)
	require.False(t, caught(), "first answer: no run of answers yet")
	send(100, 0)
	answer(12) // a snapshot-sized gap, few entries
	require.False(t, caught(), "behind every request remembered")
	_, delay := p.caughtUp(id, 0)
	require.EqualValues(t, -1, delay)
	send(120, 0)
	answer(120)
	require.True(t, caught(), "level with the leader")
	c, _ := p.caughtUp(id, time.Hour)
	require.False(t, c, "not yet for long enough")

	// Behind by less than promoteMaxDelay is keeping pace; by more is not.
	p.peers[id].sends = [progressSamples]sendSample{} // forget the requests above
	send(130, 40*time.Second)
	send(140, 20*time.Second)
	send(150, 0)
	answer(140)
	require.True(t, caught(), "20s behind, within 30s")
	_, delay = p.caughtUp(id, 0)
	require.InDelta(t, 20*time.Second, delay, float64(time.Second))
	answer(130)
	require.False(t, caught(), "40s behind")

	answer(150)
	require.True(t, caught())
	p.observe(id, &hraft.AppendEntriesResponse{Term: 4, LastLog: 150}, 3)
	require.False(t, caught(), "a refused request")

	// A silence longer than the heartbeat timeout breaks the run too.
	answer(150)
	require.True(t, caught())
	p.peers[id].seen = time.Now().Add(-2 * hb)
	answer(150)
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
			var last *fsm.Result
			for range 5 {
				last = c.mustPropose(&command.SetMember{NodeID: "x", ClientAddr: "y"})
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
